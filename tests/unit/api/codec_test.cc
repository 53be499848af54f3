#include "api/codec.h"

#include <gtest/gtest.h>

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
