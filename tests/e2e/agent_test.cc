// The live agent end to end, as root: learns a program's behaviour, then alerts when the program
// does something it never did while learning, and stays quiet when it does what it always did.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../unit/govern/swtpm.h"
#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using vigil::e2e::Spawn;
using vigil::e2e::WaitFor;

int RunWorkload(const std::string& mode, pid_t* pid_out) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl(VIGIL_WORKLOAD, VIGIL_WORKLOAD, mode.c_str(), "/etc/hostname", static_cast<char*>(nullptr));
    _exit(127);
  }
  *pid_out = pid;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
    if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
    dir_ = fs::temp_directory_path() / ("vigil-agent-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (agent_ > 0) {
      kill(agent_, SIGKILL);
      waitpid(agent_, nullptr, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Starts `vigil agent` on `config` in `mode` (relearning, null sink, stdout/stderr to out/err)
  // and waits until detection has started.
  bool StartAgent(const fs::path& config, const std::string& mode, const fs::path& out,
                  const fs::path& err) {
    agent_ = Spawn({VIGIL_BINARY, "agent", "--config", config.string(), "--state-dir",
                    dir_.string(), "--mode", mode, "--relearn", "--duration", "60s", "--sink",
                    "null"},
                   out, err);
    return WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                   std::chrono::seconds(40));
  }
  // SIGTERM to the agent; true when it exited 0.
  bool StopAgent() {
    kill(agent_, SIGTERM);
    int status = 0;
    const bool reaped = waitpid(agent_, &status, 0) == agent_;
    agent_ = -1;
    return reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  fs::path dir_;
  pid_t agent_ = -1;
};

TEST_F(AgentE2eTest, LearnsThenAlertsOnUnseenBehaviourOnly) {
  const fs::path config = dir_ / "vigil.yaml";
  const fs::path alerts = dir_ / "alerts.jsonl";
  // Metrics on (any free port): the server's threads must not take the SIGTERM below. The full
  // stream: the workload's calls must reach the models whole however busy the host is (the
  // default, budget mode, streams only a share of the time on a busy host).
  std::ofstream(config) << "agent:\n  learn: 8s\n  window: 50\n  min_program_windows: 3\n"
                           "  syscall_stream: true\n"
                           "metrics:\n  enabled: true\n  listen: 127.0.0.1:0\n";
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  agent_ = Spawn({VIGIL_BINARY, "agent", "--config", config.string(), "--state-dir",
                  dir_.string(), "--duration", "60s", "--sink", "file:" + alerts.string()},
                 out, err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("learning for") != std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  for (int i = 0; i < 10; ++i) {
    pid_t p = 0;
    ASSERT_EQ(RunWorkload("usual", &p), 0);
  }
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(40)))
      << ReadAll(err);
  pid_t usual = 0, odd = 0;
  ASSERT_EQ(RunWorkload("usual", &usual), 0);
  ASSERT_EQ(RunWorkload("odd", &odd), 0);
  // Give the pipeline a moment to score the windows, then stop the agent cleanly.
  ASSERT_TRUE(WaitFor([&] { return ReadAll(alerts).find("\"pid\":" + std::to_string(odd)) !=
                                   std::string::npos; },
                      std::chrono::seconds(30)))
      << "no alert for the odd run (pid " << odd << ")\n" << ReadAll(err);
  kill(agent_, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(agent_, &status, 0), agent_);
  const pid_t agent_pid = agent_;
  agent_ = -1;
  ASSERT_TRUE(WIFEXITED(status)) << ReadAll(err);
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadAll(err);
  const std::string log = ReadAll(err);
  EXPECT_NE(log.find("ALERT " + std::string(VIGIL_WORKLOAD) + " pid " + std::to_string(odd)),
            std::string::npos)
      << log;

  std::ifstream in(alerts);
  std::string line;
  bool odd_alerted = false;
  bool odd_launch_written = false;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["class_uid"] != 2004) {
      // A typed event, written as an OCSF activity event (agent.write_events defaults to on).
      EXPECT_NE(j["actor"]["process"]["pid"].get<pid_t>(), agent_pid)
          << "the agent's own activity must never appear: " << line;
      if (j["class_uid"] == 1007 && j["activity_id"] == 1 && j["process"]["pid"] == odd) {
        odd_launch_written = true;
      }
      continue;
    }
    const auto pid = j["process"]["pid"].get<pid_t>();
    EXPECT_NE(pid, agent_pid) << "the agent's own activity must never appear";
    EXPECT_NE(pid, usual) << "the usual run must raise no alert: " << line;
    if (pid == odd && j["process"]["name"] == VIGIL_WORKLOAD) {
      // (The same pid may also alert as /bin/true after its exec: another program.)
      EXPECT_TRUE(j["vigil"]["anomalous"].get<bool>());
      const std::string expl = j["vigil"]["explanation"].dump();
      if (expl.find("socket") != std::string::npos || expl.find("connect") != std::string::npos ||
          expl.find("mkdir") != std::string::npos || expl.find("rmdir") != std::string::npos ||
          expl.find("setsid") != std::string::npos) {
        odd_alerted = true;
      }
    }
  }
  EXPECT_TRUE(odd_alerted) << "no alert for the odd run naming what it did differently";
  EXPECT_TRUE(odd_launch_written) << "no OCSF Process Activity (Launch) for the odd run's exec";
  EXPECT_TRUE(fs::exists(dir_ / "models" / "baseline.vgm"));

  // The audit log under the state directory verifies against the key the agent made, and
  // records the start, the learned baselines, the alert for the odd run and the stop.
  const fs::path audit_out = dir_ / "audit.out";
  auto audit = [&](const std::string& args) {
    const std::string cmd =
        std::string(VIGIL_BINARY) + " audit " + args + " >" + audit_out.string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  EXPECT_EQ(audit("verify " + (dir_ / "audit").string() + " --key " +
                  (dir_ / "keys" / "vigil.pub").string()),
            0)
      << ReadAll(audit_out);
  ASSERT_EQ(audit("show " + (dir_ / "audit").string() + " --json"), 0) << ReadAll(audit_out);
  const std::string records = ReadAll(audit_out);
  EXPECT_NE(records.find(R"("action":"trained")"), std::string::npos) << records;
  EXPECT_NE(records.find(R"("from":"learning","reason":"learning period over","to":"monitor")"),
            std::string::npos)
      << records;
  EXPECT_NE(records.find(R"("to":"stopped")"), std::string::npos) << records;
  // The embedded policy was loaded and recorded with its version.
  EXPECT_NE(records.find(R"("action":"loaded")"), std::string::npos) << records;
  EXPECT_NE(records.find(R"("version":"sha256:)"), std::string::npos) << records;
  EXPECT_NE(records.find(R"("pid":)" + std::to_string(odd)), std::string::npos)
      << "no decision record for the odd run: " << records;

  // Enforce mode. The baseline just learned in monitor mode is unsigned: the agent refuses to
  // enforce with it, runs in monitor mode and records why. With a TPM (swtpm), it also measures
  // its binary and the baseline, and requires a verified local quote.
  vigil::govern::testing::Swtpm tpm;
  const std::string attestation =
      tpm.ok() ? "attestation:\n  tcti: " + tpm.tcti() + "\n  require: true\n" : "";
  if (!tpm.ok()) std::fprintf(stderr, "note: TPM part skipped: %s\n", tpm.why().c_str());
  const fs::path enforce_config = dir_ / "enforce.yaml";
  std::ofstream(enforce_config) << "mode: enforce\nstate_dir: " << dir_.string()
                                << "\nmetrics:\n  enabled: false\n" << attestation;
  auto run_enforcing = [&]() {
    const pid_t pid = Spawn({VIGIL_BINARY, "agent", "--config", enforce_config.string(),
                             "--state-dir", dir_.string(), "--duration", "2s", "--sink", "null"},
                            out, err);
    int st = 0;
    EXPECT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadAll(err);
    const std::string audit_dir = (dir_ / "audit").string();
    EXPECT_EQ(audit("show " + audit_dir + " --type model-change,mode-change,policy-change --json"),
              0);
    return ReadAll(audit_out);
  };
  std::string changes = run_enforcing();
  EXPECT_NE(changes.find(R"("action":"refused")"), std::string::npos) << changes;
  EXPECT_NE(changes.find("enforce mode refused: model unsigned: " +
                         (dir_ / "models" / "baseline.vgm").string() + " is not signed"),
            std::string::npos)
      << changes;
  EXPECT_NE(ReadAll(err).find("ALERT enforce mode refused"), std::string::npos) << ReadAll(err);
  EXPECT_EQ(changes.find(R"("to":"enforce")"), std::string::npos) << changes;

  // Signed with the host key (the one the audit log uses): enforce mode is entered.
  const std::string sign = std::string(VIGIL_BINARY) + " model sign " +
                           (dir_ / "models" / "baseline.vgm").string() + " --key-dir " +
                           (dir_ / "keys").string() + " >" + audit_out.string() + " 2>&1";
  ASSERT_EQ(std::system(sign.c_str()), 0) << ReadAll(audit_out);
  changes = run_enforcing();
  EXPECT_NE(changes.find(R"("to":"enforce")"), std::string::npos) << changes << ReadAll(err);
  if (tpm.ok()) {
    EXPECT_NE(changes.find("models verified and attested"), std::string::npos) << changes;
    // The measurements the agent made verify from outside too, with an allowlist of the binary
    // and the baseline.
    const fs::path allow = dir_ / "allow.txt", quote = dir_ / "quote.json";
    const std::string sums = "sha256sum " + std::string(VIGIL_BINARY) + " " +
                             (dir_ / "models" / "baseline.vgm").string() + " > " +
                             allow.string();
    ASSERT_EQ(std::system(sums.c_str()), 0);
    const std::string nonce = "5eed5eed5eed5eed";
    const std::string cfg = " --config " + enforce_config.string();
    EXPECT_EQ(std::system((std::string(VIGIL_BINARY) + " attest quote --nonce " + nonce +
                           " --out " + quote.string() + cfg + " 2>/dev/null")
                              .c_str()),
              0);
    const std::string verify = std::string(VIGIL_BINARY) + " attest verify " + quote.string() +
                               " --nonce " + nonce + " --allow " + allow.string() + " >" +
                               audit_out.string() + " 2>&1";
    const int rc = std::system(verify.c_str());
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << ReadAll(audit_out);
  }

  // Policy files must be signed by a trusted key too (the embedded rules used so far are part of
  // the signed binary). Unsigned, then signed by an unknown key: refused, with the file and the
  // reason in the audit log.
  const fs::path rules = dir_ / "rules.yaml";
  std::ofstream(rules) << "- rule: Never\n  desc: d\n  condition: evt.type = openat and fd.name = "
                          "/nonexistent/vigil\n  output: o\n  priority: WARNING\n";
  std::ofstream(enforce_config, std::ios::app) << "policy:\n  files: [" << rules.string() << "]\n";
  changes = run_enforcing();
  EXPECT_NE(changes.find("enforce mode refused: policy unsigned: " + rules.string() +
                         " is not signed"),
            std::string::npos)
      << changes << ReadAll(err);
  EXPECT_NE(changes.find(R"("files":[")" + rules.string() + R"("],"generation":1,"reason":")"
                         R"(unsigned: )"),
            std::string::npos)
      << changes;
  EXPECT_NE(ReadAll(err).find("ALERT enforce mode refused, running in monitor mode: policy "
                              "unsigned"),
            std::string::npos)
      << ReadAll(err);
  const std::string stranger = (dir_ / "stranger").string();
  ASSERT_EQ(std::system((std::string(VIGIL_BINARY) + " keys init --dir " + stranger +
                         " >/dev/null && " + VIGIL_BINARY + " policy sign " + rules.string() +
                         " --key-dir " + stranger + " >/dev/null")
                            .c_str()),
            0);
  changes = run_enforcing();
  EXPECT_NE(changes.find("enforce mode refused: policy unknown-key: " + rules.string() +
                         " is signed by key"),
            std::string::npos)
      << changes << ReadAll(err);

  // Signed by the host key: enforce mode. Altered after signing and reloaded (SIGHUP): the agent
  // drops to monitor mode and records why.
  ASSERT_EQ(std::system((std::string(VIGIL_BINARY) + " policy sign " + rules.string() +
                         " --key-dir " + (dir_ / "keys").string() + " >/dev/null")
                            .c_str()),
            0);
  fs::remove(err);  // (the wait below must not find the previous run's lines)
  agent_ = Spawn({VIGIL_BINARY, "agent", "--config", enforce_config.string(), "--state-dir",
                  dir_.string(), "--duration", "30s", "--sink", "null"},
                 out, err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  EXPECT_EQ(ReadAll(err).find("ALERT enforce mode refused"), std::string::npos) << ReadAll(err);
  std::ofstream(rules, std::ios::app) << "# edited after signing\n";
  kill(agent_, SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return ReadAll(err).find("ALERT enforce mode refused") !=
                                   std::string::npos; },
                      std::chrono::seconds(10)))
      << ReadAll(err);
  kill(agent_, SIGTERM);
  ASSERT_EQ(waitpid(agent_, &status, 0), agent_);
  agent_ = -1;
  EXPECT_EQ(audit("show " + (dir_ / "audit").string() + " --type mode-change,policy-change --json"),
            0);
  changes = ReadAll(audit_out);
  EXPECT_NE(changes.find(R"("from":"enforce","reason":"policy reloaded (SIGHUP); enforce mode )"
                         R"(refused: policy altered: )" + rules.string()),
            std::string::npos)
      << changes << ReadAll(err);
  EXPECT_NE(changes.find(R"("generation":2,"reason":"altered: )"), std::string::npos) << changes;
  if (tpm.ok()) {
    // The policy file was measured at start and at the reload (and, trusted at start, was in
    // the allowlist of the local quote that let the agent enter enforce mode).
    const std::string events = ReadAll(dir_ / "attest" / "events.json");
    EXPECT_NE(events.find(R"("kind": "policy")"), std::string::npos) << events;
    EXPECT_NE(events.find(rules.string()), std::string::npos) << events;
  }
}

// A child that opens `trigger` every 50 ms and counts its rounds in `counter` (so a frozen one
// is seen to stop and a thawed one to go on).
pid_t SpawnOpener(const fs::path& trigger, const fs::path& counter) {
  const pid_t pid = fork();
  if (pid == 0) {
    for (long round = 1;; ++round) {
      const int fd = open(trigger.c_str(), O_RDONLY);
      if (fd >= 0) close(fd);
      const std::string text = std::to_string(round);
      const int out = open(counter.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (out >= 0) {
        (void)!write(out, text.data(), text.size());
        close(out);
      }
      usleep(50'000);
    }
  }
  return pid;
}

// Kills and reaps the processes in *pids when it goes out of scope.
struct ChildReaper {
  std::vector<pid_t>* pids;
  ~ChildReaper() {
    for (pid_t p : *pids) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  }
};

long Rounds(const fs::path& counter) {
  const std::string s = ReadAll(counter);
  return s.empty() ? 0 : std::stol(s);
}

// GET `path` (default /metrics) from the agent's server (the port it logged): the whole answer.
std::string ScrapeMetrics(const std::string& agent_log, const std::string& path = "/metrics") {
  const std::string marker = "metrics and health on http://127.0.0.1:";
  const size_t at = agent_log.find(marker);
  if (at == std::string::npos) return "";
  const int port = std::atoi(agent_log.c_str() + at + marker.size());
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!write(fd, req.data(), req.size());
    char buf[4096];
    ssize_t n = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) body.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return body;
}

// The agent carries out what the policy decides: in enforce mode (a tiny rules file, the
// baseline learned and signed by the agent itself) it kills one spawned process and freezes
// and cuts off the network of another (two rules on one event) that open their trigger files;
// the ledger and the audit log show each action; `vigil enforcement rollback` thaws the frozen
// one and lets it out of the Vigil cgroup. In monitor mode the same decisions act on nothing.
// The signal thread blocks until a signal comes (no periodic wake-ups): SIGHUP still reloads at
// once, again and again, and SIGTERM stops the agent cleanly, each well within the deadlines.
TEST_F(AgentE2eTest, SignalsAreHandledPromptlyByTheBlockingSignalThread) {
  const fs::path config = dir_ / "vigil.yaml";
  std::ofstream(config) << "agent:\n  learn: 1h\n  syscall_stream: false\n"
                           "metrics:\n  enabled: true\n  listen: 127.0.0.1:0\n";
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  agent_ = Spawn({VIGIL_BINARY, "agent", "--config", config.string(), "--state-dir",
                  dir_.string(), "--duration", "120s", "--sink", "null"},
                 out, err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("learning for") != std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  const std::string reloaded = "SIGHUP: reloaded filters and event set";
  for (int n = 1; n <= 3; ++n) {
    kill(agent_, SIGHUP);
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string log = ReadAll(err);
          size_t count = 0;
          for (size_t at = log.find(reloaded); at != std::string::npos;
               at = log.find(reloaded, at + 1)) {
            ++count;
          }
          return count >= static_cast<size_t>(n);
        },
        std::chrono::seconds(10)))
        << "SIGHUP " << n << " not handled\n" << ReadAll(err);
  }
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(StopAgent()) << ReadAll(err);
  // The --duration is 120 s: an exit this soon is the SIGTERM's doing.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60)) << ReadAll(err);
  EXPECT_NE(ReadAll(err).find("stopping (signal 15)"), std::string::npos) << ReadAll(err);
}

TEST_F(AgentE2eTest, EnforceModeKillsAndFreezesAndRollbackThaws) {
  const fs::path kill_trigger = dir_ / "kill-me", freeze_trigger = dir_ / "freeze-me";
  std::ofstream(kill_trigger) << "x";
  std::ofstream(freeze_trigger) << "x";
  const fs::path rules = dir_ / "rules.yaml";
  std::ofstream(rules) << "- rule: Kill trigger\n  desc: d\n  condition: evt.type in (open, "
                          "openat) and fd.name = " << kill_trigger.string()
                       << "\n  output: kill trigger opened by %proc.name\n  priority: WARNING\n"
                          "  action: {type: kill, mode: enforce}\n"
                          "- rule: Freeze trigger\n  desc: d\n  condition: evt.type in (open, "
                          "openat) and fd.name = " << freeze_trigger.string()
                       << "\n  output: freeze trigger opened by %proc.name\n  priority: WARNING\n"
                          "  action: {type: freeze, mode: enforce}\n"
                          // A second enforcing rule on the same event: its action is carried
                          // out too, as its own ledger entry.
                          "- rule: Cut off freeze trigger\n  desc: d\n  condition: evt.type in "
                          "(open, openat) and fd.name = " << freeze_trigger.string()
                       << "\n  output: cut off %proc.name\n  priority: WARNING\n"
                          "  action: {type: block-network, mode: enforce}\n";
  const fs::path config = dir_ / "vigil.yaml";
  std::ofstream(config) << "agent:\n  learn: 2s\n  events: [open]\n"
                           "metrics:\n  enabled: true\n  listen: 127.0.0.1:0\n"
                           "policy:\n  mode: enforce\n  stage: enforce-all\n  files: ["
                        << rules.string() << "]\n";
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  std::vector<pid_t> children;
  ChildReaper reaper{&children};
  auto start_agent = [&](const std::string& mode) { return StartAgent(config, mode, out, err); };
  auto stop_agent = [&] { return StopAgent(); };
  const fs::path tmp = dir_ / "cli";
  fs::create_directories(tmp);
  auto vigil = [&](const std::string& args) { return vigil::e2e::RunVigil(tmp, args); };
  const std::string state = " --state-dir " + dir_.string();

  // Monitor mode: decided and recorded (would have enforced), nothing carried out.
  ASSERT_TRUE(start_agent("monitor")) << ReadAll(err);
  const pid_t spared = SpawnOpener(kill_trigger, dir_ / "spared.count");
  children.push_back(spared);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("POLICY Kill trigger") != std::string::npos; },
                      std::chrono::seconds(20)))
      << ReadAll(err);
  const std::string monitor_metrics = ScrapeMetrics(ReadAll(err));
  EXPECT_NE(monitor_metrics.find("vigil_policy_would_enforce_total{rule=\"Kill trigger\"}"),
            std::string::npos)
      << monitor_metrics;
  ASSERT_TRUE(stop_agent()) << ReadAll(err);
  EXPECT_EQ(waitpid(spared, nullptr, WNOHANG), 0) << "monitor mode must not kill";
  EXPECT_EQ(ReadAll(err).find("ENFORCE "), std::string::npos) << ReadAll(err);
  vigil::e2e::CmdResult r = vigil("enforcement list --json" + state);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 0u) << r.out;
  kill(spared, SIGKILL);

  // Enforce mode: the baseline it learns is its own, so it enters enforce mode at once; the
  // rules are signed with the host key the monitor run made.
  r = vigil("policy sign " + rules.string() + " --key-dir " + (dir_ / "keys").string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(start_agent("enforce")) << ReadAll(err);
  const pid_t killee = SpawnOpener(kill_trigger, dir_ / "killee.count");
  const pid_t freezee = SpawnOpener(freeze_trigger, dir_ / "freezee.count");
  children.push_back(freezee);
  int status = 0;
  ASSERT_TRUE(WaitFor([&] { return waitpid(killee, &status, WNOHANG) == killee; },
                      std::chrono::seconds(20)))
      << "the process that opened the kill trigger still runs\n" << ReadAll(err);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_TRUE(WaitFor([&] {
                return ReadAll("/proc/" + std::to_string(freezee) + "/cgroup").find("/vigil/a") !=
                       std::string::npos;
              }, std::chrono::seconds(20)))
      << "the process that opened the freeze trigger was not moved and frozen\n" << ReadAll(err);
  // The process is in the quarantine cgroup before the freeze is confirmed and counted: the
  // counters may trail the move by the time the kernel takes to freeze the cgroup.
  std::string metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        metrics = ScrapeMetrics(ReadAll(err));
        return metrics.find("vigil_enforcement_success_total{action=\"kill\"} 1") !=
                   std::string::npos &&
               metrics.find("vigil_enforcement_success_total{action=\"freeze\"} 1") !=
                   std::string::npos &&
               metrics.find("vigil_enforcement_success_total{action=\"block-network\"} 1") !=
                   std::string::npos;
      },
      std::chrono::seconds(10)))
      << metrics;
  ASSERT_TRUE(stop_agent()) << ReadAll(err);

  // Frozen: its count stands still.
  const long frozen_at = Rounds(dir_ / "freezee.count");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(Rounds(dir_ / "freezee.count"), frozen_at);

  // The ledger.
  r = vigil("enforcement list --json" + state);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  uint64_t freeze_id = 0, block_id = 0;
  bool killed_recorded = false;
  for (const auto& e : nlohmann::json::parse(r.out)) {
    const std::string target = e["target"];
    if (e["action"] == "kill" && target.rfind("pid:" + std::to_string(killee) + "@", 0) == 0) {
      EXPECT_EQ(e["state"], "applied") << e.dump();
      EXPECT_EQ(e["rule"], "Kill trigger");
      killed_recorded = true;
    }
    if (e["action"] == "freeze" && target.rfind("pid:" + std::to_string(freezee) + "@", 0) == 0) {
      EXPECT_EQ(e["state"], "applied") << e.dump();
      EXPECT_EQ(e["mode"], "enforce");
      EXPECT_EQ(e["rule"], "Freeze trigger");
      freeze_id = e["id"];
    }
    if (e["action"] == "block-network" &&
        target.rfind("pid:" + std::to_string(freezee) + "@", 0) == 0) {
      EXPECT_EQ(e["state"], "applied") << e.dump();
      EXPECT_EQ(e["rule"], "Cut off freeze trigger");
      block_id = e["id"];
    }
  }
  EXPECT_TRUE(killed_recorded) << r.out;
  ASSERT_NE(freeze_id, 0u) << r.out;
  ASSERT_NE(block_id, 0u) << "only the strongest rule's action was carried out\n" << r.out;
  EXPECT_LT(freeze_id, block_id) << "the freeze goes first";

  // Rollback thaws it: the count goes on. The block-network keeps it in the Vigil cgroup until
  // it is rolled back too.
  r = vigil("enforcement rollback " + std::to_string(freeze_id) + state);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(WaitFor([&] { return Rounds(dir_ / "freezee.count") > frozen_at + 2; },
                      std::chrono::seconds(5)))
      << "not thawed";
  EXPECT_NE(ReadAll("/proc/" + std::to_string(freezee) + "/cgroup").find("/vigil/a"),
            std::string::npos);
  r = vigil("enforcement rollback " + std::to_string(block_id) + state);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(ReadAll("/proc/" + std::to_string(freezee) + "/cgroup").find("/vigil/a"),
            std::string::npos);

  // The audit log: the agent's actions and the CLI's rollback, one chain under the host key.
  const std::string audit_dir = (dir_ / "audit").string();
  r = vigil("audit verify " + audit_dir + " --key " + (dir_ / "keys" / "vigil.pub").string());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = vigil("audit show " + audit_dir + " --type enforcement,rollback --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("action":"kill")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("actor":"vigil agent")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("result":"rolled-back")"), std::string::npos) << r.out;
}

// Human in the loop through the hub: the agent (enforce mode, a rule that escalates a freeze)
// hands the question to a `vigil hub`; an analyst approves one over the REST API and the agent
// freezes that process; the other is denied and keeps running. Both answers are in the agent's
// audit log with the analyst's name.
TEST_F(AgentE2eTest, EscalationsAreDecidedAtTheHubAndCarriedOutByTheAgent) {
  const fs::path approve_trigger = dir_ / "approve-me", deny_trigger = dir_ / "deny-me";
  std::ofstream(approve_trigger) << "x";
  std::ofstream(deny_trigger) << "x";
  const fs::path rules = dir_ / "rules.yaml";
  for (const auto& [name, trigger] : {std::pair{"Approve trigger", approve_trigger},
                                      std::pair{"Deny trigger", deny_trigger}}) {
    std::ofstream(rules, std::ios::app)
        << "- rule: " << name << "\n  desc: d\n  condition: evt.type in (open, openat) and "
        << "fd.name = " << trigger.string() << "\n  output: " << name
        << " opened by %proc.name\n  priority: WARNING\n  action: {type: escalate, mode: "
           "enforce, proposed: freeze, timeout: 120s, fallback: alert}\n";
  }
  const fs::path config = dir_ / "vigil.yaml";
  std::ofstream(config) << "host: web-1\nagent:\n  learn: 2s\n  events: [open]\n"
                           "metrics:\n  enabled: false\n"
                           "policy:\n  mode: enforce\n  stage: enforce-all\n  files: ["
                        << rules.string() << "]\n";
  const fs::path hub_state = dir_ / "hub";
  const fs::path cli = dir_ / "cli";
  fs::create_directories(cli);
  // Enforce mode needs the rules signed by a trusted key: the host key, made here.
  vigil::e2e::CmdResult keys = vigil::e2e::RunVigil(
      cli, "keys init --dir " + (dir_ / "keys").string() + " && " + VIGIL_BINARY +
               " policy sign " + rules.string() + " --key-dir " + (dir_ / "keys").string());
  ASSERT_EQ(keys.exit_code, 0) << keys.out << keys.err;
  auto token = [&](const std::string& role, const std::string& subject) {
    vigil::e2e::CmdResult r = vigil::e2e::RunVigil(
        cli, "hub token --state-dir " + hub_state.string() + " --role " + role + " --subject " +
                 subject + " --ttl 1h");
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  };
  const std::string analyst = token("analyst", "ana");
  std::ofstream(dir_ / "agent.token") << token("agent", "web-1") << "\n";
  vigil::e2e::Background hub = vigil::e2e::StartVigil(
      {"hub", "--state-dir", hub_state.string(), "--listen", "127.0.0.1:0", "--json"},
      dir_ / "hub.out", dir_ / "hub.err");
  ASSERT_EQ(hub.error, "");
  struct HubStopper {
    vigil::e2e::Background* b;
    ~HubStopper() { vigil::e2e::StopVigil(b->pid); }
  } stopper{&hub};
  const int port = nlohmann::json::parse(hub.ready_line)["port"];
  httplib::Client http("127.0.0.1", port);
  const httplib::Headers auth{{"Authorization", "Bearer " + analyst}};

  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  agent_ = Spawn({VIGIL_BINARY, "agent", "--config", config.string(), "--state-dir",
                  dir_.string(), "--mode", "enforce", "--relearn", "--duration", "90s", "--sink",
                  "hub:http://127.0.0.1:" + std::to_string(port), "--hub-token-file",
                  (dir_ / "agent.token").string()},
                 out, err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(40)))
      << ReadAll(err);
  std::vector<pid_t> children;
  ChildReaper reaper{&children};
  const pid_t approved = SpawnOpener(approve_trigger, dir_ / "approved.count");
  children.push_back(approved);
  const pid_t denied = SpawnOpener(deny_trigger, dir_ / "denied.count");
  children.push_back(denied);

  // The two questions reach the hub; the analyst answers them.
  nlohmann::json pending;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = http.Get("/v1/escalations?host=web-1", auth);
        if (!r || r->status != 200) return false;
        pending = nlohmann::json::parse(r->body)["escalations"];
        return pending.size() == 2;
      },
      std::chrono::seconds(30)))
      << ReadAll(err);
  for (const auto& e : pending) {
    EXPECT_EQ(e["action"], "freeze");
    const bool approve = e["pid"] == approved;
    auto r = http.Post("/v1/escalations/" + std::to_string(e["id"].get<int64_t>()) + "/decision",
                       auth, nlohmann::json{{"decision", approve ? "approve" : "deny"}}.dump(),
                       "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll("/proc/" + std::to_string(approved) + "/cgroup").find("/vigil/a") !=
               std::string::npos;
      },
      std::chrono::seconds(20)))
      << "the approved freeze was not carried out\n"
      << ReadAll(err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("ESCALATION") != std::string::npos &&
                                   ReadAll(err).find("denied (hub:ana)") != std::string::npos; },
                      std::chrono::seconds(20)))
      << ReadAll(err);
  kill(agent_, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(agent_, &status, 0), agent_);
  agent_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadAll(err);
  EXPECT_EQ(ReadAll("/proc/" + std::to_string(denied) + "/cgroup").find("/vigil/a"),
            std::string::npos)
      << "the denied process must not be frozen";
  vigil::e2e::CmdResult r = vigil::e2e::RunVigil(
      cli, "audit show " + (dir_ / "audit").string() + " --type escalation --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("event":"approved")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("event":"denied")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("by":"hub:ana")"), std::string::npos) << r.out;
}

// `vigil agent --config` with `text` as the file: the exit status and what it printed.
std::pair<int, std::string> AgentWithConfig(const std::string& text, fs::path* config) {
  *config = fs::temp_directory_path() / ("vigil-bad-" + std::to_string(getpid()) + ".yaml");
  std::ofstream(*config) << text;
  const std::string cmd = std::string(VIGIL_BINARY) + " agent --config " + config->string() +
                          " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = pclose(p);
  fs::remove(*config);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(AgentConfigE2eTest, BadConfigExitsTwoNamingFileLineAndKey) {
  fs::path config;
  auto [rc, out] = AgentWithConfig("agent:\n  learn: 5m\n  events: [exec, nope]\n", &config);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find(config.filename().string() + ":3:"), std::string::npos) << out;
  EXPECT_NE(out.find("agent.events[1]"), std::string::npos) << out;

  std::tie(rc, out) = AgentWithConfig("policy:\n  enforcement_queue: 0\n", &config);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find(config.filename().string() +
                     ":2:22: policy.enforcement_queue: expected an integer in 1..65536, got 0"),
            std::string::npos)
      << out;
}

// Runs `prog` through sh (which execs it in place): 0 when it ran, 126 when the exec failed
// (e.g. EPERM from the gate).
int RunProgram(const fs::path& prog) {
  const int rc = std::system((prog.string() + " 2>/dev/null").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The value of the first sample of `metrics` whose line starts with `series` ("" when none).
double Sample(const std::string& metrics, const std::string& series) {
  const size_t at = metrics.find(series + " ");
  return at == std::string::npos ? -1 : std::atof(metrics.c_str() + at + series.size() + 1);
}

// The fanotify gate in the agent (agent.gate): an exec of a program on a watched tmpfs is
// allowed and counted as would-have-enforced in monitor mode, denied (EPERM: sh exits 126) in
// enforce mode,
// with the decision in the metrics and the audit log. A bad gate config exits 2 naming it.
TEST_F(AgentE2eTest, GateDeniesExecInEnforceModeAndCountsItInMonitorMode) {
  const fs::path gated = dir_ / "gated";
  fs::create_directories(gated);
  ASSERT_EQ(mount("tmpfs", gated.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{gated};
  const fs::path prog = gated / "tool";
  fs::copy_file("/bin/true", prog);
  fs::permissions(prog, fs::perms::owner_all);
  const fs::path rules = dir_ / "rules.yaml";
  const std::string deny_rule =
      "- rule: No tools from gated\n  desc: d\n  condition: evt.type = execve and proc.exepath "
      "startswith " + gated.string() + "/\n  output: exec of %proc.exepath by %proc.pname\n"
      "  priority: WARNING\n  action: {type: deny, mode: enforce}\n";
  std::ofstream(rules) << deny_rule;
  const fs::path config = dir_ / "vigil.yaml";
  std::ofstream(config) << "agent:\n  learn: 2s\n  events: [open]\n  gate:\n    watch: ["
                        << gated.string() << "]\n"
                        << "metrics:\n  enabled: true\n  listen: 127.0.0.1:0\n"
                           "policy:\n  mode: enforce\n  stage: enforce-all\n  files: ["
                        << rules.string() << "]\n";
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  auto start_agent = [&](const std::string& mode) { return StartAgent(config, mode, out, err); };
  auto stop_agent = [&] { return StopAgent(); };
  const std::string would = "vigil_gate_would_have_enforced_total{gate=\"fanotify\"}";
  const std::string denied = "vigil_gate_decisions_total{gate=\"fanotify\",outcome=\"deny\"}";

  // Monitor mode: the exec runs, counted as would-have-enforced.
  ASSERT_TRUE(start_agent("monitor")) << ReadAll(err);
  EXPECT_NE(ReadAll(err).find("gate: holding exec of files on 1 path(s)"), std::string::npos)
      << ReadAll(err);
  EXPECT_EQ(RunProgram(prog), 0);
  std::string metrics = ScrapeMetrics(ReadAll(err));
  EXPECT_EQ(Sample(metrics, would), 1) << metrics;
  EXPECT_LE(Sample(metrics, denied), 0) << metrics;
  // A SIGHUP reload reaches the gate: rules that no longer match that program are in force.
  std::ofstream(rules) << "- rule: No other tools\n  desc: d\n  condition: evt.type = execve "
                          "and proc.exepath = " << gated.string()
                       << "/other\n  output: x\n  priority: WARNING\n"
                          "  action: {type: deny, mode: enforce}\n";
  kill(agent_, SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("(generation 2)") != std::string::npos; },
                      std::chrono::seconds(10)))
      << ReadAll(err);
  EXPECT_EQ(RunProgram(prog), 0);
  metrics = ScrapeMetrics(ReadAll(err));
  EXPECT_EQ(Sample(metrics, would), 1) << metrics;
  ASSERT_TRUE(stop_agent()) << ReadAll(err);
  EXPECT_NE(ReadAll(err).find("gate: 2 calls: 0 denied, 1 would have been denied"),
            std::string::npos)
      << ReadAll(err);
  std::ofstream(rules) << deny_rule;

  // Enforce mode (the rules signed by the host key the first run made): denied.
  const fs::path tmp = dir_ / "cli";
  fs::create_directories(tmp);
  vigil::e2e::CmdResult r = vigil::e2e::RunVigil(
      tmp, "policy sign " + rules.string() + " --key-dir " + (dir_ / "keys").string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(start_agent("enforce")) << ReadAll(err);
  // Enforce mode is entered when the learned baseline is in place (around "detection started").
  EXPECT_TRUE(WaitFor([&] { return RunProgram(prog) == 126; }, std::chrono::seconds(20)))
      << ReadAll(err);
  metrics = ScrapeMetrics(ReadAll(err));
  EXPECT_GE(Sample(metrics, denied), 1) << metrics;
  ASSERT_TRUE(stop_agent()) << ReadAll(err);
  r = vigil::e2e::RunVigil(tmp, "audit show " + (dir_ / "audit").string() +
                                    " --type decision --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"gate\":\"fanotify\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("No tools from gated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"policy_version\":\"sha256:"), std::string::npos) << r.out;

  // Bad gate configs exit 2 naming the place: a malformed deadline (file:line:key), a path that
  // holds vigil's own executable.
  const fs::path bad = dir_ / "bad.yaml";
  std::ofstream(bad) << "agent:\n  gate:\n    deadline: 5 parsecs\n";
  r = vigil::e2e::RunVigil(tmp, "agent --config " + bad.string() + " --state-dir " +
                                    dir_.string() + " --duration 1s --sink null");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(bad.string() + ":3:15: agent.gate.deadline"), std::string::npos) << r.err;
  std::ofstream(bad) << "agent:\n  gate:\n    watch: ["
                     << fs::path(VIGIL_BINARY).parent_path().string() << "]\n";
  r = vigil::e2e::RunVigil(tmp, "agent --config " + bad.string() + " --state-dir " +
                                    dir_.string() + " --duration 1s --sink null");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("agent.gate"), std::string::npos) << r.err;
}

// Enforce mode with attestation.require falls back to monitor mode, and says so (ALERT in the
// log, the mode-change record's reason, /healthz and `vigil status`, the vigil_agent_mode and
// vigil_enforce_refused metrics), when the local attestation fails before enforcement is
// enabled: its measurement log edited (replaying it no longer gives the quoted PCR), a TPM that
// cannot be reached at start, and a TPM that goes away while the agent learns. With nothing tampered with, the same config enters enforce mode (the control).
TEST_F(AgentE2eTest, EnforceFallsBackToMonitorWhenLocalAttestationFails) {
  vigil::govern::testing::Swtpm tpm;
  if (!tpm.ok()) GTEST_SKIP() << tpm.why();
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err", tmp = dir_ / "cli";
  fs::create_directories(tmp);
  auto config_for = [&](const std::string& tcti) {
    const fs::path config = dir_ / "enforce.yaml";
    std::ofstream(config) << "mode: enforce\nstate_dir: " << dir_.string()
                          << "\nagent:\n  learn: 3s\n  window: 50\n  min_program_windows: 3\n"
                             "metrics:\n  enabled: true\n  listen: 127.0.0.1:0\n"
                             "attestation:\n  tcti: "
                          << tcti << "\n  require: true\n";
    return config;
  };
  // Runs the agent (relearning) until detection starts; `while_learning` runs once it learns.
  auto run = [&](const std::string& tcti, const std::function<void()>& while_learning) {
    fs::remove(err);
    agent_ = Spawn({VIGIL_BINARY, "agent", "--config", config_for(tcti).string(), "--relearn",
                    "--duration", "60s", "--sink", "null"},
                   out, err);
    EXPECT_TRUE(WaitFor([&] { return ReadAll(err).find("learning for") != std::string::npos; },
                        std::chrono::seconds(30)))
        << ReadAll(err);
    if (while_learning) while_learning();
    for (int i = 0; i < 5; ++i) {
      pid_t p = 0;
      EXPECT_EQ(RunWorkload("usual", &p), 0);
    }
    EXPECT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                        std::chrono::seconds(30)))
        << ReadAll(err);
  };
  // The last mode change in the audit log, after the agent stopped.
  auto last_mode_change = [&]() -> nlohmann::json {
    EXPECT_TRUE(StopAgent()) << ReadAll(err);
    const auto r = vigil::e2e::RunVigil(tmp, "audit show " + (dir_ / "audit").string() +
                                                 " --type mode-change --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json last;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.dump().find(R"("from":"learning")") != std::string::npos) {
        last = j;
      }
    }
    return last;
  };
  // Every place that must say that enforce mode was refused, and why.
  auto expect_refused = [&](const std::string& why) {
    SCOPED_TRACE(why);
    const std::string log = ReadAll(err);
    EXPECT_NE(log.find("ALERT enforce mode refused, running in monitor mode: " + why),
              std::string::npos)
        << log;
    const std::string metrics = ScrapeMetrics(log);
    EXPECT_NE(metrics.find("vigil_enforce_refused 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("vigil_agent_mode{mode=\"monitor\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("vigil_agent_mode{mode=\"enforce\"} 0"), std::string::npos) << metrics;
    const std::string health = ScrapeMetrics(log, "/healthz");
    const auto body = nlohmann::json::parse(health.substr(std::min(health.find("\r\n\r\n"),
                                                                   health.size())),
                                            nullptr, false);
    ASSERT_TRUE(body.is_object()) << health;
    EXPECT_EQ(body.value("mode", ""), "monitor") << health;
    EXPECT_EQ(body.value("enforce_refused", "").rfind(why, 0), 0u) << health;
    const std::string marker = "metrics and health on http://";
    const size_t at = log.find(marker);
    ASSERT_NE(at, std::string::npos);
    const std::string address = log.substr(at + marker.size(),
                                           log.find('/', at + marker.size()) - at - marker.size());
    const auto status = vigil::e2e::RunVigil(tmp, "status --address " + address);
    EXPECT_NE(status.out.find("mode:              monitor"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("enforce refused:   " + why), std::string::npos) << status.out;
    // The default event set: the syscall stream under its CPU budget, shown and exported.
    EXPECT_NE(status.out.find("syscall stream:    budget, "), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("(budget 1.00 %)"), std::string::npos) << status.out;
    EXPECT_NE(metrics.find("vigil_syscall_stream_mode{mode=\"budget\"} 1"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("vigil_syscall_stream_budget 0.01"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("vigil_syscall_stream_switches_total{to=\"off\"} "),
              std::string::npos)
        << metrics;
    const nlohmann::json change = last_mode_change();
    EXPECT_EQ(change.dump().find(R"("to":"enforce")"), std::string::npos) << change.dump();
    EXPECT_NE(change.dump().find(R"("to":"monitor")"), std::string::npos) << change.dump();
    EXPECT_NE(change.dump().find("enforce mode refused: " + why), std::string::npos)
        << change.dump();
  };

  // The control: nothing tampered with, enforce mode.
  run(tpm.tcti(), nullptr);
  const std::string metrics = ScrapeMetrics(ReadAll(err));
  EXPECT_NE(metrics.find("vigil_agent_mode{mode=\"enforce\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("vigil_enforce_refused 0"), std::string::npos) << metrics;
  const nlohmann::json entered = last_mode_change();
  EXPECT_NE(entered.dump().find(R"("to":"enforce")"), std::string::npos) << entered.dump();
  EXPECT_NE(entered.dump().find("models verified and attested"), std::string::npos)
      << entered.dump();

  // The measurement log edited while the agent learns (the start event's digest replaced, as
  // someone hiding what ran would): replaying it no longer gives the PCR the TPM quotes. (The
  // PCR itself cannot be extended behind the agent's back here: swtpm serves one connection at
  // a time, and the agent keeps its own open.)
  run(tpm.tcti(), [&] {
    const fs::path events = dir_ / "attest" / "events.json";
    auto doc = nlohmann::json::parse(ReadAll(events), nullptr, false);
    ASSERT_TRUE(doc.is_object() && doc["events"].is_array() && !doc["events"].empty())
        << ReadAll(events);
    doc["events"][0]["digest"] = std::string(64, 'e');
    std::ofstream(events) << doc.dump(2);
  });
  expect_refused("local attestation failed (replay-mismatch)");

  // A TPM that does not answer at start (nothing listens on the port).
  run("swtpm:host=127.0.0.1,port=1", nullptr);
  expect_refused("attestation: ");

  // The TPM goes away while the agent learns: the learned baseline cannot be measured.
  run(tpm.tcti(), [&] { tpm.Stop(); });
  expect_refused("attestation: ");
}

}  // namespace
