#pragma once

// The host operations behind the actions: processes (read from /proc, signalled through pidfds)
// and cgroup v2 directories (create, move processes, freeze, kill, remove). Every failure names
// the pid or the path and the reason.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "enforce/proc.h"

namespace vigil::enforce::internal {

core::Result<StatFields> ReadStat(int32_t pid);
// The process's cgroup v2 path (below the hierarchy root).
core::Result<std::string> ReadProcessCgroup(int32_t pid);
// Checks that `pid` runs and, when start_time != 0, is the process that started then.
core::Status CheckProcess(int32_t pid, uint64_t start_time);
// `roots` and every live descendant of them (scanning /proc), roots first.
std::vector<int32_t> WithDescendants(const std::vector<int32_t>& roots);
// Every live process whose process group is `pgid`.
std::vector<int32_t> GroupMembers(int32_t pgid);

// SIGKILL through a pidfd opened after the start-time check, so a pid recycled in between is
// not hit (kNotFound when the process is gone).
core::Status KillProcess(int32_t pid, uint64_t start_time);
core::Status KillProcessGroup(int32_t pgid);

// One cgroup v2 hierarchy, addressed by paths below its root ("/a/b").
class Cgroups {
 public:
  // Finds the cgroup2 mount in /proc/self/mountinfo, or mounts the hierarchy at
  // /run/vigil/cgroup2 when none is mounted (saying so in the log). `root` non-empty: use it.
  static core::Result<Cgroups> Open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string Abs(const std::string& path) const { return root_ + (path == "/" ? "" : path); }
  bool Exists(const std::string& path) const;
  core::Status Create(const std::string& path);  // with missing parents; fine when it exists
  core::Status Remove(const std::string& path);  // rmdir; fine when already gone
  // Writes the pid into PATH/cgroup.procs (moves the whole process). kNotFound when it is gone.
  core::Status Move(int32_t pid, const std::string& path);
  std::vector<int32_t> Procs(const std::string& path) const;
  // Writes cgroup.freeze and waits (poll on cgroup.events, at most `wait_ms`) until the kernel
  // reports the state; kDeadlineExceeded when it does not in time.
  core::Status SetFrozen(const std::string& path, bool frozen, int wait_ms);
  // Writes 1 to cgroup.kill.
  core::Status Kill(const std::string& path);
  // The cgroup id (the directory's inode number), as bpf_get_current_cgroup_id() reports it.
  core::Result<uint64_t> Id(const std::string& path) const;

 private:
  explicit Cgroups(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace vigil::enforce::internal
