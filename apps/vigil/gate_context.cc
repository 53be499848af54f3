#include "apps/vigil/gate_context.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/types.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>

#include "enforce/proc.h"
#include "enrich/proc_parse.h"

namespace vigil::app {
namespace {

constexpr size_t kReadMax = 4096;  // cmdline and status bytes read

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

// The exec fingerprint of a stat: the memory layout an exec sets anew, and the name.
uint64_t Fingerprint(const enforce::StatFields& st) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const uint64_t v : st.layout) h = Mix(h, v);
  for (const char c : st.comm) h = Mix(h, static_cast<unsigned char>(c));
  return h;
}

// Descriptor numbers reserved beyond the cache's own, for what the rest of the process opens.
constexpr size_t kFdSlack = 64;

// The highest descriptor open in this process now; -1 when /proc/self/fd cannot be listed.
int HighestOpenFd() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int highest = -1;
  while (const dirent* e = readdir(d)) {
    int fd = 0;
    const char* end = e->d_name + std::strlen(e->d_name);
    const auto [p, ec] = std::from_chars(e->d_name, end, fd);
    if (ec == std::errc() && p == end) highest = std::max(highest, fd);
  }
  closedir(d);  // its own descriptor was listed too: harmless, it is the lowest free one
  return highest;
}

// The soft RLIMIT_NOFILE, at most INT_MAX (and INT_MAX when unlimited or unreadable).
size_t SoftFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return INT_MAX;
  return static_cast<size_t>(std::min<rlim_t>(rl.rlim_cur, INT_MAX));
}

// PIDFD_GET_INFO (Linux 6.13), declared here because the build's kernel headers may predate it:
// the first version of the structure (64 bytes), whose size the ioctl's number carries.
struct PidfdInfo {
  __u64 mask;
  __u64 cgroupid;
  __u32 pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  __u32 spare0[1];
};
static_assert(sizeof(PidfdInfo) == 64);
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);
constexpr __u64 kPidfdInfoCreds = 1u << 1;
constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (Linux 6.9): a pidfd of one thread

int PidfdOpen(int32_t tid) {
  return static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(tid), kPidfdThread));
}

bool PidfdGetInfo(int fd, PidfdInfo* info) {
  *info = PidfdInfo{};
  info->mask = kPidfdInfoCreds;
  return ioctl(fd, kPidfdGetInfo, info) == 0 && info->tgid != 0;
}

// Whether this kernel gives a thread's pidfd and its PIDFD_GET_INFO (tried on this thread).
bool PidfdInfoWorks() {
  const int fd = PidfdOpen(static_cast<int32_t>(gettid()));
  if (fd < 0) return false;
  PidfdInfo info;
  const bool ok = PidfdGetInfo(fd, &info) && info.tgid == static_cast<__u32>(getpid()) &&
                  info.euid == static_cast<__u32>(geteuid());
  close(fd);
  return ok;
}

}  // namespace

GateContextNeeds GateContextNeeds::Everything(size_t max_ancestors) {
  GateContextNeeds n;
  n.exe = n.argv = n.uid = n.parent_argv = true;
  n.ancestors = n.ancestor_exe = max_ancestors;
  return n;
}

GateContextNeeds NeedsOfRules(const policy::RuleSet& rules, size_t max_ancestors) {
  GateContextNeeds n;
  auto depth = [&](size_t d) { n.ancestors = std::max(n.ancestors, std::min(d, max_ancestors)); };
  auto exe_depth = [&](size_t d) {
    n.ancestor_exe = std::max(n.ancestor_exe, std::min(d, max_ancestors));
  };
  for (const policy::FieldUse& f : rules.UsedFields()) {
    const std::string_view name = f.name;
    if (name == "proc.exepath") {
      n.exe = true;
    } else if (name == "proc.exe") {
      n.exe = n.argv = true;
    } else if (name == "proc.args" || name == "proc.cmdline") {
      n.argv = true;
    } else if (name == "user.uid" || name == "user.name") {
      n.uid = true;
    } else if (name == "proc.pname") {
      depth(1);
    } else if (name == "proc.pexepath") {
      depth(1);
      exe_depth(1);
    } else if (name == "proc.pexe") {
      depth(1);
      exe_depth(1);
      n.parent_argv = true;
    } else if (name == "proc.pcmdline") {
      depth(1);
      n.parent_argv = true;
    } else if (name == "proc.aname" || name == "proc.aexepath") {
      const bool exe = name == "proc.aexepath";
      if (f.index == 0) {
        n.exe = n.exe || exe;  // the process itself
        continue;
      }
      const size_t d = f.index < 0 ? max_ancestors : static_cast<size_t>(f.index);
      depth(d);
      if (exe) exe_depth(d);
    }
  }
  if (n.ancestors == 0) n.parent_argv = false;
  return n;
}

ProcContextCache::ProcContextCache() : ProcContextCache(Options{}) {}

ProcContextCache::ProcContextCache(Options options) : options_(std::move(options)) {
  options_.capacity = std::max<size_t>(options_.capacity, 16);
  proc_fd_ = open(options_.proc_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  buf_.resize(kReadMax);
  pidfd_ = options_.pidfd && options_.proc_root == "/proc" && PidfdInfoWorks();
  const int highest = HighestOpenFd();
  const size_t used = static_cast<size_t>(highest + 1);
  const size_t limit = SoftFdLimit();
  max_fds_ = options_.max_fds;
  if (max_fds_ == 0) {
    const size_t free_fds = limit > used ? limit - used : 0;
    max_fds_ = std::min(2 * options_.capacity, std::max<size_t>(4, free_fds / 4));
  }
  max_fds_ = std::max<size_t>(max_fds_, 4);
  // Grow the descriptor table now to the highest number the kept descriptors can take (they take
  // the lowest free numbers), plus some for the rest of the process: a table grown later, while
  // other threads share it, makes the open() that grows it wait for an RCU grace period. The
  // kernel never shrinks a table, so a duplicate at that number, closed at once, is enough.
  if (proc_fd_ >= 0 && highest >= 0) {
    const size_t top = std::min(used + max_fds_ + kFdSlack, limit - 1);
    const int fd = fcntl(proc_fd_, F_DUPFD_CLOEXEC, static_cast<int>(top));
    if (fd >= 0) close(fd);
  }
}

ProcContextCache::~ProcContextCache() {
  for (auto& [tid, e] : entries_) {
    if (e.stat_fd >= 0) close(e.stat_fd);
    if (e.info_fd >= 0) close(e.info_fd);
  }
  for (auto& [pid, e] : named_) {
    close(e.pid_fd);
    close(e.comm_fd);
  }
  if (proc_fd_ >= 0) close(proc_fd_);
}

int ProcContextCache::OpenAt(int32_t tid, const char* file) {
  char path[48];
  std::snprintf(path, sizeof path, "%d/%s", static_cast<int>(tid), file);
  ++stats_.syscalls;
  return openat(proc_fd_, path, O_RDONLY | O_CLOEXEC);
}

int ProcContextCache::OpenKept(int32_t tid, const char* file, const Entry* keep) {
  while (fds_ >= max_fds_ && EvictOne(keep)) {
  }
  auto open_it = [&] {
    if (file != nullptr) return OpenAt(tid, file);
    ++stats_.syscalls;
    return PidfdOpen(tid);
  };
  int fd = open_it();
  if (fd < 0 && (errno == EMFILE || errno == ENFILE) && EvictOne(keep)) fd = open_it();
  if (fd >= 0) ++fds_;
  return fd;
}

void ProcContextCache::Forget(std::unordered_map<int32_t, Entry>::iterator it) {
  const size_t held = (it->second.stat_fd >= 0) + (it->second.info_fd >= 0);
  if (it->second.stat_fd >= 0) close(it->second.stat_fd);
  if (it->second.info_fd >= 0) close(it->second.info_fd);
  stats_.syscalls += held;
  fds_ -= held;
  entries_.erase(it);
}

void ProcContextCache::ForgetNamed(std::unordered_map<int32_t, Named>::iterator it) {
  close(it->second.pid_fd);
  close(it->second.comm_fd);
  stats_.syscalls += 2;
  fds_ -= 2;
  named_.erase(it);
}

bool ProcContextCache::EvictOne(const Entry* keep) {
  auto oldest = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (&it->second == keep) continue;
    if (oldest == entries_.end() || it->second.used < oldest->second.used) oldest = it;
  }
  auto oldest_named = named_.end();
  for (auto it = named_.begin(); it != named_.end(); ++it) {
    if (oldest_named == named_.end() || it->second.used < oldest_named->second.used) {
      oldest_named = it;
    }
  }
  if (oldest_named != named_.end() &&
      (oldest == entries_.end() || oldest_named->second.used < oldest->second.used)) {
    ForgetNamed(oldest_named);
  } else if (oldest != entries_.end()) {
    Forget(oldest);
  } else {
    return false;
  }
  ++stats_.evicted;
  return true;
}

ProcContextCache::Named* ProcContextCache::RefreshNamed(int32_t pid) {
  if (pid <= 0 || proc_fd_ < 0 || !pidfd_) return nullptr;
  ++stats_.lookups;
  PidfdInfo info;
  auto it = named_.find(pid);
  if (it != named_.end()) {
    ++stats_.syscalls;
    if (!PidfdGetInfo(it->second.pid_fd, &info)) {  // gone; the pid may be another's now
      ++stats_.gone;
      ForgetNamed(it);
      it = named_.end();
    }
  }
  if (it == named_.end()) {
    while (size() >= options_.capacity && EvictOne(nullptr)) {
    }
    int pid_fd = -1;
    const int comm_fd = OpenAfterPidfd(pid, "comm", true, &pid_fd);
    if (comm_fd < 0) return nullptr;
    ++stats_.syscalls;
    if (pid_fd < 0 || !PidfdGetInfo(pid_fd, &info)) {
      CloseUnkept(comm_fd);
      CloseUnkept(pid_fd);
      return nullptr;
    }
    it = named_.emplace(pid, Named{}).first;
    it->second.pid_fd = pid_fd;
    it->second.comm_fd = comm_fd;
    ++stats_.new_entries;
  }
  Named& e = it->second;
  char comm[64];
  ++stats_.syscalls;
  ssize_t n = pread(e.comm_fd, comm, sizeof comm, 0);
  if (n <= 0) {  // gone since the ioctl
    ForgetNamed(it);
    return nullptr;
  }
  if (comm[n - 1] == '\n') --n;
  e.comm.assign(comm, static_cast<size_t>(n));
  e.ppid = static_cast<int32_t>(info.ppid);
  e.tgid = static_cast<int32_t>(info.tgid);
  e.euid = info.euid;
  e.used = ++clock_;
  return &e;
}

int ProcContextCache::OpenAfterPidfd(int32_t pid, const char* file, bool with_pidfd, int* pid_fd) {
  *pid_fd = with_pidfd ? OpenKept(pid, nullptr, nullptr) : -1;
  const int fd = OpenKept(pid, file, nullptr);
  if (fd < 0) {
    CloseUnkept(*pid_fd);
    *pid_fd = -1;
  }
  return fd;
}

void ProcContextCache::CloseUnkept(int fd) {
  if (fd < 0) return;
  ++stats_.syscalls;
  close(fd);
  --fds_;
}

ProcContextCache::Entry* ProcContextCache::Refresh(int32_t tid, bool want_info) {
  if (tid <= 0 || proc_fd_ < 0) return nullptr;
  ++stats_.lookups;
  char stat[1024];
  ssize_t n = -1;
  auto it = entries_.find(tid);
  if (it != entries_.end()) {
    ++stats_.syscalls;
    n = pread(it->second.stat_fd, stat, sizeof stat, 0);
    if (n <= 0) {  // the process it named is gone; the pid may be another's now
      ++stats_.gone;
      Forget(it);
      it = entries_.end();
    }
  }
  if (it == entries_.end()) {
    while (size() >= options_.capacity && EvictOne(nullptr)) {
    }
    int pid_fd = -1;
    const int fd = OpenAfterPidfd(tid, "stat", want_info && pidfd_, &pid_fd);
    if (fd < 0) return nullptr;
    ++stats_.syscalls;
    n = pread(fd, stat, sizeof stat, 0);
    if (n <= 0) {
      CloseUnkept(fd);
      CloseUnkept(pid_fd);
      return nullptr;
    }
    it = entries_.emplace(tid, Entry{}).first;
    it->second.stat_fd = fd;
    it->second.info_fd = pid_fd;
    ++stats_.new_entries;
  }
  Entry& e = it->second;
  // A full buffer may have cut the last fields: not trusted then (read afresh every time).
  auto st = enforce::ParseStat(std::string_view(stat, static_cast<size_t>(n)));
  if (!st.has_value()) {
    Forget(it);
    return nullptr;
  }
  const bool layout_shown =
      static_cast<size_t>(n) < sizeof stat &&
      std::any_of(st->layout.begin(), st->layout.end(), [](uint64_t v) { return v != 0; });
  const uint64_t print = Fingerprint(*st);
  if (e.start_time != st->start_time || !e.trusted || !layout_shown || print != e.print) {
    if (e.start_time == st->start_time && e.trusted && layout_shown) ++stats_.execs;
    e.have_exe = e.have_argv = false;
    e.tgid = 0;
  }
  e.start_time = st->start_time;
  e.print = print;
  e.trusted = layout_shown;
  e.comm.assign(st->comm);
  e.ppid = st->ppid;
  e.used = ++clock_;
  return &e;
}

void ProcContextCache::ReadInfo(int32_t tid, Entry* e) {
  if (pidfd_) {
    ReadPidfdInfo(tid, e);
  } else {
    ReadStatus(tid, e);
  }
}

void ProcContextCache::ReadPidfdInfo(int32_t tid, Entry* e) {
  if (e->info_fd < 0) {
    e->info_fd = OpenKept(tid, nullptr, e);
    if (e->info_fd < 0) return;
    // Opened by number after the stat: it names the same process only if that one still lives
    // now (a live process keeps its pid), which the kept stat descriptor tells.
    char probe[64];
    ++stats_.syscalls;
    if (pread(e->stat_fd, probe, sizeof probe, 0) <= 0) {
      CloseUnkept(e->info_fd);
      e->info_fd = -1;
      return;
    }
  }
  PidfdInfo info;
  ++stats_.syscalls;
  if (!PidfdGetInfo(e->info_fd, &info)) {
    // Gone meanwhile, or a process whose parent this pid namespace does not show (the kernel
    // then refuses the info): status tells, once, when it is the kept process's (it still lives
    // after the open: the kept stat reads).
    const int fd = OpenAt(tid, "status");
    if (fd < 0) return;
    char probe[64];
    stats_.syscalls += 2;
    if (pread(e->stat_fd, probe, sizeof probe, 0) > 0) ReadStatusFrom(fd, e);
    close(fd);
    return;
  }
  e->tgid = static_cast<int32_t>(info.tgid);
  e->euid = info.euid;
}

void ProcContextCache::ReadStatus(int32_t tid, Entry* e) {
  if (e->info_fd < 0) e->info_fd = OpenKept(tid, "status", e);
  if (e->info_fd < 0) return;
  ReadStatusFrom(e->info_fd, e);
}

void ProcContextCache::ReadStatusFrom(int fd, Entry* e) {
  ++stats_.syscalls;
  const ssize_t n = pread(fd, buf_.data(), buf_.size(), 0);
  if (n <= 0) return;
  auto s = enrich::ParseProcStatus(std::string_view(buf_.data(), static_cast<size_t>(n)));
  if (!s.has_value()) return;
  e->tgid = static_cast<int32_t>(s->tgid);
  e->euid = s->euid;
}

void ProcContextCache::ReadExe(int32_t tid, Entry* e) {
  char path[48];
  std::snprintf(path, sizeof path, "%d/exe", static_cast<int>(tid));
  ++stats_.syscalls;
  const ssize_t n = readlinkat(proc_fd_, path, buf_.data(), buf_.size());
  e->exe.assign(buf_.data(), n > 0 ? static_cast<size_t>(n) : 0);
  e->have_exe = true;
}

void ProcContextCache::ReadArgv(int32_t tid, Entry* e) {
  e->have_argv = true;
  const int fd = OpenAt(tid, "cmdline");
  if (fd < 0) {
    e->argv.clear();
    return;
  }
  size_t done = 0;
  while (done < buf_.size()) {
    ++stats_.syscalls;
    const ssize_t n = read(fd, buf_.data() + done, buf_.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ++stats_.syscalls;
  close(fd);
  enrich::SplitCmdline(std::string_view(buf_.data(), done), enrich::ArgvLimits{}, &e->argv);
}

bool ProcContextCache::Describe(int32_t tid, const GateContextNeeds& needs, bool exec_call,
                                core::Event* event, policy::EvalInput* in, bool tid_is_tgid) {
  // A caller whose executable and argv are not read, and whose uid or thread group is, is
  // described as an ancestor read by name is, its thread group and uid coming from the same
  // PIDFD_GET_INFO (see the header). Without the uid and thread group (an exec gate's caller, a
  // new process at every call, when no rule reads user.*), its stat alone costs fewer calls.
  const bool by_name = (exec_call || (!needs.exe && !needs.argv)) && (needs.uid || !tid_is_tgid);
  const Named* named = pidfd_ && by_name ? RefreshNamed(tid) : nullptr;
  int32_t parent = 0;
  if (named != nullptr) {
    event->proc.pid = static_cast<uint32_t>(named->tgid);
    if (needs.uid) event->proc.uid = named->euid;
    event->proc.ppid = static_cast<uint32_t>(named->ppid);
    event->proc.comm.assign(named->comm);
    if (!exec_call) in->argv.clear();
    parent = named->ppid;
  } else if (!DescribeKept(tid, needs, exec_call, event, in, tid_is_tgid, &parent)) {
    return false;
  }
  size_t depth = 0;
  int32_t pid = parent;  // no entry may be used below: refreshing one can forget others
  while (depth < needs.ancestors && pid > 0) {
    const bool exe = depth < needs.ancestor_exe;
    const bool argv = depth == 0 && needs.parent_argv;
    if (!exe && !argv && pidfd_) {  // the name and parent alone (see the header)
      if (const Named* a = RefreshNamed(pid)) {
        if (depth == in->ancestors.size()) in->ancestors.emplace_back();
        policy::Ancestor& anc = in->ancestors[depth];
        anc.name.assign(a->comm);
        anc.exe.clear();
        anc.argv.clear();
        pid = a->ppid;
        ++depth;
        continue;
      }  // else gone, or its info refused: the stat says which
    }
    Entry* a = Refresh(pid, false);
    if (a == nullptr) break;
    if (depth == in->ancestors.size()) in->ancestors.emplace_back();
    policy::Ancestor& anc = in->ancestors[depth];
    anc.name.assign(a->comm);
    if (exe) {
      if (!a->have_exe || !a->trusted) ReadExe(pid, a);
      anc.exe.assign(a->exe);
    } else {
      anc.exe.clear();
    }
    if (argv) {
      if (!a->have_argv || !a->trusted) ReadArgv(pid, a);
      anc.argv = a->argv;
    } else {
      anc.argv.clear();
    }
    pid = a->ppid;
    ++depth;
  }
  in->ancestors.resize(depth);
  return true;
}

bool ProcContextCache::DescribeKept(int32_t tid, const GateContextNeeds& needs, bool exec_call,
                                    core::Event* event, policy::EvalInput* in, bool tid_is_tgid,
                                    int32_t* parent) {
  Entry* self = Refresh(tid, needs.uid || !tid_is_tgid);
  if (self == nullptr) return false;
  if (self->tgid == 0 && tid_is_tgid) self->tgid = tid;
  if (self->tgid == 0 || needs.uid) ReadInfo(tid, self);
  if (self->tgid > 0) event->proc.pid = static_cast<uint32_t>(self->tgid);
  if (needs.uid) event->proc.uid = self->euid;
  event->proc.ppid = static_cast<uint32_t>(self->ppid);
  event->proc.comm.assign(self->comm);
  if (!exec_call) {
    if (needs.exe) {
      if (!self->have_exe || !self->trusted) ReadExe(tid, self);
      event->proc.exe.assign(self->exe);
    }
    if (needs.argv) {
      if (!self->have_argv || !self->trusted) ReadArgv(tid, self);
      in->argv = self->argv;
    } else {
      in->argv.clear();
    }
  }
  *parent = self->ppid;
  return true;
}

}  // namespace vigil::app
