// vigil enforcement and vigil escalations as a user runs them: exit codes and errors for bad
// ids, the ledger in JSON, escalations decided by hand, every step in the audit log; and (as
// root) a real process frozen and thawed from the command line.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;
using vigil::e2e::CmdResult;

class EnforcementCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-enforcement-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Runs vigil with the test's own state directory.
  CmdResult Vigil(const std::string& args) {
    return vigil::e2e::RunVigil(dir_ / "out", args + " --state-dir " + (dir_ / "state").string());
  }
  fs::path dir_;
};

TEST_F(EnforcementCliTest, BadIdsExitTwoWithAClearError) {
  CmdResult r = Vigil("enforcement rollback abc");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("ID \"abc\": expected a positive number"), std::string::npos) << r.err;
  r = Vigil("enforcement rollback 42");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no enforcement action with id 42"), std::string::npos) << r.err;
  r = Vigil("escalations approve 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected a positive number"), std::string::npos) << r.err;
  r = Vigil("escalations deny 99");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no escalation with id 99"), std::string::npos) << r.err;
  r = Vigil("enforcement apply freeze pid:notanumber");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("target \"pid:notanumber\""), std::string::npos) << r.err;
  r = Vigil("enforcement apply smite pid:5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(vigil::e2e::RunVigil(dir_ / "out", "enforcement").exit_code, 2);
}

TEST_F(EnforcementCliTest, LedgerEscalationsAndAuditRecords) {
  CmdResult r = Vigil("enforcement apply alert pid:12345 --rule R1 --reason because");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("action 1: applied"), std::string::npos) << r.out;
  r = Vigil("enforcement apply kill pid:12345 --monitor --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["state"], "monitor");

  r = Vigil("enforcement list --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["action"], "alert");
  EXPECT_EQ(list[1]["rule"], "R1");
  EXPECT_EQ(list[1]["state"], "applied");
  EXPECT_EQ(list[0]["state"], "monitor");
  r = Vigil("enforcement stats --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stats = nlohmann::json::parse(r.out);
  EXPECT_EQ(stats["kill"]["monitor"], 1);
  EXPECT_EQ(stats["alert"]["applied"], 1);

  EXPECT_EQ(Vigil("enforcement rollback 1").exit_code, 0);
  r = Vigil("enforcement rollback 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("rolled-back: there is nothing to roll back"), std::string::npos) << r.err;

  r = Vigil("enforcement apply escalate pid:12345 --proposed alert --timeout 1h --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint64_t esc = nlohmann::json::parse(r.out)["escalation_id"];
  r = Vigil("escalations list --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto pending = nlohmann::json::parse(r.out);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]["state"], "pending");
  EXPECT_EQ(pending[0]["proposed"], "alert");
  r = Vigil("escalations deny " + std::to_string(esc) + " --by carol");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Vigil("escalations approve " + std::to_string(esc));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is denied (by carol)"), std::string::npos) << r.err;
  r = Vigil("escalations list");
  EXPECT_NE(r.out.find("no pending escalations"), std::string::npos) << r.out;

  // Every step is in the audit log, and the log verifies.
  const std::string audit = (dir_ / "state" / "audit").string();
  r = vigil::e2e::RunVigil(dir_ / "out", "audit verify " + audit);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = vigil::e2e::RunVigil(dir_ / "out", "audit show " + audit + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, int> types;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    types[nlohmann::json::parse(line)["type"].get<std::string>()]++;
  }
  EXPECT_EQ(types["enforcement"], 3) << r.out;
  EXPECT_EQ(types["rollback"], 1) << r.out;
  EXPECT_EQ(types["escalation"], 2) << r.out;
}

std::string ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("State:\t", 0) == 0) return line.substr(7, 1);
  }
  return "";
}

template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST_F(EnforcementCliTest, FreezeAndThawAProcessFromTheCommandLine) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (cgroup freezer)";
  const pid_t child = fork();
  if (child == 0) {
    volatile uint64_t n = 0;
    for (;;) n = n + 1;
  }
  CmdResult r = Vigil("enforcement apply freeze pid:" + std::to_string(child) + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_EQ(j.value("state", ""), "applied") << r.out;
  EXPECT_TRUE(Eventually([&] { return ProcState(child) == "S"; }));
  r = Vigil("enforcement rollback " + std::to_string(j.value("id", 0)));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Eventually([&] { return ProcState(child) == "R"; }));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

}  // namespace
