#pragma once

// Parsers for the /proc files the process tree reads: /proc/<pid>/stat, status, cmdline and
// cgroup. They are pure functions over the file's bytes, so tests and fuzzers feed them text
// directly. The content is outside input: comm is chosen by whoever runs the program (it may hold
// spaces, parentheses and newlines), and cgroup paths are chosen by container runtimes. None of
// these functions reads past the view it is given or allocates more than the caps it is given.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::enrich {

// The fields of /proc/<pid>/stat that the tree uses (proc(5) numbering in brackets).
struct ProcStat {
  uint32_t pid = 0;          // [1]
  std::string_view comm;     // [2] without the parentheses; a view into the parsed content
  char state = '?';          // [3]
  uint32_t ppid = 0;         // [4]
  uint64_t start_ticks = 0;  // [22] starttime: clock ticks since boot
};

// Parses the content of /proc/<pid>/stat. comm runs from the first '(' to the LAST ')' because
// comm itself may contain ')' (e.g. "(my (odd) prog)"); every later field is located from that
// last ')'. Returns kInvalidArgument naming the missing or malformed field. The returned comm
// views `content`, which must outlive it.
core::Result<ProcStat> ParseProcStat(std::string_view content);

// The fields of /proc/<pid>/status that the tree uses.
struct ProcStatus {
  uint32_t tgid = 0;
  uint32_t ruid = 0;  // real
  uint32_t euid = 0;  // effective: the identity the kernel checks, and the one the tree keeps
};

// Parses the content of /proc/<pid>/status ("Key:\tvalue" lines). Tgid and Uid are required
// (kInvalidArgument when missing or malformed); other lines are ignored.
core::Result<ProcStatus> ParseProcStatus(std::string_view content);

// Caps on a process's argument vector. Both are hard: the tree never keeps more.
struct ArgvLimits {
  size_t max_args = 64;
  size_t max_bytes = 2048;  // sum over kept arguments of (length + 1)
};

// Appends the arguments of a NUL-separated /proc/<pid>/cmdline to *out (cleared first) within
// `limits`. A trailing NUL ends the last argument rather than starting an empty one. When an
// argument or the count does not fit, what fits is kept (the last argument cut to the byte
// budget) and true is returned: the argv was truncated. `raw` may itself be cut short by a
// bounded read; a caller that knows so must treat the result as truncated too.
bool SplitCmdline(std::string_view raw, const ArgvLimits& limits, std::vector<std::string>* out);

// As SplitCmdline, for an argv the sensor already split.
bool BoundArgv(std::span<const std::string> in, const ArgvLimits& limits,
               std::vector<std::string>* out);

// The 64-hex-digit container id held by one cgroup path, or an empty view. Recognised shapes,
// taking the deepest path component that matches:
//   /docker/<id>                                  (docker, cgroup v1)
//   /system.slice/docker-<id>.scope               (docker with the systemd driver)
//   /kubepods/.../pod<uid>/<id>                   (kubelet cgroupfs driver: any CRI runtime)
//   /kubepods.slice/.../cri-containerd-<id>.scope (containerd CRI, systemd driver)
//   /.../crio-<id>.scope                          (cri-o)
//   /machine.slice/libpod-<id>.scope[/container]  (podman, rootful and rootless)
// Conmon's scopes ("crio-conmon-<id>", "libpod-conmon-<id>") are the runtime's monitor, not the
// container, and yield nothing. The view points into `path`.
std::string_view ContainerIdFromCgroupPath(std::string_view path);

struct ProcCgroup {
  std::string path;          // cut to max_path_bytes
  std::string container_id;  // 64 lowercase hex digits, or empty
};

// Parses the content of /proc/<pid>/cgroup ("hierarchy-id:controllers:path" lines). The kept
// path is the cgroup v2 one ("0::...") when present, else the first v1 path that holds a
// container id, else the first path. The container id is looked for in every line, because on
// v1 hosts some hierarchies may be left at the root. Malformed lines are skipped; an empty or
// unparseable file yields an empty result (the tree has no use for an error here).
ProcCgroup ParseProcCgroup(std::string_view content, size_t max_path_bytes);

}  // namespace vigil::enrich
