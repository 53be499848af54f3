#include "core/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace vigil::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(LogTest, LevelNamesRoundTrip) {
  for (LogLevel l : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                     LogLevel::kError, LogLevel::kOff}) {
    LogLevel parsed = LogLevel::kOff;
    ASSERT_TRUE(ParseLogLevel(LogLevelName(l), &parsed)) << LogLevelName(l);
    EXPECT_EQ(parsed, l);
  }
  LogLevel l = LogLevel::kInfo;
  EXPECT_TRUE(ParseLogLevel("warning", &l));
  EXPECT_EQ(l, LogLevel::kWarn);
  l = LogLevel::kInfo;
  EXPECT_FALSE(ParseLogLevel("verbose", &l));
  EXPECT_FALSE(ParseLogLevel("INFO", &l));
  EXPECT_EQ(l, LogLevel::kInfo);
}

TEST(LogTest, FormatNamesRoundTrip) {
  LogFormat f = LogFormat::kText;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_EQ(LogFormatName(LogFormat::kText), "text");
  EXPECT_FALSE(ParseLogFormat("xml", &f));
}

TEST(LogTest, JsonLinesGoToStderrAndEscape) {
  ASSERT_TRUE(InitLogging(LogLevel::kInfo, LogFormat::kJson).ok());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  spdlog::debug("hidden");
  spdlog::warn("queue \"main\" is {}\nfull", 90);
  spdlog::default_logger()->flush();
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "");
  EXPECT_THAT(err, Not(HasSubstr("hidden")));
  std::istringstream lines(err);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line)) << err;
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << line;
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["msg"], "queue \"main\" is 90\nfull");
  EXPECT_EQ(j["logger"], "vigil");
  EXPECT_THAT(j["ts"].get<std::string>(),
              testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{6}Z"));
}

TEST(LogTest, TextLinesHonourTheLevel) {
  ASSERT_TRUE(InitLogging(LogLevel::kError, LogFormat::kText).ok());
  ::testing::internal::CaptureStderr();
  spdlog::warn("not shown");
  spdlog::error("shown {}", 1);
  spdlog::default_logger()->flush();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, Not(HasSubstr("not shown")));
  EXPECT_THAT(err, HasSubstr("error"));
  EXPECT_THAT(err, HasSubstr("shown 1"));
  ASSERT_TRUE(InitLogging(LogLevel::kOff, LogFormat::kText).ok());
  ::testing::internal::CaptureStderr();
  spdlog::error("silenced");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace vigil::core
