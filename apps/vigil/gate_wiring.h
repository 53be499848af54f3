#pragma once

// Wires a sensor gate (seccomp, fanotify) to the decision gate: the context rules read about
// the process behind a held call (comm, executable, argv, uid, user, ancestors) comes from /proc,
// the decision from enforce::DecisionGate, and fallbacks and decisions go to the audit log.

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/vigil/artifact_trust.h"
#include "apps/vigil/audit_trail.h"
#include "apps/vigil/gate_context.h"
#include "apps/vigil/gate_model.h"
#include "audit/canonical_json.h"
#include "core/config.h"
#include "enforce/gate.h"
#include "enrich/user_resolver.h"
#include "policy/fields.h"
#include "sensor/fanotify_gate.h"
#include "sensor/gate_call.h"

namespace vigil::app {

// The flags `vigil run` and `vigil gate` share.
struct GateFlags {
  std::vector<std::string> policies;
  std::string mode = "enforce";
  std::string deadline = "5ms";
  std::string fallback = "allow";
  std::string config = std::string(core::kDefaultConfigPath);
  std::string audit_dir;
  std::string audit_key;
  std::string audit_fsync = "batch";
  std::vector<std::string> trusted_keys;  // "" = the config's trusted_keys
  std::string model;                      // "" = no model: ml.* fields absent
  std::string record_calls;               // "" = no recording
  int realtime_priority = core::kDefaultGateRealtimePriority;  // 0 = normal scheduling
  bool json = false;
};
// --policy, --mode, --deadline, --fallback, --config, --audit [DIR], --audit-key, --audit-fsync,
// --trusted-key, --model, --record-calls, --realtime-priority.
void AddGateFlags(CLI::App* cmd, GateFlags* f);

// Reports whether the gate's real-time priority was applied: a warning on stderr ("vigil
// COMMAND: warning: ...") when the host refused it, and "realtime_priority" (the priority in
// force, 0 when refused or off) and "realtime_priority_error" in the --json summary `j`.
void ReportGatePriority(std::string_view command, int asked, const core::Status& applied,
                        nlohmann::json* j);

// The gate's per-stage times (sensor::GateStageTimes) for the --json summary: {"receive":
// {"calls", "p50_us", "p99_us"}, "decide": ..., "answer": ...}, quantiles estimated from the
// histograms' buckets; empty when not timed.
nlohmann::json GateStageSummary(const sensor::GateStageTimes& times);

// What the flags set up: the gate's options, the rules, the audit trail (null without --audit;
// a mode-change record saying `start_reason` is written when it opens).
struct GateSetup {
  enforce::GateOptions options;  // options.mode: the mode the gate runs in (after a refusal)
  policy::RuleSet rules;
  std::unique_ptr<AuditTrail> audit;
  // With --model: the engine and the verdict source the decision gate asks (gate_model.h).
  std::unique_ptr<model::InferenceEngine> engine;
  std::unique_ptr<EngineVerdictSource> verdicts;
  std::unique_ptr<GateCallRecorder> recorder;  // with --record-calls
  // Why enforce mode was refused ("" when it was not asked for or holds): the gate then runs in
  // monitor mode.
  std::string refusal;
};
// Loads the config and rules, starts logging and opens the audit log. Errors name the flag or
// file at fault (rules warnings are printed to stderr, prefixed "vigil COMMAND").
//
// With --model, the model file is loaded (any error names it; a family that does not score
// system-call sequences is refused) and served by an inference engine named "gate-<gate_name>";
// a model-change record "loaded" is written.
//
// Enforce mode's precondition (docs/attestation.md, "Enforce mode"): every --policy file and the
// --model file carry a signature (FILE.minisig) by a trusted key (--trusted-key, else the
// config's trusted_keys). When one does not, or the keys do not load, the gate runs in monitor
// mode: an ALERT line on stderr, a policy-change (or model-change) record "refused" naming the
// file and the reason, and the start's mode-change record says why.
core::Result<GateSetup> SetupGate(const GateFlags& f, const CLI::App& cmd, std::string_view command,
                                  std::string_view gate_name, const std::string& start_reason);

// A gate's model (`--model`, agent.gate.model) read once through `files` (so that enforce mode
// checks the bytes loaded), checked to score system-call sequences (CheckGateModel). Errors name
// the file.
core::Result<std::shared_ptr<const model::Model>> LoadGateModel(const std::string& path,
                                                                ArtifactFiles* files);

// A gate's model served: an inference engine named "gate-<gate_name>" (deadline, circuit breaker,
// verdict cache; its metrics in `registry`, null: the engine's default) and the verdict source
// the decision gate asks (gate_model.h). The source refers to the engine: keep both.
struct GateModelServer {
  std::unique_ptr<model::InferenceEngine> engine;
  std::unique_ptr<EngineVerdictSource> verdicts;
};
core::Result<GateModelServer> ServeGateModel(std::shared_ptr<const model::Model> m,
                                             std::string_view gate_name,
                                             core::Registry* registry = nullptr);

// "5ms", "500us", "1s": 100 µs to 10 s, in ns; kInvalidArgument naming --deadline otherwise.
core::Result<int64_t> ParseGateDeadline(std::string_view text);

// Decides the calls a sensor gate holds with a decision gate. The context of each call's process
// is read from /proc as the rules need it and kept per process (gate_context.h): what the rules
// see is that of an exec as Falco reports an execve (proc.name is the new program's name,
// proc.exepath its path, proc.args the new argv, the ancestors are the caller's parent and up),
// else the caller's, with up to `max_ancestors` ancestors.
class GateDeciderAdapter final : public sensor::GateDecider {
 public:
  // `gate` must outlive the adapter. What is read of each process: what the gate's rules in
  // force use (NeedsOfRules, worked out again when the gate's rules are replaced), plus the uid
  // when the gate has a model (worked out again when it is given one).
  explicit GateDeciderAdapter(enforce::DecisionGate* gate, size_t max_ancestors = 8);

  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* control) override;
  void OnFallback(const sensor::GateCall& call, sensor::GateAnswer answer,
                  sensor::GateFallbackCause cause) override;
  void Late(const sensor::GateCall& call, sensor::GateAnswer decided) override;
  sensor::GateAnswer UndecidedAnswer(sensor::GateAnswer gate_fallback) override;
  void Answered(const sensor::GateCall& call, sensor::GateAnswer answer) override;

  // Every decided call (with its /proc context) is also given to `recorder` (may be null; must
  // outlive the adapter), which adds the executable and uid to what is read.
  void set_recorder(GateCallRecorder* recorder);

  const GateContextNeeds& needs() const { return needs_; }
  // The context cache's counters; read only while no call is being decided (e.g. after the
  // sensor gate stopped).
  const ProcContextCache::Stats& context_stats() const { return cache_.stats(); }
  // /proc system calls per decided call so far (0 before the first).
  double ProcSyscallsPerCall() const;

 private:
  void Refit(std::shared_ptr<const enforce::GateRules> rules);
  // Decide, with what a library it calls may throw let through (Decide catches it).
  sensor::GateAnswer DecideOrThrow(const sensor::GateCall& call, sensor::CallControl* control);

  enforce::DecisionGate* gate_;
  const size_t max_ancestors_;
  GateCallRecorder* recorder_ = nullptr;
  GateContextNeeds needs_;
  std::shared_ptr<const enforce::GateRules> needs_of_;  // the rules needs_ is for
  // The rules the call being decided (or the last one decided) is decided with; null from the
  // start of Decide until it has read the rules in force. Read by OnFallback on the watchdog's
  // thread.
  std::atomic<std::shared_ptr<const enforce::GateRules>> deciding_;
  bool fitted_verdicts_ = false;                        // whether needs_ is for a gate with a model
  ProcContextCache cache_;
  uint64_t calls_ = 0;
  enforce::GateDecision decision_;  // the last call's (Answered, Late)
  // Reused from call to call (one deciding thread): no allocation once grown.
  core::Event event_;
  policy::EvalInput in_;
  enrich::SystemUserResolver system_users_;
  enrich::CachingUserResolver users_;
};

// "N calls: D denied, W would have been denied (monitor), F fallbacks" (the fanotify gate's
// counts at exit: `vigil gate`, `vigil agent`).
std::string FanotifyGateSummary(const sensor::FanotifyGateStats& fs, const enforce::GateStats& gs);

// The audit payload of a gate record, in canonical form (audit/canonical_json.h): the decision's
// fields (audit::DecisionPayload) plus "gate", "policy_version" (when the rules have one), "call"
// ({"type","pid","comm" and "path" or "addr","port"}) and, for fallbacks, "fallback_reason".
void WriteGateRecordPayload(const enforce::GateRecord& r, audit::CanonicalWriter* w);

// A RecordFn that appends gate records to `trail` (decisions as kDecision, fallbacks as
// kFallback); `trail` may be null (nothing recorded) and must outlive the gate.
enforce::RecordFn AuditGateRecords(AuditTrail* trail);

// `vigil gate` (cmd_gate.cc): the fanotify gate as a command. Declared here rather than in
// commands.h, with the other gate wiring.
std::function<int()> AddGateCommand(CLI::App& root);

}  // namespace vigil::app
