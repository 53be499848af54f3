#pragma once

// The context a gate's rules read about the process behind a held call (name, executable, argv,
// effective uid, ancestors), read from /proc once per process and program and kept, so that a
// gated call costs one read of /proc/PID/stat per process described instead of a dozen /proc
// reads (docs/gates.md, "What a gated call costs").
//
// What is read is only what the rules ask for (GateContextNeeds, derived from the fields the
// loaded rules use). What is kept is checked at every use against the process's /proc/PID/stat,
// read afresh through a descriptor held open on it:
//  - the descriptor names one process, not a number: once that process is gone (and its pid
//    perhaps reused) reading it fails, and the entry is dropped and read anew;
//  - the start time must match (a pid reused between two opens);
//  - an exec changes the program's memory layout, which stat shows (start and end of the code,
//    the stack, the argument and environment areas: randomised at every exec), and the name: any
//    change of these makes the executable and argv be read again.
// Always fresh: the name (comm), the parent (ppid, so reparenting is seen) and, when asked for,
// the effective uid (setuid() changes it without an exec). The uid and the thread group come from
// a pidfd (PIDFD_GET_INFO, Linux 6.13+: one ioctl, a sixth of the cost of reading
// /proc/PID/status, which is the fallback on older kernels and for a proc_root other than
// /proc). Kept until the next exec: the executable path and argv, as Falco keeps them from the
// execve (a process that rewrites its own argv memory later, as some daemons do to retitle
// themselves, keeps its argv at exec).
// A process whose stat does not show its memory layout (a kernel thread, a zombie, or a reader
// without ptrace access to it) is read afresh at every call.
// An ancestor of which only the name (and parent) is read, no executable or argv, needs no exec
// fingerprint: with pidfds (uses_pidfd()) it is kept as a pidfd, whose PIDFD_GET_INFO gives its
// parent and fails once it is gone, and a descriptor on /proc/PID/comm, read at every call: two
// system calls costing less than one read of /proc/PID/stat, which formats some fifty fields
// (docs/gates.md, "What a gated call costs"). So is a caller whose executable and argv are not
// read (an exec's caller never has them read) when its uid or thread group is: both then come
// from the same ioctl.
//
// Descriptors. Each kept process holds one descriptor (two when its uid is read), and a gate
// that holds execs sees a new process at every call, so the cache holds at most a fixed number
// of them (Options::max_fds; by default no more than a quarter of what RLIMIT_NOFILE leaves
// free), forgetting the least recently used process to make room. The process's descriptor
// table is grown once, when the cache is made, to hold them all: growing it later, in a process
// with more than one thread, waits for an RCU grace period (milliseconds) inside the open(), and
// that wait fell on held calls (docs/benchmarks.md, "Gates": the whole-context exec's P99).
//
// Not thread-safe: one gate's deciding thread uses it.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/event.h"
#include "policy/fields.h"
#include "policy/rules.h"

namespace vigil::app {

// Which parts of a calling process's context a gate reads. Everything not asked for is left
// empty (the rules do not read it).
struct GateContextNeeds {
  bool exe = false;           // the caller's executable path (proc.exepath, proc.exe)
  bool argv = false;          // the caller's argv (proc.args, proc.cmdline, proc.exe)
  bool uid = false;           // the caller's effective uid (user.uid, user.name), read every call
  size_t ancestors = 0;       // how many ancestors, parent first
  // How many of them (parent first) have their executable paths read (proc.pexepath, proc.pexe:
  // 1; proc.aexepath[N]: N; proc.aexepath: all).
  size_t ancestor_exe = 0;
  bool parent_argv = false;   // the parent's argv (proc.pexe, proc.pcmdline)

  static GateContextNeeds Everything(size_t max_ancestors);
  bool operator==(const GateContextNeeds&) const = default;
};

// What the enabled rules of `rules` read (conditions and outputs), with at most `max_ancestors`
// ancestors (proc.aname without an index reads all of them).
GateContextNeeds NeedsOfRules(const policy::RuleSet& rules, size_t max_ancestors);

class ProcContextCache {
 public:
  struct Options {
    std::string proc_root = "/proc";
    // Processes kept (each holds a descriptor, two when its uid is read or when it is kept by
    // name, see above); at least 16. The least recently used is forgotten first.
    size_t capacity = 512;
    // Descriptors the kept processes may hold in all; at least 4. 0: 2 × capacity, but no more
    // than a quarter of the descriptors RLIMIT_NOFILE leaves free when the cache is made.
    size_t max_fds = 0;
    // Read the uid and thread group through a pidfd where the kernel can (PIDFD_GET_INFO, Linux
    // 6.13+, with PIDFD_THREAD, 6.9+) and proc_root is "/proc"; else from /proc/PID/status.
    bool pidfd = true;
  };
  explicit ProcContextCache(Options options);
  ProcContextCache();
  ~ProcContextCache();
  ProcContextCache(const ProcContextCache&) = delete;
  ProcContextCache& operator=(const ProcContextCache&) = delete;

  // Describes the process of thread `tid` into `event->proc` (pid: the thread group; ppid; comm;
  // uid when needs.uid; exe when needs.exe) and `in` (argv when needs.argv; ancestors as
  // `needs` says, parent first). With `exec_call` the caller's own exe and argv are not read
  // (the caller describes the program it is becoming). `tid_is_tgid`: the caller knows `tid` is
  // a thread group id (fanotify reports those), so its pidfd or /proc/PID/status is read only
  // for the uid.
  // Fields it does not fill are left as they were, except in->argv and in->ancestors, which are
  // set. Allocates nothing once its buffers and the entries' strings have grown to size. Returns
  // false when the thread is gone (nothing filled in).
  bool Describe(int32_t tid, const GateContextNeeds& needs, bool exec_call, core::Event* event,
                policy::EvalInput* in, bool tid_is_tgid = false);

  struct Stats {
    uint64_t lookups = 0;      // processes described (callers and ancestors)
    uint64_t new_entries = 0;  // first sight of a process (or after it was forgotten)
    uint64_t gone = 0;         // a kept process had exited (its pid perhaps reused): read anew
    uint64_t execs = 0;        // a kept process had exec'd (or renamed itself): exe, argv re-read
    uint64_t syscalls = 0;     // system calls made to read /proc (load-independent cost)
    uint64_t evicted = 0;      // processes forgotten to make room (capacity or descriptors)
  };
  const Stats& stats() const { return stats_; }
  size_t size() const { return entries_.size() + named_.size(); }
  // Descriptors the kept processes hold now, and at most.
  size_t fds() const { return fds_; }
  // The uid and thread group are read through a pidfd (else from /proc/PID/status).
  bool uses_pidfd() const { return pidfd_; }
  size_t max_fds() const { return max_fds_; }

 private:
  struct Entry {
    int stat_fd = -1;
    int info_fd = -1;  // a pidfd (uses_pidfd()) or /proc/PID/status: the uid and thread group
    uint64_t start_time = 0;
    uint64_t print = 0;    // the exec fingerprint (memory layout and name)
    bool trusted = false;  // the fingerprint shows the layout: exe and argv may be kept
    std::string comm;
    int32_t ppid = 0;
    int32_t tgid = 0;  // 0: not read yet
    uint32_t euid = 0;
    bool have_exe = false;
    bool have_argv = false;
    std::string exe;
    std::vector<std::string> argv;
    uint64_t used = 0;
  };
  // Describe's caller through its kept stat (Entry); *parent: its parent. False when it is gone.
  bool DescribeKept(int32_t tid, const GateContextNeeds& needs, bool exec_call,
                    core::Event* event, policy::EvalInput* in, bool tid_is_tgid, int32_t* parent);
  // The entry of `tid`, with its stat read now; nullptr when the thread is gone. `want_info`:
  // its uid or thread group will be read (a new entry then opens its pidfd first).
  Entry* Refresh(int32_t tid, bool want_info);
  // Opens /proc/PID/FILE to be kept and, first when `with_pidfd`, a pidfd of `pid` into *pid_fd
  // (-1 when not asked for or not opened). A pidfd opened first names the same process as the
  // file when its PIDFD_GET_INFO succeeds later: its process still lived after the file's open,
  // so the pid was its own then. Returns the file's descriptor; -1, with nothing left open, when
  // the file cannot be opened.
  int OpenAfterPidfd(int32_t pid, const char* file, bool with_pidfd, int* pid_fd);
  // Closes a descriptor OpenKept gave that no entry holds (nothing for -1).
  void CloseUnkept(int fd);
  void Forget(std::unordered_map<int32_t, Entry>::iterator it);
  // A process of which only the name, parent, thread group and uid are read (uses_pidfd()): an
  // ancestor read by name, or a caller whose executable and argv are not read.
  struct Named {
    int pid_fd = -1;
    int comm_fd = -1;
    int32_t ppid = 0;
    int32_t tgid = 0;
    uint32_t euid = 0;
    std::string comm;
    uint64_t used = 0;
  };
  // The entry of `pid` with its parent and name read now; nullptr when it is gone.
  Named* RefreshNamed(int32_t pid);
  void ForgetNamed(std::unordered_map<int32_t, Named>::iterator it);
  // Forgets the least recently used process other than `keep`; false when there is none.
  bool EvictOne(const Entry* keep);
  // The uid and thread group of `e` (`tid`), through its info_fd (opened the first time).
  void ReadInfo(int32_t tid, Entry* e);
  void ReadStatus(int32_t tid, Entry* e);
  void ReadStatusFrom(int fd, Entry* e);
  void ReadPidfdInfo(int32_t tid, Entry* e);
  void ReadExe(int32_t tid, Entry* e);
  void ReadArgv(int32_t tid, Entry* e);
  int OpenAt(int32_t tid, const char* file);
  // Opens /proc/TID/FILE to be kept: makes room within max_fds first (never forgetting `keep`),
  // and when the process has no descriptor left (EMFILE), forgets one more process and retries.
  // With file nullptr: a pidfd of `tid` (uses_pidfd()).
  int OpenKept(int32_t tid, const char* file, const Entry* keep);

  Options options_;
  size_t max_fds_ = 0;
  size_t fds_ = 0;  // descriptors held by entries_
  int proc_fd_ = -1;
  bool pidfd_ = false;
  uint64_t clock_ = 0;
  std::unordered_map<int32_t, Entry> entries_;
  std::unordered_map<int32_t, Named> named_;
  std::string buf_;  // cmdline and status reads
  Stats stats_;
};

}  // namespace vigil::app
