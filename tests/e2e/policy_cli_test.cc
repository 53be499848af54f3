// vigil policy check|test as a user runs them: reports, exit codes, matches on recorded events.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;
using vigil::e2e::CmdResult;

class PolicyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-policy-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_, args); }
  fs::path dir_;
};

TEST_F(PolicyCliTest, CheckReportsTheFalcoStableRulesAndWhyRulesAreDisabled) {
  const std::string rules = std::string(VIGIL_SHARED_DIR) + "/fixtures/falco/falco_rules.yaml";
  if (!fs::exists(rules)) GTEST_SKIP() << "no Falco rules fixture at " << rules;
  CmdResult r = Vigil("policy check --json " + rules);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rules"], 25);
  EXPECT_EQ(j["enabled"].get<int>() + j["disabled_by_file"].get<int>() +
                j["disabled_unsupported"].get<int>(),
            25);
  EXPECT_GT(j["enabled"].get<int>(), 0);
  ASSERT_EQ(j["disabled"].size(), j["disabled_unsupported"].get<size_t>());
  for (const auto& d : j["disabled"]) {
    EXPECT_GT(d["line"].get<int>(), 0);
    EXPECT_NE(d["reason"].get<std::string>().find("is not supported"), std::string::npos) << d;
  }
  CmdResult text = Vigil("policy check " + rules);
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("25 rules: "), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("warning: "), std::string::npos);
}

TEST_F(PolicyCliTest, BadRulesExitTwoNamingFileLineAndReason) {
  const fs::path bad = dir_ / "bad.yaml";
  std::ofstream(bad) << "- rule: r\n  desc: d\n  condition: proc.name in (a, b\n  output: o\n"
                        "  priority: info\n";
  CmdResult r = Vigil("policy check " + bad.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad.string() + ":3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing ')'"), std::string::npos) << r.err;
  EXPECT_EQ(Vigil("policy check " + (dir_ / "absent.yaml").string()).exit_code, 2);
  EXPECT_EQ(Vigil("policy").exit_code, 2);
}

TEST_F(PolicyCliTest, CheckAcceptsGatewayRulesAndNamesUnknownFieldsWithFileAndLine) {
  // The gateway's rules (docs/gateway.md, "Rules") are the same language: modbus.* fields next to
  // ml.* and asset.class. A misspelt field disables its rule, reported with file and line (the
  // gateway itself refuses such a file).
  const fs::path rules = dir_ / "gw-rules.yaml";
  std::ofstream(rules)
      << "- rule: setpoint_ceiling\n  desc: d\n"
         "  condition: modbus.asset = SP and modbus.value > 80 and modbus.write = true\n"
         "  output: \"SP := %modbus.value (%asset.class)\"\n  priority: ERROR\n"
         "  action: {type: deny}\n"
         "- rule: doubted_pump\n  desc: d\n"
         "  condition: modbus.register = coil and ml.anomalous = true and modbus.rate > 1\n"
         "  output: \"%modbus.asset %ml.score\"\n  priority: ERROR\n"
         "  action: {type: deny, fallback: deny}\n"
         "- rule: typo\n  desc: d\n  condition: modbus.adress = 3\n  output: o\n"
         "  priority: ERROR\n";
  CmdResult r = Vigil("policy check --json " + rules.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rules"], 3);
  EXPECT_EQ(j["enabled"], 2);
  ASSERT_EQ(j["disabled"].size(), 1u);
  EXPECT_EQ(j["disabled"][0]["rule"], "typo");
  EXPECT_EQ(j["disabled"][0]["line"], 13);
  EXPECT_NE(j["disabled"][0]["reason"].get<std::string>().find("modbus.adress"),
            std::string::npos)
      << j;
  CmdResult text = Vigil("policy check " + rules.string());
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.err.find(rules.string() + ":13"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("modbus.adress"), std::string::npos) << text.err;
}

TEST_F(PolicyCliTest, TestPrintsMatchesForRecordedEvents) {
  const fs::path rules = dir_ / "rules.yaml";
  std::ofstream(rules) << "- rule: Shadow read\n  desc: d\n"
                          "  condition: evt.type=openat and fd.name=/etc/shadow\n"
                          "  output: \"%proc.name read %fd.name (uid %user.uid)\"\n"
                          "  priority: critical\n";
  const fs::path events = dir_ / "events.jsonl";
  std::ofstream(events)
      << R"({"kind":"file_open","seq":1,"proc":{"pid":10,"uid":1000,"comm":"cat"},"path":"/etc/shadow"})"
      << "\n"
      << R"({"kind":"file_open","seq":2,"proc":{"pid":11,"comm":"cat"},"path":"/etc/hosts"})"
      << "\n";
  CmdResult r = Vigil("policy test " + rules.string() + " --events " + events.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rule"], "Shadow read");
  EXPECT_EQ(j["priority"], "CRITICAL");
  EXPECT_EQ(j["output"], "cat read /etc/shadow (uid 1000)");
  EXPECT_EQ(j["event_seq"], 1);
  EXPECT_NE(r.err.find("2 events, 1 matches"), std::string::npos) << r.err;
}

}  // namespace
