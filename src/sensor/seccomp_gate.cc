#include "sensor/seccomp_gate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "sensor/seccomp_gate_read.h"

extern char** environ;

namespace vigil::sensor {
namespace {

// Linux 6.6's <linux/seccomp.h>, for older headers.
#ifdef SECCOMP_IOCTL_NOTIF_SET_FLAGS
constexpr unsigned long kIoctlNotifSetFlags = SECCOMP_IOCTL_NOTIF_SET_FLAGS;
#else
constexpr unsigned long kIoctlNotifSetFlags = SECCOMP_IOW(4, __u64);
#endif
#ifdef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
constexpr unsigned long kSyncWakeUp = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
#else
constexpr unsigned long kSyncWakeUp = 1UL << 0;
#endif

constexpr size_t kMaxString = 4096;
constexpr size_t kMaxArgs = 64;
constexpr size_t kMaxArgvBytes = 4096;
// Calls answered as the gate stops (SeccompGate::AnswerPendingAtStop): what is pending then, and
// what arrives meanwhile, up to this many (processes that keep calling cannot hold the stop).
constexpr int kMaxAnsweredAtStop = 4096;
// Failed receives in a row after which the gate stops serving (SeccompGate::Serve): a failure
// that persists is a listener the gate can no longer serve.
constexpr int kMaxReceiveFailuresInARow = 64;

// A listener that fails every receive with `err` from now on (closed, or not a listener).
bool ListenerBroken(int err) { return err == EBADF || err == ENOTTY; }

// The program's path: `name` itself when it holds a '/', else the first executable match in
// PATH (as execvp does it; an empty PATH entry means the current directory).
std::string Resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    struct stat st {};
    return stat(name.c_str(), &st) == 0 ? name : std::string();
  }
  const char* path_env = std::getenv("PATH");
  const std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

// The classic BPF program of a libseccomp filter that sends the gated calls to user space.
core::Result<std::vector<sock_filter>> BuildFilter() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return core::FailedPrecondition("libseccomp: seccomp_init failed");
  struct Release {
    scmp_filter_ctx c;
    ~Release() { seccomp_release(c); }
  } release{ctx};
  // Calls of another ABI (i386 through int 0x80, x32) would bypass the native rules.
  if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) {
    return core::FailedPrecondition("libseccomp: cannot set the bad-architecture action");
  }
  for (const char* name : {"execve", "execveat", "open", "openat", "openat2", "connect"}) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture (e.g. open on arm64)
    const int rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
    if (rc != 0) {
      return core::FailedPrecondition(std::string("libseccomp: cannot add a notify rule for ") +
                                      name + ": " + std::strerror(-rc) +
                                      " (user notification needs Linux 5.0 and libseccomp 2.5)");
    }
  }
  const int mfd = memfd_create("vigil-seccomp-filter", MFD_CLOEXEC);
  if (mfd < 0) return core::ErrnoError(errno, "memfd_create for the seccomp filter");
  struct Close {
    int fd;
    ~Close() { close(fd); }
  } close_mfd{mfd};
  const int rc = seccomp_export_bpf(ctx, mfd);
  if (rc != 0) return core::FailedPrecondition(std::string("libseccomp: export: ") + std::strerror(-rc));
  const off_t size = lseek(mfd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return core::Internal("libseccomp exported a filter of " + std::to_string(size) + " bytes");
  }
  std::vector<sock_filter> prog(static_cast<size_t>(size) / sizeof(sock_filter));
  if (pread(mfd, prog.data(), static_cast<size_t>(size), 0) != size) {
    return core::ErrnoError(errno, "reading the exported seccomp filter");
  }
  return prog;
}

// Messages from the child on the status socket.
constexpr char kMsgListener = 'L';  // carries the listener fd
constexpr char kMsgSetupFailed = 'S';  // + errno: installing the filter failed
constexpr char kMsgExecFailed = 'E';   // + errno: execve failed

struct ChildMsg {
  char kind;
  int err;
};

// Runs in the forked child: only async-signal-safe calls.
[[noreturn]] void ChildMain(int sock, const sock_fprog* prog, const char* path, char* const* argv) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
  if (fd < 0 && errno == EACCES) {
    // Without CAP_SYS_ADMIN the kernel requires no_new_privs (setuid programs then run unprivileged).
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
  }
  if (fd < 0) {
    const ChildMsg m{kMsgSetupFailed, errno};
    (void)!write(sock, &m, sizeof m);
    _exit(127);
  }
  ChildMsg m{kMsgListener, 0};
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  const int ifd = static_cast<int>(fd);
  std::memcpy(CMSG_DATA(c), &ifd, sizeof ifd);
  if (sendmsg(sock, &msg, 0) < 0) _exit(127);
  close(ifd);
  execve(path, argv, environ);  // the gate decides this one too
  const ChildMsg e{kMsgExecFailed, errno};
  (void)!write(sock, &e, sizeof e);
  _exit(errno == ENOENT ? 127 : 126);
}

// The link `name` of /proc/PID/ (cwd, fd/N) read into `out`; false when it cannot be read.
bool ReadProcLink(uint32_t pid, const char* name, std::string* out) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/%u/%s", pid, name);
  char buf[4096];
  const ssize_t n = readlink(link, buf, sizeof buf);
  if (n <= 0) return false;
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

// `path` made absolute against the caller's cwd (dirfd AT_FDCWD) or dirfd, lexically, into *out.
void Absolute(uint32_t pid, int dirfd, std::string_view path, std::string* out) {
  if (!path.empty() && path[0] == '/') {
    if (IsLexicallyNormalAbsolute(path)) {
      out->assign(path);
    } else {
      *out = std::filesystem::path(path).lexically_normal();
    }
    return;
  }
  std::string base;
  char name[32];
  if (dirfd == AT_FDCWD) {
    std::snprintf(name, sizeof name, "cwd");
  } else {
    std::snprintf(name, sizeof name, "fd/%d", dirfd);
  }
  if (!ReadProcLink(pid, name, &base)) {
    out->assign(path);
  } else if (path.empty()) {
    *out = std::move(base);
  } else {
    *out = (std::filesystem::path(base) / path).lexically_normal();
  }
}

bool ReadSockaddr(pid_t pid, uint64_t addr, uint64_t len, core::NetPayload* net,
                  std::string* path) {
  sockaddr_storage ss{};
  if (len < sizeof(sa_family_t)) return false;
  const size_t n = std::min<uint64_t>(len, sizeof ss);
  if (!ReadCallerMemory(pid, addr, &ss, n)) return false;
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET && n >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    net->daddr = text;
    net->dport = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6 && n >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    net->daddr = text;
    net->dport = ntohs(in6->sin6_port);
  } else if (ss.ss_family == AF_UNIX && n > offsetof(sockaddr_un, sun_path)) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    const size_t max = n - offsetof(sockaddr_un, sun_path);
    if (un->sun_path[0] != '\0') path->assign(un->sun_path, strnlen(un->sun_path, max));
  }
  return true;
}

}  // namespace

struct SeccompGate::Counters {
  std::atomic<uint64_t> calls{0}, allowed{0}, denied{0}, read_failures{0}, vanished{0},
      stop_answers{0}, receive_failures{0};
};

core::Result<std::unique_ptr<SeccompGate>> SeccompGate::Launch(const SeccompGateOptions& options,
                                                               GateDecider* decider) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return core::InvalidArgument("no program to run");
  }
  if (core::Status s = core::CheckRealtimePriority(options.realtime_priority); !s.ok()) {
    return s;
  }
  std::unique_ptr<SeccompGate> g(new SeccompGate());
  g->options_ = options;
  g->decider_ = decider;
  g->counters_ = std::make_unique<Counters>();
  g->stages_ = GateStageTimes(options.metrics, "seccomp");
  g->program_ = Resolve(options.argv[0]);
  if (g->program_.empty()) {
    return core::NotFound(options.argv[0] + (options.argv[0].find('/') != std::string::npos
                                                 ? ": no such file"
                                                 : ": not found in PATH"));
  }
  g->nr_execve_ = seccomp_syscall_resolve_name("execve");
  g->nr_execveat_ = seccomp_syscall_resolve_name("execveat");
  g->nr_open_ = seccomp_syscall_resolve_name("open");
  g->nr_openat_ = seccomp_syscall_resolve_name("openat");
  g->nr_openat2_ = seccomp_syscall_resolve_name("openat2");
  g->nr_connect_ = seccomp_syscall_resolve_name("connect");

  VIGIL_ASSIGN_OR_RETURN(std::vector<sock_filter> filter, BuildFilter());
  sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return core::ErrnoError(errno, "socketpair");
  }
  g->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (g->stop_fd_ < 0) {
    close(sv[0]);
    close(sv[1]);
    return core::ErrnoError(errno, "eventfd");
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return core::ErrnoError(errno, "fork");
  }
  if (pid == 0) {
    close(sv[0]);
    ChildMain(sv[1], &prog, g->program_.c_str(), argv.data());
  }
  close(sv[1]);
  g->pid_ = pid;
  g->status_fd_ = sv[0];

  // The first message: the listener, or why the filter could not be installed.
  ChildMsg m{};
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  cmsghdr* c = n == sizeof m ? CMSG_FIRSTHDR(&msg) : nullptr;
  if (m.kind != kMsgListener || c == nullptr || c->cmsg_type != SCM_RIGHTS) {
    int status = 0;
    waitpid(pid, &status, 0);
    g->pid_ = -1;
    if (m.kind == kMsgSetupFailed) {
      return core::FailedPrecondition(std::string("installing the seccomp filter: ") +
                                      std::strerror(m.err));
    }
    return core::Internal("the supervised child did not hand over the seccomp listener");
  }
  std::memcpy(&g->listener_, CMSG_DATA(c), sizeof(int));
  if (options.sync_wakeup) {
    if (ioctl(g->listener_, kIoctlNotifSetFlags, kSyncWakeUp) != 0) {
      const int err = errno;
      g->sync_wakeup_status_ = core::FailedPrecondition(
          std::string("synchronous wake-ups (SECCOMP_IOCTL_NOTIF_SET_FLAGS): ") +
          std::strerror(err) + (err == EINVAL || err == ENOTTY ? " (needs Linux 6.6)" : ""));
    }
  }

  SeccompGate* self = g.get();
  g->watchdog_ = std::make_unique<GateWatchdog>(
      [self](const GateCall&, uint64_t token, GateAnswer a) { self->Answer(token, a); }, decider,
      options.realtime_priority);
  g->thread_ = core::StartRealtimeThread(
      options.realtime_priority, [self] { self->Serve(); }, &g->priority_status_);
  return g;
}

SeccompGate::~SeccompGate() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    stopping_.store(true, std::memory_order_release);
    thread_.join();
  }
  watchdog_.reset();
  for (int fd : {listener_, status_fd_, stop_fd_}) {
    if (fd >= 0) close(fd);
  }
}

SeccompExit SeccompGate::Wait() {
  SeccompExit out;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.exit_code = 128 + WTERMSIG(status);
  ChildMsg m{};
  if (recv(status_fd_, &m, sizeof m, MSG_DONTWAIT) == sizeof m && m.kind == kMsgExecFailed) {
    out.exec_errno = m.err;
  }
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  stopping_.store(true, std::memory_order_release);  // after the write: the thread sees it
  if (thread_.joinable()) thread_.join();
  ReleaseListener();
  return out;
}

// The serving thread has answered what was pending and ended; from now on the kernel answers a
// filtered call with ENOSYS as soon as no descriptor refers to the listener. The descriptor number
// is kept (pointing at /dev/null) rather than closed: a watchdog answer still in flight then fails
// harmlessly (counted as vanished) instead of reaching whatever file would reuse the number.
void SeccompGate::ReleaseListener() {
  if (listener_ < 0 || released_) return;
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return;  // keeps the listener until the destructor: later calls wait until then
  released_ = dup3(null_fd, listener_, O_CLOEXEC) >= 0;
  close(null_fd);
}

int SeccompGate::Receive(void* notif) {
  if (options_.receive) return options_.receive(listener_, notif);
  return ioctl(listener_, SECCOMP_IOCTL_NOTIF_RECV, notif);
}

core::Status SeccompGate::serve_status() const {
  const int err = serve_errno_.load(std::memory_order_acquire);
  if (err == 0) return core::Status();
  const std::string how = ListenerBroken(err)
                              ? " (the listener is broken)"
                              : " (" + std::to_string(kMaxReceiveFailuresInARow) + " times in a row)";
  return core::Unavailable(
      std::string("seccomp gate stopped serving: SECCOMP_IOCTL_NOTIF_RECV failed: ") +
      std::strerror(err) + how + "; later supervised calls fail with ENOSYS");
}

SeccompGateStats SeccompGate::stats() const {
  SeccompGateStats s;
  s.calls = counters_->calls.load();
  s.allowed = counters_->allowed.load();
  s.denied = counters_->denied.load();
  s.read_failures = counters_->read_failures.load();
  s.vanished = counters_->vanished.load();
  s.stop_answers = counters_->stop_answers.load();
  s.receive_failures = counters_->receive_failures.load();
  s.deadline_answers = watchdog_ ? watchdog_->deadline_answers() : 0;
  return s;
}

void SeccompGate::Answer(uint64_t id, GateAnswer a) {
  seccomp_notif_resp resp{};
  resp.id = id;
  if (a == GateAnswer::kAllow) {
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  } else {
    resp.error = -EPERM;
  }
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0) {
    counters_->vanished.fetch_add(1, std::memory_order_relaxed);  // ENOENT: the caller died
    return;
  }
  (a == GateAnswer::kAllow ? counters_->allowed : counters_->denied)
      .fetch_add(1, std::memory_order_relaxed);
}

void SeccompGate::Serve() {
  int failures_in_a_row = 0;
  while (true) {
    const short revents = WaitReadable(listener_, stop_fd_);
    if (revents == 0) {  // stopped (or poll failed): answer what is pending, then let go
      AnswerPendingAtStop();
      return;
    }
    if ((revents & POLLIN) == 0) return;  // no process holds the filter any more
    const int64_t woken = stages_.enabled() ? GateNowNs() : 0;
    seccomp_notif req{};
    if (Receive(&req) != 0) {
      const int err = errno;
      if (err == EINTR || err == ENOENT) continue;  // ENOENT: the caller died meanwhile
      counters_->receive_failures.fetch_add(1, std::memory_order_relaxed);
      if (ListenerBroken(err) || ++failures_in_a_row >= kMaxReceiveFailuresInARow) {
        // Stop as at the program's exit: what can be answered is, and the listener is let go so
        // that the calls that cannot be fail with ENOSYS instead of waiting for an answer.
        serve_errno_.store(err, std::memory_order_release);
        stopping_.store(true, std::memory_order_release);
        if (!ListenerBroken(err)) AnswerPendingAtStop();
        ReleaseListener();
        return;
      }
      // A moment for whatever failed to clear (the listener stays readable: no busy loop), cut
      // short by a stop.
      pollfd p{stop_fd_, POLLIN, 0};
      (void)poll(&p, 1, 1);
      continue;
    }
    failures_in_a_row = 0;
    Handle(&req, woken);
  }
}

void SeccompGate::AnswerPendingAtStop() {
  for (int answered = 0; answered < kMaxAnsweredAtStop; ++answered) {
    pollfd p{listener_, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0 || (p.revents & POLLIN) == 0) return;  // nothing pending
    seccomp_notif req{};
    if (Receive(&req) != 0) {
      if (errno == EINTR || errno == ENOENT) continue;  // ENOENT: the caller died meanwhile
      counters_->receive_failures.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    counters_->calls.fetch_add(1, std::memory_order_relaxed);
    // Read for the record only: what the call was, not to decide it.
    GateCall call;
    call.event.ingest_ns = core::SystemClock::Get().MonotonicNanos();
    if (ReadCall(&req, &call) == ReadResult::kGone) {
      counters_->vanished.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const GateAnswer a = decider_->UndecidedAnswer(options_.default_fallback);
    Answer(req.id, a);
    counters_->stop_answers.fetch_add(1, std::memory_order_relaxed);
    decider_->OnFallback(call, a, GateFallbackCause::kStopping);
  }
}

SeccompGate::ReadResult SeccompGate::ReadCall(const void* request, GateCall* call) {
  const auto* req = static_cast<const seccomp_notif*>(request);
  core::Event& e = call->event;
  e.source = core::EventSource::kSeccomp;
  e.seq = ++seq_;
  e.time_ns = core::SystemClock::Get().NowUnixNanos();
  e.proc.pid = req->pid;
  e.proc.tid = req->pid;
  const bool read = ReadArguments(req->pid, req->data.nr, req->data.args, call);
  // The pid named the caller when the notification was queued. Only if the notification is still
  // pending now, after the last read, was everything read the caller's and not a later process's
  // that took its pid (seccomp_gate_read.h).
  uint64_t id = req->id;
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0) return ReadResult::kGone;
  return read ? ReadResult::kRead : ReadResult::kUnreadable;
}

bool SeccompGate::ReadArguments(uint32_t pid, int nr, const unsigned long long* a, GateCall* call) {
  core::Event& e = call->event;
  const auto caller = static_cast<pid_t>(pid);
  char buf[kMaxString];
  size_t len = 0;
  if (nr == nr_execve_ || nr == nr_execveat_) {
    e.kind = core::EventKind::kProcessExec;
    const bool at = nr == nr_execveat_;
    const int dirfd = at ? static_cast<int>(a[0]) : AT_FDCWD;
    if (!ReadCallerString(caller, at ? a[1] : a[0], buf, sizeof buf, &len)) {
      if (!(at && (a[4] & AT_EMPTY_PATH) != 0)) return false;
      len = 0;
    }
    Absolute(pid, dirfd, std::string_view(buf, len), &e.path);
    // The argv array, read a page's worth of pointers at a time, then each string.
    const uint64_t argv_addr = at ? a[2] : a[1];
    uint64_t ptrs[kMaxArgs];
    size_t have = 0, bytes = 0;
    for (size_t i = 0; argv_addr != 0; ++i) {
      if (i == kMaxArgs || bytes >= kMaxArgvBytes) {
        call->argv_truncated = true;
        break;
      }
      if (i == have) {
        const uint64_t at_addr = argv_addr + i * sizeof(uint64_t);
        const size_t to_page = (4096 - at_addr % 4096) / sizeof(uint64_t);
        const size_t n = std::min(kMaxArgs - i, std::max<size_t>(to_page, 1));
        if (!ReadCallerMemory(caller, at_addr, &ptrs[i], n * sizeof(uint64_t))) return false;
        have = i + n;
      }
      if (ptrs[i] == 0) break;
      if (!ReadCallerString(caller, ptrs[i], buf, kMaxArgvBytes - bytes, &len)) {
        call->argv_truncated = true;
        break;
      }
      bytes += len + 1;
      call->argv.emplace_back(buf, len);
    }
  } else if (nr == nr_open_ || nr == nr_openat_ || nr == nr_openat2_) {
    e.kind = core::EventKind::kFileOpen;
    const bool at = nr != nr_open_;
    if (!ReadCallerString(caller, at ? a[1] : a[0], buf, sizeof buf, &len)) return false;
    Absolute(pid, at ? static_cast<int>(a[0]) : AT_FDCWD, std::string_view(buf, len), &e.path);
  } else if (nr == nr_connect_) {
    e.kind = core::EventKind::kNetConnect;
    if (!ReadSockaddr(caller, a[1], a[2], &e.net, &e.path)) return false;
  } else {
    return false;
  }
  return true;
}

void SeccompGate::Handle(void* request, int64_t woken_ns) {
  const auto* req = static_cast<const seccomp_notif*>(request);
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  GateCall call;
  call.event.ingest_ns = core::SystemClock::Get().MonotonicNanos();
  CallControl control(call.event.ingest_ns + options_.deadline_ns, options_.default_fallback);
  const ReadResult read = ReadCall(req, &call);
  if (read == ReadResult::kGone) {
    counters_->vanished.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (read == ReadResult::kUnreadable) {
    counters_->read_failures.fetch_add(1, std::memory_order_relaxed);
    const GateAnswer a = decider_->UndecidedAnswer(control.fallback());
    Answer(req->id, a);
    decider_->OnFallback(call, a, GateFallbackCause::kUnreadable);
    return;
  }
  const bool timed = stages_.enabled();
  const int64_t read_ns = timed ? GateNowNs() : 0;
  stages_.Observe(GateStageTimes::kReceive, woken_ns, read_ns);
  GateAnswer a;
  const bool ours = watchdog_->Decide(call, req->id, &control, &a);
  const int64_t decided_ns = timed ? GateNowNs() : 0;
  stages_.Observe(GateStageTimes::kDecide, read_ns, decided_ns);
  if (!ours) return;  // the watchdog answered
  Answer(req->id, a);
  if (timed) stages_.Observe(GateStageTimes::kAnswer, decided_ns, GateNowNs());
}

}  // namespace vigil::sensor
