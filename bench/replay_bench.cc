// End-to-end replay throughput: sensor -> bounded queue (kBlock) -> validation -> per-stream
// scoring -> an OCSF verdict per stream -> NullSink, through agent::ReplayRunner, over every
// split of ADFA-LD (~1.53M system-call events in 3,398 streams per iteration). Items are events
// the sensor returned; wall-clock time. A run that loses any event is reported as an error, so
// the "dropped" counter printed is always 0.

#include <benchmark/benchmark.h>

#include <ctime>
#include <string>
#include <vector>

#include "agent/replay_runner.h"
#include "bench/bench_data.h"
#include "core/clock.h"
#include "pipeline/sink.h"
#include "sensor/replay.h"
#include "sensor/sensor.h"

namespace vigil::bench {
namespace {

// Emits pre-read traces exactly as AdfaReplaySensor emits them from files (same stream ids,
// pids, host and kStreamEnd markers), so that neither disk nor parsing is measured.
class MemoryAdfaSensor final : public sensor::Sensor {
 public:
  MemoryAdfaSensor(std::vector<const LoadedTrace*> traces, std::string host)
      : traces_(std::move(traces)), host_(std::move(host)) {}
  std::string_view name() const override { return "replay:adfa-ld"; }

  core::Result<sensor::ReadOutcome> Next(core::Event* out) override {
    if (trace_ == traces_.size()) return sensor::ReadOutcome::kEnd;
    const LoadedTrace& t = *traces_[trace_];
    core::Event& e = *out;
    e.source = core::EventSource::kReplay;
    e.seq = ++seq_;
    e.time_ns = 0;
    e.host = host_;
    e.stream = t.id;
    e.proc = core::ProcessIdentity{};
    e.proc.pid = e.proc.tid = static_cast<uint32_t>(1000 + trace_);
    if (pos_ < t.syscalls.size()) {
      e.kind = core::EventKind::kSyscall;
      e.syscall.arch = core::Arch::kI386;
      e.syscall.nr = t.syscalls[pos_++];
      return sensor::ReadOutcome::kEvent;
    }
    e.kind = core::EventKind::kStreamEnd;
    e.syscall = core::SyscallPayload{};
    pos_ = 0;
    ++trace_;
    return sensor::ReadOutcome::kEvent;
  }

 private:
  std::vector<const LoadedTrace*> traces_;
  std::string host_;
  size_t trace_ = 0;
  size_t pos_ = 0;
  uint64_t seq_ = 0;
};

// CPU time of every thread of the process, in ns.
int64_t ProcessCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

uint64_t Lost(const agent::ReplayStats& s) {
  return s.read_errors + s.queue.dropped_full + s.queue.evicted + s.queue.sampled_out +
         s.queue.rejected_closed + s.validation.rejected;
}

// Runs one replay per iteration with `make_sensor()` as the source; Arg = workers. Besides
// wall-clock items/s it reports the CPU the whole process (sensor thread + workers) spent per
// event, which does not depend on how many cores other work on the machine leaves free, and
// cores_used = that CPU time / wall time.
template <typename MakeSensor>
void RunReplay(benchmark::State& state, MakeSensor&& make_sensor) {
  std::string error;
  const model::SequenceModel* m = GetModel(&error);
  if (m == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  agent::ReplayOptions options;
  options.workers = static_cast<int>(state.range(0));
  options.source.policy = pipeline::BackpressurePolicy::kBlock;
  uint64_t events = 0, lost = 0, streams = 0, expected_streams = 0;
  int64_t cpu_ns = 0, wall_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    pipeline::NullSink sink;
    std::unique_ptr<sensor::Sensor> source = make_sensor(&expected_streams);
    state.ResumeTiming();
    const int64_t cpu_start = ProcessCpuNanos();
    const int64_t wall_start = core::SystemClock::Get().MonotonicNanos();
    agent::ReplayRunner runner(*m, {&sink}, options, core::SystemClock::Get());
    auto stats = runner.Run(*source, nullptr);
    wall_ns += core::SystemClock::Get().MonotonicNanos() - wall_start;
    cpu_ns += ProcessCpuNanos() - cpu_start;
    if (!stats.has_value()) {
      state.SkipWithError(("replay failed: " + stats.error().message()).c_str());
      return;
    }
    events += stats->read;
    lost += Lost(*stats);
    streams += stats->streams;
    if (stats->streams != expected_streams || stats->scored + stats->streams != stats->read) {
      lost += 1;  // something read was neither scored nor ended a stream
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.counters["dropped"] = static_cast<double>(lost);
  if (events > 0 && wall_ns > 0) {
    state.counters["cpu_ns_per_event"] = static_cast<double>(cpu_ns) / static_cast<double>(events);
    state.counters["cores_used"] = static_cast<double>(cpu_ns) / static_cast<double>(wall_ns);
  }
  state.counters["streams"] =
      benchmark::Counter(static_cast<double>(streams), benchmark::Counter::kAvgIterations);
  if (lost != 0) {
    state.SkipWithError(("replay lost " + std::to_string(lost) + " events").c_str());
  }
}

// Pre-read traces: the pipeline without disk or parsing.
void BM_ReplayMemory(benchmark::State& state) {
  std::string error;
  const Dataset* d = GetDataset(&error);
  if (d == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::vector<const LoadedTrace*> traces;
  for (const auto* split : {&d->training, &d->validation, &d->attack}) {
    for (const LoadedTrace& t : *split) traces.push_back(&t);
  }
  RunReplay(state, [&](uint64_t* expected_streams) {
    *expected_streams = traces.size();
    return std::make_unique<MemoryAdfaSensor>(traces, "bench-host");
  });
}
BENCHMARK(BM_ReplayMemory)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The real AdfaReplaySensor reading and parsing the trace files (from the page cache once warm):
// what `vigil replay` over ADFA-LD costs. The gap to BM_ReplayMemory is the sensor's share.
void BM_ReplayAdfaFiles(benchmark::State& state) {
  auto traces = sensor::ListAdfaSplits(DataRoot(), "all");
  if (!traces.has_value()) {
    state.SkipWithError(("ADFA-LD not listable at " + DataRoot() +
                         " (pass --data=DIR or set VIGIL_DATA): " + traces.error().message())
                            .c_str());
    return;
  }
  RunReplay(state, [&](uint64_t* expected_streams) {
    *expected_streams = traces->size();
    return std::make_unique<sensor::AdfaReplaySensor>(*traces, "bench-host");
  });
}
BENCHMARK(BM_ReplayAdfaFiles)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vigil::bench

int main(int argc, char** argv) { return vigil::bench::BenchMain(argc, argv); }
