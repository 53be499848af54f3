// vigil run as a user runs it (root: seccomp user notification): denied connects and opens fail
// with EPERM inside the program, allowed ones work, monitor mode counts instead of denying, the
// exit code is the program's, and bad usage exits 2.

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/integration/loopback_listener.h"
#include "vigil_cli.h"

namespace vigil::e2e {
namespace {

namespace fs = std::filesystem;

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
    dir_ = fs::temp_directory_path() / ("vigil-run-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = listener_.port();
    secret_ = dir_ / "secret.txt";
    std::ofstream(secret_) << "secret\n";
    std::ofstream(dir_ / "rules.yaml")
        << "- rule: Forbidden port\n  desc: d\n  condition: evt.type = connect and fd.sport = 9\n"
           "  output: \"connect to %fd.sip:%fd.sport by %proc.name\"\n  priority: WARNING\n"
           "  action: {type: deny, mode: enforce}\n"
           "- rule: Secret file\n  desc: d\n  condition: evt.type = openat and fd.name = "
        << secret_.string()
        << "\n  output: \"open %fd.name by %proc.name\"\n  priority: WARNING\n"
           "  action: {type: deny, mode: enforce}\n";
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }
  std::string Run(const std::string& mode, const std::string& program) {
    return "run --policy " + (dir_ / "rules.yaml").string() + " --mode " + mode +
           " --json --audit " + (dir_ / "audit").string() + " --audit-key " +
           (dir_ / "audit.key").string() + " -- " + program;
  }
  static nlohmann::json LastJson(const std::string& err) {
    const size_t start = err.rfind("\n{");
    return nlohmann::json::parse(start == std::string::npos ? err : err.substr(start + 1),
                                 nullptr, false);
  }

  fs::path dir_;
  fs::path secret_;
  testing::LoopbackListener listener_;
  int port_ = 0;
};

TEST_F(RunTest, ForbiddenConnectFailsWithEpermAllowedOneSucceeds) {
  // Port 9 (discard) is forbidden by the rules; the test's listener is allowed.
  CmdResult denied = RunVigil(dir_, Run("enforce", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/9'"));
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.err.find("Operation not permitted"), std::string::npos) << denied.err;
  nlohmann::json j = LastJson(denied.err);
  ASSERT_FALSE(j.is_discarded()) << denied.err;
  EXPECT_EQ(j["denied"], 1);

  CmdResult ok = RunVigil(
      dir_, Run("enforce", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port_) + "'"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(LastJson(ok.err)["denied"], 0);

  // The denial is in the audit log, and the log verifies.
  CmdResult show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
  EXPECT_NE(show.out.find("Forbidden port"), std::string::npos) << show.out << show.err;
}

TEST_F(RunTest, OpenOfForbiddenPathIsDeniedAndExitCodeIsTheProgramsOwn) {
  CmdResult r = RunVigil(dir_, Run("enforce", "cat " + secret_.string()));
  EXPECT_EQ(r.exit_code, 1);  // cat's
  EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");

  CmdResult code = RunVigil(dir_, Run("enforce", "sh -c 'exit 7'"));
  EXPECT_EQ(code.exit_code, 7);
}

TEST_F(RunTest, MonitorModeAllowsAndCountsWouldHaveDenied) {
  CmdResult r = RunVigil(dir_, Run("monitor", "cat " + secret_.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "secret\n");
  nlohmann::json j = LastJson(r.err);
  ASSERT_FALSE(j.is_discarded()) << r.err;
  EXPECT_EQ(j["would_have_denied"], 1);
  EXPECT_EQ(j["denied"], 0);
}

TEST_F(RunTest, BadUsageExitsTwo) {
  EXPECT_EQ(RunVigil(dir_, "run --deadline 5parsecs -- true").exit_code, 2);
  EXPECT_EQ(RunVigil(dir_, "run --mode audit -- true").exit_code, 2);
  CmdResult missing = RunVigil(dir_, "run -- /nonexistent/program");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("/nonexistent/program"), std::string::npos);
  std::ofstream(dir_ / "bad.yaml") << "- rule: x\n  condition: (\n";
  CmdResult bad = RunVigil(dir_, "run --policy " + (dir_ / "bad.yaml").string() + " -- true");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.yaml"), std::string::npos) << bad.err;
  EXPECT_EQ(RunVigil(dir_, "run --help").exit_code, 0);
}

}  // namespace
}  // namespace vigil::e2e
