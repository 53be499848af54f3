#include "agent/stream_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace vigil::agent {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;

StreamBudgetOptions TwoCpus() {
  StreamBudgetOptions o;
  o.budget = 0.01;
  o.cpus = 2;
  o.kernel_ns_per_call = 700;
  return o;
}

TEST(StreamBudgetTest, QuietHostKeepsTheStreamOn) {
  StreamBudget b(TwoCpus());
  EXPECT_DOUBLE_EQ(b.duty(), 1.0);  // nothing measured yet: on
  // 2,000 calls/s and 1 ms of agent CPU per second: 0.07 % + 0.05 % of two CPUs.
  b.ObserveOn(250 * kMs, 500, kMs / 4);
  EXPECT_NEAR(b.cost(), (2000 * 700e-9 + 0.001) / 2, 1e-9);
  EXPECT_DOUBLE_EQ(b.duty(), 1.0);
  EXPECT_EQ(b.OffAfterNs(250 * kMs), 0);
  EXPECT_EQ(b.NextOnNs(), TwoCpus().eval_ns);
}

TEST(StreamBudgetTest, BusyHostGetsTheBudgetsShareOfTheTime) {
  StreamBudget b(TwoCpus());
  // 500,000 calls/s: 0.35 cores of kernel-side cost, 17.5 % of two CPUs; 1 % allows 1/17.5.
  b.ObserveOn(250 * kMs, 125'000, 0);
  EXPECT_NEAR(b.cost(), 0.175, 1e-9);
  const double want = 0.01 / 0.175;
  const int64_t on = b.NextOnNs();
  EXPECT_NEAR(static_cast<double>(on), want * kSecond, 1e6);  // the duty's share of a 1 s cycle
  const int64_t off = b.OffAfterNs(on);
  EXPECT_NEAR(static_cast<double>(on) / static_cast<double>(on + off), want, 1e-3);
  EXPECT_NEAR(b.duty(), want, 1e-3);
  // The off time follows the on time actually spent (a longer on-period, a longer rest).
  EXPECT_NEAR(static_cast<double>(b.OffAfterNs(2 * on)), 2.0 * off, 2.0);
}

TEST(StreamBudgetTest, AgentCpuCountsOnlyAboveWhatItUsesWithoutTheStream) {
  StreamBudgetOptions o = TwoCpus();
  o.kernel_ns_per_call = 0;  // the agent's part alone
  StreamBudget b(o);
  b.ObserveOff(kSecond, 300 * kMs);  // 0.3 cores without the stream (typed events, ...)
  b.ObserveOn(kSecond / 4, 250'000, 100 * kMs);  // 0.4 cores with it: 0.1 cores is the stream
  EXPECT_NEAR(b.cost(), 0.1 / 2, 1e-9);
  // Without an off-period measured, all of it counts (conservative).
  StreamBudget fresh(o);
  fresh.ObserveOn(kSecond / 4, 250'000, 100 * kMs);
  EXPECT_NEAR(fresh.cost(), 0.4 / 2, 1e-9);
}

TEST(StreamBudgetTest, AgentCpuBeyondWhatTheCallsCanCostIsNotTheStreams) {
  // 400 calls/s while the agent trains a baseline (0.4 cores): at most 2 us per call counts.
  StreamBudget b(TwoCpus());
  b.ObserveOn(kSecond / 4, 100, 100 * kMs);
  EXPECT_NEAR(b.cost(), (400 * 700e-9 + 400 * 2000e-9) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(b.duty(), 1.0);
}

TEST(StreamBudgetTest, RisingCostIsTakenAtOnceFallingCostGradually) {
  StreamBudget b(TwoCpus());
  b.ObserveOn(kSecond, 10'000, 0);
  const double low = b.cost();
  b.ObserveOn(kSecond, 1'000'000, 0);
  const double high = b.cost();
  EXPECT_NEAR(high, 1'000'000 * 700e-9 / 2, 1e-9);
  b.ObserveOn(kSecond, 10'000, 0);
  EXPECT_NEAR(b.cost(), (high + low) / 2, 1e-9);
  for (int i = 0; i < 30; ++i) b.ObserveOn(kSecond, 10'000, 0);
  EXPECT_NEAR(b.cost(), low, 1e-6);
  EXPECT_DOUBLE_EQ(b.duty(), 1.0);
}

TEST(StreamBudgetTest, DutyHasAFloorAndPeriodsTheirBounds) {
  StreamBudgetOptions o = TwoCpus();
  StreamBudget b(o);
  b.ObserveOn(kSecond, 20'000'000, 0);  // 7 cores' worth: wants 0.14 % of the time
  EXPECT_EQ(b.NextOnNs(), o.min_on_ns);
  EXPECT_EQ(b.OffAfterNs(o.min_on_ns), o.max_cycle_ns - o.min_on_ns);
  EXPECT_NEAR(b.duty(), static_cast<double>(o.min_on_ns) / o.max_cycle_ns, 1e-9);
  // Just over budget: the off-period is never shorter than min_off_ns.
  StreamBudget near(o);
  near.ObserveOn(kSecond, 30'000, 0);  // 1.05 % of two CPUs
  EXPECT_LT(near.duty(), 1.0);
  EXPECT_EQ(near.NextOnNs(), o.max_on_ns);
  EXPECT_EQ(near.OffAfterNs(near.NextOnNs()), o.min_off_ns);
}

TEST(StreamBudgetTest, OptionsAreValidated) {
  StreamBudgetOptions o = TwoCpus();
  EXPECT_TRUE(ValidateStreamBudgetOptions(o).ok());
  for (double bad : {0.0, 1.0, -0.5, 2.0}) {
    o = TwoCpus();
    o.budget = bad;
    EXPECT_EQ(ValidateStreamBudgetOptions(o).code(), core::StatusCode::kInvalidArgument) << bad;
  }
  o = TwoCpus();
  o.cpus = 0;
  EXPECT_FALSE(ValidateStreamBudgetOptions(o).ok());
  o = TwoCpus();
  o.min_on_ns = o.max_on_ns + 1;
  EXPECT_FALSE(ValidateStreamBudgetOptions(o).ok());
  o = TwoCpus();
  o.max_cycle_ns = o.cycle_ns - 1;
  EXPECT_FALSE(ValidateStreamBudgetOptions(o).ok());
}

TEST(StreamGapsTest, ResumeBetweenTwoTimes) {
  StreamGaps g;
  EXPECT_FALSE(g.Between(0, 1000));
  g.RecordResume(500);
  g.RecordResume(900);
  EXPECT_TRUE(g.Between(100, 500));   // resumed at 500: in (100, 500]
  EXPECT_FALSE(g.Between(500, 800));  // after the first resume, before the second
  EXPECT_TRUE(g.Between(800, 2000));
  EXPECT_FALSE(g.Between(900, 2000));
  EXPECT_FALSE(g.Between(100, 400));
  EXPECT_FALSE(g.Between(600, 600));
  EXPECT_EQ(g.resumes(), 2u);
}

TEST(StreamGapsTest, RangesOlderThanTheKeptResumesCountAsGaps) {
  StreamGaps g;
  for (int64_t t = 1; t <= 200; ++t) g.RecordResume(t * 1000);
  EXPECT_TRUE(g.Between(10, 20));  // before every resume still kept: cannot tell, so a gap
  EXPECT_FALSE(g.Between(199'500, 199'900));
  EXPECT_TRUE(g.Between(199'500, 200'000));
}

// A sensor whose stream makes `rate` calls per second while on (on the fake clock).
class FakeSwitch final : public StreamSwitch {
 public:
  FakeSwitch(const core::FakeClock& clock, double rate) : clock_(clock), rate_(rate) {}
  core::Status SetStream(bool on) override {
    if (fail) return core::Unavailable("attach refused");
    Account();
    if (on) resumed_at.push_back(clock_.NowUnixNanos());
    on_ = on;
    return core::Status::Ok();
  }
  uint64_t StreamCalls() const override {
    Account();
    return static_cast<uint64_t>(calls_);
  }
  int64_t EventTimeNs() const override { return clock_.NowUnixNanos(); }
  void SetSwitchingOften(bool often) override { switching_often = often; }
  void set_rate(double rate) {
    Account();
    rate_ = rate;
  }
  bool on() const { return on_; }

  bool fail = false;
  bool switching_often = false;
  std::vector<int64_t> resumed_at;

 private:
  void Account() const {
    const int64_t now = clock_.MonotonicNanos();
    if (on_) calls_ += rate_ * static_cast<double>(now - last_) * 1e-9;
    last_ = now;
  }
  const core::FakeClock& clock_;
  double rate_;
  bool on_ = true;
  mutable double calls_ = 0;
  mutable int64_t last_ = 0;
};

class StreamDutyCyclerTest : public ::testing::Test {
 protected:
  // Steps the cycler for `ns` of fake time; returns the share of that time the stream was on.
  double Run(StreamDutyCycler& c, FakeSwitch& sw, int64_t ns) {
    const int64_t end = clock_.MonotonicNanos() + ns;
    int64_t on_ns = 0;
    while (clock_.MonotonicNanos() < end) {
      const int64_t next = std::min(c.Step(), end);
      const int64_t step = std::max<int64_t>(next - clock_.MonotonicNanos(), 0);
      if (sw.on()) on_ns += step;
      clock_.Advance(step == 0 ? 1 : step);
    }
    return static_cast<double>(on_ns) / static_cast<double>(ns);
  }
  // Steps the cycler until the stream is off (bounded).
  void RunUntilOff(StreamDutyCycler& c, FakeSwitch& sw) {
    for (int i = 0; i < 100 && sw.on(); ++i) {
      const int64_t next = c.Step();
      if (!sw.on()) break;
      clock_.Advance(std::max<int64_t>(next - clock_.MonotonicNanos(), 1));
    }
  }

  core::FakeClock clock_;
  int64_t cpu_ns_ = 0;
  std::shared_ptr<StreamGaps> gaps_ = std::make_shared<StreamGaps>();
};

TEST_F(StreamDutyCyclerTest, QuietHostStreamsAllTheTime) {
  FakeSwitch sw(clock_, 5'000);
  StreamDutyCycler c(
      sw, StreamMode::kBudget, TwoCpus(), clock_, [&] { return cpu_ns_; }, gaps_);
  EXPECT_TRUE(sw.switching_often);
  EXPECT_DOUBLE_EQ(Run(c, sw, 20 * kSecond), 1.0);
  const StreamDutyStats s = c.Stats();
  EXPECT_EQ(s.switched_off, 0u);
  EXPECT_TRUE(s.on);
  EXPECT_DOUBLE_EQ(s.duty, 1.0);
  EXPECT_DOUBLE_EQ(s.planned_duty, 1.0);
  EXPECT_DOUBLE_EQ(s.budget, 0.01);
  EXPECT_EQ(gaps_->resumes(), 0u);
}

TEST_F(StreamDutyCyclerTest, BusyHostIsCycledToTheBudgetAndEveryResumeIsRecordedFirst) {
  FakeSwitch sw(clock_, 500'000);  // 17.5 % of two CPUs while on
  StreamDutyCycler c(
      sw, StreamMode::kBudget, TwoCpus(), clock_, [&] { return cpu_ns_; }, gaps_);
  Run(c, sw, 2 * kSecond);  // the first on-period (eval_ns) finds it out
  const double share = Run(c, sw, 20 * kSecond);
  const double want = 0.01 / 0.175;
  EXPECT_NEAR(share, want, 0.01);
  const StreamDutyStats s = c.Stats();
  EXPECT_NEAR(s.cost, 0.175, 0.01);
  EXPECT_NEAR(s.planned_duty, want, 0.005);
  EXPECT_GE(s.switched_off, 15u);  // about one cycle a second
  EXPECT_LE(s.switched_off, 25u);
  EXPECT_LT(s.duty, 0.1);
  // Every switch on was preceded by its resume in StreamGaps, at a time no later than the switch.
  ASSERT_EQ(gaps_->resumes(), sw.resumed_at.size());
  ASSERT_EQ(gaps_->resumes(), s.switched_on);
  for (int64_t t : sw.resumed_at) EXPECT_TRUE(gaps_->Between(t - 1, t)) << t;
}

TEST_F(StreamDutyCyclerTest, BudgetNotThePlansFloorSetsTheDutyOnAVeryBusyHost) {
  // 1,000,000 calls/s: 35 % of two CPUs while on; a 0.5 % budget allows 1/70 of the time, 1.43 %,
  // below the old plan's floor (50 ms per 2 s cycle, 2.5 %).
  StreamBudgetOptions o = TwoCpus();
  o.budget = 0.005;
  FakeSwitch sw(clock_, 1'000'000);
  StreamDutyCycler c(
      sw, StreamMode::kBudget, o, clock_, [&] { return cpu_ns_; }, gaps_);
  Run(c, sw, 2 * kSecond);
  const double want = 0.005 / 0.35;
  const double share = Run(c, sw, 120 * kSecond);
  EXPECT_NEAR(share, want, 0.002);
  EXPECT_LT(share, 0.02);
  const StreamDutyStats s = c.Stats();
  EXPECT_NEAR(s.planned_duty, want, 0.001);
  // On-periods stay at least min_on_ns long (windows of the busy programs fill): the cycles get
  // longer instead (about 3.5 s here, the old plan's longest was 2 s).
  const double cycle = static_cast<double>(120 * kSecond) / static_cast<double>(s.switched_off);
  EXPECT_GT(cycle, 3.0 * kSecond);
  EXPECT_LT(cycle, 4.5 * kSecond);
  // Every off-period is at least min_off_ns (longer than a kernel tick, for the gap cut) and every
  // resume is recorded before its switch.
  ASSERT_EQ(gaps_->resumes(), sw.resumed_at.size());
  for (size_t i = 1; i < sw.resumed_at.size(); ++i) {
    EXPECT_GE(sw.resumed_at[i] - sw.resumed_at[i - 1], o.min_on_ns + o.min_off_ns);
  }
  for (int64_t t : sw.resumed_at) EXPECT_TRUE(gaps_->Between(t - 1, t)) << t;
  // An even busier host (20 M calls/s, 7 CPUs' worth) is held at the plan's floor.
  sw.set_rate(20'000'000);
  Run(c, sw, 5 * kSecond);
  EXPECT_NEAR(Run(c, sw, 200 * kSecond), static_cast<double>(o.min_on_ns) / o.max_cycle_ns,
              0.001);
  EXPECT_LT(static_cast<double>(o.min_on_ns) / o.max_cycle_ns, 0.003);
}

TEST_F(StreamDutyCyclerTest, StreamComesBackWhenTheHostQuietsDown) {
  FakeSwitch sw(clock_, 500'000);
  StreamDutyCycler c(
      sw, StreamMode::kBudget, TwoCpus(), clock_, [&] { return cpu_ns_; }, gaps_);
  EXPECT_LT(Run(c, sw, 10 * kSecond), 0.2);
  sw.set_rate(2'000);
  Run(c, sw, 20 * kSecond);  // a few cycles: the estimate halves towards the new cost each
  EXPECT_DOUBLE_EQ(Run(c, sw, 5 * kSecond), 1.0);
  EXPECT_TRUE(c.Stats().on);
  EXPECT_DOUBLE_EQ(c.Stats().planned_duty, 1.0);
}

TEST_F(StreamDutyCyclerTest, FixedModesHoldTheStreamAndBudgetModeResumesCycling) {
  FakeSwitch sw(clock_, 500'000);
  StreamDutyCycler c(
      sw, StreamMode::kOn, TwoCpus(), clock_, [&] { return cpu_ns_; }, gaps_);
  EXPECT_FALSE(sw.switching_often);
  EXPECT_DOUBLE_EQ(Run(c, sw, 5 * kSecond), 1.0);  // on: never measured against a budget
  ASSERT_TRUE(c.SetMode(StreamMode::kOff, 0.01).ok());
  EXPECT_FALSE(sw.on());
  EXPECT_DOUBLE_EQ(Run(c, sw, 5 * kSecond), 0.0);
  EXPECT_EQ(c.Stats().mode, StreamMode::kOff);
  EXPECT_EQ(c.SetMode(StreamMode::kBudget, 1.5).code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Stats().mode, StreamMode::kOff);
  ASSERT_TRUE(c.SetMode(StreamMode::kBudget, 0.02).ok());
  EXPECT_TRUE(sw.switching_often);
  const double share = Run(c, sw, 20 * kSecond);
  EXPECT_GT(share, 0.05);
  EXPECT_LT(share, 0.2);  // 2 % of 17.5 %: about 11 %
  EXPECT_DOUBLE_EQ(c.Stats().budget, 0.02);
  ASSERT_TRUE(c.SetMode(StreamMode::kOn, 0.02).ok());
  EXPECT_TRUE(sw.on());
  EXPECT_FALSE(sw.switching_often);
}

TEST_F(StreamDutyCyclerTest, FailedSwitchesAreCountedReportedAndRetried) {
  FakeSwitch sw(clock_, 500'000);
  std::vector<std::string> errors;
  StreamDutyCycler c(
      sw, StreamMode::kBudget, TwoCpus(), clock_, [&] { return cpu_ns_; }, gaps_,
      [&](const core::Status& st) { errors.push_back(st.message()); });
  RunUntilOff(c, sw);
  ASSERT_FALSE(sw.on());
  const uint64_t switched_on = c.Stats().switched_on;
  sw.fail = true;
  Run(c, sw, 6 * kSecond);  // the off-period after the first, 250 ms on-period is about 4.1 s
  EXPECT_FALSE(sw.on());
  EXPECT_GE(c.Stats().switch_failures, 1u);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("switching the syscall stream on"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("attach refused"), std::string::npos) << errors[0];
  sw.fail = false;
  Run(c, sw, 3 * kSecond);
  EXPECT_GT(c.Stats().switched_on, switched_on);
  EXPECT_TRUE(errors.size() == c.Stats().switch_failures);
}

// A switch for a cycler that runs its own thread on the system clock.
class AtomicSwitch final : public StreamSwitch {
 public:
  core::Status SetStream(bool on) override {
    on_.store(on);
    return core::Status::Ok();
  }
  uint64_t StreamCalls() const override { return 0; }
  int64_t EventTimeNs() const override { return core::SystemClock::Get().NowUnixNanos(); }
  bool on() const { return on_.load(); }

 private:
  std::atomic<bool> on_{false};
};

TEST(StreamDutyCyclerThreadTest, ANewModeWakesTheThreadThatWaitsOutAHeldMode) {
  AtomicSwitch sw;
  StreamDutyCycler c(sw, StreamMode::kOff, TwoCpus(), core::SystemClock::Get(), &ProcessCpuNs,
                     std::make_shared<StreamGaps>());
  c.Start();
  // Held off, the thread's next step is an hour away (it does not wake to find nothing to do).
  // Budget mode from off ends the off-period at the next step, which SetMode brings forward.
  ASSERT_TRUE(c.SetMode(StreamMode::kBudget, 0.01).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!sw.on() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(sw.on()) << "the cycler's thread did not step after SetMode";
  c.Stop();
  EXPECT_GE(c.Stats().switched_on, 1u);
}

}  // namespace
}  // namespace vigil::agent
