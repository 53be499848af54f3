#include "apps/vigil/agent_gate.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/metrics.h"
#include "model/model_file.h"

namespace vigil::app {
namespace {

// A policy snapshot's rules as a gate's rules: they live as long as the snapshot.
enforce::GateRules RulesOf(std::shared_ptr<const policy::PolicySnapshot> snap) {
  std::string version = snap->version;
  const policy::RuleSet* rules = &snap->rules;
  return enforce::GateRules{std::shared_ptr<const policy::RuleSet>(std::move(snap), rules),
                            std::move(version)};
}

}  // namespace

AgentGate::AgentGate(enforce::GateRules rules, std::unique_ptr<policy::PolicyEngine> own,
                     GateModelServer model, enforce::GateOptions options, AuditTrail* audit)
    : own_(std::move(own)),
      model_(std::move(model)),
      audit_(audit),
      gate_(std::move(rules), std::move(options), model_.verdicts.get(), &core::Registry::Get(),
            AuditGateRecords(audit)),
      decider_(&gate_) {}

core::Result<std::unique_ptr<AgentGate>> AgentGate::Start(
    const core::VigilConfig& config, std::shared_ptr<const policy::PolicySnapshot> policy,
    AuditTrail* audit, std::shared_ptr<const model::Model> model, bool model_from_hub) {
  const core::AgentGateConfig& gc = config.agent.gate;
  for (const std::string& p : gc.watch) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) {
      return core::InvalidArgument("agent.gate.watch: " + p + " does not exist");
    }
  }
  std::unique_ptr<policy::PolicyEngine> own;
  if (!gc.policy.empty()) {
    policy::PolicyOptions po;
    po.files = gc.policy;
    // A private registry: the agent's policy engine owns the vigil_policy_* metrics.
    auto loaded = policy::PolicyEngine::Create(po, nullptr);
    if (!loaded.has_value()) return loaded.error().WithContext("agent.gate.policy");
    own = std::move(loaded).value();
    policy = own->Current();  // the gate's own rules, not the agent's
  } else if (!policy) {
    return core::InvalidArgument(
        "agent.gate: no rules to decide with (policy.enabled is false and agent.gate.policy is "
        "empty)");
  }
  ArtifactFiles model_files;
  std::vector<ModelArtifact> models;
  std::error_code absent;
  const bool awaited = !model && !gc.model.empty() && model_from_hub &&
                       !std::filesystem::exists(gc.model, absent) && !absent;
  if (awaited) {
    spdlog::warn("agent.gate.model {} is not there yet: the gate runs without a model (ml.* "
                 "fields absent) until the hub rolls one out",
                 gc.model);
    if (audit != nullptr) {
      audit->ModelChange("awaited", gc.model, "", "",
                         "the fanotify gate's model: not there yet; the gate runs without a model "
                         "until the hub rolls one out (the hub sink's model_file)");
    }
  } else if (!model && !gc.model.empty()) {
    auto loaded = LoadGateModel(gc.model, &model_files);
    if (!loaded.has_value()) return loaded.error().WithContext("agent.gate.model");
    model = std::move(loaded).value();
    models.push_back({gc.model, model->name(), model->version()});
    if (audit != nullptr) {
      audit->ModelChange("loaded", gc.model, model->name(), model->version(),
                         "the fanotify gate's model", model_files.Find(gc.model));
    }
  }
  GateModelServer served;
  if (model) {
    auto s = ServeGateModel(std::move(model), "fanotify");
    if (!s.has_value()) return s.error().WithContext("agent.gate.model");
    served = std::move(s).value();
  }
  enforce::GateOptions go;
  go.name = "fanotify";
  go.mode = gc.mode.empty() ? (config.mode == core::AgentMode::kEnforce ? enforce::GateMode::kEnforce
                                                                        : enforce::GateMode::kMonitor)
                            : (gc.mode == "enforce" ? enforce::GateMode::kEnforce
                                                    : enforce::GateMode::kMonitor);
  go.deadline_ns = gc.deadline_ns;
  go.default_deny = gc.fallback_deny && go.mode == enforce::GateMode::kEnforce;
  std::unique_ptr<AgentGate> g(
      new AgentGate(RulesOf(std::move(policy)), std::move(own), std::move(served), go, audit));
  g->own_files_ = gc.policy;
  if (awaited) g->model_path_ = gc.model;
  if (!models.empty()) {
    const std::string* bytes = model_files.Find(gc.model);
    g->model_path_ = gc.model;
    g->model_info_ = ModelInfo{gc.model, models.front().name, models.front().version,
                               bytes != nullptr ? model::Sha256Hex(*bytes) : ""};
  }
  g->model_files_ = std::move(model_files);
  g->models_ = std::move(models);
  g->gate_.SetEnforcementAllowed(false);  // until the agent enters enforce mode
  sensor::FanotifyGateOptions fo;
  fo.paths = gc.watch;
  fo.open = gc.open;
  fo.deadline_ns = go.deadline_ns;
  fo.default_fallback = go.default_deny ? sensor::GateAnswer::kDeny : sensor::GateAnswer::kAllow;
  fo.realtime_priority = static_cast<int>(gc.realtime_priority);
  fo.metrics = &core::Registry::Get();
  fo.metrics_gate = go.name;
  auto started = sensor::FanotifyGate::Start(fo, &g->decider_);
  if (!started.has_value()) return started.error().WithContext("agent.gate");
  g->sensor_ = std::move(started).value();
  if (const core::Status& p = g->sensor_->priority_status(); !p.ok()) {
    spdlog::warn("agent.gate: the gate runs at normal priority (realtime_priority {} refused: {}); "
                 "held calls may wait longer on a loaded host",
                 gc.realtime_priority, p.message());
  }
  return g;
}

AgentGate::~AgentGate() { Stop(); }

core::Status AgentGate::Reload(std::shared_ptr<const policy::PolicySnapshot> agent_policy) {
  if (own_) {
    if (core::Status st = own_->Reload(); !st.ok()) return st.WithContext("agent.gate.policy");
    gate_.SetRules(RulesOf(own_->Current()));
  } else if (agent_policy) {
    gate_.SetRules(RulesOf(std::move(agent_policy)));
  }
  return {};
}

std::string AgentGate::policy_version() const { return gate_.rules()->version; }

std::optional<AgentGate::ModelInfo> AgentGate::model_info() const {
  std::lock_guard<std::mutex> lock(model_mu_);
  return model_info_;
}

const model::InferenceEngine* AgentGate::engine() const {
  std::lock_guard<std::mutex> lock(model_mu_);
  return model_.engine.get();
}

core::Result<AgentGate::ModelInfo> AgentGate::ReloadModel(const std::string& cause) {
  std::lock_guard<std::mutex> lock(model_mu_);
  if (model_path_.empty()) {
    return core::FailedPrecondition(
        "agent.gate.model: the gate started without a model file; a model is added by a restart "
        "(or by the hub, with the hub sink's model_file as agent.gate.model)");
  }
  ArtifactFiles files;
  auto loaded = LoadGateModel(model_path_, &files);
  if (!loaded.has_value()) {
    const core::Status st = loaded.error().WithContext("agent.gate.model " + model_path_);
    if (!model_info_) {
      std::error_code ec;
      if (audit_ != nullptr && std::filesystem::exists(model_path_, ec)) {
        audit_->ModelChange("refused", model_path_, "", "",
                            st.message() + "; the gate stays without a model",
                            files.Find(model_path_));
      }
      return st;
    }
    const ModelInfo& old = *model_info_;
    if (audit_ != nullptr) {
      audit_->ModelChange("refused", model_path_, old.name, old.version,
                          st.message() + "; " + old.name + " " + old.version + " stays in force",
                          files.Find(model_path_));
    }
    return st;
  }
  std::shared_ptr<const model::Model> m = std::move(loaded).value();
  const std::string* bytes = files.Find(model_path_);
  ModelInfo info{model_path_, m->name(), m->version(),
                 bytes != nullptr ? model::Sha256Hex(*bytes) : ""};
  if (model_.engine) {
    model_.engine->Swap(m);
    if (audit_ != nullptr) {
      audit_->ModelChange("reloaded", model_path_, info.name, info.version,
                          "the fanotify gate's model (" + cause + ")", bytes);
    }
  } else {
    // The gate's first model: served from now on (the engine and source live as long as the gate).
    auto served = ServeGateModel(std::move(m), "fanotify");
    if (!served.has_value()) {
      const core::Status st = served.error().WithContext("agent.gate.model " + model_path_);
      if (audit_ != nullptr) {
        audit_->ModelChange("refused", model_path_, info.name, info.version,
                            st.message() + "; the gate stays without a model", bytes);
      }
      return st;
    }
    model_ = std::move(served).value();
    gate_.SetVerdictSource(model_.verdicts.get());
    if (audit_ != nullptr) {
      audit_->ModelChange("added", model_path_, info.name, info.version,
                          "the fanotify gate's first model (" + cause + ")", bytes);
    }
  }
  model_files_ = std::move(files);
  models_ = {{model_path_, info.name, info.version}};
  model_info_ = info;
  return info;
}

std::string AgentGate::CheckTrust(const std::vector<std::string>& trusted_keys) {
  // The rules files as the gate's policy engine parsed them, the model as it was loaded.
  std::unique_lock<std::mutex> lock(model_mu_);
  ArtifactFiles files = model_files_;
  const std::vector<ModelArtifact> models = models_;
  lock.unlock();
  std::vector<std::string> policies = own_files_;
  if (own_) {
    const std::shared_ptr<const policy::PolicySnapshot> snap = own_->Current();
    files.Keep(snap->sources);
    policies.insert(policies.end(), snap->files.begin(), snap->files.end());
  }
  return CheckEnforceArtifacts(trusted_keys, policies, models, audit_, &files);
}

void AgentGate::Stop() {
  if (sensor_) sensor_->Stop();
}

sensor::FanotifyGateStats AgentGate::sensor_stats() const {
  return sensor_ ? sensor_->stats() : sensor::FanotifyGateStats{};
}

std::string AgentGate::Summary() const { return FanotifyGateSummary(sensor_stats(), stats()); }

}  // namespace vigil::app
