#include "model/inference_engine.h"

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

namespace vigil::model {
namespace {

constexpr size_t kReasons = static_cast<size_t>(FallbackReason::kStopped) + 1;

// The model's answer to one request and how long it took (clock ns).
struct ModelAnswer {
  core::Result<core::Verdict> result;
  int64_t elapsed_ns = 0;
};

core::Result<core::Verdict> CallModel(const Model& model, const FeatureView& request) {
  try {
    return model.Score(request);
  } catch (const std::exception& e) {
    return core::Internal(std::string("model threw: ") + e.what());
  } catch (...) {
    return core::Internal("model threw an unknown exception");
  }
}

LatencySummary Summarise(const core::Histogram* h) {
  LatencySummary s;
  if (h == nullptr) return s;
  const core::Histogram::Snapshot snap = h->Read();
  s.count = snap.count;
  s.p50_s = core::Histogram::Quantile(snap, 0.50);
  s.p95_s = core::Histogram::Quantile(snap, 0.95);
  s.p99_s = core::Histogram::Quantile(snap, 0.99);
  return s;
}

}  // namespace

std::string_view FallbackReasonName(FallbackReason r) {
  switch (r) {
    case FallbackReason::kNone:
      return "";
    case FallbackReason::kBreakerOpen:
      return "breaker open";
    case FallbackReason::kDeadline:
      return "deadline exceeded";
    case FallbackReason::kModelError:
      return "model error";
    case FallbackReason::kQueueFull:
      return "queue full";
    case FallbackReason::kStopped:
      return "engine stopped";
  }
  return "unknown";
}

struct InferenceEngine::Metrics {
  core::Registry* registry = nullptr;
  core::Counter* requests_async = nullptr;
  core::Counter* requests_sync = nullptr;
  core::Counter* batches = nullptr;
  core::Counter* model_errors = nullptr;
  core::Counter* swaps = nullptr;
  std::array<core::Counter*, kReasons> fallbacks{};
  core::Histogram* verdict_async = nullptr;
  core::Histogram* verdict_sync = nullptr;
  std::vector<core::Registry::CallbackHandle> callbacks;
};

InferenceEngine::InferenceEngine(const InferenceEngineOptions& options, const core::Clock& clock)
    : options_(options),
      clock_(clock),
      cache_(options.cache, clock),
      breaker_(options.breaker, clock),
      metrics_(std::make_unique<Metrics>()) {}

core::Result<std::unique_ptr<InferenceEngine>> InferenceEngine::Create(
    std::shared_ptr<const Model> model, const InferenceEngineOptions& options,
    const core::Clock& clock) {
  if (model == nullptr) return core::InvalidArgument("inference engine: no model");
  if (options.max_batch < 1 || options.max_batch > 65536) {
    return core::InvalidArgument("inference engine: max_batch must be in 1..65536");
  }
  if (options.max_batch_delay_ns < 0 || options.max_batch_delay_ns > 1'000'000'000) {
    return core::InvalidArgument("inference engine: max_batch_delay_ns must be in 0..1e9");
  }
  if (options.queue_capacity < 1) {
    return core::InvalidArgument("inference engine: queue_capacity must be at least 1");
  }
  if (options.cache.capacity > 0 && options.cache.ttl_ns <= 0) {
    return core::InvalidArgument("inference engine: cache ttl must be positive");
  }
  if (options.breaker.window_ns <= 0 || options.breaker.cooldown_ns < 0) {
    return core::InvalidArgument(
        "inference engine: breaker window must be positive and cool-down not negative");
  }
  if (!(options.fallback_score >= 0.0 && options.fallback_score <= 1.0)) {
    return core::InvalidArgument("inference engine: fallback score must be in [0, 1]");
  }
  std::unique_ptr<InferenceEngine> engine(new InferenceEngine(options, clock));
  VIGIL_RETURN_IF_ERROR(engine->Init(std::move(model)));
  return engine;
}

core::Status InferenceEngine::Init(std::shared_ptr<const Model> model) {
  Metrics& m = *metrics_;
  m.registry = options_.registry != nullptr ? options_.registry : &core::Registry::Get();
  core::Registry& r = *m.registry;
  const core::Labels engine = {{"engine", options_.name}};
  auto with = [&](std::string_view k, std::string_view v) {
    core::Labels l = engine;
    l.emplace_back(std::string(k), std::string(v));
    return l;
  };
  VIGIL_ASSIGN_OR_RETURN(m.requests_async,
                         r.GetCounter("vigil_engine_requests_total",
                                      "Requests to the inference engine, by path",
                                      with("path", "async")));
  VIGIL_ASSIGN_OR_RETURN(m.requests_sync,
                         r.GetCounter("vigil_engine_requests_total",
                                      "Requests to the inference engine, by path",
                                      with("path", "sync")));
  VIGIL_ASSIGN_OR_RETURN(m.batches, r.GetCounter("vigil_engine_batches_total",
                                                 "Micro-batches scored by the worker", engine));
  VIGIL_ASSIGN_OR_RETURN(m.model_errors,
                         r.GetCounter("vigil_engine_model_errors_total",
                                      "Requests the model answered with an error", engine));
  VIGIL_ASSIGN_OR_RETURN(m.swaps, r.GetCounter("vigil_engine_swaps_total",
                                               "Models swapped in while running", engine));
  for (size_t i = 1; i < kReasons; ++i) {
    std::string reason(FallbackReasonName(static_cast<FallbackReason>(i)));
    for (char& c : reason) c = c == ' ' ? '_' : c;
    VIGIL_ASSIGN_OR_RETURN(m.fallbacks[i],
                           r.GetCounter("vigil_engine_fallbacks_total",
                                        "Requests answered with the fallback verdict, by reason",
                                        with("reason", reason)));
  }
  VIGIL_ASSIGN_OR_RETURN(m.verdict_async,
                         r.GetHistogram("vigil_engine_verdict_seconds",
                                        "Time from request to verdict, by path",
                                        with("path", "async")));
  VIGIL_ASSIGN_OR_RETURN(m.verdict_sync,
                         r.GetHistogram("vigil_engine_verdict_seconds",
                                        "Time from request to verdict, by path",
                                        with("path", "sync")));
  auto add_cb = [&](bool counter, std::string_view name, std::string_view help,
                    std::function<double()> read) -> core::Status {
    auto h = counter ? r.AddCallbackCounter(name, help, engine, std::move(read))
                     : r.AddCallbackGauge(name, help, engine, std::move(read));
    if (!h.has_value()) return h.error();
    m.callbacks.push_back(std::move(h).value());
    return core::Status::Ok();
  };
  VIGIL_RETURN_IF_ERROR(add_cb(true, "vigil_engine_cache_hits_total", "Verdict cache hits",
                               [this] { return static_cast<double>(cache_.hits()); }));
  VIGIL_RETURN_IF_ERROR(add_cb(true, "vigil_engine_cache_misses_total", "Verdict cache misses",
                               [this] { return static_cast<double>(cache_.misses()); }));
  VIGIL_RETURN_IF_ERROR(add_cb(false, "vigil_engine_cache_hit_ratio",
                               "Verdict cache hits / lookups since start",
                               [this] { return cache_.HitRate(); }));
  VIGIL_RETURN_IF_ERROR(add_cb(false, "vigil_engine_breaker_state",
                               "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                               [this] { return static_cast<double>(breaker_.state()); }));
  VIGIL_RETURN_IF_ERROR(add_cb(false, "vigil_engine_queue_depth",
                               "Asynchronous requests waiting for the worker",
                               [this] { return static_cast<double>(queue_depth()); }));
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<const Current> current, MakeCurrent(std::move(model), 1));
  StoreCurrent(std::move(current));
  worker_ = std::thread([this] {
    if (options_.on_worker_start) options_.on_worker_start();
    Run();
  });
  return core::Status::Ok();
}

core::Result<std::shared_ptr<const InferenceEngine::Current>> InferenceEngine::MakeCurrent(
    std::shared_ptr<const Model> model, uint64_t generation) {
  auto c = std::make_shared<Current>();
  c->name = model->name();
  c->version = model->version();
  VIGIL_ASSIGN_OR_RETURN(c->score_latency,
                         metrics_->registry->GetHistogram(
                             "vigil_model_score_seconds", "Model scoring time per request",
                             {{"engine", options_.name}, {"model", c->name},
                              {"version", c->version}}));
  c->model = std::move(model);
  c->generation = generation;
  return std::shared_ptr<const Current>(std::move(c));
}

InferenceEngine::~InferenceEngine() {
  Stop();
  // The callbacks read members; unregister them before those go.
  metrics_->callbacks.clear();
}

bool InferenceEngine::Swap(std::shared_ptr<const Model> model) {
  if (model == nullptr) return false;
  std::lock_guard<std::mutex> lock(swap_mu_);
  const uint64_t next = LoadCurrent()->generation + 1;
  auto c = MakeCurrent(std::move(model), next);
  if (!c.has_value()) {
    spdlog::warn("inference engine {}: swap refused: {}", options_.name, c.error().message());
    return false;
  }
  StoreCurrent(std::move(c).value());
  recent_model_ns_.store(-1, std::memory_order_relaxed);  // the new model's times are unknown
  metrics_->swaps->Inc();
  return true;
}

std::shared_ptr<const InferenceEngine::Current> InferenceEngine::LoadCurrent() const {
  std::lock_guard<std::mutex> lock(current_mu_);
  return current_;
}

void InferenceEngine::StoreCurrent(std::shared_ptr<const Current> c) {
  std::lock_guard<std::mutex> lock(current_mu_);
  current_.swap(c);
  // The old model (in c) is released after the lock, by the last holder.
}

std::shared_ptr<const Model> InferenceEngine::model() const { return LoadCurrent()->model; }

uint64_t InferenceEngine::generation() const { return LoadCurrent()->generation; }

EngineVerdict InferenceEngine::Fallback(const Current& current, FallbackReason reason) {
  metrics_->fallbacks[static_cast<size_t>(reason)]->Inc();
  return FallbackVerdictOf(current, reason);
}

EngineVerdict InferenceEngine::FallbackVerdict(FallbackReason reason) const {
  return FallbackVerdictOf(*LoadCurrent(), reason);
}

EngineVerdict InferenceEngine::FallbackVerdictOf(const Current& current,
                                                 FallbackReason reason) const {
  EngineVerdict v;
  v.source = VerdictSource::kFallback;
  v.reason = reason;
  v.verdict.score = options_.fallback_score;
  v.verdict.anomalous = options_.fallback_anomalous;
  v.verdict.model_name = current.name;
  v.verdict.model_version = current.version;
  v.verdict.explanation.push_back(
      {"fallback: " + std::string(FallbackReasonName(reason)), 1.0});
  return v;
}

namespace {

// Whether the engine settles a request: no claim, or the claim moved from kOpen by us.
bool Claim(AnswerClaim* claim) {
  if (claim == nullptr) return true;
  ClaimState open = ClaimState::kOpen;
  return claim->compare_exchange_strong(open, ClaimState::kAnswered, std::memory_order_acq_rel);
}

ModelAnswer ScoreOnce(const Model& model, const core::Clock& clock, const FeatureView& request) {
  const int64_t t0 = clock.MonotonicNanos();
  ModelAnswer s{CallModel(model, request), 0};
  s.elapsed_ns = clock.MonotonicNanos() - t0;
  return s;
}

}  // namespace

EngineVerdict InferenceEngine::Evaluate(const Current& current, const FeatureView& request,
                                        const FeatureDigest& digest,
                                        CircuitBreaker::Admission admission, int64_t deadline_ns,
                                        AnswerClaim* claim) {
  if (admission == CircuitBreaker::Admission::kReject) {
    return Claim(claim) ? Fallback(current, FallbackReason::kBreakerOpen)
                        : FallbackVerdictOf(current, FallbackReason::kDeadline);
  }
  const int64_t t0 = clock_.MonotonicNanos();
  core::Result<core::Verdict> result = CallModel(*current.model, request);
  const int64_t t1 = clock_.MonotonicNanos();
  NoteModelTime(current, t1 - t0);
  const bool mine = Claim(claim);  // lost: the caller gave up (and counted its fallback)
  if (!result.has_value()) {
    metrics_->model_errors->Inc();
    breaker_.OnFailure(admission);
    return mine ? Fallback(current, FallbackReason::kModelError)
                : FallbackVerdictOf(current, FallbackReason::kDeadline);
  }
  cache_.Insert(digest, current.generation, result.value());
  if (!mine || t1 > deadline_ns) {
    // Finished too late for the caller (and cached): a miss, as on the synchronous path.
    breaker_.OnFailure(admission);
    return mine ? Fallback(current, FallbackReason::kDeadline)
                : FallbackVerdictOf(current, FallbackReason::kDeadline);
  }
  breaker_.OnSuccess(admission);
  return {std::move(result).value(), VerdictSource::kModel, FallbackReason::kNone};
}

void InferenceEngine::NoteModelTime(const Current& current, int64_t elapsed_ns) {
  current.score_latency->ObserveNanos(elapsed_ns);
  // Racing updates may lose one another; the estimate only steers callers, so that is fine.
  const int64_t was = recent_model_ns_.load(std::memory_order_relaxed);
  const int64_t now = was < 0 || elapsed_ns >= was ? elapsed_ns : was - (was - elapsed_ns) / 8;
  if (now != was) recent_model_ns_.store(now, std::memory_order_relaxed);
}

bool InferenceEngine::Submit(ScoreRequest request, Callback done) {
  metrics_->requests_async->Inc();
  const FeatureDigest digest = DigestFeatures(request.view());
  Pending p{std::move(request), digest, std::move(done), clock_.MonotonicNanos(),
            std::chrono::steady_clock::now()};
  if (auto hit = cache_.Lookup(digest, LoadCurrent()->generation)) {
    Deliver(p, {std::move(*hit), VerdictSource::kCache, FallbackReason::kNone});
    return true;
  }
  FallbackReason refused = FallbackReason::kNone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      refused = FallbackReason::kStopped;
    } else if (queue_.size() >= options_.queue_capacity) {
      refused = FallbackReason::kQueueFull;
    } else {
      queue_.push_back(std::move(p));
      if (queue_.size() == 1 || queue_.size() >= options_.max_batch) cv_.notify_one();
      return true;
    }
  }
  Deliver(p, Fallback(*LoadCurrent(), refused));
  return false;
}

std::future<EngineVerdict> InferenceEngine::Submit(ScoreRequest request) {
  auto promise = std::make_shared<std::promise<EngineVerdict>>();
  std::future<EngineVerdict> f = promise->get_future();
  Submit(std::move(request), [promise](EngineVerdict v) { promise->set_value(std::move(v)); });
  return f;
}

void InferenceEngine::Deliver(Pending& p, EngineVerdict v) {
  metrics_->verdict_async->ObserveNanos(clock_.MonotonicNanos() - p.submitted_ns);
  if (p.done) p.done(std::move(v));
}

EngineVerdict InferenceEngine::ScoreSync(const FeatureView& request, int64_t budget_ns) {
  metrics_->requests_sync->Inc();
  const int64_t start = clock_.MonotonicNanos();
  // One object returned by every path (no copy or move of the verdict on the way out).
  EngineVerdict v = ScoreSyncFrom(request, budget_ns, start);
  metrics_->verdict_sync->ObserveNanos(clock_.MonotonicNanos() - start);
  return v;
}

EngineVerdict InferenceEngine::ScoreSyncFrom(const FeatureView& request, int64_t budget_ns,
                                             int64_t start) {
  // The worker path waits on the real clock; the inline path needs no deadline of its own.
  const auto real_deadline =
      options_.sync_inline
          ? std::chrono::steady_clock::time_point{}
          : std::chrono::steady_clock::now() +
                std::chrono::nanoseconds(std::max<int64_t>(budget_ns, 0));
  std::shared_ptr<const Current> current = LoadCurrent();
  // The digest only keys the cache: with the cache off it is not computed (Insert ignores it).
  const FeatureDigest digest = cache_.capacity() > 0 ? DigestFeatures(request) : FeatureDigest{};
  if (auto hit = cache_.Lookup(digest, current->generation)) {
    return {std::move(*hit), VerdictSource::kCache, FallbackReason::kNone};
  }
  if (stopped_.load(std::memory_order_acquire) && !options_.sync_inline) {
    return Fallback(*current, FallbackReason::kStopped);
  }
  if (options_.sync_inline && budget_ns <= 0) {
    return Fallback(*current, FallbackReason::kDeadline);  // no time left for the model
  }
  const CircuitBreaker::Admission admission = breaker_.Admit();
  if (admission == CircuitBreaker::Admission::kReject) {
    return Fallback(*current, FallbackReason::kBreakerOpen);
  }

  if (options_.sync_inline) {
    // Late is noticed only when the model returns.
    return Evaluate(*current, request, digest, admission, start + budget_ns);
  }

  auto slot = std::make_shared<SyncSlot>();
  slot->request.subject.assign(request.subject);
  slot->request.arch = request.arch;
  slot->request.syscalls.assign(request.syscalls.begin(), request.syscalls.end());
  slot->request.values.assign(request.values.begin(), request.values.end());
  slot->digest = digest;
  slot->admission = admission;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      breaker_.OnFailure(admission);  // releases a probe that will never run
      return Fallback(*current, FallbackReason::kStopped);
    }
    sync_queue_.push_back(slot);
    sync_waiting_.store(true, std::memory_order_release);
  }
  cv_.notify_one();
  std::unique_lock<std::mutex> sl(slot->mu);
  if (slot->cv.wait_until(sl, real_deadline, [&] { return slot->done; })) {
    return std::move(slot->result);
  }
  slot->abandoned = true;
  sl.unlock();
  breaker_.OnFailure(admission);
  return Fallback(*current, FallbackReason::kDeadline);
}

void InferenceEngine::ServeSync(SyncSlot& slot) {
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    if (slot.abandoned) return;
  }
  std::shared_ptr<const Current> current = LoadCurrent();
  ModelAnswer scored = ScoreOnce(*current->model, clock_, slot.request.view());
  NoteModelTime(*current, scored.elapsed_ns);
  std::lock_guard<std::mutex> lock(slot.mu);
  if (slot.abandoned) {
    // The caller gave up and counted the miss; the verdict still serves later requests.
    if (scored.result.has_value()) {
      cache_.Insert(slot.digest, current->generation, scored.result.value());
    }
    return;
  }
  if (scored.result.has_value()) {
    breaker_.OnSuccess(slot.admission);
    cache_.Insert(slot.digest, current->generation, scored.result.value());
    slot.result = {std::move(scored.result).value(), VerdictSource::kModel, FallbackReason::kNone};
  } else {
    metrics_->model_errors->Inc();
    breaker_.OnFailure(slot.admission);
    slot.result = Fallback(*current, FallbackReason::kModelError);
  }
  slot.done = true;
  slot.cv.notify_one();
}

void InferenceEngine::ServeSyncLocked(std::unique_lock<std::mutex>& lock) {
  std::deque<std::shared_ptr<SyncSlot>> slots;
  slots.swap(sync_queue_);
  sync_waiting_.store(false, std::memory_order_release);
  lock.unlock();
  for (const auto& s : slots) ServeSync(*s);
  lock.lock();
}

std::optional<EngineVerdict> InferenceEngine::GiveUp(AnswerClaim& claim) {
  ClaimState open = ClaimState::kOpen;
  if (!claim.compare_exchange_strong(open, ClaimState::kGivenUp, std::memory_order_acq_rel)) {
    return std::nullopt;
  }
  return Fallback(*LoadCurrent(), FallbackReason::kDeadline);
}

void InferenceEngine::ServeQueued(const Current& current, Pending& p) {
  AnswerClaim* claim = p.request.claim;
  if (claim != nullptr && claim->load(std::memory_order_acquire) == ClaimState::kGivenUp) {
    // The caller gave up (and counted its fallback): not worth the model's time.
    Deliver(p, FallbackVerdictOf(current, FallbackReason::kDeadline));
    return;
  }
  // A verdict cached since the request was submitted (e.g. by an identical request of the same
  // batch) answers it.
  if (auto hit = cache_.LookupAgain(p.digest, current.generation)) {
    Deliver(p, Claim(claim) ? EngineVerdict{std::move(*hit), VerdictSource::kCache,
                                            FallbackReason::kNone}
                            : FallbackVerdictOf(current, FallbackReason::kDeadline));
    return;
  }
  const int64_t deadline = p.request.deadline_ns;
  if (deadline != 0 && clock_.MonotonicNanos() >= deadline) {
    // Expired while queued.
    Deliver(p, Claim(claim) ? Fallback(current, FallbackReason::kDeadline)
                            : FallbackVerdictOf(current, FallbackReason::kDeadline));
    return;
  }
  Deliver(p, Evaluate(current, p.request.view(), p.digest, breaker_.Admit(),
                      deadline != 0 ? deadline : INT64_MAX, claim));
}

void InferenceEngine::Run() {
  std::vector<Pending> batch;
  batch.reserve(options_.max_batch);
  const auto delay = std::chrono::nanoseconds(options_.max_batch_delay_ns);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !sync_queue_.empty(); });
    if (!sync_queue_.empty()) {
      ServeSyncLocked(lock);
      continue;
    }
    if (queue_.empty()) {
      if (stopping_) break;
      continue;
    }
    if (queue_.size() < options_.max_batch && !stopping_ && delay.count() > 0) {
      const auto until = queue_.front().enqueued + delay;
      cv_.wait_until(lock, until, [&] {
        return stopping_ || queue_.size() >= options_.max_batch || !sync_queue_.empty();
      });
      if (!sync_queue_.empty()) {
        ServeSyncLocked(lock);
        continue;  // the batch's clock started with its oldest request, so it does not restart
      }
    }
    const size_t n = std::min(options_.max_batch, queue_.size());
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    metrics_->batches->Inc();
    // One model for the whole batch: a concurrent Swap takes effect with the next batch.
    const std::shared_ptr<const Current> current = LoadCurrent();
    for (Pending& p : batch) {
      if (sync_waiting_.load(std::memory_order_acquire)) {
        lock.lock();
        ServeSyncLocked(lock);
        lock.unlock();
      }
      ServeQueued(*current, p);
    }
    batch.clear();
    lock.lock();
  }
}

void InferenceEngine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stopped_.store(true, std::memory_order_release);
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

size_t InferenceEngine::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

uint64_t InferenceEngine::batches() const { return metrics_->batches->Value(); }

uint64_t InferenceEngine::fallbacks(FallbackReason r) const {
  const auto i = static_cast<size_t>(r);
  return i == 0 || i >= kReasons ? 0 : metrics_->fallbacks[i]->Value();
}

LatencySummary InferenceEngine::ModelLatency() const {
  return Summarise(LoadCurrent()->score_latency);
}

LatencySummary InferenceEngine::VerdictLatency(bool sync) const {
  return Summarise(sync ? metrics_->verdict_sync : metrics_->verdict_async);
}

}  // namespace vigil::model
