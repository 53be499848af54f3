#pragma once

// FanotifyGate: holds exec (FAN_OPEN_EXEC_PERM) and, when asked, open (FAN_OPEN_PERM) of files
// on configured paths until a decider answers (gate_call.h); deny makes the caller's execve or
// open fail with EPERM.
//
// What is marked. Each configured path is marked on its own inode, never as a mount or a
// filesystem: a file marks that file, a directory marks the files directly in it (not
// subdirectories). A mark on a mount holding the gate's own binaries, loader or shell would make
// the gate wait on its own answer, so the gate refuses paths that are or hold its own executable.
//
// Never hanging the host. Events come from one reader thread; a call from the gate's own process
// is allowed at once. Every held call has a deadline; the watchdog (GateWatchdog) answers with
// the call's fallback when the decision is late, and while a decision is stuck past its
// deadline it also reads and ALLOWs every event queued behind it, so no process waits longer
// than the deadline plus one period because of a stuck decider.
//
// Stopping. Stop() lets the decision under way finish; every event read but not yet decided, and
// every one still queued in the kernel (up to 4,096), is then answered with the gate's fallback
// undecided (GateFallbackCause::kStopping, the decider's UndecidedAnswer) and told to the
// decider. Closing the fanotify group last, the kernel allows whatever arrived after that. A
// decision that has not returned 100 ms after Stop() was called (a stuck decider) does not hold
// the stop: Stop() answers its call (if the watchdog has not) and the queued events itself,
// lets go of the group and returns; the reader thread ends once the decision returns (counted
// late), and the destructor waits for that.
//
// Needs CAP_SYS_ADMIN (root) and Linux 5.0 for FAN_OPEN_EXEC_PERM.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "sensor/gate_call.h"

namespace vigil::sensor {

struct FanotifyGateOptions {
  std::vector<std::string> paths;  // files or directories (existing)
  bool exec = true;                // hold execs of the files
  bool open = false;               // hold opens of the files (read or write)
  int64_t deadline_ns = 5'000'000;
  // The watchdog's answer when a decision is late and the decider has not narrowed it.
  GateAnswer default_fallback = GateAnswer::kAllow;
  // SCHED_FIFO priority of the gate's threads, 0 (normal scheduling) or 1..99
  // (core/thread_priority.h). A host that refuses it leaves the gate at normal priority
  // (priority_status()).
  int realtime_priority = 0;
  // Where the stage histograms go (GateStageTimes, label gate=`metrics_gate`); null: not timed.
  core::Registry* metrics = nullptr;
  std::string metrics_gate = "fanotify";
};

struct FanotifyGateStats {
  uint64_t calls = 0;             // permission events decided or answered
  uint64_t allowed = 0;
  uint64_t denied = 0;
  uint64_t own = 0;               // events of the gate's own process, allowed at once
  uint64_t deadline_answers = 0;  // answered with the fallback by the watchdog
  uint64_t stuck_allowed = 0;     // queued behind a stuck decision, allowed by the watchdog
  uint64_t overflows = 0;         // the kernel's queue overflowed (FAN_Q_OVERFLOW)
  uint64_t stop_answers = 0;      // read or queued when the gate stopped: answered undecided
  uint64_t read_errors = 0;       // events the kernel could not hand over (e.g. EMFILE): it
                                  // denied them, undecided and in no outcome
  uint64_t stuck_at_stop = 0;     // 1 when Stop() found a decision stuck and answered in its place
};

class FanotifyGate {
 public:
  // Creates the fanotify group, marks the paths and starts the reader thread. Errors:
  // kInvalidArgument (no paths, no event kind, a path that holds vigil's own executable),
  // kNotFound (a path that does not exist), kFailedPrecondition (not root, kernel without
  // permission events), naming the path at fault. The decider must outlive the gate.
  static core::Result<std::unique_ptr<FanotifyGate>> Start(const FanotifyGateOptions& options,
                                                           GateDecider* decider);
  // Stop(), then waits for a decision Stop() left under way (a stuck decider) to return.
  ~FanotifyGate();
  FanotifyGate(const FanotifyGate&) = delete;
  FanotifyGate& operator=(const FanotifyGate&) = delete;

  // Stops the reader once the decision under way (if any) is made, answers the events read or
  // queued undecided (kStopping), and closes the group. Returns within about 100 ms even when the
  // decision under way does not (see "Stopping"). Idempotent; one thread.
  void Stop();

  // Whether Stop() has been called: from then on, events are no longer decided but answered
  // undecided as the gate stops (kStopping).
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  FanotifyGateStats stats() const;
  // Whether options.realtime_priority was applied to the gate's thread (OK when it was 0).
  const core::Status& priority_status() const { return priority_status_; }
  // The per-stage times of the calls decided (enabled() when options.metrics was given).
  const GateStageTimes& stage_times() const { return stages_; }

 private:
  FanotifyGate() = default;
  void Serve();
  // kDecide: decide each event (until Stop() asks the gate to stop: the rest as kStopping);
  // kStuck: answer everything ALLOW without deciding, each told to the decider as a kQueued
  // fallback (OnFallback); kStopping: answer everything with the gate's fallback undecided, each
  // told as a kStopping fallback.
  enum class DrainMode : uint8_t { kDecide, kStuck, kStopping };
  // Reads what is queued and handles it per `mode`.
  // `woken_ns`: when the gate thread woke for it (stage times; 0 when not timed).
  bool Drain(DrainMode mode, int64_t woken_ns = 0);
  void Respond(int event_fd, GateAnswer a);
  // Stop()'s part when the reader is held in a decision: answers it and the queued events
  // (kStopping) and lets go of the group, the reader's descriptors left for it to finish with.
  void StopInPlaceOfReader();
  // Once the reader thread has ended: stops the watchdog and closes the descriptors.
  void Close();

  FanotifyGateOptions options_;
  GateDecider* decider_ = nullptr;
  int fan_ = -1;
  int stop_fd_ = -1;
  pid_t self_ = 0;
  uint64_t seq_ = 0;
  uint64_t deadline_answers_after_stop_ = 0;
  std::atomic<bool> stopping_{false};  // Stop() was called
  bool stopped_ = false;               // Stop() has done its part (the thread calling it)
  std::mutex served_mu_;
  std::condition_variable served_cv_;
  bool served_ = false;  // the reader thread has left Serve(); guarded by served_mu_
  std::unique_ptr<GateWatchdog> watchdog_;
  GateStageTimes stages_;
  core::Status priority_status_;
  std::thread thread_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace vigil::sensor
