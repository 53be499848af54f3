#include "sensor/ebpf_sensor.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <utility>

#if VIGIL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>

#include "abi/vigil_events.h"
#include "sensor/tracefs.h"
#include "vigil_sensor.skel.h"
#endif

namespace vigil::sensor {

std::string_view EbpfLostCauseName(EbpfLostCause cause) {
  switch (cause) {
    case EbpfLostCause::kRingBufferFull:
      return "ringbuf_full";
    case EbpfLostCause::kStringRead:
      return "string_read_failed";
    case EbpfLostCause::kAddressRead:
      return "address_read_failed";
    case EbpfLostCause::kFiltered:
      return "filtered";
    case EbpfLostCause::kPendingFull:
      return "pending_full";
    case EbpfLostCause::kArgsTruncated:
      return "args_truncated";
    case EbpfLostCause::kBadRecord:
      return "bad_record";
  }
  return "unknown";
}

core::Result<ReadOutcome> EbpfSensor::Next(core::Event* out) {
  while (true) {
    core::Result<PollOutcome> r = NextFor(out, options_.poll_timeout);
    if (!r.has_value()) return r.error();
    if (*r == PollOutcome::kEvent) return ReadOutcome::kEvent;
    if (*r == PollOutcome::kEnd) return ReadOutcome::kEnd;
  }
}

#if VIGIL_HAVE_BPF

namespace {

// Slot i of a pass, constructed when first needed. Precondition: i <= slots.size() and i is
// below the capacity reserved at Load, so slots already handed out are never moved.
template <typename Slots>
auto& SlotAt(Slots& slots, size_t i) {
  assert(i <= slots.size() && i < slots.capacity());
  if (i == slots.size()) slots.emplace_back();
  return slots[i];
}

// The ABI as user space sees it; the BTF of the compiled object is checked against the same
// numbers in tests/unit/sensor_ebpf/ebpf_abi_test.cc.
static_assert(sizeof(vigil_event_header) == 56);
static_assert(offsetof(vigil_event_header, ts_ns) == 8);
static_assert(offsetof(vigil_event_header, cgroup_id) == 32);
static_assert(offsetof(vigil_event_header, comm) == 40);
static_assert(sizeof(vigil_syscall_call) == 16);
static_assert(sizeof(vigil_syscall_batch) == 64 + 16 * VIGIL_SYSCALL_BATCH);
static_assert(offsetof(vigil_syscall_batch, calls) == 64);
static_assert(sizeof(vigil_exec_event) == 864);
static_assert(offsetof(vigil_exec_event, cap_effective) == 80);
static_assert(sizeof(vigil_fork_event) == 64);
static_assert(sizeof(vigil_exit_event) == 64);
static_assert(sizeof(vigil_file_event) == 592);
static_assert(sizeof(vigil_net_event) == 96);
static_assert(sizeof(vigil_cred_event) == 104);
static_assert(sizeof(vigil_mount_event) == 624);
static_assert(sizeof(vigil_config) == 20);
static_assert(sizeof(vigil_comm_key) == VIGIL_COMM_LEN);

static_assert(static_cast<uint32_t>(kTypedExec) == VIGIL_TYPED_EXEC);
static_assert(static_cast<uint32_t>(kTypedMount) == VIGIL_TYPED_MOUNT);
static_assert(static_cast<uint32_t>(kTypedAll) == VIGIL_TYPED_ALL);
static_assert(static_cast<int>(EbpfLostCause::kRingBufferFull) == VIGIL_CNT_RINGBUF_FULL);
static_assert(static_cast<int>(EbpfLostCause::kArgsTruncated) == VIGIL_CNT_ARGS_TRUNCATED);
static_assert(static_cast<int>(EbpfLostCause::kBadRecord) == VIGIL_CNT_MAX);
static_assert(kEbpfLostCauseCount == VIGIL_CNT_MAX + 1);
static_assert(static_cast<int>(EbpfRecordType::kMount) == VIGIL_EV_MOUNT);

constexpr char kBtfPath[] = "/sys/kernel/btf/vmlinux";
constexpr int kBatchFull = -ENOSPC;  // returned by the ring buffer callback to end a pass
// The reader's wait between looks at the ring while records come, and the BPF program's least
// interval between forced wake-ups (wakeup_interval_ns). One look kMaxSilentWait after the last
// pass that found records, the wait grows to EbpfOptions::idle_poll (while the stream is off):
// a record that did not force a wake-up came less than kMaxSilentWait after one that did, whose
// pass was that last one, so that look finds it.
constexpr std::chrono::milliseconds kMaxSilentWait{10};
constexpr int64_t kBusyLooksNs = 10'000'000;
// After the stream goes off, the context-switch program stays at least this long (a program that
// read the settings before they changed has long finished by then: they run for microseconds).
constexpr int64_t kFlushDrainNs = 20'000'000;
constexpr int64_t kFlushDrainBusyNs = 1'000'000'000;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;
constexpr ino_t kInitialPidNamespaceInode = 0xEFFFFFFC;  // PROC_PID_INIT_INO

// x86_64 numbers that the typed records map onto core kinds.
constexpr uint32_t kNrOpen = 2, kNrOpenat = 257, kNrOpenat2 = 437, kNrConnect = 42, kNrSocket = 41;

// libbpf messages (warnings and errors) of the Open() in progress on this thread.
thread_local std::string* libbpf_log = nullptr;

int CaptureLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || libbpf_log == nullptr) return 0;
  char line[512];
  int n = std::vsnprintf(line, sizeof(line), format, args);
  if (n > 0 && libbpf_log->size() < 16384) libbpf_log->append(line);
  return 0;
}

// The last few non-empty lines of a libbpf/verifier log, on one line.
std::string LogTail(const std::string& log, size_t lines) {
  std::vector<std::string_view> parts;
  std::string_view rest(log);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty()) parts.push_back(line);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  std::string out;
  size_t first = parts.size() > lines ? parts.size() - lines : 0;
  for (size_t i = first; i < parts.size(); ++i) {
    if (!out.empty()) out += " | ";
    out += parts[i];
  }
  return out.empty() ? "no libbpf message" : out;
}

int64_t ClockNs(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

core::Status CheckPrivileges() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) {
    return core::FailedPrecondition(std::string("ebpf sensor: capget failed: ") +
                                    std::strerror(errno));
  }
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1u; };
  bool admin = has(kCapSysAdmin);
  if ((has(kCapBpf) && has(kCapPerfmon)) || admin) return core::Status::Ok();
  std::string who = geteuid() == 0 ? "root without the capabilities"
                                   : "not root (euid " + std::to_string(geteuid()) + ")";
  return core::FailedPrecondition(
      "ebpf sensor: " + who +
      ": loading tracing BPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); run "
      "the agent as root, or grant those capabilities (deploy/ systemd unit: "
      "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_SYS_RESOURCE)");
}

void FillComm(vigil_comm_key* key, std::string_view comm) {
  std::memset(key, 0, sizeof(*key));
  std::memcpy(key->comm, comm.data(), std::min(comm.size(), sizeof(key->comm) - 1));
}

// The value of a filter map entry for a key in the exclude and/or include set.
uint32_t FilterValue(bool excluded, bool included) {
  return (excluded ? static_cast<uint32_t>(VIGIL_FILTER_EXCLUDE) : 0u) |
         (included ? static_cast<uint32_t>(VIGIL_FILTER_INCLUDE) : 0u);
}

template <size_t N>
void AssignString(std::string* out, const char (&buf)[N]) {
  out->assign(buf, strnlen(buf, N));
}

}  // namespace

EbpfSensor::EbpfSensor(const EbpfOptions& options)
    : options_(options),
      syscall_stream_(options.syscall_stream),
      typed_mask_(options.typed_events) {}

EbpfSensor::~EbpfSensor() {
  for (bpf_link* l : per_call_links_) bpf_link__destroy(l);
  rb_.reset();  // unmapped before the map is closed
  if (skel_ != nullptr) vigil_sensor_bpf__destroy(skel_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

core::Result<std::unique_ptr<EbpfSensor>> EbpfSensor::Open(const EbpfOptions& options) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t rb = options.ring_buffer_bytes;
  if (rb < page || (rb & (rb - 1)) != 0 || rb > (size_t{1} << 30)) {
    return core::InvalidArgument("ebpf sensor: ring_buffer_bytes " + std::to_string(rb) +
                                 ": must be a power of two between the page size (" +
                                 std::to_string(page) + ") and 1 GiB");
  }
  if (options.batch == 0) return core::InvalidArgument("ebpf sensor: batch must be at least 1");
  if (options.idle_poll < kMaxSilentWait || options.idle_poll > std::chrono::minutes(1)) {
    return core::InvalidArgument("ebpf sensor: idle_poll " +
                                 std::to_string(options.idle_poll.count()) +
                                 " ms: must be between 10 ms and 60 s");
  }
  if ((options.typed_events & ~static_cast<uint32_t>(kTypedAll)) != 0) {
    return core::InvalidArgument("ebpf sensor: typed_events has unknown bits");
  }
  VIGIL_RETURN_IF_ERROR(CheckPrivileges());
  if (access(kBtfPath, R_OK) != 0) {
    return core::FailedPrecondition(
        std::string("ebpf sensor: kernel BTF not readable at ") + kBtfPath + " (" +
        std::strerror(errno) +
        "): this kernel was built without CONFIG_DEBUG_INFO_BTF=y, which CO-RE programs need; "
        "boot a kernel with BTF (Debian 12's stock kernels have it) or use another sensor");
  }
  std::unique_ptr<EbpfSensor> sensor(new EbpfSensor(options));
  VIGIL_RETURN_IF_ERROR(sensor->Load());
  return sensor;
}

core::Status EbpfSensor::Load() {
  // On kernels that charge BPF memory to the memory cgroup the limit does not matter; elsewhere
  // libbpf reports the failure at load time.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MEMLOCK, &unlimited) != 0) {
    rlimit cur{};
    getrlimit(RLIMIT_MEMLOCK, &cur);
    warnings_.push_back(std::string("could not raise RLIMIT_MEMLOCK (") + std::strerror(errno) +
                        "; it stays " + std::to_string(cur.rlim_cur) +
                        " bytes): continuing, as kernels since 5.11 charge BPF memory to the "
                        "memory cgroup instead");
  }

  // Self-exclusion and the pids in events are the kernel's (initial pid namespace) view.
  struct stat ns {};
  if (stat("/proc/self/ns/pid", &ns) == 0 && ns.st_ino != kInitialPidNamespaceInode) {
    warnings_.push_back(
        "running in a child pid namespace: events carry host pids and the agent's own activity "
        "is not excluded; run the agent in the host pid namespace (Kubernetes: hostPID: true)");
  }

  std::string log;
  libbpf_log = &log;
  libbpf_print_fn_t previous = libbpf_set_print(CaptureLibbpf);
  struct Restore {
    libbpf_print_fn_t fn;
    ~Restore() {
      libbpf_set_print(fn);
      libbpf_log = nullptr;
    }
  } restore{previous};

  skel_ = vigil_sensor_bpf__open();
  if (skel_ == nullptr) {
    return core::FailedPrecondition("ebpf sensor: opening the BPF object failed (" +
                                    std::string(std::strerror(errno)) + "): " + LogTail(log, 3));
  }
  skel_->rodata->agent_tgid = static_cast<uint32_t>(getpid());
  skel_->rodata->wakeup_bytes = options_.ring_buffer_bytes / 8;
  skel_->rodata->wakeup_interval_ns =
      static_cast<uint64_t>(std::chrono::nanoseconds(kMaxSilentWait).count());
  if (int err = bpf_map__set_max_entries(skel_->maps.events,
                                         static_cast<uint32_t>(options_.ring_buffer_bytes));
      err != 0) {
    return core::InvalidArgument("ebpf sensor: ring buffer size " +
                                 std::to_string(options_.ring_buffer_bytes) +
                                 " refused: " + std::strerror(-err));
  }
  if (int err = vigil_sensor_bpf__load(skel_); err != 0) {
    int e = -err;
    if (e == EPERM || e == EACCES) {
      return core::FailedPrecondition(
          std::string("ebpf sensor: the kernel refused to load BPF programs (") + std::strerror(e) +
          "): check kernel lockdown (/sys/kernel/security/lockdown), a container or seccomp "
          "policy that blocks bpf(2), and kernel.unprivileged_bpf_disabled; libbpf: " +
          LogTail(log, 3));
    }
    return core::FailedPrecondition(std::string("ebpf sensor: loading BPF programs failed (") +
                                    std::strerror(e) + "): " + LogTail(log, 4));
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    VIGIL_RETURN_IF_ERROR(WriteSettingsLocked());  // before any program runs
  }
  for (const auto& c : options_.exclude_comms) VIGIL_RETURN_IF_ERROR(AddExcludeComm(c));
  for (const auto& c : options_.include_comms) VIGIL_RETURN_IF_ERROR(AddIncludeComm(c));
  for (uint64_t c : options_.exclude_cgroups) VIGIL_RETURN_IF_ERROR(AddExcludeCgroup(c));
  for (uint64_t c : options_.include_cgroups) VIGIL_RETURN_IF_ERROR(AddIncludeCgroup(c));
  for (uint32_t u : options_.exclude_uids) VIGIL_RETURN_IF_ERROR(AddExcludeUid(u));
  for (uint32_t u : options_.include_uids) VIGIL_RETURN_IF_ERROR(AddIncludeUid(u));

  struct {
    bpf_program* prog;
    bpf_link** link;
  } attach[] = {
      {skel_->progs.vigil_sched_exec, &skel_->links.vigil_sched_exec},
      {skel_->progs.vigil_sched_fork, &skel_->links.vigil_sched_fork},
      {skel_->progs.vigil_sched_exit, &skel_->links.vigil_sched_exit},
  };
  for (auto& a : attach) {
    *a.link = bpf_program__attach(a.prog);
    if (*a.link == nullptr) {
      int e = errno;
      return core::FailedPrecondition(
          std::string("ebpf sensor: attaching program ") + bpf_program__name(a.prog) + " to " +
          bpf_program__section_name(a.prog) + " failed (" + std::strerror(e) +
          "): the kernel lacks or refuses this attach point; libbpf: " + LogTail(log, 2));
    }
  }

  // The per-call tracepoints (the stream-off state's typed records) need tracefs.
  const TracefsCheck tracefs = EnsureTracefs(kDebugfsTracing, kTracefs, options_.mount_tracefs);
  if (tracefs.mounted_now) {
    warnings_.push_back(std::string("tracefs was not mounted: mounted it at ") + tracefs.path +
                        " for the per-call tracepoints (ebpf option mount_tracefs)");
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    std::string fallback;
    if (core::Status st = ApplyStreamLocked(&fallback); !st.ok()) {
      return core::FailedPrecondition(st.message() + "; libbpf: " + LogTail(log, 2));
    }
    if (!fallback.empty()) {
      warnings_.push_back("typed records come from the raw sys_exit program, which runs on "
                          "every system call, although the syscall stream is off: " + fallback +
                          (tracefs.available ? std::string()
                                             : "; " + tracefs.error +
                                                   " (mount -t tracefs nodev /sys/kernel/tracing "
                                                   "makes the per-call tracepoints available)"));
    }
  }

  auto reader = RingReader::Open(bpf_map__fd(skel_->maps.events), options_.ring_buffer_bytes,
                                 &EbpfSensor::OnRecordThunk, this);
  if (!reader.has_value()) {
    return core::FailedPrecondition("ebpf sensor: ring buffer setup failed: " +
                                    reader.error().message());
  }
  rb_ = std::move(reader).value();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return core::Internal(std::string("ebpf sensor: epoll/eventfd: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = 0;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, bpf_map__fd(skel_->maps.events), &ev) != 0) {
    return core::Internal(std::string("ebpf sensor: epoll_ctl(ring buffer): ") +
                          std::strerror(errno));
  }
  ev.data.u32 = 1;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return core::Internal(std::string("ebpf sensor: epoll_ctl(eventfd): ") + std::strerror(errno));
  }
  // Room for a pass, constructed slot by slot as passes need them (SlotAt): a pass is seldom
  // full, and ~4,000 constructed events were ~2.7 MB resident for nothing.
  slots_.reserve(options_.batch + VIGIL_SYSCALL_BATCH);
  realtime_offset_ns_ = ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_MONOTONIC);
  return core::Status::Ok();
}

void EbpfSensor::Stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = write(wake_fd_, &one, sizeof(one));
    (void)n;  // EAGAIN means a wake-up is already pending
  }
}

core::Result<EbpfSensor::PollOutcome> EbpfSensor::NextFor(core::Event* out,
                                                          std::chrono::milliseconds timeout) {
  if (ended_ || stop_requested_.load(std::memory_order_acquire)) {
    ended_ = true;
    return PollOutcome::kEnd;
  }
  if (head_ == count_) {
    head_ = count_ = 0;
    // Stream batches do not wake us; typed and lifecycle records do, but at most every
    // kMaxSilentWait (wakeup_flag in the BPF program). So while records come, and while the stream
    // is on, the ring is looked at every kMaxSilentWait; once a look kMaxSilentWait after the last
    // records found none, with the stream off, every idle_poll: a record after that forces a
    // wake-up, and one that did not force it followed one that did (and woke us) by less than
    // kMaxSilentWait, so that look found it.
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (flush_drain_.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lock(mu_);
        TryDetachFlushLocked();
      }
      ingest_ns_ = ClockNs(CLOCK_MONOTONIC);
      const int64_t n = rb_->Consume();
      if (n < 0 && n != kBatchFull) {
        return core::Internal(std::string("ebpf sensor: consuming the ring buffer: ") +
                              std::strerror(static_cast<int>(-n)));
      }
      if (count_ > 0) {
        last_records_ns_ = ingest_ns_;
        break;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return PollOutcome::kTimeout;
      // Draining, the reader looks every kMaxSilentWait for a second (a busy thread that keeps
      // its CPU holds its batch until it switches), then every idle_poll.
      const bool busy = stream_on_.load(std::memory_order_relaxed) ||
                        (flush_drain_.load(std::memory_order_relaxed) &&
                         ingest_ns_ - stream_off_ns_.load(std::memory_order_relaxed) <
                             kFlushDrainBusyNs) ||
                        ingest_ns_ - last_records_ns_ < kBusyLooksNs;
      epoll_event events[2];
      const auto wait = std::min(left, busy ? kMaxSilentWait : options_.idle_poll);
      const int wait_ms = static_cast<int>(wait.count());
      const int ready = epoll_wait(epoll_fd_, events, 2, wait_ms);
      if (ready < 0 && errno != EINTR) {
        return core::Internal(std::string("ebpf sensor: epoll_wait: ") + std::strerror(errno));
      }
      if (stop_requested_.load(std::memory_order_acquire)) {
        ended_ = true;
        return PollOutcome::kEnd;
      }
      for (int i = 0; i < ready; ++i) {
        if (events[i].data.u32 != 1) continue;
        // Woken because the stream came on: look every kMaxSilentWait from now (a stop was
        // seen above; its flag is set before its write).
        uint64_t value = 0;
        ssize_t got = read(wake_fd_, &value, sizeof(value));
        (void)got;  // EAGAIN: nothing to drain
        last_records_ns_ = ClockNs(CLOCK_MONOTONIC);
      }
    }
  }
  Slot& slot = slots_[head_++];
  if (slot.bad) {
    slot.bad = false;
    return core::DataLoss(std::move(slot.bad_reason));
  }
  // One move rather than a swap (three); every field of the slot is rewritten before reuse.
  *out = std::move(slot.event);
  detail_ = &slot.detail;
  return PollOutcome::kEvent;
}

int EbpfSensor::OnRecordThunk(void* ctx, const void* data, size_t size) {
  return static_cast<EbpfSensor*>(ctx)->OnRecord(data, size);
}

// Fills the fields that every event of a record shares (from its header) and resets the rest.
void EbpfSensor::StartSlot(Slot& slot, const vigil_event_header* hdr, uint64_t ts_ns) {
  core::Event& e = slot.event;
  EbpfEventDetail& d = slot.detail;
  e.source = core::EventSource::kEbpf;
  e.kind = core::EventKind::kSyscall;
  e.seq = ++seq_;
  e.time_ns = static_cast<int64_t>(ts_ns) + realtime_offset_ns_;
  e.ingest_ns = ingest_ns_;
  e.host.clear();
  e.stream.clear();
  e.proc.pid = hdr->tgid;
  e.proc.tid = hdr->pid;
  e.proc.ppid = hdr->ppid;
  e.proc.uid = hdr->uid;
  AssignString(&e.proc.comm, hdr->comm);
  e.proc.exe.clear();
  e.syscall = core::SyscallPayload{};
  e.path.clear();
  e.net.daddr.clear();
  e.net.dport = 0;
  e.net.protocol = 0;
  e.child_pid = 0;
  e.has_ret = false;
  e.ret = 0;
  e.cgroup_id = hdr->cgroup_id;
  e.flags = 0;
  e.mode = 0;
  e.path2.clear();
  e.args = {};
  e.proc.loginuid = core::kNoLoginUid;
  e.proc.tty = 0;
  e.proc.has_caps = false;
  e.proc.cap_effective = 0;
  e.proc.cap_permitted = 0;
  e.syscall_run.clear();

  d.type = static_cast<EbpfRecordType>(hdr->type);
  d.record_bytes = hdr->size;
  d.has_ret = false;
  d.ret = 0;
  d.nr = 0;
  d.cpu = hdr->cpu;
  d.cgroup_id = hdr->cgroup_id;
  d.fd = -1;
  d.flags = 0;
  d.mode = 0;
  d.path2.clear();
  d.fstype.clear();
  d.argv.clear();
  d.child_pid = 0;
  d.exit_code = 0;
  d.family = 0;
  d.args = {};
  d.i386 = false;
}

void EbpfSensor::AddRuns(const vigil_syscall_batch* r) {
  uint32_t begin = 0;
  while (begin < r->count) {
    const uint32_t arch_bit = r->calls[begin].nr & VIGIL_NR_I386;
    uint32_t end = begin + 1;
    while (end < r->count && (r->calls[end].nr & VIGIL_NR_I386) == arch_bit) ++end;
    const vigil_syscall_call& last = r->calls[end - 1];
    Slot& slot = SlotAt(slots_, count_++);
    seq_ += end - begin - 1;  // StartSlot adds the last call's one
    StartSlot(slot, &r->hdr, r->hdr.ts_ns + last.ts_delta_ns);
    const bool i386 = arch_bit != 0;
    const uint32_t nr = last.nr & ~VIGIL_NR_I386;
    slot.event.syscall = {i386 ? core::Arch::kI386 : core::Arch::kX86_64, static_cast<int32_t>(nr)};
    slot.event.has_ret = slot.detail.has_ret = true;
    slot.event.ret = slot.detail.ret = last.ret;
    slot.detail.nr = nr;
    slot.detail.i386 = i386;
    std::vector<int32_t>& run = slot.event.syscall_run;
    run.resize(end - begin);
    for (uint32_t i = begin; i < end; ++i) {
      run[i - begin] = static_cast<int32_t>(r->calls[i].nr & ~VIGIL_NR_I386);
    }
    begin = end;
  }
}

int EbpfSensor::OnRecord(const void* data, size_t size) {
  // A pass ends once it holds more than options_.batch slots: the next record might not fit (a
  // syscall batch takes up to VIGIL_SYSCALL_BATCH slots; slots_ has room for that many beyond
  // options_.batch).
  auto done = [&] { return count_ > options_.batch ? kBatchFull : 0; };
  const auto* hdr = static_cast<const vigil_event_header*>(data);
  auto bad = [&](const char* why) {
    bad_records_.fetch_add(1, std::memory_order_relaxed);
    Slot& slot = SlotAt(slots_, count_++);
    slot.bad = true;
    slot.bad_reason = "ebpf ring buffer: record of " + std::to_string(size) + " bytes";
    if (size >= sizeof(vigil_event_header)) {
      slot.bad_reason += ", type " + std::to_string(hdr->type);
    }
    slot.bad_reason += ": ";
    slot.bad_reason += why;
    slot.bad_reason += "; skipped";
    return done();
  };
  if (size < sizeof(vigil_event_header)) return bad("shorter than the header");
  if (hdr->size != size) return bad("header size disagrees with the record length");

  if (hdr->type == VIGIL_EV_SYSCALLS) {
    constexpr size_t kCallsAt = offsetof(vigil_syscall_batch, calls);
    if (size < kCallsAt) return bad("syscall batch shorter than its count");
    const auto* r = static_cast<const vigil_syscall_batch*>(data);
    if (r->count == 0 || r->count > VIGIL_SYSCALL_BATCH ||
        size != kCallsAt + r->count * sizeof(vigil_syscall_call)) {
      return bad("syscall batch size disagrees with its count");
    }
    stream_calls_.fetch_add(r->count, std::memory_order_relaxed);
    if (options_.syscall_runs) {
      AddRuns(r);
      return done();
    }
    for (uint32_t i = 0; i < r->count; ++i) {
      const vigil_syscall_call& c = r->calls[i];
      Slot& slot = SlotAt(slots_, count_++);
      StartSlot(slot, hdr, hdr->ts_ns + c.ts_delta_ns);
      const bool i386 = (c.nr & VIGIL_NR_I386) != 0;
      const uint32_t nr = c.nr & ~VIGIL_NR_I386;
      slot.event.syscall = {i386 ? core::Arch::kI386 : core::Arch::kX86_64,
                            static_cast<int32_t>(nr)};
      slot.event.has_ret = slot.detail.has_ret = true;
      slot.event.ret = slot.detail.ret = c.ret;
      slot.detail.nr = nr;
      slot.detail.i386 = i386;
    }
    return done();
  }

  Slot& slot = SlotAt(slots_, count_);  // taken below, or by bad()
  StartSlot(slot, hdr, hdr->ts_ns);
  core::Event& e = slot.event;
  EbpfEventDetail& d = slot.detail;

  // Typed records without a kind of their own are kTypedCall (never kSyscall: the stream
  // already has that call); the stream's records are kSyscall.
  auto as_syscall = [&](uint32_t nr) {
    e.kind = core::EventKind::kSyscall;
    e.syscall.arch = core::Arch::kX86_64;
    e.syscall.nr = static_cast<int32_t>(nr);
  };
  auto as_typed_call = [&](uint32_t nr) {
    as_syscall(nr);
    e.kind = core::EventKind::kTypedCall;
  };
  auto set_ret = [&](int64_t value) {
    d.has_ret = e.has_ret = true;
    d.ret = e.ret = value;
  };
  switch (hdr->type) {
    case VIGIL_EV_EXEC: {
      if (size != sizeof(vigil_exec_event)) return bad("wrong size for an exec record");
      const auto* r = static_cast<const vigil_exec_event*>(data);
      e.kind = core::EventKind::kProcessExec;
      AssignString(&e.path, r->filename);
      e.proc.exe = e.path;
      e.proc.loginuid = r->loginuid;
      e.proc.tty = r->tty;
      e.proc.has_caps = true;
      e.proc.cap_effective = r->cap_effective;
      e.proc.cap_permitted = r->cap_permitted;
      if ((r->exe_flags & VIGIL_EXE_MEMFD) != 0) e.flags |= core::kExecFromMemfd;
      size_t len = std::min<size_t>(r->args_len, sizeof(r->args));
      size_t start = 0;
      for (size_t i = 0; i < len; ++i) {
        if (r->args[i] == '\0') {
          d.argv.emplace_back(r->args + start, i - start);
          start = i + 1;
        }
      }
      if (start < len) d.argv.emplace_back(r->args + start, len - start);  // truncated
      break;
    }
    case VIGIL_EV_FORK: {
      if (size != sizeof(vigil_fork_event)) return bad("wrong size for a fork record");
      const auto* r = static_cast<const vigil_fork_event*>(data);
      e.kind = core::EventKind::kProcessFork;
      e.child_pid = r->child_tgid;
      d.child_pid = r->child_tgid;
      break;
    }
    case VIGIL_EV_EXIT: {
      if (size != sizeof(vigil_exit_event)) return bad("wrong size for an exit record");
      const auto* r = static_cast<const vigil_exit_event*>(data);
      e.kind = core::EventKind::kProcessExit;
      d.exit_code = r->exit_code;
      break;
    }
    case VIGIL_EV_FILE: {
      // Whole, or short: ending after the NUL of `path` when there is no second path (ABI 4).
      constexpr size_t kPathAt = offsetof(vigil_file_event, path);
      if (size != sizeof(vigil_file_event) && (size <= kPathAt || size > kPathAt + VIGIL_PATH_LEN)) {
        return bad("wrong size for a file record");
      }
      const auto* r = static_cast<const vigil_file_event*>(data);
      const bool whole = size == sizeof(vigil_file_event);
      if (r->nr == kNrOpen || r->nr == kNrOpenat || r->nr == kNrOpenat2) {
        e.kind = core::EventKind::kFileOpen;
        e.syscall = {core::Arch::kX86_64, static_cast<int32_t>(r->nr)};
      } else {
        as_typed_call(r->nr);
      }
      // A short record's path ends at its last byte; nothing of it is read past `size`.
      const size_t path_room = whole ? sizeof(r->path) : size - kPathAt;
      e.path.assign(r->path, strnlen(r->path, path_room));
      if (whole) {  // (StartSlot cleared both path2s)
        AssignString(&d.path2, r->path2);
        e.path2 = d.path2;
      }
      d.nr = r->nr;
      set_ret(r->ret);
      d.fd = r->dfd;
      d.flags = e.flags = r->flags;
      d.mode = e.mode = r->mode;
      break;
    }
    case VIGIL_EV_NET: {
      if (size != sizeof(vigil_net_event)) return bad("wrong size for a net record");
      const auto* r = static_cast<const vigil_net_event*>(data);
      if (r->nr == kNrConnect) {
        e.kind = core::EventKind::kNetConnect;
        e.syscall = {core::Arch::kX86_64, static_cast<int32_t>(r->nr)};
      } else {
        as_typed_call(r->nr);
      }
      char text[INET6_ADDRSTRLEN] = "";
      if (r->nr == kNrSocket) {
        e.args = {r->family, r->port, r->protocol, 0};  // domain, type, protocol
      } else if (r->family == AF_INET || r->family == AF_INET6) {
        if (inet_ntop(r->family, r->addr, text, sizeof(text)) != nullptr) e.net.daddr = text;
        e.net.dport = r->port;
        e.net.protocol = r->protocol;
      }
      d.family = r->family;
      d.nr = r->nr;
      set_ret(r->ret);
      d.fd = r->fd;
      break;
    }
    case VIGIL_EV_CRED: {
      if (size != sizeof(vigil_cred_event)) return bad("wrong size for a cred record");
      const auto* r = static_cast<const vigil_cred_event*>(data);
      as_typed_call(r->nr);
      d.nr = r->nr;
      set_ret(r->ret);
      for (size_t i = 0; i < d.args.size(); ++i) e.args[i] = d.args[i] = r->args[i];
      break;
    }
    case VIGIL_EV_MOUNT: {
      if (size != sizeof(vigil_mount_event)) return bad("wrong size for a mount record");
      const auto* r = static_cast<const vigil_mount_event*>(data);
      as_typed_call(r->nr);
      AssignString(&e.path, r->target);
      AssignString(&d.path2, r->source);
      e.path2 = d.path2;
      AssignString(&d.fstype, r->fstype);
      d.nr = r->nr;
      set_ret(r->ret);
      d.flags = static_cast<uint32_t>(r->flags);
      break;
    }
    default:
      return bad("unknown record type");
  }
  ++count_;
  return done();
}

core::Result<EbpfLostCounts> EbpfSensor::LostCounts() const {
  EbpfLostCounts counts{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return core::Internal("ebpf sensor: cannot count possible CPUs");
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < VIGIL_CNT_MAX; ++i) {
    if (bpf_map__lookup_elem(skel_->maps.counters, &i, sizeof(i), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) != 0) {
      return core::Internal("ebpf sensor: reading counter " +
                            std::string(EbpfLostCauseName(static_cast<EbpfLostCause>(i))) + ": " +
                            std::strerror(errno));
    }
    for (uint64_t v : per_cpu) counts[i] += v;
  }
  counts[static_cast<size_t>(EbpfLostCause::kBadRecord)] =
      bad_records_.load(std::memory_order_relaxed);
  return counts;
}

core::Status EbpfSensor::WriteSettingsLocked() {
  vigil_config cfg{};
  cfg.syscall_stream = syscall_stream_ ? 1 : 0;
  cfg.typed_mask = typed_mask_;
  cfg.generation = ++settings_generation_;
  cfg.typed_per_call = typed_per_call_ ? 1 : 0;
  if (!filters_.include_comm.empty()) cfg.filter_flags |= VIGIL_FILTER_INCLUDE_COMM;
  if (!filters_.include_cgroup.empty()) cfg.filter_flags |= VIGIL_FILTER_INCLUDE_CGROUP;
  if (!filters_.include_uid.empty()) cfg.filter_flags |= VIGIL_FILTER_INCLUDE_UID;
  if (!filters_.exclude_comm.empty()) cfg.filter_flags |= VIGIL_FILTER_EXCLUDE_COMM;
  if (!filters_.exclude_cgroup.empty()) cfg.filter_flags |= VIGIL_FILTER_EXCLUDE_CGROUP;
  if (!filters_.exclude_uid.empty()) cfg.filter_flags |= VIGIL_FILTER_EXCLUDE_UID;
  uint32_t zero = 0;
  if (bpf_map__update_elem(skel_->maps.settings, &zero, sizeof(zero), &cfg, sizeof(cfg), BPF_ANY) !=
      0) {
    return core::Internal(std::string("ebpf sensor: updating the settings map: ") +
                          std::strerror(errno));
  }
  return core::Status::Ok();
}

core::Status EbpfSensor::UpdateFilter(FilterKind kind, bool include, bool add,
                                      std::string_view comm, uint64_t number) {
  std::lock_guard<std::mutex> lock(mu_);
  auto edit = [&](auto& set, const auto& key) {
    if (add) {
      set.insert(key);
    } else {
      set.erase(key);
    }
  };
  bpf_map* map = nullptr;
  uint32_t value = 0;
  vigil_comm_key comm_key{};
  uint64_t cgroup_key = number;
  uint32_t uid_key = static_cast<uint32_t>(number);
  const void* key = nullptr;
  size_t key_size = 0;
  std::string label;
  switch (kind) {
    case FilterKind::kComm: {
      if (comm.empty() || comm.find('\0') != std::string_view::npos) {
        return core::InvalidArgument("ebpf filter: comm '" + std::string(comm) +
                                     "': must be non-empty without NUL bytes");
      }
      std::string name(comm.substr(0, VIGIL_COMM_LEN - 1));
      edit(include ? filters_.include_comm : filters_.exclude_comm, name);
      value =
          FilterValue(filters_.exclude_comm.count(name) > 0, filters_.include_comm.count(name) > 0);
      FillComm(&comm_key, name);
      map = skel_->maps.filter_comm;
      key = &comm_key;
      key_size = sizeof(comm_key);
      label = "comm '" + name + "'";
      break;
    }
    case FilterKind::kCgroup:
      edit(include ? filters_.include_cgroup : filters_.exclude_cgroup, cgroup_key);
      value = FilterValue(filters_.exclude_cgroup.count(cgroup_key) > 0,
                          filters_.include_cgroup.count(cgroup_key) > 0);
      map = skel_->maps.filter_cgroup;
      key = &cgroup_key;
      key_size = sizeof(cgroup_key);
      label = "cgroup " + std::to_string(cgroup_key);
      break;
    case FilterKind::kUid:
      edit(include ? filters_.include_uid : filters_.exclude_uid, uid_key);
      value = FilterValue(filters_.exclude_uid.count(uid_key) > 0,
                          filters_.include_uid.count(uid_key) > 0);
      map = skel_->maps.filter_uid;
      key = &uid_key;
      key_size = sizeof(uid_key);
      label = "uid " + std::to_string(uid_key);
      break;
  }
  int err = value != 0 ? bpf_map__update_elem(map, key, key_size, &value, sizeof(value), BPF_ANY)
                       : bpf_map__delete_elem(map, key, key_size, 0);
  if (err != 0 && !(value == 0 && err == -ENOENT)) {
    // Undo the bookkeeping so that it keeps describing the map.
    add = !add;
    switch (kind) {
      case FilterKind::kComm:
        edit(include ? filters_.include_comm : filters_.exclude_comm,
             std::string(comm.substr(0, VIGIL_COMM_LEN - 1)));
        break;
      case FilterKind::kCgroup:
        edit(include ? filters_.include_cgroup : filters_.exclude_cgroup, cgroup_key);
        break;
      case FilterKind::kUid:
        edit(include ? filters_.include_uid : filters_.exclude_uid, uid_key);
        break;
    }
    return core::Status(
        err == -E2BIG ? core::StatusCode::kResourceExhausted : core::StatusCode::kInternal,
        "ebpf filter: " + label + ": map update failed: " + std::strerror(-err) +
            " (at most 1024 entries per filter kind)");
  }
  return WriteSettingsLocked();
}

core::Status EbpfSensor::AddExcludeComm(std::string_view c) {
  return UpdateFilter(FilterKind::kComm, false, true, c, 0);
}
core::Status EbpfSensor::RemoveExcludeComm(std::string_view c) {
  return UpdateFilter(FilterKind::kComm, false, false, c, 0);
}
core::Status EbpfSensor::AddIncludeComm(std::string_view c) {
  return UpdateFilter(FilterKind::kComm, true, true, c, 0);
}
core::Status EbpfSensor::RemoveIncludeComm(std::string_view c) {
  return UpdateFilter(FilterKind::kComm, true, false, c, 0);
}
core::Status EbpfSensor::AddExcludeCgroup(uint64_t id) {
  return UpdateFilter(FilterKind::kCgroup, false, true, {}, id);
}
core::Status EbpfSensor::RemoveExcludeCgroup(uint64_t id) {
  return UpdateFilter(FilterKind::kCgroup, false, false, {}, id);
}
core::Status EbpfSensor::AddIncludeCgroup(uint64_t id) {
  return UpdateFilter(FilterKind::kCgroup, true, true, {}, id);
}
core::Status EbpfSensor::RemoveIncludeCgroup(uint64_t id) {
  return UpdateFilter(FilterKind::kCgroup, true, false, {}, id);
}
core::Status EbpfSensor::AddExcludeUid(uint32_t uid) {
  return UpdateFilter(FilterKind::kUid, false, true, {}, uid);
}
core::Status EbpfSensor::RemoveExcludeUid(uint32_t uid) {
  return UpdateFilter(FilterKind::kUid, false, false, {}, uid);
}
core::Status EbpfSensor::AddIncludeUid(uint32_t uid) {
  return UpdateFilter(FilterKind::kUid, true, true, {}, uid);
}
core::Status EbpfSensor::RemoveIncludeUid(uint32_t uid) {
  return UpdateFilter(FilterKind::kUid, true, false, {}, uid);
}

core::Status EbpfSensor::ClearFilters() {
  FilterSets copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    copy = filters_;
  }
  for (const auto& c : copy.exclude_comm) VIGIL_RETURN_IF_ERROR(RemoveExcludeComm(c));
  for (const auto& c : copy.include_comm) VIGIL_RETURN_IF_ERROR(RemoveIncludeComm(c));
  for (uint64_t c : copy.exclude_cgroup) VIGIL_RETURN_IF_ERROR(RemoveExcludeCgroup(c));
  for (uint64_t c : copy.include_cgroup) VIGIL_RETURN_IF_ERROR(RemoveIncludeCgroup(c));
  for (uint32_t u : copy.exclude_uid) VIGIL_RETURN_IF_ERROR(RemoveExcludeUid(u));
  for (uint32_t u : copy.include_uid) VIGIL_RETURN_IF_ERROR(RemoveIncludeUid(u));
  return core::Status::Ok();
}

core::Status EbpfSensor::SetSyscallStream(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  syscall_stream_ = on;
  std::string fallback;  // typed_per_call() tells; the records flow either way
  return ApplyStreamLocked(&fallback);
}

bool EbpfSensor::AttachPerCallLocked(std::string* why) {
  if (!per_call_links_.empty()) return true;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (std::string_view(bpf_program__section_name(prog)).rfind("tracepoint/syscalls/", 0) != 0) {
      continue;
    }
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      *why = std::string("attaching ") + bpf_program__section_name(prog) + " failed (" +
             std::strerror(errno) + "; the per-call tracepoints need tracefs)";
      DetachPerCallLocked();
      return false;
    }
    per_call_links_.push_back(link);
  }
  if (per_call_links_.empty()) {
    *why = "the BPF object has no per-call tracepoint programs";
    return false;
  }
  return true;
}

void EbpfSensor::DetachPerCallLocked() {
  for (bpf_link* l : per_call_links_) bpf_link__destroy(l);
  per_call_links_.clear();
}

core::Status EbpfSensor::ApplyStreamLocked(std::string* fallback_reason) {
  // The context-switch program flushes the CPU's batch before another thread runs there: it is
  // attached before the stream can gather a call, and stays until every batch is sent.
  bpf_link*& flush = skel_->links.vigil_sched_switch;
  if (syscall_stream_) {
    flush_drain_.store(false, std::memory_order_relaxed);
    if (flush == nullptr) {
      flush = bpf_program__attach(skel_->progs.vigil_sched_switch);
      if (flush == nullptr) {
        return core::FailedPrecondition(
            std::string("ebpf sensor: attaching program vigil_sched_switch to "
                        "tp_btf/sched_switch failed (") +
            std::strerror(errno) + "): the kernel lacks or refuses this attach point");
      }
    }
  }
  bool per_call = !syscall_stream_ && AttachPerCallLocked(fallback_reason);
  bpf_link*& raw = skel_->links.vigil_sys_exit;
  if (!per_call && raw == nullptr) {
    raw = bpf_program__attach(skel_->progs.vigil_sys_exit);
    if (raw == nullptr) {
      return core::FailedPrecondition(
          std::string("ebpf sensor: attaching program vigil_sys_exit to tp_btf/sys_exit failed (") +
          std::strerror(errno) + "): the kernel lacks or refuses this attach point");
    }
  }
  // Both sources are attached now where a switch happens; one write moves the records over.
  typed_per_call_ = per_call;
  VIGIL_RETURN_IF_ERROR(WriteSettingsLocked());
  // The stream's batches do not wake the reader: it looks every 10 ms while the stream is on,
  // from now (it may be in a longer wait).
  const bool was_on = stream_on_.exchange(syscall_stream_, std::memory_order_relaxed);
  if (syscall_stream_ && !was_on && wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = write(wake_fd_, &one, sizeof(one));
    (void)n;  // EAGAIN means a wake-up is already pending
  }
  if (per_call && raw != nullptr) {
    bpf_link__destroy(raw);
    raw = nullptr;
  }
  if (!per_call && !keep_per_call_) DetachPerCallLocked();
  if (!syscall_stream_ && flush != nullptr && !flush_drain_.load(std::memory_order_relaxed)) {
    stream_off_ns_.store(ClockNs(CLOCK_MONOTONIC), std::memory_order_relaxed);
    flush_drain_.store(true, std::memory_order_relaxed);
  }
  return core::Status::Ok();
}

bool EbpfSensor::stream_flush_attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skel_ != nullptr && skel_->links.vigil_sched_switch != nullptr;
}

void EbpfSensor::TryDetachFlushLocked() {
  bpf_link*& flush = skel_->links.vigil_sched_switch;
  if (syscall_stream_ || flush == nullptr) {
    flush_drain_.store(false, std::memory_order_relaxed);
    return;
  }
  if (ClockNs(CLOCK_MONOTONIC) - stream_off_ns_.load(std::memory_order_relaxed) < kFlushDrainNs) {
    return;
  }
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return;  // cannot tell: keep flushing
  // A per-CPU value is rounded up to 8 bytes per CPU.
  const size_t each = (sizeof(vigil_stream_state) + 7) / 8 * 8;
  stream_scratch_.resize(each * static_cast<size_t>(cpus));
  const uint32_t zero = 0;
  if (bpf_map__lookup_elem(skel_->maps.stream, &zero, sizeof(zero), stream_scratch_.data(),
                           stream_scratch_.size(), 0) != 0) {
    return;  // keep flushing; the next look tries again
  }
  for (int cpu = 0; cpu < cpus; ++cpu) {
    vigil_stream_state st;
    std::memcpy(&st, stream_scratch_.data() + each * static_cast<size_t>(cpu), sizeof(st));
    if (st.tid != 0 || st.batch.count != 0) return;  // its next context switch sends it
  }
  bpf_link__destroy(flush);
  flush = nullptr;
  flush_drain_.store(false, std::memory_order_relaxed);
}

void EbpfSensor::SetKeepPerCallAttached(bool keep) {
  std::lock_guard<std::mutex> lock(mu_);
  keep_per_call_ = keep;
  if (!keep && !typed_per_call_) DetachPerCallLocked();
}

int64_t EbpfSensor::EventTimeNs() const {
  return ClockNs(CLOCK_MONOTONIC) + realtime_offset_ns_;
}

core::Status EbpfSensor::SetTypedEvents(uint32_t typed_mask) {
  if ((typed_mask & ~static_cast<uint32_t>(kTypedAll)) != 0) {
    return core::InvalidArgument("ebpf sensor: typed event mask " + std::to_string(typed_mask) +
                                 " has unknown bits");
  }
  std::lock_guard<std::mutex> lock(mu_);
  typed_mask_ = typed_mask;
  return WriteSettingsLocked();
}

#else  // !VIGIL_HAVE_BPF: built with -DVIGIL_BPF=OFF

namespace {
core::Status NotBuilt() {
  return core::FailedPrecondition(
      "ebpf sensor: this build of Vigil has no eBPF support (configured with -DVIGIL_BPF=OFF); "
      "rebuild after scripts/install-deps.sh on a machine with kernel BTF");
}
}  // namespace

EbpfSensor::EbpfSensor(const EbpfOptions& options) : options_(options) {}
EbpfSensor::~EbpfSensor() = default;
core::Result<std::unique_ptr<EbpfSensor>> EbpfSensor::Open(const EbpfOptions&) {
  return NotBuilt();
}
core::Status EbpfSensor::Load() { return NotBuilt(); }
void EbpfSensor::Stop() { stop_requested_.store(true); }
core::Result<EbpfSensor::PollOutcome> EbpfSensor::NextFor(core::Event*, std::chrono::milliseconds) {
  return PollOutcome::kEnd;
}
int EbpfSensor::OnRecordThunk(void*, const void*, size_t) { return 0; }
int EbpfSensor::OnRecord(const void*, size_t) { return 0; }
core::Result<EbpfLostCounts> EbpfSensor::LostCounts() const { return NotBuilt(); }
core::Status EbpfSensor::WriteSettingsLocked() { return NotBuilt(); }
core::Status EbpfSensor::UpdateFilter(FilterKind, bool, bool, std::string_view, uint64_t) {
  return NotBuilt();
}
core::Status EbpfSensor::AddExcludeComm(std::string_view) { return NotBuilt(); }
core::Status EbpfSensor::RemoveExcludeComm(std::string_view) { return NotBuilt(); }
core::Status EbpfSensor::AddIncludeComm(std::string_view) { return NotBuilt(); }
core::Status EbpfSensor::RemoveIncludeComm(std::string_view) { return NotBuilt(); }
core::Status EbpfSensor::AddExcludeCgroup(uint64_t) { return NotBuilt(); }
core::Status EbpfSensor::RemoveExcludeCgroup(uint64_t) { return NotBuilt(); }
core::Status EbpfSensor::AddIncludeCgroup(uint64_t) { return NotBuilt(); }
core::Status EbpfSensor::RemoveIncludeCgroup(uint64_t) { return NotBuilt(); }
core::Status EbpfSensor::AddExcludeUid(uint32_t) { return NotBuilt(); }
core::Status EbpfSensor::RemoveExcludeUid(uint32_t) { return NotBuilt(); }
core::Status EbpfSensor::AddIncludeUid(uint32_t) { return NotBuilt(); }
core::Status EbpfSensor::RemoveIncludeUid(uint32_t) { return NotBuilt(); }
core::Status EbpfSensor::ClearFilters() { return NotBuilt(); }
core::Status EbpfSensor::SetSyscallStream(bool) { return NotBuilt(); }
core::Status EbpfSensor::SetTypedEvents(uint32_t) { return NotBuilt(); }
void EbpfSensor::SetKeepPerCallAttached(bool) {}
int64_t EbpfSensor::EventTimeNs() const { return 0; }

#endif  // VIGIL_HAVE_BPF

}  // namespace vigil::sensor
