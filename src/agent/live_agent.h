#pragma once

// The live host agent's logic, independent of where events come from: per-program baselines are
// learned from windows of each process's system calls for a learning period, trained into the
// sequence model (one model per program seen often enough, a global one for the rest), persisted,
// and then every new window of every process is scored; anomalous windows are alerts that name
// the program, the pid, the rarest call sequences and what the process did recently.
//
// Threading: Run() drives a ReplayRunner (reader + workers, events sharded by pid) and a
// controller thread that ends learning and the run at their deadlines. Stop() may be called from
// any thread (e.g. a signal-handling thread).

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/replay_runner.h"
#include "agent/stream_budget.h"
#include "core/clock.h"
#include "core/status.h"
#include "model/sequence_model.h"
#include "pipeline/sink.h"
#include "sensor/sensor.h"

namespace vigil::agent {

struct LiveOptions {
  int64_t learn_ns = int64_t{300} * 1'000'000'000;  // learning period (ignored with a baseline)
  int64_t duration_ns = 0;                          // stop after this long (0: until Stop())
  size_t window = 100;                              // system calls per scored window
  size_t max_windows_per_program = 5000;            // learning memory bound per program
  size_t max_processes = 65536;                     // tracked per worker; the oldest go first
  std::string baseline_path;                        // where baselines are read and written
  bool relearn = false;                             // ignore an existing baseline
  // The baseline, loaded by the caller (read once: the bytes it verified are the bytes loaded);
  // used instead of reading baseline_path.
  std::shared_ptr<const model::SequenceModel> baseline;
  model::SequenceModelOptions model;                // min_subject_traces counts windows
  ReplayOptions pipeline;                           // queue, workers, sinks policy, on_verdict
  // Called when the baselines in use change: "loaded" (an existing baseline file reused, from
  // Run's thread) or "trained" (learned and saved to baseline_path when set, from the controller
  // thread), with the number of programs that have a model of their own. Detection starts then.
  std::function<void(std::string_view action, size_t programs)> on_model_change;
  // Called after a note for the operator is added (TakeNotes), from the thread that added it:
  // lets a thread that logs them block until there is one. Null: nobody is told.
  std::function<void()> on_note;
  // Where the syscall stream resumed after an off period (budget mode; null: it never pauses).
  // A process's window is cut there, as at an exec: calls before and after the gap are never
  // joined into one window or n-gram.
  std::shared_ptr<const StreamGaps> stream_gaps;
};

// Hands the free pages of every malloc arena back to the kernel (glibc's malloc_trim) and
// returns whether any were. Called after training frees the learned windows; false where the C
// library has no such call.
bool ReleaseFreeHeap();

// Makes every block of 128 KiB or more a mapping of its own, returned to the kernel when freed
// (glibc's M_MMAP_THRESHOLD, fixed: by default glibc raises it up to 32 MiB after such a block is
// freed, so later large blocks land in the heap, on pages earlier ones touched, and stay
// there). For a long-running process whose large blocks are made once (queue and conversion
// storage, libbpf's parsed kernel BTF at load): storage reserved but not yet used then takes no
// memory. Call before the first large allocation; no effect where the C library lacks mallopt.
void KeepLargeBlocksOutOfTheHeap();

enum class LivePhase : uint8_t { kLearning, kTraining, kDetecting, kStopped };
std::string_view LivePhaseName(LivePhase p);

struct LiveStats {
  LivePhase phase = LivePhase::kLearning;
  uint64_t learned_windows = 0;   // windows collected for training
  uint64_t dropped_windows = 0;   // over max_windows_per_program
  uint64_t programs_learned = 0;  // programs with a model of their own
  uint64_t windows_scored = 0;
  uint64_t alerts = 0;
  uint64_t processes_evicted = 0;
  uint64_t gap_cuts = 0;          // process windows cut where the stream had an off period
  ReplayStats pipeline;
};

class LiveAgent {
 public:
  // `sinks` must outlive the agent. `stop_sensor` makes the sensor's Next() return kEnd (it is
  // called once, from the controller or from Stop()).
  LiveAgent(LiveOptions options, std::vector<pipeline::Sink*> sinks, const core::Clock& clock,
            std::function<void()> stop_sensor);
  ~LiveAgent();

  // Loads the baseline when one exists (unless relearn), then runs until the sensor ends, the
  // duration passes or Stop() is called. Fails when the baseline exists but is unreadable
  // (kDataLoss/kInvalidArgument naming it), when training or saving the baseline fails, or as
  // ReplayRunner::Run fails.
  core::Result<LiveStats> Run(sensor::Sensor& sensor,
                              const std::function<void(const core::Status&)>& on_read_error);
  void Stop();
  LiveStats Live() const;
  // Notes from the run for the operator (baseline reused, training outcome); thread-safe.
  std::vector<std::string> TakeNotes();

  // Shared between the workers and the controller.
  class State;

 private:
  core::Status EndLearning();
  void NoteAdded();  // calls options_.on_note
  // Ends learning at start + learn_ns and the run at start + duration_ns (monotonic ns of the
  // injected clock, read by Run before this thread starts).
  void Controller(int64_t start);

  LiveOptions options_;
  std::vector<pipeline::Sink*> sinks_;
  const core::Clock& clock_;
  std::function<void()> stop_sensor_;
  std::unique_ptr<State> state_;
  std::unique_ptr<ReplayRunner> runner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  std::once_flag stop_once_;
  core::Status controller_status_;
};

}  // namespace vigil::agent
