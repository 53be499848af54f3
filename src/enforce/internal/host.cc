#include "enforce/internal/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/files.h"

namespace vigil::enforce::internal {
namespace {

// cgroup files and mountinfo; a host with thousands of mounts stays well below this.
constexpr uint64_t kMaxKernelFileBytes = uint64_t{16} << 20;

core::Status WriteSmall(const std::string& path, std::string_view text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return core::ErrnoError(errno, path);
  const ssize_t n = write(fd, text.data(), text.size());
  const int err = errno;
  close(fd);
  if (n < 0) return core::ErrnoError(err, "writing \"" + std::string(text) + "\" to " + path);
  return core::Status::Ok();
}

std::vector<int32_t> ListPids() {
  std::vector<int32_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) return pids;
  while (dirent* e = readdir(d)) {
    int32_t pid = 0;
    const std::string_view name(e->d_name);
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec == std::errc() && end == name.data() + name.size() && pid > 0) pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

int PidfdOpen(int32_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

// Reads /proc/PID/NAME and parses it with `parse`; errors name the file (a missing one: the
// process does not exist).
template <typename Parse>
auto ReadProcFile(int32_t pid, const char* name, Parse parse) -> decltype(parse("")) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  auto text = core::ReadFile(path, kMaxKernelFileBytes);
  if (!text.has_value()) {
    if (text.error().code() == core::StatusCode::kNotFound) {
      return core::NotFound("process " + std::to_string(pid) + " does not exist");
    }
    return text.error();
  }
  auto parsed = parse(*text);
  if (!parsed.has_value()) return parsed.error().WithContext(path);
  return parsed;
}

core::Result<StatFields> ReadStat(int32_t pid) { return ReadProcFile(pid, "stat", ParseStat); }

core::Result<std::string> ReadProcessCgroup(int32_t pid) {
  return ReadProcFile(pid, "cgroup", ParseCgroupV2Path);
}

core::Status CheckProcess(int32_t pid, uint64_t start_time) {
  auto st = ReadStat(pid);
  if (!st.has_value()) return st.error();
  if (st->state == 'Z' || st->state == 'X') {
    return core::NotFound("process " + std::to_string(pid) + " has exited");
  }
  if (start_time != 0 && st->start_time != start_time) {
    return core::FailedPrecondition("process " + std::to_string(pid) + " started at tick " +
                                    std::to_string(st->start_time) + ", not " +
                                    std::to_string(start_time) +
                                    ": the pid now names another process");
  }
  return core::Status::Ok();
}

std::vector<int32_t> WithDescendants(const std::vector<int32_t>& roots) {
  std::multimap<int32_t, int32_t> children;
  for (int32_t pid : ListPids()) {
    auto st = ReadStat(pid);
    if (st.has_value()) children.emplace(st->ppid, pid);
  }
  std::vector<int32_t> out;
  std::set<int32_t> seen;
  std::vector<int32_t> todo(roots.rbegin(), roots.rend());
  while (!todo.empty()) {
    const int32_t pid = todo.back();
    todo.pop_back();
    if (!seen.insert(pid).second) continue;
    out.push_back(pid);
    auto [b, e] = children.equal_range(pid);
    for (auto it = b; it != e; ++it) todo.push_back(it->second);
  }
  return out;
}

std::vector<int32_t> GroupMembers(int32_t pgid) {
  std::vector<int32_t> out;
  for (int32_t pid : ListPids()) {
    auto st = ReadStat(pid);
    if (st.has_value() && st->pgrp == pgid && st->state != 'Z') out.push_back(pid);
  }
  return out;
}

core::Status KillProcess(int32_t pid, uint64_t start_time) {
  const int fd = PidfdOpen(pid);
  if (fd < 0) {
    if (errno == ESRCH) return core::NotFound("process " + std::to_string(pid) + " does not exist");
    return core::ErrnoError(errno, "pidfd_open(" + std::to_string(pid) + ")");
  }
  // Checked after the pidfd pins the process: the pidfd and the stat now name the same one.
  core::Status check = CheckProcess(pid, start_time);
  if (!check.ok()) {
    close(fd);
    return check;
  }
  const long rc = syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
  const int err = errno;
  close(fd);
  if (rc != 0) {
    if (err == ESRCH) return core::NotFound("process " + std::to_string(pid) + " has exited");
    return core::ErrnoError(err, "SIGKILL to process " + std::to_string(pid));
  }
  return core::Status::Ok();
}

core::Status KillProcessGroup(int32_t pgid) {
  if (kill(-pgid, SIGKILL) != 0) {
    if (errno == ESRCH) {
      return core::NotFound("process group " + std::to_string(pgid) + " has no processes");
    }
    return core::ErrnoError(errno, "SIGKILL to process group " + std::to_string(pgid));
  }
  return core::Status::Ok();
}

core::Result<Cgroups> Cgroups::Open(const std::string& root) {
  if (!root.empty()) {
    if (access((root + "/cgroup.procs").c_str(), F_OK) != 0) {
      return core::FailedPrecondition(root + " is not a cgroup v2 hierarchy (no cgroup.procs)");
    }
    return Cgroups(root);
  }
  auto info = core::ReadFile("/proc/self/mountinfo", kMaxKernelFileBytes);
  if (!info.has_value()) return info.error();
  if (auto point = FindCgroup2Mount(*info)) return Cgroups(*point);
  const std::string dir = "/run/vigil/cgroup2";
  if (mkdir("/run/vigil", 0700) != 0 && errno != EEXIST) {
    return core::ErrnoError(errno, "creating /run/vigil");
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return core::ErrnoError(errno, "creating " + dir);
  }
  if (mount("cgroup2", dir.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return core::ErrnoError(errno, "no cgroup v2 hierarchy is mounted and mounting one at " + dir +
                                       " failed (freeze and block-network need cgroup v2)");
  }
  spdlog::warn("enforce: no cgroup v2 hierarchy was mounted; mounted it at {}", dir);
  return Cgroups(dir);
}

bool Cgroups::Exists(const std::string& path) const {
  struct stat st {};
  return stat(Abs(path).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

core::Status Cgroups::Create(const std::string& path) {
  std::string at;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    at = path.substr(0, slash);
    pos = slash + 1;
    if (mkdir(Abs(at).c_str(), 0755) != 0 && errno != EEXIST) {
      return core::ErrnoError(errno, "creating cgroup " + Abs(at));
    }
  }
  return core::Status::Ok();
}

core::Status Cgroups::Remove(const std::string& path) {
  // A cgroup stays busy while exited members wait to be reaped: a process just thawed and moved
  // out reaps the children that died while it was frozen within moments, so wait a little.
  constexpr int kBusyTries = 200;  // 10 ms apart: 2 s
  for (int i = 0;; ++i) {
    if (rmdir(Abs(path).c_str()) == 0 || errno == ENOENT) return core::Status::Ok();
    if (errno != EBUSY || i + 1 >= kBusyTries) break;
    usleep(10'000);
  }
  return core::ErrnoError(errno, "removing cgroup " + Abs(path));
}

core::Status Cgroups::Move(int32_t pid, const std::string& path) {
  core::Status st = WriteSmall(Abs(path) + "/cgroup.procs", std::to_string(pid));
  if (!st.ok() && st.message().find("No such process") != std::string::npos) {
    return core::NotFound("process " + std::to_string(pid) + " has exited");
  }
  return st;
}

std::vector<int32_t> Cgroups::Procs(const std::string& path) const {
  std::vector<int32_t> out;
  auto text = core::ReadFile(Abs(path) + "/cgroup.procs", kMaxKernelFileBytes);
  if (!text.has_value()) return out;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t nl = text->find('\n', pos);
    if (nl == std::string::npos) nl = text->size();
    int32_t pid = 0;
    auto [end, ec] = std::from_chars(text->data() + pos, text->data() + nl, pid);
    if (ec == std::errc() && end == text->data() + nl && pid > 0) out.push_back(pid);
    pos = nl + 1;
  }
  return out;
}

core::Status Cgroups::SetFrozen(const std::string& path, bool frozen, int wait_ms) {
  const std::string events_path = Abs(path) + "/cgroup.events";
  VIGIL_RETURN_IF_ERROR(WriteSmall(Abs(path) + "/cgroup.freeze", frozen ? "1" : "0"));
  const std::string want = frozen ? "frozen 1" : "frozen 0";
  const int fd = open(events_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return core::ErrnoError(errno, events_path);
  const core::Clock& clock = core::SystemClock::Get();
  const int64_t deadline = clock.MonotonicNanos() + int64_t{wait_ms} * 1'000'000;
  for (;;) {
    char buf[256];
    const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
      const int err = errno;
      close(fd);
      return core::ErrnoError(err, events_path);
    }
    if (std::string_view(buf, static_cast<size_t>(n)).find(want) != std::string_view::npos) {
      close(fd);
      return core::Status::Ok();
    }
    const int64_t left_ms = (deadline - clock.MonotonicNanos()) / 1'000'000;
    if (left_ms <= 0) break;
    // cgroup.events signals a change with POLLPRI (and POLLERR).
    pollfd p{fd, POLLPRI, 0};
    poll(&p, 1, static_cast<int>(left_ms < 50 ? left_ms : 50));
  }
  close(fd);
  return core::Status(core::StatusCode::kDeadlineExceeded,
                      "cgroup " + Abs(path) + " did not report \"" + want + "\" within " +
                          std::to_string(wait_ms) + " ms");
}

core::Status Cgroups::Kill(const std::string& path) {
  return WriteSmall(Abs(path) + "/cgroup.kill", "1");
}

core::Result<uint64_t> Cgroups::Id(const std::string& path) const {
  struct stat st {};
  if (stat(Abs(path).c_str(), &st) != 0) return core::ErrnoError(errno, "cgroup " + Abs(path));
  return static_cast<uint64_t>(st.st_ino);
}

}  // namespace vigil::enforce::internal
