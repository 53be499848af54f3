// vigil run: supervises one program (and everything it starts) through a seccomp
// user-notification gate: its execve/execveat, open/openat/openat2 and connect calls wait for the
// policy's decision (docs/gates.md).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/gate_wiring.h"
#include "audit/payloads.h"
#include "enforce/gate.h"
#include "policy/rules.h"
#include "sensor/seccomp_gate.h"

namespace vigil::app {

namespace {

struct RunOptions : GateFlags {
  std::vector<std::string> argv;
  bool sync_wakeup = true;
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
  auto setup = SetupGate(o, cmd, "run", "seccomp", "vigil run of " + o.argv[0]);
  if (!setup.has_value()) return ReportError("run", setup.error());
  const enforce::GateOptions& go = setup->options;
  std::unique_ptr<AuditTrail>& audit = setup->audit;
  policy::RuleSet& rules = setup->rules;
  const std::string mode(enforce::GateModeName(go.mode));  // monitor after a refusal

  enforce::DecisionGate gate(&rules, go, setup->verdicts.get(), &core::Registry::Get(),
                             AuditGateRecords(audit.get()));
  GateDeciderAdapter decider(&gate);
  decider.set_recorder(setup->recorder.get());
  sensor::SeccompGateOptions so;
  so.argv = o.argv;
  so.deadline_ns = go.deadline_ns;
  so.default_fallback = go.default_deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
  so.realtime_priority = o.realtime_priority;
  so.sync_wakeup = o.sync_wakeup;
  so.metrics = &core::Registry::Get();
  auto launched = sensor::SeccompGate::Launch(so, &decider);
  if (!launched.has_value()) {
    if (audit) (void)audit->Close();
    return ReportError("run", launched.error());
  }
  sensor::SeccompGate& sg = **launched;
  nlohmann::json priority;
  ReportGatePriority("run", o.realtime_priority, sg.priority_status(), &priority);
  priority["sync_wakeup"] = o.sync_wakeup && sg.sync_wakeup_status().ok();
  if (!sg.sync_wakeup_status().ok()) {
    priority["sync_wakeup_error"] = sg.sync_wakeup_status().message();
    spdlog::info("vigil run: the kernel refused {}; held calls are woken the ordinary way",
                 sg.sync_wakeup_status().message());
  }
  g_child.store(sg.pid());
  InstallForwarding();
  const sensor::SeccompExit exit = sg.Wait();
  g_child.store(0);
  const sensor::SeccompGateStats ss = sg.stats();
  const core::Status serve_status = sg.serve_status();
  if (!serve_status.ok()) std::fprintf(stderr, "vigil run: %s\n", serve_status.message().c_str());
  const nlohmann::json stages = GateStageSummary(sg.stage_times());
  const enforce::GateStats gs = gate.stats();
  launched->reset();  // stop serving before the audit log closes
  if (setup->recorder) {
    if (auto st = setup->recorder->Close(); !st.ok()) ReportError("run", st);
  }

  if (exit.exec_errno != 0) {
    std::fprintf(stderr, "vigil run: cannot execute %s: %s\n", o.argv[0].c_str(),
                 std::strerror(exit.exec_errno));
  }
  if (audit) {
    audit->ModeChange(mode, "stopped", "program exited with " + std::to_string(exit.exit_code));
    if (auto st = audit->Close(); !st.ok()) ReportError("run", st);
  }
  if (o.json) {
    nlohmann::json j = {{"program", o.argv[0]},
                        {"exit_code", exit.exit_code},
                        {"mode", mode},
                        {"deadline_ns", go.deadline_ns},
                        {"calls", ss.calls},
                        {"allowed", ss.allowed},
                        {"denied", ss.denied},
                        {"would_have_denied", gs.would_deny},
                        {"alerts", gs.alerts},
                        {"fallbacks", gs.fallbacks},
                        {"deadline_fallbacks", gs.deadline_fallbacks},
                        {"model_fallbacks", gs.model_fallbacks},
                        {"stopping_fallbacks", gs.stopping_fallbacks},
                        {"late_decisions", gs.late},
                        {"unreadable", ss.read_failures},
                        {"vanished", ss.vanished},
                        {"receive_failures", ss.receive_failures},
                        {"proc_syscalls", decider.context_stats().syscalls},
                        {"proc_syscalls_per_call", decider.ProcSyscallsPerCall()},
                        {"stage_us", stages}};
    j.update(priority);
    if (exit.exec_errno != 0) j["exec_error"] = std::strerror(exit.exec_errno);
    if (!serve_status.ok()) j["serve_error"] = serve_status.message();
    if (!setup->refusal.empty()) j["enforce_refused"] = setup->refusal;
    if (setup->engine) j["breaker_opened"] = setup->engine->breaker().opened();
    if (setup->recorder) j["recorded_calls"] = setup->recorder->written();
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

RunFn AddRunCommand(CLI::App& root) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = root.add_subcommand(
      "run",
      "Run a program under a seccomp gate: its execve, open and connect calls (and its "
      "children's) wait for the policy; denied calls fail with EPERM (docs/gates.md)");
  AddGateFlags(cmd, o.get());
  cmd->add_option("--sync-wakeup", o->sync_wakeup,
                  "Ask the kernel to wake the gate's thread on the calling program's CPU and the "
                  "program on the gate's (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6; an older "
                  "kernel refuses it and the gate runs without it: --json says why)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json,
                "At exit, print the counts (calls, denied, would_have_denied, fallbacks, ...) as "
                "one JSON line on stderr");
  cmd->add_option("program", o->argv, "The program and its arguments, after --: vigil run [OPTIONS] -- PROGRAM [ARGS...]")->required();
  cmd->footer(
      "Exit code: the program's (128+N when killed by signal N; 126/127 when it could not be "
      "started), or 1/2 when vigil itself fails before starting it.\n"
      "When the program exits, vigil run stops: calls its remaining processes have pending are "
      "answered with the fallback (counted and audited as fallbacks, reason \"stopping\"); "
      "supervised calls they make after that fail with ENOSYS (the kernel's answer once the "
      "gate's listener is closed). Should the gate's listener fail (vigil says why on stderr; "
      "serve_error with --json), the gate stops the same way while the program runs on.");
  return [o, cmd] { return RunRun(*o, *cmd); };
}

}  // namespace vigil::app
