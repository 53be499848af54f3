// Cost of the inference engine (src/model/inference_engine.h) around three model families
// trained once per process on ADFA-LD's training split: the syscall-ngram sequence model (default
// options), the isolation forest over bag-of-syscalls vectors (default options: 100 trees of 256
// rows) and the sequence-covering model (default options; the default family for adfa-ld); arg
// `model`: 0 n-gram, 1 forest, 2 covering. Requests are the first 20,000 non-overlapping 32-call
// windows of the validation traces (for the forest, each window's system-call frequency vector),
// taken in turn.
//
// Latency benchmarks time every call with steady_clock and report p50_ns / p99_ns / p999_ns
// (the clock reads, ~20 ns each, are included); one iteration is one request. Direct/* calls
// Model::Score without the engine, the baseline for the engine's overhead. The verdict cache is
// off unless the benchmark is about it, so the model runs on every request.
//
// Every heap allocation of the process is counted (operator new is replaced in this file), and
// the latency benchmarks report `allocs_per_req`: allocations per request on the timed path
// (the engine's own, once the model's are taken away by comparing with Direct/*).
// BM_EngineOverhead runs the engine around a model that only copies a prepared verdict, over
// synthetic windows, without the dataset: the engine's own cost, and a short run to put under
// callgrind (docs/benchmarks.md, "engine_bench").

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_data.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "model/cover_model.h"
#include "model/features.h"
#include "model/inference_engine.h"
#include "model/isolation_forest.h"

namespace vigil::bench {
namespace {

// Heap allocations since the process started (all threads), counted by operator new below.
std::atomic<uint64_t> g_allocations{0};

uint64_t Allocations() { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace
}  // namespace vigil::bench

// The replaceable global allocation functions, counting. The other forms (array, nothrow,
// sized and aligned delete) forward to these in libstdc++, except the aligned ones, which
// are not used on the paths measured here. Not inlined, so that the compiler does not see the
// malloc/free inside and warn about new paired with free.
__attribute__((noinline)) void* operator new(std::size_t n) {
  vigil::bench::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace vigil::bench {
namespace {

constexpr size_t kWindow = 32;
constexpr size_t kRequests = 20000;
// 100 ms: far above any verdict time, so that preemption on a busy machine does not turn
// requests into deadline fallbacks (which would open the breaker and skip the model).
constexpr int64_t kBudgetNs = 100'000'000;
// The verdict cache's default capacity, where a benchmark has it on.
const size_t kCacheCapacity = model::VerdictCacheOptions{}.capacity;

// CPU time of the whole process (all threads), in seconds.
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Fixture {
  std::shared_ptr<const model::Model> sequence;
  std::shared_ptr<const model::Model> forest;
  std::shared_ptr<const model::Model> cover;
  std::vector<model::ScoreRequest> windows;  // syscall windows (sequence)
  std::vector<model::ScoreRequest> vectors;  // frequency vectors (forest)
};

// Built on first use: the trained models and the requests. Null with *error when unavailable.
const Fixture* GetFixture(std::string* error) {
  static std::unique_ptr<Fixture> fixture;
  static std::string failure;
  if (fixture != nullptr) return fixture.get();
  if (!failure.empty()) {
    *error = failure;
    return nullptr;
  }
  const Dataset* d = GetDataset(&failure);
  const model::SequenceModel* seq = d != nullptr ? GetModel(&failure) : nullptr;
  if (seq == nullptr) {
    *error = failure;
    return nullptr;
  }
  auto f = std::make_unique<Fixture>();
  // GetModel's model lives for the process; the engine takes a non-owning shared_ptr to it.
  f->sequence = std::shared_ptr<const model::Model>(seq, [](const model::Model*) {});
  std::vector<model::TrainingTrace> traces;
  for (const LoadedTrace& t : d->training) traces.push_back({"", core::Arch::kI386, t.syscalls});
  auto forest = model::IsolationForestModel::Train(traces, model::IsolationForestOptions{});
  if (!forest.has_value()) {
    failure = "iforest training failed: " + forest.error().ToString();
    *error = failure;
    return nullptr;
  }
  const model::SyscallVocabulary& vocab = (*forest)->vocabulary();
  for (const LoadedTrace& t : d->validation) {
    for (size_t at = 0; at + kWindow <= t.syscalls.size() && f->windows.size() < kRequests;
         at += kWindow) {
      model::ScoreRequest w;
      w.arch = core::Arch::kI386;
      w.syscalls.assign(t.syscalls.begin() + static_cast<ptrdiff_t>(at),
                        t.syscalls.begin() + static_cast<ptrdiff_t>(at + kWindow));
      model::ScoreRequest v;
      v.values = model::BagOfSyscalls(vocab, core::Arch::kI386, w.syscalls);
      f->windows.push_back(std::move(w));
      f->vectors.push_back(std::move(v));
    }
  }
  f->forest = std::shared_ptr<const model::Model>(std::move(forest).value());
  auto cover = model::CoverModel::Train(traces, model::CoverModelOptions{});
  if (!cover.has_value()) {
    failure = "cover training failed: " + cover.error().ToString();
    *error = failure;
    return nullptr;
  }
  f->cover = std::shared_ptr<const model::Model>(std::move(cover).value());
  fixture = std::move(f);
  return fixture.get();
}

// Per-call latencies into p50/p99/p999 counters.
class Latencies {
 public:
  Latencies() { ns_.reserve(1 << 20); }
  template <typename Fn>
  void Time(Fn&& fn) {
    const uint64_t a0 = Allocations();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    allocations_ += Allocations() - a0;
    ns_.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  void Report(benchmark::State& state) {
    if (ns_.empty()) return;
    state.counters["allocs_per_req"] =
        static_cast<double>(allocations_) / static_cast<double>(ns_.size());
    std::sort(ns_.begin(), ns_.end());
    auto at = [&](double q) { return ns_[std::min(ns_.size() - 1, static_cast<size_t>(q * ns_.size()))]; };
    state.counters["p50_ns"] = at(0.50);
    state.counters["p99_ns"] = at(0.99);
    state.counters["p999_ns"] = at(0.999);
  }

 private:
  std::vector<double> ns_;
  uint64_t allocations_ = 0;
};

const Fixture* FixtureOrSkip(benchmark::State& state) {
  std::string error;
  const Fixture* f = GetFixture(&error);
  if (f == nullptr) state.SkipWithError(error.c_str());
  return f;
}

// Arg `model`: 0 the n-gram sequence model, 1 the isolation forest, 2 the covering model.
constexpr int kForest = 1;
constexpr int kCover = 2;

const std::vector<model::ScoreRequest>& RequestsFor(const Fixture& f, int64_t family) {
  return family == kForest ? f.vectors : f.windows;
}

const std::shared_ptr<const model::Model>& ModelFor(const Fixture& f, int64_t family) {
  return family == kForest ? f.forest : family == kCover ? f.cover : f.sequence;
}

std::unique_ptr<model::InferenceEngine> MakeEngine(const Fixture& f, int64_t family,
                                                   core::Registry& registry,
                                                   model::InferenceEngineOptions o) {
  o.registry = &registry;
  auto e = model::InferenceEngine::Create(ModelFor(f, family), o, core::SystemClock::Get());
  return e.has_value() ? std::move(e).value() : nullptr;
}

// The fixture (*f) and an engine around the family of arg 0, synchronous requests inline or
// not, with a verdict cache of `cache_capacity` entries (0: off); null, with the benchmark
// skipped, when either is unavailable.
std::unique_ptr<model::InferenceEngine> EngineOrSkip(benchmark::State& state, const Fixture** f,
                                                     core::Registry& registry, bool sync_inline,
                                                     size_t cache_capacity) {
  model::InferenceEngineOptions o;
  o.sync_inline = sync_inline;
  o.cache.capacity = cache_capacity;
  *f = FixtureOrSkip(state);
  if (*f == nullptr) return nullptr;
  auto engine = MakeEngine(**f, state.range(0), registry, o);
  if (engine == nullptr) state.SkipWithError("engine creation failed");
  return engine;
}

// Times ScoreSync over `reqs` in turn, from request `i` on; reports the latencies and how many
// verdicts were fallbacks (non-zero: some requests skipped the model, and the figures do not
// measure it).
void TimeSync(benchmark::State& state, model::InferenceEngine& engine,
              const std::vector<model::ScoreRequest>& reqs, size_t i) {
  Latencies lat;
  size_t fallbacks = 0;
  for (auto _ : state) {
    const model::FeatureView view = reqs[i++ % reqs.size()].view();
    lat.Time([&] { fallbacks += engine.ScoreSync(view, kBudgetNs).fallback() ? 1 : 0; });
  }
  lat.Report(state);
  state.counters["fallbacks"] = static_cast<double>(fallbacks);
  state.SetItemsProcessed(state.iterations());
}

void BM_Direct(benchmark::State& state) {
  const Fixture* f = FixtureOrSkip(state);
  if (f == nullptr) return;
  const model::Model& m = *ModelFor(*f, state.range(0));
  const auto& reqs = RequestsFor(*f, state.range(0));
  Latencies lat;
  size_t i = 0;
  double sum = 0;
  for (auto _ : state) {
    const model::FeatureView view = reqs[i++ % reqs.size()].view();
    lat.Time([&] { sum += m.Score(view)->score; });
  }
  benchmark::DoNotOptimize(sum);
  lat.Report(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Direct)->DenseRange(0, 2)->ArgName("model");

// Each request's fastest time over the rounds (one benchmark iteration is one round, every
// round scores all requests in turn); `score` scores one request and returns its score.
// Counters as BM_Direct, over the minima.
template <typename Score>
void TimeFloor(benchmark::State& state, const std::vector<model::ScoreRequest>& reqs,
               Score&& score) {
  std::vector<double> best(reqs.size(), 1e300);
  double sum = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < reqs.size(); ++i) {
      const model::FeatureView view = reqs[i].view();
      const auto t0 = std::chrono::steady_clock::now();
      sum += score(view);
      const double ns =
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      best[i] = std::min(best[i], ns);
    }
  }
  benchmark::DoNotOptimize(sum);
  std::sort(best.begin(), best.end());
  auto at = [&](double q) { return best[std::min(best.size() - 1, static_cast<size_t>(q * best.size()))]; };
  state.counters["p50_ns"] = at(0.50);
  state.counters["p99_ns"] = at(0.99);
  state.counters["p999_ns"] = at(0.999);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(reqs.size()));
}

// The model's own cost per request, with preemption filtered out: every round scores all
// requests in turn (so caches are as warm or cold as in BM_Direct), each request timed alone, and
// a request's figure is its fastest of the rounds. On a machine shared with other work a
// preempted call is slow in one round, not in all, so the percentiles of these minima show which
// requests are expensive for the model itself (the tail BM_Direct's P99 cannot separate from
// load).
void BM_DirectFloor(benchmark::State& state) {
  const Fixture* f = FixtureOrSkip(state);
  if (f == nullptr) return;
  const model::Model& m = *ModelFor(*f, state.range(0));
  TimeFloor(state, RequestsFor(*f, state.range(0)),
            [&](const model::FeatureView& v) { return m.Score(v)->score; });
}
BENCHMARK(BM_DirectFloor)->DenseRange(0, 2)->ArgName("model")->Iterations(5)->Unit(benchmark::kMillisecond);

// The same through the engine, ScoreSync inline with the cache off: the engine's own share of
// the tail, without the machine's (compare with BM_DirectFloor of the same model). `fallbacks`
// must read 0 for the figures to mean anything.
void BM_EngineSyncFloor(benchmark::State& state) {
  core::Registry registry;
  const Fixture* f = nullptr;
  auto engine = EngineOrSkip(state, &f, registry, true, 0);
  if (engine == nullptr) return;
  size_t fallbacks = 0;
  TimeFloor(state, RequestsFor(*f, state.range(0)), [&](const model::FeatureView& v) {
    const model::EngineVerdict e = engine->ScoreSync(v, kBudgetNs);
    fallbacks += e.fallback() ? 1 : 0;
    return e.verdict.score;
  });
  state.counters["fallbacks"] = static_cast<double>(fallbacks);
}
BENCHMARK(BM_EngineSyncFloor)->DenseRange(0, 2)->ArgName("model")->Iterations(5)->Unit(benchmark::kMillisecond);

// ScoreSync through the engine. Arg 1 (inline): 1 scores on the calling thread, 0 hands the
// request to the worker and waits for it (the path that bounds the wait by the budget).
void BM_EngineSync(benchmark::State& state) {
  core::Registry registry;
  const Fixture* f = nullptr;
  auto engine = EngineOrSkip(state, &f, registry, state.range(1) == 1, 0);
  if (engine == nullptr) return;
  TimeSync(state, *engine, RequestsFor(*f, state.range(0)), 0);
}
BENCHMARK(BM_EngineSync)->ArgsProduct({{0, 1, 2}, {1, 0}})->ArgNames({"model", "inline"});

// The verdict cache's hit path: the same request every time (digest + LRU lookup + copy).
void BM_EngineCacheHit(benchmark::State& state) {
  core::Registry registry;
  const Fixture* f = nullptr;
  auto engine = EngineOrSkip(state, &f, registry, true, kCacheCapacity);
  if (engine == nullptr) return;
  const int64_t family = state.range(0);
  const model::FeatureView view = RequestsFor(*f, family)[0].view();
  (void)engine->ScoreSync(view, kBudgetNs);
  Latencies lat;
  size_t misses = 0;
  for (auto _ : state) {
    lat.Time([&] {
      misses += engine->ScoreSync(view, kBudgetNs).source != model::VerdictSource::kCache ? 1 : 0;
    });
  }
  lat.Report(state);
  state.counters["misses"] = static_cast<double>(misses);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EngineCacheHit)->DenseRange(0, 2)->ArgName("model");

// ScoreSync inline with the verdict cache on (its default capacity, 4,096 entries) over the
// 20,000 requests in turn: nearly every request misses, is scored and is inserted, evicting the
// least recently used entry: the miss path of a gate that keeps the cache on.
void BM_EngineSyncCached(benchmark::State& state) {
  core::Registry registry;
  const Fixture* f = nullptr;
  auto engine = EngineOrSkip(state, &f, registry, true, kCacheCapacity);
  if (engine == nullptr) return;
  const auto& reqs = RequestsFor(*f, state.range(0));
  // Fill the cache first (untimed), so that the timed misses evict.
  size_t i = 0;
  for (; i < kCacheCapacity; ++i) (void)engine->ScoreSync(reqs[i].view(), kBudgetNs);
  TimeSync(state, *engine, reqs, i);
  state.counters["hit_ratio"] = engine->cache().HitRate();
}
BENCHMARK(BM_EngineSyncCached)->DenseRange(0, 2)->ArgName("model");

// A model that costs next to nothing: it copies a verdict shaped like the n-gram model's (name,
// version, three explanation entries longer than the small-string buffer).
class ConstantModel final : public model::Model {
 public:
  ConstantModel() {
    verdict_.score = 0.25;
    verdict_.model_name = name_;
    verdict_.model_version = version_;
    verdict_.events = 32;
    verdict_.explanation = {{"rare 3-gram open,read,mmap (surprisal 9.1)", 9.1},
                            {"rare 3-gram read,mmap,close (surprisal 7.4)", 7.4},
                            {"unseen 2-gram mmap,execve", 6.0}};
  }
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view) const override {
    return nullptr;
  }
  core::Result<core::Verdict> Score(const model::FeatureView&) const override { return verdict_; }

 private:
  std::string family_ = "constant", name_ = "engine-overhead", version_ = "1";
  core::Verdict verdict_;
};

// 20,000 synthetic 32-call windows (fixed seed), all distinct.
const std::vector<model::ScoreRequest>& SyntheticWindows() {
  static const std::vector<model::ScoreRequest> windows = [] {
    std::vector<model::ScoreRequest> w(kRequests);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> call(0, 339);
    for (model::ScoreRequest& r : w) {
      r.subject = "overhead";
      r.arch = core::Arch::kI386;
      r.syscalls.resize(kWindow);
      for (int32_t& c : r.syscalls) c = call(rng);
    }
    return w;
  }();
  return windows;
}

// The engine's own cost: ScoreSync inline around ConstantModel. Arg `cache`: 0 off (as in
// BM_EngineSync), 1 on at its default capacity (every request a miss, an insert and, once full,
// an eviction), 2 on with the same request every time (hits). Arg `direct` 1: the model called
// without the engine, the baseline.
void BM_EngineOverhead(benchmark::State& state) {
  auto m = std::make_shared<const ConstantModel>();
  const auto& reqs = SyntheticWindows();
  const int64_t cache = state.range(0);
  if (state.range(1) == 1) {  // direct
    Latencies lat;
    size_t i = 0;
    double sum = 0;
    for (auto _ : state) {
      const model::FeatureView view = reqs[i++ % reqs.size()].view();
      lat.Time([&] { sum += m->Score(view)->score; });
    }
    benchmark::DoNotOptimize(sum);
    lat.Report(state);
    state.SetItemsProcessed(state.iterations());
    return;
  }
  model::InferenceEngineOptions o;
  o.sync_inline = true;
  o.cache.capacity = cache == 0 ? 0 : 4096;
  core::Registry registry;
  o.registry = &registry;
  auto created = model::InferenceEngine::Create(m, o, core::SystemClock::Get());
  if (!created.has_value()) return state.SkipWithError("engine creation failed");
  model::InferenceEngine& engine = **created;
  size_t i = 0;
  if (cache == 1) {
    // Fill the cache first (untimed), so that every timed request evicts.
    for (; i < o.cache.capacity; ++i) (void)engine.ScoreSync(reqs[i].view(), kBudgetNs);
  }
  static const std::vector<model::ScoreRequest> first(reqs.begin(), reqs.begin() + 1);
  TimeSync(state, engine, cache == 2 ? first : reqs, i);
}
BENCHMARK(BM_EngineOverhead)
    ->Args({0, 1})
    ->ArgsProduct({{0, 1, 2}, {0}})
    ->ArgNames({"cache", "direct"});

// Asynchronous throughput: every iteration submits all 20,000 requests from this thread and
// waits until the last verdict is delivered. Arg: max_batch (1 = no batching). Wall time, and
// items_per_cpu_s: requests per CPU-second of the whole process (submitter + worker), which a
// busy machine disturbs less than wall time.
void BM_EngineAsync(benchmark::State& state) {
  const Fixture* f = FixtureOrSkip(state);
  if (f == nullptr) return;
  const int64_t family = state.range(1);
  model::InferenceEngineOptions o;
  o.max_batch = static_cast<size_t>(state.range(0));
  o.max_batch_delay_ns = 50'000;
  o.queue_capacity = kRequests;
  o.cache.capacity = 0;
  core::Registry registry;
  auto engine = MakeEngine(*f, family, registry, o);
  if (engine == nullptr) return state.SkipWithError("engine creation failed");
  const auto& reqs = RequestsFor(*f, family);
  std::atomic<uint64_t> delivered{0};
  uint64_t expected = 0;
  const uint64_t batches_before = engine->batches();
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    for (const model::ScoreRequest& r : reqs) {
      engine->Submit(r, [&](model::EngineVerdict) { delivered.fetch_add(1, std::memory_order_release); });
    }
    expected += reqs.size();
    while (delivered.load(std::memory_order_acquire) < expected) std::this_thread::yield();
  }
  state.counters["items_per_cpu_s"] =
      static_cast<double>(expected) / (ProcessCpuSeconds() - cpu_before);
  state.counters["mean_batch"] =
      static_cast<double>(expected) / static_cast<double>(engine->batches() - batches_before);
  const model::LatencySummary l = engine->VerdictLatency(false);
  state.counters["verdict_p50_us"] = l.p50_s * 1e6;
  state.counters["verdict_p99_us"] = l.p99_s * 1e6;
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(reqs.size()));
}
BENCHMARK(BM_EngineAsync)
    ->ArgsProduct({{1, 32}, {0, 1, 2}})
    ->ArgNames({"batch", "model"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) { return vigil::bench::BenchMain(argc, argv); }
