// canonical_json.h must give exactly the bytes of CanonicalJson (nlohmann's dump), which the
// verifier checks payloads against: compared here on hand-picked and random values.

#include "audit/canonical_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "audit/audit_log.h"
#include "audit/payloads.h"

namespace vigil::audit {
namespace {

std::string Fast(const nlohmann::json& j) {
  std::string out = "prefix:";  // appends, never overwrites
  AppendCanonicalJson(j, &out);
  EXPECT_EQ(out.rfind("prefix:", 0), 0u);
  return out.substr(7);
}

TEST(CanonicalJsonTest, ScalarsMatchDump) {
  const std::vector<nlohmann::json> values = {
      nullptr, true, false, 0, -1, 1, INT64_MIN, INT64_MAX, UINT64_MAX, uint64_t{1} << 63, 0.0,
      -0.0, 1.0, -1.5, 0.1, 1e-7, 1e-6, 123456789012345678.0, 1e15, 1e16, 1e17, 1e21, 1e22, 1e100,
      -1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.93, 6.1, 1.0 / 3.0, 100.0,
      12345.678, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
      std::numeric_limits<double>::quiet_NaN(), "", "plain", "quote \" backslash \\ slash /",
      "\b\f\n\r\t", std::string("nul\0byte", 8), "\x01\x1f\x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\xed\x9f\xbf\xee\x80\x80", "\xf4\x8f\xbf\xbf",
      // invalid UTF-8: lone continuation, overlong, surrogate, past U+10FFFF, truncated
      "a\x80z", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "ok\xff",
      "\xf0\x9f\x98", "\xc3"};
  for (const nlohmann::json& v : values) {
    EXPECT_EQ(Fast(v), CanonicalJson(v)) << CanonicalJson(v);
  }
}

// Strings are checked eight bytes at a time: every special byte at every position of a long
// string, in a key and in a value, both through the writer and the value walker.
TEST(CanonicalJsonTest, SpecialByteAtEveryPositionOfALongString) {
  for (const char special : {'"', '\\', '\x00', '\x1f', '\n', '\x7f', '\x80', '\xc3', '\xff', ' ',
                             '!', '#', '[', ']', '~'}) {
    for (size_t pos = 0; pos < 20; ++pos) {
      std::string s = "abcdefghijklmnopqrst";
      s[pos] = special;
      const nlohmann::json j = {{s, s}};
      EXPECT_EQ(Fast(j), CanonicalJson(j)) << pos;
      std::string out;
      CanonicalWriter w(&out);
      w.BeginObject();
      w.Key(s);
      w.String(s);
      w.EndObject();
      EXPECT_EQ(out, CanonicalJson(j)) << pos;
    }
  }
}

TEST(CanonicalJsonTest, NestedValuesWithUnsortedKeysMatchDump) {
  nlohmann::json j;
  j["zeta"] = {1, 2.5, "three", nullptr, {{"b", 1}, {"a", 2}}};
  j["alpha"] = {{"Z", true}, {"a", false}, {"_", nlohmann::json::array()}, {"", {}}};
  j["\xc3\xa9"] = nlohmann::json::object();
  j["e\xcc\x81"] = "decomposed";
  j["bad\xff key"] = "x";
  j["\n"] = -0.0;
  EXPECT_EQ(Fast(j), CanonicalJson(j));
  EXPECT_EQ(Fast(nlohmann::json::array()), "[]");
  EXPECT_EQ(Fast(nlohmann::json::object()), "{}");
}

// Random strings over a byte alphabet rich in the cases that matter (escapes, multi-byte
// sequences and their broken forms), random numbers and random nesting.
nlohmann::json RandomValue(std::mt19937_64& rng, int depth) {
  static const char kBytes[] =
      "aZ \"\\/\b\f\n\r\t\x01\x1f\x7f\x80\xbf\xc2\xc3\xa9\xe0\xa0\xed"
      "\x9f\xa0\xef\xbf\xf0\x90\x9f\xf4\x8f\x90\xff";
  auto str = [&] {
    std::string s;
    const size_t n = rng() % 12;
    for (size_t i = 0; i < n; ++i) s.push_back(kBytes[rng() % (sizeof(kBytes) - 1)]);
    return s;
  };
  switch (rng() % (depth > 3 ? 6 : 8)) {
    case 0:
      return nullptr;
    case 1:
      return (rng() & 1) != 0;
    case 2:
      return static_cast<int64_t>(rng());
    case 3:
      return rng();
    case 4: {
      double d;
      const uint64_t bits = rng();
      std::memcpy(&d, &bits, sizeof(d));
      return (rng() & 1) != 0
                 ? d
                 : static_cast<double>(static_cast<int64_t>(rng() % 2000000) - 1000000) / 1000.0;
    }
    case 5:
      return str();
    case 6: {
      nlohmann::json a = nlohmann::json::array();
      for (size_t n = rng() % 5; n > 0; --n) a.push_back(RandomValue(rng, depth + 1));
      return a;
    }
    default: {
      nlohmann::json o = nlohmann::json::object();
      for (size_t n = rng() % 5; n > 0; --n) o[str()] = RandomValue(rng, depth + 1);
      return o;
    }
  }
}

TEST(CanonicalJsonTest, RandomValuesMatchDump) {
  std::mt19937_64 rng(20261127);
  for (int i = 0; i < 20000; ++i) {
    const nlohmann::json v = RandomValue(rng, 0);
    ASSERT_EQ(Fast(v), CanonicalJson(v)) << "value " << i << ": " << CanonicalJson(v);
  }
}

core::Decision SampleDecision(const std::string& odd) {
  core::Decision d;
  d.action = core::Action::kKill;
  d.enforced = true;
  d.rule = "rule-" + odd;
  d.reason = "why \"" + odd + "\"\n";
  d.verdict.score = 0.9312345678;
  d.verdict.anomalous = true;
  d.verdict.model_name = "host-baseline";
  d.verdict.model_version = "3";
  d.verdict.subject = odd;
  d.verdict.uid = UINT32_MAX;
  d.verdict.pid = 4242;
  d.verdict.stream = "pid:4242";
  d.verdict.host = "gw-\xc3\xa9";
  d.verdict.events = UINT64_MAX;
  d.verdict.time_ns = -5;
  d.verdict.explanation = {{"open read", 7.5}, {odd, -0.0}, {"", 1e300}};
  return d;
}

TEST(CanonicalJsonTest, DecisionAndVerdictWritersMatchPayloadsDump) {
  for (const std::string odd : {"", "nginx", "bad\xff utf8", "tab\there", "\xf0\x9f\x98\x80"}) {
    const core::Decision d = SampleDecision(odd);
    for (const std::string_view mode : {"monitor", "enforce"}) {
      std::string out;
      CanonicalWriter w(&out);
      WriteDecisionPayload(d, mode, &w);
      EXPECT_EQ(out, CanonicalJson(DecisionPayload(d, mode)));
    }
    std::string out;
    CanonicalWriter w(&out);
    WriteVerdictPayload(d.verdict, &w);
    EXPECT_EQ(out, CanonicalJson(VerdictPayload(d.verdict)));
  }
  core::Decision empty;  // no explanation: an empty array
  std::string out;
  CanonicalWriter w(&out);
  WriteDecisionPayload(empty, "monitor", &w);
  EXPECT_EQ(out, CanonicalJson(DecisionPayload(empty, "monitor")));
}

TEST(CanonicalJsonTest, DecisionWithExtraMembersMatchesPayloadDump) {
  const core::Decision d = SampleDecision("nginx");
  // Before the first key, between keys, and after the last one.
  const ExtraMember extra[] = {
      {"aa", [](CanonicalWriter* w) { w->Int(-3); }},
      {"call",
       [](CanonicalWriter* w) {
         w->BeginObject();
         w->Key("pid");
         w->Uint(7);
         w->EndObject();
       }},
      {"gate", [](CanonicalWriter* w) { w->String("fanotify"); }},
      {"rulez", [](CanonicalWriter* w) { w->Bool(true); }},
      {"zz", [](CanonicalWriter* w) { w->Double(0.25); }},
  };
  std::string out;
  {
    CanonicalWriter w(&out);
    WriteDecisionPayload(d, "enforce", extra, &w);
  }
  nlohmann::json want = DecisionPayload(d, "enforce");
  want["aa"] = -3;
  want["call"] = {{"pid", 7}};
  want["gate"] = "fanotify";
  want["rulez"] = true;
  want["zz"] = 0.25;
  EXPECT_EQ(out, CanonicalJson(want));
}

TEST(CanonicalJsonTest, WriterPlacesCommasAndNesting) {
  std::string out;
  CanonicalWriter w(&out);
  w.BeginArray();
  w.Int(-1);
  w.BeginObject();
  w.Key("a");
  w.BeginArray();
  w.EndArray();
  w.Key("b");
  w.Null();
  w.EndObject();
  w.Double(0.5);
  w.Bool(false);
  w.Uint(7);
  w.String("s");
  w.EndArray();
  EXPECT_EQ(out, R"([-1,{"a":[],"b":null},0.5,false,7,"s"])");
}

}  // namespace
}  // namespace vigil::audit
