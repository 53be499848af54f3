#include "apps/vigil/gate_wiring.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "apps/vigil/artifact_trust.h"
#include "apps/vigil/audit_trail.h"
#include "audit/canonical_json.h"
#include "audit/payloads.h"
#include "core/log.h"
#include "enrich/proc_parse.h"
#include "model/loader.h"
#include "policy/fields.h"

namespace vigil::app {
namespace {

constexpr size_t kCommMax = 15;  // the kernel's TASK_COMM_LEN - 1

std::string_view BaseName(std::string_view path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Enforce mode's signature check of what the gate loaded from disk; the refusal ("" when every
// file is trusted).
// `files` holds the bytes the rules and the model were loaded from: those are checked.
std::string CheckGateArtifacts(const GateFlags& f, const core::VigilConfig& config,
                               const model::Model* model, AuditTrail* audit,
                               const ArtifactFiles& files) {
  std::vector<ModelArtifact> models;
  if (model != nullptr) models.push_back({f.model, model->name(), model->version()});
  return CheckEnforceArtifacts(f.trusted_keys.empty() ? config.trusted_keys : f.trusted_keys,
                               f.policies, models, audit, &files);
}

}  // namespace

GateDeciderAdapter::GateDeciderAdapter(enforce::DecisionGate* gate, size_t max_ancestors)
    : gate_(gate), max_ancestors_(max_ancestors), users_(&system_users_, 256) {
  Refit(gate->rules());
}

void GateDeciderAdapter::Refit(std::shared_ptr<const enforce::GateRules> rules) {
  needs_ = NeedsOfRules(*rules->rules, max_ancestors_);
  // The model's verdicts carry the uid of the process they score.
  fitted_verdicts_ = gate_->has_verdicts();
  if (fitted_verdicts_) needs_.uid = true;
  if (recorder_ != nullptr) needs_.exe = needs_.uid = true;  // its lines carry both
  needs_of_ = std::move(rules);
}

void GateDeciderAdapter::set_recorder(GateCallRecorder* recorder) {
  recorder_ = recorder;
  if (recorder != nullptr) needs_.exe = needs_.uid = true;  // its lines carry both
}

double GateDeciderAdapter::ProcSyscallsPerCall() const {
  return calls_ == 0 ? 0.0
                     : static_cast<double>(cache_.stats().syscalls) / static_cast<double>(calls_);
}

sensor::GateAnswer GateDeciderAdapter::Decide(const sensor::GateCall& call,
                                              sensor::CallControl* control) {
  // Our code does not throw; a library it calls may (an allocation, the model's runtime). A
  // decision that throws gets the fallback the watchdog would give it, at once, counted and
  // recorded as a fallback (reason "error"): the call is answered and counted once, and the gate
  // thread goes on with the next one.
  std::string failed;
  try {
    return DecideOrThrow(call, control);
  } catch (const std::exception& e) {
    failed = e.what();
  } catch (...) {
    failed = "an exception that is not a std::exception";
  }
  event_ = call.event;  // what Answered records (the throw may have come before it was set)
  decision_ =
      gate_->DecisionFailed(control->fallback() == sensor::GateAnswer::kDeny, std::move(failed));
  return decision_.deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
}

sensor::GateAnswer GateDeciderAdapter::DecideOrThrow(const sensor::GateCall& call,
                                                     sensor::CallControl* control) {
  // An enforce-mode gate held back to monitor mode (the agent's preconditions) denies nothing,
  // not even by its watchdog's fallback.
  if (gate_->mode() == enforce::GateMode::kMonitor) control->SetFallback(sensor::GateAnswer::kAllow);
  ++calls_;
  // The rules in force, read once: what is read of the process is what they need.
  deciding_.store(nullptr);
  std::shared_ptr<const enforce::GateRules> rules = gate_->rules();
  // The watchdog's deadline fallback for this call is recorded with these rules' version.
  deciding_.store(rules);
  // (A model given to the gate after it started also changes what is read.)
  if (rules != needs_of_ || gate_->has_verdicts() != fitted_verdicts_) Refit(rules);
  event_ = call.event;
  in_.event = &event_;
  const bool exec = call.event.kind == core::EventKind::kProcessExec;
  // fanotify reports thread group ids; seccomp, the calling thread's.
  const bool tgid = call.event.source == core::EventSource::kFanotify;
  if (cache_.Describe(static_cast<int32_t>(call.event.proc.tid), needs_, exec, &event_, &in_,
                      tgid)) {
    if (needs_.uid) in_.user_name = users_.NameOf(event_.proc.uid);
  } else {  // the process is gone: what the sensor said of it
    in_.argv.clear();
    in_.ancestors.clear();
    in_.user_name.clear();
  }
  if (exec) {
    event_.proc.exe = call.event.path;
    event_.proc.comm.assign(BaseName(call.event.path).substr(0, kCommMax));
    in_.argv = call.argv;
  }
  if (recorder_ != nullptr) recorder_->Record(event_);
  decision_ = gate_->Decide(std::move(rules), in_, control->deadline_ns(), [control](bool deny) {
    control->SetFallback(deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow);
  });
  return decision_.deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
}

void GateDeciderAdapter::OnFallback(const sensor::GateCall& call, sensor::GateAnswer answer,
                                    sensor::GateFallbackCause cause) {
  // The deadline's fallback was armed by the decision under way (or its rules' absence): its
  // rules, even when a reload replaced them since (the call it answers is the one being decided:
  // one at a time, and deciding_ is reset only when the next starts).
  std::shared_ptr<const enforce::GateRules> rules;
  if (cause == sensor::GateFallbackCause::kDeadline) rules = deciding_.load();
  enforce::FallbackReason why = enforce::FallbackReason::kDeadline;
  switch (cause) {
    case sensor::GateFallbackCause::kDeadline:
      why = enforce::FallbackReason::kDeadline;
      break;
    case sensor::GateFallbackCause::kUnreadable:
      why = enforce::FallbackReason::kUnreadable;
      break;
    case sensor::GateFallbackCause::kQueued:
      why = enforce::FallbackReason::kQueued;
      break;
    case sensor::GateFallbackCause::kStopping:
      why = enforce::FallbackReason::kStopping;
      break;
  }
  gate_->FallbackAnswered(call.event, answer == sensor::GateAnswer::kDeny, why, rules.get());
}

sensor::GateAnswer GateDeciderAdapter::UndecidedAnswer(sensor::GateAnswer gate_fallback) {
  // A gate in monitor mode (or held back to it) denies nothing, as in Decide.
  return gate_->mode() == enforce::GateMode::kMonitor ? sensor::GateAnswer::kAllow : gate_fallback;
}

void GateDeciderAdapter::Late(const sensor::GateCall&, sensor::GateAnswer) {
  // The watchdog's answer stands, and is the one counted as the call's (OnFallback); the
  // discarded decision is counted as late, once.
  gate_->LateDecision();
}

void GateDeciderAdapter::Answered(const sensor::GateCall&, sensor::GateAnswer) {
  // (Answered follows Decide of the same call on the same thread: event_ is still that call's.)
  gate_->Answered(event_, decision_);
}

std::string FanotifyGateSummary(const sensor::FanotifyGateStats& fs, const enforce::GateStats& gs) {
  return std::to_string(fs.calls) + " calls: " + std::to_string(fs.denied) + " denied, " +
         std::to_string(gs.would_deny) + " would have been denied (monitor), " +
         std::to_string(gs.fallbacks) + " fallbacks";
}

namespace {

// The call's member of a gate record: {"addr","comm","path","pid","port","type"} as present.
void WriteGateCall(const core::Event& e, audit::CanonicalWriter* w) {
  const bool net = !e.net.daddr.empty();
  w->BeginObject();
  if (net) {
    w->Key("addr");
    w->String(e.net.daddr);
  }
  if (!e.proc.comm.empty()) {
    w->Key("comm");
    w->String(e.proc.comm);
  }
  if (!net && !e.path.empty()) {
    w->Key("path");
    w->String(e.path);
  }
  w->Key("pid");
  w->Uint(e.proc.pid);
  if (net) {
    w->Key("port");
    w->Uint(e.net.dport);
  }
  w->Key("type");
  w->String(policy::EventTypeView(e));
  w->EndObject();
}

}  // namespace

void WriteGateRecordPayload(const enforce::GateRecord& r, audit::CanonicalWriter* w) {
  // In key order: call, fallback_reason, gate, policy_version.
  audit::ExtraMember extra[4];
  size_t n = 0;
  if (r.event != nullptr) {
    extra[n++] = {"call", [&r](audit::CanonicalWriter* cw) { WriteGateCall(*r.event, cw); }};
  }
  if (r.kind == enforce::GateRecord::Kind::kFallback) {
    extra[n++] = {"fallback_reason", [&r](audit::CanonicalWriter* cw) {
                    cw->String(enforce::FallbackReasonName(r.reason));
                  }};
  }
  extra[n++] = {"gate", [&r](audit::CanonicalWriter* cw) { cw->String(r.gate); }};
  if (!r.policy_version.empty()) {
    extra[n++] = {"policy_version",
                  [&r](audit::CanonicalWriter* cw) { cw->String(r.policy_version); }};
  }
  audit::WriteDecisionPayload(r.decision, r.mode, std::span(extra, n), w);
}

enforce::RecordFn AuditGateRecords(AuditTrail* trail) {
  if (trail == nullptr) return {};
  return [trail](const enforce::GateRecord& r) {
    // Rendered straight from the values (no nlohmann::json tree): this runs on the deciding
    // thread of every recorded call.
    thread_local std::string payload;
    payload.clear();
    {
      audit::CanonicalWriter w(&payload);
      WriteGateRecordPayload(r, &w);
    }
    trail->AppendCanonical(r.kind == enforce::GateRecord::Kind::kFallback
                               ? audit::RecordType::kFallback
                               : audit::RecordType::kDecision,
                           payload);
  };
}

void ReportGatePriority(std::string_view command, int asked, const core::Status& applied,
                        nlohmann::json* j) {
  (*j)["realtime_priority"] = applied.ok() ? asked : 0;
  if (applied.ok()) return;
  (*j)["realtime_priority_error"] = applied.message();
  std::fprintf(stderr,
               "vigil %.*s: warning: the gate runs at normal priority (--realtime-priority %d "
               "refused: %s); held calls may wait longer on a loaded host\n",
               static_cast<int>(command.size()), command.data(), asked,
               applied.message().c_str());
}

nlohmann::json GateStageSummary(const sensor::GateStageTimes& times) {
  nlohmann::json j = nlohmann::json::object();
  if (!times.enabled()) return j;
  using S = sensor::GateStageTimes;
  for (const S::Stage s : {S::kReceive, S::kDecide, S::kAnswer}) {
    const core::Histogram::Snapshot snap = times.histogram(s)->Read();
    nlohmann::json st = {{"calls", snap.count}};
    if (snap.count > 0) {
      st["p50_us"] = core::Histogram::Quantile(snap, 0.5) * 1e6;
      st["p99_us"] = core::Histogram::Quantile(snap, 0.99) * 1e6;
    }
    j[std::string(S::Name(s))] = std::move(st);
  }
  return j;
}

void AddGateFlags(CLI::App* cmd, GateFlags* f) {
  cmd->add_option("--policy", f->policies,
                  "Rules file (Falco format, docs/policy.md); repeat to load several in order. "
                  "Without one, every call is allowed and counted")
      ->allow_extra_args(false)  // one file per --policy: `--policy F -- PROG -x` ends at F
      ->check(CLI::ExistingFile);
  cmd->add_option("--mode", f->mode,
                  "enforce: deny rules that say mode: enforce deny; monitor: allow everything and "
                  "count what would have been denied")
      ->capture_default_str()
      ->check(CLI::IsMember({"monitor", "enforce"}));
  cmd->add_option("--deadline", f->deadline,
                  "Per-call decision deadline (100us..10s, e.g. 5ms); a call not decided by then "
                  "gets its fallback")
      ->capture_default_str();
  cmd->add_option("--fallback", f->fallback,
                  "Answer for a call whose decision misses the deadline before any rule is at "
                  "stake (rules' own fallbacks apply otherwise)")
      ->capture_default_str()
      ->check(CLI::IsMember({"allow", "deny"}));
  cmd->add_option("--config", f->config, "Config file (state_dir, logging)")->capture_default_str();
  cmd->add_option("--audit", f->audit_dir,
                  "Record denials, alerts and fallbacks in the audit log in DIR (without DIR: "
                  "<state_dir>/audit)")
      ->expected(0, 1);
  AddAuditKeyFlags(cmd, &f->audit_key, &f->audit_fsync);
  cmd->add_option("--trusted-key", f->trusted_keys,
                  "Public key (minisign format) whose signatures (FILE.minisig) make --policy "
                  "files trusted in enforce mode; repeatable (default: the config's "
                  "trusted_keys). An unsigned or altered file makes the gate run in monitor mode")
      ->allow_extra_args(false);
  cmd->add_option("--model", f->model,
                  "Model file for rules on ml.* fields: a system-call sequence model (vigil train "
                  "--model-type sequence) scoring each process's sequence of gated calls "
                  "(docs/gates.md); signed like --policy in enforce mode")
      ->check(CLI::ExistingFile);
  cmd->add_option("--realtime-priority", f->realtime_priority,
                  "SCHED_FIFO priority of the gate's threads, so that a held call does not wait "
                  "for a core behind the host's other work (1..99; 0: normal scheduling). A host "
                  "that refuses it gets a warning and a gate at normal priority")
      ->capture_default_str()
      ->check(CLI::Range(0, 99));
  cmd->add_option("--record-calls", f->record_calls,
                  "Write every decided call to FILE as an event line, the training data of a "
                  "gate model (vigil train --model-type sequence --dataset jsonl; docs/gates.md)");
}

core::Result<GateSetup> SetupGate(const GateFlags& f, const CLI::App& cmd, std::string_view command,
                                  std::string_view gate_name, const std::string& start_reason) {
  VIGIL_ASSIGN_OR_RETURN(core::VigilConfig config, core::LoadConfig(f.config));
  VIGIL_RETURN_IF_ERROR(core::InitLogging(config.log.level, config.log.format));
  GateSetup s;
  s.options.name = std::string(gate_name);
  if (!enforce::ParseGateMode(f.mode, &s.options.mode)) {
    return core::InvalidArgument("--mode: expected monitor or enforce, got \"" + f.mode + "\"");
  }
  VIGIL_ASSIGN_OR_RETURN(s.options.deadline_ns, ParseGateDeadline(f.deadline));
  s.options.default_deny = f.fallback == "deny" && s.options.mode == enforce::GateMode::kEnforce;
  ArtifactFiles files;  // each file read once: what is loaded is what enforce mode checks
  if (!f.policies.empty()) {
    VIGIL_ASSIGN_OR_RETURN(s.rules, LoadRulesOnce(f.policies, &files));
    for (const policy::LoadWarning& w : s.rules.warnings()) {
      std::fprintf(stderr, "vigil %.*s: warning: %s\n", static_cast<int>(command.size()),
                   command.data(), w.ToString().c_str());
    }
  }
  std::shared_ptr<const model::Model> gate_model;
  if (!f.model.empty()) {
    auto loaded = LoadGateModel(f.model, &files);
    if (!loaded.has_value()) return loaded.error().WithContext("--model");
    gate_model = std::move(loaded).value();
  }
  if (cmd.count("--audit") > 0) {
    AuditTrailOptions ao;
    ao.dir = f.audit_dir.empty() ? config.state_dir + "/audit" : f.audit_dir;
    ao.key_path = AuditKeyPath(config.state_dir, f.audit_key);
    ao.fsync = f.audit_fsync;
    ao.writer = "vigil " + std::string(command) + " " + VIGIL_VERSION;
    VIGIL_ASSIGN_OR_RETURN(s.audit, AuditTrail::Open(ao));
  }
  if (gate_model && s.audit) {
    s.audit->ModelChange("loaded", f.model, gate_model->name(), gate_model->version(),
                         "the " + std::string(gate_name) + " gate's model", files.Find(f.model));
  }
  if (s.options.mode == enforce::GateMode::kEnforce) {
    s.refusal = CheckGateArtifacts(f, config, gate_model.get(), s.audit.get(), files);
  }
  if (!f.record_calls.empty()) {
    VIGIL_ASSIGN_OR_RETURN(s.recorder, GateCallRecorder::Open(f.record_calls));
  }
  if (gate_model) {
    VIGIL_ASSIGN_OR_RETURN(GateModelServer served, ServeGateModel(gate_model, gate_name));
    s.engine = std::move(served.engine);
    s.verdicts = std::move(served.verdicts);
  }
  std::string reason = start_reason;
  if (!s.refusal.empty()) {
    s.options.mode = enforce::GateMode::kMonitor;
    s.options.default_deny = false;
    std::fprintf(stderr, "vigil %.*s: ALERT enforce mode refused, running in monitor mode: %s\n",
                 static_cast<int>(command.size()), command.data(), s.refusal.c_str());
    reason += "; enforce mode refused: " + s.refusal;
  }
  if (s.audit) {
    s.audit->ModeChange("stopped", enforce::GateModeName(s.options.mode), reason);
  }
  return s;
}

core::Result<std::shared_ptr<const model::Model>> LoadGateModel(const std::string& path,
                                                                ArtifactFiles* files) {
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m, LoadModelOnce(path, files));
  VIGIL_RETURN_IF_ERROR(CheckGateModel(*m, path));
  return std::shared_ptr<const model::Model>(std::move(m));
}

core::Result<GateModelServer> ServeGateModel(std::shared_ptr<const model::Model> m,
                                             std::string_view gate_name,
                                             core::Registry* registry) {
  GateModelServer s;
  model::InferenceEngineOptions eo;
  eo.name = "gate-" + std::string(gate_name);
  eo.registry = registry;
  VIGIL_ASSIGN_OR_RETURN(s.engine,
                         model::InferenceEngine::Create(std::move(m), eo, core::SystemClock::Get()));
  s.verdicts = std::make_unique<EngineVerdictSource>(s.engine.get(), GateModelOptions{});
  return s;
}

core::Result<int64_t> ParseGateDeadline(std::string_view text) {
  auto ns = core::ParseGateDeadline(text);
  if (!ns.has_value()) return core::InvalidArgument("--deadline: " + ns.error().message());
  return ns;
}

}  // namespace vigil::app
