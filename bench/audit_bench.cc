// Audit log append throughput (docs/benchmarks.md, "audit_bench"). One producer thread appends
// decision records (the payload the agent writes for an alert: a verdict with its explanation,
// about 450 bytes of JSON) through AuditLog's bounded queue; the writer thread takes them a block
// (up to 4096 records) at a time, frames and hashes them, writes and syncs per the fsync mode.
// Items are records; rates are per wall-clock second (UseRealTime), since the work is split
// across two threads and the disk.
//
//   BM_AuditAppendCanonical/fsync:M  the agent's path (AuditTrail::Alert): each payload written
//                                 from a verdict in the loop with WriteDecisionPayload (no
//                                 nlohmann::json tree) and appended with AppendCanonical.
//                                 M = 0 batch, 1 interval (100 ms), 2 never.
//                                 Counters: records per batch, fsyncs per second.
//   BM_AuditAppend/fsync:M        nlohmann::json payloads built before the timed loop and moved
//                                 into Append (rendered there, freed on the writer thread).
//   BM_AuditAppendBuilt           fsync per batch, each nlohmann::json payload built in the loop
//                                 with DecisionPayload (the producer's cost included).
//   BM_AuditAppendFlushEvery/K    fsync per batch, payload written as the agent does, and the
//                                 producer waits for durability (Flush) after every K records, as
//                                 a gate that must not act before its decision is on disk would.
// Counters cpu_per_wall and runq_wait_per_wall (from the scheduler's per-thread statistics) say
// whether the wall-clock rate was bound by the work or by waiting for a core on a loaded machine.
// The logs go to $VIGIL_BENCH_DIR (default: a fresh directory under /var/tmp, i.e. the disk, not
// tmpfs), removed afterwards. A checkpoint is signed every 1000 records.

#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.h"
#include "audit/canonical_json.h"
#include "audit/internal/format.h"
#include "audit/payloads.h"
#include "audit/signer.h"
#include "core/clock.h"

namespace {

using namespace vigil;  // NOLINT(google-build-using-namespace)

// CPU time and run-queue wait (ns) summed over every thread of this process, from the scheduler's
// per-thread statistics (/proc/self/task/*/schedstat: on-CPU ns, runnable-but-waiting ns,
// timeslices). Run-queue wait is the wall-clock time the threads could have run but had no core.
struct SchedTotals {
  double cpu_ns = 0;
  double wait_ns = 0;
};
SchedTotals ReadSchedTotals() {
  SchedTotals t;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    FILE* f = std::fopen((task.path() / "schedstat").c_str(), "r");
    if (f == nullptr) continue;
    unsigned long long cpu = 0, wait = 0;
    if (std::fscanf(f, "%llu %llu", &cpu, &wait) == 2) {
      t.cpu_ns += static_cast<double>(cpu);
      t.wait_ns += static_cast<double>(wait);
    }
    std::fclose(f);
  }
  return t;
}

std::string FreshDir() {
  const char* base = std::getenv("VIGIL_BENCH_DIR");
  std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/var/tmp") +
                      "/vigil-audit-bench-XXXXXX";
  return mkdtemp(templ.data()) != nullptr ? templ : std::string();
}

core::Verdict SampleVerdict(uint64_t i) {
  core::Verdict v;
  v.score = 0.93;
  v.anomalous = true;
  v.model_name = "host-baseline";
  v.model_version = "1";
  v.subject = "nginx";
  v.uid = 33;
  v.pid = static_cast<uint32_t>(1000 + i % 5000);
  v.stream = "pid:" + std::to_string(v.pid);
  v.host = "gw-17";
  v.events = 100;
  v.time_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(i);
  v.explanation = {{"open read mmap2 mprotect", 7.5}, {"socket connect sendto", 6.1},
                   {"recent: exec /tmp/x", 1.0}};
  return v;
}

core::Decision SampleDecision(uint64_t i) {
  core::Decision d;
  d.action = core::Action::kAlert;
  d.reason = "anomalous verdict";
  d.verdict = SampleVerdict(i);
  return d;
}

nlohmann::json Payload(uint64_t i) { return audit::DecisionPayload(SampleDecision(i), "monitor"); }

// How the producer makes each record's payload.
enum class Source {
  kPrebuiltJson,  // nlohmann::json built before the timed loop, moved into Append
  kBuiltJson,     // nlohmann::json built from a verdict in the loop (DecisionPayload), Append
  kCanonical,     // written from a verdict in the loop (WriteDecisionPayload), AppendCanonical:
                  // what the agent's AuditTrail::Alert does
};

void Run(benchmark::State& state, audit::FsyncMode mode, int64_t flush_every, Source source) {
  const bool prebuilt = source == Source::kPrebuiltJson;
  const std::string dir = FreshDir();
  if (dir.empty()) {
    state.SkipWithError("cannot create a directory under $VIGIL_BENCH_DIR or /var/tmp");
    return;
  }
  auto signer = audit::Ed25519Signer::Generate();
  audit::AuditOptions o;
  o.fsync = mode;
  o.fsync_interval_ms = 100;
  auto log = audit::AuditLog::Open(dir + "/audit", o, *signer, core::SystemClock::Get());
  if (!log.has_value()) {
    state.SkipWithError(log.error().ToString().c_str());
    return;
  }
  const int64_t per_iteration = flush_every > 0 ? 20'000 : 100'000;
  uint64_t i = 0;
  std::vector<nlohmann::json> ready;
  core::Decision decision = SampleDecision(0);
  std::string rendered;
  double producer_cpu_s = 0;  // appending only, not building the ready payloads
  auto thread_cpu_s = [] {
    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) / 1e9;
  };
  const SchedTotals sched_start = ReadSchedTotals();
  const auto wall_start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (prebuilt) {
      state.PauseTiming();
      ready.clear();
      for (int64_t n = 0; n < per_iteration; ++n) ready.push_back(Payload(i + n));
      state.ResumeTiming();
    }
    const double cpu_start = thread_cpu_s();
    for (int64_t n = 0; n < per_iteration; ++n) {
      core::Status st;
      if (source == Source::kCanonical) {
        // The verdict's per-record fields change as they would between alerts.
        decision.verdict.pid = static_cast<uint32_t>(1000 + i % 5000);
        decision.verdict.time_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(i);
        rendered.clear();
        audit::CanonicalWriter w(&rendered);
        audit::WriteDecisionPayload(decision, "monitor", &w);
        st = (*log)->AppendCanonical(audit::RecordType::kDecision, rendered);
      } else {
        nlohmann::json payload = prebuilt ? std::move(ready[static_cast<size_t>(n)]) : Payload(i);
        st = (*log)->Append(audit::RecordType::kDecision, std::move(payload));
      }
      ++i;
      if (!st.ok()) {
        state.SkipWithError("append failed");
        break;
      }
      if (flush_every > 0 && (n + 1) % flush_every == 0 && !(*log)->Flush().ok()) {
        state.SkipWithError("flush failed");
        break;
      }
    }
    if (!(*log)->Flush().ok()) state.SkipWithError("flush failed");
    producer_cpu_s += thread_cpu_s() - cpu_start;
  }
  const SchedTotals sched_end = ReadSchedTotals();
  const double wall_ns = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           wall_start)
          .count());
  const audit::AuditStats s = (*log)->Stats();
  const double records = static_cast<double>(state.iterations() * per_iteration);
  // Of each wall-clock second, how many seconds the process's threads ran on a core and how many
  // they spent runnable but waiting for one (both summed over threads; the payload building of
  // the prebuilt variant, outside the timed region, is included).
  state.counters["cpu_per_wall"] =
      wall_ns > 0 ? (sched_end.cpu_ns - sched_start.cpu_ns) / wall_ns : 0;
  state.counters["runq_wait_per_wall"] =
      wall_ns > 0 ? (sched_end.wait_ns - sched_start.wait_ns) / wall_ns : 0;
  // Per CPU-second of each thread: what the log sustains when both threads have a core.
  state.counters["per_writer_cpu_s"] =
      s.writer_cpu_ns > 0 ? records / (static_cast<double>(s.writer_cpu_ns) / 1e9) : 0;
  state.counters["per_producer_cpu_s"] = producer_cpu_s > 0 ? records / producer_cpu_s : 0;
  state.SetItemsProcessed(state.iterations() * per_iteration);
  state.counters["records_per_batch"] =
      s.batches > 0 ? static_cast<double>(s.written) / static_cast<double>(s.batches) : 0;
  state.counters["fsyncs_per_s"] =
      benchmark::Counter(static_cast<double>(s.syncs), benchmark::Counter::kIsRate);
  state.counters["bytes_per_record"] =
      s.written > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.written) : 0;
  (void)(*log)->Close();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void BM_AuditAppend(benchmark::State& state) {
  Run(state, static_cast<audit::FsyncMode>(state.range(0)), 0, Source::kPrebuiltJson);
}
BENCHMARK(BM_AuditAppend)->ArgName("fsync")->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(
    benchmark::kMillisecond);

void BM_AuditAppendCanonical(benchmark::State& state) {
  Run(state, static_cast<audit::FsyncMode>(state.range(0)), 0, Source::kCanonical);
}
BENCHMARK(BM_AuditAppendCanonical)->ArgName("fsync")->Arg(0)->Arg(1)->Arg(2)->UseRealTime()->Unit(
    benchmark::kMillisecond);

void BM_AuditAppendBuilt(benchmark::State& state) {
  Run(state, audit::FsyncMode::kBatch, 0, Source::kBuiltJson);
}
BENCHMARK(BM_AuditAppendBuilt)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_AuditAppendFlushEvery(benchmark::State& state) {
  Run(state, audit::FsyncMode::kBatch, state.range(0), Source::kCanonical);
}
BENCHMARK(BM_AuditAppendFlushEvery)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->Unit(
    benchmark::kMillisecond);

// The writer's CPU cost per record on one thread: canonical JSON of a ready payload, framing and
// SHA-256 (plus freeing the payload), without I/O. Its inverse is what one free core can append.
void BM_AuditEncodeOnly(benchmark::State& state) {
  std::vector<nlohmann::json> ready;
  core::Decision decision = SampleDecision(0);
  std::string rendered;
  std::string out, text;
  audit::internal::RecordFields f;
  uint64_t i = 0;
  for (auto _ : state) {
    if (ready.empty()) {
      state.PauseTiming();
      for (int n = 0; n < 10000; ++n) ready.push_back(Payload(i + static_cast<uint64_t>(n)));
      out.clear();
      state.ResumeTiming();
    }
    {
      const nlohmann::json payload = std::move(ready.back());
      ready.pop_back();
      f.seq = ++i;
      text.clear();
      audit::AppendCanonicalJson(payload, &text);
      f.prev_hash = audit::internal::AppendRecord(f, text, &out);
    }
    if (out.size() > (1u << 20)) out.clear();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditEncodeOnly);

// The agent's per-record rendering: a decision written from its values (WriteDecisionPayload).
void BM_AuditRenderCanonical(benchmark::State& state) {
  core::Decision d = SampleDecision(0);
  std::string out;
  uint64_t i = 0;
  for (auto _ : state) {
    d.verdict.pid = static_cast<uint32_t>(1000 + i % 5000);
    d.verdict.time_ns = static_cast<int64_t>(i++);
    out.clear();
    audit::CanonicalWriter w(&out);
    audit::WriteDecisionPayload(d, "monitor", &w);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditRenderCanonical);

// The writer thread's per-record work without I/O: framing and hashing (header check and record
// SHA-256) of a rendered decision payload.
void BM_AuditFrameOnly(benchmark::State& state) {
  std::string payload;
  audit::CanonicalWriter w(&payload);
  audit::WriteDecisionPayload(SampleDecision(0), "monitor", &w);
  std::string out;
  audit::internal::RecordFields f;
  for (auto _ : state) {
    ++f.seq;
    f.prev_hash = audit::internal::AppendRecord(f, payload, &out);
    if (out.size() > (1u << 20)) out.clear();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditFrameOnly);

// The producer's own cost per record (building the payload), for comparison.
void BM_AuditPayloadOnly(benchmark::State& state) {
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(Payload(i++));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditPayloadOnly);

}  // namespace

// scripts/bench.sh passes --data=DIR to every benchmark binary; this one needs no dataset.
int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string_view(argv[i]).rfind("--data", 0) != 0) args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
