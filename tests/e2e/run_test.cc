// vigil run as a user runs it (root: seccomp user notification): denied connects and opens fail
// with EPERM inside the program, allowed ones work, monitor mode counts instead of denying, the
// exit code is the program's, and bad usage exits 2.

#include <sys/utsname.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <vector>
#include <cstdio>
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
    // Enforce mode takes only signed policies: the rules are signed with a key the runs trust.
    ASSERT_EQ(RunVigil(dir_, "keys init --dir " + (dir_ / "keys").string()).exit_code, 0);
    ASSERT_EQ(Sign(dir_ / "rules.yaml", dir_ / "keys"), 0);
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }
  int Sign(const fs::path& file, const fs::path& key_dir) {
    const CmdResult r = RunVigil(dir_, "policy sign " + file.string() + " --key-dir " +
                                           key_dir.string());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.exit_code;
  }
  std::string Run(const std::string& mode, const std::string& program,
                  const fs::path& rules = {}) {
    // A generous deadline: these tests are about what is decided, and on a loaded machine a
    // 5 ms deadline can pass before the gate thread runs (the fallback then allows).
    return "run --deadline 1s --policy " + (rules.empty() ? dir_ / "rules.yaml" : rules).string() +
           " --mode " + mode + " --trusted-key " + (dir_ / "keys" / "vigil.pub").string() + " --json --audit " +
           (dir_ / "audit").string() + " --audit-key " + (dir_ / "audit.key").string() + " -- " +
           program;
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

// Enforce mode refuses a policy that is unsigned, signed by a key it does not trust, or altered
// after signing: the program runs in monitor mode (nothing denied, would-have-denied counted),
// with an ALERT and the reason in the audit log.
TEST_F(RunTest, EnforceModeRefusesUnsignedUnknownKeyOrAlteredPolicy) {
  const fs::path rules = dir_ / "other.yaml";
  fs::copy_file(dir_ / "rules.yaml", rules);
  ASSERT_EQ(RunVigil(dir_, "keys init --dir " + (dir_ / "stranger").string()).exit_code, 0);
  struct Case {
    std::string outcome;
    std::function<void()> prepare;
  };
  const std::vector<Case> cases = {
      {"unsigned", [] {}},
      {"unknown-key", [&] { Sign(rules, dir_ / "stranger"); }},
      {"altered",
       [&] {
         Sign(rules, dir_ / "keys");
         std::ofstream(rules, std::ios::app) << "# edited after signing\n";
       }},
  };
  for (const Case& c : cases) {
    fs::remove_all(dir_ / "audit");
    c.prepare();
    CmdResult r = RunVigil(dir_, Run("enforce", "cat " + secret_.string(), rules));
    EXPECT_EQ(r.exit_code, 0) << c.outcome << ": " << r.err;
    EXPECT_EQ(r.out, "secret\n") << c.outcome;
    EXPECT_NE(r.err.find("ALERT enforce mode refused, running in monitor mode: policy " +
                         c.outcome + ": " + rules.string()),
              std::string::npos)
        << r.err;
    nlohmann::json j = LastJson(r.err);
    ASSERT_FALSE(j.is_discarded()) << r.err;
    EXPECT_EQ(j["mode"], "monitor");
    EXPECT_EQ(j["denied"], 0);
    EXPECT_EQ(j["would_have_denied"], 1);
    EXPECT_NE(j.value("enforce_refused", "").find("policy " + c.outcome), std::string::npos)
        << j.dump();

    CmdResult show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
    ASSERT_EQ(show.exit_code, 0) << show.err;
    EXPECT_NE(show.out.find(R"("action":"refused")"), std::string::npos) << show.out;
    EXPECT_NE(show.out.find(R"("files":[")" + rules.string() + R"("])"), std::string::npos)
        << show.out;
    EXPECT_NE(show.out.find(R"("reason":")" + c.outcome + ": "), std::string::npos) << show.out;
    EXPECT_NE(show.out.find(R"("to":"monitor")"), std::string::npos) << show.out;
    EXPECT_NE(show.out.find("enforce mode refused: policy " + c.outcome), std::string::npos)
        << show.out;
  }

  // Signed by the trusted key: enforce mode, the open is denied, and the start says so.
  fs::remove_all(dir_ / "audit");
  Sign(rules, dir_ / "keys");
  CmdResult r = RunVigil(dir_, Run("enforce", "cat " + secret_.string(), rules));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.find("ALERT"), std::string::npos) << r.err;
  EXPECT_EQ(LastJson(r.err)["mode"], "enforce") << r.err;
  CmdResult show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
  EXPECT_NE(show.out.find(R"("from":"stopped")"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(R"("to":"enforce")"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find(R"("action":"refused")"), std::string::npos) << show.out;
}

// A model at the gate: `vigil train` learns bash's gated-call sequences (execve, then opens; never
// a connect) from an event file; under `vigil run --model`, a rule on ml.anomalous denies bash's
// TCP connect on the model's verdict and allows a plain run. The rule names fd.typechar 4: without
// HOME, bash's user lookup also connects to nscd's Unix socket, which the model finds unusual
// too. In enforce mode the model must be signed like the policy.
TEST_F(RunTest, ModelVerdictDeniesAnUnusualConnectAndUnsignedModelIsRefused) {
  {
    std::ofstream calls(dir_ / "calls.jsonl");
    for (int i = 0; i < 40; ++i) {
      const std::string head = R"({"kind":"syscall","stream":"bash-)" + std::to_string(i) +
                               R"(","proc":{"pid":)" + std::to_string(100 + i) +
                               R"(,"comm":"bash"},"syscall":{"arch":"x86_64","nr":)";
      calls << head << "59}}\n";
      for (int k = 0; k < 3 + i % 5; ++k) calls << head << "257}}\n";
    }
  }
  const fs::path model = dir_ / "gate.vgm";
  CmdResult trained = RunVigil(dir_, "train --model-type sequence --dataset jsonl --data " +
                                         (dir_ / "calls.jsonl").string() + " --order 3 --out " +
                                         model.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  const fs::path rules = dir_ / "ml.yaml";
  std::ofstream(rules) << "- rule: Unusual connect\n  desc: d\n  condition: evt.type = connect "
                          "and fd.typechar = 4 and ml.anomalous = true\n  output: \"unusual connect by %proc.name, "
                          "score %ml.score\"\n  priority: WARNING\n"
                          "  action: {type: deny, mode: enforce, fallback: allow}\n";
  ASSERT_EQ(Sign(rules, dir_ / "keys"), 0);
  const std::string connect =
      "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port_) + "'";
  auto run = [&](const std::string& program) {
    fs::remove_all(dir_ / "audit");
    // Run() already gives the run a deadline far above the model's time, so a loaded machine
    // never turns the verdict into the rule's fallback (the deadline path has tests of its own).
    return RunVigil(dir_, "run --model " + model.string() + " " +
                              Run("enforce", program, rules).substr(4));
  };

  // Unsigned model: monitor mode, the connect goes through, the refusal is recorded.
  CmdResult r = run(connect);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ALERT enforce mode refused, running in monitor mode: model unsigned: " +
                       model.string()),
            std::string::npos)
      << r.err;
  EXPECT_EQ(LastJson(r.err)["would_have_denied"], 1) << r.err;
  CmdResult show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
  EXPECT_NE(show.out.find(R"("action":"refused","name":"syscall-ngram")"), std::string::npos)
      << show.out;

  // Signed: the model flags bash's connect and the rule denies it; a plain run is allowed.
  CmdResult sign = RunVigil(dir_, "model sign " + model.string() + " --key-dir " +
                                      (dir_ / "keys").string());
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  r = run(connect);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r.err;
  nlohmann::json j = LastJson(r.err);
  ASSERT_FALSE(j.is_discarded()) << r.err;
  EXPECT_EQ(j["mode"], "enforce");
  EXPECT_EQ(j["denied"], 1);
  EXPECT_EQ(j["fallbacks"], 0);
  EXPECT_EQ(j["breaker_opened"], 0);
  show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
  EXPECT_NE(show.out.find("unusual connect by bash, score "), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(R"("anomalous":true)"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(R"("action":"loaded","name":"syscall-ngram")"), std::string::npos)
      << show.out;

  r = run("bash -c 'cat " + (dir_ / "rules.yaml").string() + " >/dev/null'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(LastJson(r.err)["denied"], 0) << r.err;

  // A model that does not score system-call sequences is bad input.
  std::ofstream(dir_ / "junk.vgm") << "not a model";
  CmdResult junk = RunVigil(dir_, "run --model " + (dir_ / "junk.vgm").string() + " -- true");
  EXPECT_EQ(junk.exit_code, 2);
  EXPECT_NE(junk.err.find("junk.vgm"), std::string::npos) << junk.err;
}

// --record-calls writes what the gate saw as training data for a gate model: one syscall event
// per call (execve 59, openat 257, connect 42), a stream per process and program; vigil train
// learns from it.
TEST_F(RunTest, RecordedCallsAreTrainingDataForAGateModel) {
  const fs::path calls = dir_ / "recorded.jsonl";
  const std::string file = (dir_ / "rules.yaml").string();
  CmdResult r = RunVigil(dir_, "run --mode monitor --json --record-calls " + calls.string() +
                                   " -- bash -c 'cat " + file + " >/dev/null; cat " + file +
                                   " >/dev/null'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json summary = LastJson(r.err);
  ASSERT_FALSE(summary.is_discarded()) << r.err;
  std::ifstream in(calls);
  std::string line;
  uint64_t lines = 0;
  std::map<std::string, std::vector<int>> streams;
  std::map<std::string, std::string> comms;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j["kind"], "syscall");
    EXPECT_EQ(j["syscall"]["arch"], "x86_64");
    streams[j["stream"]].push_back(j["syscall"]["nr"]);
    comms[j["stream"]] = j["proc"]["comm"];
    ++lines;
  }
  EXPECT_EQ(summary["recorded_calls"], lines);
  EXPECT_EQ(summary["calls"], lines);
  int cats = 0;
  for (const auto& [stream, nrs] : streams) {
    for (int nr : nrs) EXPECT_TRUE(nr == 59 || nr == 257 || nr == 42) << stream << " " << nr;
    if (comms[stream] != "cat") continue;
    ++cats;
    EXPECT_EQ(nrs.front(), 59) << stream;  // a program's sequence starts with its exec
    EXPECT_GT(std::count(nrs.begin(), nrs.end(), 257), 1) << stream;
  }
  EXPECT_EQ(cats, 2);

  CmdResult trained = RunVigil(dir_, "train --model-type sequence --dataset jsonl --data " +
                                         calls.string() + " --folds 2 --order 3 --out " +
                                         (dir_ / "recorded.vgm").string());
  EXPECT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  EXPECT_EQ(RunVigil(dir_, "run --record-calls /nonexistent/dir/x.jsonl -- true").exit_code, 2);
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
  EXPECT_EQ(RunVigil(dir_, "run --realtime-priority 100 -- true").exit_code, 2);
  EXPECT_EQ(RunVigil(dir_, "run --help").exit_code, 0);
}

// The program's own options after `--` reach it, whichever repeatable flag (--policy,
// --trusted-key) comes last before the `--`; and the gate reports its real-time priority.
TEST_F(RunTest, ProgramOptionsAfterARepeatableFlagReachTheProgram) {
  const std::string rules = (dir_ / "rules.yaml").string();
  const std::string key = (dir_ / "keys" / "vigil.pub").string();
  CmdResult a = RunVigil(dir_, "run --json --trusted-key " + key + " --policy " + rules +
                                   " -- sh -c 'exit 3'");
  EXPECT_EQ(a.exit_code, 3) << a.err;
  CmdResult b = RunVigil(dir_, "run --json --policy " + rules + " --trusted-key " + key +
                                   " --realtime-priority 7 -- sh -c 'exit 4'");
  EXPECT_EQ(b.exit_code, 4) << b.err;
  EXPECT_EQ(LastJson(b.err)["realtime_priority"], 7) << b.err;
  CmdResult c = RunVigil(dir_, "run --json --realtime-priority 0 --policy " + rules +
                                   " -- sh -c 'exit 5'");
  EXPECT_EQ(c.exit_code, 5) << c.err;
  EXPECT_EQ(LastJson(c.err)["realtime_priority"], 0) << c.err;
}

// Synchronous wake-ups (docs/gates.md, "Priority"): asked for by default and reported in the
// summary, refused with the kernel's reason before Linux 6.6; --sync-wakeup false leaves them off.
TEST_F(RunTest, SyncWakeupIsReportedAndCanBeTurnedOff) {
  utsname u{};
  int major = 0, minor = 0;
  ASSERT_EQ(uname(&u), 0);
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2) << u.release;
  const bool supported = major > 6 || (major == 6 && minor >= 6);
  const std::string rules = (dir_ / "rules.yaml").string();
  const CmdResult on = RunVigil(dir_, "run --json --mode monitor --policy " + rules + " -- true");
  EXPECT_EQ(on.exit_code, 0) << on.err;
  const nlohmann::json j = LastJson(on.err);
  ASSERT_FALSE(j.is_discarded()) << on.err;
  EXPECT_EQ(j["sync_wakeup"], supported) << on.err;
  EXPECT_EQ(j.contains("sync_wakeup_error"), !supported) << on.err;
  const CmdResult off = RunVigil(
      dir_, "run --json --mode monitor --sync-wakeup false --policy " + rules + " -- true");
  EXPECT_EQ(off.exit_code, 0) << off.err;
  const nlohmann::json k = LastJson(off.err);
  ASSERT_FALSE(k.is_discarded()) << off.err;
  EXPECT_EQ(k["sync_wakeup"], false) << off.err;
  EXPECT_FALSE(k.contains("sync_wakeup_error")) << off.err;
}

}  // namespace
}  // namespace vigil::e2e
