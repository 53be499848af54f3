// Per-call cost of the recurrent system-call model's Eigen inference (src/model/rnn_model.h) and
// of any trained model file (e.g. an ensemble) on ADFA-LD's evaluation traces.
//
// Latency does not depend on what the weights are, so the size sweep uses seeded random weights
// of the given shape (vocabulary: ADFA-LD's training calls) and needs no training run:
//   BM_RnnStep/cell/hidden        one Observe per call, each timed alone (clock pair cost
//                                 subtracted), P50/P99 over the first 200 calls of every trace
//   BM_RnnVerdict/cell/hidden     Observe + Current() per call: the verdict a gate would take
// With --model=PATH (any family, through model::LoadModel) the same two are run on that file:
//   BM_FileStep, BM_FileVerdict
// Read the counters p50_ns / p99_ns; the benchmark's own time includes the clock reads.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_data.h"
#include "core/event.h"
#include "core/syscall_table.h"
#include "model/loader.h"
#include "model/rnn_model.h"

namespace vigil::bench {
namespace {

constexpr size_t kCallsPerTrace = 200;

std::string& ModelFlag() {
  static std::string path;
  return path;
}

// A model of the given shape with seeded N(0, 0.1) weights over ADFA-LD's training vocabulary.
std::unique_ptr<model::RnnModel> RandomModel(const Dataset& d, model::RnnCell cell, int hidden) {
  std::map<std::string, int> names;
  for (const LoadedTrace& t : d.training) {
    for (int32_t nr : t.syscalls) {
      const std::string_view n = core::SyscallName(core::Arch::kI386, nr);
      if (!n.empty()) names.emplace(std::string(n), 0);
    }
  }
  std::vector<std::string> vocab;
  for (const auto& [n, unused] : names) vocab.push_back(n);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  auto random = [&](Eigen::Index r, Eigen::Index c) {
    Eigen::MatrixXf m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
    return m;
  };
  const int gates = cell == model::RnnCell::kLstm ? 4 : 3;
  const int embed = 32;
  const auto v = static_cast<Eigen::Index>(vocab.size()) + 1;
  model::RnnWeights w;
  w.cell = cell;
  w.embed = embed;
  w.hidden = hidden;
  w.embedding = random(v + 1, embed);
  model::RnnLayer l;
  l.w_ih = random(gates * hidden, embed);
  l.w_hh = random(gates * hidden, hidden);
  l.b_ih = random(gates * hidden, 1).col(0);
  l.b_hh = random(gates * hidden, 1).col(0);
  w.layers.push_back(l);
  w.out_w = random(v, hidden);
  w.out_b = random(v, 1).col(0);
  model::HeldOutCalibration cal;
  cal.threshold = 3.0;
  model::RnnScoring scoring;
  scoring.aggregate = model::RnnAggregate::kWindowMax;
  scoring.window = 100;
  auto m = model::RnnModel::Create("bench", "1", vocab, w, scoring, cal);
  return m.has_value() ? std::move(m).value() : nullptr;
}

// Times each call (Observe, plus Current() when `verdict`) over the first kCallsPerTrace calls
// of every evaluation trace.
void TimeCalls(benchmark::State& state, const Dataset& d, const model::Model& m, bool verdict) {
  const double overhead = ClockOverheadNanos();
  core::Event e;
  e.source = core::EventSource::kReplay;
  e.kind = core::EventKind::kSyscall;
  e.syscall.arch = core::Arch::kI386;
  std::vector<float> samples;
  double sink = 0;
  for (auto _ : state) {
    samples.clear();
    for (const auto* split : {&d.validation, &d.attack}) {
      for (const LoadedTrace& t : *split) {
        auto stream = m.NewStream("");
        const size_t n = std::min(t.syscalls.size(), kCallsPerTrace);
        for (size_t i = 0; i < n; ++i) {
          e.syscall.nr = t.syscalls[i];
          const int64_t start = MonoNanos();
          stream->Observe(e);
          if (verdict) sink += stream->Current().score;
          const int64_t took = MonoNanos() - start;
          samples.push_back(static_cast<float>(std::max(0.0, static_cast<double>(took) - overhead)));
        }
      }
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["p50_ns"] = Percentile(samples, 0.50);
  state.counters["p99_ns"] = Percentile(samples, 0.99);
  state.counters["p999_ns"] = Percentile(samples, 0.999);
  state.counters["samples"] = static_cast<double>(samples.size());
}

void RandomModelBench(benchmark::State& state, bool verdict) {
  std::string error;
  const Dataset* d = GetDataset(&error);
  if (d == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto cell = state.range(0) == 0 ? model::RnnCell::kLstm : model::RnnCell::kGru;
  auto m = RandomModel(*d, cell, static_cast<int>(state.range(1)));
  if (m == nullptr) {
    state.SkipWithError("could not build the model");
    return;
  }
  TimeCalls(state, *d, *m, verdict);
}

void BM_RnnStep(benchmark::State& state) { RandomModelBench(state, false); }
void BM_RnnVerdict(benchmark::State& state) { RandomModelBench(state, true); }
BENCHMARK(BM_RnnStep)
    ->ArgNames({"gru", "hidden"})
    ->ArgsProduct({{0, 1}, {64, 128, 200}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RnnVerdict)
    ->ArgNames({"gru", "hidden"})
    ->ArgsProduct({{0, 1}, {64, 128}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void FileModelBench(benchmark::State& state, bool verdict) {
  if (ModelFlag().empty()) {
    state.SkipWithError("no --model=PATH given");
    return;
  }
  std::string error;
  const Dataset* d = GetDataset(&error);
  if (d == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  static auto loaded = model::LoadModel(ModelFlag());
  if (!loaded.has_value()) {
    state.SkipWithError(loaded.error().ToString().c_str());
    return;
  }
  TimeCalls(state, *d, **loaded, verdict);
}

void BM_FileStep(benchmark::State& state) { FileModelBench(state, false); }
void BM_FileVerdict(benchmark::State& state) { FileModelBench(state, true); }
BENCHMARK(BM_FileStep)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FileVerdict)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) {
  // --model=PATH is ours; everything else goes to BenchMain (--data) and Google Benchmark.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      vigil::bench::ModelFlag() = argv[i] + 8;
    } else {
      rest.push_back(argv[i]);
    }
  }
  return vigil::bench::BenchMain(static_cast<int>(rest.size()), rest.data());
}
