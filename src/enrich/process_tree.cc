#include "enrich/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

namespace vigil::enrich {
namespace {

// Declared after the exclusive lock, so the tree's generation moves on after the change and
// before the lock is released (ProcessTree::generation()).
class GenerationBump {
 public:
  explicit GenerationBump(std::atomic<uint64_t>& g) : g_(g) {}
  ~GenerationBump() { g_.fetch_add(1, std::memory_order_release); }
  GenerationBump(const GenerationBump&) = delete;
  GenerationBump& operator=(const GenerationBump&) = delete;

 private:
  std::atomic<uint64_t>& g_;
};

constexpr size_t kMaxCommBytes = 64;
constexpr size_t kMaxStatBytes = 4096;
constexpr size_t kMaxStatusBytes = 16384;
constexpr size_t kMaxCgroupFileBytes = 16384;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

// Reads at most `max` bytes of `path` into *out. Returns 0 or the errno of the failure.
int ReadFileBounded(const std::string& path, size_t max, std::string* out) {
  out->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out->resize(max);
  size_t got = 0;
  int err = 0;
  // /proc files may return less than asked per read (cmdline comes a page at a time).
  while (got < max) {
    const ssize_t n = ::read(fd, out->data() + got, max - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out->resize(got);
  return err;
}

bool IsVanished(int err) { return err == ENOENT || err == ESRCH; }

std::string Cut(std::string_view s, size_t max) { return std::string(s.substr(0, max)); }

}  // namespace

std::string_view EvictionCauseName(EvictionCause cause) {
  switch (cause) {
    case EvictionCause::kGraceExpired:
      return "grace_expired";
    case EvictionCause::kCapExited:
      return "cap_exited";
    case EvictionCause::kCapLive:
      return "cap_live";
  }
  return "unknown";
}

uint64_t ProcessTreeStats::evictions_total() const {
  uint64_t total = 0;
  for (const uint64_t n : evictions) total += n;
  return total;
}

core::Result<std::unique_ptr<ProcessTree>> ProcessTree::Create(
    ProcessTreeOptions options, const core::Clock* clock, std::unique_ptr<UserResolver> users) {
  if (clock == nullptr) return core::InvalidArgument("process tree: clock is null");
  if (options.max_entries == 0) return core::InvalidArgument("process tree: max_entries is 0");
  if (options.exit_grace_ns < 0) {
    return core::InvalidArgument("process tree: exit_grace_ns is negative");
  }
  if (options.max_path_bytes == 0) {
    return core::InvalidArgument("process tree: max_path_bytes is 0");
  }
  if (options.user_cache_capacity == 0) {
    return core::InvalidArgument("process tree: user_cache_capacity is 0");
  }
  int64_t ticks = options.clock_ticks_per_second;
  if (ticks < 0) return core::InvalidArgument("process tree: clock_ticks_per_second is negative");
  if (ticks == 0) {
    ticks = ::sysconf(_SC_CLK_TCK);
    if (ticks <= 0) {
      return core::InvalidArgument(
          "process tree: sysconf(_SC_CLK_TCK) failed; set "
          "clock_ticks_per_second");
    }
    options.clock_ticks_per_second = ticks;
  }
  if (ticks > kNanosPerSecond) {
    return core::InvalidArgument("process tree: clock_ticks_per_second above 1e9");
  }
  if (users == nullptr) users = std::make_unique<SystemUserResolver>();
  return std::unique_ptr<ProcessTree>(
      new ProcessTree(std::move(options), clock, std::move(users), kNanosPerSecond / ticks));
}

ProcessTree::ProcessTree(ProcessTreeOptions options, const core::Clock* clock,
                         std::unique_ptr<UserResolver> users, int64_t tick_ns)
    : options_(std::move(options)),
      clock_(clock),
      user_db_(std::move(users)),
      users_(user_db_.get(), options_.user_cache_capacity),
      tick_ns_(tick_ns) {
  // Generations of different trees never coincide, so a cache keyed by (tree address,
  // generation) cannot mistake a new tree at a freed tree's address for the old one.
  static std::atomic<uint64_t> trees{0};
  generation_.store((trees.fetch_add(1, std::memory_order_relaxed) + 1) << 40,
                    std::memory_order_relaxed);
}

ProcessTree::~ProcessTree() = default;

bool ProcessTree::SameStart(uint64_t a, uint64_t b) const {
  if (a == kUnknownTime || b == kUnknownTime) return true;
  const uint64_t diff = a > b ? a - b : b - a;
  return diff < static_cast<uint64_t>(tick_ns_);
}

std::string ProcessTree::ProcDir(uint32_t pid) const {
  return options_.proc_root + "/" + std::to_string(pid) + "/";
}

ProcessTree::ReadOutcome ProcessTree::ReadStat(const std::string& dir, uint32_t pid,
                                               ProcessInfo* out) const {
  std::string buf;
  const int err = ReadFileBounded(dir + "stat", kMaxStatBytes, &buf);
  if (err != 0) return IsVanished(err) ? ReadOutcome::kVanished : ReadOutcome::kMalformed;
  if (buf.empty()) return ReadOutcome::kVanished;  // the kernel gives an empty file mid-teardown
  const core::Result<ProcStat> stat = ParseProcStat(buf);
  if (!stat.has_value()) return ReadOutcome::kMalformed;
  out->pid = pid;
  out->ppid = stat->ppid;
  out->comm = Cut(stat->comm, kMaxCommBytes);
  // Split to keep ticks * 1e9 from overflowing after a long uptime.
  const uint64_t tps = static_cast<uint64_t>(options_.clock_ticks_per_second);
  out->start_time_ns =
      stat->start_ticks / tps * kNanosPerSecond + stat->start_ticks % tps * kNanosPerSecond / tps;
  // A zombie has exited; only its parent's wait() is missing. No exit event will come for it.
  out->exited = stat->state == 'Z' || stat->state == 'X';
  return ReadOutcome::kOk;
}

std::string ProcessTree::ReadCwd(const std::string& dir) const {
  std::string link(options_.max_path_bytes + 1, '\0');
  const ssize_t n = ::readlink((dir + "cwd").c_str(), link.data(), link.size());
  return n > 0 ? Cut(std::string_view(link.data(), static_cast<size_t>(n)), options_.max_path_bytes)
               : std::string();
}

bool ProcessTree::ReadCgroup(const std::string& dir, ProcessInfo* out) const {
  std::string buf;
  if (ReadFileBounded(dir + "cgroup", kMaxCgroupFileBytes, &buf) != 0 || buf.empty()) return false;
  ProcCgroup cgroup = ParseProcCgroup(buf, options_.max_path_bytes);
  out->cgroup = std::move(cgroup.path);
  out->container_id = std::move(cgroup.container_id);
  return true;
}

ProcessTree::ReadOutcome ProcessTree::ReadProcess(uint32_t pid, ProcessInfo* out) const {
  const std::string dir = ProcDir(pid);
  const ReadOutcome stat = ReadStat(dir, pid, out);
  if (stat != ReadOutcome::kOk) return stat;

  std::string buf;
  const int err = ReadFileBounded(dir + "status", kMaxStatusBytes, &buf);
  if (err != 0) return IsVanished(err) ? ReadOutcome::kVanished : ReadOutcome::kMalformed;
  const core::Result<ProcStatus> status = ParseProcStatus(buf);
  if (!status.has_value()) return ReadOutcome::kMalformed;
  if (status->tgid != pid) return ReadOutcome::kNotLeader;
  out->uid = status->euid;
  out->uid_known = true;

  // Absent for kernel threads and zombies, unreadable without CAP_SYS_PTRACE for other users'
  // processes: the field stays empty in each case.
  std::string link(options_.max_path_bytes + 1, '\0');
  const ssize_t n = ::readlink((dir + "exe").c_str(), link.data(), link.size());
  if (n > 0) {
    out->exe = Cut(std::string_view(link.data(), static_cast<size_t>(n)), options_.max_path_bytes);
  }

  const ArgvLimits& limits = options_.argv_limits;
  if (ReadFileBounded(dir + "cmdline", limits.max_bytes + 1, &buf) == 0) {
    out->argv_truncated = SplitCmdline(buf, limits, &out->argv) || buf.size() > limits.max_bytes;
  }
  ReadCgroup(dir, out);
  out->cwd = ReadCwd(dir);
  return ReadOutcome::kOk;
}

core::Status ProcessTree::LoadSnapshot() {
  DIR* dir = ::opendir(options_.proc_root.c_str());
  if (dir == nullptr) {
    const int err = errno;
    std::string message =
        "process tree snapshot: opening " + options_.proc_root + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return core::NotFound(std::move(message));
    if (err == EACCES || err == EPERM) {
      return core::Status(core::StatusCode::kPermissionDenied, std::move(message));
    }
    return core::Unavailable(std::move(message));
  }
  std::vector<uint32_t> pids;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    uint64_t pid = 0;
    for (const char c : name) pid = pid * 10 + static_cast<uint64_t>(c - '0');
    if (pid == 0 || pid > UINT32_MAX || name.size() > 10) continue;
    pids.push_back(static_cast<uint32_t>(pid));
  }
  ::closedir(dir);

  std::vector<ProcessInfo> found;
  found.reserve(pids.size());
  uint64_t errors = 0;
  for (const uint32_t pid : pids) {
    ProcessInfo info;
    switch (ReadProcess(pid, &info)) {
      case ReadOutcome::kOk:
        info.user = users_.NameOf(info.uid);
        found.push_back(std::move(info));
        break;
      case ReadOutcome::kMalformed:
        ++errors;
        break;
      case ReadOutcome::kVanished:
      case ReadOutcome::kNotLeader:
        break;
    }
  }
  snapshot_errors_.fetch_add(errors, std::memory_order_relaxed);
  // Oldest first, so the cap (if reached) pushes out the oldest, as it does for events.
  std::stable_sort(found.begin(), found.end(), [](const ProcessInfo& a, const ProcessInfo& b) {
    return a.start_time_ns < b.start_time_ns;
  });

  const int64_t now = clock_->MonotonicNanos();
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  EvictExpiredLocked(now);
  for (ProcessInfo& info : found) {
    if (by_pid_.count(info.pid) != 0) continue;
    InsertLocked(std::move(info), now);
  }
  return core::Status::Ok();
}

void ProcessTree::OnFork(uint32_t parent_tgid, uint32_t child_tgid, uint64_t start_time_ns) {
  if (child_tgid == parent_tgid || child_tgid == 0) return;
  const int64_t now = clock_->MonotonicNanos();
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  EvictExpiredLocked(now);
  const auto it = by_pid_.find(child_tgid);
  if (it != by_pid_.end()) {
    ProcessInfo& held = it->second.info;
    if (!held.exited && held.start_time_ns != kUnknownTime && start_time_ns != kUnknownTime &&
        SameStart(held.start_time_ns, start_time_ns)) {
      if (held.ppid == 0) held.ppid = parent_tgid;
      return;
    }
    pid_reuse_.fetch_add(1, std::memory_order_relaxed);
  }
  ProcessInfo child;
  const auto parent = by_pid_.find(parent_tgid);
  // Copied before inserting: making room may evict the parent.
  if (parent != by_pid_.end()) child = parent->second.info;
  child.pid = child_tgid;
  child.ppid = parent_tgid;
  child.start_time_ns = start_time_ns;
  child.exit_time_ns = kUnknownTime;
  child.exited = false;
  InsertLocked(std::move(child), now);
}

void ProcessTree::OnExec(uint32_t tgid, std::string_view exe, std::span<const std::string> argv,
                         uint32_t uid, std::string_view comm, uint64_t time_ns,
                         uint64_t start_time_ns) {
  (void)time_ns;
  if (tgid == 0) return;
  // Everything slow happens before the exclusive lock: bounding strings, the user database and
  // /proc reads. The peek under the shared lock is stable because there is one writer.
  std::vector<std::string> bounded_argv;
  const bool argv_truncated = BoundArgv(argv, options_.argv_limits, &bounded_argv);
  std::string user = users_.NameOf(uid);
  bool need_replace = true;
  {
    std::shared_lock lock(mu_);
    const auto it = by_pid_.find(tgid);
    if (it != by_pid_.end() && !it->second.info.exited &&
        SameStart(it->second.info.start_time_ns, start_time_ns)) {
      need_replace = false;
    }
  }
  // stat only for a process new to the tree (its parent and start time); cgroup in every case.
  // When the stat's start time contradicts the event's, the pid has moved on: use neither.
  ProcessInfo from_proc;
  bool have_stat = false, have_cgroup = false;
  if (options_.read_proc_on_exec) {
    const std::string dir = ProcDir(tgid);
    if (need_replace) {
      have_stat = ReadStat(dir, tgid, &from_proc) == ReadOutcome::kOk &&
                  SameStart(from_proc.start_time_ns, start_time_ns);
    }
    if (!need_replace || have_stat) have_cgroup = ReadCgroup(dir, &from_proc);
    from_proc.cwd = ReadCwd(dir);
  }

  const int64_t now = clock_->MonotonicNanos();
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  EvictExpiredLocked(now);
  auto it = by_pid_.find(tgid);
  ProcessInfo* info = nullptr;
  if (it != by_pid_.end() && !need_replace) {
    info = &it->second.info;
    if (info->start_time_ns == kUnknownTime) info->start_time_ns = start_time_ns;
  } else {
    if (it != by_pid_.end()) pid_reuse_.fetch_add(1, std::memory_order_relaxed);
    ProcessInfo fresh;
    fresh.pid = tgid;
    if (have_stat) {
      fresh.ppid = from_proc.ppid;
      fresh.start_time_ns = from_proc.start_time_ns;
    }
    if (start_time_ns != kUnknownTime) fresh.start_time_ns = start_time_ns;
    info = &InsertLocked(std::move(fresh), now).info;
  }
  if (have_cgroup) {
    info->cgroup = std::move(from_proc.cgroup);
    info->container_id = std::move(from_proc.container_id);
  }
  info->exe = Cut(exe, options_.max_path_bytes);
  info->cwd = std::move(from_proc.cwd);
  info->argv = std::move(bounded_argv);
  info->argv_truncated = argv_truncated;
  info->uid = uid;
  info->uid_known = true;
  info->user = std::move(user);
  info->comm = Cut(comm, kMaxCommBytes);
}

void ProcessTree::OnExit(uint32_t tgid, uint64_t time_ns) {
  const int64_t now = clock_->MonotonicNanos();
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  EvictExpiredLocked(now);
  const auto it = by_pid_.find(tgid);
  if (it == by_pid_.end()) {
    unknown_exits_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Node& node = it->second;
  if (node.info.exited) return;
  node.info.exited = true;
  node.info.exit_time_ns = time_ns;
  node.exit_mono_ns = now;
  node.exit_key = next_exit_key_++;
  exited_.emplace(node.exit_key, tgid);
  live_.fetch_sub(1, std::memory_order_relaxed);
  exited_kept_.fetch_add(1, std::memory_order_relaxed);
}

void ProcessTree::EvictExpired() {
  const int64_t now = clock_->MonotonicNanos();
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  EvictExpiredLocked(now);
}

void ProcessTree::EvictExpiredLocked(int64_t now_mono) {
  // exited_ is in OnExit order, and OnExit reads a monotonic clock, so the first entry whose
  // grace has not run out ends the sweep.
  while (!exited_.empty()) {
    const auto it = by_pid_.find(exited_.begin()->second);
    if (it->second.exit_mono_ns > now_mono - options_.exit_grace_ns) break;
    EraseLocked(it, EvictionCause::kGraceExpired);
  }
}

ProcessTree::Node& ProcessTree::InsertLocked(ProcessInfo info, int64_t now_mono) {
  const uint32_t pid = info.pid;
  const auto it = by_pid_.find(pid);
  if (it != by_pid_.end()) {
    EraseLocked(it, std::nullopt);  // a replacement: the caller counted the reuse
  } else if (by_pid_.size() >= options_.max_entries) {
    MakeRoomLocked();
  }
  Node node;
  node.info = std::move(info);
  node.serial = next_serial_++;
  age_.emplace(node.serial, pid);
  if (node.info.exited) {
    node.exit_mono_ns = now_mono;
    node.exit_key = next_exit_key_++;
    exited_.emplace(node.exit_key, pid);
    exited_kept_.fetch_add(1, std::memory_order_relaxed);
  } else {
    live_.fetch_add(1, std::memory_order_relaxed);
  }
  return by_pid_.insert_or_assign(pid, std::move(node)).first->second;
}

void ProcessTree::MakeRoomLocked() {
  if (!exited_.empty()) {
    EraseLocked(by_pid_.find(exited_.begin()->second), EvictionCause::kCapExited);
  } else if (!age_.empty()) {
    EraseLocked(by_pid_.find(age_.begin()->second), EvictionCause::kCapLive);
  }
}

void ProcessTree::EraseLocked(std::unordered_map<uint32_t, Node>::iterator it,
                              std::optional<EvictionCause> cause) {
  const Node& node = it->second;
  age_.erase(node.serial);
  if (node.exit_key != 0) {
    exited_.erase(node.exit_key);
    exited_kept_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    live_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (cause.has_value()) {
    evictions_[static_cast<size_t>(*cause)].fetch_add(1, std::memory_order_relaxed);
  }
  by_pid_.erase(it);
}

bool ProcessTree::Enrich(core::Event* event) const {
  if (event == nullptr || event->proc.pid == 0) return false;
  std::shared_lock lock(mu_);
  const auto it = by_pid_.find(event->proc.pid);
  if (it == by_pid_.end()) return false;
  const ProcessInfo& info = it->second.info;
  core::ProcessIdentity& proc = event->proc;
  const bool carries_identity = !proc.comm.empty() || !proc.exe.empty();
  if (proc.ppid == 0) proc.ppid = info.ppid;
  if (proc.comm.empty()) proc.comm = info.comm;
  if (proc.exe.empty()) proc.exe = info.exe;
  if (!carries_identity && info.uid_known) proc.uid = info.uid;
  if (proc.loginuid == core::kNoLoginUid) proc.loginuid = info.loginuid;
  if (proc.tty == 0) proc.tty = info.tty;
  if (!proc.has_caps && info.has_caps) {
    proc.has_caps = true;
    proc.cap_effective = info.cap_effective;
    proc.cap_permitted = info.cap_permitted;
  }
  return true;
}

void ProcessTree::OnExecAttributes(uint32_t tgid, const core::ProcessIdentity& proc) {
  std::unique_lock lock(mu_);
  const GenerationBump bump(generation_);
  const auto it = by_pid_.find(tgid);
  if (it == by_pid_.end()) return;
  ProcessInfo& info = it->second.info;
  info.loginuid = proc.loginuid;
  info.tty = proc.tty;
  info.has_caps = proc.has_caps;
  info.cap_effective = proc.cap_effective;
  info.cap_permitted = proc.cap_permitted;
}

std::optional<ProcessInfo> ProcessTree::Lookup(uint32_t tgid) const {
  std::shared_lock lock(mu_);
  const auto it = by_pid_.find(tgid);
  if (it == by_pid_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<ProcessInfo> ProcessTree::Ancestors(uint32_t tgid, size_t max_depth) const {
  std::vector<ProcessInfo> out;
  const size_t depth = std::min(max_depth, kMaxAncestorDepth);
  std::shared_lock lock(mu_);
  auto it = by_pid_.find(tgid);
  if (it == by_pid_.end()) return out;
  const ProcessInfo* child = &it->second.info;
  while (out.size() < depth) {
    const uint32_t ppid = child->ppid;
    if (ppid == 0 || ppid == child->pid || ppid == tgid) break;
    it = by_pid_.find(ppid);
    if (it == by_pid_.end()) break;
    const ProcessInfo* parent = &it->second.info;
    if (parent->start_time_ns != kUnknownTime && child->start_time_ns != kUnknownTime &&
        parent->start_time_ns > child->start_time_ns &&
        !SameStart(parent->start_time_ns, child->start_time_ns)) {
      break;
    }
    // Without start times a reused pid can close a loop; depth is small, so scan.
    if (std::any_of(out.begin(), out.end(),
                    [ppid](const ProcessInfo& seen) { return seen.pid == ppid; })) {
      break;
    }
    out.push_back(*parent);
    child = parent;
  }
  return out;
}

size_t ProcessTree::size() const {
  std::shared_lock lock(mu_);
  return by_pid_.size();
}

ProcessTreeStats ProcessTree::stats() const {
  ProcessTreeStats s;
  s.live = live_.load(std::memory_order_relaxed);
  s.exited_kept = exited_kept_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kEvictionCauseCount; ++i) {
    s.evictions[i] = evictions_[i].load(std::memory_order_relaxed);
  }
  s.pid_reuse = pid_reuse_.load(std::memory_order_relaxed);
  s.snapshot_errors = snapshot_errors_.load(std::memory_order_relaxed);
  s.unknown_exits = unknown_exits_.load(std::memory_order_relaxed);
  return s;
}

core::Result<std::vector<core::Registry::CallbackHandle>> ProcessTree::ExportMetrics(
    core::Registry* registry) const {
  std::vector<core::Registry::CallbackHandle> handles;
  auto add = [&](bool counter, std::string_view name, std::string_view help, core::Labels labels,
                 const std::atomic<uint64_t>* value) -> core::Status {
    auto read = [value] { return static_cast<double>(value->load(std::memory_order_relaxed)); };
    core::Result<core::Registry::CallbackHandle> handle =
        counter ? registry->AddCallbackCounter(name, help, labels, read)
                : registry->AddCallbackGauge(name, help, labels, read);
    if (!handle.has_value()) return handle.error();
    handles.push_back(std::move(handle).value());
    return core::Status::Ok();
  };
  constexpr std::string_view kProcessesHelp = "Processes held by the process tree, by state.";
  VIGIL_RETURN_IF_ERROR(
      add(false, "vigil_process_tree_processes", kProcessesHelp, {{"state", "live"}}, &live_));
  VIGIL_RETURN_IF_ERROR(add(false, "vigil_process_tree_processes", kProcessesHelp,
                            {{"state", "exited"}}, &exited_kept_));
  for (size_t i = 0; i < kEvictionCauseCount; ++i) {
    VIGIL_RETURN_IF_ERROR(add(
        true, "vigil_process_tree_evictions_total", "Processes evicted from the tree, by cause.",
        {{"cause", std::string(EvictionCauseName(static_cast<EvictionCause>(i)))}},
        &evictions_[i]));
  }
  VIGIL_RETURN_IF_ERROR(add(true, "vigil_process_tree_pid_reuse_total",
                            "Tree entries replaced by a new process with the same pid.", {},
                            &pid_reuse_));
  VIGIL_RETURN_IF_ERROR(add(true, "vigil_process_tree_snapshot_errors_total",
                            "/proc entries skipped by the snapshot as unreadable or malformed.", {},
                            &snapshot_errors_));
  VIGIL_RETURN_IF_ERROR(add(true, "vigil_process_tree_unknown_exits_total",
                            "Exits of processes the tree did not hold.", {}, &unknown_exits_));
  return handles;
}

}  // namespace vigil::enrich
