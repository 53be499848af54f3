#include "gateway/decider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
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
  Decider d(c, nullptr, clock);
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
  Decider d(c, nullptr, clock);
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
  ModelGate gate(judge, c.decision, clock);
  Decider d(c, &gate, clock);
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
  Decider d(c, nullptr, clock);
  EXPECT_TRUE(d.Decide(Write(RegisterKind::kHolding, 10, {500})).enforced);
}

TEST(DeciderTest, SlowModelCriticalAssetFailsClosed) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  HeldJudge judge;
  {
    ModelGate gate(judge, c.decision, clock);
    Decider d(c, &gate, clock);
    WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
    EXPECT_TRUE(w.deny);
    EXPECT_TRUE(w.enforced);
    EXPECT_EQ(w.rule, Rule::kFallback);
    EXPECT_EQ(w.fallback, FallbackCause::kLate);
    EXPECT_EQ(w.exception, kExceptionServerBusy);
    EXPECT_THAT(w.reason, HasSubstr("critical asset fails closed"));
    EXPECT_EQ(d.stats().fallbacks[static_cast<size_t>(FallbackCause::kLate)].load(), 1u);
    judge.Release();
  }
}

TEST(DeciderTest, SlowModelNonCriticalAssetFailsOpenWithAlert) {
  const GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  HeldJudge judge;
  {
    ModelGate gate(judge, c.decision, clock);
    Decider d(c, &gate, clock);
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
    ModelGate gate(judge, c.decision, clock);
    Decider d(c, &gate, clock);
    EXPECT_EQ(d.Decide(Write(RegisterKind::kCoil, 1, {1})).fallback, FallbackCause::kLate);
    EXPECT_EQ(d.Decide(Write(RegisterKind::kCoil, 1, {1})).fallback, FallbackCause::kLate);
    EXPECT_EQ(gate.breaker_opened(), 1u);
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
  ModelGate gate(judge, c.decision, clock);
  Decider d(c, &gate, clock);
  WriteDecision w = d.Decide(Write(RegisterKind::kCoil, 0, {1}));
  EXPECT_TRUE(w.deny);
  EXPECT_EQ(w.fallback, FallbackCause::kNoState);
}

TEST(DeciderTest, OtherFunctionCodesFollowTheConfig) {
  GatewayConfig c = Config(Mode::kEnforce);
  core::FakeClock clock;
  Decider d(c, nullptr, clock);
  WriteDecision w = d.DecideOther(1, 22);
  EXPECT_TRUE(w.deny);
  EXPECT_EQ(w.exception, kExceptionIllegalFunction);
  c.modbus.deny_other_functions = false;
  Decider lenient(c, nullptr, clock);
  EXPECT_FALSE(lenient.DecideOther(1, 22).deny);
}

}  // namespace
}  // namespace vigil::gateway
