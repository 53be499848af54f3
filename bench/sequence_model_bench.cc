// Scoring cost of the syscall-ngram sequence model (src/model/sequence_model.h), trained once per
// process on ADFA-LD's training split with default options. Every benchmark scores the whole
// evaluation set (validation + attack traces, ~1.2M system calls) per iteration; items are
// system calls. What each one isolates is said above it; docs/benchmarks.md has the figures.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "bench/bench_data.h"
#include "core/event.h"

namespace vigil::bench {
namespace {

// Runs fn(dataset, model), or skips the benchmark with the reason they are unavailable.
template <typename Fn>
void WithModel(benchmark::State& state, Fn&& fn) {
  std::string error;
  const Dataset* d = GetDataset(&error);
  const model::SequenceModel* m = d != nullptr ? GetModel(&error) : nullptr;
  if (m == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  fn(*d, *m);
}

template <typename Fn>
void ForEachEvalTrace(const Dataset& d, Fn&& fn) {
  for (const LoadedTrace& t : d.validation) fn(t);
  for (const LoadedTrace& t : d.attack) fn(t);
}

// The batch path (replay, `vigil eval`): one stream per trace, all its system calls through
// ObserveSyscalls, then the verdict (Current()) as a caller would take it at stream end.
void BM_ScoreThroughput(benchmark::State& state) {
  WithModel(state, [&](const Dataset& d, const model::SequenceModel& m) {
    double score_sum = 0;
    for (auto _ : state) {
      ForEachEvalTrace(d, [&](const LoadedTrace& t) {
        auto stream = m.NewStream("");
        stream->ObserveSyscalls(core::Arch::kI386, t.syscalls);
        score_sum += stream->Current().score;
      });
    }
    benchmark::DoNotOptimize(score_sum);
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(d.eval_syscalls));
  });
}
BENCHMARK(BM_ScoreThroughput)->Unit(benchmark::kMillisecond);

// The pipeline's path: one virtual Observe(core::Event) per system call. The event is a filled-in
// kSyscall event (host, stream, pid) reused for every call with only its number changed, so this
// isolates the per-event call and excludes the memory traffic of queued events (replay_bench
// has that).
void BM_ScorePerEvent(benchmark::State& state) {
  WithModel(state, [&](const Dataset& d, const model::SequenceModel& m) {
    core::Event e;
    e.source = core::EventSource::kReplay;
    e.kind = core::EventKind::kSyscall;
    e.host = "bench-host";
    e.syscall.arch = core::Arch::kI386;
    double score_sum = 0;
    for (auto _ : state) {
      ForEachEvalTrace(d, [&](const LoadedTrace& t) {
        e.stream = t.id;
        auto stream = m.NewStream("");
        for (int32_t nr : t.syscalls) {
          e.syscall.nr = nr;
          stream->Observe(e);
        }
        score_sum += stream->Current().score;
      });
    }
    benchmark::DoNotOptimize(score_sum);
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(d.eval_syscalls));
  });
}
BENCHMARK(BM_ScorePerEvent)->Unit(benchmark::kMillisecond);

// Per-event latency of Observe(core::Event) over the evaluation set. Arg = batch size B: the
// clock (clock_gettime(CLOCK_MONOTONIC), no rdtsc) is read around every B consecutive Observe
// calls of one stream and each sample is that time / B.
//  - B = 64: the clock costs < 1 ns per event, but a sample is the mean of 64 calls, so the P99
//    is the P99 of 64-call means and a single slow call is diluted.
//  - B = 1: each call timed alone, minus the median cost of a clock read pair measured at start
//    (counter clock_ns). Sees single-call outliers; below ~20 ns it is at the clock's resolution.
// The benchmark's own time includes the clock reads; read only the counters.
void BM_ObserveLatency(benchmark::State& state) {
  const auto batch = static_cast<size_t>(state.range(0));
  WithModel(state, [&](const Dataset& d, const model::SequenceModel& m) {
    const double overhead = batch == 1 ? ClockOverheadNanos() : 0.0;
    core::Event e;
    e.source = core::EventSource::kReplay;
    e.kind = core::EventKind::kSyscall;
    e.host = "bench-host";
    e.syscall.arch = core::Arch::kI386;
    std::vector<float> samples;
    samples.reserve(d.eval_syscalls / batch + 1);
    for (auto _ : state) {
      samples.clear();
      ForEachEvalTrace(d, [&](const LoadedTrace& t) {
        e.stream = t.id;
        auto stream = m.NewStream("");
        const std::vector<int32_t>& nrs = t.syscalls;
        for (size_t i = 0; i + batch <= nrs.size(); i += batch) {
          const int64_t start = MonoNanos();
          for (size_t j = i; j < i + batch; ++j) {
            e.syscall.nr = nrs[j];
            stream->Observe(e);
          }
          const int64_t took = MonoNanos() - start;
          samples.push_back(static_cast<float>(
              std::max(0.0, (static_cast<double>(took) - overhead) / static_cast<double>(batch))));
        }
        benchmark::DoNotOptimize(stream->observed());
      });
    }
    state.counters["p50_ns"] = Percentile(samples, 0.50);
    state.counters["p99_ns"] = Percentile(samples, 0.99);
    state.counters["p999_ns"] = Percentile(samples, 0.999);
    state.counters["clock_ns"] = overhead;
    state.counters["samples"] = static_cast<double>(samples.size());
  });
}
BENCHMARK(BM_ObserveLatency)->ArgName("batch")->Arg(64)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) { return vigil::bench::BenchMain(argc, argv); }
