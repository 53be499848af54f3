// The hub's fast ingest parser (hub/ingest_json.cc, hub/internal/json_tape.h) against the
// tree-based reading it replaced (ingest_reference.h): the agent's own findings, a table of
// awkward inputs, and every single-byte change and cut of a real body must get the same answer
// (value or error message) from both.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hub/internal/json_tape.h"
#include "hub/internal/store_rows.h"
#include "hub/requests.h"
#include "hub_fixtures.h"
#include "ingest_reference.h"

namespace vigil::hub {
namespace {

std::string Body(const std::vector<std::string>& findings, const std::string& extra = "") {
  return testing::IngestBody("h1", "m1", findings).insert(1, extra.empty() ? "" : extra + ",");
}

void ExpectSame(const std::string& body) {
  EXPECT_EQ(reference::Difference(ParseIngestRequest(body), reference::ParseIngestRequest(body)),
            "")
      << "ingest body: " << body;
  EXPECT_EQ(reference::Difference(ParseFindingJson(body), reference::ParseFindingJson(body)), "")
      << "finding line: " << body;
}

TEST(IngestJsonTest, ReadsTheAgentsFindingsAsTheTreeReadingDid) {
  const std::vector<std::string> lines = testing::FindingLines("h1", 0, 3);
  const std::string body = Body(lines);
  auto m = ParseIngestRequest(body);
  ASSERT_TRUE(m.has_value()) << m.error().message();
  ASSERT_EQ(m->findings.size(), 6u);
  EXPECT_EQ(m->host, "h1");
  EXPECT_EQ(m->message_id, "m1");
  EXPECT_EQ(m->findings[0].kind, FindingKind::kVerdict);
  EXPECT_EQ(m->findings[0].explanation.size(), 2u);
  EXPECT_EQ(m->findings[1].kind, FindingKind::kDecision);
  EXPECT_EQ(m->findings[1].rule, "shell");
  // raw is the finding's text as the agent wrote it.
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(m->findings[i].raw, lines[i]);
  ExpectSame(body);
  for (const std::string& line : lines) ExpectSame(line);
}

TEST(IngestJsonTest, AwkwardInputsGetTheSameAnswer) {
  const std::string v = testing::VerdictLine("h1", 7, "sh", 1, 0.9);
  const std::string d = testing::DecisionLine("h1", 7, "sh", 1, "shell");
  auto with = [&](const std::string& line, const std::string& member) {
    std::string s = line;
    return s.insert(1, member + ",");
  };
  const std::vector<std::string> cases = {
      "",
      " ",
      "{",
      "}",
      "[]",
      "null",
      "\"x\"",
      "{}",
      "{} x",
      "{}\n\t ",
      "\xEF\xBB\xBF{}",
      "\xEF\xBB{}",
      std::string("{}\0x", 4),
      std::string("{\0}", 3),
      std::string("[1\0]", 4),
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{\"a\":01}",
      "{\"a\":-}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":1e}",
      "{\"a\":1e400}",
      "{\"a\":-1e400}",
      "{\"a\":1e-400}",
      "{\"a\":tru}",
      "{\"a\":nul}",
      "{\"a\":[1,2,]}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"\x01\"}",
      "{\"a\":\"\x7f\"}",
      "{\"a\":\"\xC0\x80\"}",
      "{\"a\":\"\xED\xA0\x80\"}",
      "{\"a\":\"\xF4\x90\x80\x80\"}",
      "{\"a\":\"\xE2\x82\xAC\"}",
      "{\"a\":\"\\uD800\"}",
      "{\"a\":\"\\uDC00\"}",
      "{\"a\":\"\\uD83D\\uDE00\"}",
      "{\"a\":\"\\uD83D\\u0041\"}",
      "{\"a\":\"\\u00e9\\u0000\"}",
      "{\"a\":\"\\u12G4\"}",
      "{\"a\"}",
      "{1:2}",
      std::string(1000, '[') + std::string(1000, ']'),
      "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
      Body({v}),
      Body({d}),
      Body({v, d}),
      Body({}),
      Body({"1"}),
      Body({"{}"}),
      Body({"null"}),
      Body({v}, "\"schema_version\":\"vigil.hub/v2\""),
      Body({v}, "\"schema_version\":null"),
      Body({v}, "\"schema_version\":\"vigil.hub\\/v1\""),
      Body({v}, "\"ho\\u0073t\":\"h2\""),
      Body({v}, "\"host\":\"bad host\""),
      Body({v}, "\"message_id\":null"),
      Body({v}, "\"findings\":{}"),
      "{\"host\":\"h\",\"message_id\":\"m\"}",
      "{\"message_id\":\"m\",\"findings\":[]}",
      "{\"host\":\"h\",\"findings\":[]}",
      "{\"host\":\"h\",\"message_id\":\"m\",\"findings\":[],\"findings\":[" + v + "]}",
      with(v, "\"class_uid\":2004.0"),
      with(v, "\"class_uid\":-2004"),
      with(v, "\"class_uid\":1e3"),
      with(v, "\"class_uid\":null"),
      with(v, "\"class_uid\":2003"),
      with(v, "\"class_uid\":\"2004\""),
      with(v, "\"time\":-1"),
      with(v, "\"time\":-0"),
      with(v, "\"time\":1125899906842625"),
      with(v, "\"time\":18446744073709551615"),
      with(v, "\"time\":18446744073709551616"),
      with(v, "\"time\":-9223372036854775808"),
      with(v, "\"time\":-9223372036854775809"),
      with(v, "\"severity_id\":100"),
      with(v, "\"severity_id\":null"),
      with(v, "\"severity_id\":true"),
      with(v, "\"message\":7"),
      with(v, "\"message\":\"" + std::string(4097, 'm') + "\""),
      with(v, "\"message\":\"" + std::string(4096, 'm') + "\""),
      with(v, "\"message\":\"\\u00e9" + std::string(4094, 'm') + "\""),
      with(v, "\"finding_info\":null"),
      with(v, "\"finding_info\":[]"),
      with(v, "\"finding_info\":{\"uid\":1}"),
      with(v, "\"finding_info\":{\"analytic\":3}"),
      with(v, "\"finding_info\":{\"analytic\":{\"name\":\"m\\u00e9\",\"version\":null}}"),
      with(v, "\"process\":null"),
      with(v, "\"process\":{\"pid\":4294967297}"),
      with(v, "\"process\":{\"pid\":4294967296,\"name\":\"a\\\"b\"}"),
      with(v, "\"dst_endpoint\":null"),
      with(v, "\"dst_endpoint\":1"),
      with(v, "\"dst_endpoint\":{\"ip\":\"10.0.0.1\"}"),
      with(v, "\"dst_endpoint\":{\"ip\":\"2001:db8::1\"}"),
      with(v, "\"dst_endpoint\":{\"ip\":\"10.0.0\"}"),
      with(v, "\"dst_endpoint\":{\"ip\":\"\"}"),
      with(v, "\"vigil\":null"),
      with(v, "\"vigil\":{}"),
      with(v, "\"vigil\":{\"score\":null}"),
      with(v, "\"vigil\":{\"score\":1}"),
      with(v, "\"vigil\":{\"score\":1.5}"),
      with(v, "\"vigil\":{\"score\":-0.0}"),
      with(v, "\"vigil\":{\"score\":\"1\"}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":null}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":{}}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":[1]}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":[{\"weight\":null}]}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":[{\"weight\":2e300,\"what\":\"x\"}]}"),
      with(v, "\"vigil\":{\"score\":0.5,\"explanation\":[{\"what\":[]}]}"),
      with(v, "\"vigil\":{\"rule\":null}"),
      with(v, "\"vigil\":{\"rule\":\"r\",\"ml\":[]}"),
      with(v, "\"vigil\":{\"rule\":\"r\",\"ml\":{\"score\":2}}"),
      with(v, "\"vigil\":{\"rule\":\"r\",\"reason\":\"why\"}"),
      with(v, "\"message\":\"\",\"vigil\":{\"rule\":\"r\",\"reason\":\"why\"}"),
      with(d, "\"vigil\":{\"rule\":\"r\",\"action\":5}"),
      with(v, "\"extra\":{\"deep\":[[[{\"x\":1e308}]]]}"),
      with(v, "\"extra\":[1e309]"),
      with(v, "\"v\\u0069gil\":{\"score\":0.25}"),
  };
  for (const std::string& c : cases) ExpectSame(c);
  // An explanation longer than the 64 items kept: the rest are neither read nor checked.
  std::string many = "\"vigil\":{\"score\":0.5,\"explanation\":[";
  for (int i = 0; i < 70; ++i) many += std::string(i ? "," : "") + "{\"what\":\"e\",\"weight\":1}";
  ExpectSame(with(v, many + "]}"));
  ExpectSame(with(v, many + ",7]}"));
}

TEST(IngestJsonTest, EveryByteChangeAndCutOfABodyGetsTheSameAnswer) {
  const std::string body = Body({testing::VerdictLine("h1", 7, "sh", 1, 0.875)});
  const std::string swaps = "\"\\{}[],:0-.eu\x80\xC3\x01 n";
  for (size_t i = 0; i < body.size(); ++i) {
    ExpectSame(body.substr(0, i));
    for (const char c : swaps) {
      std::string s = body;
      s[i] = c;
      ExpectSame(s);
    }
    std::string dropped = body;
    ExpectSame(dropped.erase(i, 1));
  }
}

// The string scan reads eight bytes at a time: every byte it must stop at (quote, backslash
// and escapes, control bytes, UTF-8 sequences valid and not, a NUL), at every offset of a
// string longer than two words, must give the tree reading's answer; the tape's string bounds
// must be the quotes'.
TEST(IngestJsonTest, TheStringScanStopsAtEveryOffset) {
  const std::vector<std::string> stops = {"\"",   "\\\"", "\\n",  "\\u00e9",  "\\ud83d\\ude00",
                                          "\x01", "\x1f", "\x7f", "\xC3\xA9", "\xE2\x82\xAC",
                                          "\x80", "\xC3", "\xFF", "\t",       std::string(1, '\0'),
                                          " ",    "~",    "\\"};
  const std::string plain = "abcdefghijklmnopqrstuvwx";  // 24 bytes: three words
  for (const std::string& stop : stops) {
    for (size_t at = 0; at <= plain.size(); ++at) {
      const std::string text = plain.substr(0, at) + stop + plain.substr(at);
      const std::string v = testing::VerdictLine("h1", 7, "sh", 1, 0.9);
      std::string with_message = v;
      with_message.insert(1, "\"message\":\"" + text + "\",");
      ExpectSame(with_message);
      ExpectSame(Body({with_message}));
      internal::JsonTape tape;
      const std::string json = "[\"" + text + "\",1]";
      if (tape.Parse(json)) {
        EXPECT_EQ(tape[1].begin, 2u) << json;
        EXPECT_EQ(tape[1].end, 2 + text.size()) << json;
        EXPECT_EQ(tape[2].kind, internal::JsonKind::kUnsigned) << json;
      }
    }
  }
}

TEST(IngestJsonTest, TheTapeTypesNumbersAsNlohmannDoes) {
  internal::JsonTape t;
  ASSERT_TRUE(
      t.Parse("[0,-0,18446744073709551615,18446744073709551616,-9223372036854775808,"
              "1.5,1e2,-1e-400]"));
  EXPECT_EQ(t[0].count, 8u);
  EXPECT_EQ(t[1].kind, internal::JsonKind::kUnsigned);
  EXPECT_EQ(t[2].kind, internal::JsonKind::kInteger);
  EXPECT_EQ(t[3].kind, internal::JsonKind::kUnsigned);
  EXPECT_EQ(t[3].num.u, UINT64_MAX);
  EXPECT_EQ(t[4].kind, internal::JsonKind::kFloat);
  EXPECT_EQ(t[5].kind, internal::JsonKind::kInteger);
  EXPECT_EQ(t[5].num.i, INT64_MIN);
  EXPECT_EQ(t[6].num.d, 1.5);
  EXPECT_EQ(t[7].kind, internal::JsonKind::kFloat);
  EXPECT_EQ(t[8].kind, internal::JsonKind::kFloat);
  EXPECT_EQ(t[8].num.d, -0.0);
  EXPECT_FALSE(t.Parse("[1e400]"));
  // Duplicate keys: the last one counts; escaped keys are compared decoded.
  ASSERT_TRUE(t.Parse(R"({"a":1,"\u0061":2,"b":3})"));
  const std::string_view names[] = {"a", "b", "c"};
  uint32_t at[3];
  t.Members(0, names, at, 3);
  EXPECT_EQ(t[at[0]].num.u, 2u);
  EXPECT_EQ(t[at[1]].num.u, 3u);
  EXPECT_EQ(at[2], internal::JsonTape::kAbsent);
}

TEST(IngestJsonTest, ExplanationJsonIsWhatNlohmannDumped) {
  Finding f;
  EXPECT_EQ(internal::ExplanationJson(f), "[]");
  const std::vector<std::string> whats = {"open>read>write",     "",
                                          "q\"b\\s\n\t\x01\x7f", "caf\xC3\xA9 \xF0\x9F\x98\x80",
                                          "bad \xC3\x28 utf8",   std::string("nul\0in", 6)};
  const std::vector<double> weights = {0.7,  1.0,  -0.0,       1e-5,      0.0001,
                                       1e15, 1e16, 123456.789, -2.5e-300, 1.7976931348623157e308};
  for (size_t i = 0; i < std::max(whats.size(), weights.size()); ++i) {
    f.explanation.push_back({whats[i % whats.size()], weights[i % weights.size()]});
  }
  nlohmann::json tree = nlohmann::json::array();
  for (const FindingEvidence& e : f.explanation) {
    tree.push_back({{"what", e.what}, {"weight", e.weight}});
  }
  EXPECT_EQ(internal::ExplanationJson(f),
            tree.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace
}  // namespace vigil::hub
