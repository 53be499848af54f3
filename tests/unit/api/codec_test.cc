#include "api/codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace vigil::api {
namespace {

TEST(CodecTest, ParsesAScoreRequestAndRendersProtoNames) {
  v1::ScoreRequest r;
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","subject":"sshd","arch":"x86_64",
                            "syscalls":[0,1,2],"deadline_ms":20})",
                        &r)
                  .ok());
  EXPECT_TRUE(ValidateScoreRequest(r).ok());
  EXPECT_EQ(r.syscalls_size(), 3);
  const std::string json = ToJson(r);
  EXPECT_NE(json.find("\"schema_version\":\"vigil.api/v1\""), std::string::npos);
  EXPECT_NE(json.find("\"deadline_ms\":20"), std::string::npos);
}

TEST(CodecTest, RefusesMissingAndUnknownSchemaVersion) {
  v1::ScoreRequest r;
  ASSERT_TRUE(ParseJson(R"({"subject":"a","syscalls":[1]})", &r).ok());
  EXPECT_NE(ValidateScoreRequest(r).message().find("schema_version: missing"), std::string::npos);
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v2","syscalls":[1]})", &r).ok());
  EXPECT_NE(ValidateScoreRequest(r).message().find("\"vigil.api/v2\" is not supported"),
            std::string::npos);
}

TEST(CodecTest, RefusesBadJsonUnknownFieldsAndBadValues) {
  v1::ScoreRequest r;
  EXPECT_EQ(ParseJson("{", &r).code(), core::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseJson(R"({"schema_version":"vigil.api/v1","bogus":1})", &r).ok());
  EXPECT_FALSE(ParseJson(R"({"syscalls":"x"})", &r).ok());
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","syscalls":[99999]})", &r).ok());
  EXPECT_NE(ValidateScoreRequest(r).message().find("syscalls[0]"), std::string::npos);
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","syscalls":[1],"arch":"arm"})", &r)
                  .ok());
  EXPECT_FALSE(ValidateScoreRequest(r).ok());
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1"})", &r).ok());
  EXPECT_NE(ValidateScoreRequest(r).message().find("nothing to score"), std::string::npos);
}

TEST(CodecTest, ValidatesBatchDecideAndControl) {
  v1::ScoreBatchRequest b;
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","items":[{"syscalls":[1]},
                            {"syscalls":[-1]}]})",
                        &b)
                  .ok());
  EXPECT_NE(ValidateScoreBatchRequest(b).message().find("items[1]"), std::string::npos);
  v1::DecideRequest d;
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","event":{"kind":"nope"}})", &d).ok());
  EXPECT_NE(ValidateDecideRequest(d).message().find("event.kind"), std::string::npos);
  v1::EnforceRequest e;
  ASSERT_TRUE(ParseJson(R"({"schema_version":"vigil.api/v1","host":"h","action":"reboot",
                            "pid":3})",
                        &e)
                  .ok());
  EXPECT_NE(ValidateEnforceRequest(e).message().find("action"), std::string::npos);
  e.set_action("kill");
  EXPECT_TRUE(ValidateEnforceRequest(e).ok());
  e.set_pid(0);
  EXPECT_FALSE(ValidateEnforceRequest(e).ok());
}

}  // namespace
}  // namespace vigil::api

namespace vigil::api {
namespace {

// The fast reader (score_json.cc) either gives exactly what protobuf's reader gives or declines.
template <typename Msg>
void ExpectSameAsGeneric(const std::string& json, bool fast_expected) {
  SCOPED_TRACE(json);
  Msg fast, generic, via_parse;
  const bool took_fast = ParseScoreJsonFast(json, &fast);
  EXPECT_EQ(took_fast, fast_expected);
  const core::Status g = ParseJsonGeneric(json, &generic);
  const core::Status p = ParseJson(json, &via_parse);
  EXPECT_EQ(p.ok(), g.ok());
  EXPECT_EQ(p.message(), g.message());
  if (took_fast) {
    ASSERT_TRUE(g.ok()) << g.message();
    EXPECT_EQ(fast.SerializeAsString(), generic.SerializeAsString());
  }
  if (g.ok()) {
    EXPECT_EQ(via_parse.SerializeAsString(), generic.SerializeAsString());
  }
}

TEST(ScoreJsonTest, FastReaderAgreesWithProtobufOrDeclines) {
  using R = v1::ScoreRequest;
  ExpectSameAsGeneric<R>(R"({"schema_version":"vigil.api/v1","subject":"sshd","arch":"i386",)"
                         R"("syscalls":[0,1,2,4095,-7,2147483647,-2147483648],"deadline_ms":20})",
                         true);
  ExpectSameAsGeneric<R>(" {\n\t\"syscalls\" : [ 3 , 5 ] ,\"deadline_ms\":4294967295 } \r\n", true);
  ExpectSameAsGeneric<R>("{}", true);
  ExpectSameAsGeneric<R>(R"({"syscalls":[]})", true);
  // Outside the subset: the generic reader answers (accepting or refusing).
  for (const char* declined : {
           R"({"subject":"a\"b","syscalls":[1]})",       // escape
           R"({"subject":"caf\u00e9"})",                  // escape
           "{\"subject\":\"caf\xc3\xa9\"}",               // non-ASCII
           R"({"syscalls":[1.0]})",                       // fraction
           R"({"syscalls":[1e2]})",                       // exponent
           R"({"syscalls":[01]})",                        // leading zero
           R"({"syscalls":[-0]})",                        // negative zero
           R"({"syscalls":[2147483648]})",                // over int32
           R"({"syscalls":["7"]})",                       // number as a string
           R"({"syscalls":null})",                        // null
           R"({"deadline_ms":-1})",                       // negative uint32
           R"({"deadline_ms":4294967296})",               // over uint32
           R"({"schemaVersion":"vigil.api/v1"})",         // lowerCamelCase name
           R"({"values":[0.5,1]})",                       // feature vector
           R"({"bogus":1})",                              // unknown field
           R"({"subject":"a","subject":"b"})",            // duplicate
           R"({"syscalls":[1],"syscalls":[2]})",          // duplicate repeated field
           R"({"syscalls":[1,]})",                        // trailing comma
           R"({"syscalls":[1]} x)",                       // trailing bytes
           R"({"syscalls":[1])",                          // truncated
           R"([1])", "", "{", R"({"subject":1})"}) {
    ExpectSameAsGeneric<R>(declined, false);
  }
  using B = v1::ScoreBatchRequest;
  ExpectSameAsGeneric<B>(R"({"schema_version":"vigil.api/v1","deadline_ms":5,"items":[)"
                         R"({"subject":"a","syscalls":[1,2]},{"schema_version":"vigil.api/v1",)"
                         R"("arch":"x86_64","syscalls":[3]},{}]})",
                         true);
  ExpectSameAsGeneric<B>(R"({"items":[]})", true);
  ExpectSameAsGeneric<B>(R"({"items":[{"values":[1]}]})", false);
  ExpectSameAsGeneric<B>(R"({"items":[{"syscalls":[1]}],"items":[]})", false);
  ExpectSameAsGeneric<B>(R"({"items":{}})", false);
  // Other messages never take the fast path.
  v1::DecideRequest d;
  EXPECT_FALSE(ParseScoreJsonFast(R"({"schema_version":"vigil.api/v1"})", &d));
}

v1::Score MakeScore(double score, std::vector<std::pair<std::string, double>> evidence) {
  v1::Score s;
  s.set_score(score);
  s.set_anomalous(score > 0.5);
  s.set_model_name("syscall-ngram");
  s.set_model_version("1");
  for (auto& [what, weight] : evidence) {
    v1::Evidence* e = s.add_explanation();
    e->set_what(what);
    e->set_weight(weight);
  }
  return s;
}

TEST(ScoreJsonTest, FastWriterPrintsWhatProtobufPrints) {
  const std::vector<double> numbers = {0.0, -0.0, 1.0, 0.1, 1.0 / 3, 0.99998455229942929,
                                       15.982419967651367, 1e-300, 5e-324, 1.7976931348623157e308,
                                       123456789012345680.0, -2.5, 1e21, 1e-7};
  const std::vector<std::string> strings = {
      "", "plain", "quote \" backslash \\ slash /", "<tag> & 'apos'", "tab\tnl\nret\rbs\bff\f",
      std::string("nul\0x\x01\x1f\x7f", 9), "fallback: deadline exceeded"};
  v1::ScoreBatchResponse batch;
  batch.set_schema_version("vigil.api/v1");
  for (size_t i = 0; i < numbers.size(); ++i) {
    v1::ScoreResponse r;
    r.set_schema_version("vigil.api/v1");
    r.set_policy_version(strings[i % strings.size()]);
    *r.mutable_result() = MakeScore(numbers[i], {{strings[(i + 1) % strings.size()], numbers[i]},
                                                 {strings[(i + 2) % strings.size()], -numbers[i]}});
    r.mutable_result()->set_cached(i % 2 == 0);
    r.mutable_result()->set_fallback(i % 3 == 0);
    r.mutable_result()->set_fallback_reason(strings[(i + 3) % strings.size()]);
    std::string fast;
    ASSERT_TRUE(ToScoreJsonFast(r, &fast)) << i;
    EXPECT_EQ(fast, ToJsonGeneric(r)) << i;
    EXPECT_EQ(ToJson(r), ToJsonGeneric(r)) << i;
    *batch.add_results() = r.result();
  }
  *batch.add_results() = MakeScore(0.25, {});  // no explanation: "explanation":[]
  std::string fast;
  ASSERT_TRUE(ToScoreJsonFast(batch, &fast));
  EXPECT_EQ(fast, ToJsonGeneric(batch));
  v1::ScoreBatchResponse empty;
  ASSERT_TRUE(ToScoreJsonFast(empty, &fast));
  EXPECT_EQ(fast, ToJsonGeneric(empty));
  v1::ScoreResponse no_result;  // an unset message field is left out, as protobuf does
  no_result.set_policy_version("p");
  ASSERT_TRUE(ToScoreJsonFast(no_result, &fast));
  EXPECT_EQ(fast, ToJsonGeneric(no_result));
}

TEST(ScoreJsonTest, FastWriterDeclinesWhatItCannotPrintTheSameWay) {
  std::string out = "x";
  v1::ScoreResponse utf8;
  *utf8.mutable_result() = MakeScore(0.5, {{"caf\xc3\xa9", 1.0}});
  EXPECT_FALSE(ToScoreJsonFast(utf8, &out));
  EXPECT_TRUE(out.empty());
  // Non-ASCII, valid or not: protobuf escapes some characters (U+2028, U+202C, ...).
  for (const char* other : {"caf\xc3\xa9", "sep\xe2\x80\xa8", "pdf\xe2\x80\xac", "\xf0\x9f\x98\x80",
                            "\xc0\x80", "\xe2\x82", "\xff"}) {
    v1::ScoreResponse r;
    r.set_policy_version(other);
    EXPECT_FALSE(ToScoreJsonFast(r, &out)) << other;
    EXPECT_EQ(ToJson(r), ToJsonGeneric(r)) << other;
  }
  v1::ScoreResponse nan;
  *nan.mutable_result() = MakeScore(std::nan(""), {});
  EXPECT_FALSE(ToScoreJsonFast(nan, &out));
  EXPECT_EQ(ToJson(nan), ToJsonGeneric(nan));  // the generic printer's answer
  v1::ScoreBatchResponse inf;
  *inf.add_results() = MakeScore(0.5, {{"w", std::numeric_limits<double>::infinity()}});
  EXPECT_FALSE(ToScoreJsonFast(inf, &out));
  v1::DecideResponse other;
  EXPECT_FALSE(ToScoreJsonFast(other, &out));
}

}  // namespace
}  // namespace vigil::api
