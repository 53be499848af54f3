#include "gateway/decider.h"

#include <cmath>

#include <fmt/format.h>

#include "core/thread_priority.h"

namespace vigil::gateway {
namespace {

uint32_t Key(RegisterKind kind, int unit, uint16_t address) {
  return static_cast<uint32_t>(kind) << 24 | static_cast<uint32_t>(unit + 1) << 16 | address;
}

// A stream of commands scores nothing: the model judges one command at a time (Score).
class NoStream final : public model::StreamScorer {
 public:
  void Observe(const core::Event&) override {}
  core::Verdict Current() const override { return {}; }
  uint64_t observed() const override { return 0; }
};

FallbackCause CauseOf(model::FallbackReason r) {
  switch (r) {
    case model::FallbackReason::kBreakerOpen: return FallbackCause::kBreakerOpen;
    case model::FallbackReason::kDeadline: return FallbackCause::kLate;
    case model::FallbackReason::kModelError: return FallbackCause::kModelError;
    case model::FallbackReason::kQueueFull:
    case model::FallbackReason::kStopped: return FallbackCause::kOverload;
    case model::FallbackReason::kNone: break;
  }
  return FallbackCause::kNone;
}

Rule RuleOf(std::string_view policy_rule) {
  if (policy_rule == "gateway.unmapped") return Rule::kUnmapped;
  if (policy_rule == "gateway.range") return Rule::kRange;
  if (policy_rule == "gateway.rate") return Rule::kRate;
  if (policy_rule == "gateway.model") return Rule::kModel;
  if (policy_rule == "gateway.function") return Rule::kFunction;
  return Rule::kCustom;
}

}  // namespace

std::string_view FallbackCauseName(FallbackCause c) {
  switch (c) {
    case FallbackCause::kNone: return "none";
    case FallbackCause::kLate: return "late";
    case FallbackCause::kBreakerOpen: return "breaker-open";
    case FallbackCause::kOverload: return "overload";
    case FallbackCause::kNoState: return "no-state";
    case FallbackCause::kModelError: return "model-error";
  }
  return "none";
}

std::string_view RuleName(Rule r) {
  switch (r) {
    case Rule::kNone: return "none";
    case Rule::kUnmapped: return "unmapped";
    case Rule::kRange: return "range";
    case Rule::kRate: return "rate";
    case Rule::kModel: return "model";
    case Rule::kFallback: return "fallback";
    case Rule::kFunction: return "function";
    case Rule::kCustom: return "custom";
  }
  return "none";
}

std::unique_ptr<model::StreamScorer> JudgeModel::NewStream(std::string_view) const {
  return std::make_unique<NoStream>();
}

core::Result<core::Verdict> JudgeModel::Score(const model::FeatureView& request) const {
  if (request.subject.empty() || request.values.size() != 1 || !(request.values[0] >= 0) ||
      request.values[0] > 65535) {
    return core::InvalidArgument(
        "actuator-state: a request is an actuator signal and one state in 0..65535");
  }
  Judgement j =
      judge_.Judge(std::string(request.subject), static_cast<uint32_t>(request.values[0]));
  core::Verdict v;
  v.model_name = name_;
  v.model_version = version_;
  v.subject = std::string(request.subject);
  v.events = j.outcome == Judgement::Outcome::kUnknown ? 0 : 1;
  v.anomalous = j.outcome == Judgement::Outcome::kInconsistent;
  v.score = v.anomalous ? j.score : 0.0;
  v.explanation = std::move(j.why);
  return v;
}

model::InferenceEngineOptions ModelEngineOptions(const DecisionConfig& decision,
                                                 core::Registry* registry) {
  model::InferenceEngineOptions o;
  o.name = "gateway";
  o.max_batch = 1;
  o.max_batch_delay_ns = 0;
  o.queue_capacity = 64;
  o.sync_inline = false;  // a slow model must not hold the proxy's thread past the deadline
  o.cache.capacity = 0;   // the same command may be right now and wrong a minute later
  o.breaker.failure_threshold = decision.breaker_failures;
  o.breaker.window_ns = int64_t{10} * 1'000'000'000;
  o.breaker.cooldown_ns = int64_t{decision.breaker_cooldown_ms} * 1'000'000;
  o.fallback_score = 1.0;
  o.fallback_anomalous = true;
  o.registry = registry;
  const int priority = static_cast<int>(decision.realtime_priority);
  // A refusal is reported by the proxy (ModbusProxy::priority_status): the host's alike.
  o.on_worker_start = [priority] { (void)core::SetRealtimePriority(priority); };
  return o;
}

std::string BuiltinRules(const GatewayConfig& c) {
  std::string y =
      "# The gateway's built-in rules, generated from its config (docs/gateway.md, \"Rules\").\n";
  const auto rule = [&](std::string_view name, std::string_view desc, std::string_view condition,
                        std::string_view output) {
    y += fmt::format(
        "- rule: {}\n  desc: \"{}\"\n  condition: {}\n  output: \"{}\"\n  priority: WARNING\n"
        "  tags: [gateway, modbus]\n  action: {{type: deny}}\n",
        name, desc, condition, output);
  };
  if (c.modbus.deny_unmapped_writes) {
    rule("gateway.unmapped", "a write to a register no asset names (modbus.unmapped_writes)",
         "modbus.write = true and modbus.mapped = false",
         "write to unmapped %modbus.register %modbus.address (unit %modbus.unit)");
  }
  rule("gateway.range", "a value outside the asset's [min, max] (assets[].min, max)",
       "modbus.in_range = false",
       "%modbus.asset := %modbus.value outside the allowed range [%modbus.min, %modbus.max]");
  rule("gateway.rate", "a change faster than the asset's max_rate per second",
       "modbus.rate_exceeded = true",
       "%modbus.asset := %modbus.value changes it at %modbus.rate per s (max rate "
       "%modbus.max_rate/s)");
  rule("gateway.model",
       "a command the actuator-state model finds inconsistent with the plant state",
       "modbus.signal exists and ml.anomalous = true",
       "%modbus.asset := %modbus.value is inconsistent with the plant state (%ml.explain)");
  if (c.modbus.deny_other_functions) {
    rule("gateway.function", "a function code other than reads and checked writes",
         "modbus.write = false",
         "function code %modbus.function (unit %modbus.unit) is not let through");
  }
  return y;
}

core::Result<std::unique_ptr<policy::PolicyEngine>> CreateGatewayPolicy(const GatewayConfig& c,
                                                                        core::Registry* registry) {
  policy::PolicyOptions o;
  o.embedded_yaml = BuiltinRules(c);
  o.embedded_name = c.source + " (built-in gateway rules)";
  o.embedded_first = true;
  o.files = c.policy.rules;
  bool enforce = c.mode == Mode::kEnforce;
  for (const AssetConfig& a : c.assets) enforce = enforce || a.mode == Mode::kEnforce;
  o.mode = enforce ? policy::Mode::kEnforce : policy::Mode::kMonitor;
  o.stage = c.policy.stage;
  o.version = c.policy.version;
  o.default_class = policy::AssetClass::kStandard;
  auto engine = policy::PolicyEngine::Create(std::move(o), registry);
  if (!engine.has_value()) return engine.error().WithContext(c.source + ": policy.rules");
  const auto snap = (*engine)->Current();
  for (const policy::LoadWarning& w : snap->rules.warnings()) {
    return core::InvalidArgument(fmt::format(
        "{}: policy.rules: {} (the gateway refuses rules it cannot evaluate in full)", c.source,
        w.ToString()));
  }
  return engine;
}

Decider::Decider(const GatewayConfig& config, const policy::PolicyEngine& policy,
                 model::InferenceEngine* model, const core::Clock& clock,
                 core::Histogram* decide_latency)
    : config_(config), policy_(policy), model_(model), clock_(clock), latency_(decide_latency) {
  for (const AssetConfig& a : config.assets) {
    auto state = std::make_unique<AssetState>();
    state->config = &a;
    assets_[Key(a.kind, a.unit, a.address)] = std::move(state);
  }
}

Decider::AssetState* Decider::Find(RegisterKind kind, uint8_t unit, uint16_t address) {
  auto it = assets_.find(Key(kind, unit, address));
  if (it == assets_.end()) it = assets_.find(Key(kind, -1, address));
  return it == assets_.end() ? nullptr : it->second.get();
}

bool Decider::Apply(const policy::Decision& pd, const AssetConfig* a, WriteDecision* d) {
  d->policy_generation = pd.policy_generation;
  d->stage = pd.stage;
  d->asset_class = pd.asset_class;
  if (!pd.matched()) return false;
  d->policy_version = pd.policy_version;
  if (!policy::Acts(pd.action)) {
    // An alert rule: the write passes; the first such match is recorded with the decision.
    if (!d->alert) {
      d->alert = true;
      d->rule = RuleOf(pd.rule);
      d->policy_rule = pd.rule;
      d->reason = pd.output;
    }
    return false;
  }
  const Mode asset_mode = a != nullptr ? a->mode.value_or(config_.mode) : config_.mode;
  d->deny = true;
  d->rule = RuleOf(pd.rule);
  d->policy_rule = pd.rule;
  d->mode = pd.enforce() && asset_mode == Mode::kEnforce ? Mode::kEnforce : Mode::kMonitor;
  d->score = 1.0;
  d->reason = pd.output;
  if (a != nullptr) {
    d->asset = a->name;
    d->critical = a->critical;
  }
  return true;
}

bool Decider::Check(AssetState* s, policy::EvalInput* in, policy::ModbusInput* m,
                    WriteDecision* d) {
  const AssetConfig* a = s != nullptr ? s->config : nullptr;
  m->asset = a != nullptr ? std::string_view(a->name) : std::string_view();
  m->signal = a != nullptr ? std::string_view(a->signal) : std::string_view();
  m->critical = a != nullptr && a->critical;
  m->min = a != nullptr ? a->min : 0;
  m->max = a != nullptr ? a->max : 0;
  m->max_rate = a != nullptr ? a->max_rate : 0;
  m->has_rate = false;
  m->rate = 0;
  m->rate_exceeded = false;
  if (a != nullptr && a->max_rate > 0) {
    std::lock_guard lock(s->mu);
    if (s->has_last) {
      const double secs = static_cast<double>(clock_.MonotonicNanos() - s->last_ns) * 1e-9;
      const double change = std::fabs(static_cast<double>(m->value) - s->last);
      m->has_rate = true;
      m->rate = change == 0 ? 0 : (secs > 0 ? change / secs : INFINITY);
      m->rate_exceeded = change > a->max_rate * secs;
    }
  }
  in->verdict = nullptr;
  const auto mark = [&] {
    d->address = m->address;
    d->value = m->value;
  };
  if (Apply(policy_.Decide(in), a, d)) {
    d->exception = kExceptionIllegalDataValue;
    mark();
    return true;
  }
  if (a == nullptr || a->signal.empty()) return false;

  FallbackCause cause = FallbackCause::kNoState;
  if (model_ != nullptr) {
    const float state = static_cast<float>(m->value);
    const model::FeatureView view{a->signal, core::Arch::kUnknown, {}, {&state, 1}};
    model::EngineVerdict ev =
        model_->ScoreSync(view, int64_t{config_.decision.deadline_us} * 1000);
    cause = ev.fallback() ? CauseOf(ev.reason) : FallbackCause::kNone;
    if (cause == FallbackCause::kNone && ev.verdict.events == 0) cause = FallbackCause::kNoState;
    if (cause == FallbackCause::kNone) {
      in->verdict = &ev.verdict;
      const policy::Decision pd = policy_.Decide(in);
      in->verdict = nullptr;
      if (!Apply(pd, a, d)) return false;
      d->exception = kExceptionIllegalDataValue;
      d->score = ev.verdict.score;
      d->why = std::move(ev.verdict.explanation);
      mark();
      return true;
    }
  }
  stats_.fallbacks[static_cast<size_t>(cause)].fetch_add(1, std::memory_order_relaxed);
  // What the rules would do had the model flagged the command: their fallback applies.
  core::Verdict assumed;
  assumed.score = 1.0;
  assumed.anomalous = true;
  assumed.model_name = "actuator-state";
  assumed.events = 1;
  const std::optional<policy::PolicyEngine::AtStake> stake = policy_.FallbackAtStake(in, assumed);
  if (!stake.has_value() || stake->fallback == policy::Fallback::kAllow) return false;
  const std::string_view cls = policy::AssetClassName(
      a->critical ? policy::AssetClass::kCritical : policy::AssetClass::kNonCritical);
  const std::string why = fmt::format("{} := {}: model verdict unavailable ({})", a->name,
                                      m->value, FallbackCauseName(cause));
  const Mode asset_mode = a->mode.value_or(config_.mode);
  if (stake->fallback == policy::Fallback::kDeny) {
    d->deny = true;
    d->rule = Rule::kFallback;
    d->policy_rule = stake->rule;
    d->fallback = cause;
    d->asset = a->name;
    d->critical = a->critical;
    d->mode = stake->mode == policy::Mode::kEnforce && asset_mode == Mode::kEnforce
                  ? Mode::kEnforce
                  : Mode::kMonitor;
    d->score = 1.0;
    d->exception = kExceptionServerBusy;
    d->reason = fmt::format("{}; {} asset fails closed ({}: fallback deny)", why, cls, stake->rule);
    mark();
    return true;
  }
  // Fail open, with an alert; later values of the same write are still checked.
  if (!d->alert || d->fallback == FallbackCause::kNone) {
    d->alert = true;
    d->fallback = cause;
    d->asset = a->name;
    d->critical = a->critical;
    d->mode = asset_mode;
    d->rule = Rule::kFallback;
    d->policy_rule = stake->rule;
    d->reason = fmt::format("{}; {} asset fails open ({}: fallback alert)", why, cls, stake->rule);
    mark();
  }
  return false;
}

void Decider::Finish(WriteDecision* d) {
  if (d->deny) {
    d->alert = false;
    d->enforced = d->mode == Mode::kEnforce;
    stats_.by_rule[static_cast<size_t>(d->rule)].fetch_add(1, std::memory_order_relaxed);
    (d->enforced ? stats_.denied : stats_.would_have_denied)
        .fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.allowed.fetch_add(1, std::memory_order_relaxed);
    if (d->alert) {
      (d->fallback != FallbackCause::kNone ? stats_.alerts : stats_.rule_alerts)
          .fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (d->policy_version.empty()) d->policy_version = policy_.Current()->version;
}

WriteDecision Decider::Decide(const WriteRequest& w) {
  const int64_t start = clock_.MonotonicNanos();
  stats_.writes.fetch_add(1, std::memory_order_relaxed);
  WriteDecision d;
  d.mode = config_.mode;
  core::Event event;
  event.kind = core::EventKind::kStreamEnd;  // evt.type "": no host rule reads a Modbus write
  event.seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  event.time_ns = clock_.NowUnixNanos();
  policy::ModbusInput m;
  m.unit = w.unit;
  m.function = w.function;
  m.write = true;
  m.coil = w.kind == RegisterKind::kCoil;
  policy::EvalInput in;
  in.event = &event;
  in.modbus = &m;
  for (size_t i = 0; i < w.values.size(); ++i) {
    m.address = static_cast<uint16_t>(w.address + i);
    m.value = w.values[i];
    if (Check(Find(w.kind, w.unit, m.address), &in, &m, &d)) break;
  }
  Finish(&d);
  if (latency_ != nullptr) latency_->ObserveNanos(clock_.MonotonicNanos() - start);
  return d;
}

WriteDecision Decider::DecideOther(uint8_t unit, uint8_t function) {
  WriteDecision d;
  d.mode = config_.mode;
  core::Event event;
  event.kind = core::EventKind::kStreamEnd;
  event.seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  event.time_ns = clock_.NowUnixNanos();
  policy::ModbusInput m;
  m.unit = unit;
  m.function = function;
  policy::EvalInput in;
  in.event = &event;
  in.modbus = &m;
  if (Apply(policy_.Decide(&in), nullptr, &d)) d.exception = kExceptionIllegalFunction;
  if (d.deny || d.alert) Finish(&d);
  if (d.policy_version.empty()) d.policy_version = policy_.Current()->version;
  return d;
}

void Decider::Committed(const WriteRequest& w) {
  const int64_t now = clock_.MonotonicNanos();
  for (size_t i = 0; i < w.values.size(); ++i) {
    AssetState* s = Find(w.kind, w.unit, static_cast<uint16_t>(w.address + i));
    if (s == nullptr || s->config->max_rate <= 0) continue;
    std::lock_guard lock(s->mu);
    s->has_last = true;
    s->last = w.values[i];
    s->last_ns = now;
  }
}

}  // namespace vigil::gateway
