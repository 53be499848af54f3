#pragma once

// Parsers of the kernel files enforcement reads: /proc/PID/stat, /proc/PID/cgroup and
// /proc/self/mountinfo. Pure functions over the bytes, so tests and the fuzz target feed them
// text directly. The content is outside input (comm is chosen by whoever runs a program, cgroup
// paths by container runtimes); nothing here reads past the view it is given.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::enforce {

struct StatFields {
  int32_t pid = 0;          // [1]
  std::string_view comm;    // [2] without the parentheses; views the parsed content
  char state = '?';         // [3]
  int32_t ppid = 0;         // [4]
  int32_t pgrp = 0;         // [5]
  uint32_t flags = 0;       // [9] PF_* bits (PF_KTHREAD 0x00200000: a kernel thread)
  uint64_t start_time = 0;  // [22] clock ticks since boot
  // The memory layout an exec sets anew: [26] startcode, [27] endcode, [28] startstack,
  // [48] arg_start, [49] arg_end, [50] env_start, [51] env_end. All 0 when the kernel does not
  // show them (a reader without ptrace access, a kernel thread, a zombie) or the content stops
  // before them (kernels before 3.5); a malformed one is 0 too.
  std::array<uint64_t, 7> layout{};
};
// Fields are located from the LAST ')' because comm may hold ')' and spaces. kInvalidArgument
// naming the field that is missing or malformed (fields 1 to 22). Allocates nothing.
core::Result<StatFields> ParseStat(std::string_view content);
inline constexpr uint32_t kPfKthread = 0x00200000;

// The cgroup v2 path ("0::/a/b" line) of /proc/PID/cgroup content. kNotFound when the file has
// no cgroup v2 line; kInvalidArgument when the path is not absolute or holds control characters.
core::Result<std::string> ParseCgroupV2Path(std::string_view content);

// The mount point of the first cgroup2 mount of the whole hierarchy (root "/") listed in
// /proc/self/mountinfo content, with octal escapes (\040) decoded; nullopt when there is none.
std::optional<std::string> FindCgroup2Mount(std::string_view mountinfo);

}  // namespace vigil::enforce
