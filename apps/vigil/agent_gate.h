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
// Rules: the files of `agent.gate.policy`, or else the agent's policy in force at start (the
// snapshot is kept: a SIGHUP reload of the agent's policy does not reach the gate).
//
// Safety: the sensor marks the configured files and directories' inodes, never a mount, refuses
// a path that is or holds vigil's own executable, answers from a dedicated thread, and a watchdog
// answers every call whose decision misses its deadline (sensor/fanotify_gate.h).

#include <memory>
#include <string>
#include <vector>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/gate_wiring.h"
#include "core/config.h"
#include "enforce/gate.h"
#include "policy/engine.h"
#include "sensor/fanotify_gate.h"

namespace vigil::app {

class AgentGate {
 public:
  // Starts the gate (config.agent.gate.watch must be non-empty). `policy` is the agent's policy
  // in force (null when policy.enabled is false). `audit` must outlive the gate.
  // Errors: a rules file that does not load (file:line), no rules at all, a watch path that does
  // not exist or holds vigil's own executable (kInvalidArgument: exit 2); fanotify unavailable
  // (kFailedPrecondition).
  static core::Result<std::unique_ptr<AgentGate>> Start(
      const core::VigilConfig& config, std::shared_ptr<const policy::PolicySnapshot> policy,
      AuditTrail* audit);
  ~AgentGate();  // stops the gate
  AgentGate(const AgentGate&) = delete;
  AgentGate& operator=(const AgentGate&) = delete;

  // Enforce mode's precondition for the gate's own rules files (agent.gate.policy): "" when they
  // are signed by `trusted_keys` (or there are none), else why not (a policy-change record
  // "refused" is written to the audit log).
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

 private:
  AgentGate(std::shared_ptr<const policy::PolicySnapshot> snapshot, policy::RuleSet own,
            enforce::GateOptions options, AuditTrail* audit);

  std::shared_ptr<const policy::PolicySnapshot> snapshot_;  // keeps the agent's rules alive
  policy::RuleSet own_rules_;                                // agent.gate.policy
  std::vector<std::string> own_files_;
  AuditTrail* audit_;
  enforce::DecisionGate gate_;
  GateDeciderAdapter decider_;
  std::unique_ptr<sensor::FanotifyGate> sensor_;
};

}  // namespace vigil::app
