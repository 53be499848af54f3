// vigil run: supervises one program (and everything it starts) through a seccomp
// user-notification gate: its execve/execveat, open/openat/openat2 and connect calls wait for the
// policy's decision (docs/gates.md).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/gate_wiring.h"
#include "audit/payloads.h"
#include "core/config.h"
#include "core/log.h"
#include "enforce/gate.h"
#include "policy/rules.h"
#include "sensor/seccomp_gate.h"

namespace vigil::app {

core::Result<int64_t> ParseGateDeadline(std::string_view text);

namespace {

struct RunOptions {
  std::vector<std::string> policies;
  std::string mode = "enforce";
  std::string deadline = "5ms";
  std::string fallback = "allow";
  std::string config = std::string(core::kDefaultConfigPath);
  std::string audit_dir;
  std::string audit_key;
  std::string audit_fsync = "batch";
  bool json = false;
  std::vector<std::string> argv;
};

std::atomic<pid_t> g_child{0};

// Signals sent to vigil (kill, systemd) go on to the program; signals from the terminal reach the
// program directly (same process group), so they are not sent twice.
void ForwardSignal(int sig, siginfo_t* info, void*) {
  const pid_t child = g_child.load();
  if (child > 0 && info != nullptr && info->si_code <= 0) kill(child, sig);
}

void InstallForwarding() {
  struct sigaction sa {};
  sa.sa_sigaction = ForwardSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
}

int RunRun(const RunOptions& o, const CLI::App& cmd) {
  auto config = core::LoadConfig(o.config);
  if (!config.has_value()) return ReportError("run", config.error());
  if (auto st = core::InitLogging(config->log.level, config->log.format); !st.ok()) {
    return ReportError("run", st);
  }
  enforce::GateOptions go;
  go.name = "seccomp";
  if (!enforce::ParseGateMode(o.mode, &go.mode)) {
    return ReportError("run", core::InvalidArgument("--mode: expected monitor or enforce, got \"" +
                                                    o.mode + "\""));
  }
  auto deadline = ParseGateDeadline(o.deadline);
  if (!deadline.has_value()) return ReportError("run", deadline.error());
  go.deadline_ns = *deadline;
  go.default_deny = o.fallback == "deny" && go.mode == enforce::GateMode::kEnforce;

  policy::RuleSet rules;
  if (!o.policies.empty()) {
    auto loaded = policy::RuleSet::LoadFiles(o.policies);
    if (!loaded.has_value()) return ReportError("run", loaded.error());
    rules = std::move(loaded).value();
    for (const policy::LoadWarning& w : rules.warnings()) {
      std::fprintf(stderr, "vigil run: warning: %s\n", w.ToString().c_str());
    }
  }

  std::unique_ptr<AuditTrail> audit;
  if (cmd.count("--audit") > 0) {
    AuditTrailOptions ao;
    ao.dir = o.audit_dir.empty() ? config->state_dir + "/audit" : o.audit_dir;
    ao.key_path = o.audit_key.empty() ? config->state_dir + "/keys/audit.key" : o.audit_key;
    ao.fsync = o.audit_fsync;
    ao.writer = std::string("vigil run ") + VIGIL_VERSION;
    auto t = AuditTrail::Open(ao);
    if (!t.has_value()) return ReportError("run", t.error());
    audit = std::move(t).value();
    audit->ModeChange("stopped", o.mode, "vigil run of " + o.argv[0]);
  }

  enforce::DecisionGate gate(&rules, go, nullptr, &core::Registry::Get(),
                             AuditGateRecords(audit.get()));
  GateDeciderAdapter decider(&gate);
  sensor::SeccompGateOptions so;
  so.argv = o.argv;
  so.deadline_ns = go.deadline_ns;
  so.default_fallback = go.default_deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
  auto launched = sensor::SeccompGate::Launch(so, &decider);
  if (!launched.has_value()) {
    if (audit) (void)audit->Close();
    return ReportError("run", launched.error());
  }
  sensor::SeccompGate& sg = **launched;
  g_child.store(sg.pid());
  InstallForwarding();
  const sensor::SeccompExit exit = sg.Wait();
  g_child.store(0);
  const sensor::SeccompGateStats ss = sg.stats();
  const enforce::GateStats gs = gate.stats();
  launched->reset();  // stop serving before the audit log closes

  if (exit.exec_errno != 0) {
    std::fprintf(stderr, "vigil run: cannot execute %s: %s\n", o.argv[0].c_str(),
                 std::strerror(exit.exec_errno));
  }
  if (audit) {
    audit->ModeChange(o.mode, "stopped", "program exited with " + std::to_string(exit.exit_code));
    if (auto st = audit->Close(); !st.ok()) ReportError("run", st);
  }
  if (o.json) {
    nlohmann::json j = {{"program", o.argv[0]},
                        {"exit_code", exit.exit_code},
                        {"mode", o.mode},
                        {"deadline_ns", go.deadline_ns},
                        {"calls", ss.calls},
                        {"allowed", ss.allowed},
                        {"denied", ss.denied},
                        {"would_have_denied", gs.would_deny},
                        {"alerts", gs.alerts},
                        {"fallbacks", gs.fallbacks},
                        {"deadline_fallbacks", gs.deadline_fallbacks},
                        {"late_decisions", gs.late},
                        {"unreadable", ss.read_failures},
                        {"vanished", ss.vanished}};
    if (exit.exec_errno != 0) j["exec_error"] = std::strerror(exit.exec_errno);
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  } else if (ss.denied + gs.would_deny + gs.fallbacks + gs.alerts > 0) {
    std::fprintf(stderr,
                 "vigil run: %llu supervised calls: %llu denied, %llu would have been denied "
                 "(monitor), %llu alerts, %llu fallbacks\n",
                 static_cast<unsigned long long>(ss.calls),
                 static_cast<unsigned long long>(ss.denied),
                 static_cast<unsigned long long>(gs.would_deny),
                 static_cast<unsigned long long>(gs.alerts),
                 static_cast<unsigned long long>(gs.fallbacks));
  }
  return exit.exit_code;
}

}  // namespace

core::Result<int64_t> ParseGateDeadline(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "us") scale = 1'000;
  if (unit == "ms") scale = 1'000'000;
  if (unit == "s") scale = 1'000'000'000;
  if (digits == 0 || digits > 6 || scale == 0) {
    return core::InvalidArgument("--deadline: expected a whole number with us, ms or s (e.g. 5ms), "
                                 "got \"" + std::string(text) + "\"");
  }
  const int64_t ns = std::stoll(std::string(text.substr(0, digits))) * scale;
  if (ns < 100'000 || ns > 10'000'000'000) {
    return core::InvalidArgument("--deadline: must be between 100us and 10s, got \"" +
                                 std::string(text) + "\"");
  }
  return ns;
}

RunFn AddRunCommand(CLI::App& root) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = root.add_subcommand(
      "run",
      "Run a program under a seccomp gate: its execve, open and connect calls (and its "
      "children's) wait for the policy; denied calls fail with EPERM (docs/gates.md)");
  cmd->add_option("--policy", o->policies,
                  "Rules file (Falco format, docs/policy.md); repeat to load several in order. "
                  "Without one, every call is allowed and counted")
      ->check(CLI::ExistingFile);
  cmd->add_option("--mode", o->mode,
                  "enforce: deny rules that say mode: enforce deny; monitor: allow everything and "
                  "count what would have been denied")
      ->capture_default_str()
      ->check(CLI::IsMember({"monitor", "enforce"}));
  cmd->add_option("--deadline", o->deadline,
                  "Per-call decision deadline (100us..10s, e.g. 5ms); a call not decided by then "
                  "gets its fallback")
      ->capture_default_str();
  cmd->add_option("--fallback", o->fallback,
                  "Answer for a call whose decision misses the deadline before any rule is at "
                  "stake (rules' own fallbacks apply otherwise)")
      ->capture_default_str()
      ->check(CLI::IsMember({"allow", "deny"}));
  cmd->add_option("--config", o->config, "Config file (state_dir, logging)")->capture_default_str();
  cmd->add_option("--audit", o->audit_dir,
                  "Record denials, alerts and fallbacks in the audit log in DIR (without DIR: "
                  "<state_dir>/audit)")
      ->expected(0, 1);
  AddAuditKeyFlags(cmd, &o->audit_key, &o->audit_fsync);
  cmd->add_flag("--json", o->json,
                "At exit, print the counts (calls, denied, would_have_denied, fallbacks, ...) as "
                "one JSON line on stderr");
  cmd->add_option("program", o->argv, "The program and its arguments, after --: vigil run [OPTIONS] -- PROGRAM [ARGS...]")->required();
  cmd->footer(
      "Exit code: the program's (128+N when killed by signal N; 126/127 when it could not be "
      "started), or 1/2 when vigil itself fails before starting it.");
  return [o, cmd] { return RunRun(*o, *cmd); };
}

}  // namespace vigil::app
