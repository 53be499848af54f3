#pragma once

// What the benchmarks share: where ADFA-LD is, the dataset read into memory once per process,
// a model trained on it once per process, and a main() that accepts --data=DIR next to Google
// Benchmark's own flags.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/sequence_model.h"
#include "sensor/adfa.h"

namespace vigil::bench {

// One trace read into memory.
struct LoadedTrace {
  std::string id;  // as AdfaTrace::id
  sensor::AdfaSplit split = sensor::AdfaSplit::kTraining;
  std::vector<int32_t> syscalls;
};

struct Dataset {
  std::string root;
  std::vector<LoadedTrace> training, validation, attack;
  uint64_t eval_syscalls = 0;  // validation + attack
  uint64_t all_syscalls = 0;   // all three splits
};

// The dataset root: --data=DIR if given to BenchMain, else $VIGIL_DATA, else
// VIGIL_SOURCE_DIR/../shared/data/adfa-ld.
const std::string& DataRoot();

// Reads every split of ADFA-LD on first call; later calls return the same object. Null when the
// dataset cannot be read; *error (if given) then says why. Not thread-safe on first call
// (benchmarks call it from their single setup thread).
const Dataset* GetDataset(std::string* error = nullptr);

// The sequence model trained with default options on Training_Data_Master, built on first call
// (a few seconds). Null with *error set when the dataset or training fails.
const model::SequenceModel* GetModel(std::string* error = nullptr);

// CLOCK_MONOTONIC in nanoseconds (no rdtsc).
int64_t MonoNanos();
// Median cost of one MonoNanos() pair, subtracted from single-call latency samples.
double ClockOverheadNanos();
// The p-quantile (0..1) of `v` by selection; reorders `v`. 0 when empty.
double Percentile(std::vector<float>& v, double p);

// main() of a benchmark binary: takes --data=DIR, then runs the registered benchmarks.
int BenchMain(int argc, char** argv);

}  // namespace vigil::bench
