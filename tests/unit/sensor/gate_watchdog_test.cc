// The gates' watchdog (sensor/gate_call.h): every held call is answered exactly once, by the
// decider when it finishes in time (the decider is told: Answered), else with the call's
// fallback as a deadline answer (the decider is told: OnFallback, then Late); a decision that
// finishes after the deadline is never sent, even when the watchdog's own thread has not woken
// yet (a loaded machine).

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "sensor/gate_call.h"
#include "thread_scheduling.h"

namespace vigil::sensor {
namespace {

int64_t Now() { return core::SystemClock::Get().MonotonicNanos(); }

// Records what the watchdog sent and told; decides with `decide`.
class Recorder final : public GateDecider {
 public:
  struct Sent {
    uint64_t token;
    GateAnswer answer;
  };
  std::function<GateAnswer(CallControl*)> decide;

  GateAnswer Decide(const GateCall&, CallControl* control) override { return decide(control); }
  void OnFallback(const GateCall&, GateAnswer answer, GateFallbackCause cause) override {
    std::lock_guard<std::mutex> lock(mu);
    fallbacks.push_back(answer);
    causes.push_back(cause);
    cv.notify_all();
  }
  void Late(const GateCall&, GateAnswer decided) override {
    std::lock_guard<std::mutex> lock(mu);
    late.push_back(decided);
  }
  void Answered(const GateCall&, GateAnswer answer) override {
    std::lock_guard<std::mutex> lock(mu);
    answered.push_back(answer);
  }
  GateWatchdog::AnswerFn Answer() {
    return [this](const GateCall&, uint64_t token, GateAnswer a) {
      std::lock_guard<std::mutex> lock(mu);
      sent.push_back({token, a});
    };
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Sent> sent;  // by the watchdog
  std::vector<GateAnswer> fallbacks, late;
  std::vector<GateAnswer> answered;  // decisions the decider was told are the call's answer
  std::vector<GateFallbackCause> causes;
};

TEST(GateWatchdogTest, ADecisionInTimeIsTheCallersToSend) {
  Recorder r;
  r.decide = [](CallControl*) { return GateAnswer::kDeny; };
  GateWatchdog w(r.Answer(), &r);
  GateCall call;
  CallControl control(Now() + 10'000'000'000, GateAnswer::kAllow);
  GateAnswer a = GateAnswer::kAllow;
  EXPECT_TRUE(w.Decide(call, 7, &control, &a));
  EXPECT_EQ(a, GateAnswer::kDeny);
  EXPECT_TRUE(r.sent.empty());
  EXPECT_TRUE(r.fallbacks.empty());
  EXPECT_TRUE(r.late.empty());
  EXPECT_EQ(r.answered, std::vector<GateAnswer>{GateAnswer::kDeny});
  EXPECT_EQ(w.deadline_answers(), 0u);
}

TEST(GateWatchdogTest, AStuckDecisionGetsTheFallbackAtTheDeadline) {
  Recorder r;
  // Waits (up to 10 s) for the watchdog to answer, then decides allow: too late to count.
  r.decide = [&r](CallControl* control) {
    control->SetFallback(GateAnswer::kDeny);
    std::unique_lock<std::mutex> lock(r.mu);
    r.cv.wait_for(lock, std::chrono::seconds(10), [&r] { return !r.fallbacks.empty(); });
    return GateAnswer::kAllow;
  };
  GateWatchdog w(r.Answer(), &r);
  GateCall call;
  CallControl control(Now() + 2'000'000, GateAnswer::kAllow);
  GateAnswer a = GateAnswer::kAllow;
  EXPECT_FALSE(w.Decide(call, 9, &control, &a));
  ASSERT_EQ(r.sent.size(), 1u);
  EXPECT_EQ(r.sent[0].token, 9u);
  EXPECT_EQ(r.sent[0].answer, GateAnswer::kDeny);
  ASSERT_EQ(r.fallbacks.size(), 1u);
  EXPECT_EQ(r.fallbacks[0], GateAnswer::kDeny);
  EXPECT_EQ(r.causes[0], GateFallbackCause::kDeadline);
  EXPECT_EQ(r.late, std::vector<GateAnswer>{GateAnswer::kAllow});
  EXPECT_TRUE(r.answered.empty());
  EXPECT_EQ(w.deadline_answers(), 1u);
}

// The deciding thread at SCHED_FIFO and the watchdog's (normal) thread on one CPU: the watchdog
// cannot wake before the decision, which finishes 1 ms past the deadline. The call still gets
// its fallback, counted as a deadline answer, and the decision is late (not sent).
TEST(GateWatchdogTest, ADecisionPastTheDeadlineIsNotSentBeforeTheWatchdogWakes) {
  testing::ThreadScheduling saved;
  ASSERT_TRUE(saved.ok());
  ASSERT_TRUE(saved.PinToOneCpu());
  Recorder r;
  r.decide = [](CallControl* control) {
    control->SetFallback(GateAnswer::kDeny);
    while (Now() < control->deadline_ns() + 1'000'000) {
    }  // busy: the watchdog's thread gets no CPU
    return GateAnswer::kAllow;
  };
  GateWatchdog w(r.Answer(), &r);  // its thread shares the one CPU (inherited), at no priority
  if (!testing::ThreadScheduling::RaiseToFifo()) {
    GTEST_SKIP() << "needs SCHED_FIFO (root) to keep the watchdog's thread off the CPU";
  }
  GateCall call;
  CallControl control(Now() + 2'000'000, GateAnswer::kAllow);
  GateAnswer a = GateAnswer::kAllow;
  const bool sent_by_caller = w.Decide(call, 11, &control, &a);
  testing::ThreadScheduling::Lower();
  EXPECT_FALSE(sent_by_caller);
  std::lock_guard<std::mutex> lock(r.mu);
  ASSERT_EQ(r.sent.size(), 1u);
  EXPECT_EQ(r.sent[0].token, 11u);
  EXPECT_EQ(r.sent[0].answer, GateAnswer::kDeny);
  EXPECT_EQ(r.fallbacks, std::vector<GateAnswer>{GateAnswer::kDeny});
  EXPECT_EQ(r.late, std::vector<GateAnswer>{GateAnswer::kAllow});
  EXPECT_TRUE(r.answered.empty());
  EXPECT_EQ(w.deadline_answers(), 1u);
}

// Two calls registered at once, the second with the earlier deadline (a gate whose calls had
// different deadline lengths): the watchdog, asleep towards the first call's deadline a minute
// away, is woken by the second and answers it at its own deadline, not a minute later.
TEST(GateWatchdogTest, AnEarlierDeadlineWakesAWatchdogSleepingTowardsALaterOne) {
  Recorder r;
  GateWatchdog w(r.Answer(), &r);
  GateCall long_call, short_call;
  CallControl long_control(Now() + 60'000'000'000, GateAnswer::kAllow);
  GateWatchdog::Slot long_slot{&long_call, 1, &long_control};
  w.Begin(&long_slot);
  // Until the thread sleeps towards the minute-away deadline (its first sleep may be the idle
  // one, before it saw the call).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (w.sleeping_until() != long_control.deadline_ns() &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(w.sleeping_until(), long_control.deadline_ns());
  const int64_t begun = Now();
  CallControl short_control(begun + 10'000'000, GateAnswer::kDeny);
  GateWatchdog::Slot short_slot{&short_call, 2, &short_control};
  w.Begin(&short_slot);
  bool answered = false;
  {
    std::unique_lock<std::mutex> lock(r.mu);
    answered = r.cv.wait_for(lock, std::chrono::seconds(10), [&r] { return !r.fallbacks.empty(); });
  }
  const int64_t waited = Now() - begun;
  // The call was answered by the watchdog's thread (Finish was not called yet), at its deadline.
  ASSERT_TRUE(answered) << "the 10 ms deadline was not answered within 10 s";
  EXPECT_GE(waited, 10'000'000);
  EXPECT_FALSE(w.Finish(&short_slot));
  EXPECT_TRUE(w.Finish(&long_slot));  // the minute-away call is still the caller's to answer
  std::lock_guard<std::mutex> lock(r.mu);
  ASSERT_EQ(r.sent.size(), 1u);
  EXPECT_EQ(r.sent[0].token, 2u);
  EXPECT_EQ(r.sent[0].answer, GateAnswer::kDeny);
  EXPECT_EQ(r.causes, std::vector<GateFallbackCause>{GateFallbackCause::kDeadline});
  EXPECT_EQ(w.deadline_answers(), 1u);
}

}  // namespace
}  // namespace vigil::sensor
