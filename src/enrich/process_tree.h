#pragma once

// ProcessTree: who every process on this host is. It starts from a snapshot of /proc and is then
// kept current by the sensor's fork, exec and exit events; the pipeline asks it to fill in the
// identity an event lacks (Enrich) and policy asks it for a process's ancestors. The model,
// lifetimes and bounds are written up in docs/process-tree.md.
//
// Identity. A process is its thread-group id (what user space calls the pid) plus its start time.
// A pid is reused by the kernel once its process is reaped, so a fork or exec for a pid whose
// entry is marked exited, or whose start time differs from the one the event gives, is a new
// process: the old entry is replaced and counted in pid_reuse (details at OnFork and OnExec).
//
// Times. Start and exit times are nanoseconds since boot (CLOCK_BOOTTIME): the domain of the
// kernel's task->start_boottime, of bpf_ktime_get_boot_ns() and, in clock ticks, of field 22 of
// /proc/<pid>/stat. Snapshot start times therefore have tick resolution (10 ms at 100 Hz), so two
// start times are the same when they are less than one tick apart. kUnknownTime (0) means "not
// known" and never makes two processes differ. How long an exited process is kept is measured
// on the injected core::Clock (MonotonicNanos at the time OnExit is called), not on event times,
// so a late or replayed event stream cannot stall or hasten eviction.
//
// Bounds. At most options.max_entries processes are held. An exited process is kept for
// options.exit_grace_ns so that events still in flight from it can be enriched, then evicted.
// When a new process would exceed the cap, the oldest exited process is evicted first, else the
// oldest process overall (first seen), and the cause is counted. argv, exe and cgroup are cut to
// the options' byte caps. Nothing else grows with the number of events.
//
// Thread-safety. One std::shared_mutex. OnFork/OnExec/OnExit/LoadSnapshot/EvictExpired take it
// exclusively; Enrich/Lookup/Ancestors/size take it shared; stats() reads atomics and takes no
// lock. Every method may be called from any thread, but the tree is designed for ONE writer (the
// thread that drains the sensor, so that events apply in kernel order) and many readers:
// writers racing each other are memory-safe, but the tree then reflects whichever order the lock
// granted. User-name lookups and /proc reads happen before the exclusive lock is taken, so a slow
// NSS or a slow /proc never blocks readers.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "enrich/proc_parse.h"
#include "enrich/user_resolver.h"

namespace vigil::enrich {

inline constexpr uint64_t kUnknownTime = 0;
// The longest chain Ancestors() walks, whatever it is asked.
inline constexpr size_t kMaxAncestorDepth = 64;

// What the tree knows about one process. A copy: holding one takes no lock and pins nothing.
struct ProcessInfo {
  uint32_t pid = 0;   // thread-group id
  uint32_t ppid = 0;  // parent's thread-group id; 0 when unknown
  uint32_t uid = 0;   // effective uid; meaningful only when uid_known
  bool uid_known = false;
  std::string user;  // name of uid; "" when unknown or the user database has none
  std::string comm;  // kernel's short name (at most 15 bytes from the kernel; cut at 64)
  std::string exe;   // executable path ("... (deleted)" as the kernel says it); "" when unknown
  std::vector<std::string> argv;  // within options' ArgvLimits
  bool argv_truncated = false;
  std::string cgroup;                     // see ParseProcCgroup for which path; "" when unknown
  std::string container_id;               // 64 hex digits; "" when not in a recognised container
  std::string cwd;                        // working directory at exec (or snapshot); "" unknown
  uint32_t loginuid = core::kNoLoginUid;  // from the sensor's exec record
  uint32_t tty = 0;                       // controlling terminal; 0 none or unknown
  bool has_caps = false;
  uint64_t cap_effective = 0;
  uint64_t cap_permitted = 0;
  uint64_t start_time_ns = kUnknownTime;  // ns since boot
  uint64_t exit_time_ns = kUnknownTime;   // ns since boot; set once exited (when the event says)
  bool exited = false;
};

enum class EvictionCause : uint8_t {
  kGraceExpired,  // exited, and kept for exit_grace_ns already
  kCapExited,     // the cap was reached: the oldest exited process made room
  kCapLive,       // the cap was reached with no exited process to drop: the oldest live one went
};
inline constexpr size_t kEvictionCauseCount = 3;
// "grace_expired", "cap_exited", "cap_live" (metric label values).
std::string_view EvictionCauseName(EvictionCause cause);

struct ProcessTreeStats {
  uint64_t live = 0;         // entries not marked exited
  uint64_t exited_kept = 0;  // exited entries inside their grace period
  std::array<uint64_t, kEvictionCauseCount> evictions{};  // indexed by EvictionCause
  uint64_t pid_reuse = 0;        // entries replaced by a new process with the same pid
  uint64_t snapshot_errors = 0;  // /proc entries skipped because a file was unreadable or
                                 // malformed (processes that vanished mid-read are not errors)
  uint64_t unknown_exits = 0;    // OnExit for a pid the tree did not hold
  uint64_t evictions_total() const;
};

struct ProcessTreeOptions {
  std::string proc_root = "/proc";         // tests point this at a fake tree
  size_t max_entries = 16384;              // >= 1
  int64_t exit_grace_ns = 30'000'000'000;  // >= 0
  ArgvLimits argv_limits;
  size_t max_path_bytes = 4096;  // exe and cgroup are cut to this; >= 1
  // Clock ticks per second of /proc/<pid>/stat starttime; 0 asks sysconf(_SC_CLK_TCK).
  int64_t clock_ticks_per_second = 0;
  // On exec, re-read /proc/<pid>/cgroup (a container runtime moves its child into the
  // container's cgroup between fork and exec, so the cgroup inherited at fork is the runtime's),
  // and for a pid the tree never saw fork, read its parent and start time from /proc/<pid>/stat.
  // Off for replayed streams, whose pids are not this host's.
  bool read_proc_on_exec = true;
  size_t user_cache_capacity = 256;  // >= 1
};

class ProcessTree {
 public:
  // Checks `options` (kInvalidArgument naming the field: max_entries 0, negative grace,
  // max_path_bytes 0, user_cache_capacity 0, clock_ticks_per_second < 0 or above 1e9 or sysconf
  // failing; a null clock). `clock` is not owned and must outlive the tree. `users` is owned;
  // nullptr means the system database (SystemUserResolver). The tree starts empty; call
  // LoadSnapshot to fill it.
  static core::Result<std::unique_ptr<ProcessTree>> Create(
      ProcessTreeOptions options, const core::Clock* clock,
      std::unique_ptr<UserResolver> users = nullptr);

  ProcessTree(const ProcessTree&) = delete;
  ProcessTree& operator=(const ProcessTree&) = delete;
  // Precondition: no thread is inside a method, and metric handles from ExportMetrics are gone.
  ~ProcessTree();

  // Reads every /proc/<pid> under options.proc_root and adds the processes the tree does not
  // already hold (a pid it holds came from an event, which is at least as fresh). Processes are
  // added oldest first, so that if they exceed the cap it is the oldest that go. A process that
  // vanishes mid-read is skipped silently; one whose stat or status is unreadable or malformed
  // is skipped and counted in snapshot_errors; a missing exe link (kernel threads, or no
  // permission) or cmdline or cgroup leaves that field empty. Fails (kNotFound /
  // kPermissionDenied / kUnavailable, naming the path) only when proc_root cannot be listed; the
  // tree is then unchanged.
  //
  // To lose nothing, start the sensor first, take the snapshot, then apply the events buffered
  // meanwhile: a fork the snapshot already saw is recognised by its start time and merged.
  core::Status LoadSnapshot();

  // A new thread group `child_tgid` was forked by `parent_tgid` at `start_time_ns` (the child's
  // start time). The child inherits the parent's uid, comm, exe, argv and cgroup, as the kernel
  // copies them. Precondition: thread creation (CLONE_THREAD) is not passed here; a call with
  // child == parent is ignored. A live entry for child_tgid with the same known start time is
  // the snapshot having seen this fork already: only a missing ppid is filled. Any other entry
  // for child_tgid (exited, or live with a different or unknown start time, i.e. its exit event
  // was lost) belongs to an earlier process and is replaced (pid_reuse), since a fork always
  // makes a new process. An unknown parent yields a child with ppid set and
  // the rest unknown until its exec.
  void OnFork(uint32_t parent_tgid, uint32_t child_tgid, uint64_t start_time_ns);

  // `tgid` executed `exe` with `argv` as effective uid `uid`; the kernel now names it `comm`.
  // `time_ns` is when (kept for diagnostics only). `start_time_ns` is the process's start time
  // when the sensor knows it (it does not change across exec); with it, a held entry whose
  // start time differs is replaced (pid_reuse), as is an exited one in any case. A pid never
  // seen is added; with read_proc_on_exec its ppid and start time come from /proc. argv, exe
  // and comm are cut to the options' bounds.
  void OnExec(uint32_t tgid, std::string_view exe, std::span<const std::string> argv, uint32_t uid,
              std::string_view comm, uint64_t time_ns, uint64_t start_time_ns = kUnknownTime);

  // What the sensor read at `tgid`'s exec besides its identity: login uid, terminal and
  // capabilities (kept, and inherited by forks, until the next exec). Unknown pids are ignored.
  void OnExecAttributes(uint32_t tgid, const core::ProcessIdentity& proc);

  // The thread group `tgid` exited at `time_ns`. Precondition: the whole group, not one thread
  // (the sensor reports the leader's exit). The entry is kept, marked exited, for exit_grace_ns
  // of the tree's clock, then evicted. An unknown pid is counted (unknown_exits); a repeated exit
  // is ignored.
  void OnExit(uint32_t tgid, uint64_t time_ns);

  // Evicts exited entries whose grace period has run out on the tree's clock. The On* methods
  // do this themselves; call it from a timer too when events may stop for long stretches.
  void EvictExpired();

  // Fills what `event->proc` lacks from the entry of event->proc.pid: ppid when 0, comm and exe
  // when empty, loginuid when unset, tty when 0, capabilities when absent, and uid when the
  // event carries neither comm nor exe. The uid rule exists because
  // uid 0 is both "root" and "not filled in": a sensor that reads the uid in the kernel reads
  // comm too, so an event with a comm and uid 0 is trusted as root and never overwritten; a
  // process that gained root without exec must not be masked by the uid it was started with.
  // Exited entries in their grace period are used too. Returns whether the pid was held (false
  // also for pid 0 or a null event, which is left untouched).
  bool Enrich(core::Event* event) const;

  // A copy of the entry for `tgid`, exited or not; nullopt when not held.
  std::optional<ProcessInfo> Lookup(uint32_t tgid) const;

  // The ancestors of `tgid`, parent first, at most min(max_depth, kMaxAncestorDepth) of them
  // (ancestors[0] is what Falco calls proc.aname[1]). The walk stops at a parent the tree does
  // not hold, at pid 0, at a loop, and at a "parent" that started after its child: that pid was
  // reused, and the real parent is gone. Empty when `tgid` itself is not held.
  std::vector<ProcessInfo> Ancestors(uint32_t tgid, size_t max_depth) const;

  // Entries held, live and exited.
  size_t size() const;

  // Changes whenever what Lookup or Ancestors return may have changed (a snapshot, fork, exec,
  // exit, eviction). Read it before reading the tree: an unchanged value afterwards means
  // what was read then is still what the tree holds (EvalInputCache relies on this).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Counters; lock-free, each value read atomically (the set is not one instant's).
  ProcessTreeStats stats() const;

  // Registers callback metrics in `registry`: gauge vigil_process_tree_processes{state=
  // "live"|"exited"} and counters vigil_process_tree_evictions_total{cause=...},
  // vigil_process_tree_pid_reuse_total, vigil_process_tree_snapshot_errors_total and
  // vigil_process_tree_unknown_exits_total. The series live as long as the returned handles,
  // which must be destroyed before the tree. Fails as Registry::AddCallback* does (e.g.
  // kAlreadyExists when a tree is already registered); nothing stays registered then.
  core::Result<std::vector<core::Registry::CallbackHandle>> ExportMetrics(
      core::Registry* registry) const;

  const ProcessTreeOptions& options() const { return options_; }

 private:
  struct Node {
    ProcessInfo info;
    uint64_t serial = 0;       // first-seen order: key in age_
    uint64_t exit_key = 0;     // key in exited_; 0 while live
    int64_t exit_mono_ns = 0;  // clock_->MonotonicNanos() at OnExit
  };

  ProcessTree(ProcessTreeOptions options, const core::Clock* clock,
              std::unique_ptr<UserResolver> users, int64_t tick_ns);

  // Reads /proc/<pid> into *out (user not resolved). kOk, or why not.
  enum class ReadOutcome { kOk, kVanished, kMalformed, kNotLeader };
  ReadOutcome ReadProcess(uint32_t pid, ProcessInfo* out) const;
  // The parts of it that OnExec needs: stat (pid, ppid, comm, start, exited) and cgroup.
  ReadOutcome ReadStat(const std::string& dir, uint32_t pid, ProcessInfo* out) const;
  bool ReadCgroup(const std::string& dir, ProcessInfo* out) const;
  std::string ReadCwd(const std::string& dir) const;  // "" when unreadable
  std::string ProcDir(uint32_t pid) const;
  bool SameStart(uint64_t a, uint64_t b) const;

  // The *Locked helpers require mu_ held exclusively.
  void EvictExpiredLocked(int64_t now_mono);
  // Inserts `info` as a new process, replacing any entry for its pid; makes room first.
  // An exited `info` (a zombie in the snapshot) starts its grace period at now_mono.
  Node& InsertLocked(ProcessInfo info, int64_t now_mono);
  // Removes the entry; counts an eviction when `cause` is set (not for a replacement).
  void EraseLocked(std::unordered_map<uint32_t, Node>::iterator it,
                   std::optional<EvictionCause> cause);
  void MakeRoomLocked();

  const ProcessTreeOptions options_;
  const core::Clock* const clock_;
  const std::unique_ptr<UserResolver> user_db_;
  mutable CachingUserResolver users_;
  const int64_t tick_ns_;

  mutable std::shared_mutex mu_;
  std::unordered_map<uint32_t, Node> by_pid_;
  std::map<uint64_t, uint32_t> age_;     // serial -> pid, every entry, oldest first
  std::map<uint64_t, uint32_t> exited_;  // exit_key -> pid, exited entries, earliest exit first
  uint64_t next_serial_ = 1;
  uint64_t next_exit_key_ = 1;

  std::atomic<uint64_t> generation_{0};  // bumped by every change under mu_ (see generation())
  std::atomic<uint64_t> live_{0};
  std::atomic<uint64_t> exited_kept_{0};
  std::array<std::atomic<uint64_t>, kEvictionCauseCount> evictions_{};
  std::atomic<uint64_t> pid_reuse_{0};
  std::atomic<uint64_t> snapshot_errors_{0};
  std::atomic<uint64_t> unknown_exits_{0};
};

}  // namespace vigil::enrich
