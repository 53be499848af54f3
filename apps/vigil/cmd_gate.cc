// vigil gate: holds execs (and, with --open, opens) of files on the given paths with fanotify
// permission events until the policy has decided, until stopped by SIGINT or SIGTERM
// (docs/gates.md).

#include <signal.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/gate_wiring.h"
#include "enforce/gate.h"
#include "policy/rules.h"
#include "sensor/fanotify_gate.h"

namespace vigil::app {

namespace {

struct GateCmdOptions : GateFlags {
  std::vector<std::string> watch;
  bool open = false;
};

int RunGate(const GateCmdOptions& o, const CLI::App& cmd) {
  auto setup = SetupGate(o, cmd, "gate", "fanotify", "vigil gate started");
  if (!setup.has_value()) return ReportError("gate", setup.error());
  const enforce::GateOptions& go = setup->options;
  std::unique_ptr<AuditTrail>& audit = setup->audit;
  policy::RuleSet& rules = setup->rules;
  const std::string mode(enforce::GateModeName(go.mode));  // monitor after a refusal

  // The signals that stop the gate are taken by sigwait below, never by a handler.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  enforce::DecisionGate gate(&rules, go, setup->verdicts.get(), &core::Registry::Get(),
                             AuditGateRecords(audit.get()));
  GateDeciderAdapter decider(&gate);
  decider.set_recorder(setup->recorder.get());
  sensor::FanotifyGateOptions fo;
  fo.paths = o.watch;
  fo.open = o.open;
  fo.deadline_ns = go.deadline_ns;
  fo.default_fallback = go.default_deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
  fo.realtime_priority = o.realtime_priority;
  fo.metrics = &core::Registry::Get();
  auto started = sensor::FanotifyGate::Start(fo, &decider);
  if (!started.has_value()) {
    if (audit) (void)audit->Close();
    return ReportError("gate", started.error());
  }
  nlohmann::json priority;
  ReportGatePriority("gate", o.realtime_priority, (*started)->priority_status(), &priority);
  std::fprintf(stderr, "vigil gate: holding %s of files on %zu path(s) (%s mode); SIGINT or "
               "SIGTERM stops\n",
               o.open ? "exec and open" : "exec", o.watch.size(), mode.c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  (*started)->Stop();
  if (setup->recorder) {
    if (auto st = setup->recorder->Close(); !st.ok()) ReportError("gate", st);
  }
  const sensor::FanotifyGateStats fs = (*started)->stats();
  const enforce::GateStats gs = gate.stats();
  if (audit) {
    audit->ModeChange(mode, "stopped", "vigil gate stopped by signal " + std::to_string(sig));
    if (auto st = audit->Close(); !st.ok()) return ReportError("gate", st);
  }
  nlohmann::json j = {{"mode", mode},
                      {"deadline_ns", go.deadline_ns},
                      {"calls", fs.calls},
                      {"allowed", fs.allowed},
                      {"denied", fs.denied},
                      {"would_have_denied", gs.would_deny},
                      {"alerts", gs.alerts},
                      {"fallbacks", gs.fallbacks},
                      {"deadline_fallbacks", gs.deadline_fallbacks},
                      {"model_fallbacks", gs.model_fallbacks},
                      {"stopping_fallbacks", gs.stopping_fallbacks},
                      {"late_decisions", gs.late},
                      {"own", fs.own},
                      {"stuck_allowed", fs.stuck_allowed},
                      {"stop_answers", fs.stop_answers},
                      {"read_errors", fs.read_errors},
                      {"stuck_at_stop", fs.stuck_at_stop},
                      {"overflows", fs.overflows},
                      {"proc_syscalls", decider.context_stats().syscalls},
                      {"proc_syscalls_per_call", decider.ProcSyscallsPerCall()},
                      {"stage_us", GateStageSummary((*started)->stage_times())}};
  j.update(priority);
  if (!setup->refusal.empty()) j["enforce_refused"] = setup->refusal;
  if (setup->engine) j["breaker_opened"] = setup->engine->breaker().opened();
  if (setup->recorder) j["recorded_calls"] = setup->recorder->written();
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("vigil gate: %s\n", FanotifyGateSummary(fs, gs).c_str());
  }
  return kExitOk;
}

}  // namespace

RunFn AddGateCommand(CLI::App& root) {
  auto o = std::make_shared<GateCmdOptions>();
  CLI::App* cmd = root.add_subcommand(
      "gate",
      "Hold execs (and opens) of files on the given paths until the policy decides (fanotify "
      "permission events; root); runs until SIGINT/SIGTERM, then answers the events it holds "
      "with the fallback (reason \"stopping\"); the kernel allows those that come after it "
      "stopped (docs/gates.md)");
  cmd->add_option("--watch", o->watch,
                  "A file, or a directory (the files directly in it); repeatable. Never a mount: "
                  "a directory holding vigil itself is refused")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_flag("--open", o->open, "Hold opens too, not only execs");
  AddGateFlags(cmd, o.get());
  cmd->add_flag("--json", o->json, "Print the counts at exit as JSON on stdout");
  return [o, cmd] { return RunGate(*o, *cmd); };
}

}  // namespace vigil::app
