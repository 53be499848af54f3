#include "enforce/gate.h"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace vigil::enforce {
namespace {

constexpr int64_t kFar = std::numeric_limits<int64_t>::max();

policy::RuleSet MustLoad(std::string_view yaml) {
  auto set = policy::RuleSet::LoadString(yaml, "gate.yaml");
  EXPECT_TRUE(set.has_value()) << set.error().message();
  return set.has_value() ? std::move(set).value() : policy::RuleSet();
}

core::Event Connect(uint16_t port) {
  core::Event e;
  e.kind = core::EventKind::kNetConnect;
  e.proc.pid = 42;
  e.proc.comm = "curl";
  e.net.daddr = "127.0.0.1";
  e.net.dport = port;
  return e;
}

constexpr std::string_view kRules = R"Y(
- rule: No port 9
  desc: d
  condition: evt.type = connect and fd.sport = 9
  output: "connect to %fd.sip:%fd.sport by %proc.name"
  priority: WARNING
  action: {type: deny, mode: enforce}
- rule: Watch port 7
  desc: d
  condition: evt.type = connect and fd.sport = 7
  output: "port 7"
  priority: NOTICE
  action: {type: deny, mode: monitor}
- rule: Note port 8
  desc: d
  condition: evt.type = connect and fd.sport = 8
  output: "port 8"
  priority: NOTICE
- rule: Anomalous connect
  desc: d
  condition: evt.type = connect and fd.sport = 6 and ml.anomalous = true
  output: "anomalous"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: deny}
)Y";

struct Recorded {
  std::vector<GateRecord::Kind> kinds;
  std::vector<std::string> rules;
  std::vector<bool> enforced;
  std::vector<FallbackReason> reasons;  // of kFallback records
};

RecordFn Recorder(Recorded* r) {
  return [r](const GateRecord& rec) {
    r->kinds.push_back(rec.kind);
    r->rules.push_back(rec.decision.rule);
    r->enforced.push_back(rec.decision.enforced);
    if (rec.kind == GateRecord::Kind::kFallback) r->reasons.push_back(rec.reason);
  };
}

// Decides the call of `e` in time, as its answer (Answered: the decision is recorded).
GateDecision DecideOn(DecisionGate& g, const core::Event& e, bool* fallback_set = nullptr,
                      bool* fallback_deny = nullptr) {
  policy::EvalInput in;
  in.event = &e;
  GateDecision d = g.Decide(in, kFar, [&](bool deny) {
    if (fallback_set != nullptr) *fallback_set = true;
    if (fallback_deny != nullptr) *fallback_deny = deny;
  });
  g.Answered(e, d);
  return d;
}

TEST(DecisionGateTest, EnforcedDenyRuleDeniesAndIsRecorded) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, Recorder(&rec));
  const GateDecision d = DecideOn(g, Connect(9));
  EXPECT_TRUE(d.deny);
  EXPECT_FALSE(d.would_deny);
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->name, "No port 9");
  EXPECT_EQ(d.output, "connect to 127.0.0.1:9 by curl");
  ASSERT_EQ(rec.rules.size(), 1u);
  EXPECT_EQ(rec.rules[0], "No port 9");
  EXPECT_TRUE(rec.enforced[0]);
  EXPECT_FALSE(DecideOn(g, Connect(80)).deny);
  EXPECT_EQ(g.stats().decisions, 2u);
  EXPECT_EQ(g.stats().denied, 1u);
  EXPECT_NE(registry.ExpositionText().find(
                "vigil_gate_decisions_total{gate=\"t\",outcome=\"deny\"} 1"),
            std::string::npos);
}

TEST(DecisionGateTest, MonitorModeAllowsAndCountsWhatWouldHaveBeenDenied) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  DecisionGate g(&rules, GateOptions{.name = "t", .mode = GateMode::kMonitor}, nullptr, &registry,
                 nullptr);
  const GateDecision d = DecideOn(g, Connect(9));
  EXPECT_FALSE(d.deny);
  EXPECT_TRUE(d.would_deny);
  EXPECT_EQ(g.stats().would_deny, 1u);
  EXPECT_NE(registry.ExpositionText().find("vigil_gate_would_have_enforced_total{gate=\"t\"} 1"),
            std::string::npos);
}

// The agent's gate: enforce mode held back (the agent not yet in enforce mode) decides as in
// monitor mode, and denies once enforcement is allowed again.
TEST(DecisionGateTest, HeldBackEnforceModeDecidesAsMonitorUntilAllowed) {
  policy::RuleSet rules = MustLoad(kRules);
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "fanotify"}, nullptr, nullptr, Recorder(&rec));
  g.SetEnforcementAllowed(false);
  EXPECT_EQ(g.mode(), GateMode::kMonitor);
  GateDecision d = DecideOn(g, Connect(9));
  EXPECT_FALSE(d.deny);
  EXPECT_TRUE(d.would_deny);
  ASSERT_EQ(rec.enforced.size(), 1u);
  EXPECT_FALSE(rec.enforced[0]);
  g.SetEnforcementAllowed(true);
  EXPECT_EQ(g.mode(), GateMode::kEnforce);
  d = DecideOn(g, Connect(9));
  EXPECT_TRUE(d.deny);
  EXPECT_EQ(g.stats().would_deny, 1u);
  EXPECT_EQ(g.stats().denied, 1u);
}

TEST(DecisionGateTest, RuleInMonitorModeDoesNotDenyEvenWhenTheGateEnforces) {
  policy::RuleSet rules = MustLoad(kRules);
  DecisionGate g(&rules, GateOptions{}, nullptr, nullptr, nullptr);
  const GateDecision d = DecideOn(g, Connect(7));
  EXPECT_FALSE(d.deny);
  EXPECT_TRUE(d.would_deny);
}

TEST(DecisionGateTest, OtherActionsAreAlertsNotDenials) {
  policy::RuleSet rules = MustLoad(kRules);
  Recorded rec;
  DecisionGate g(&rules, GateOptions{}, nullptr, nullptr, Recorder(&rec));
  const GateDecision d = DecideOn(g, Connect(8));
  EXPECT_FALSE(d.deny);
  EXPECT_EQ(d.alerts, 1);
  ASSERT_EQ(rec.kinds.size(), 1u);
  EXPECT_EQ(rec.kinds[0], GateRecord::Kind::kDecision);
  EXPECT_FALSE(rec.enforced[0]);
}

TEST(DecisionGateTest, WithoutAVerdictSourceMlRulesNeitherMatchNorWait) {
  policy::RuleSet rules = MustLoad(kRules);
  DecisionGate g(&rules, GateOptions{}, nullptr, nullptr, nullptr);
  bool asked = false;
  const GateDecision d = DecideOn(g, Connect(6), &asked);
  EXPECT_FALSE(d.deny);
  EXPECT_FALSE(asked);
}

class FixedSource final : public VerdictSource {
 public:
  explicit FixedSource(core::Result<core::Verdict> r) : r_(std::move(r)) {}
  core::Result<core::Verdict> Score(const policy::EvalInput&, int64_t) override {
    ++calls;
    return r_;
  }
  void Observe(const policy::EvalInput&) override { ++observed; }
  int calls = 0;
  int observed = 0;

 private:
  core::Result<core::Verdict> r_;
};

TEST(DecisionGateTest, ModelVerdictDecidesMlRules) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Verdict v;
  v.score = 0.97;
  v.anomalous = true;
  FixedSource anomalous(v);
  DecisionGate g(&rules, GateOptions{}, &anomalous, nullptr, nullptr);
  bool set = false, deny = false;
  const GateDecision d = DecideOn(g, Connect(6), &set, &deny);
  EXPECT_TRUE(set);
  EXPECT_TRUE(deny) << "the candidate's fallback is deny, announced before the model is asked";
  EXPECT_TRUE(d.deny);
  EXPECT_FALSE(d.fallback);
  EXPECT_EQ(anomalous.calls, 1);

  v.anomalous = false;
  v.score = 0.1;
  FixedSource normal(v);
  DecisionGate g2(&rules, GateOptions{}, &normal, nullptr, nullptr);
  EXPECT_FALSE(DecideOn(g2, Connect(6)).deny);
  // Calls no ml rule could be about do not ask the model.
  EXPECT_FALSE(DecideOn(g2, Connect(80)).deny);
  EXPECT_EQ(normal.calls, 1);
  // Every decided call is observed (a source may score the process's history of calls).
  EXPECT_EQ(normal.observed, 2);
}

TEST(DecisionGateTest, DecisionRecordsCarryTheVerdictTheModelGave) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Verdict v;
  v.score = 0.97;
  v.anomalous = true;
  v.model_name = "syscall-ngram";
  FixedSource anomalous(v);
  std::vector<core::Verdict> verdicts;
  DecisionGate g(&rules, GateOptions{}, &anomalous, nullptr,
                 [&](const GateRecord& r) { verdicts.push_back(r.decision.verdict); });
  EXPECT_TRUE(DecideOn(g, Connect(6)).deny);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].model_name, "syscall-ngram");
  EXPECT_DOUBLE_EQ(verdicts[0].score, 0.97);
  // A decision the model was not asked about carries no verdict.
  EXPECT_TRUE(DecideOn(g, Connect(9)).deny);
  ASSERT_EQ(verdicts.size(), 2u);
  EXPECT_TRUE(verdicts[1].model_name.empty());
}

TEST(DecisionGateTest, ModelErrorAppliesTheRuleFallbackAndIsCountedAndRecorded) {
  policy::RuleSet rules = MustLoad(kRules);
  FixedSource broken(core::Unavailable("model down"));
  core::Registry registry;
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "t"}, &broken, &registry, Recorder(&rec));
  const core::Event e = Connect(6);
  policy::EvalInput in;
  in.event = &e;
  const GateDecision d = g.Decide(in, kFar, {});
  EXPECT_TRUE(d.fallback);
  EXPECT_TRUE(d.deny);
  // Counted and recorded once the decision is known to be the call's answer.
  EXPECT_TRUE(rec.kinds.empty());
  EXPECT_EQ(g.stats().fallbacks, 0u);
  g.Answered(e, d);
  ASSERT_EQ(rec.kinds.size(), 1u);
  EXPECT_EQ(rec.reasons, std::vector<FallbackReason>{FallbackReason::kModelError});
  EXPECT_EQ(rec.kinds[0], GateRecord::Kind::kFallback);
  EXPECT_EQ(rec.rules[0], "Anomalous connect");
  EXPECT_EQ(g.stats().fallbacks, 1u);
  EXPECT_NE(registry.ExpositionText().find(
                "vigil_gate_fallbacks_total{gate=\"t\",reason=\"model_error\"} 1"),
            std::string::npos);

  // In monitor mode the same fallback only counts as a would-have-denied.
  DecisionGate m(&rules, GateOptions{.mode = GateMode::kMonitor}, &broken, nullptr, nullptr);
  bool deny = true;
  const GateDecision md = DecideOn(m, Connect(6), nullptr, &deny);
  EXPECT_FALSE(deny);
  EXPECT_FALSE(md.deny);
  EXPECT_TRUE(md.would_deny);
}

// A model that fails after the call's deadline: the watchdog answers with the fallback (and
// counts it); the late decision is the same fallback, never an allow that fails open. One that
// fails in time gives a model fallback, which a watchdog that answered first makes late: the call
// counts and records one fallback (the watchdog's), not two, in stats(), in the Prometheus
// counters and in the audit records.
TEST(DecisionGateTest, ModelFailingAfterTheDeadlineStillGivesTheFallback) {
  policy::RuleSet rules = MustLoad(kRules);
  FixedSource broken(core::Unavailable("model down"));
  core::Registry registry;
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "t"}, &broken, &registry, Recorder(&rec));
  const core::Event e = Connect(6);
  policy::EvalInput in;
  in.event = &e;
  const GateDecision d = g.Decide(in, /*deadline_ns=*/1, {});
  EXPECT_TRUE(d.deny);
  EXPECT_TRUE(d.late);
  EXPECT_EQ(g.stats().model_fallbacks, 0u);  // the watchdog's answer is the one counted

  const GateDecision in_time = g.Decide(in, std::numeric_limits<int64_t>::max(), {});
  ASSERT_TRUE(in_time.deny);
  ASSERT_TRUE(in_time.model_fallback);
  g.FallbackAnswered(e, true, FallbackReason::kDeadline);  // the watchdog got there first
  g.LateDecision();
  EXPECT_EQ(g.stats().fallbacks, 1u);
  EXPECT_EQ(g.stats().model_fallbacks, 0u);
  EXPECT_EQ(g.stats().deadline_fallbacks, 1u);
  EXPECT_EQ(rec.reasons, std::vector<FallbackReason>{FallbackReason::kDeadline});
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"t\",reason=\"deadline\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"t\",reason=\"model_error\"} 0"),
            std::string::npos)
      << text;
}

// A deny decision the watchdog overtook (its allow fallback answered the call) writes no record
// of its own and is not counted as a deny in vigil_gate_decisions_total: the audit log and the
// outcome counter hold the answer the call got, the fallback's allow.
TEST(DecisionGateTest, ADenyTheWatchdogOvertookLeavesOnlyTheFallbackRecord) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, Recorder(&rec));
  const core::Event e = Connect(9);  // denied by "No port 9"
  policy::EvalInput in;
  in.event = &e;
  const GateDecision d = g.Decide(in, std::numeric_limits<int64_t>::max(), {});
  ASSERT_TRUE(d.deny);
  EXPECT_TRUE(rec.kinds.empty());  // nothing written before the decision is known to be sent
  g.FallbackAnswered(e, false, FallbackReason::kDeadline);  // the watchdog's allow got there first
  g.LateDecision();
  EXPECT_EQ(rec.kinds, std::vector<GateRecord::Kind>{GateRecord::Kind::kFallback});
  EXPECT_EQ(rec.reasons, std::vector<FallbackReason>{FallbackReason::kDeadline});
  EXPECT_EQ(g.stats().denied, 0u);
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_decisions_total{gate=\"t\",outcome=\"deny\"} 0"),
            std::string::npos)
      << text;

  // The same decision sent as the call's answer: its deny record, counted as a deny.
  const GateDecision sent = g.Decide(in, std::numeric_limits<int64_t>::max(), {});
  g.Answered(e, sent);
  ASSERT_EQ(rec.kinds.size(), 2u);
  EXPECT_EQ(rec.kinds[1], GateRecord::Kind::kDecision);
  EXPECT_EQ(rec.rules[1], "No port 9");
  EXPECT_TRUE(rec.enforced[1]);
  EXPECT_NE(registry.ExpositionText().find(
                "vigil_gate_decisions_total{gate=\"t\",outcome=\"deny\"} 1"),
            std::string::npos);
}

// A late deny whose call the watchdog answered (with its fallback, counted there) is not
// counted a second time as a denied call.
TEST(DecisionGateTest, ALateDenyIsNotCountedTwice) {
  policy::RuleSet rules = MustLoad(kRules);
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, nullptr, nullptr);
  const core::Event e = Connect(9);
  policy::EvalInput in;
  in.event = &e;
  g.FallbackAnswered(e, true, FallbackReason::kDeadline);  // the watchdog, at the deadline
  const GateDecision d = g.Decide(in, /*deadline_ns=*/1, {});
  ASSERT_TRUE(d.deny);
  ASSERT_TRUE(d.late);
  g.LateDecision();  // the sensor found the call answered already
  EXPECT_EQ(g.stats().denied, 1u);
  EXPECT_EQ(g.stats().late, 1u);
  EXPECT_EQ(g.stats().decisions, 1u);
}


TEST(DecisionGateTest, DeadlineFallbacksAreCountedAndRecorded) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  Recorded rec;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, Recorder(&rec));
  const core::Event e = Connect(6);
  g.FallbackAnswered(e, true, FallbackReason::kDeadline);
  g.FallbackAnswered(e, false, FallbackReason::kUnreadable);
  EXPECT_EQ(g.stats().fallbacks, 2u);
  EXPECT_EQ(g.stats().deadline_fallbacks, 1u);
  EXPECT_EQ(g.stats().denied, 1u);
  ASSERT_EQ(rec.kinds.size(), 2u);
  EXPECT_EQ(rec.kinds[0], GateRecord::Kind::kFallback);
  EXPECT_NE(registry.ExpositionText().find(
                "vigil_gate_fallbacks_total{gate=\"t\",reason=\"deadline\"} 1"),
            std::string::npos);
}

TEST(DecisionGateTest, DecisionsAfterTheDeadlineAreLate) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, nullptr);
  const core::Event e = Connect(80);
  policy::EvalInput in;
  in.event = &e;
  EXPECT_TRUE(g.Decide(in, 0, nullptr).late);
  g.LateDecision();  // the sensor's watchdog answers a call whose decision is late
  EXPECT_EQ(g.stats().late, 1u);
  EXPECT_NE(registry.ExpositionText().find("vigil_gate_late_decisions_total{gate=\"t\"} 1"),
            std::string::npos);
}

// A decision that finished before its deadline by Decide's clock but after it by the watchdog's
// (GateWatchdog::Finish reads the clock later): it was not the call's answer, and is counted as
// late once, by LateDecision, in stats() and in Prometheus alike.
TEST(DecisionGateTest, ADecisionOvertakenAfterItFinishedInTimeIsCountedLateOnce) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, nullptr);
  const core::Event e = Connect(9);
  policy::EvalInput in;
  in.event = &e;
  const GateDecision d = g.Decide(in, kFar, {});
  ASSERT_FALSE(d.late);
  EXPECT_EQ(g.stats().late, 0u);
  g.FallbackAnswered(e, false, FallbackReason::kDeadline);
  g.LateDecision();
  EXPECT_EQ(g.stats().late, 1u);
  EXPECT_EQ(g.stats().decisions, 1u);
  EXPECT_EQ(g.stats().denied, 0u);
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_late_decisions_total{gate=\"t\"} 1"), std::string::npos) << text;
}

uint64_t Outcome(core::Registry& registry, std::string_view gate, std::string_view outcome) {
  auto c = registry.GetCounter("vigil_gate_decisions_total", "",
                               {{"gate", std::string(gate)}, {"outcome", std::string(outcome)}});
  EXPECT_TRUE(c.has_value());
  return c.has_value() ? (*c)->Value() : 0;
}

// Every answered call is counted in exactly one outcome of vigil_gate_decisions_total, the
// answer it got, whether a decision or a fallback gave it; a decision the watchdog overtook is
// not an answer. So the outcomes sum to the calls answered, and "deny" to stats().denied.
TEST(DecisionGateTest, EveryAnsweredCallIsCountedOnceInTheOutcomeOfItsAnswer) {
  policy::RuleSet rules = MustLoad(kRules);
  FixedSource broken(core::Unavailable("model down"));
  core::Registry registry;
  DecisionGate g(&rules, GateOptions{.name = "t"}, &broken, &registry, nullptr);
  uint64_t allowed = 0, denied = 0;
  auto answered = [&](bool deny) { ++(deny ? denied : allowed); };
  auto decided = [&](uint16_t port) {
    const GateDecision d = DecideOn(g, Connect(port));
    answered(d.deny);
    return d;
  };
  EXPECT_TRUE(decided(9).deny);            // an enforced deny rule
  EXPECT_FALSE(decided(80).deny);          // nothing matches
  EXPECT_TRUE(decided(7).would_deny);      // a monitored deny rule: allowed
  EXPECT_EQ(decided(8).alerts, 1);         // an alert: allowed
  EXPECT_TRUE(decided(6).model_fallback);  // the model failed: its fallback, deny
  const core::Event e = Connect(9);
  g.FallbackAnswered(e, true, FallbackReason::kDeadline);  // the watchdog's deny
  answered(true);
  g.FallbackAnswered(e, false, FallbackReason::kUnreadable);
  answered(false);
  // A deny overtaken by the watchdog's allow: the call's one answer is the allow.
  policy::EvalInput in;
  in.event = &e;
  ASSERT_TRUE(g.Decide(in, kFar, {}).deny);
  g.FallbackAnswered(e, false, FallbackReason::kDeadline);
  answered(false);
  g.LateDecision();
  // Held back to monitor mode (the agent's gate): the deny rule is allowed.
  g.SetEnforcementAllowed(false);
  EXPECT_FALSE(decided(9).deny);

  EXPECT_EQ(allowed, 6u);
  EXPECT_EQ(denied, 3u);
  EXPECT_EQ(Outcome(registry, "t", "allow"), allowed);
  EXPECT_EQ(Outcome(registry, "t", "deny"), denied);
  EXPECT_EQ(Outcome(registry, "t", "allow") + Outcome(registry, "t", "deny"), allowed + denied);
  const GateStats s = g.stats();
  EXPECT_EQ(s.denied, denied);
  EXPECT_EQ(s.fallbacks, 4u);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.decisions, 7u);  // the overtaken one too
  EXPECT_EQ(s.would_deny, 2u);
  EXPECT_EQ(s.alerts, 1u);
}

// A decision that failed (the deciding caught a library's exception) is the call's fallback:
// counted and recorded as one (reason "error") once it is the call's answer, and as late alone
// when the watchdog answered first.
TEST(DecisionGateTest, AFailedDecisionIsCountedAndRecordedAsAnErrorFallback) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  Recorded rec;
  std::vector<std::string> reasons;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, [&](const GateRecord& r) {
    Recorder (&rec)(r);
    reasons.push_back(r.decision.reason);
  });
  const core::Event e = Connect(80);
  const GateDecision d = g.DecisionFailed(true, "std::bad_alloc");
  EXPECT_TRUE(d.deny);
  EXPECT_TRUE(d.fallback);
  EXPECT_TRUE(rec.kinds.empty());
  g.Answered(e, d);
  EXPECT_EQ(rec.kinds, std::vector<GateRecord::Kind>{GateRecord::Kind::kFallback});
  EXPECT_EQ(rec.reasons, std::vector<FallbackReason>{FallbackReason::kError});
  EXPECT_EQ(reasons, std::vector<std::string>{"decision failed: std::bad_alloc"});
  EXPECT_EQ(FallbackReasonName(FallbackReason::kError), "error");
  const GateDecision overtaken = g.DecisionFailed(false, "overtaken");
  g.FallbackAnswered(e, true, FallbackReason::kDeadline);
  g.LateDecision();
  (void)overtaken;
  const GateStats s = g.stats();
  EXPECT_EQ(s.fallbacks, 2u);
  EXPECT_EQ(s.denied, 2u);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(Outcome(registry, "t", "deny"), 2u);
  EXPECT_EQ(Outcome(registry, "t", "allow"), 0u);
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"t\",reason=\"error\"} 1"),
            std::string::npos)
      << text;
}

// A decision that was not its call's answer counts no alert or would-have-denied in stats(),
// as in the Prometheus counters and the audit log.
TEST(DecisionGateTest, AnOvertakenDecisionCountsNoAlertOrWouldDenyInStats) {
  policy::RuleSet rules = MustLoad(kRules);
  core::Registry registry;
  DecisionGate g(&rules, GateOptions{.name = "t"}, nullptr, &registry, nullptr);
  for (const uint16_t port : {7, 8}) {
    const core::Event e = Connect(port);
    policy::EvalInput in;
    in.event = &e;
    const GateDecision d = g.Decide(in, kFar, {});
    EXPECT_TRUE(d.would_deny || d.alerts == 1);
    g.FallbackAnswered(e, false, FallbackReason::kDeadline);
    g.LateDecision();
  }
  const GateStats s = g.stats();
  EXPECT_EQ(s.would_deny, 0u);
  EXPECT_EQ(s.alerts, 0u);
  EXPECT_EQ(s.late, 2u);
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_would_have_enforced_total{gate=\"t\"} 0"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_gate_alerts_total{gate=\"t\"} 0"), std::string::npos) << text;
}

// Rules swapped in (a policy reload) apply to the decisions after the swap, with their version in
// each record; a decision under way when they are swapped finishes with the rules it started with
// (here: the model is being asked when the swap happens).
constexpr std::string_view kOtherRules = R"Y(
- rule: No port 80
  desc: d
  condition: evt.type = connect and fd.sport = 80
  output: "port 80"
  priority: WARNING
  action: {type: deny, mode: enforce}
)Y";

GateRules Versioned(std::string_view yaml, std::string version) {
  return GateRules{std::make_shared<const policy::RuleSet>(MustLoad(yaml)), std::move(version)};
}

class SwappingSource final : public VerdictSource {
 public:
  core::Result<core::Verdict> Score(const policy::EvalInput&, int64_t) override {
    if (swap) swap();
    core::Verdict v;
    v.score = 0.99;
    v.anomalous = true;
    return v;
  }
  std::function<void()> swap;
};

TEST(DecisionGateTest, SwappedRulesApplyAtomicallyAndEachRecordCarriesTheirVersion) {
  SwappingSource source;
  std::vector<std::string> versions, rules;
  DecisionGate g(Versioned(kRules, "v1"), GateOptions{}, &source, nullptr,
                 [&](const GateRecord& r) {
                   versions.emplace_back(r.policy_version);
                   rules.push_back(r.decision.rule);
                 });
  EXPECT_EQ(g.rules()->version, "v1");
  EXPECT_TRUE(DecideOn(g, Connect(9)).deny);
  EXPECT_FALSE(DecideOn(g, Connect(80)).deny);

  // Swapped while a decision waits on the model: that decision is v1's throughout.
  source.swap = [&] {
    g.SetRules(Versioned(kOtherRules, "v2"));
    source.swap = nullptr;
  };
  const GateDecision during = DecideOn(g, Connect(6));
  EXPECT_TRUE(during.deny);
  ASSERT_NE(during.rule, nullptr);
  EXPECT_EQ(during.rule->name, "Anomalous connect");  // alive: the decision holds its rules
  EXPECT_EQ(during.in_force->version, "v1");
  EXPECT_EQ(g.rules()->version, "v2");

  // After the swap: v2's rules only.
  const GateDecision after = DecideOn(g, Connect(80));
  EXPECT_TRUE(after.deny);
  EXPECT_EQ(after.in_force->version, "v2");
  EXPECT_FALSE(DecideOn(g, Connect(9)).deny);
  EXPECT_FALSE(DecideOn(g, Connect(6)).deny);
  g.FallbackAnswered(Connect(1), false, FallbackReason::kDeadline);

  EXPECT_EQ(versions, (std::vector<std::string>{"v1", "v1", "v2", "v2"}));
  EXPECT_EQ(rules, (std::vector<std::string>{"No port 9", "Anomalous connect", "No port 80", ""}));
}

TEST(DecisionGateTest, RulesGivenByPointerHaveNoVersion) {
  policy::RuleSet rules = MustLoad(kRules);
  std::vector<std::string> versions;
  DecisionGate g(&rules, GateOptions{}, nullptr, nullptr,
                 [&](const GateRecord& r) { versions.emplace_back(r.policy_version); });
  EXPECT_TRUE(DecideOn(g, Connect(9)).deny);
  EXPECT_EQ(versions, (std::vector<std::string>{""}));
  EXPECT_EQ(g.rules()->rules.get(), &rules);
}

}  // namespace
}  // namespace vigil::enforce
