#pragma once

// The host path that events take after a sensor: bounded queue per worker (backpressure per
// source) -> schema validation -> a StreamHandler per worker that feeds models -> verdicts as
// OCSF JSON Lines to the sinks. Events of one stream (or, when an event names no stream, of one
// pid) always go to the same worker, so a handler sees each stream in order.
//
// The replay path uses the per-stream scoring handler (one verdict per stream, when it ends);
// the live agent plugs in its own handler (learning, then windowed scoring).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "model/model.h"
#include "pipeline/queue.h"
#include "pipeline/sink.h"
#include "pipeline/validate.h"
#include "sensor/sensor.h"

namespace vigil::agent {

struct ReplayOptions {
  size_t queue_capacity = 16384;       // per worker; slots are built as the queue fills
  pipeline::SourceOptions source;      // backpressure policy of the sensor's source
  int workers = 1;                     // scoring threads, 1..64
  bool emit_all = true;                // a verdict for every stream; false: anomalous ones only
  size_t batch = 512;                  // events a worker takes from its queue at once
  std::string host;                    // stamped on events that carry no host
  bool flush_each_verdict = false;     // flush the sinks after every verdict (live alerts)
  // Typed events (exec, fork, exit, open, connect and the typed calls) also go to the sinks, as
  // OCSF activity events (core::EventToOcsfJson), in the order each worker sees them.
  bool emit_events = false;
  // When set, 1 in `latency_sample_every` events records its latency from ingestion (queue
  // entry) to scored, in seconds. Must outlive the runner.
  core::Histogram* latency = nullptr;
  uint32_t latency_sample_every = 64;
  // Called on the reading thread for every event the sensor returned, before it is queued
  // (enrichment, kind fix-ups). Must be quick.
  std::function<void(core::Event&)> on_read;
  // Called for every verdict (written or not), serialised with the sink writes.
  std::function<void(const core::Verdict&)> on_verdict;
  // Called on a worker for every validated event other than the per-call stream (kSyscall,
  // kStreamEnd); a non-empty return (e.g. a policy decision as one JSON line) is written to the
  // sinks and flushed. Thread-safe: workers call it concurrently.
  std::function<std::string(const core::Event&)> on_typed;
};

// Counts of events are of what the events stand for: a kSyscall event with a syscall_run counts
// once per call of its run (core::EventCount). The queues count what they carry: a run is one
// item there (the agent's queues block and never drop).
struct ReplayStats {
  uint64_t read = 0;          // events the sensor returned
  uint64_t read_errors = 0;   // pieces of input the sensor reported as bad and skipped
  uint64_t scored = 0;        // events that reached a model
  uint64_t streams = 0;       // verdicts produced (one per stream or window)
  uint64_t verdicts = 0;      // verdicts written to the sinks
  uint64_t events_written = 0;  // typed events written to the sinks (emit_events)
  uint64_t typed_lines = 0;     // lines on_typed returned (written to the sinks)
  uint64_t anomalous = 0;
  double seconds = 0;
  pipeline::QueueStats queue;            // summed over the workers' queues
  pipeline::ValidatorStats validation;
};

// Where handlers send verdicts. Thread-safe.
class VerdictSink {
 public:
  virtual ~VerdictSink() = default;
  virtual void Emit(core::Verdict verdict) = 0;
};

// The per-worker logic. Each instance is used by one thread only.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // One validated event (a kSyscall event may carry a syscall_run: a sequence of calls).
  // Returns true when it was fed to a model (counted as scored, once per call of a run).
  virtual bool OnEvent(core::Event& event) = 0;
  // The input ended: emit verdicts for whatever is still open.
  virtual void OnInputEnd() = 0;
};
using HandlerFactory = std::function<std::unique_ptr<StreamHandler>(VerdictSink& out)>;

// The replay handler: one scorer per stream from `model`, a verdict when the stream ends (and
// at the end of input for streams still open). `model` must outlive the handlers.
HandlerFactory PerStreamScoring(const model::Model& model);

class ReplayRunner final : private VerdictSink {
 public:
  // `sinks` must outlive the runner. Sinks are written under a lock, one line each.
  ReplayRunner(HandlerFactory handlers, std::vector<pipeline::Sink*> sinks, ReplayOptions options,
               const core::Clock& clock);
  // Shorthand for PerStreamScoring(model).
  ReplayRunner(const model::Model& model, std::vector<pipeline::Sink*> sinks,
               ReplayOptions options, const core::Clock& clock);

  // Call once per runner. Reads `sensor` to its end (or until it returns kEnd after a Stop) on
  // the calling thread while the workers score. Bad input the sensor reports goes to
  // `on_read_error` (may be empty) and is counted; the run goes on. Fails only when a sink
  // write fails (after the workers have drained) or the options are invalid.
  core::Result<ReplayStats> Run(sensor::Sensor& sensor,
                                const std::function<void(const core::Status&)>& on_read_error);

  // Counters so far; safe to call from any thread while Run() is going (for /metrics).
  ReplayStats Live() const;

 private:
  void Emit(core::Verdict verdict) override;
  // Writes a typed event as an OCSF activity event (emit_events); other kinds are skipped.
  void WriteEvent(const core::Event& event);
  // Hands `line` to every sink; sink_mu_ must be held. The first sink error is kept.
  void WriteLocked(const std::string& line, bool flush);

  HandlerFactory handlers_;
  std::vector<pipeline::Sink*> sinks_;
  ReplayOptions options_;
  const core::Clock& clock_;
  std::mutex sink_mu_;
  core::Status sink_status_;

  std::atomic<uint64_t> read_{0}, read_errors_{0}, scored_{0}, streams_{0}, verdicts_{0},
      anomalous_{0}, events_written_{0}, typed_lines_{0};
  std::atomic<int64_t> start_mono_{0};
  std::atomic<int64_t> end_mono_{0};  // 0 while running
  mutable std::mutex queues_mu_;  // guards the vector, not the queues (they are thread-safe)
  std::vector<std::unique_ptr<pipeline::BoundedQueue<core::Event>>> queues_;
  // One validator per worker, so that the workers do not share its counters' cache lines.
  std::vector<std::unique_ptr<pipeline::EventValidator>> validators_;  // guarded like queues_
};

}  // namespace vigil::agent
