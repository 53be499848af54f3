#include "sensor/fanotify_gate.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace vigil::sensor {
namespace {



std::string FdPath(int fd) {
  char buf[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Whether marking `path` would put the gate's own executable under its mark.
bool HoldsOwnExecutable(const std::string& path, bool is_dir) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return false;
  const std::filesystem::path target = std::filesystem::weakly_canonical(path, ec);
  if (ec) return false;
  return is_dir ? self.parent_path() == target : self == target;
}

constexpr uint64_t kPermMask = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM;
// How long Stop() lets the decision under way finish before it answers in the reader's place.
constexpr std::chrono::milliseconds kStopGrace{100};

}  // namespace

struct FanotifyGate::Counters {
  std::atomic<uint64_t> calls{0}, allowed{0}, denied{0}, own{0}, stuck_allowed{0}, overflows{0},
      stop_answers{0}, read_errors{0}, stuck_at_stop{0};
};

core::Result<std::unique_ptr<FanotifyGate>> FanotifyGate::Start(const FanotifyGateOptions& options,
                                                                 GateDecider* decider) {
  if (options.paths.empty()) return core::InvalidArgument("no paths to watch");
  if (core::Status s = core::CheckRealtimePriority(options.realtime_priority); !s.ok()) return s;
  if (!options.exec && !options.open) {
    return core::InvalidArgument("nothing to hold: neither exec nor open");
  }
  std::unique_ptr<FanotifyGate> g(new FanotifyGate());
  g->options_ = options;
  g->decider_ = decider;
  g->counters_ = std::make_unique<Counters>();
  g->stages_ = GateStageTimes(options.metrics, options.metrics_gate);
  g->self_ = getpid();
  g->fan_ = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
                          O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (g->fan_ < 0) {
    const int err = errno;
    return core::FailedPrecondition(std::string("fanotify_init: ") + std::strerror(err) +
                                    (err == EPERM ? " (the fanotify gate needs root)" : ""));
  }
  for (const std::string& p : options.paths) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) return core::ErrnoError(errno, "watch path " + p);
    const bool is_dir = S_ISDIR(st.st_mode);
    if (HoldsOwnExecutable(p, is_dir)) {
      return core::InvalidArgument("watch path " + p +
                                   ": holds vigil's own executable (the gate would wait on its "
                                   "own answer)");
    }
    uint64_t mask = 0;
    if (options.exec) mask |= FAN_OPEN_EXEC_PERM;
    if (options.open) mask |= FAN_OPEN_PERM;
    if (is_dir) mask |= FAN_EVENT_ON_CHILD;
    if (fanotify_mark(g->fan_, FAN_MARK_ADD, mask, AT_FDCWD, p.c_str()) != 0) {
      const int err = errno;
      return core::FailedPrecondition("fanotify_mark " + p + ": " + std::strerror(err) +
                                      (err == EINVAL ? " (FAN_OPEN_EXEC_PERM needs Linux 5.0)" : ""));
    }
  }
  g->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (g->stop_fd_ < 0) return core::ErrnoError(errno, "eventfd");
  FanotifyGate* self = g.get();
  g->watchdog_ = std::make_unique<GateWatchdog>(
      [self](const GateCall&, uint64_t token, GateAnswer a) {
        self->Respond(static_cast<int>(token), a);
      },
      decider, options.realtime_priority);
  // While a decision is stuck, events queued behind it are allowed every quarter deadline.
  g->watchdog_->SetStuckHook(std::max<int64_t>(options.deadline_ns / 4, 100'000),
                             [self] { self->Drain(DrainMode::kStuck); });
  g->thread_ = core::StartRealtimeThread(
      options.realtime_priority,
      [self] {
        self->Serve();
        std::lock_guard<std::mutex> lock(self->served_mu_);
        self->served_ = true;
        self->served_cv_.notify_all();
      },
      &g->priority_status_);
  return g;
}

FanotifyGate::~FanotifyGate() {
  Stop();
  if (thread_.joinable()) {  // Stop() left a decision under way: its end is the thread's
    thread_.join();
    Close();
  }
}

void FanotifyGate::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    // A decision under way may finish; one that takes longer (a decider stuck) must not hold
    // the stop, however long the deadline.
    bool served;
    {
      std::unique_lock<std::mutex> lock(served_mu_);
      served = served_cv_.wait_for(lock, kStopGrace, [this] { return served_; });
    }
    if (!served) {
      StopInPlaceOfReader();
      return;
    }
    thread_.join();
  }
  Close();
}

void FanotifyGate::StopInPlaceOfReader() {
  counters_->stuck_at_stop.store(1, std::memory_order_relaxed);
  const GateAnswer a = decider_ != nullptr ? decider_->UndecidedAnswer(options_.default_fallback)
                                           : options_.default_fallback;
  const int held = watchdog_->AnswerAllNow(a, GateFallbackCause::kStopping);
  counters_->stop_answers.fetch_add(static_cast<uint64_t>(held), std::memory_order_relaxed);
  Drain(DrainMode::kStopping);
  // Let go of the group (the kernel allows what arrives from now on) but keep the descriptor's
  // number, on /dev/null, for the reader: its next read finds nothing and it ends.
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    (void)dup3(null_fd, fan_, O_CLOEXEC);
    close(null_fd);
  }
}

void FanotifyGate::Close() {
  if (watchdog_) deadline_answers_after_stop_ = watchdog_->deadline_answers();
  watchdog_.reset();
  if (fan_ >= 0) close(fan_);  // the kernel allows whatever arrived after the last read
  if (stop_fd_ >= 0) close(stop_fd_);
  fan_ = stop_fd_ = -1;
}

FanotifyGateStats FanotifyGate::stats() const {
  FanotifyGateStats s;
  s.calls = counters_->calls.load();
  s.allowed = counters_->allowed.load();
  s.denied = counters_->denied.load();
  s.own = counters_->own.load();
  s.stuck_allowed = counters_->stuck_allowed.load();
  s.overflows = counters_->overflows.load();
  s.stop_answers = counters_->stop_answers.load();
  s.read_errors = counters_->read_errors.load();
  s.stuck_at_stop = counters_->stuck_at_stop.load();
  s.deadline_answers = watchdog_ ? watchdog_->deadline_answers() : deadline_answers_after_stop_;
  return s;
}

void FanotifyGate::Respond(int event_fd, GateAnswer a) {
  fanotify_response r{};
  r.fd = event_fd;
  r.response = a == GateAnswer::kAllow ? FAN_ALLOW : FAN_DENY;
  if (write(fan_, &r, sizeof r) == sizeof r) {
    (a == GateAnswer::kAllow ? counters_->allowed : counters_->denied)
        .fetch_add(1, std::memory_order_relaxed);
  }
}

void FanotifyGate::Serve() {
  while (true) {
    const short revents = WaitReadable(fan_, stop_fd_);
    if (revents == 0) {  // stopped (or poll failed): answer what is queued, then let go
      Drain(DrainMode::kStopping);
      return;
    }
    if ((revents & POLLIN) == 0) return;
    if (!Drain(DrainMode::kDecide, stages_.enabled() ? GateNowNs() : 0)) return;
  }
}

bool FanotifyGate::Drain(DrainMode mode, int64_t woken_ns) {
  const bool stuck = mode == DrainMode::kStuck;
  // Events answered as the gate stops: those read, and those queued, up to this many (processes
  // that keep calling cannot hold the stop).
  constexpr int kMaxAnsweredAtStop = 4096;
  int stop_answers = 0;
  const bool timed = mode == DrainMode::kDecide && stages_.enabled();
  int64_t since = woken_ns;  // the start of the next call's receive stage
  alignas(fanotify_event_metadata) char buf[8192];
  while (true) {
    if (mode == DrainMode::kStopping && stop_answers >= kMaxAnsweredAtStop) return true;
    // Deciding, one event at a time: an event read with the one being decided would wait in this
    // thread's buffer, out of the stuck hook's reach, for as long as that decision is stuck;
    // left in the kernel's queue, the hook allows it (kQueued). (The group reports no info
    // records: every event is FAN_EVENT_METADATA_LEN bytes.)
    const ssize_t len =
        read(fan_, buf, mode == DrainMode::kDecide ? FAN_EVENT_METADATA_LEN : sizeof buf);
    if (len < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EINTR) return true;
      if (err == EINVAL || err == EBADF || err == EFAULT) return false;  // the group is unusable
      // The kernel took an event off its queue but could not hand it over (no fd for the file:
      // EMFILE, ENFILE, ENOMEM; or opening it failed), and denied it. Counted; the reader goes
      // on (returning would leave every later event unanswered until Stop()).
      counters_->read_errors.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (len == 0) return true;
    const auto* m = reinterpret_cast<const fanotify_event_metadata*>(buf);
    ssize_t left = len;
    for (; FAN_EVENT_OK(m, left); m = FAN_EVENT_NEXT(m, left)) {
      if (m->vers != FANOTIFY_METADATA_VERSION) return false;
      if ((m->mask & FAN_Q_OVERFLOW) != 0) counters_->overflows.fetch_add(1);
      if (m->fd < 0) continue;
      if ((m->mask & kPermMask) == 0) {
        close(m->fd);
        continue;
      }
      counters_->calls.fetch_add(1, std::memory_order_relaxed);
      if (m->pid == self_) {
        counters_->own.fetch_add(1);
        Respond(m->fd, GateAnswer::kAllow);
        close(m->fd);
        continue;
      }
      GateCall call;
      core::Event& e = call.event;
      e.ingest_ns = core::SystemClock::Get().MonotonicNanos();
      e.time_ns = core::SystemClock::Get().NowUnixNanos();
      e.source = core::EventSource::kFanotify;
      e.kind = (m->mask & FAN_OPEN_EXEC_PERM) != 0 ? core::EventKind::kProcessExec
                                                  : core::EventKind::kFileOpen;
      e.proc.pid = static_cast<uint32_t>(m->pid);
      e.proc.tid = static_cast<uint32_t>(m->pid);
      e.path = FdPath(m->fd);
      // Stop() asked the gate to stop: this event and every one after it (read or queued) is
      // answered undecided.
      if (mode != DrainMode::kStopping && stopping_.load(std::memory_order_acquire)) {
        mode = DrainMode::kStopping;
      }
      if (mode == DrainMode::kStopping) {  // on the gate's thread as it stops: told as a fallback
        const GateAnswer a = decider_ != nullptr
                                 ? decider_->UndecidedAnswer(options_.default_fallback)
                                 : options_.default_fallback;
        ++stop_answers;
        counters_->stop_answers.fetch_add(1, std::memory_order_relaxed);
        Respond(m->fd, a);
        close(m->fd);
        if (decider_ != nullptr) decider_->OnFallback(call, a, GateFallbackCause::kStopping);
        continue;
      }
      if (stuck) {  // on the watchdog's thread: allowed undecided, told as a fallback
        counters_->stuck_allowed.fetch_add(1);
        Respond(m->fd, GateAnswer::kAllow);
        close(m->fd);
        if (decider_ != nullptr) {
          decider_->OnFallback(call, GateAnswer::kAllow, GateFallbackCause::kQueued);
        }
        continue;
      }
      e.seq = ++seq_;
      CallControl control(e.ingest_ns + options_.deadline_ns, options_.default_fallback);
      const int64_t read_ns = timed ? GateNowNs() : 0;
      if (timed) stages_.Observe(GateStageTimes::kReceive, since, read_ns);
      GateAnswer a;
      const bool ours = watchdog_->Decide(call, static_cast<uint64_t>(m->fd), &control, &a);
      const int64_t decided_ns = timed ? GateNowNs() : 0;
      if (timed) stages_.Observe(GateStageTimes::kDecide, read_ns, decided_ns);
      since = decided_ns;
      if (ours) {
        Respond(m->fd, a);
        if (timed) {
          since = GateNowNs();
          stages_.Observe(GateStageTimes::kAnswer, decided_ns, since);
        }
      }
      close(m->fd);
    }
  }
}

}  // namespace vigil::sensor
