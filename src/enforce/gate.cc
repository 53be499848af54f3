#include "enforce/gate.h"

#include <algorithm>

#include "core/clock.h"

namespace vigil::enforce {
namespace {

// A counter in the registry, or nullptr when there is none (or it refused the name).
core::Counter* CounterOrNull(core::Registry* r, std::string_view name, std::string_view help,
                             const core::Labels& labels) {
  if (r == nullptr) return nullptr;
  auto c = r->GetCounter(name, help, labels);
  return c.has_value() ? *c : nullptr;
}

void Bump(core::Counter* c) {
  if (c != nullptr) c->Inc();
}

bool Contains(const std::vector<policy::Match>& ms, const policy::Rule* r) {
  return std::any_of(ms.begin(), ms.end(), [r](const policy::Match& m) { return m.rule == r; });
}

}  // namespace

std::string_view GateModeName(GateMode m) { return m == GateMode::kMonitor ? "monitor" : "enforce"; }

bool ParseGateMode(std::string_view name, GateMode* out) {
  if (name == "monitor") {
    *out = GateMode::kMonitor;
  } else if (name == "enforce") {
    *out = GateMode::kEnforce;
  } else {
    return false;
  }
  return true;
}

std::string_view FallbackReasonName(FallbackReason r) {
  switch (r) {
    case FallbackReason::kDeadline: return "deadline";
    case FallbackReason::kModelError: return "model_error";
    case FallbackReason::kUnreadable: return "unreadable";
    case FallbackReason::kError: return "error";
    case FallbackReason::kQueued: return "queued";
    case FallbackReason::kStopping: return "stopping";
  }
  return "";
}

bool IsGateDenyRule(const policy::Rule& r) { return r.has_action && r.action.type == "deny"; }

struct DecisionGate::Metrics {
  std::atomic<uint64_t> decisions{0}, denied{0}, would_deny{0}, alerts{0}, fallbacks{0},
      deadline_fallbacks{0}, model_fallbacks{0}, stopping_fallbacks{0}, late{0};
  core::Counter* allow = nullptr;
  core::Counter* deny = nullptr;
  core::Counter* would = nullptr;
  core::Counter* alert = nullptr;
  core::Counter* fb_deadline = nullptr;
  core::Counter* fb_model = nullptr;
  core::Counter* fb_unreadable = nullptr;
  core::Counter* fb_error = nullptr;
  core::Counter* fb_queued = nullptr;
  core::Counter* fb_stopping = nullptr;
  core::Counter* late_c = nullptr;
  core::Histogram* seconds = nullptr;
};

DecisionGate::DecisionGate(const policy::RuleSet* rules, GateOptions options,
                           VerdictSource* verdicts, core::Registry* metrics, RecordFn record)
    : DecisionGate(GateRules{std::shared_ptr<const policy::RuleSet>(
                                 std::shared_ptr<const policy::RuleSet>(), rules),
                             ""},
                   std::move(options), verdicts, metrics, std::move(record)) {}

DecisionGate::DecisionGate(GateRules rules, GateOptions options, VerdictSource* verdicts,
                           core::Registry* metrics, RecordFn record)
    : rules_(std::make_shared<const GateRules>(std::move(rules))),
      options_(std::move(options)),
      verdicts_(verdicts),
      record_(std::move(record)),
      metrics_(std::make_unique<Metrics>()) {
  const std::string& g = options_.name;
  Metrics& m = *metrics_;
  constexpr std::string_view kDecisions = "vigil_gate_decisions_total";
  constexpr std::string_view kDecisionsHelp =
      "Calls a gate answered, by the answer (allow, deny): its decision or a fallback";
  m.allow = CounterOrNull(metrics, kDecisions, kDecisionsHelp, {{"gate", g}, {"outcome", "allow"}});
  m.deny = CounterOrNull(metrics, kDecisions, kDecisionsHelp, {{"gate", g}, {"outcome", "deny"}});
  m.would = CounterOrNull(metrics, "vigil_gate_would_have_enforced_total",
                          "Calls a gate allowed that enforce mode would have denied", {{"gate", g}});
  m.alert = CounterOrNull(metrics, "vigil_gate_alerts_total",
                          "Matches of rules whose action is not deny, at a gate", {{"gate", g}});
  constexpr std::string_view kFallbacks = "vigil_gate_fallbacks_total";
  constexpr std::string_view kFallbacksHelp =
      "Calls answered with a fallback (deadline passed, model failed, arguments unreadable, "
      "decision failed, queued behind a stuck decision, pending when the gate stopped)";
  m.fb_deadline = CounterOrNull(metrics, kFallbacks, kFallbacksHelp,
                                {{"gate", g}, {"reason", "deadline"}});
  m.fb_model = CounterOrNull(metrics, kFallbacks, kFallbacksHelp,
                             {{"gate", g}, {"reason", "model_error"}});
  m.fb_unreadable = CounterOrNull(metrics, kFallbacks, kFallbacksHelp,
                                  {{"gate", g}, {"reason", "unreadable"}});
  m.fb_error =
      CounterOrNull(metrics, kFallbacks, kFallbacksHelp, {{"gate", g}, {"reason", "error"}});
  m.fb_queued =
      CounterOrNull(metrics, kFallbacks, kFallbacksHelp, {{"gate", g}, {"reason", "queued"}});
  m.fb_stopping =
      CounterOrNull(metrics, kFallbacks, kFallbacksHelp, {{"gate", g}, {"reason", "stopping"}});
  m.late_c = CounterOrNull(metrics, "vigil_gate_late_decisions_total",
                           "Decisions that finished after their call was answered by the watchdog",
                           {{"gate", g}});
  if (metrics != nullptr) {
    auto h = metrics->GetHistogram("vigil_gate_decision_seconds",
                                   "Time from a call's arrival to its decision", {{"gate", g}});
    if (h.has_value()) m.seconds = *h;
  }
}

DecisionGate::~DecisionGate() = default;

void DecisionGate::SetRules(GateRules rules) {
  rules_.store(std::make_shared<const GateRules>(std::move(rules)));
}

bool DecisionGate::Enforced(const policy::Rule& r) const {
  return mode() == GateMode::kEnforce && r.action.mode == "enforce";
}

void DecisionGate::Record(GateRecord::Kind kind, const core::Event& e, core::Action action,
                          const policy::Rule* rule, std::string reason, bool enforced,
                          std::string_view version, FallbackReason why,
                          const core::Verdict* verdict) {
  if (!record_) return;
  GateRecord rec;
  rec.kind = kind;
  rec.event = &e;
  rec.decision.action = action;
  rec.decision.rule = rule != nullptr ? rule->name : "";
  rec.decision.reason = std::move(reason);
  rec.decision.enforced = enforced;
  if (verdict != nullptr) rec.decision.verdict = *verdict;
  rec.gate = options_.name;
  rec.mode = GateModeName(mode());
  rec.reason = why;
  rec.policy_version = version;
  record_(rec);
}

GateDecision DecisionGate::Decide(const policy::EvalInput& in, int64_t deadline_ns,
                                  const std::function<void(bool deny)>& set_fallback) {
  return Decide(rules_.load(), in, deadline_ns, set_fallback);
}

GateDecision DecisionGate::Decide(std::shared_ptr<const GateRules> in_force,
                                  const policy::EvalInput& in, int64_t deadline_ns,
                                  const std::function<void(bool deny)>& set_fallback) {
  Metrics& m = *metrics_;
  const core::Event& e = *in.event;
  GateDecision d;
  const policy::RuleSet& rules = *in_force->rules;
  d.in_force = std::move(in_force);
  // Read once: a source given meanwhile (SetVerdictSource) serves the next decision.
  VerdictSource* const verdicts = verdicts_.load(std::memory_order_acquire);
  if (verdicts != nullptr) verdicts->Observe(in);
  std::vector<policy::Match> matches = rules.Evaluate(in);

  auto deny_match = [&](const std::vector<policy::Match>& ms) -> const policy::Match* {
    const policy::Match* first = nullptr;
    for (const policy::Match& mt : ms) {
      if (!IsGateDenyRule(*mt.rule)) continue;
      if (Enforced(*mt.rule)) return &mt;  // an enforced deny wins over a monitored one
      if (first == nullptr) first = &mt;
    }
    return first;
  };

  // Rules waiting on the model: they match if the model flags the process, not without it.
  std::vector<const policy::Rule*> candidates;
  core::Result<core::Verdict> verdict = core::Unavailable("no model asked");
  const policy::Match* dm = deny_match(matches);
  if (verdicts != nullptr && (dm == nullptr || !Enforced(*dm->rule))) {
    core::Verdict flagged;
    flagged.score = 1.0;
    flagged.anomalous = true;
    flagged.model_name = "<pending>";
    policy::EvalInput assumed = in;
    assumed.verdict = &flagged;
    for (const policy::Match& mt : rules.Evaluate(assumed)) {
      if (IsGateDenyRule(*mt.rule) && !Contains(matches, mt.rule)) candidates.push_back(mt.rule);
    }
  }

  if (!candidates.empty()) {
    bool fallback_deny = false;
    const policy::Rule* fb_rule = candidates.front();
    for (const policy::Rule* r : candidates) {
      if (r->action.fallback == "deny" && Enforced(*r)) {
        fallback_deny = true;
        fb_rule = r;
        break;
      }
    }
    if (set_fallback) set_fallback(fallback_deny);
    verdict = verdicts->Score(in, deadline_ns);
    if (!verdict.has_value() && core::SystemClock::Get().MonotonicNanos() < deadline_ns) {
      // The model failed in time: the candidates' fallback, applied now (counted and recorded
      // by Answered unless the watchdog overtakes the decision).
      d.fallback = true;
      d.model_fallback = true;
      d.model_error = verdict.error().message();
      d.rule = fb_rule;
      d.deny = fallback_deny;
      // A monitored candidate whose fallback is deny would have denied.
      for (const policy::Rule* r : candidates) {
        if (r->action.fallback == "deny" && !Enforced(*r)) d.would_deny = !d.deny;
      }
    } else if (!verdict.has_value()) {
      // Failed after the deadline: the watchdog answers (or has answered) with this fallback and
      // counts it (a decision finished past the deadline is never sent: sensor/gate_call.h).
      d.rule = fb_rule;
      d.deny = fallback_deny;
      d.fallback = true;
    } else {
      policy::EvalInput scored = in;
      scored.verdict = &*verdict;
      matches = rules.Evaluate(scored);
      dm = deny_match(matches);
    }
  }

  // Recorded by Answered, once the decision is known to be the call's answer.
  if (!d.fallback && dm != nullptr) {
    d.rule = dm->rule;
    d.output = dm->output;
    d.deny = Enforced(*dm->rule);
    d.would_deny = !d.deny;
    d.deny_match = static_cast<int>(dm - matches.data());
  }
  for (const policy::Match& mt : matches) {
    if (!IsGateDenyRule(*mt.rule)) ++d.alerts;
  }
  if (verdict.has_value()) d.verdict = std::move(*verdict);
  d.matches = std::move(matches);

  // What the decision counts towards the call's answer (denied, would_deny, alerts) is counted
  // by Answered, and a decision the watchdog overtook by LateDecision: only then is it known
  // whether the decision is the call's answer (the watchdog's Finish reads the clock after this).
  const int64_t now = core::SystemClock::Get().MonotonicNanos();
  d.late = now >= deadline_ns;
  m.decisions.fetch_add(1, std::memory_order_relaxed);
  if (m.seconds != nullptr && e.ingest_ns > 0) m.seconds->ObserveNanos(now - e.ingest_ns);
  return d;
}

GateDecision DecisionGate::DecisionFailed(bool deny, std::string what) {
  GateDecision d;
  d.deny = deny;
  d.fallback = true;
  d.error_fallback = true;
  d.error = std::move(what);
  d.in_force = rules_.load();
  metrics_->decisions.fetch_add(1, std::memory_order_relaxed);
  return d;
}

void DecisionGate::FallbackAnswered(const core::Event& event, bool deny, FallbackReason why,
                                    const GateRules* rules) {
  Metrics& m = *metrics_;
  m.fallbacks.fetch_add(1, std::memory_order_relaxed);
  std::string_view reason;
  switch (why) {
    case FallbackReason::kDeadline:
      m.deadline_fallbacks.fetch_add(1, std::memory_order_relaxed);
      Bump(m.fb_deadline);
      reason = "no decision by the deadline";
      break;
    case FallbackReason::kQueued:
      Bump(m.fb_queued);
      reason = "queued behind a decision stuck past its deadline";
      break;
    case FallbackReason::kStopping:
      m.stopping_fallbacks.fetch_add(1, std::memory_order_relaxed);
      Bump(m.fb_stopping);
      reason = "pending when the gate stopped";
      break;
    default:  // kUnreadable (kModelError and kError come with a decision: Answered)
      Bump(m.fb_unreadable);
      reason = "the call's arguments could not be read";
      break;
  }
  if (deny) m.denied.fetch_add(1, std::memory_order_relaxed);
  Bump(deny ? m.deny : m.allow);  // the call's answer, as a decision's (docs/gates.md, Metrics)
  const std::shared_ptr<const GateRules> in_force = rules == nullptr ? rules_.load() : nullptr;
  Record(GateRecord::Kind::kFallback, event, deny ? core::Action::kDeny : core::Action::kAllow,
         nullptr, std::string(reason), deny, (rules != nullptr ? rules : in_force.get())->version,
         why);
}

void DecisionGate::Answered(const core::Event& event, const GateDecision& d) {
  Metrics& m = *metrics_;
  Bump(d.deny ? m.deny : m.allow);
  if (d.deny) m.denied.fetch_add(1, std::memory_order_relaxed);
  if (d.would_deny) {
    m.would_deny.fetch_add(1, std::memory_order_relaxed);
    Bump(m.would);
  }
  if (d.alerts > 0) {
    m.alerts.fetch_add(static_cast<uint64_t>(d.alerts), std::memory_order_relaxed);
    if (m.alert != nullptr) m.alert->Inc(static_cast<uint64_t>(d.alerts));
  }
  // (Not `cond ? version : ""`: that makes a temporary std::string the view would outlive.)
  const std::string_view version =
      d.in_force != nullptr ? std::string_view(d.in_force->version) : std::string_view();
  const core::Verdict* verdict = d.verdict.has_value() ? &*d.verdict : nullptr;
  if (d.deny_match >= 0) {
    const policy::Match& dm = d.matches[static_cast<size_t>(d.deny_match)];
    Record(GateRecord::Kind::kDecision, event, core::Action::kDeny, dm.rule, dm.output, d.deny,
           version, FallbackReason::kDeadline, verdict);
  }
  for (const policy::Match& mt : d.matches) {
    if (IsGateDenyRule(*mt.rule)) continue;
    Record(GateRecord::Kind::kDecision, event, core::Action::kAlert, mt.rule, mt.output, false,
           version, FallbackReason::kDeadline, verdict);
  }
  if (d.error_fallback) {
    m.fallbacks.fetch_add(1, std::memory_order_relaxed);
    Bump(m.fb_error);
    Record(GateRecord::Kind::kFallback, event, d.deny ? core::Action::kDeny : core::Action::kAllow,
           nullptr, "decision failed: " + d.error, d.deny, version, FallbackReason::kError);
    return;
  }
  if (!d.model_fallback) return;
  m.fallbacks.fetch_add(1, std::memory_order_relaxed);
  m.model_fallbacks.fetch_add(1, std::memory_order_relaxed);
  Bump(m.fb_model);
  Record(GateRecord::Kind::kFallback, event, d.deny ? core::Action::kDeny : core::Action::kAllow,
         d.rule, "model failed: " + d.model_error, d.deny, version,
         FallbackReason::kModelError);
}

void DecisionGate::LateDecision() {
  metrics_->late.fetch_add(1, std::memory_order_relaxed);
  Bump(metrics_->late_c);
}

GateStats DecisionGate::stats() const {
  const Metrics& m = *metrics_;
  GateStats s;
  s.decisions = m.decisions.load(std::memory_order_relaxed);
  s.denied = m.denied.load(std::memory_order_relaxed);
  s.would_deny = m.would_deny.load(std::memory_order_relaxed);
  s.alerts = m.alerts.load(std::memory_order_relaxed);
  s.fallbacks = m.fallbacks.load(std::memory_order_relaxed);
  s.deadline_fallbacks = m.deadline_fallbacks.load(std::memory_order_relaxed);
  s.model_fallbacks = m.model_fallbacks.load(std::memory_order_relaxed);
  s.stopping_fallbacks = m.stopping_fallbacks.load(std::memory_order_relaxed);
  s.late = m.late.load(std::memory_order_relaxed);
  return s;
}

}  // namespace vigil::enforce
