#pragma once

// Live capture from this host's kernel: the CO-RE programs of bpf/vigil_sensor.bpf.c
// (tp_btf/sys_exit, sched_switch, sched_process_exec|fork|exit), loaded through a
// bpftool skeleton, delivering records through a BPF ring buffer. Record layouts: bpf/abi/vigil_events.h;
// programs, filters, counters and failure modes: docs/ebpf-sensor.md.
//
// Threading: one thread pulls (Next/NextFor, detail). Stop(), LostCounts() and every filter and
// event-set update may be called from any thread at any time.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "sensor/ring_reader.h"
#include "sensor/sensor.h"

struct vigil_sensor_bpf;  // the generated skeleton (bpf/vigil_sensor.bpf.c)
struct bpf_link;          // libbpf
struct vigil_event_header;  // bpf/abi/vigil_events.h
struct vigil_syscall_batch;

namespace vigil::sensor {

// Which typed records the kernel side produces; bits of EbpfOptions::typed_events. Mirrors
// enum vigil_typed_bit of bpf/abi/vigil_events.h.
enum EbpfTyped : uint32_t {
  kTypedExec = 1u << 0,     // sched_process_exec: a program started (filename, argv)
  kTypedFork = 1u << 1,     // sched_process_fork: a new process (threads are not reported)
  kTypedExit = 1u << 2,     // sched_process_exit of a process's last thread (exit status)
  kTypedExecve = 1u << 3,   // execve/execveat attempts with path and return value
  kTypedOpen = 1u << 4,     // open/openat/openat2: path, flags, mode, return value
  kTypedFileMod = 1u << 5,  // unlink/unlinkat/rename/renameat/renameat2
  kTypedNet = 1u << 6,      // connect/accept/accept4/bind: address, port, return value
  kTypedCred = 1u << 7,     // setuid/setgid/setreuid/setregid/setresuid/setresgid/setfs*
  kTypedPtrace = 1u << 8,   // ptrace: request, target pid
  kTypedMount = 1u << 9,    // mount/umount2
  kTypedAll = (1u << 10) - 1,
};

// The kernel record an event came from. Mirrors enum vigil_event_type.
enum class EbpfRecordType : uint16_t {
  kSyscall = 1,
  kExec = 2,
  kFork = 3,
  kExit = 4,
  kFile = 5,
  kNet = 6,
  kCred = 7,
  kMount = 8,
};

// Why events were not delivered (or were delivered damaged). The first six are counted in the
// kernel (per-CPU, mirroring enum vigil_counter); kBadRecord is counted here.
enum class EbpfLostCause : uint8_t {
  kRingBufferFull,  // the ring buffer had no room: the record was dropped in the kernel
  kStringRead,      // a path/argv read failed: the record was sent with the string empty
  kAddressRead,     // a sockaddr read failed: the record was sent without its address
  kFiltered,        // suppressed by a comm/cgroup/uid filter (wanted, not a loss)
  kPendingFull,     // (unused since ABI 2: no call's arguments are kept between entry and exit)
  kArgsTruncated,   // argv longer than the record's 512 bytes: sent truncated
  kBadRecord,       // user space: a record of unknown type or wrong size was skipped
};
inline constexpr size_t kEbpfLostCauseCount = 7;
using EbpfLostCounts = std::array<uint64_t, kEbpfLostCauseCount>;
std::string_view EbpfLostCauseName(EbpfLostCause cause);

struct EbpfOptions {
  // Ring buffer size: a power of two, at least one page. Larger absorbs longer bursts.
  size_t ring_buffer_bytes = size_t{4} << 20;
  // How long Next() waits in one wait before it checks again; Stop() interrupts it anyway.
  std::chrono::milliseconds poll_timeout{100};
  // How often the ring buffer is looked at while the syscall stream is off and a look 10 ms after
  // the last records found none (10 ms..60 s). Typed and lifecycle records wake the reader
  // themselves (at most every 10 ms over all CPUs; it looks once more 10 ms later), so they wait
  // at most ~10 ms either way; the stream's batches do not, so with the stream on the ring is
  // looked at every 10 ms. A host whose stream is off and that makes few typed calls wakes the
  // reader ~10 times a second instead of 100 (docs/ebpf-sensor.md, "Delivery and stopping").
  std::chrono::milliseconds idle_poll{100};
  bool syscall_stream = true;         // one kSyscall event per completed system call
  // Deliver the syscall stream in runs: each kernel batch (up to 64 consecutive calls of one
  // thread on one CPU) becomes one kSyscall event whose core::Event::syscall_run holds the
  // calls' numbers (a new run starts where the architecture changes). For consumers that want
  // call sequences (the agent's per-program models): converting and queueing one event per
  // call was most of the agent's CPU per event. The per-call return values and times other
  // than the last call's are not delivered in this mode.
  bool syscall_runs = false;
  uint32_t typed_events = kTypedAll;  // EbpfTyped bits
  // Records converted per pass over the ring buffer (bounds user-space memory).
  size_t batch = 4096;
  // Filters in effect from the first event (see the runtime setters below).
  std::vector<std::string> exclude_comms;
  std::vector<std::string> include_comms;
  std::vector<uint64_t> exclude_cgroups;
  std::vector<uint64_t> include_cgroups;
  std::vector<uint32_t> exclude_uids;
  std::vector<uint32_t> include_uids;
  // With no tracefs where libbpf looks, mount one at /sys/kernel/tracing (as systemd does at
  // boot) so that the stream-off state can use the per-call tracepoints instead of the raw
  // sys_exit program on every call; done once at Load, said in warnings(). False: never mount.
  bool mount_tracefs = true;
};

// Everything an eBPF record carried, for the event that Next()/NextFor() returned last. The
// return value and the fork child are also on core::Event (has_ret/ret, child_pid); argv, cgroup
// id, flags, second path, fstype and raw arguments are only here until core::Event has them.
struct EbpfEventDetail {
  EbpfRecordType type = EbpfRecordType::kSyscall;
  bool has_ret = false;  // syscall and typed-call records
  int64_t ret = 0;       // return value; negative errno on failure (a run: its last call's)
  uint32_t nr = 0;       // system call number (typed-call records too): x86_64, or i386 if `i386`
  bool i386 = false;     // kSyscall: a 32-bit (ia32 compat) call, numbered in the i386 table
  uint32_t cpu = 0;
  // Length of the kernel record (for a syscall batch, of the whole batch). File records without
  // a second path are sent short: they end after the path's NUL.
  uint32_t record_bytes = 0;
  uint64_t cgroup_id = 0;
  int32_t fd = -1;     // kFile: the dirfd of *at calls (-100 = AT_FDCWD); kNet: the socket
  uint32_t flags = 0;  // open/unlinkat/renameat2/execveat flags; mount flags (low 32 bits)
  uint32_t mode = 0;
  std::string path2;               // rename*: the new path; mount: the source
  std::string fstype;              // mount
  std::vector<std::string> argv;   // kExec, possibly truncated
  uint32_t child_pid = 0;          // kFork: the new process (tid == tgid)
  uint32_t exit_code = 0;          // kExit: wait(2) status
  uint16_t family = 0;             // kNet: AF_INET/AF_INET6/AF_UNIX/0
  std::array<uint64_t, 4> args{};  // kCred: the ids as passed; ptrace: request, pid, addr, data
};

class EbpfSensor final : public Sensor {
 public:
  // Loads and attaches every program, or nothing. Fails with kFailedPrecondition and a message
  // that names the missing feature and what to do (not root / missing capability, no kernel BTF,
  // BPF refused by the kernel, a program that would not attach); kInvalidArgument for bad
  // options. A failure to raise RLIMIT_MEMLOCK is only a warning (see warnings()). The agent's
  // own process (getpid()) is excluded in the kernel.
  static core::Result<std::unique_ptr<EbpfSensor>> Open(const EbpfOptions& options);
  ~EbpfSensor() override;  // detaches and unloads
  EbpfSensor(const EbpfSensor&) = delete;
  EbpfSensor& operator=(const EbpfSensor&) = delete;

  std::string_view name() const override { return "ebpf"; }

  // Blocks until an event arrives (kEvent) or Stop() was called (kEnd, then forever). An error
  // reports one malformed record, which was skipped.
  core::Result<ReadOutcome> Next(core::Event* out) override;
  bool Buffered() const override { return head_ < count_; }
  bool AssignsWholeEvent() const override { return true; }  // *out = the converted record

  enum class PollOutcome : uint8_t { kEvent, kTimeout, kEnd };
  // As Next(), but waits at most `timeout` (0: only what is already there).
  core::Result<PollOutcome> NextFor(core::Event* out, std::chrono::milliseconds timeout);

  // Makes the pulling thread's Next()/NextFor() return kEnd promptly (wakes a blocked wait).
  // Events still in the ring buffer are not delivered. Thread-safe, idempotent.
  void Stop();

  // Valid until the next Next()/NextFor() call.
  const EbpfEventDetail& detail() const { return *detail_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Converted-record slots constructed so far: the most records one pass held (at most
  // options.batch + 64); the memory they take follows that, not options.batch. Pulling thread.
  size_t slots_constructed() const { return slots_.size(); }
  // True while typed records come from the per-call tracepoint programs (the stream is off and
  // they could be attached); false while the raw sys_exit program sends them.
  bool typed_per_call() const {
    std::lock_guard<std::mutex> lock(mu_);
    return typed_per_call_;
  }

  // Sums of the per-CPU kernel counters plus the user-space ones, indexed by EbpfLostCause.
  core::Result<EbpfLostCounts> LostCounts() const;

  // Runtime filters (take effect for the next event). An exclude entry always wins; an include
  // set that is not empty lets through only its members. comm is matched on its first 15 bytes.
  core::Status AddExcludeComm(std::string_view comm);
  core::Status RemoveExcludeComm(std::string_view comm);
  core::Status AddIncludeComm(std::string_view comm);
  core::Status RemoveIncludeComm(std::string_view comm);
  core::Status AddExcludeCgroup(uint64_t cgroup_id);
  core::Status RemoveExcludeCgroup(uint64_t cgroup_id);
  core::Status AddIncludeCgroup(uint64_t cgroup_id);
  core::Status RemoveIncludeCgroup(uint64_t cgroup_id);
  core::Status AddExcludeUid(uint32_t uid);
  core::Status RemoveExcludeUid(uint32_t uid);
  core::Status AddIncludeUid(uint32_t uid);
  core::Status RemoveIncludeUid(uint32_t uid);
  core::Status ClearFilters();

  // Event set at run time.
  core::Status SetSyscallStream(bool on);
  core::Status SetTypedEvents(uint32_t typed_mask);  // EbpfTyped bits
  // For a stream that is switched on and off often (the agent's CPU budget): while set, the
  // per-call tracepoint programs stay attached when the stream comes on (they send nothing then:
  // typed_per_call is 0), so that a switch attaches or detaches only the raw sys_exit program.
  // Clearing it while the stream is on detaches them. Off by default: with the stream on for
  // good, they would only add a program run to every typed call.
  void SetKeepPerCallAttached(bool keep);

  // True while the context-switch program (tp_btf/sched_switch, which sends a CPU's stream calls
  // before another thread runs there) is attached: while the stream is on, and after it goes
  // off until no CPU holds calls (the reader checks at its next looks, EbpfSensor::NextFor).
  // With the stream off it is detached, so that context switches cost nothing.
  bool stream_flush_attached() const;

  // Calls of the syscall stream converted so far (each call of a batch counts), for measuring
  // the stream's rate. Any thread.
  uint64_t StreamCalls() const { return stream_calls_.load(std::memory_order_relaxed); }
  // Now, in the time base of the events' core::Event::time_ns (the kernel's monotonic clock
  // plus CLOCK_REALTIME - CLOCK_MONOTONIC at Open): a stream batch whose first call is later
  // than a time read before SetSyscallStream(true) belongs to the new on-period. Any thread.
  int64_t EventTimeNs() const;

 private:
  enum class FilterKind : uint8_t { kComm, kCgroup, kUid };
  struct FilterSets {
    std::set<std::string> exclude_comm, include_comm;
    std::set<uint64_t> exclude_cgroup, include_cgroup;
    std::set<uint32_t> exclude_uid, include_uid;
  };
  struct Slot {
    core::Event event;
    EbpfEventDetail detail;
    bool bad = false;  // malformed record: `bad_reason` explains
    std::string bad_reason;
  };

  explicit EbpfSensor(const EbpfOptions& options);
  core::Status Load();
  core::Status UpdateFilter(FilterKind kind, bool include, bool add, std::string_view comm,
                            uint64_t number);
  core::Status WriteSettingsLocked();
  // Attaches the programs the stream setting needs and detaches the others, switching the typed
  // records' source through vigil_config.typed_per_call while both are attached (so that no
  // record is lost or sent twice). Falls back to the raw sys_exit program for typed records when
  // the per-call tracepoints cannot be attached (the reason goes to *fallback_reason).
  core::Status ApplyStreamLocked(std::string* fallback_reason);
  bool AttachPerCallLocked(std::string* why);
  void DetachPerCallLocked();
  // The stream is off: detaches the context-switch program once no CPU's stream state holds
  // calls or a filter decision, and at least kFlushDrainNs after the stream went off (so that
  // a program that read the old settings has finished). Clears flush_drain_ when done.
  void TryDetachFlushLocked();
  int OnRecord(const void* data, size_t size);  // the ring buffer callback
  void StartSlot(Slot& slot, const vigil_event_header* hdr, uint64_t ts_ns);
  // syscall_runs: one slot per run of same-architecture calls of the batch.
  void AddRuns(const vigil_syscall_batch* batch);
  static int OnRecordThunk(void* ctx, const void* data, size_t size);

  EbpfOptions options_;
  vigil_sensor_bpf* skel_ = nullptr;
  std::unique_ptr<RingReader> rb_;  // the ring buffer's data mapped once (ring_reader.h)
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd written by Stop() and when the stream is switched on
  std::atomic<bool> stop_requested_{false};
  bool ended_ = false;
  // The stream is on (written under mu_, read by the pulling thread): look every 10 ms.
  std::atomic<bool> stream_on_{false};
  int64_t last_records_ns_ = 0;  // CLOCK_MONOTONIC of the last pass that found records
  std::vector<std::string> warnings_;

  std::vector<Slot> slots_;  // converted records: [head_, count_)
  size_t head_ = 0;
  size_t count_ = 0;
  uint64_t seq_ = 0;
  int64_t realtime_offset_ns_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC at Open
  int64_t ingest_ns_ = 0;           // CLOCK_MONOTONIC of the current pass
  std::atomic<uint64_t> bad_records_{0};
  std::atomic<uint64_t> stream_calls_{0};
  EbpfEventDetail empty_detail_;
  const EbpfEventDetail* detail_ = &empty_detail_;  // the slot of the event returned last

  // guards filters_, syscall_stream_, typed_mask_, the links and the settings map
  mutable std::mutex mu_;
  FilterSets filters_;
  bool syscall_stream_ = true;
  bool typed_per_call_ = false;             // vigil_config.typed_per_call of the last write
  std::vector<bpf_link*> per_call_links_;   // the syscalls/sys_exit_<call> programs' links
  bool keep_per_call_ = false;              // SetKeepPerCallAttached
  // The stream went off with the context-switch program attached: the reader detaches it once
  // every CPU's stream state is empty (TryDetachFlushLocked). Written under mu_.
  std::atomic<bool> flush_drain_{false};
  std::atomic<int64_t> stream_off_ns_{0};  // CLOCK_MONOTONIC when the stream last went off
  std::vector<unsigned char> stream_scratch_;  // the stream map's per-CPU values (under mu_)
  uint32_t typed_mask_ = kTypedAll;
  uint32_t settings_generation_ = 0;  // vigil_config.generation of the last write
};

}  // namespace vigil::sensor
