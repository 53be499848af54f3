#pragma once

// What the synchronous gates (seccomp_gate.h, fanotify_gate.h) hand to whoever decides: one
// system call held in the kernel until it is answered, and the watchdog that answers it when the
// decision is late. The decider is outside the sensor room (the app wires the policy in); the
// gates only promise that every held call is answered exactly once, by the decider or by the
// watchdog at the call's deadline, whichever comes first.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "core/thread_priority.h"

namespace vigil::sensor {

enum class GateAnswer : uint8_t { kAllow, kDeny };
// Why a call got the fallback instead of a decision.
enum class GateFallbackCause : uint8_t {
  kDeadline,    // the decision did not finish by the deadline: the watchdog answered
  kUnreadable,  // the call's arguments could not be read (bad pointer, too long): never decided
  kQueued,      // queued behind a decision stuck past its deadline: allowed by the watchdog
                // without a decision (the fanotify gate, which reads its calls in order)
  kStopping,    // pending when the gate stopped: answered undecided before it let go
};

// One held call. `event` has source kSeccomp or kFanotify, kind kProcessExec (path: the program
// being executed), kFileOpen (path) or kNetConnect (net), proc.pid/proc.tid of the caller and
// ingest_ns (monotonic, when the gate received it). Nothing else about the process is filled in:
// the decider reads what it needs (comm, exe, ancestors) itself.
struct GateCall {
  core::Event event;
  std::vector<std::string> argv;  // execve/execveat through seccomp: the new program's argv
  bool argv_truncated = false;    // more arguments or bytes than the gate reads (64, 4 KiB)
};

// Handed to the decider with each call.
class CallControl {
 public:
  explicit CallControl(int64_t deadline_ns, GateAnswer fallback)
      : deadline_ns_(deadline_ns), fallback_(fallback) {}
  // Monotonic time (CLOCK_MONOTONIC ns) at which the watchdog answers with fallback().
  int64_t deadline_ns() const { return deadline_ns_; }
  // What the watchdog answers at the deadline; the decider narrows it as it learns which rules
  // are at stake (e.g. a rule whose fallback is deny).
  void SetFallback(GateAnswer a) { fallback_.store(a, std::memory_order_release); }
  GateAnswer fallback() const { return fallback_.load(std::memory_order_acquire); }

 private:
  const int64_t deadline_ns_;
  std::atomic<GateAnswer> fallback_;
};

class GateDecider {
 public:
  virtual ~GateDecider() = default;
  // Decides one call, on the gate's thread. The answer is applied unless the watchdog answered
  // first: then Late() follows, else Answered().
  virtual GateAnswer Decide(const GateCall& call, CallControl* control) = 0;
  // `call` was answered with the fallback `answer` for `cause`. For kDeadline this runs on the
  // watchdog thread while Decide() for the same call may still be running; for kUnreadable,
  // Decide() is not called (`call` holds what could be read); for kQueued, on the watchdog
  // thread while Decide() of another call is stuck, and Decide() is not called for `call`; for
  // kStopping, on the gate's thread as it stops (or on the thread stopping the fanotify gate,
  // while Decide() of `call` is stuck: Late() follows when it returns), and Decide() is not
  // called for `call` unless it was under way.
  virtual void OnFallback(const GateCall& call, GateAnswer answer, GateFallbackCause cause) = 0;
  // Decide() returned `decided` after the watchdog had answered the call.
  virtual void Late(const GateCall& call, GateAnswer decided) = 0;
  // The answer for a call the gate answers without a decision (kUnreadable, kStopping), given
  // the gate's fallback: e.g. allow while the decider would only monitor. Any thread.
  virtual GateAnswer UndecidedAnswer(GateAnswer gate_fallback) { return gate_fallback; }
  // Decide()'s `answer` is the call's: the watchdog can no longer answer it, and the gate sends
  // it next. On the gate's thread, right after Decide(), for every call Late() is not told of.
  virtual void Answered(const GateCall& call, GateAnswer answer) {
    (void)call;
    (void)answer;
  }
};

// Answers held calls whose deadline passed. A gate registers the call it is deciding (Begin),
// and takes it back when the decision is made (Finish); Finish() returns false when the watchdog
// answered first. The thread sleeps until the earliest registered deadline; registering wakes it
// only when the new deadline is earlier than the one it sleeps towards (always when it is idle),
// so the common path costs two uncontended lock round trips.
class GateWatchdog {
 public:
  // `answer` sends an answer for a registered call to the kernel (called at most once per call,
  // under the watchdog's lock); `decider` is told about every deadline answer. With
  // `realtime_priority` > 0 the thread runs at that SCHED_FIFO priority, as the gate's own
  // thread does (core::StartRealtimeThread): a deciding thread that waits on the watchdog's lock must not wait
  // for the watchdog to get a core. A refusal is the gate thread's to report.
  using AnswerFn = std::function<void(const GateCall& call, uint64_t token, GateAnswer a)>;
  GateWatchdog(AnswerFn answer, GateDecider* decider, int realtime_priority = 0);
  ~GateWatchdog();  // stops the thread
  GateWatchdog(const GateWatchdog&) = delete;
  GateWatchdog& operator=(const GateWatchdog&) = delete;

  struct Slot {
    const GateCall* call = nullptr;
    uint64_t token = 0;  // the gate's handle for the kernel (notification id, event fd)
    CallControl* control = nullptr;
    bool answered = false;  // by the watchdog; guarded by the watchdog's mutex
  };
  // Registers `slot` (which the caller keeps alive until Finish()).
  void Begin(Slot* slot);
  // Unregisters `slot`. True when the caller is to answer the call; false when its deadline came
  // first: the watchdog answered it with the fallback, or (its thread not having woken yet) does
  // so now, on the caller's thread, with the same answer, count and OnFallback().
  bool Finish(Slot* slot);

  // Answers every registered call its watchdog has not answered yet with `a`, now, on the
  // calling thread (the gate stops while a decision is under way, perhaps stuck), each told to
  // the decider as a `cause` fallback; Finish() of each then returns false. Not counted in
  // deadline_answers(). Returns how many it answered.
  int AnswerAllNow(GateAnswer a, GateFallbackCause cause);

  // Runs `fn` every `period_ns` on the watchdog thread while any call is overdue and not yet
  // finished (the fanotify gate uses it to answer events queued behind a stuck decision).
  void SetStuckHook(int64_t period_ns, std::function<void()> fn);

  // Decides `call` (held in the kernel under `token`) with the decider while the watchdog
  // watches its deadline. True when the caller is to send *answer (the decider's Answered() has
  // been told); false when the deadline came first, even by a hair: the watchdog answered with
  // the fallback (the decider's Late() has been told). A decision that finishes after its
  // deadline is never sent.
  bool Decide(const GateCall& call, uint64_t token, CallControl* control, GateAnswer* answer);

  uint64_t deadline_answers() const { return deadline_answers_.load(std::memory_order_relaxed); }

  // The time (monotonic ns) the thread sleeps towards: the earliest deadline it knows (or its
  // stuck hook's next run); INT64_MAX while it is idle or not asleep. For tests and diagnostics.
  int64_t sleeping_until();

 private:
  void Run();
  // With mu_ held: answers `s` (not yet answered, deadline passed) with its fallback.
  void AnswerAtDeadlineLocked(Slot* s);

  AnswerFn answer_;
  GateDecider* decider_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot*> slots_;
  // What the thread waits for (sleeping_until()); guarded by mu_.
  int64_t sleeping_until_ = std::numeric_limits<int64_t>::max();
  bool stop_ = false;
  int64_t stuck_period_ns_ = 0;
  std::function<void()> stuck_hook_;
  std::atomic<uint64_t> deadline_answers_{0};
  int realtime_priority_ = 0;
  std::thread thread_;
};

// Where a held call's time goes on the gate's thread (docs/gates.md, "Where a held call's time
// goes"), one histogram per stage, `vigil_gate_stage_seconds{gate, stage}`:
//   receive: from the gate thread's wake-up (or, for a call read in the same batch as the one
//            before, that call's answer) to the call read: the kernel's notification and the
//            call's arguments (the caller's memory, the event's path);
//   decide:  the decider (the process's context, the rules, the model);
//   answer:  the answer written to the kernel, which makes the caller runnable.
// What the caller waits beyond their sum is scheduling: the gate thread's wake-up before
// `receive` and the caller's after `answer`.
class GateStageTimes {
 public:
  enum Stage : uint8_t { kReceive, kDecide, kAnswer, kStages };
  // Registers the histograms in `registry` with the label gate=`gate`; without a registry (or
  // one that refuses them) nothing is timed and enabled() is false.
  GateStageTimes(core::Registry* registry, std::string_view gate);
  GateStageTimes() = default;
  bool enabled() const { return stage_[kReceive] != nullptr; }
  // Observes `to_ns - from_ns` (monotonic ns) for `stage`; nothing when not enabled.
  void Observe(Stage stage, int64_t from_ns, int64_t to_ns) const {
    if (stage_[stage] != nullptr) stage_[stage]->ObserveNanos(to_ns - from_ns);
  }
  // The stage's histogram, or null when not enabled.
  const core::Histogram* histogram(Stage stage) const { return stage_[stage]; }
  // "receive", "decide", "answer".
  static std::string_view Name(Stage stage);

 private:
  core::Histogram* stage_[kStages] = {};
};

// Monotonic time in ns (CLOCK_MONOTONIC, as core::SystemClock and the calls' deadlines).
int64_t GateNowNs();

// Waits until `fd` is readable or `stop_fd` is signalled (EINTR retried). Returns fd's revents
// (POLLIN, POLLHUP, ...), or 0 when stop_fd fired or poll failed: the gate's loop ends.
short WaitReadable(int fd, int stop_fd);

}  // namespace vigil::sensor
