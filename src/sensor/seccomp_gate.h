#pragma once

// SeccompGate: runs one program under a seccomp user-notification filter so that execve,
// execveat, open, openat, openat2 and connect of the program and of every process it starts
// wait in the kernel until a decider answers (gate_call.h): allow lets the call go on as the
// program made it (SECCOMP_USER_NOTIF_FLAG_CONTINUE), deny makes it fail with EPERM. Every other
// system call runs unsupervised. The filter is built with libseccomp and inherited across fork
// and exec; system calls of another ABI (i386, x32) kill the caller, so the filter cannot be
// stepped around through them.
//
// Reading the arguments. Paths, argv and socket addresses are read from the caller's memory with
// process_vm_readv(2) into the gate's buffers (seccomp_gate_read.h); relative paths are made
// absolute against the caller's cwd or dirfd (/proc/PID/cwd, /proc/PID/fd/N; lexically, symlinks
// not resolved). After the last read the gate checks with SECCOMP_IOCTL_NOTIF_ID_VALID that the
// notification is still pending: the caller was then alive and blocked throughout, so its pid
// was not reused by another process and everything read was the caller's; otherwise the call is
// dropped as vanished. A string longer than 4 KiB, or memory the caller itself cannot read
// (unmapped, PROT_NONE), fails the decision: the call gets the gate's fallback.
//
// The limit (seccomp_unotify(2)): with CONTINUE the kernel reads the arguments again after the
// answer. Another thread of the caller (or a process sharing its memory) can change them in
// between, so a program that races itself on purpose can open or connect to something else than
// what was decided. The gate is a policy check for programs that are not built to evade it,
// not a sandbox against one that is; use the fanotify gate or cgroup BPF for a hard boundary.
//
// Lifetime. Launch() forks and starts the program; the gate serves notifications on its own
// thread until the program exits, then stops. Processes the program left running keep the
// filter. As it stops, the gate answers the calls they have pending (and any that arrive while it
// does, up to 4,096) with its fallback undecided (GateFallbackCause::kStopping, the decider's
// UndecidedAnswer), so every held call is answered and told to the decider; once the gate has
// stopped and its listener is closed, the kernel fails their supervised calls with ENOSYS.
//
// A listener that fails. A notification the gate cannot receive (SECCOMP_IOCTL_NOTIF_RECV fails
// other than EINTR, or ENOENT for a caller that died) is counted (receive_failures) and the gate
// serves on. When the listener is broken (EBADF, ENOTTY: not a listener any more) or receiving
// fails 64 times in a row, the gate stops serving as it stops at the program's exit: it answers
// what it can of the calls pending and lets go of the listener, so that every supervised call
// made afterwards fails with ENOSYS at once instead of waiting unanswered; serve_status() says
// why. The program itself runs on.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "sensor/gate_call.h"

namespace vigil::sensor {

struct SeccompGateOptions {
  std::vector<std::string> argv;   // the program (looked up in PATH without a '/') and arguments
  int64_t deadline_ns = 5'000'000;  // per call, from its arrival
  // The watchdog's answer when a decision is late and the decider has not narrowed it.
  GateAnswer default_fallback = GateAnswer::kAllow;
  // SCHED_FIFO priority of the gate's threads, 0 (normal scheduling) or 1..99
  // (core/thread_priority.h). A host that refuses it leaves the gate at normal priority
  // (priority_status()).
  int realtime_priority = 0;
  // Ask the kernel for synchronous wake-ups on the listener (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
  // Linux 6.6): a held call wakes the gate's thread on the caller's CPU, and the answer wakes the
  // caller on the gate thread's CPU, where the scheduler allows it (a normally scheduled thread;
  // a real-time one is woken where it last ran). A kernel that refuses it leaves the ordinary
  // wake-ups (sync_wakeup_status() says why).
  bool sync_wakeup = true;
  // Where the stage histograms go (GateStageTimes, label gate="seccomp"); null: not timed.
  core::Registry* metrics = nullptr;
  // Receives one notification from `listener` into `notif` (a zeroed struct seccomp_notif) as
  // SECCOMP_IOCTL_NOTIF_RECV does: 0, or -1 with errno set. Null (the default): that ioctl. Tests
  // put failures here.
  std::function<int(int listener, void* notif)> receive;
};

struct SeccompGateStats {
  uint64_t calls = 0;             // notifications received
  uint64_t allowed = 0;           // answered allow (by the decider or the watchdog)
  uint64_t denied = 0;            // answered EPERM
  uint64_t deadline_answers = 0;  // answered by the watchdog
  uint64_t read_failures = 0;     // arguments unreadable: answered with the fallback
  uint64_t vanished = 0;          // the caller died before the answer (nothing to answer)
  uint64_t stop_answers = 0;      // pending when the gate stopped: answered with the fallback
  uint64_t receive_failures = 0;  // notifications the listener failed to hand over (not
                                  // EINTR/ENOENT): in no outcome, the gate served on or stopped
};

struct SeccompExit {
  int exit_code = 0;   // the program's exit code; 128 + N when killed by signal N
  int exec_errno = 0;  // non-zero when the program could not be started (e.g. EPERM: denied)
};

class SeccompGate {
 public:
  // Resolves the program, builds the filter and starts the program under it. The decider must
  // outlive the gate. Errors: kInvalidArgument (empty argv), kNotFound (no such program in
  // PATH), kFailedPrecondition (the kernel or libseccomp lacks user notification), or the errno
  // of a failed fork/socketpair.
  static core::Result<std::unique_ptr<SeccompGate>> Launch(const SeccompGateOptions& options,
                                                           GateDecider* decider);
  ~SeccompGate();  // stops serving (the program, if still running, is left to the caller)
  SeccompGate(const SeccompGate&) = delete;
  SeccompGate& operator=(const SeccompGate&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& program() const { return program_; }

  // Waits for the program to end, then stops serving: calls still held are answered (kStopping)
  // and the listener is let go, so that a call made afterwards by a process the program left
  // running fails with ENOSYS at once instead of waiting for the gate's destruction. Call once.
  SeccompExit Wait();

  // Whether Wait() (or the destructor) has asked the gate to stop, or it stopped serving on its
  // own (serve_status()): from then on, calls are no longer decided but answered undecided as it
  // stops (kStopping).
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  SeccompGateStats stats() const;
  // Whether options.realtime_priority was applied to the gate's thread (OK when it was 0).
  const core::Status& priority_status() const { return priority_status_; }
  // Whether options.sync_wakeup was applied to the listener (OK when it was not asked for).
  const core::Status& sync_wakeup_status() const { return sync_wakeup_status_; }
  // The per-stage times of the calls served (enabled() when options.metrics was given).
  const GateStageTimes& stage_times() const { return stages_; }
  // OK, or why the gate stopped serving before it was asked to (a broken listener, or receiving
  // that kept failing; kUnavailable naming the errno). Any thread.
  core::Status serve_status() const;

 private:
  SeccompGate() = default;
  void Serve();
  void Handle(void* request, int64_t woken_ns);
  void Answer(uint64_t id, GateAnswer a);
  // On the gate's thread as it stops: answers every pending call undecided (kStopping).
  void AnswerPendingAtStop();
  void ReleaseListener();
  // SECCOMP_IOCTL_NOTIF_RECV, or options_.receive: 0, or -1 with errno set.
  int Receive(void* notif);
  enum class ReadResult { kRead, kUnreadable, kGone };
  // Fills `call` from the notification `request`; kGone when the caller is no longer waiting.
  ReadResult ReadCall(const void* request, GateCall* call);
  // The arguments of system call `nr` of `pid` (args: the notification's); false when unreadable.
  bool ReadArguments(uint32_t pid, int nr, const unsigned long long* args, GateCall* call);

  SeccompGateOptions options_;
  GateDecider* decider_ = nullptr;
  std::string program_;
  pid_t pid_ = -1;
  int listener_ = -1;
  int status_fd_ = -1;  // our end of the socket the child reports a failed exec on
  int stop_fd_ = -1;    // eventfd: stop serving
  int nr_execve_ = -1, nr_execveat_ = -1, nr_open_ = -1, nr_openat_ = -1, nr_openat2_ = -1,
      nr_connect_ = -1;
  uint64_t seq_ = 0;
  std::atomic<bool> stopping_{false};
  bool released_ = false;  // ReleaseListener() has let go (the serving thread's, then Wait()'s)
  // The errno with which receiving made the gate stop serving on its own; 0: it did not.
  std::atomic<int> serve_errno_{0};
  std::unique_ptr<GateWatchdog> watchdog_;
  GateStageTimes stages_;
  core::Status priority_status_;
  core::Status sync_wakeup_status_;
  std::thread thread_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace vigil::sensor
