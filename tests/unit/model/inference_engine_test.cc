#include "model/inference_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>


namespace vigil::model {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMs;
constexpr int64_t kLongBudget = 30 * kSecond;  // a budget no healthy test run comes near

class NullStream final : public StreamScorer {
 public:
  void Observe(const core::Event&) override { ++n_; }
  core::Verdict Current() const override { return {}; }
  uint64_t observed() const override { return n_; }

 private:
  uint64_t n_ = 0;
};

// A model whose behaviour the test steers: it fails, blocks or moves the fake clock on demand.
// Its score is the first feature value (or the window length / 100), so results are checkable.
class FakeModel final : public Model {
 public:
  explicit FakeModel(std::string name, core::FakeClock* clock = nullptr)
      : name_(std::move(name)), clock_(clock) {}
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view) const override {
    return std::make_unique<NullStream>();
  }
  core::Result<core::Verdict> Score(const FeatureView& r) const override {
    calls.fetch_add(1);
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !blocked_; });
    }
    if (clock_ != nullptr && advance_ns.load() > 0) clock_->Advance(advance_ns.load());
    if (fail.load()) return core::Unavailable("injected failure");
    core::Verdict v;
    v.model_name = name_;
    v.model_version = version_;
    v.score = r.values.empty() ? static_cast<double>(r.syscalls.size()) / 100.0 : r.values[0];
    v.anomalous = v.score >= 0.5;
    v.events = r.syscalls.size() + r.values.size();
    return v;
  }
  void Block() {
    std::lock_guard<std::mutex> lock(mu_);
    blocked_ = true;
  }
  void Unblock() {
    std::lock_guard<std::mutex> lock(mu_);
    blocked_ = false;
    cv_.notify_all();
  }
  // Waits (bounded) until `n` calls have entered Score.
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return entered_ >= n; });
  }

  mutable std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  std::atomic<int64_t> advance_ns{0};

 private:
  std::string family_ = "fake", name_, version_ = "1";
  core::FakeClock* clock_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int entered_ = 0;
  bool blocked_ = false;
};

ScoreRequest Vec(float x, std::string subject = "prog") {
  ScoreRequest r;
  r.subject = std::move(subject);
  r.values = {x};
  return r;
}

class InferenceEngineTest : public ::testing::Test {
 protected:
  InferenceEngineOptions Options() {
    InferenceEngineOptions o;
    o.name = "test";
    o.registry = &registry_;
    o.max_batch = 8;
    o.max_batch_delay_ns = 100'000;
    o.breaker.failure_threshold = 3;
    o.breaker.window_ns = 10 * kSecond;
    o.breaker.cooldown_ns = 5 * kSecond;
    o.fallback_score = 1.0;
    o.fallback_anomalous = true;
    return o;
  }
  std::unique_ptr<InferenceEngine> Make(std::shared_ptr<const Model> m,
                                        const InferenceEngineOptions& o) {
    auto e = InferenceEngine::Create(std::move(m), o, clock_);
    EXPECT_TRUE(e.has_value()) << e.error().ToString();
    return e.has_value() ? std::move(e).value() : nullptr;
  }
  // An engine scoring synchronous requests inline, with the verdict cache off.
  std::unique_ptr<InferenceEngine> MakeInlineUncached(std::shared_ptr<const Model> m) {
    InferenceEngineOptions o = Options();
    o.sync_inline = true;
    o.cache.capacity = 0;
    return Make(std::move(m), o);
  }
  core::FakeClock clock_;
  core::Registry registry_;
};

TEST_F(InferenceEngineTest, RefusesBadOptions) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  EXPECT_FALSE(InferenceEngine::Create(nullptr, o, clock_).has_value());
  o.max_batch = 0;
  EXPECT_FALSE(InferenceEngine::Create(m, o, clock_).has_value());
  o = Options();
  o.fallback_score = 2.0;
  EXPECT_FALSE(InferenceEngine::Create(m, o, clock_).has_value());
  o = Options();
  o.cache.ttl_ns = 0;
  EXPECT_FALSE(InferenceEngine::Create(m, o, clock_).has_value());
}

TEST_F(InferenceEngineTest, TwoEnginesCannotShareANameInOneRegistry) {
  auto m = std::make_shared<FakeModel>("a");
  auto first = Make(m, Options());
  auto second = InferenceEngine::Create(m, Options(), clock_);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), core::StatusCode::kAlreadyExists);
}

TEST_F(InferenceEngineTest, AsyncDeliversOneVerdictPerRequest) {
  auto m = std::make_shared<FakeModel>("a");
  auto engine = Make(m, Options());
  std::vector<std::future<EngineVerdict>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(engine->Submit(Vec(i / 1000.0f)));
  for (int i = 0; i < 200; ++i) {
    const EngineVerdict v = futures[i].get();
    EXPECT_EQ(v.source, VerdictSource::kModel);
    EXPECT_FLOAT_EQ(static_cast<float>(v.verdict.score), i / 1000.0f);
    EXPECT_EQ(v.verdict.model_name, "a");
  }
  EXPECT_EQ(m->calls.load(), 200);
  EXPECT_GE(engine->batches(), 200u / 8);
}

TEST_F(InferenceEngineTest, FormsBatchesOfUpToMaxBatch) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.max_batch_delay_ns = kSecond;  // batches close by size, not by time, in this test
  auto engine = Make(m, o);
  std::vector<std::future<EngineVerdict>> futures;
  for (int i = 0; i < 32; ++i) futures.push_back(engine->Submit(Vec(i / 100.0f)));
  for (auto& f : futures) EXPECT_EQ(f.get().source, VerdictSource::kModel);
  EXPECT_EQ(engine->batches(), 4u);
}

TEST_F(InferenceEngineTest, APartialBatchIsScoredWhenItsDelayEnds) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.max_batch = 1000;
  o.max_batch_delay_ns = 2 * kMs;
  auto engine = Make(m, o);
  auto f1 = engine->Submit(Vec(0.1f));
  auto f2 = engine->Submit(Vec(0.2f));
  EXPECT_EQ(f1.get().source, VerdictSource::kModel);
  EXPECT_EQ(f2.get().source, VerdictSource::kModel);
  EXPECT_GE(engine->batches(), 1u);
  EXPECT_LE(engine->batches(), 2u);
}

TEST_F(InferenceEngineTest, SyncReturnsTheModelVerdictThenTheCachedOne) {
  auto m = std::make_shared<FakeModel>("a");
  for (bool inline_mode : {false, true}) {
    InferenceEngineOptions o = Options();
    o.sync_inline = inline_mode;
    o.name = inline_mode ? "inline" : "hop";
    auto engine = Make(m, o);
    const std::vector<float> x = {0.7f};
    const int before = m->calls.load();
    const EngineVerdict first = engine->ScoreSync({"prog", core::Arch::kUnknown, {}, x},
                                                  kLongBudget);
    EXPECT_EQ(first.source, VerdictSource::kModel);
    EXPECT_FLOAT_EQ(static_cast<float>(first.verdict.score), 0.7f);
    EXPECT_TRUE(first.verdict.anomalous);
    const EngineVerdict second = engine->ScoreSync({"prog", core::Arch::kUnknown, {}, x},
                                                   kLongBudget);
    EXPECT_EQ(second.source, VerdictSource::kCache);
    EXPECT_EQ(second.verdict.score, first.verdict.score);
    EXPECT_EQ(m->calls.load(), before + 1);
    EXPECT_EQ(engine->cache().hits(), 1u);
    // Another subject is another key.
    EXPECT_EQ(engine->ScoreSync({"other", core::Arch::kUnknown, {}, x}, kLongBudget).source,
              VerdictSource::kModel);
  }
}

TEST_F(InferenceEngineTest, AsyncRequestsUseTheCacheToo) {
  auto m = std::make_shared<FakeModel>("a");
  auto engine = Make(m, Options());
  EXPECT_EQ(engine->Submit(Vec(0.3f)).get().source, VerdictSource::kModel);
  EXPECT_EQ(engine->Submit(Vec(0.3f)).get().source, VerdictSource::kCache);
  EXPECT_EQ(m->calls.load(), 1);
}

// A cache hit is answered by Submit itself, on the calling thread: a worker busy with a slow
// model does not delay it.
TEST_F(InferenceEngineTest, AsyncCacheHitsAreAnsweredOnTheCallingThread) {
  auto m = std::make_shared<FakeModel>("a");
  auto engine = Make(m, Options());
  EXPECT_EQ(engine->Submit(Vec(0.3f)).get().source, VerdictSource::kModel);
  m->Block();
  auto busy = engine->Submit(Vec(0.9f));  // occupies the worker
  ASSERT_TRUE(m->WaitEntered(2));
  bool answered = false;
  std::thread::id on;
  EngineVerdict got;
  EXPECT_TRUE(engine->Submit(Vec(0.3f), [&](EngineVerdict v) {
    answered = true;
    on = std::this_thread::get_id();
    got = std::move(v);
  }));
  EXPECT_TRUE(answered);
  EXPECT_EQ(on, std::this_thread::get_id());
  EXPECT_EQ(got.source, VerdictSource::kCache);
  EXPECT_FLOAT_EQ(static_cast<float>(got.verdict.score), 0.3f);
  m->Unblock();
  EXPECT_EQ(busy.get().source, VerdictSource::kModel);
  EXPECT_EQ(m->calls.load(), 2);
}

// An asynchronous request with a deadline: scored too late, it gets the deadline fallback (the
// model's verdict still fills the cache, and the miss counts for the breaker); expired while
// queued, the model is not asked at all.
TEST_F(InferenceEngineTest, AsyncRequestsKeepTheirDeadline) {
  auto m = std::make_shared<FakeModel>("a", &clock_);
  auto engine = Make(m, Options());
  m->advance_ns = 2 * kMs;  // each call takes 2 ms of the engine's clock
  auto late = [&](float x) {
    ScoreRequest r = Vec(x);
    r.deadline_ns = clock_.MonotonicNanos() + 1 * kMs;
    return engine->Submit(std::move(r)).get();
  };
  const EngineVerdict v = late(0.3f);
  EXPECT_EQ(v.source, VerdictSource::kFallback);
  EXPECT_EQ(v.reason, FallbackReason::kDeadline);
  EXPECT_EQ(v.verdict.score, 1.0);
  EXPECT_EQ(v.verdict.model_name, "a");
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 1u);
  EXPECT_EQ(m->calls.load(), 1);
  const EngineVerdict cached = engine->Submit(Vec(0.3f)).get();
  EXPECT_EQ(cached.source, VerdictSource::kCache);
  EXPECT_FLOAT_EQ(static_cast<float>(cached.verdict.score), 0.3f);

  ScoreRequest expired = Vec(0.4f);
  expired.deadline_ns = clock_.MonotonicNanos();
  EXPECT_EQ(engine->Submit(std::move(expired)).get().reason, FallbackReason::kDeadline);
  EXPECT_EQ(m->calls.load(), 1);
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 2u);
  EXPECT_EQ(engine->breaker().state(), BreakerState::kClosed);

  // Two more late verdicts make three misses: the breaker opens.
  EXPECT_EQ(late(0.5f).reason, FallbackReason::kDeadline);
  EXPECT_EQ(late(0.6f).reason, FallbackReason::kDeadline);
  EXPECT_EQ(engine->breaker().state(), BreakerState::kOpen);
  EXPECT_EQ(engine->Submit(Vec(0.7f)).get().reason, FallbackReason::kBreakerOpen);
  // FallbackVerdict builds the same answer without counting it.
  const EngineVerdict built = engine->FallbackVerdict(FallbackReason::kDeadline);
  EXPECT_EQ(built.reason, FallbackReason::kDeadline);
  EXPECT_EQ(built.verdict.explanation[0].what, "fallback: deadline exceeded");
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 4u);
}

TEST_F(InferenceEngineTest, ACallerGivingUpAndTheWorkerSettleARequestOnce) {
  auto m = std::make_shared<FakeModel>("a");
  auto engine = Make(m, Options());
  // The worker is in the model with `a` (by the fake clock, which stands still, it is in time)
  // and `b` waits behind it; their caller gives up on both.
  AnswerClaim claim_a{ClaimState::kOpen}, claim_b{ClaimState::kOpen};
  m->Block();
  ScoreRequest a = Vec(0.2f), b = Vec(0.3f);
  a.claim = &claim_a;
  b.claim = &claim_b;
  std::future<EngineVerdict> fa = engine->Submit(std::move(a));
  ASSERT_TRUE(m->WaitEntered(1));
  std::future<EngineVerdict> fb = engine->Submit(std::move(b));
  for (AnswerClaim* c : {&claim_a, &claim_b}) {
    const std::optional<EngineVerdict> given_up = engine->GiveUp(*c);
    ASSERT_TRUE(given_up.has_value());
    EXPECT_EQ(given_up->reason, FallbackReason::kDeadline);
  }
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 2u);
  m->Unblock();
  // Each callback still comes once, with the (uncounted) fallback; `b` never reached the model;
  // `a`'s verdict went to the cache and counted as a miss for the breaker.
  for (auto* f : {&fa, &fb}) {
    const EngineVerdict v = f->get();
    EXPECT_TRUE(v.fallback());
    EXPECT_EQ(v.reason, FallbackReason::kDeadline);
  }
  EXPECT_EQ(m->calls.load(), 1);
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 2u);
  EXPECT_EQ(engine->ScoreSync({"prog", core::Arch::kUnknown, {}, std::vector<float>{0.2f}},
                              kLongBudget)
                .source,
            VerdictSource::kCache);
  // Settled by the worker first: giving up afterwards yields nothing, and nothing is counted.
  AnswerClaim claim_c{ClaimState::kOpen};
  ScoreRequest c = Vec(0.4f);
  c.claim = &claim_c;
  const EngineVerdict answered = engine->Submit(std::move(c)).get();
  EXPECT_EQ(answered.source, VerdictSource::kModel);
  EXPECT_FALSE(engine->GiveUp(claim_c).has_value());
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 2u);
}

TEST_F(InferenceEngineTest, CachedVerdictsExpire) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.cache.ttl_ns = 10 * kSecond;
  auto engine = Make(m, o);
  const std::vector<float> x = {0.2f};
  const FeatureView req{"prog", core::Arch::kUnknown, {}, x};
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).source, VerdictSource::kModel);
  clock_.Advance(10 * kSecond);
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).source, VerdictSource::kModel);
  EXPECT_EQ(m->calls.load(), 2);
}

TEST_F(InferenceEngineTest, SyncGivesTheFallbackWhenTheModelMissesTheDeadline) {
  auto m = std::make_shared<FakeModel>("a");
  auto engine = Make(m, Options());
  m->Block();
  const std::vector<float> x = {0.2f};
  const auto start = std::chrono::steady_clock::now();
  const EngineVerdict v = engine->ScoreSync({"prog", core::Arch::kUnknown, {}, x}, 50 * kMs);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(v.source, VerdictSource::kFallback);
  EXPECT_EQ(v.reason, FallbackReason::kDeadline);
  EXPECT_EQ(v.verdict.score, 1.0);
  EXPECT_TRUE(v.verdict.anomalous);
  EXPECT_EQ(v.verdict.model_name, "a");
  ASSERT_EQ(v.verdict.explanation.size(), 1u);
  EXPECT_EQ(v.verdict.explanation[0].what, "fallback: deadline exceeded");
  // It gave up at its deadline, not when the model finished.
  EXPECT_LT(waited, std::chrono::seconds(20));
  // (On a loaded machine the worker may reach the request only after the caller gave up; it
  // then skips it, so the test does not wait for the model to be entered.)
  m->Unblock();
  EXPECT_EQ(engine->fallbacks(FallbackReason::kDeadline), 1u);
  // The late verdict was kept for the cache; a new request is answered normally.
  const std::vector<float> y = {0.3f};
  EXPECT_EQ(engine->ScoreSync({"prog", core::Arch::kUnknown, {}, y}, kLongBudget).source,
            VerdictSource::kModel);
}

TEST_F(InferenceEngineTest, InlineSyncReplacesALateVerdictWithTheFallback) {
  auto m = std::make_shared<FakeModel>("a", &clock_);
  InferenceEngineOptions o = Options();
  o.sync_inline = true;
  auto engine = Make(m, o);
  m->advance_ns = 2 * kMs;
  const std::vector<float> x = {0.2f};
  const EngineVerdict late = engine->ScoreSync({"p", core::Arch::kUnknown, {}, x}, 1 * kMs);
  EXPECT_EQ(late.reason, FallbackReason::kDeadline);
  const std::vector<float> y = {0.3f};
  const EngineVerdict ok = engine->ScoreSync({"p", core::Arch::kUnknown, {}, y}, 3 * kMs);
  EXPECT_EQ(ok.source, VerdictSource::kModel);
}

// With the cache off (no digest is taken), every request goes to the model, even a repeated one,
// and gets its own verdict.
TEST_F(InferenceEngineTest, InlineSyncWithTheCacheOffScoresEveryRequest) {
  auto m = std::make_shared<FakeModel>("a", &clock_);
  auto engine = MakeInlineUncached(m);
  const std::vector<float> x = {0.2f}, y = {0.7f};
  for (int i = 0; i < 3; ++i) {
    const EngineVerdict a = engine->ScoreSync({"p", core::Arch::kUnknown, {}, x}, kLongBudget);
    const EngineVerdict b = engine->ScoreSync({"p", core::Arch::kUnknown, {}, y}, kLongBudget);
    EXPECT_EQ(a.source, VerdictSource::kModel);
    EXPECT_EQ(b.source, VerdictSource::kModel);
    EXPECT_FLOAT_EQ(static_cast<float>(a.verdict.score), 0.2f);
    EXPECT_FLOAT_EQ(static_cast<float>(b.verdict.score), 0.7f);
  }
  EXPECT_EQ(m->calls.load(), 6);
  EXPECT_EQ(engine->cache().hits() + engine->cache().misses(), 0u);
  EXPECT_EQ(engine->VerdictLatency(true).count, 6u);
}

// Errors and deadline misses open the breaker; while open the model is not asked; after the
// cool-down one probe decides.
TEST_F(InferenceEngineTest, BreakerOpensOnFailuresAndAProbeClosesIt) {
  auto m = std::make_shared<FakeModel>("a", &clock_);
  auto engine = MakeInlineUncached(m);
  const std::vector<float> x = {0.2f};
  const FeatureView req{"p", core::Arch::kUnknown, {}, x};
  m->fail = true;
  for (int i = 0; i < 2; ++i) {
    const EngineVerdict v = engine->ScoreSync(req, kLongBudget);
    EXPECT_EQ(v.reason, FallbackReason::kModelError);
    EXPECT_EQ(v.verdict.explanation[0].what, "fallback: model error");
  }
  EXPECT_EQ(engine->breaker().state(), BreakerState::kClosed);
  // The third failure is a deadline miss.
  m->fail = false;
  m->advance_ns = 2 * kMs;
  EXPECT_EQ(engine->ScoreSync(req, 1 * kMs).reason, FallbackReason::kDeadline);
  EXPECT_EQ(engine->breaker().state(), BreakerState::kOpen);
  m->advance_ns = 0;
  const int calls = m->calls.load();
  const EngineVerdict open = engine->ScoreSync(req, kLongBudget);
  EXPECT_EQ(open.reason, FallbackReason::kBreakerOpen);
  EXPECT_EQ(open.verdict.explanation[0].what, "fallback: breaker open");
  EXPECT_EQ(engine->Submit(Vec(0.4f)).get().reason, FallbackReason::kBreakerOpen);
  EXPECT_EQ(m->calls.load(), calls);
  EXPECT_EQ(engine->fallbacks(FallbackReason::kBreakerOpen), 2u);
  // A failed probe re-opens it.
  clock_.Advance(5 * kSecond);
  m->fail = true;
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).reason, FallbackReason::kModelError);
  EXPECT_EQ(engine->breaker().state(), BreakerState::kOpen);
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).reason, FallbackReason::kBreakerOpen);
  // A successful probe closes it.
  clock_.Advance(5 * kSecond);
  m->fail = false;
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).source, VerdictSource::kModel);
  EXPECT_EQ(engine->breaker().state(), BreakerState::kClosed);
  EXPECT_EQ(engine->breaker().opened(), 2u);
  EXPECT_EQ(engine->breaker().closed(), 1u);
}

TEST_F(InferenceEngineTest, AsyncModelErrorsOpenTheBreakerToo) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.cache.capacity = 0;
  auto engine = Make(m, o);
  m->fail = true;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(engine->Submit(Vec(0.1f)).get().reason, FallbackReason::kModelError);
  }
  EXPECT_EQ(engine->breaker().state(), BreakerState::kOpen);
  EXPECT_EQ(engine->Submit(Vec(0.1f)).get().reason, FallbackReason::kBreakerOpen);
}

TEST_F(InferenceEngineTest, AFullQueueAnswersWithTheFallbackAtOnce) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.max_batch = 1;
  o.max_batch_delay_ns = 0;
  o.queue_capacity = 2;
  o.cache.capacity = 0;
  auto engine = Make(m, o);
  m->Block();
  auto first = engine->Submit(Vec(0.1f));
  ASSERT_TRUE(m->WaitEntered(1));  // the worker holds the first request
  auto second = engine->Submit(Vec(0.2f));
  auto third = engine->Submit(Vec(0.3f));
  EngineVerdict refused;
  bool called = false;
  EXPECT_FALSE(engine->Submit(Vec(0.4f), [&](EngineVerdict v) {
    refused = std::move(v);
    called = true;
  }));
  ASSERT_TRUE(called);
  EXPECT_EQ(refused.reason, FallbackReason::kQueueFull);
  m->Unblock();
  EXPECT_EQ(first.get().source, VerdictSource::kModel);
  EXPECT_EQ(second.get().source, VerdictSource::kModel);
  EXPECT_EQ(third.get().source, VerdictSource::kModel);
}

TEST_F(InferenceEngineTest, StopScoresWhatIsQueuedAndRefusesTheRest) {
  auto m = std::make_shared<FakeModel>("a");
  InferenceEngineOptions o = Options();
  o.max_batch_delay_ns = kSecond;
  o.cache.capacity = 0;
  auto engine = Make(m, o);
  std::vector<std::future<EngineVerdict>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(engine->Submit(Vec(0.1f)));
  engine->Stop();
  for (auto& f : futures) EXPECT_EQ(f.get().source, VerdictSource::kModel);
  EXPECT_EQ(engine->Submit(Vec(0.1f)).get().reason, FallbackReason::kStopped);
  const std::vector<float> x = {0.5f};
  EXPECT_EQ(engine->ScoreSync({"p", core::Arch::kUnknown, {}, x}, kLongBudget).reason,
            FallbackReason::kStopped);
}

TEST_F(InferenceEngineTest, SwapUnderLoadGivesEveryRequestExactlyOneVerdict) {
  auto a = std::make_shared<FakeModel>("a");
  auto b = std::make_shared<FakeModel>("b");
  InferenceEngineOptions o = Options();
  o.cache.capacity = 64;
  auto engine = Make(a, o);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 3000;
  std::vector<std::atomic<int>> delivered(kThreads * kPerThread);
  std::atomic<int> from_a{0}, from_b{0}, wrong{0};
  std::atomic<bool> done{false};
  auto record = [&](const EngineVerdict& v) {
    if (v.fallback()) wrong.fetch_add(1);
    if (v.verdict.model_name == "a") from_a.fetch_add(1);
    else if (v.verdict.model_name == "b") from_b.fetch_add(1);
    else wrong.fetch_add(1);
  };
  std::thread swapper([&] {
    bool to_b = true;
    while (!done.load()) {
      EXPECT_TRUE(engine->Swap(to_b ? std::shared_ptr<const Model>(b) : a));
      to_b = !to_b;
      std::this_thread::yield();
    }
  });
  std::thread gate([&] {
    std::mt19937 rng(7);
    while (!done.load()) {
      const std::vector<float> x = {static_cast<float>(rng() % 100) / 100.0f};
      record(engine->ScoreSync({"gate", core::Arch::kUnknown, {}, x}, kLongBudget));
    }
  });
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        ScoreRequest r = Vec(static_cast<float>(id % 50) / 100.0f);
        const bool queued = engine->Submit(std::move(r), [&, id](EngineVerdict v) {
          delivered[id].fetch_add(1);
          record(v);
        });
        EXPECT_TRUE(queued);
      }
    });
  }
  for (auto& s : submitters) s.join();
  done = true;
  swapper.join();
  gate.join();
  engine->Stop();  // scores whatever is still queued
  for (int id = 0; id < kThreads * kPerThread; ++id) {
    ASSERT_EQ(delivered[id].load(), 1) << "request " << id;
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(engine->generation(), 1u);
  EXPECT_GT(from_a.load() + from_b.load(), kThreads * kPerThread - 1);
}

TEST_F(InferenceEngineTest, ASwappedModelDoesNotServeItsPredecessorsCachedVerdicts) {
  auto a = std::make_shared<FakeModel>("a");
  auto b = std::make_shared<FakeModel>("b");
  auto engine = Make(a, Options());
  const std::vector<float> x = {0.2f};
  const FeatureView req{"p", core::Arch::kUnknown, {}, x};
  EXPECT_EQ(engine->ScoreSync(req, kLongBudget).verdict.model_name, "a");
  ASSERT_TRUE(engine->Swap(b));
  EXPECT_FALSE(engine->Swap(nullptr));
  const EngineVerdict v = engine->ScoreSync(req, kLongBudget);
  EXPECT_EQ(v.source, VerdictSource::kModel);
  EXPECT_EQ(v.verdict.model_name, "b");
  EXPECT_EQ(engine->generation(), 2u);
  EXPECT_EQ(engine->model().get(), b.get());
}

TEST_F(InferenceEngineTest, ExportsCountersAndLatencyHistograms) {
  auto m = std::make_shared<FakeModel>("a", &clock_);
  InferenceEngineOptions o = Options();
  o.sync_inline = true;
  auto engine = Make(m, o);
  m->advance_ns = 3000;  // every scoring takes 3 µs of fake time
  for (int i = 0; i < 100; ++i) {
    const std::vector<float> x = {static_cast<float>(i) / 1000.0f};
    EXPECT_EQ(engine->ScoreSync({"p", core::Arch::kUnknown, {}, x}, kLongBudget).source,
              VerdictSource::kModel);
  }
  const std::vector<float> x = {0.0f};
  EXPECT_EQ(engine->ScoreSync({"p", core::Arch::kUnknown, {}, x}, kLongBudget).source,
            VerdictSource::kCache);
  const LatencySummary l = engine->ModelLatency();
  EXPECT_EQ(l.count, 100u);
  // 3 µs lies in the bucket (2.15 µs, 3.16 µs].
  EXPECT_GT(l.p50_s, 2.15e-6);
  EXPECT_LE(l.p99_s, 3.17e-6);
  EXPECT_EQ(engine->VerdictLatency(true).count, 101u);
  const std::string text = registry_.ExpositionText();
  EXPECT_THAT(text, HasSubstr("vigil_engine_requests_total{engine=\"test\",path=\"sync\"} 101"));
  EXPECT_THAT(text, HasSubstr("vigil_engine_cache_hits_total{engine=\"test\"} 1"));
  EXPECT_THAT(text, HasSubstr("vigil_engine_cache_misses_total{engine=\"test\"} 100"));
  EXPECT_THAT(text, HasSubstr("vigil_engine_cache_hit_ratio{engine=\"test\"}"));
  EXPECT_THAT(text, HasSubstr("vigil_engine_breaker_state{engine=\"test\"} 0"));
  EXPECT_THAT(text, HasSubstr("vigil_model_score_seconds_count{engine=\"test\",model=\"a\","
                              "version=\"1\"} 100"));
  EXPECT_THAT(text, HasSubstr("vigil_engine_fallbacks_total{engine=\"test\",reason=\"breaker_open\"} 0"));
}

}  // namespace
}  // namespace vigil::model
