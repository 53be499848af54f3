#include "gateway/gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "audit/audit_log.h"
#include "audit/canonical_json.h"
#include "audit/payloads.h"
#include "core/event_json.h"
#include "sensor/batadal.h"

namespace vigil::gateway {
namespace {

core::Decision ToDecision(const ParsedFrame& f, const WriteDecision& d, const std::string& host,
                          int64_t time_ns) {
  core::Decision out;
  out.action = d.deny ? (d.enforced ? core::Action::kDeny : core::Action::kAlert)
                      : (d.alert ? core::Action::kAlert : core::Action::kAllow);
  out.rule = d.rule == Rule::kFallback || d.policy_rule.empty()
                 ? fmt::format("gateway.{}", RuleName(d.rule))
                 : d.policy_rule;
  out.reason = d.reason;
  out.enforced = d.deny && d.enforced;
  core::Verdict& v = out.verdict;
  v.score = d.deny ? d.score : 0.0;
  v.anomalous = d.deny || d.alert;
  v.model_name = d.rule == Rule::kModel ? "actuator-state" : "gateway-rules";
  v.model_version = "1";
  v.subject = d.asset;
  v.stream = fmt::format("modbus/unit{}/fc{}", f.unit, f.function);
  v.host = host;
  v.events = 1;
  v.time_ns = time_ns;
  v.explanation = d.why;
  if (v.explanation.empty() && !d.reason.empty()) v.explanation.push_back({d.reason, 1.0});
  return out;
}

nlohmann::json ModbusDetail(const ParsedFrame& f, const WriteDecision& d) {
  nlohmann::json j = {{"unit", f.unit},
                      {"function", f.function},
                      {"asset", d.asset},
                      {"address", d.address},
                      {"value", d.value},
                      {"critical", d.critical},
                      {"fallback", FallbackCauseName(d.fallback)}};
  if (f.cls == FrameClass::kWrite) {
    j["register"] = RegisterKindName(f.write.kind);
    j["first_address"] = f.write.address;
    j["count"] = f.write.values.size();
  }
  if (d.deny && d.enforced) j["exception"] = d.exception;
  return j;
}

// ModbusDetail's members in canonical form (keys sorted), for the audit record.
void WriteModbusDetail(const ParsedFrame& f, const WriteDecision& d, audit::CanonicalWriter* w) {
  const bool write = f.cls == FrameClass::kWrite;
  w->BeginObject();
  w->Key("address");
  w->Uint(d.address);
  w->Key("asset");
  w->String(d.asset);
  if (write) {
    w->Key("count");
    w->Uint(f.write.values.size());
  }
  w->Key("critical");
  w->Bool(d.critical);
  if (d.deny && d.enforced) {
    w->Key("exception");
    w->Uint(d.exception);
  }
  w->Key("fallback");
  w->String(FallbackCauseName(d.fallback));
  if (write) {
    w->Key("first_address");
    w->Uint(f.write.address);
  }
  w->Key("function");
  w->Uint(f.function);
  if (write) {
    w->Key("register");
    w->String(RegisterKindName(f.write.kind));
  }
  w->Key("unit");
  w->Uint(f.unit);
  w->Key("value");
  w->Uint(d.value);
  w->EndObject();
}

// Appends a decision record rendered straight from the values (no JSON tree) with `extra`.
core::Status AppendDecisionRecord(audit::AuditLog* log, audit::RecordType type,
                                  const core::Decision& decision, std::string_view mode,
                                  std::span<const audit::ExtraMember> extra) {
  thread_local std::string payload;
  payload.clear();
  {
    audit::CanonicalWriter w(&payload);
    audit::WriteDecisionPayload(decision, mode, extra, &w);
  }
  return log->AppendCanonical(type, payload);
}

}  // namespace

std::string DecisionToOcsfJson(const ParsedFrame& frame, const WriteDecision& d,
                               const std::string& host, int64_t time_ns) {
  const core::Decision decision = ToDecision(frame, d, host, time_ns);
  nlohmann::json j = nlohmann::json::parse(core::VerdictToOcsfJson(decision.verdict));
  j["finding_info"]["title"] =
      d.deny ? (d.enforced ? "Actuator command denied" : "Actuator command would have been denied")
      : d.fallback != FallbackCause::kNone ? "Actuator command passed without a model verdict"
                                           : "Actuator command matched an alert rule";
  j["vigil"]["decision"] = {{"action", core::ActionName(decision.action)},
                            {"enforced", decision.enforced},
                            {"mode", ModeName(d.mode)},
                            {"rule", decision.rule},
                            {"reason", d.reason},
                            {"policy_version", d.policy_version},
                            {"policy_stage", policy::StageName(d.stage)},
                            {"asset_class", policy::AssetClassName(d.asset_class)}};
  j["vigil"]["modbus"] = ModbusDetail(frame, d);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

core::Decision SensorFindingToDecision(const SensorFinding& f, const std::string& host,
                                       int64_t time_ns) {
  core::Decision out;
  out.action = core::Action::kAlert;
  out.rule = fmt::format("gateway.telemetry.{}", f.model);
  out.reason = fmt::format("sensor readings inconsistent ({} raw score {:.4g}, threshold {:.4g})",
                           f.model, f.raw, f.threshold);
  core::Verdict& v = out.verdict;
  v.score = f.score;
  v.anomalous = true;
  v.model_name = f.model == "kitnet" ? "gateway-autoencoder" : "gateway-predictors";
  v.model_version = "1";
  v.subject = "plant";
  v.stream = "mqtt";
  v.host = host;
  v.events = f.row;
  v.time_ns = time_ns;
  v.explanation = f.why;
  return out;
}

std::string SensorFindingToOcsfJson(const SensorFinding& f, const std::string& host,
                                    int64_t time_ns) {
  const core::Decision decision = SensorFindingToDecision(f, host, time_ns);
  nlohmann::json j = nlohmann::json::parse(core::VerdictToOcsfJson(decision.verdict));
  j["finding_info"]["title"] = "Sensor readings inconsistent";
  j["vigil"]["decision"] = {{"action", core::ActionName(decision.action)},
                            {"enforced", false},
                            {"rule", decision.rule},
                            {"reason", decision.reason}};
  j["vigil"]["telemetry"] = {
      {"model", f.model}, {"raw", f.raw}, {"threshold", f.threshold}, {"row", f.row}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

core::Result<std::unique_ptr<Gateway>> Gateway::Create(GatewayConfig config,
                                                       GatewayOutputs outputs,
                                                       const core::Clock& clock,
                                                       CommandJudge* judge,
                                                       const std::string* training_csv) {
  std::unique_ptr<Gateway> g(new Gateway(std::move(config), std::move(outputs), clock));
  const GatewayConfig& c = g->config_;
  if (!c.model.training.empty()) {
    auto table = training_csv != nullptr
                     ? sensor::ParseBatadalTable(*training_csv, c.model.training)
                     : sensor::ReadBatadalTable(c.model.training);
    if (!table.has_value()) return table.error().WithContext("model.training");
    const TelemetryScoringConfig& sc = c.telemetry.scoring;
    if (!c.telemetry.topics.empty() && (sc.predictors || sc.autoencoder)) {
      std::vector<std::string> carried;
      for (const TopicSchema& t : c.telemetry.topics) {
        for (const SignalSchema& s : t.signals) carried.push_back(s.name);
      }
      auto scorer = SensorScorer::Learn(*table, carried, sc);
      if (!scorer.has_value()) {
        return scorer.error().WithContext(fmt::format("{}: telemetry.scoring", c.source));
      }
      g->scorer_ = std::move(scorer).value();
    }
    ActuatorModelOptions o;
    o.actuators = c.model.actuators;
    o.context = c.model.context;
    o.bins = c.model.bins;
    o.min_support = c.model.min_support;
    o.max_share = c.model.max_share;
    o.max_age_ns = static_cast<int64_t>(c.model.state_max_age_s) * 1'000'000'000;
    auto model = ActuatorStateModel::Learn(*table, o);
    if (!model.has_value()) return model.error().WithContext("model.training");
    g->model_ = std::move(model).value();
    for (size_t i = 0; i < c.assets.size(); ++i) {
      const AssetConfig& a = c.assets[i];
      if (!a.signal.empty() && !g->model_->Knows(a.signal)) {
        return core::InvalidArgument(fmt::format(
            "{}: assets[{}].signal: the model learned no actuator \"{}\" from {}", c.source, i,
            a.signal, c.model.training));
      }
    }
    g->model_judge_ = std::make_unique<ActuatorJudge>(*g->model_, g->plant_, clock);
  }
  if (judge == nullptr) judge = g->model_judge_.get();
  if (judge == nullptr) {
    for (size_t i = 0; i < c.assets.size(); ++i) {
      if (!c.assets[i].signal.empty()) {
        return core::InvalidArgument(fmt::format(
            "{}: assets[{}].signal: a model check needs model.training", c.source, i));
      }
    }
  }
  if (!c.telemetry.topics.empty()) {
    g->telemetry_ = std::make_unique<Telemetry>(
        c.telemetry, static_cast<int64_t>(c.model.state_max_age_s) * 1'000'000'000, g->plant_,
        clock, g->scorer_.get(), [self = g.get()](const SensorFinding& f) {
          self->RecordSensor(f);
        });
  }
  VIGIL_RETURN_IF_ERROR(g->RegisterMetrics());
  auto policy = CreateGatewayPolicy(c, &g->registry_);
  if (!policy.has_value()) return policy.error();
  g->policy_ = std::move(policy).value();
  if (judge != nullptr) {
    g->judge_model_ = std::make_unique<JudgeModel>(*judge);
    std::shared_ptr<const model::Model> m(g->judge_model_.get(), [](const model::Model*) {});
    auto engine = model::InferenceEngine::Create(
        std::move(m), ModelEngineOptions(c.decision, &g->registry_), clock);
    if (!engine.has_value()) return engine.error().WithContext(c.source + ": decision");
    g->engine_ = std::move(engine).value();
  }
  g->decider_ =
      std::make_unique<Decider>(c, *g->policy_, g->engine_.get(), clock, g->decide_latency_);
  Gateway* self = g.get();
  g->proxy_ = std::make_unique<ModbusProxy>(
      c.modbus, *g->decider_,
      [self](const ParsedFrame& f, const WriteDecision& d) { self->Record(f, d); },
      static_cast<int>(c.decision.realtime_priority));
  return g;
}

Gateway::~Gateway() { Stop(); }

core::Status Gateway::Start() {
  VIGIL_RETURN_IF_ERROR(proxy_->Start());
  if (config_.metrics_enabled) {
    metrics_ = std::make_unique<core::MetricsServer>(registry_);
    core::Status st = metrics_->Start(config_.metrics_listen.host, config_.metrics_listen.port);
    if (!st.ok()) {
      proxy_->Stop();
      return st.WithContext("metrics.listen");
    }
  }
  if (telemetry_) {
    core::Status st = telemetry_->Start();
    if (!st.ok()) {
      if (metrics_) metrics_->Stop();
      proxy_->Stop();
      return st.WithContext(config_.source);
    }
  }
  return core::Status::Ok();
}

void Gateway::Stop() {
  if (telemetry_) telemetry_->Stop();
  if (metrics_) metrics_->Stop();
  if (proxy_) proxy_->Stop();
  if (engine_) engine_->Stop();
}

void Gateway::Record(const ParsedFrame& frame, const WriteDecision& d) {
  const int64_t now = clock_.NowUnixNanos();
  if (outputs_.audit != nullptr) {
    const core::Decision decision = ToDecision(frame, d, config_.host, now);
    const audit::RecordType type = d.fallback != FallbackCause::kNone
                                       ? audit::RecordType::kFallback
                                       : audit::RecordType::kDecision;
    // In key order, as the host gates' records: the Modbus detail, the policy's stage and version.
    const audit::ExtraMember modbus[] = {
        {"modbus", [&](audit::CanonicalWriter* w) { WriteModbusDetail(frame, d, w); }},
        {"policy_stage", [&](audit::CanonicalWriter* w) { w->String(policy::StageName(d.stage)); }},
        {"policy_version", [&](audit::CanonicalWriter* w) { w->String(d.policy_version); }}};
    if (!AppendDecisionRecord(outputs_.audit, type, decision, ModeName(d.mode), modbus).ok()) {
      audit_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if ((d.deny || d.alert) && !outputs_.sinks.empty()) {
    WriteSinks(DecisionToOcsfJson(frame, d, config_.host, now));
  }
}

void Gateway::RecordSensor(const SensorFinding& f) {
  const int64_t now = clock_.NowUnixNanos();
  spdlog::warn("gateway: sensor readings inconsistent ({}, score {:.3f}){}{}", f.model, f.score,
               f.why.empty() ? "" : ": ", f.why.empty() ? "" : f.why.front().what);
  if (outputs_.audit != nullptr) {
    const core::Decision decision = SensorFindingToDecision(f, config_.host, now);
    const audit::ExtraMember telemetry[] = {{"telemetry", [&f](audit::CanonicalWriter* w) {
                                               w->BeginObject();
                                               w->Key("model");
                                               w->String(f.model);
                                               w->Key("raw");
                                               w->Double(f.raw);
                                               w->Key("row");
                                               w->Uint(f.row);
                                               w->Key("threshold");
                                               w->Double(f.threshold);
                                               w->EndObject();
                                             }}};
    if (!AppendDecisionRecord(outputs_.audit, audit::RecordType::kDecision, decision,
                              ModeName(config_.mode), telemetry)
             .ok()) {
      audit_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!outputs_.sinks.empty()) WriteSinks(SensorFindingToOcsfJson(f, config_.host, now));
}

void Gateway::WriteSinks(const std::string& line) {
  std::lock_guard lock(sink_mu_);
  for (pipeline::Sink* s : outputs_.sinks) {
    if (!s->Write(line).ok() || !s->Flush().ok()) {
      sink_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

core::Status Gateway::RegisterMetrics() {
  auto hist = registry_.GetHistogram("vigil_gateway_decision_seconds",
                                     "Time to decide one Modbus write (checks and model)");
  if (!hist.has_value()) return hist.error();
  decide_latency_ = *hist;
  auto gauge = registry_.AddCallbackGauge(
      "vigil_gateway_plant_signals", "Signals with a reading in the plant state", {},
      [this] { return static_cast<double>(plant_.size()); });
  if (!gauge.has_value()) return gauge.error();
  handles_.push_back(std::move(gauge).value());
  // The proxy and decider exist after this call; their counters are read through `this`.
  struct Def {
    std::string_view name, help;
    core::Labels labels;
    std::function<const std::atomic<uint64_t>*(Gateway*)> get;
  };
  const std::vector<Def> defs = {
      {"vigil_gateway_requests_total", "Modbus requests by kind", {{"kind", "read"}},
       [](Gateway* g) { return &g->proxy_->stats().reads; }},
      {"vigil_gateway_requests_total", "", {{"kind", "write"}},
       [](Gateway* g) { return &g->proxy_->stats().writes; }},
      {"vigil_gateway_requests_total", "", {{"kind", "other"}},
       [](Gateway* g) { return &g->proxy_->stats().others; }},
      {"vigil_gateway_malformed_total", "Malformed Modbus requests (connection closed)", {},
       [](Gateway* g) { return &g->proxy_->stats().malformed; }},
      {"vigil_gateway_upstream_errors_total", "PLC unreachable, silent or answering garbage", {},
       [](Gateway* g) { return &g->proxy_->stats().upstream_errors; }},
      {"vigil_gateway_connections_total", "Modbus clients accepted", {},
       [](Gateway* g) { return &g->proxy_->stats().connections; }},
      {"vigil_gateway_connections_refused_total", "Modbus clients over modbus.max_clients", {},
       [](Gateway* g) { return &g->proxy_->stats().refused; }},
      {"vigil_gateway_writes_total", "Write decisions by outcome", {{"outcome", "allowed"}},
       [](Gateway* g) { return &g->decider_->stats().allowed; }},
      {"vigil_gateway_writes_total", "", {{"outcome", "denied"}},
       [](Gateway* g) { return &g->decider_->stats().denied; }},
      {"vigil_gateway_writes_total", "", {{"outcome", "would_have_denied"}},
       [](Gateway* g) { return &g->decider_->stats().would_have_denied; }},
      {"vigil_gateway_fail_open_alerts_total",
       "Writes passed without a model verdict (non-critical assets)", {},
       [](Gateway* g) { return &g->decider_->stats().alerts; }},
      {"vigil_gateway_audit_errors_total", "Decisions the audit log refused", {},
       [](Gateway* g) { return &g->audit_errors_; }},
      {"vigil_gateway_sink_errors_total", "Findings a sink refused", {},
       [](Gateway* g) { return &g->sink_errors_; }},
  };
  std::vector<Def> all = defs;
  for (Rule r : {Rule::kUnmapped, Rule::kRange, Rule::kRate, Rule::kModel, Rule::kFallback,
                 Rule::kFunction, Rule::kCustom}) {
    all.push_back({"vigil_gateway_denials_total",
                   "Denials (enforced or would-have) by rule", {{"rule", std::string(RuleName(r))}},
                   [r](Gateway* g) { return &g->decider_->stats().by_rule[static_cast<size_t>(r)]; }});
  }
  for (FallbackCause c : {FallbackCause::kLate, FallbackCause::kBreakerOpen,
                          FallbackCause::kOverload, FallbackCause::kNoState,
                          FallbackCause::kModelError}) {
    all.push_back({"vigil_gateway_fallbacks_total", "Model verdicts not available, by cause",
                   {{"cause", std::string(FallbackCauseName(c))}}, [c](Gateway* g) {
                     return &g->decider_->stats().fallbacks[static_cast<size_t>(c)];
                   }});
  }
  if (telemetry_) {
    auto t = [](auto member) {
      return [member](Gateway* g) { return &(g->telemetry_->stats().*member); };
    };
    all.push_back({"vigil_gateway_telemetry_messages_total", "MQTT messages received", {},
                   t(&TelemetryStats::messages)});
    all.push_back({"vigil_gateway_telemetry_accepted_total",
                   "Telemetry payloads that passed their schema", {},
                   t(&TelemetryStats::accepted)});
    for (size_t e = 1; e < kPayloadErrors; ++e) {
      all.push_back({"vigil_gateway_telemetry_rejected_total",
                     "Telemetry payloads refused, by reason",
                     {{"reason", std::string(PayloadErrorName(static_cast<PayloadError>(e)))}},
                     [e](Gateway* g) { return &g->telemetry_->stats().rejected[e]; }});
    }
    all.push_back({"vigil_gateway_telemetry_connects_total", "Connections to the MQTT broker", {},
                   t(&TelemetryStats::connects)});
    all.push_back({"vigil_gateway_telemetry_connect_failures_total",
                   "Connection attempts to the MQTT broker that failed", {},
                   t(&TelemetryStats::connect_failures)});
    all.push_back({"vigil_gateway_telemetry_disconnects_total",
                   "Established broker connections lost", {}, t(&TelemetryStats::disconnects)});
    all.push_back({"vigil_gateway_telemetry_rows_total", "Complete telemetry rows, by outcome",
                   {{"outcome", "scored"}}, t(&TelemetryStats::rows_scored)});
    all.push_back({"vigil_gateway_telemetry_rows_total", "", {{"outcome", "stale"}},
                   t(&TelemetryStats::rows_stale)});
    auto connected = registry_.AddCallbackGauge(
        "vigil_gateway_telemetry_connected", "1 while connected to the MQTT broker", {},
        [this] { return telemetry_->stats().connected.load() ? 1.0 : 0.0; });
    if (!connected.has_value()) return connected.error();
    handles_.push_back(std::move(connected).value());
  }
  if (scorer_) {
    for (size_t m = 0; m < 2; ++m) {
      const core::Labels model = {{"model", m == 0 ? "ics-residual" : "kitnet"}};
      all.push_back({"vigil_gateway_sensor_anomalous_rows_total",
                     "Scored telemetry rows at or over a model's threshold", model,
                     [m](Gateway* g) { return &g->scorer_->stats().anomalous_rows[m]; }});
      all.push_back({"vigil_gateway_sensor_findings_total",
                     "Sensor-inconsistency findings (a model turning anomalous)", model,
                     [m](Gateway* g) { return &g->scorer_->stats().findings[m]; }});
    }
  }
  for (const Def& d : all) {
    auto h = registry_.AddCallbackCounter(
        d.name, d.help, d.labels, [this, get = d.get] {
          const auto* v = get(this);
          return static_cast<double>(v->load(std::memory_order_relaxed));
        });
    if (!h.has_value()) return h.error();
    handles_.push_back(std::move(h).value());
  }
  return core::Status::Ok();
}

nlohmann::json Gateway::Summary() const {
  const ProxyStats& p = proxy_->stats();
  const DeciderStats& d = decider_->stats();
  nlohmann::json j;
  j["mode"] = ModeName(config_.mode);
  j["requests"] = {{"read", p.reads.load()}, {"write", p.writes.load()},
                   {"other", p.others.load()}, {"malformed", p.malformed.load()}};
  j["connections"] = {{"accepted", p.connections.load()}, {"refused", p.refused.load()}};
  j["upstream_errors"] = p.upstream_errors.load();
  j["writes"] = {{"allowed", d.allowed.load()},
                 {"denied", d.denied.load()},
                 {"would_have_denied", d.would_have_denied.load()},
                 {"fail_open_alerts", d.alerts.load()}};
  nlohmann::json rules = nlohmann::json::object();
  for (size_t r = 1; r < d.by_rule.size(); ++r) {
    rules[std::string(RuleName(static_cast<Rule>(r)))] = d.by_rule[r].load();
  }
  j["denials_by_rule"] = rules;
  nlohmann::json causes = nlohmann::json::object();
  for (size_t c = 1; c < kFallbackCauses; ++c) {
    causes[std::string(FallbackCauseName(static_cast<FallbackCause>(c)))] = d.fallbacks[c].load();
  }
  j["fallbacks"] = causes;
  j["rule_alerts"] = d.rule_alerts.load();
  const auto snap = policy_->Current();
  j["policy"] = {{"version", snap->version},
                 {"stage", policy::StageName(snap->stage)},
                 {"mode", policy::ModeName(snap->mode)},
                 {"rules", snap->rules.enabled_count()},
                 {"files", snap->files}};
  if (engine_) {
    j["model_engine"] = {{"late_answers", engine_->fallbacks(model::FallbackReason::kDeadline)},
                         {"breaker_opened", engine_->breaker().opened()},
                         {"breaker_state", model::BreakerStateName(engine_->breaker().state())}};
  }
  if (telemetry_) {
    const TelemetryStats& t = telemetry_->stats();
    nlohmann::json rejected = nlohmann::json::object();
    for (size_t e = 1; e < kPayloadErrors; ++e) {
      rejected[std::string(PayloadErrorName(static_cast<PayloadError>(e)))] = t.rejected[e].load();
    }
    j["telemetry"] = {{"broker", config_.telemetry.broker.ToString()},
                      {"connected", t.connected.load()},
                      {"connects", t.connects.load()},
                      {"connect_failures", t.connect_failures.load()},
                      {"disconnects", t.disconnects.load()},
                      {"messages", t.messages.load()},
                      {"accepted", t.accepted.load()},
                      {"rejected", rejected},
                      {"last_error", telemetry_->last_error()},
                      {"rows", {{"scored", t.rows_scored.load()}, {"stale", t.rows_stale.load()}}}};
  }
  if (scorer_) {
    const SensorScoreStats& s = scorer_->stats();
    j["sensor_scoring"] = {{"signals", scorer_->signals().size()},
                           {"anomalous_rows", {{"ics-residual", s.anomalous_rows[0].load()},
                                               {"kitnet", s.anomalous_rows[1].load()}}},
                           {"findings", {{"ics-residual", s.findings[0].load()},
                                         {"kitnet", s.findings[1].load()}}}};
  }
  j["audit_errors"] = audit_errors_.load();
  j["sink_errors"] = sink_errors_.load();
  return j;
}

}  // namespace vigil::gateway
