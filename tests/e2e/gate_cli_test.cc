// vigil gate as a user runs it (root): execs of a program in a watched directory on a tmpfs this
// test mounts are denied in enforce mode and allowed (and counted) in monitor mode; SIGTERM stops
// the gate and its counts come out as JSON.

#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "vigil_cli.h"

extern char** environ;

namespace vigil::e2e {
namespace {

namespace fs = std::filesystem;

class GateCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (fanotify, mount)";
    dir_ = fs::temp_directory_path() / ("vigil-gate-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "mnt");
    if (mount("tmpfs", (dir_ / "mnt").c_str(), "tmpfs", 0, "size=8m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs";
    }
    mounted_ = true;
    fs::copy_file("/bin/true", dir_ / "mnt" / "prog");
    fs::permissions(dir_ / "mnt" / "prog", fs::perms::owner_all);
    std::ofstream(dir_ / "rules.yaml")
        << "- rule: Watched program\n  desc: d\n  condition: evt.type = execve and "
           "proc.exepath startswith "
        << (dir_ / "mnt").string()
        << "/\n  output: \"exec %proc.exepath\"\n  priority: WARNING\n"
           "  action: {type: deny, mode: enforce}\n";
    // Enforce mode takes only a signed policy.
    const std::string keys = (dir_ / "keys").string();
    ASSERT_EQ(RunVigil(dir_, "keys init --dir " + keys).exit_code, 0);
    ASSERT_EQ(RunVigil(dir_, "policy sign " + (dir_ / "rules.yaml").string() + " --key-dir " +
                                 keys).exit_code,
              0);
  }
  void TearDown() override {
    if (mounted_) umount2((dir_ / "mnt").c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  // Starts `vigil gate`, execs the program once, stops the gate; returns the exec's exit status
  // (-1: it could not run) and the gate's JSON.
  std::pair<int, nlohmann::json> ExecUnderGate(const std::string& mode) {
    const std::string out = (dir_ / "gate.out").string(), err = (dir_ / "gate.err").string();
    fs::remove(out);
    fs::remove(err);
    const std::string cmd = "exec " + std::string(VIGIL_BINARY) + " gate --watch " + (dir_ / "mnt").string() +
                            " --policy " + (dir_ / "rules.yaml").string() + " --mode " + mode +
                            " --trusted-key " + (dir_ / "keys" / "vigil.pub").string() +
                            " --json >" + out + " 2>" + err;
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t sh = 0;
    if (posix_spawn(&sh, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      return {-2, {}};
    }
    // Ready once it says what it holds.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (ReadAll(err).find("holding") == std::string::npos &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const int rc = std::system((dir_ / "mnt" / "prog").c_str());
    // "exec": the shell's pid is vigil's.
    kill(sh, SIGTERM);
    int status = 0;
    waitpid(sh, &status, 0);
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1,
            nlohmann::json::parse(ReadAll(out), nullptr, false)};
  }

  fs::path dir_;
  bool mounted_ = false;
};

TEST_F(GateCliTest, ExecDeniedInEnforceAllowedAndCountedInMonitor) {
  auto [enforce_rc, enforce_json] = ExecUnderGate("enforce");
  EXPECT_NE(enforce_rc, 0);  // the shell reports the denied exec (126)
  ASSERT_FALSE(enforce_json.is_discarded()) << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(enforce_json["denied"], 1);

  auto [monitor_rc, monitor_json] = ExecUnderGate("monitor");
  EXPECT_EQ(monitor_rc, 0);
  ASSERT_FALSE(monitor_json.is_discarded()) << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(monitor_json["would_have_denied"], 1);
  EXPECT_EQ(monitor_json["denied"], 0);
}

TEST_F(GateCliTest, RefusesBadInput) {
  EXPECT_EQ(RunVigil(dir_, "gate --watch /nonexistent/dir").exit_code, 2);
  EXPECT_EQ(RunVigil(dir_, "gate --watch " + (dir_ / "mnt").string() + " --deadline 0ms").exit_code,
            2);
  const std::string self_dir = fs::path(VIGIL_BINARY).parent_path().string();
  CmdResult own = RunVigil(dir_, "gate --watch " + self_dir);
  EXPECT_EQ(own.exit_code, 2);
  EXPECT_NE(own.err.find("own executable"), std::string::npos) << own.err;
}

}  // namespace
}  // namespace vigil::e2e
