#include "gateway/gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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
  out.rule = fmt::format("gateway.{}", RuleName(d.rule));
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

}  // namespace

std::string DecisionToOcsfJson(const ParsedFrame& frame, const WriteDecision& d,
                               const std::string& host, int64_t time_ns) {
  const core::Decision decision = ToDecision(frame, d, host, time_ns);
  nlohmann::json j = nlohmann::json::parse(core::VerdictToOcsfJson(decision.verdict));
  j["finding_info"]["title"] =
      d.deny ? (d.enforced ? "Actuator command denied" : "Actuator command would have been denied")
             : "Actuator command passed without a model verdict";
  j["vigil"]["decision"] = {{"action", core::ActionName(decision.action)},
                            {"enforced", decision.enforced},
                            {"mode", ModeName(d.mode)},
                            {"rule", decision.rule},
                            {"reason", d.reason}};
  j["vigil"]["modbus"] = ModbusDetail(frame, d);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

core::Result<std::unique_ptr<Gateway>> Gateway::Create(GatewayConfig config,
                                                       GatewayOutputs outputs,
                                                       const core::Clock& clock,
                                                       CommandJudge* judge) {
  std::unique_ptr<Gateway> g(new Gateway(std::move(config), std::move(outputs), clock));
  const GatewayConfig& c = g->config_;
  if (!c.model.training.empty()) {
    auto table = sensor::ReadBatadalTable(c.model.training);
    if (!table.has_value()) return table.error().WithContext("model.training");
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
  VIGIL_RETURN_IF_ERROR(g->RegisterMetrics());
  if (judge != nullptr) g->gate_ = std::make_unique<ModelGate>(*judge, c.decision, clock);
  g->decider_ = std::make_unique<Decider>(c, g->gate_.get(), clock, g->decide_latency_);
  Gateway* self = g.get();
  g->proxy_ = std::make_unique<ModbusProxy>(
      c.modbus, *g->decider_,
      [self](const ParsedFrame& f, const WriteDecision& d) { self->Record(f, d); });
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
  return core::Status::Ok();
}

void Gateway::Stop() {
  if (metrics_) metrics_->Stop();
  if (proxy_) proxy_->Stop();
}

void Gateway::Record(const ParsedFrame& frame, const WriteDecision& d) {
  const int64_t now = clock_.NowUnixNanos();
  if (outputs_.audit != nullptr) {
    const core::Decision decision = ToDecision(frame, d, config_.host, now);
    nlohmann::json payload = audit::DecisionPayload(decision, ModeName(d.mode));
    payload["modbus"] = ModbusDetail(frame, d);
    const audit::RecordType type = d.fallback != FallbackCause::kNone
                                       ? audit::RecordType::kFallback
                                       : audit::RecordType::kDecision;
    if (!outputs_.audit->Append(type, std::move(payload)).ok()) {
      audit_errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if ((d.deny || d.alert) && !outputs_.sinks.empty()) {
    const std::string line = DecisionToOcsfJson(frame, d, config_.host, now);
    std::lock_guard lock(sink_mu_);
    for (pipeline::Sink* s : outputs_.sinks) {
      if (!s->Write(line).ok() || !s->Flush().ok()) {
        sink_errors_.fetch_add(1, std::memory_order_relaxed);
      }
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
                 Rule::kFunction}) {
    all.push_back({"vigil_gateway_denials_total",
                   "Denials (enforced or would-have) by rule", {{"rule", std::string(RuleName(r))}},
                   [r](Gateway* g) { return &g->decider_->stats().by_rule[static_cast<size_t>(r)]; }});
  }
  for (FallbackCause c : {FallbackCause::kLate, FallbackCause::kBreakerOpen,
                          FallbackCause::kOverload, FallbackCause::kNoState}) {
    all.push_back({"vigil_gateway_fallbacks_total", "Model verdicts not available, by cause",
                   {{"cause", std::string(FallbackCauseName(c))}}, [c](Gateway* g) {
                     return &g->decider_->stats().fallbacks[static_cast<size_t>(c)];
                   }});
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
  if (gate_) {
    j["model_gate"] = {{"late_answers", gate_->late_answers()},
                       {"breaker_opened", gate_->breaker_opened()}};
  }
  j["audit_errors"] = audit_errors_.load();
  j["sink_errors"] = sink_errors_.load();
  return j;
}

}  // namespace vigil::gateway
