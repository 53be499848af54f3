#pragma once

// The fanotify gate run inside `vigil agent` (config `agent.gate`, docs/gates.md "In vigil
// agent"): execs (and, with `open`, opens) of files on the configured paths wait until the policy
// has decided, with the same decision code, context cache, deadline watchdog, metrics
// (gate="fanotify") and audit records as `vigil gate`.
//
// Modes. The gate's mode is `agent.gate.mode`, or the agent's. An enforce-mode gate denies only
// while the agent is in enforce mode (its models and policies verified: SetEnforcementAllowed);
// until then, and in monitor mode, it allows every call and counts what it would have denied
// (vigil_gate_would_have_enforced_total).
//
// Rules: the files of `agent.gate.policy` (a policy of their own: rules files or a bundle, with
// its version), or else the agent's policy in force. Reload (the agent's SIGHUP, or a policy
// rolled out by the hub) puts the new rules in force atomically: a call being decided finishes
// with the rules it started with, every later one uses the new ones, and each decision's audit
// record carries the version of the rules it was made with (policy_version). When the gate's own
// files no longer load, the rules in force stay in force and the error is returned.
//
// Model: with `agent.gate.model`, rules on ml.* fields are decided with a gate model (a system-call
// sequence model scoring each process's gated calls) served through an inference engine named
// "gate-fanotify", with the deadline, circuit breaker and per-rule fallback of `vigil gate
// --model` (gate_wiring.h ServeGateModel, gate_model.h). Without it ml.* fields are absent.
// ReloadModel (the agent's SIGHUP, or a model rolled out by the hub) reads the file again and
// swaps the new model in atomically (InferenceEngine::Swap: a call being scored finishes with the
// model it started with); a file that does not load keeps the model in force. Where the hub
// installs the gate's models (agent.gate.model is the hub sink's model_file), the gate may start
// before the file exists: it runs without a model (ml.* fields absent) until ReloadModel finds a
// model there, which it then starts serving (DecisionGate::SetVerdictSource: calls decided from
// then on are scored).
//
// Safety: the sensor marks the configured files and directories' inodes, never a mount, refuses
// a path that is or holds vigil's own executable, answers from a dedicated thread, and a watchdog
// answers every call whose decision misses its deadline (sensor/fanotify_gate.h).

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "apps/vigil/artifact_trust.h"
#include "apps/vigil/audit_trail.h"
#include "apps/vigil/gate_wiring.h"
#include "core/config.h"
#include "enforce/gate.h"
#include "model/model.h"
#include "policy/engine.h"
#include "sensor/fanotify_gate.h"

namespace vigil::app {

class AgentGate {
 public:
  // Starts the gate (config.agent.gate.watch must be non-empty). `policy` is the agent's policy
  // in force (null when policy.enabled is false). `audit` must outlive the gate (may be null).
  // `model`, when given, is used instead of loading agent.gate.model (tests: a model forced to
  // run late); else agent.gate.model is loaded and a model-change record "loaded" written.
  // `model_from_hub`: agent.gate.model is where the hub installs gate models (the hub sink's
  // model_file); when that file does not exist yet the gate starts without a model, with a
  // model-change record "awaited", and takes the first one ReloadModel finds there.
  // Errors: a rules file that does not load (file:line), no rules at all, a model file that does
  // not load or does not score system-call sequences (or is absent, without `model_from_hub`), a
  // watch path that does not exist or holds vigil's own executable (kInvalidArgument: exit 2);
  // fanotify unavailable (kFailedPrecondition).
  static core::Result<std::unique_ptr<AgentGate>> Start(
      const core::VigilConfig& config, std::shared_ptr<const policy::PolicySnapshot> policy,
      AuditTrail* audit, std::shared_ptr<const model::Model> model = nullptr,
      bool model_from_hub = false);
  ~AgentGate();  // stops the gate
  AgentGate(const AgentGate&) = delete;
  AgentGate& operator=(const AgentGate&) = delete;

  // After the agent's policy was reloaded (`agent_policy`: the one now in force) or on SIGHUP:
  // the gate's own files (agent.gate.policy) are read again, else the agent's new policy is
  // taken; the new rules replace those in force atomically. When the own files do not load,
  // the rules in force stay and the error (file:line) is returned. Thread-safe.
  core::Status Reload(std::shared_ptr<const policy::PolicySnapshot> agent_policy);
  // The version of the rules in force.
  std::string policy_version() const;

  // The gate model in force: its file, name, version and the SHA-256 (hex) of the bytes it was
  // loaded from (what is measured and reported to the hub).
  struct ModelInfo {
    std::string path;
    std::string name;
    std::string version;
    std::string sha256;
  };
  // Null when the gate has no model read from agent.gate.model.
  std::optional<ModelInfo> model_info() const;
  // Reads agent.gate.model again. A file that loads and scores system-call sequences replaces the
  // model in force atomically, with a model-change record "reloaded" (reason `cause`), and its
  // ModelInfo is returned; a gate that ran without a model (it started before the hub installed
  // one) starts serving it, with a model-change record "added". Otherwise the model in force (or
  // none) stays, a model-change record "refused" is written (not for a file still absent while
  // the gate has no model), and the error names agent.gate.model and the file (kInvalidArgument,
  // kNotFound, kDataLoss as the read and load give them); kFailedPrecondition when the gate has no
  // agent.gate.model, or was given its model by the caller. Thread-safe.
  core::Result<ModelInfo> ReloadModel(const std::string& cause);

  // Enforce mode's precondition for the gate's own rules files (agent.gate.policy, and the rules
  // files a bundle manifest among them names) and its model (agent.gate.model), checked as the
  // bytes that were parsed: "" when they are signed by `trusted_keys` (or there are none), else
  // why not (a policy-change or model-change record "refused" is written to the audit log).
  std::string CheckTrust(const std::vector<std::string>& trusted_keys);

  // See the top of this file. Thread-safe.
  void SetEnforcementAllowed(bool allowed) { gate_.SetEnforcementAllowed(allowed); }

  // Stops holding calls (the kernel allows whatever is pending). Idempotent.
  void Stop();

  enforce::GateStats stats() const { return gate_.stats(); }
  sensor::FanotifyGateStats sensor_stats() const;
  // "N calls: D denied, W would have been denied, F fallbacks".
  std::string Summary() const;
  std::string_view configured_mode() const { return enforce::GateModeName(gate_.options().mode); }
  // The model's engine (null without a model; once set it stays for the gate's life).
  const model::InferenceEngine* engine() const;

 private:
  AgentGate(enforce::GateRules rules, std::unique_ptr<policy::PolicyEngine> own,
            GateModelServer model, enforce::GateOptions options, AuditTrail* audit);

  std::unique_ptr<policy::PolicyEngine> own_;  // agent.gate.policy; null: the agent's policy
  std::vector<std::string> own_files_;
  std::string model_path_;                     // agent.gate.model ("": none read from a file)
  mutable std::mutex model_mu_;                // guards the four below; held by ReloadModel
  ArtifactFiles model_files_;                  // the model file's bytes, as loaded
  std::vector<ModelArtifact> models_;          // agent.gate.model
  std::optional<ModelInfo> model_info_;
  GateModelServer model_;
  AuditTrail* audit_;
  enforce::DecisionGate gate_;
  GateDeciderAdapter decider_;
  std::unique_ptr<sensor::FanotifyGate> sensor_;
};

}  // namespace vigil::app
