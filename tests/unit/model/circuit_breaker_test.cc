#include "model/circuit_breaker.h"

#include <gtest/gtest.h>

namespace vigil::model {
namespace {

using Admission = CircuitBreaker::Admission;
constexpr int64_t kSecond = 1'000'000'000;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() : breaker_(Options(), clock_) {}
  static CircuitBreakerOptions Options() {
    CircuitBreakerOptions o;
    o.failure_threshold = 3;
    o.window_ns = 10 * kSecond;
    o.cooldown_ns = 5 * kSecond;
    return o;
  }
  void Fail(int n) {
    for (int i = 0; i < n; ++i) {
      const Admission a = breaker_.Admit();
      ASSERT_EQ(a, Admission::kAllow);
      breaker_.OnFailure(a);
    }
  }
  void Open() {
    Fail(3);
    ASSERT_EQ(breaker_.state(), BreakerState::kOpen);
  }
  core::FakeClock clock_;
  CircuitBreaker breaker_;
};

TEST_F(CircuitBreakerTest, StaysClosedBelowTheThreshold) {
  Fail(2);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  const Admission a = breaker_.Admit();
  EXPECT_EQ(a, Admission::kAllow);
  breaker_.OnSuccess(a);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker_.opened(), 0u);
}

TEST_F(CircuitBreakerTest, OpensAfterThresholdFailuresInTheWindow) {
  Fail(3);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker_.opened(), 1u);
  EXPECT_EQ(breaker_.Admit(), Admission::kReject);
  EXPECT_EQ(breaker_.rejected(), 1u);
}

TEST_F(CircuitBreakerTest, FailuresOlderThanTheWindowDoNotCount) {
  Fail(2);
  clock_.Advance(10 * kSecond);
  Fail(2);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  Fail(1);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
}

TEST_F(CircuitBreakerTest, RejectsUntilTheCoolDownThenAdmitsOneProbe) {
  Open();
  clock_.Advance(5 * kSecond - 1);
  EXPECT_EQ(breaker_.Admit(), Admission::kReject);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  clock_.Advance(1);
  const Admission probe = breaker_.Admit();
  EXPECT_EQ(probe, Admission::kProbe);
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  // Only one probe at a time.
  EXPECT_EQ(breaker_.Admit(), Admission::kReject);
  breaker_.OnSuccess(probe);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker_.closed(), 1u);
  EXPECT_EQ(breaker_.Admit(), Admission::kAllow);
}

TEST_F(CircuitBreakerTest, AFailedProbeReopensForAnotherCoolDown) {
  Open();
  clock_.Advance(5 * kSecond);
  const Admission probe = breaker_.Admit();
  ASSERT_EQ(probe, Admission::kProbe);
  breaker_.OnFailure(probe);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker_.opened(), 2u);
  clock_.Advance(5 * kSecond - 1);
  EXPECT_EQ(breaker_.Admit(), Admission::kReject);
  clock_.Advance(1);
  EXPECT_EQ(breaker_.Admit(), Admission::kProbe);
}

TEST_F(CircuitBreakerTest, ClosingForgetsEarlierFailures) {
  Fail(2);
  Fail(1);
  clock_.Advance(5 * kSecond);
  const Admission probe = breaker_.Admit();
  breaker_.OnSuccess(probe);
  ASSERT_EQ(breaker_.state(), BreakerState::kClosed);
  Fail(2);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
}

TEST_F(CircuitBreakerTest, LateOutcomesOfEarlierRequestsDoNotChangeTheState) {
  const Admission early = breaker_.Admit();  // admitted while closed, finishes later
  Open();
  breaker_.OnSuccess(early);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  breaker_.OnFailure(early);
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  clock_.Advance(5 * kSecond);
  const Admission probe = breaker_.Admit();
  ASSERT_EQ(probe, Admission::kProbe);
  breaker_.OnFailure(early);  // not the probe: ignored
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  breaker_.OnSuccess(early);
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  breaker_.OnSuccess(probe);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
}

TEST(CircuitBreakerNamesTest, NamesEveryState) {
  EXPECT_EQ(BreakerStateName(BreakerState::kClosed), "closed");
  EXPECT_EQ(BreakerStateName(BreakerState::kHalfOpen), "half-open");
  EXPECT_EQ(BreakerStateName(BreakerState::kOpen), "open");
}

}  // namespace
}  // namespace vigil::model
