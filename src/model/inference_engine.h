#pragma once

// The inference engine: the one in-process API through which the pipeline and the gates get
// verdicts from a model (DESIGN.md, "The one path that data takes").
//
//  - Asynchronous, micro-batched (the pipeline): Submit() queues a request; one worker thread
//    takes up to `max_batch` requests, or what arrived within `max_batch_delay_ns` of the oldest
//    one, scores them against one snapshot of the model and calls each request's callback once.
//  - Synchronous with a deadline (the gates): ScoreSync() returns within its budget, with the
//    model's verdict or with the configured fallback verdict marked as a fallback and why.
//
// Around the model sit a verdict cache (verdict_cache.h: identical features within the TTL are
// answered without the model) and a circuit breaker (circuit_breaker.h: after repeated errors or
// deadline misses the fallback is returned without asking the model, until a half-open probe
// succeeds). The model can be replaced at any time (Swap): requests already queued are scored by
// whichever model is current when their batch starts, and none is dropped.
//
// Every request gets exactly one verdict. Metrics (core/metrics.h, label engine=<name>):
//   vigil_engine_requests_total{path="async"|"sync"}  vigil_engine_batches_total
//   vigil_engine_cache_hits_total  vigil_engine_cache_misses_total  vigil_engine_cache_hit_ratio
//   vigil_engine_fallbacks_total{reason=...}  vigil_engine_model_errors_total
//   vigil_engine_breaker_state (0 closed, 1 half-open, 2 open)  vigil_engine_queue_depth
//   vigil_engine_swaps_total  vigil_engine_verdict_seconds{path}: submission to verdict
//   vigil_model_score_seconds{engine,model,version}: the model's own scoring time per request
// Latency histograms give P50/P95/P99 (Prometheus histogram_quantile, or Latency() here).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "model/circuit_breaker.h"
#include "model/model.h"
#include "model/verdict_cache.h"

namespace vigil::model {

// Shared between the engine and the caller of Submit who may stop waiting at its deadline, so
// that exactly one of them settles the request: InferenceEngine::GiveUp and the worker each try
// to move it from kOpen; the loser does not count an answer. (Without it, a model finishing just
// in time on the worker while the caller's wait ran out gave the client an uncounted fallback
// and counted a model verdict nobody got.)
enum class ClaimState : uint8_t { kOpen, kAnswered, kGivenUp };
using AnswerClaim = std::atomic<ClaimState>;

// A request the engine keeps until it is scored (the owning form of FeatureView).
struct ScoreRequest {
  std::string subject;
  core::Arch arch = core::Arch::kUnknown;
  std::vector<int32_t> syscalls;
  std::vector<float> values;
  // Asynchronous requests only: the engine clock's monotonic time (ns) by which the caller needs
  // the answer; 0 for none. A request still queued then is answered with the kDeadline fallback
  // without asking the model; one the model finishes after it gets the kDeadline fallback too
  // (counted as a failure by the breaker), and the model's verdict goes to the cache.
  int64_t deadline_ns = 0;
  // Asynchronous requests only, optional: see AnswerClaim. Must stay valid until the callback.
  AnswerClaim* claim = nullptr;
  FeatureView view() const { return {subject, arch, syscalls, values}; }
};

enum class VerdictSource : uint8_t { kModel, kCache, kFallback };

enum class FallbackReason : uint8_t {
  kNone,         // not a fallback
  kBreakerOpen,  // the circuit breaker turned the request away
  kDeadline,     // the model did not answer within the synchronous budget
  kModelError,   // the model returned an error (or threw)
  kQueueFull,    // the asynchronous queue was full
  kStopped,      // the engine had stopped
};
// "breaker open", "deadline exceeded", "model error", "queue full", "engine stopped"; "" for kNone.
std::string_view FallbackReasonName(FallbackReason r);

struct EngineVerdict {
  core::Verdict verdict;
  VerdictSource source = VerdictSource::kModel;
  FallbackReason reason = FallbackReason::kNone;
  bool fallback() const { return source == VerdictSource::kFallback; }
};

struct InferenceEngineOptions {
  std::string name = "default";  // the engine label of its metrics; unique per registry
  size_t max_batch = 32;                  // 1..65536
  int64_t max_batch_delay_ns = 50'000;    // 0..1 s; 0 scores whatever is queued at once
  size_t queue_capacity = 65536;          // queued asynchronous requests, >= 1
  // Synchronous requests are scored on the calling thread (no thread hop; a model that runs
  // late is noticed only when it returns, and its verdict is then replaced by the fallback)
  // instead of on the worker (the caller waits at most its budget, whatever the model does).
  bool sync_inline = false;
  VerdictCacheOptions cache;
  CircuitBreakerOptions breaker;
  // The verdict given when the model cannot answer: its score and anomalous flag (e.g. score 1,
  // anomalous, for a deny-by-default gate). The engine fills in the model's name and version and
  // sets the explanation to "fallback: <reason>".
  double fallback_score = 0.0;
  bool fallback_anomalous = false;
  // Where metrics go; nullptr means core::Registry::Get(). Must outlive the engine.
  core::Registry* registry = nullptr;
  // Called once on the worker thread before it serves anything (e.g. to give it the real-time
  // priority of the gate it answers: docs/gateway.md "Priority"). May be empty.
  std::function<void()> on_worker_start;
};

struct LatencySummary {
  uint64_t count = 0;
  double p50_s = 0, p95_s = 0, p99_s = 0;  // seconds; NaN when count is 0
};

class InferenceEngine {
 public:
  // Called exactly once per request, on the worker thread; or on the submitting thread when the
  // request could not be queued (queue full, engine stopped). Must not call Stop().
  using Callback = std::function<void(EngineVerdict)>;

  // Starts the worker. kInvalidArgument for a null model or options out of range; the registry's
  // error when the engine's metrics cannot be registered (e.g. the name is taken). `clock` times
  // the cache TTL, the breaker and the latency histograms; it must outlive the engine.
  static core::Result<std::unique_ptr<InferenceEngine>> Create(
      std::shared_ptr<const Model> model, const InferenceEngineOptions& options,
      const core::Clock& clock);
  // Stops the engine (see Stop).
  ~InferenceEngine();
  InferenceEngine(const InferenceEngine&) = delete;
  InferenceEngine& operator=(const InferenceEngine&) = delete;

  // Answers `request` from the cache on the calling thread (the worker never sees a hit), or
  // queues it; true in both cases. When it cannot be queued, `done` is called at once with the
  // fallback verdict (reason kQueueFull or kStopped) and Submit returns false.
  bool Submit(ScoreRequest request, Callback done);
  // The same, with the verdict delivered through a future.
  std::future<EngineVerdict> Submit(ScoreRequest request);

  // Scores `request` and returns within `budget_ns` (see sync_inline for the inline mode): a
  // cached verdict, the model's verdict, or the fallback (breaker open, deadline exceeded, model
  // error, engine stopped). A deadline miss counts as a failure for the breaker. The request's
  // data need only live for the call. Inline mode, budget <= 0 and not cached: the kDeadline
  // fallback without asking the model or the breaker (as for a queued request that expired).
  EngineVerdict ScoreSync(const FeatureView& request, int64_t budget_ns);

  // How long the model has recently taken per request (ns), for a caller choosing between
  // ScoreSync inline and Submit: a decaying maximum of its scoring times (a slower call counts
  // at once; each faster one takes 1/8 of the difference off). -1 before the model's first
  // answer. Reset by Swap.
  int64_t RecentModelNanos() const { return recent_model_ns_.load(std::memory_order_relaxed); }

  // The fallback verdict for `reason` with the current model named, as the engine gives it, but
  // not counted.
  EngineVerdict FallbackVerdict(FallbackReason reason) const;

  // For a caller that stops waiting for an asynchronous request (submitted with `claim`) at its
  // deadline: the kDeadline fallback, counted, if the engine has not settled the request yet;
  // nullopt if it has (its verdict is being delivered: wait for the callback, which comes at
  // once). A request given up on is not scored if it is still queued; if the model is already
  // on it, its verdict goes to the cache and counts as a deadline miss for the breaker. Either
  // way the callback is still called once, with the uncounted fallback.
  std::optional<EngineVerdict> GiveUp(AnswerClaim& claim);

  // Makes `model` current (null is ignored and returns false). Batches already running finish
  // with the old model, which is released when the last of them ends; the cache no longer serves
  // the old model's verdicts. Thread-safe.
  bool Swap(std::shared_ptr<const Model> model);
  std::shared_ptr<const Model> model() const;
  // 1 for the model given to Create, +1 per Swap.
  uint64_t generation() const;

  // Scores everything already queued, then stops the worker. Later Submits are answered with the
  // kStopped fallback. Idempotent; must not be called from a callback.
  void Stop();

  // Observability (also exported as metrics).
  const VerdictCache& cache() const { return cache_; }
  const CircuitBreaker& breaker() const { return breaker_; }
  size_t queue_depth() const;
  uint64_t batches() const;
  uint64_t fallbacks(FallbackReason r) const;
  // Scoring latency of the current model (vigil_model_score_seconds) and submission-to-verdict
  // latency of each path.
  LatencySummary ModelLatency() const;
  LatencySummary VerdictLatency(bool sync) const;

 private:
  struct Current {
    std::shared_ptr<const Model> model;
    uint64_t generation = 0;
    core::Histogram* score_latency = nullptr;
    std::string name, version;
  };
  // A synchronous request handed to the worker; the caller may give up on it at its deadline.
  struct SyncSlot {
    ScoreRequest request;  // a copy: the caller's data may be gone once it gives up
    FeatureDigest digest;
    CircuitBreaker::Admission admission = CircuitBreaker::Admission::kAllow;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    EngineVerdict result;
  };
  struct Pending {
    ScoreRequest request;
    FeatureDigest digest;
    Callback done;
    int64_t submitted_ns = 0;  // clock_ monotonic
    std::chrono::steady_clock::time_point enqueued;
  };
  struct Metrics;

  InferenceEngine(const InferenceEngineOptions& options, const core::Clock& clock);
  core::Status Init(std::shared_ptr<const Model> model);
  core::Result<std::shared_ptr<const Current>> MakeCurrent(std::shared_ptr<const Model> model,
                                                           uint64_t generation);
  void Run();
  // ScoreSync but for its metrics; `start` is when it was called (engine clock).
  EngineVerdict ScoreSyncFrom(const FeatureView& request, int64_t budget_ns, int64_t start);
  void ServeSyncLocked(std::unique_lock<std::mutex>& lock);
  void ServeSync(SyncSlot& slot);
  // Scores one request with the model (breaker and cache around it); counts and times it. A
  // verdict finished after `deadline_ns` (engine clock; INT64_MAX: none) is cached, counted as a breaker
  // failure and replaced by the kDeadline fallback.
  // With a `claim`, the verdict is settled only if the claim is won (see AnswerClaim); lost, the
  // uncounted kDeadline fallback is returned.
  EngineVerdict Evaluate(const Current& current, const FeatureView& request,
                         const FeatureDigest& digest, CircuitBreaker::Admission admission,
                         int64_t deadline_ns, AnswerClaim* claim = nullptr);
  // Counts the fallback and returns FallbackVerdictOf.
  EngineVerdict Fallback(const Current& current, FallbackReason reason);
  EngineVerdict FallbackVerdictOf(const Current& current, FallbackReason reason) const;
  // Scores one queued request (cache, breaker, its deadline) and delivers the answer.
  void ServeQueued(const Current& current, Pending& p);
  void Deliver(Pending& p, EngineVerdict v);
  // Observes one scoring time of the current model (its histogram and RecentModelNanos).
  void NoteModelTime(const Current& current, int64_t elapsed_ns);

  const InferenceEngineOptions options_;
  const core::Clock& clock_;
  VerdictCache cache_;
  CircuitBreaker breaker_;
  std::unique_ptr<Metrics> metrics_;
  // The current model. A mutex rather than std::atomic<std::shared_ptr>: libstdc++ 12's atomic
  // shared_ptr guards the pointer with a lock bit ThreadSanitizer cannot see, so every swap
  // under load is reported as a race; an uncontended mutex costs about the same.
  std::shared_ptr<const Current> LoadCurrent() const;
  void StoreCurrent(std::shared_ptr<const Current> c);
  mutable std::mutex current_mu_;
  std::shared_ptr<const Current> current_;
  std::mutex swap_mu_;  // serialises Swap
  std::atomic<int64_t> recent_model_ns_{-1};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::deque<std::shared_ptr<SyncSlot>> sync_queue_;
  std::atomic<bool> sync_waiting_{false};
  bool stopping_ = false;
  std::atomic<bool> stopped_{false};
  std::thread worker_;
};

}  // namespace vigil::model
