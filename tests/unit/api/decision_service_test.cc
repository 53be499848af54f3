// ModelDecisionService through the inference engine, without a transport: concurrent requests
// are micro-batched and answer as single calls do, a late model gives the fallback (and its late
// verdict still fills the cache), repeated inputs come from the cache with the hit ratio on the
// registry, and a model swap is served at once.

#include "service/decision_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/codec.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "model/model.h"
#include "policy/rules.h"

namespace vigil::service {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kLongBudget = 30'000 * kMs;  // a budget no healthy test run comes near

// Scores a window by its share of calls numbered 59 (execve). Score() can be held at its entry
// (Block/Unblock), so a test controls when the engine's worker gets on.
class GatedModel final : public model::Model {
 public:
  explicit GatedModel(std::string version = "1") : version_(std::move(version)) {}
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view) const override {
    return nullptr;  // not used: Score is overridden
  }
  core::Result<core::Verdict> Score(const model::FeatureView& r) const override {
    std::chrono::nanoseconds delay{0};
    core::FakeClock* delay_clock = nullptr;
    {
      std::unique_lock lock(mu_);
      ++entered_;
      last_thread_ = std::this_thread::get_id();
      cv_.notify_all();
      cv_.wait(lock, [&] { return !blocked_; });
      delay = delay_;
      delay_clock = delay_clock_;
    }
    if (delay_clock != nullptr) delay_clock->Advance(delay.count());
    core::Verdict v;
    size_t hits = 0;
    for (int32_t nr : r.syscalls) hits += nr == 59 ? 1 : 0;
    v.score = r.syscalls.empty() ? 0.0 : double(hits) / double(r.syscalls.size());
    v.anomalous = v.score >= 0.5;
    v.model_name = name_;
    v.model_version = version_;
    v.explanation.push_back({"execve share of " + std::string(r.subject), v.score});
    return v;
  }
  void Block() {
    std::lock_guard lock(mu_);
    blocked_ = true;
  }
  void Unblock() {
    std::lock_guard lock(mu_);
    blocked_ = false;
    cv_.notify_all();
  }
  bool WaitEntered(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return entered_ >= n; });
  }
  int entered() const {
    std::lock_guard lock(mu_);
    return entered_;
  }
  // Every later Score takes `d` by `clock` (advanced by the model: no test sleeps for it).
  void SetDelay(core::FakeClock* clock, std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    delay_clock_ = clock;
    delay_ = d;
  }
  std::thread::id last_thread() const {
    std::lock_guard lock(mu_);
    return last_thread_;
  }

 private:
  std::string family_ = "test-gated", name_ = "gated", version_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int entered_ = 0;
  mutable std::thread::id last_thread_;
  bool blocked_ = false;
  std::chrono::nanoseconds delay_{0};
  core::FakeClock* delay_clock_ = nullptr;
};

constexpr const char* kRules = R"Y(
- rule: Anomalous program
  desc: the model flags it
  condition: ml.anomalous=true
  output: "anomalous %proc.name"
  priority: error
  action: {type: kill, mode: enforce, fallback: alert}
)Y";

v1::ScoreRequest Window(const std::string& subject, std::vector<int32_t> calls) {
  v1::ScoreRequest r;
  r.set_schema_version(std::string(api::kSchemaVersion));
  r.set_subject(subject);
  r.set_arch("x86_64");
  for (int32_t c : calls) r.add_syscalls(c);
  return r;
}

class DecisionServiceTest : public ::testing::Test {
 protected:
  void Make(ScoringConfig config) {
    svc_ = std::make_unique<ModelDecisionService>(config, registry_, *clock_);
    auto rules = policy::RuleSet::LoadString(kRules, "rules.yaml");
    ASSERT_TRUE(rules.has_value()) << rules.error().message();
    rules_ = std::make_shared<const policy::RuleSet>(std::move(*rules));
    auto s = svc_->Install(model_, rules_, "p1");
    ASSERT_TRUE(s.ok()) << s.message();
  }
  api::CallContext Ctx(int64_t budget_ns) const {
    api::CallContext c;
    c.admitted_mono_ns = clock_->MonotonicNanos();
    c.budget_ns = budget_ns;
    return c;
  }
  // Waits (bounded) until the engine holds `n` queued requests.
  bool WaitQueued(size_t n) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (svc_->engine()->queue_depth() < n) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::yield();
    }
    return true;
  }

  // A held model is let go before the service is destroyed: a test that failed while holding it
  // ends instead of hanging in the engine's stop.
  void TearDown() override { model_->Unblock(); }

  // The services' clock (Make, Ctx): the system clock unless a test sets &fake_clock_.
  const core::Clock* clock_ = &core::SystemClock::Get();
  core::FakeClock fake_clock_;
  core::Registry registry_;
  std::shared_ptr<GatedModel> model_ = std::make_shared<GatedModel>();
  std::shared_ptr<const policy::RuleSet> rules_;
  std::unique_ptr<ModelDecisionService> svc_;
};

TEST_F(DecisionServiceTest, ConcurrentRequestsAreMicroBatchedAndAnswerAsSingleCallsDo) {
  ScoringConfig config;
  config.batch_max = 64;
  config.batch_delay_us = 0;  // a batch is whatever is queued when the worker gets to it
  config.cache_capacity = 0;  // every answer comes from the model
  config.inline_when_fast = false;  // the queued path, always
  Make(config);
  constexpr int kClients = 12;
  std::vector<v1::ScoreRequest> requests;
  for (int i = 0; i < kClients; ++i) {
    std::vector<int32_t> calls(static_cast<size_t>(i + 1), 59);
    calls.insert(calls.end(), static_cast<size_t>(kClients - i), 3);
    requests.push_back(Window("prog" + std::to_string(i % 3), calls));
  }
  // The first request holds the worker in the model while the others queue up behind it.
  model_->Block();
  std::vector<v1::ScoreResponse> answers(kClients);
  std::vector<std::thread> clients;
  clients.emplace_back([&] { answers[0] = svc_->Score(requests[0], Ctx(kLongBudget)).value(); });
  ASSERT_TRUE(model_->WaitEntered(1));
  for (int i = 1; i < kClients; ++i) {
    clients.emplace_back(
        [&, i] { answers[i] = svc_->Score(requests[i], Ctx(kLongBudget)).value(); });
  }
  ASSERT_TRUE(WaitQueued(kClients - 1));
  const uint64_t batches_before = svc_->engine()->batches();
  model_->Unblock();
  for (auto& t : clients) t.join();
  // The eleven queued requests were scored as one micro-batch.
  EXPECT_EQ(svc_->engine()->batches(), batches_before + 1);
  for (int i = 0; i < kClients; ++i) {
    auto single = svc_->Score(requests[i], Ctx(kLongBudget));
    ASSERT_TRUE(single.has_value());
    const v1::Score& a = answers[i].result();
    const v1::Score& b = single->result();
    EXPECT_FALSE(a.fallback()) << i;
    EXPECT_DOUBLE_EQ(a.score(), b.score()) << i;
    EXPECT_EQ(a.anomalous(), b.anomalous()) << i;
    ASSERT_EQ(a.explanation_size(), 1);
    EXPECT_EQ(a.explanation(0).what(), b.explanation(0).what());
    EXPECT_EQ(answers[i].policy_version(), "p1");
  }
  // ScoreBatch gives the same answers, in order.
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  for (const auto& r : requests) *batch.add_items() = r;
  auto all = svc_->ScoreBatch(batch, Ctx(kLongBudget));
  ASSERT_TRUE(all.has_value()) << all.error().message();
  ASSERT_EQ(all->results_size(), kClients);
  for (int i = 0; i < kClients; ++i) {
    EXPECT_DOUBLE_EQ(all->results(i).score(), answers[i].result().score()) << i;
  }
}

TEST_F(DecisionServiceTest, ALateModelGivesTheFallbackAndItsVerdictStillFillsTheCache) {
  ScoringConfig config;
  config.fallback_score = 0.9;
  config.fallback_anomalous = true;
  config.inline_when_fast = false;  // the queued path, always
  Make(config);
  const v1::ScoreRequest r = Window("sh", {59, 1, 1, 1});
  model_->Block();
  const auto t0 = std::chrono::steady_clock::now();
  auto late = svc_->Score(r, Ctx(20 * kMs));
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(late.has_value());
  EXPECT_LT(waited, std::chrono::seconds(10));  // answered at its deadline, not when the model is
  const v1::Score& f = late->result();
  EXPECT_TRUE(f.fallback());
  EXPECT_FALSE(f.cached());
  EXPECT_EQ(f.fallback_reason(), "deadline exceeded");
  EXPECT_DOUBLE_EQ(f.score(), 0.9);
  EXPECT_TRUE(f.anomalous());
  EXPECT_EQ(f.model_name(), "gated");
  EXPECT_EQ(f.model_version(), "1");
  ASSERT_EQ(f.explanation_size(), 1);
  EXPECT_EQ(f.explanation(0).what(), "fallback: deadline exceeded");
  // A batch answers its late items the same way, each item on its own.
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  *batch.add_items() = Window("sh", {1, 2});
  auto late_batch = svc_->ScoreBatch(batch, Ctx(5 * kMs));
  ASSERT_TRUE(late_batch.has_value());
  EXPECT_TRUE(late_batch->results(0).fallback());
  // The model answers later; that verdict is kept and serves the same request from the cache.
  model_->Unblock();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  v1::ScoreResponse cached;
  do {
    auto again = svc_->Score(r, Ctx(kLongBudget));
    ASSERT_TRUE(again.has_value());
    cached = *again;
  } while (!cached.result().cached() && std::chrono::steady_clock::now() < until);
  EXPECT_TRUE(cached.result().cached());
  EXPECT_FALSE(cached.result().fallback());
  EXPECT_DOUBLE_EQ(cached.result().score(), 0.25);
  // The engine counted both late answers as deadline fallbacks: the one the model finished late
  // and the batch item that expired in its queue (never scored).
  while (svc_->engine()->fallbacks(model::FallbackReason::kDeadline) < 2 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(svc_->engine()->fallbacks(model::FallbackReason::kDeadline), 2u);
}

TEST_F(DecisionServiceTest, AFastModelIsScoredOnTheCallingThreadAndAnswersAsTheQueueDoes) {
  ScoringConfig config;
  config.cache_capacity = 0;  // every answer comes from the model
  Make(config);
  std::vector<v1::ScoreRequest> requests;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> calls(static_cast<size_t>(i + 1), 59);
    calls.insert(calls.end(), 4, 3);
    requests.push_back(Window("prog" + std::to_string(i), calls));
  }
  // The model's time is unknown before its first answer: that one goes through the worker.
  ASSERT_TRUE(svc_->Score(requests[0], Ctx(kLongBudget)).has_value());
  EXPECT_NE(model_->last_thread(), std::this_thread::get_id());
  const uint64_t batches = svc_->engine()->batches();
  ASSERT_GE(svc_->engine()->RecentModelNanos(), 0);
  // From then on, on this thread, with the same answers as the queued path gives.
  ScoringConfig queued_config = config;
  queued_config.inline_when_fast = false;
  core::Registry queued_registry;
  ModelDecisionService queued(queued_config, queued_registry, *clock_);
  ASSERT_TRUE(queued.Install(std::make_shared<GatedModel>(), rules_, "p1").ok());
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  for (const auto& r : requests) *batch.add_items() = r;
  auto inline_batch = svc_->ScoreBatch(batch, Ctx(kLongBudget));
  ASSERT_TRUE(inline_batch.has_value());
  EXPECT_EQ(model_->last_thread(), std::this_thread::get_id());
  auto queued_batch = queued.ScoreBatch(batch, Ctx(kLongBudget));
  ASSERT_TRUE(queued_batch.has_value());
  ASSERT_EQ(inline_batch->results_size(), 6);
  for (int i = 0; i < 6; ++i) {
    auto single = svc_->Score(requests[static_cast<size_t>(i)], Ctx(kLongBudget));
    ASSERT_TRUE(single.has_value());
    EXPECT_EQ(model_->last_thread(), std::this_thread::get_id());
    for (const v1::Score* a : {&inline_batch->results(i), &single->result()}) {
      const v1::Score& b = queued_batch->results(i);
      EXPECT_FALSE(a->fallback()) << i;
      EXPECT_FALSE(a->cached()) << i;
      EXPECT_DOUBLE_EQ(a->score(), b.score()) << i;
      EXPECT_EQ(a->anomalous(), b.anomalous()) << i;
      EXPECT_EQ(a->model_name(), b.model_name());
      ASSERT_EQ(a->explanation_size(), 1);
      EXPECT_EQ(a->explanation(0).what(), b.explanation(0).what());
    }
  }
  EXPECT_EQ(svc_->engine()->batches(), batches);  // the worker was not involved
}

// The model's time passes on a fake clock (each call advances it), so where a batch's budget runs
// out does not depend on how busy the machine is; only the hung call waits, in real time.
TEST_F(DecisionServiceTest, AModelTurningSlowIsLeftToTheWorkerSoTheDeadlineHolds) {
  clock_ = &fake_clock_;
  ScoringConfig config;
  config.cache_capacity = 0;
  config.fallback_score = 0.9;
  Make(config);
  ASSERT_TRUE(svc_->Score(Window("a", {59}), Ctx(kLongBudget)).has_value());  // via the worker
  // Inline, a batch whose budget runs out midway: the item finished late gets the deadline
  // fallback, and the one after it is not given to the model at all.
  constexpr int64_t kModelNs = 500 * kMs;
  model_->SetDelay(&fake_clock_, std::chrono::nanoseconds(kModelNs));
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  for (const char* subject : {"b", "c", "d"}) *batch.add_items() = Window(subject, {59, 1});
  const int entered = model_->entered();
  auto late = svc_->ScoreBatch(batch, Ctx(kModelNs * 3 / 2));
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(model_->last_thread(), std::this_thread::get_id());
  EXPECT_EQ(model_->entered(), entered + 2);
  EXPECT_FALSE(late->results(0).fallback());
  EXPECT_DOUBLE_EQ(late->results(0).score(), 0.5);
  for (int i : {1, 2}) {
    EXPECT_TRUE(late->results(i).fallback()) << i;
    EXPECT_EQ(late->results(i).fallback_reason(), "deadline exceeded") << i;
    EXPECT_DOUBLE_EQ(late->results(i).score(), 0.9) << i;
  }
  EXPECT_EQ(svc_->engine()->fallbacks(model::FallbackReason::kDeadline), 2u);
  // The engine now knows the model takes 500 ms: with 1 s left (< 4 x 500 ms) a call goes to the
  // worker, and a model that hangs gives the fallback at the deadline, not a hung caller. (The
  // fake clock stands still meanwhile: the caller waits the whole second in real time, which
  // leaves the worker that long to take the call to the held model.)
  ASSERT_EQ(svc_->engine()->RecentModelNanos(), kModelNs);
  model_->Block();
  const auto t0 = std::chrono::steady_clock::now();
  auto hung = svc_->Score(Window("e", {59}), Ctx(2 * kModelNs));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  ASSERT_TRUE(hung.has_value());
  EXPECT_TRUE(hung->result().fallback());
  EXPECT_EQ(hung->result().fallback_reason(), "deadline exceeded");
  ASSERT_TRUE(model_->WaitEntered(entered + 3));
  EXPECT_NE(model_->last_thread(), std::this_thread::get_id());
  model_->Unblock();
}

TEST_F(DecisionServiceTest, AVerdictFinishedInTimeForTheEngineButAfterTheCallerGaveUpIsCountedOnce) {
  // The engine's clock stands still, so by it the model is never late; the caller's wait (real
  // time) runs out first. The client gets the deadline fallback, and that is what is counted:
  // once, with the model's verdict going only to the cache (before, the client got an uncounted
  // fallback and the engine counted a model verdict nobody received).
  core::FakeClock still;
  ScoringConfig config;
  config.inline_when_fast = false;
  core::Registry registry;
  ModelDecisionService svc(config, registry, still);
  auto rules = policy::RuleSet::LoadString(kRules, "rules.yaml");
  ASSERT_TRUE(rules.has_value());
  ASSERT_TRUE(svc.Install(model_, std::make_shared<const policy::RuleSet>(std::move(*rules)), "p1")
                  .ok());
  const v1::ScoreRequest r = Window("sh", {59, 1});
  model_->Block();
  api::CallContext ctx;
  ctx.admitted_mono_ns = still.MonotonicNanos();
  ctx.budget_ns = 20 * kMs;
  auto late = svc.Score(r, ctx);
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(late->result().fallback());
  EXPECT_EQ(late->result().fallback_reason(), "deadline exceeded");
  EXPECT_EQ(svc.engine()->fallbacks(model::FallbackReason::kDeadline), 1u);
  model_->Unblock();
  // The model's verdict reaches the cache, and no second answer is counted for the request.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool cached = false;
  while (!cached && std::chrono::steady_clock::now() < until) {
    ctx.budget_ns = kLongBudget;
    auto again = svc.Score(r, ctx);
    ASSERT_TRUE(again.has_value());
    cached = again->result().cached();
  }
  EXPECT_TRUE(cached);
  EXPECT_EQ(svc.engine()->fallbacks(model::FallbackReason::kDeadline), 1u);
  EXPECT_EQ(svc.engine()->breaker().state(), model::BreakerState::kClosed);
}

TEST_F(DecisionServiceTest, RepeatedInputsComeFromTheCacheAndTheHitRatioIsExported) {
  Make(ScoringConfig{});
  const v1::ScoreRequest r = Window("sh", {59, 59, 1, 59});
  auto first = svc_->Score(r, Ctx(kLongBudget));
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->result().cached());
  EXPECT_EQ(model_->entered(), 1);
  for (int i = 0; i < 3; ++i) {
    auto again = svc_->Score(r, Ctx(kLongBudget));
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(again->result().cached());
    EXPECT_FALSE(again->result().fallback());
    EXPECT_DOUBLE_EQ(again->result().score(), 0.75);
    EXPECT_EQ(again->result().explanation(0).what(), "execve share of sh");
  }
  EXPECT_EQ(model_->entered(), 1);  // the model was asked once
  // Decide on the same features uses the same cache.
  v1::DecideRequest d;
  d.set_schema_version(std::string(api::kSchemaVersion));
  d.mutable_event()->set_kind("process_exec");
  d.mutable_event()->set_comm("sh");
  *d.mutable_features() = r;
  auto decided = svc_->Decide(d, Ctx(kLongBudget));
  ASSERT_TRUE(decided.has_value()) << decided.error().message();
  EXPECT_TRUE(decided->score().cached());
  EXPECT_EQ(decided->action(), "kill");
  EXPECT_EQ(model_->entered(), 1);
  const std::string text = registry_.ExpositionText();
  EXPECT_NE(text.find("vigil_engine_cache_hit_ratio{engine=\"serve\"} 0.8"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_engine_cache_hits_total{engine=\"serve\"} 4"), std::string::npos);
}

TEST_F(DecisionServiceTest, ASwappedModelIsServedAtOnceAndItsPredecessorsVerdictsAreNotReused) {
  Make(ScoringConfig{});
  const v1::ScoreRequest r = Window("sh", {59, 1});
  ASSERT_TRUE(svc_->Score(r, Ctx(kLongBudget)).has_value());
  auto next = std::make_shared<GatedModel>("2");
  ASSERT_TRUE(svc_->Install(next, rules_, "p2").ok());
  auto after = svc_->Score(r, Ctx(kLongBudget));
  ASSERT_TRUE(after.has_value());
  EXPECT_FALSE(after->result().cached());
  EXPECT_EQ(after->result().model_version(), "2");
  EXPECT_EQ(after->policy_version(), "p2");
  EXPECT_EQ(next->entered(), 1);
}

TEST_F(DecisionServiceTest, TheFirstScoreAfterEachModelLoadIsTimedAndExported) {
  Make(ScoringConfig{});
  auto gauge = registry_.GetGauge("vigil_api_first_score_seconds", "");
  ASSERT_TRUE(gauge.has_value());
  EXPECT_EQ((*gauge)->Value(), 0.0);  // nothing scored yet
  const v1::ScoreRequest r = Window("sh", {59, 1});
  // Calls "admitted" up to 40 ms ago, after the latest Install: each Install is followed by 50 ms.
  auto admitted_ago = [&](int64_t ns) {
    api::CallContext c = Ctx(kLongBudget);
    c.admitted_mono_ns -= ns;
    return c;
  };
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); };
  settle();
  // The first call: admitted 3 ms before it was scored (as if queued in the transport).
  ASSERT_TRUE(svc_->Score(r, admitted_ago(3'000'000)).has_value());
  const double first = (*gauge)->Value();
  EXPECT_GE(first, 0.003);
  EXPECT_LT(first, 1.0);
  // Later calls leave it alone, however long they took.
  ASSERT_TRUE(svc_->Score(r, Ctx(kLongBudget)).has_value());
  EXPECT_EQ((*gauge)->Value(), first);
  // A swap: a call admitted before it does not count; the first one admitted after does,
  // whether a batch or a decide with features.
  const api::CallContext before_swap = admitted_ago(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(svc_->Install(std::make_shared<GatedModel>("2"), rules_, "p2").ok());
  settle();
  ASSERT_TRUE(svc_->Score(r, before_swap).has_value());
  EXPECT_EQ((*gauge)->Value(), first);
  v1::DecideRequest d;
  d.set_schema_version(std::string(api::kSchemaVersion));
  d.mutable_event()->set_comm("sh");
  *d.mutable_features() = r;
  ASSERT_TRUE(svc_->Decide(d, admitted_ago(20'000'000)).has_value());
  const double after_swap = (*gauge)->Value();
  EXPECT_GE(after_swap, 0.020);
  EXPECT_LT(after_swap, 1.0);
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  *batch.add_items() = r;
  ASSERT_TRUE(svc_->Install(model_, rules_, "p3").ok());
  settle();
  ASSERT_TRUE(svc_->ScoreBatch(batch, admitted_ago(40'000'000)).has_value());
  EXPECT_GE((*gauge)->Value(), 0.040);
}

TEST_F(DecisionServiceTest, FeatureVectorsForASequenceModelAreRefusedNamingTheItem) {
  Make(ScoringConfig{});
  v1::ScoreRequest r = Window("sh", {});
  r.add_values(0.5f);
  auto one = svc_->Score(r, Ctx(kLongBudget));
  ASSERT_FALSE(one.has_value());
  EXPECT_EQ(one.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(one.error().message().find("scores system-call windows"), std::string::npos);
  v1::ScoreBatchRequest batch;
  batch.set_schema_version(std::string(api::kSchemaVersion));
  *batch.add_items() = Window("sh", {1});
  *batch.add_items() = r;
  auto many = svc_->ScoreBatch(batch, Ctx(kLongBudget));
  ASSERT_FALSE(many.has_value());
  EXPECT_NE(many.error().message().find("items[1]"), std::string::npos);
  EXPECT_EQ(model_->entered(), 0);  // refused before the engine
}

}  // namespace
}  // namespace vigil::service
