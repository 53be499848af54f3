#pragma once

// Parsers of the kernel files enforcement reads: /proc/PID/stat, /proc/PID/cgroup and
// /proc/self/mountinfo. Pure functions over the bytes, so tests and the fuzz target feed them
// text directly. The content is outside input (comm is chosen by whoever runs a program, cgroup
// paths by container runtimes); nothing here reads past the view it is given.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::enforce {

struct StatFields {
  int32_t pid = 0;          // [1]
  char state = '?';         // [3]
  int32_t ppid = 0;         // [4]
  int32_t pgrp = 0;         // [5]
  uint32_t flags = 0;       // [9] PF_* bits (PF_KTHREAD 0x00200000: a kernel thread)
  uint64_t start_time = 0;  // [22] clock ticks since boot
};
// Fields are located from the LAST ')' because comm may hold ')' and spaces. kInvalidArgument
// naming the field that is missing or malformed.
core::Result<StatFields> ParseStat(std::string_view content);
inline constexpr uint32_t kPfKthread = 0x00200000;

// The cgroup v2 path ("0::/a/b" line) of /proc/PID/cgroup content. kNotFound when the file has
// no cgroup v2 line; kInvalidArgument when the path is not absolute or holds control characters.
core::Result<std::string> ParseCgroupV2Path(std::string_view content);

// The mount point of the first cgroup2 mount of the whole hierarchy (root "/") listed in
// /proc/self/mountinfo content, with octal escapes (\040) decoded; nullopt when there is none.
std::optional<std::string> FindCgroup2Mount(std::string_view mountinfo);

}  // namespace vigil::enforce
