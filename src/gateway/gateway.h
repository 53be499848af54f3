#pragma once

// The industrial gateway, wired from a GatewayConfig: the actuator-state model learned from
// normal operation (asked through a model::InferenceEngine: deadline, circuit breaker), the
// gateway's policy engine (its rules), the plant state, the Decider, the Modbus/TCP proxy, the
// metrics registry (served on metrics.listen as /metrics) and the outputs every decision goes
// to (the audit log and the sinks, as OCSF Detection Findings).
//
// With telemetry topics configured, MQTT telemetry (telemetry.h) fills the plant state and, with
// model.training, the sensor scorer (sensor_scoring.h) learns from the same CSV; its findings go
// to the same audit log and sinks as the write decisions.
//
// Start-up order (undone in reverse by Stop): learn the models, load the rules, start the
// inference engine, bind the
// Modbus listener, start the metrics server, start the telemetry client.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/pi_mutex.h"
#include "core/http_server.h"
#include "core/metrics.h"
#include "core/status.h"
#include "gateway/actuator_model.h"
#include "gateway/config.h"
#include "gateway/decider.h"
#include "gateway/modbus_proxy.h"
#include "gateway/plant_state.h"
#include "gateway/sensor_scoring.h"
#include "gateway/telemetry.h"
#include "pipeline/sink.h"

namespace vigil::gateway {

struct GatewayOutputs {
  audit::AuditLog* audit = nullptr;   // every write decision, fallback and alert; may be null
  std::vector<pipeline::Sink*> sinks;  // OCSF findings for denials and alerts
  // Where the gateway's metrics go (served on metrics.listen with everything else registered
  // there, e.g. a hub sink's); null: a registry of the gateway's own.
  core::Registry* registry = nullptr;
};

class Gateway {
 public:
  // Learns the actuator-state model from config.model.training (when given): from
  // `training_csv` when non-null (the file's bytes, read once by the caller, which verified
  // them), else read from the file. `judge` replaces the learned model's judge when non-null
  // (another model behind the same inference engine). Loads the rules (CreateGatewayPolicy).
  // Everything passed must outlive the gateway. Errors name the config key or file at fault.
  static core::Result<std::unique_ptr<Gateway>> Create(GatewayConfig config,
                                                       GatewayOutputs outputs,
                                                       const core::Clock& clock,
                                                       CommandJudge* judge = nullptr,
                                                       const std::string* training_csv = nullptr);
  ~Gateway();  // Stop()

  core::Status Start();
  void Stop();

  PlantState& plant() { return plant_; }
  const GatewayConfig& config() const { return config_; }
  const ActuatorStateModel* model() const { return model_.get(); }
  const DeciderStats& decisions() const { return decider_->stats(); }
  const ProxyStats& proxy() const { return proxy_->stats(); }
  // Whether decision.realtime_priority was applied (after Start; OK when it was 0).
  const core::Status& priority_status() const { return proxy_->priority_status(); }
  // The inference engine the actuator-state model is asked through (null without a model).
  const model::InferenceEngine* model_engine() const { return engine_.get(); }
  const policy::PolicyEngine& policy() const { return *policy_; }
  const Telemetry* telemetry() const { return telemetry_.get(); }
  const SensorScorer* scorer() const { return scorer_.get(); }
  core::Registry& registry() { return registry_; }
  uint16_t modbus_port() const { return proxy_->port(); }
  uint16_t metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // Counters as JSON (for --json and the shutdown summary).
  nlohmann::json Summary() const;

 private:
  Gateway(GatewayConfig config, GatewayOutputs outputs, const core::Clock& clock)
      : config_(std::move(config)),
        outputs_(std::move(outputs)),
        clock_(clock),
        registry_(outputs_.registry != nullptr ? *outputs_.registry : own_registry_) {}
  core::Status RegisterMetrics();
  void Record(const ParsedFrame& frame, const WriteDecision& d);
  void RecordSensor(const SensorFinding& f);
  void WriteSinks(const std::string& line);

  const GatewayConfig config_;
  GatewayOutputs outputs_;
  const core::Clock& clock_;
  PlantState plant_;
  core::Registry own_registry_;  // unused when outputs_.registry is set
  core::Registry& registry_;
  std::vector<core::Registry::CallbackHandle> handles_;
  core::Histogram* decide_latency_ = nullptr;
  std::unique_ptr<ActuatorStateModel> model_;
  std::unique_ptr<ActuatorJudge> model_judge_;
  std::unique_ptr<JudgeModel> judge_model_;
  std::unique_ptr<policy::PolicyEngine> policy_;
  std::unique_ptr<model::InferenceEngine> engine_;
  std::unique_ptr<Decider> decider_;
  std::unique_ptr<ModbusProxy> proxy_;
  std::unique_ptr<SensorScorer> scorer_;
  std::unique_ptr<Telemetry> telemetry_;
  std::unique_ptr<core::MetricsServer> metrics_;
  // Sinks take one writer at a time: the proxy's real-time threads and the telemetry thread.
  core::PiMutex sink_mu_;
  std::atomic<uint64_t> sink_errors_{0};
  std::atomic<uint64_t> audit_errors_{0};
};

// The OCSF Detection Finding (one JSON line) for a decision on a Modbus request.
std::string DecisionToOcsfJson(const ParsedFrame& frame, const WriteDecision& d,
                               const std::string& host, int64_t time_ns);
// The decision (an alert) and its OCSF Detection Finding for a sensor-inconsistency finding.
core::Decision SensorFindingToDecision(const SensorFinding& f, const std::string& host,
                                       int64_t time_ns);
std::string SensorFindingToOcsfJson(const SensorFinding& f, const std::string& host,
                                    int64_t time_ns);

}  // namespace vigil::gateway
