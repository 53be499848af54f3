#include "apps/vigil/agent_gate.h"

#include <filesystem>

#include "apps/vigil/artifact_trust.h"
#include "core/metrics.h"

namespace vigil::app {

AgentGate::AgentGate(std::shared_ptr<const policy::PolicySnapshot> snapshot, policy::RuleSet own,
                     enforce::GateOptions options, AuditTrail* audit)
    : snapshot_(std::move(snapshot)),
      own_rules_(std::move(own)),
      audit_(audit),
      gate_(snapshot_ ? &snapshot_->rules : &own_rules_, std::move(options), nullptr,
            &core::Registry::Get(), AuditGateRecords(audit)),
      decider_(&gate_) {}

core::Result<std::unique_ptr<AgentGate>> AgentGate::Start(
    const core::VigilConfig& config, std::shared_ptr<const policy::PolicySnapshot> policy,
    AuditTrail* audit) {
  const core::AgentGateConfig& gc = config.agent.gate;
  for (const std::string& p : gc.watch) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) {
      return core::InvalidArgument("agent.gate.watch: " + p + " does not exist");
    }
  }
  policy::RuleSet own;
  if (!gc.policy.empty()) {
    auto loaded = policy::RuleSet::LoadFiles(gc.policy);
    if (!loaded.has_value()) return loaded.error().WithContext("agent.gate.policy");
    own = std::move(loaded).value();
    policy.reset();  // the gate's own rules, not the agent's
  } else if (!policy) {
    return core::InvalidArgument(
        "agent.gate: no rules to decide with (policy.enabled is false and agent.gate.policy is "
        "empty)");
  }
  enforce::GateOptions go;
  go.name = "fanotify";
  go.mode = gc.mode.empty() ? (config.mode == core::AgentMode::kEnforce ? enforce::GateMode::kEnforce
                                                                        : enforce::GateMode::kMonitor)
                            : (gc.mode == "enforce" ? enforce::GateMode::kEnforce
                                                    : enforce::GateMode::kMonitor);
  go.deadline_ns = gc.deadline_ns;
  go.default_deny = gc.fallback_deny && go.mode == enforce::GateMode::kEnforce;
  std::unique_ptr<AgentGate> g(new AgentGate(std::move(policy), std::move(own), go, audit));
  g->own_files_ = gc.policy;
  g->gate_.SetEnforcementAllowed(false);  // until the agent enters enforce mode
  sensor::FanotifyGateOptions fo;
  fo.paths = gc.watch;
  fo.open = gc.open;
  fo.deadline_ns = go.deadline_ns;
  fo.default_fallback = go.default_deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
  auto started = sensor::FanotifyGate::Start(fo, &g->decider_);
  if (!started.has_value()) return started.error().WithContext("agent.gate");
  g->sensor_ = std::move(started).value();
  return g;
}

AgentGate::~AgentGate() { Stop(); }

std::string AgentGate::CheckTrust(const std::vector<std::string>& trusted_keys) {
  return CheckEnforceArtifacts(trusted_keys, own_files_, {}, audit_);
}

void AgentGate::Stop() {
  if (sensor_) sensor_->Stop();
}

sensor::FanotifyGateStats AgentGate::sensor_stats() const {
  return sensor_ ? sensor_->stats() : sensor::FanotifyGateStats{};
}

std::string AgentGate::Summary() const { return FanotifyGateSummary(sensor_stats(), stats()); }

}  // namespace vigil::app
