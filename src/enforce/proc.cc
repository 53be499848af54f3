#include "enforce/proc.h"

#include <charconv>
#include <vector>

namespace vigil::enforce {
namespace {

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Splits on single spaces (the kernel writes exactly one between fields).
std::vector<std::string_view> Fields(std::string_view s, size_t max) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size() && out.size() < max) {
    const size_t sp = s.find(' ', pos);
    const size_t end = sp == std::string_view::npos ? s.size() : sp;
    out.push_back(s.substr(pos, end - pos));
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  return out;
}

bool HasControl(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Calls `fn` with each line (without its '\n') until it returns true; returns whether it did.
template <typename Fn>
bool AnyLine(std::string_view content, Fn fn) {
  size_t pos = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    if (fn(content.substr(pos, nl - pos))) return true;
    pos = nl + 1;
  }
  return false;
}

}  // namespace

core::Result<StatFields> ParseStat(std::string_view content) {
  StatFields f;
  const size_t open = content.find(" (");
  const size_t close = content.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return core::InvalidArgument("stat: no \"(comm)\" field");
  }
  if (!ParseNumber(content.substr(0, open), &f.pid) || f.pid <= 0) {
    return core::InvalidArgument("stat: field 1 (pid) is not a positive number");
  }
  f.comm = content.substr(open + 2, close - open - 2);
  std::string_view rest = content.substr(close + 1);
  while (!rest.empty() && (rest.back() == '\n')) rest.remove_suffix(1);
  if (rest.size() < 2 || rest[0] != ' ') return core::InvalidArgument("stat: nothing after comm");
  rest.remove_prefix(1);
  // Field N (N >= 3) is the (N - 3)th of `rest`, split on single spaces (the kernel writes
  // exactly one between fields).
  std::array<std::string_view, 49> v{};  // fields 3..51
  size_t count = 0;
  for (size_t pos = 0; count < v.size();) {
    const size_t sp = rest.find(' ', pos);
    v[count++] = rest.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  if (count < 20) return core::InvalidArgument("stat: fewer than 22 fields");
  if (v[0].size() != 1) return core::InvalidArgument("stat: field 3 (state) is not one letter");
  f.state = v[0][0];
  if (!ParseNumber(v[1], &f.ppid) || f.ppid < 0) {
    return core::InvalidArgument("stat: field 4 (ppid) is not a number");
  }
  if (!ParseNumber(v[2], &f.pgrp) || f.pgrp < 0) {
    return core::InvalidArgument("stat: field 5 (pgrp) is not a number");
  }
  if (!ParseNumber(v[6], &f.flags)) {
    return core::InvalidArgument("stat: field 9 (flags) is not a number");
  }
  if (!ParseNumber(v[19], &f.start_time)) {
    return core::InvalidArgument("stat: field 22 (starttime) is not a number");
  }
  if (count == v.size()) {
    constexpr size_t kLayout[7] = {26, 27, 28, 48, 49, 50, 51};
    for (size_t i = 0; i < 7; ++i) {
      if (!ParseNumber(v[kLayout[i] - 3], &f.layout[i])) f.layout[i] = 0;
    }
  }
  return f;
}

core::Result<std::string> ParseCgroupV2Path(std::string_view content) {
  std::string_view path;
  if (!AnyLine(content, [&](std::string_view line) {
        if (line.substr(0, 3) != "0::") return false;
        path = line.substr(3);
        return true;
      })) {
    return core::NotFound("cgroup: no cgroup v2 (\"0::\") line");
  }
  if (path.empty() || path[0] != '/') {
    return core::InvalidArgument("cgroup: the v2 path \"" + std::string(path.substr(0, 64)) +
                                 "\" is not absolute");
  }
  if (HasControl(path)) return core::InvalidArgument("cgroup: control character in the v2 path");
  return std::string(path);
}

std::optional<std::string> FindCgroup2Mount(std::string_view mountinfo) {
  std::string point;
  // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
  const bool found = AnyLine(mountinfo, [&](std::string_view line) {
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) return false;
    const std::vector<std::string_view> after = Fields(line.substr(dash + 3), 3);
    if (after.empty() || after[0] != "cgroup2") return false;
    const std::vector<std::string_view> before = Fields(line.substr(0, dash), 6);
    if (before.size() < 5 || before[3] != "/") return false;
    point.clear();
    const std::string_view raw = before[4];
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 3 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '3' &&
          raw[i + 2] >= '0' && raw[i + 2] <= '7' && raw[i + 3] >= '0' && raw[i + 3] <= '7') {
        point += static_cast<char>((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 +
                                   (raw[i + 3] - '0'));
        i += 3;
      } else {
        point += raw[i];
      }
    }
    return !point.empty() && point[0] == '/';
  });
  if (!found) return std::nullopt;
  return point;
}

}  // namespace vigil::enforce
