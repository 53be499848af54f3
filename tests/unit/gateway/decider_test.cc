#include "gateway/decider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

// A model that answers only when the test releases it (a model that is slow or hung).
class HeldJudge final : public CommandJudge {
 public:
  Judgement Judge(const std::string&, uint32_t) override {
    std::unique_lock lock(mu_);
    ++asked_;
    cv_.wait(lock, [&] { return released_; });
    Judgement j;
    j.outcome = Judgement::Outcome::kConsistent;
    return j;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int asked_ = 0;
};

// A model with a fixed answer.
class FixedJudge final : public CommandJudge {
 public:
  explicit FixedJudge(Judgement::Outcome o) : outcome_(o) {}
  Judgement Judge(const std::string& signal, uint32_t state) override {
    Judgement j;
    j.outcome = outcome_;
    if (outcome_ == Judgement::Outcome::kInconsistent) {
      j.score = 0.97;
      j.why.push_back({signal + "=" + std::to_string(state) + " never seen", 0.97});
    }
    return j;
  }

 private:
  Judgement::Outcome outcome_;
};

GatewayConfig Config(Mode mode) {
  GatewayConfig c;
  c.mode = mode;
  // Long enough that an answering model is never late on a loaded machine; a held one is.
  c.decision.deadline_us = 100000;
  c.decision.breaker_failures = 2;
  c.decision.breaker_cooldown_ms = 1000;
  c.assets.push_back({.name = "PU1", .kind = RegisterKind::kCoil, .address = 0, .max = 1,
                      .signal = "S_PU1", .critical = true});
  c.assets.push_back({.name = "PU2", .kind = RegisterKind::kCoil, .address = 1, .max = 1,
                      .signal = "S_PU2", .critical = false});
  c.assets.push_back({.name = "SP", .kind = RegisterKind::kHolding, .address = 10, .min = 10,
                      .max = 100, .max_rate = 2});
  return c;
}

// The decider with the engines the gateway gives it: the policy engine over the config's rules
// and, with a judge, the inference engine around it (JudgeModel).
struct Engines {
  Engines(const GatewayConfig& c, const core::Clock& clock, CommandJudge* judge) {
    auto p = CreateGatewayPolicy(c, &registry);
    EXPECT_TRUE(p.has_value()) << p.error().message();
    if (!p.has_value()) std::abort();
    policy = std::move(p).value();
    if (judge != nullptr) {
      model = std::make_unique<JudgeModel>(*judge);
      std::shared_ptr<const model::Model> m(model.get(), [](const model::Model*) {});
      auto e = model::InferenceEngine::Create(m, ModelEngineOptions(c.decision, &registry), clock);
      if (!e.has_value()) std::abort();
      engine = std::move(e).value();
    }
    decider = std::make_unique<Decider>(c, *policy, engine.get(), clock);
  }
  Decider& d() { return *decider; }
  core::Registry registry;
  std::unique_ptr<policy::PolicyEngine> policy;
  std::unique_ptr<JudgeModel> model;
  std::unique_ptr<model::InferenceEngine> engine;
  std::unique_ptr<Decider> decider;
};

// A rules file in a fresh temporary directory, removed with the object.
class RulesFile {
 public:
  explicit RulesFile(const std::string& text) {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil-gwrules-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::ofstream(path()) << text;
  }
  ~RulesFile() { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "gw-rules.yaml").string(); }

 private:
  std::filesystem::path dir_;
};

WriteRequest Write(RegisterKind kind, uint16_t address, std::vector<uint16_t> values) {
  WriteRequest w;
  w.unit = 1;
  w.function = kind == RegisterKind::kCoil ? 15 : 16;
  w.kind = kind;
  w.address = address;
  w.values = std::move(values);
  return w;
}

TEST(DeciderTest, RangeAndUnmappedChecks) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  Decider& d = e.d();
  WriteDecision in = d.Decide(Write(RegisterKind::kHolding, 10, {50}));
  EXPECT_FALSE(in.deny);
  WriteDecision out = d.Decide(Write(RegisterKind::kHolding, 10, {101}));
  EXPECT_TRUE(out.deny);
  EXPECT_TRUE(out.enforced);
  EXPECT_EQ(out.rule, Rule::kRange);
  EXPECT_EQ(out.exception, kExceptionIllegalDataValue);
  EXPECT_THAT(out.reason, HasSubstr("SP := 101 outside the allowed range [10, 100]"));
  WriteDecision unmapped = d.Decide(Write(RegisterKind::kHolding, 11, {1}));
  EXPECT_EQ(unmapped.rule, Rule::kUnmapped);
  // A multi-register write is denied as a whole when one value is out of range.
  EXPECT_EQ(d.Decide(Write(RegisterKind::kHolding, 9, {1, 50})).rule, Rule::kUnmapped);
  EXPECT_EQ(d.stats().denied.load(), 3u);
  EXPECT_EQ(d.stats().by_rule[static_cast<size_t>(Rule::kRange)].load(), 1u);
}

TEST(DeciderTest, RateLimitAgainstTheLastCommittedValue) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  Decider& d = e.d();
  const WriteRequest first = Write(RegisterKind::kHolding, 10, {20});
  ASSERT_FALSE(d.Decide(first).deny);  // no earlier value: no rate to measure
  d.Committed(first);
  clock.Advance(int64_t{5} * 1'000'000'000);  // 5 s at 2/s allows a change of 10
  EXPECT_FALSE(d.Decide(Write(RegisterKind::kHolding, 10, {30})).deny);
  WriteDecision fast = d.Decide(Write(RegisterKind::kHolding, 10, {31}));
  EXPECT_TRUE(fast.deny);
  EXPECT_EQ(fast.rule, Rule::kRate);
}

TEST(DeciderTest, MonitorModePassesDenialsAsWouldHaveDenied) {
  GatewayConfig c = Config(Mode::kMonitor);
  core::FakeClock clock;
  FixedJudge judge(Judgement::Outcome::kInconsistent);
  Engines e(c, clock, &judge);
  Decider& d = e.d();
  WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
  EXPECT_TRUE(w.deny);
  EXPECT_FALSE(w.enforced);
  EXPECT_EQ(w.rule, Rule::kModel);
  EXPECT_DOUBLE_EQ(w.score, 0.97);
  ASSERT_EQ(w.why.size(), 1u);
  EXPECT_EQ(d.stats().would_have_denied.load(), 1u);
  EXPECT_EQ(d.stats().denied.load(), 0u);
}

TEST(DeciderTest, PerAssetModeOverridesTheGateway) {
  GatewayConfig c = Config(Mode::kMonitor);
  c.assets[2].mode = Mode::kEnforce;
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  Decider& d = e.d();
  EXPECT_TRUE(d.Decide(Write(RegisterKind::kHolding, 10, {500})).enforced);
}

TEST(DeciderTest, SlowModelCriticalAssetFailsClosed) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  HeldJudge judge;
  {
    Engines e(c, clock, &judge);
    Decider& d = e.d();
    WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
    EXPECT_TRUE(w.deny);
    EXPECT_TRUE(w.enforced);
    EXPECT_EQ(w.rule, Rule::kFallback);
    EXPECT_EQ(w.fallback, FallbackCause::kLate);
    EXPECT_EQ(w.exception, kExceptionServerBusy);
    EXPECT_THAT(w.reason, HasSubstr("critical asset fails closed"));
    EXPECT_EQ(w.policy_rule, "gateway.model");  // the rule at stake gives the fallback
    EXPECT_EQ(d.stats().fallbacks[static_cast<size_t>(FallbackCause::kLate)].load(), 1u);
    // The verdict went through the inference engine, which counted the missed deadline.
    EXPECT_EQ(e.engine->fallbacks(model::FallbackReason::kDeadline), 1u);
    judge.Release();
  }
}

TEST(DeciderTest, SlowModelNonCriticalAssetFailsOpenWithAlert) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  HeldJudge judge;
  {
    Engines e(c, clock, &judge);
    Decider& d = e.d();
    WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 1, {1}));
    EXPECT_FALSE(w.deny);
    EXPECT_TRUE(w.alert);
    EXPECT_EQ(w.fallback, FallbackCause::kLate);
    EXPECT_THAT(w.reason, HasSubstr("non-critical asset fails open"));
    EXPECT_EQ(d.stats().alerts.load(), 1u);
    judge.Release();
  }
}

TEST(DeciderTest, BreakerSkipsTheModelAfterRepeatedLateAnswers) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  HeldJudge judge;
  {
    Engines e(c, clock, &judge);
    Decider& d = e.d();
    EXPECT_EQ(d.Decide(Write(RegisterKind::kCoil, 1, {1})).fallback, FallbackCause::kLate);
    EXPECT_EQ(d.Decide(Write(RegisterKind::kCoil, 1, {1})).fallback, FallbackCause::kLate);
    EXPECT_EQ(e.engine->breaker().opened(), 1u);
    // Open: answered at once, without asking the model.
    const int asked = judge.asked();
    EXPECT_EQ(d.Decide(Write(RegisterKind::kCoil, 0, {1})).fallback, FallbackCause::kBreakerOpen);
    EXPECT_EQ(judge.asked(), asked);
    judge.Release();
    // After the cooldown one question goes through again, and an answer in time closes it.
    clock.Advance(int64_t{2} * 1'000'000'000);
    WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
    EXPECT_FALSE(w.deny);
    EXPECT_EQ(w.fallback, FallbackCause::kNone);
  }
}

TEST(DeciderTest, NoModelVerdictWithoutPlantStateFallsBack) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  FixedJudge judge(Judgement::Outcome::kUnknown);
  Engines e(c, clock, &judge);
  Decider& d = e.d();
  WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
  EXPECT_TRUE(w.deny);
  EXPECT_EQ(w.fallback, FallbackCause::kNoState);
}

TEST(DeciderTest, OtherFunctionCodesFollowTheConfig) {
  GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  Decider& d = e.d();
  WriteDecision w = d.DecideOther(1, 22);
  EXPECT_TRUE(w.deny);
  EXPECT_EQ(w.exception, kExceptionIllegalFunction);
  c.modbus.deny_other_functions = false;
  Engines lenient(c, clock, nullptr);
  EXPECT_FALSE(lenient.d().DecideOther(1, 22).deny);
}

constexpr char kSetpointRule[] = R"y(- rule: setpoint_ceiling_on_unit_1
  desc: the set point above 80 is refused on unit 1
  condition: >
    modbus.asset = SP and modbus.value > 80 and modbus.unit = 1
    and modbus.function in (6, 16)
  output: "SP := %modbus.value above 80 (unit %modbus.unit, %asset.class)"
  priority: ERROR
  action: {type: deny}
)y";

TEST(DeciderTest, CustomRuleOnModbusFieldsDeniesInEnforceMode) {
  RulesFile rules(kSetpointRule);
  GatewayConfig c = Config(Mode::kEnforce);
  c.policy.rules = {rules.path()};
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  // 90 lies in the asset's range [10, 100]: only the custom rule objects.
  WriteDecision w = e.d().Decide(Write(RegisterKind::kHolding, 10, {90}));
  EXPECT_TRUE(w.deny);
  EXPECT_TRUE(w.enforced);
  EXPECT_EQ(w.rule, Rule::kCustom);
  EXPECT_EQ(w.policy_rule, "setpoint_ceiling_on_unit_1");
  EXPECT_EQ(w.exception, kExceptionIllegalDataValue);
  EXPECT_EQ(w.reason, "SP := 90 above 80 (unit 1, non-critical)");
  EXPECT_EQ(w.asset, "SP");
  EXPECT_FALSE(e.d().Decide(Write(RegisterKind::kHolding, 10, {80})).deny);
  EXPECT_EQ(e.d().stats().by_rule[static_cast<size_t>(Rule::kCustom)].load(), 1u);
  // The built-in rules still hold alongside it.
  EXPECT_EQ(e.d().Decide(Write(RegisterKind::kHolding, 10, {101})).rule, Rule::kRange);

  // The same rule in monitor mode: passed, recorded as would-have-denied.
  GatewayConfig m = c;
  m.mode = Mode::kMonitor;
  Engines monitor(m, clock, nullptr);
  WriteDecision wm = monitor.d().Decide(Write(RegisterKind::kHolding, 10, {90}));
  EXPECT_TRUE(wm.deny);
  EXPECT_FALSE(wm.enforced);
  EXPECT_EQ(monitor.d().stats().would_have_denied.load(), 1u);
}

TEST(DeciderTest, DecisionsCarryThePolicyVersionAndStage) {
  RulesFile rules(kSetpointRule);
  GatewayConfig c = Config(Mode::kEnforce);
  c.policy.rules = {rules.path()};
  c.policy.version = "gw-2026.11.27-1";
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  const WriteDecision allowed = e.d().Decide(Write(RegisterKind::kHolding, 10, {50}));
  const WriteDecision denied = e.d().Decide(Write(RegisterKind::kHolding, 10, {95}));
  for (const WriteDecision* w : {&allowed, &denied}) {
    EXPECT_EQ(w->policy_version, "gw-2026.11.27-1");
    EXPECT_EQ(w->policy_generation, 1u);
    EXPECT_EQ(w->stage, policy::RolloutStage::kEnforceAll);
  }
  EXPECT_EQ(denied.asset_class, policy::AssetClass::kNonCritical);
  // Without a version the policy's is the digest of its rules (the built-in ones included).
  GatewayConfig plain = Config(Mode::kEnforce);
  Engines p(plain, clock, nullptr);
  EXPECT_THAT(p.d().Decide(Write(RegisterKind::kHolding, 10, {50})).policy_version,
              ::testing::StartsWith("sha256:"));
}

TEST(DeciderTest, StageEnforceNonCriticalHoldsBackCriticalAssets) {
  GatewayConfig c = Config(Mode::kEnforce);
  c.assets.push_back({.name = "V1", .kind = RegisterKind::kHolding, .address = 20, .max = 10,
                      .critical = true});
  c.policy.stage = policy::RolloutStage::kEnforceNonCritical;
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  const WriteDecision non_critical = e.d().Decide(Write(RegisterKind::kHolding, 10, {500}));
  EXPECT_TRUE(non_critical.deny);
  EXPECT_TRUE(non_critical.enforced);
  const WriteDecision critical = e.d().Decide(Write(RegisterKind::kHolding, 20, {11}));
  EXPECT_TRUE(critical.deny);
  EXPECT_FALSE(critical.enforced);  // recorded as would-have-denied until enforce-all
  EXPECT_EQ(critical.asset_class, policy::AssetClass::kCritical);
  EXPECT_EQ(critical.stage, policy::RolloutStage::kEnforceNonCritical);
}

TEST(DeciderTest, ARuleFallbackOverridesTheAssetClassDefault) {
  // PU2 is non-critical (fails open by default); this rule wants it closed when the model is out.
  RulesFile rules(R"y(- rule: pu2_strict
  desc: PU2 commands the model doubts are refused, and refused when it cannot say
  condition: modbus.asset = PU2 and ml.score > 0.5
  output: "PU2 := %modbus.value doubted (%ml.score)"
  priority: ERROR
  action: {type: deny, fallback: deny}
)y");
  GatewayConfig c = Config(Mode::kEnforce);
  c.policy.rules = {rules.path()};
  core::FakeClock clock;
  HeldJudge judge;
  {
    Engines e(c, clock, &judge);
    WriteDecision w = e.d().Decide(Write(RegisterKind::kCoil, 1, {1}));
    EXPECT_TRUE(w.deny);
    EXPECT_TRUE(w.enforced);
    EXPECT_EQ(w.rule, Rule::kFallback);
    EXPECT_EQ(w.policy_rule, "pu2_strict");
    EXPECT_EQ(w.fallback, FallbackCause::kLate);
    EXPECT_EQ(w.exception, kExceptionServerBusy);
    judge.Release();
  }
}

TEST(DeciderTest, AnAlertRulePassesTheWriteAndSaysSo) {
  RulesFile rules(R"y(- rule: setpoint_high
  desc: high set points are worth a look
  condition: modbus.asset = SP and modbus.value >= 90
  output: "SP := %modbus.value"
  priority: NOTICE
)y");
  GatewayConfig c = Config(Mode::kEnforce);
  c.policy.rules = {rules.path()};
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  WriteDecision w = e.d().Decide(Write(RegisterKind::kHolding, 10, {95}));
  EXPECT_FALSE(w.deny);
  EXPECT_TRUE(w.alert);
  EXPECT_EQ(w.policy_rule, "setpoint_high");
  EXPECT_EQ(e.d().stats().rule_alerts.load(), 1u);
  EXPECT_EQ(e.d().stats().alerts.load(), 0u);  // not a fail-open fallback
}

TEST(DeciderTest, RulesTheEngineCannotEvaluateAreRefusedWithFileAndLine) {
  RulesFile rules(R"y(- rule: typo
  desc: a misspelt field
  condition: modbus.adress = 10
  output: "x"
  priority: ERROR
  action: {type: deny}
)y");
  GatewayConfig c = Config(Mode::kEnforce);
  c.source = "gw.yaml";
  c.policy.rules = {rules.path()};
  auto p = CreateGatewayPolicy(c, nullptr);
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error().message(), HasSubstr("gw.yaml: policy.rules: "));
  EXPECT_THAT(p.error().message(), HasSubstr(rules.path() + ":1"));
  EXPECT_THAT(p.error().message(), HasSubstr("modbus.adress"));

  c.policy.rules = {"/nonexistent/gw-rules.yaml"};
  auto missing = CreateGatewayPolicy(c, nullptr);
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message(), HasSubstr("/nonexistent/gw-rules.yaml"));

  RulesFile broken("- rule: r\n  desc: d\n  condition: modbus.value > \n  output: o\n"
                   "  priority: info\n");
  c.policy.rules = {broken.path()};
  auto bad = CreateGatewayPolicy(c, nullptr);
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message(), HasSubstr(broken.path() + ":3"));
}

TEST(DeciderTest, UnmappedWritesAllowedByConfigLeaveTheRuleOut) {
  GatewayConfig c = Config(Mode::kEnforce);
  c.modbus.deny_unmapped_writes = false;
  EXPECT_THAT(BuiltinRules(c), ::testing::Not(HasSubstr("gateway.unmapped")));
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  EXPECT_FALSE(e.d().Decide(Write(RegisterKind::kHolding, 11, {1})).deny);
}

TEST(DeciderTest, HostRulesNeverMatchAModbusWriteNorModbusRulesAHostEvent) {
  // The modbus.* fields are absent on host events, and host fields on a write read nothing.
  RulesFile rules(R"y(- rule: shell
  desc: a host rule
  condition: evt.type = execve and proc.name = sh
  output: "sh"
  priority: ERROR
  action: {type: deny}
)y");
  GatewayConfig c = Config(Mode::kEnforce);
  c.policy.rules = {rules.path()};
  core::FakeClock clock;
  Engines e(c, clock, nullptr);
  EXPECT_FALSE(e.d().Decide(Write(RegisterKind::kHolding, 10, {50})).deny);
  core::Event exec;
  exec.kind = core::EventKind::kProcessExec;
  exec.proc.comm = "sh";
  policy::EvalInput in;
  in.event = &exec;
  const policy::Decision host = e.policy->Decide(&in);
  EXPECT_EQ(host.rule, "shell");  // no gateway.* rule matched the host event
  EXPECT_EQ(host.hits.size(), 1u);
}

}  // namespace
}  // namespace vigil::gateway
