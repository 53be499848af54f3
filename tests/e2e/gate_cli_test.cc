// vigil gate as a user runs it (root): execs of a program in a watched directory on a tmpfs this
// test mounts are denied in enforce mode and allowed (and counted) in monitor mode; with
// --model, a rule on the model's verdict denies an unusual open; SIGTERM stops the gate and its
// counts come out as JSON.

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

  // Starts `vigil gate --watch MNT --json GATE_ARGS`, runs `command` through /bin/sh once it
  // holds, stops the gate; returns the command's exit status (-1: it could not run) and the
  // gate's JSON.
  std::pair<int, nlohmann::json> UnderGate(const std::string& gate_args,
                                           const std::string& command) {
    const std::string out = (dir_ / "gate.out").string(), err = (dir_ / "gate.err").string();
    fs::remove(out);
    fs::remove(err);
    const std::string cmd = "exec " + std::string(VIGIL_BINARY) + " gate --watch " +
                            (dir_ / "mnt").string() + " " + gate_args + " --json >" + out +
                            " 2>" + err;
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
    const int rc = std::system(command.c_str());
    // "exec": the shell's pid is vigil's.
    kill(sh, SIGTERM);
    int status = 0;
    waitpid(sh, &status, 0);
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1,
            nlohmann::json::parse(ReadAll(out), nullptr, false)};
  }

  // Execs the program once under the gate with the fixture's rules.
  std::pair<int, nlohmann::json> ExecUnderGate(const std::string& mode) {
    return UnderGate("--policy " + (dir_ / "rules.yaml").string() + " --mode " + mode +
                         " --trusted-key " + (dir_ / "keys" / "vigil.pub").string(),
                     (dir_ / "mnt" / "prog").string());
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

// The model at the fanotify gate (`vigil gate --model`): a system-call sequence model learned
// from the usual gated calls of `reader` (`--record-calls`: it is started and opens no other
// watched file) flags reader's open of a watched file; a rule on ml.anomalous denies that open
// in enforce mode. Without the model the same open is allowed (ml.* is absent), and with it
// reader's usual run is allowed. The model and the policy are signed, as enforce mode needs.
TEST_F(GateCliTest, ModelVerdictDeniesAnUnusualOpenOfAWatchedFile) {
  const fs::path mnt = dir_ / "mnt";
  fs::copy_file("/bin/cat", mnt / "reader");
  fs::permissions(mnt / "reader", fs::perms::owner_all);
  std::ofstream(mnt / "data") << "watched\n";
  // The usual work, recorded by the gate itself: reader started with nothing to read (its exec,
  // then the kernel's open of the program file for the exec).
  const fs::path calls = dir_ / "calls.jsonl";
  auto [recorded_rc, recorded] = UnderGate(
      "--open --mode monitor --record-calls " + calls.string(),
      "for i in 1 2 3 4 5 6 7 8; do " + (mnt / "reader").string() + " </dev/null; done");
  ASSERT_EQ(recorded_rc, 0);
  ASSERT_FALSE(recorded.is_discarded()) << ReadAll(dir_ / "gate.err");
  ASSERT_GE(recorded["recorded_calls"], 8) << recorded.dump();
  const fs::path model = dir_ / "gate.vgm";
  CmdResult r = RunVigil(dir_, "train --model-type sequence --dataset jsonl --data " +
                                   calls.string() + " --order 3 --out " + model.string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string keys = (dir_ / "keys").string();
  r = RunVigil(dir_, "model sign " + model.string() + " --key-dir " + keys);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const fs::path rules = dir_ / "ml.yaml";
  std::ofstream(rules) << R"(- rule: Unusual open
  desc: an open that reader's usual work never does
  condition: evt.type = openat and ml.anomalous = true
  output: "unusual open of %fd.name by %proc.name, score %ml.score"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: allow}
)";
  r = RunVigil(dir_, "policy sign " + rules.string() + " --key-dir " + keys);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // A generous deadline: a late model would get the rule's fallback (allow) instead.
  const std::string gate = "--open --policy " + rules.string() + " --mode enforce --deadline 2s " +
                           "--trusted-key " + (dir_ / "keys" / "vigil.pub").string();
  const std::string read_data = (mnt / "reader").string() + " " + (mnt / "data").string() +
                                " >/dev/null 2>&1";

  auto [denied_rc, denied] = UnderGate(gate + " --model " + model.string(), read_data);
  EXPECT_EQ(denied_rc, 1) << "cat reports the open it was refused";
  ASSERT_FALSE(denied.is_discarded()) << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(denied["mode"], "enforce") << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(denied["denied"], 1) << denied.dump();
  EXPECT_EQ(denied["fallbacks"], 0) << denied.dump();
  EXPECT_EQ(denied["breaker_opened"], 0) << denied.dump();
  EXPECT_GE(denied["calls"], 2) << "the exec and the open were held: " << denied.dump();

  auto [usual_rc, usual] =
      UnderGate(gate + " --model " + model.string(), (mnt / "reader").string() + " </dev/null");
  EXPECT_EQ(usual_rc, 0);
  ASSERT_FALSE(usual.is_discarded()) << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(usual["denied"], 0) << usual.dump();
  EXPECT_GE(usual["calls"], 1) << usual.dump();

  auto [plain_rc, plain] = UnderGate(gate, read_data);
  EXPECT_EQ(plain_rc, 0) << "without the model no rule on ml.* matches";
  ASSERT_FALSE(plain.is_discarded()) << ReadAll(dir_ / "gate.err");
  EXPECT_EQ(plain["denied"], 0) << plain.dump();
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
