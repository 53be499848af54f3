#include "bench/bench_data.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace vigil::bench {
namespace {

std::string& DataFlag() {
  static std::string flag;
  return flag;
}

core::Status ReadSplit(const std::string& root, sensor::AdfaSplit split,
                       std::vector<LoadedTrace>* out, uint64_t* syscalls) {
  auto list = sensor::ListAdfaTraces(root, split);
  if (!list.has_value()) return list.error();
  for (const sensor::AdfaTrace& t : *list) {
    auto s = sensor::ReadAdfaTrace(t.path);
    if (!s.has_value()) return s.error();
    *syscalls += s->size();
    out->push_back(LoadedTrace{t.id, split, std::move(s).value()});
  }
  return core::Status::Ok();
}

}  // namespace

const std::string& DataRoot() {
  static const std::string root = [] {
    if (!DataFlag().empty()) return DataFlag();
    if (const char* env = std::getenv("VIGIL_DATA"); env != nullptr && *env != '\0') {
      return std::string(env);
    }
    return std::string(VIGIL_SOURCE_DIR) + "/../shared/data/adfa-ld";
  }();
  return root;
}

const Dataset* GetDataset(std::string* error) {
  static std::string load_error;
  static const std::unique_ptr<Dataset> dataset = []() -> std::unique_ptr<Dataset> {
    auto d = std::make_unique<Dataset>();
    d->root = DataRoot();
    uint64_t training = 0;
    core::Status st = ReadSplit(d->root, sensor::AdfaSplit::kTraining, &d->training, &training);
    if (st.ok()) {
      st = ReadSplit(d->root, sensor::AdfaSplit::kValidation, &d->validation, &d->eval_syscalls);
    }
    if (st.ok()) st = ReadSplit(d->root, sensor::AdfaSplit::kAttack, &d->attack, &d->eval_syscalls);
    if (!st.ok()) {
      load_error = "ADFA-LD not readable at " + d->root +
                   " (pass --data=DIR or set VIGIL_DATA): " + st.message();
      return nullptr;
    }
    d->all_syscalls = training + d->eval_syscalls;
    return d;
  }();
  if (dataset == nullptr && error != nullptr) *error = load_error;
  return dataset.get();
}

const model::SequenceModel* GetModel(std::string* error) {
  static std::string train_error;
  static const std::unique_ptr<model::SequenceModel> model =
      []() -> std::unique_ptr<model::SequenceModel> {
    const Dataset* d = GetDataset(&train_error);
    if (d == nullptr) return nullptr;
    std::vector<model::TrainingTrace> traces;
    traces.reserve(d->training.size());
    for (const LoadedTrace& t : d->training) {
      traces.push_back(model::TrainingTrace{"", core::Arch::kI386, t.syscalls});
    }
    const auto start = std::chrono::steady_clock::now();
    auto m = model::SequenceModel::Train(traces, model::SequenceModelOptions{});
    if (!m.has_value()) {
      train_error = "training on " + d->root + " failed: " + m.error().message();
      return nullptr;
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::fprintf(stderr, "bench: trained %s on %zu traces in %.1f s\n",
                 std::string(model::kSequenceFamily).c_str(), traces.size(), took.count());
    return std::move(m).value();
  }();
  if (model == nullptr && error != nullptr) *error = train_error;
  return model.get();
}

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double ClockOverheadNanos() {
  std::vector<int64_t> samples(20001);
  for (int64_t& s : samples) {
    const int64_t a = MonoNanos();
    const int64_t b = MonoNanos();
    s = b - a;
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return static_cast<double>(samples[samples.size() / 2]);
}

double Percentile(std::vector<float>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int BenchMain(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int rest = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--data=", 7) == 0) {
      DataFlag() = argv[i] + 7;
    } else {
      argv[rest++] = argv[i];
    }
  }
  argc = rest;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::AddCustomContext("dataset", DataRoot());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace vigil::bench
