#include "enrich/proc_parse.h"

#include <charconv>

namespace vigil::enrich {
namespace {

template <typename T>
bool ParseUnsigned(std::string_view s, T* out) {
  if (s.empty()) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The id in one path component, or empty.
std::string_view ContainerIdFromComponent(std::string_view c) {
  if (StartsWith(c, "crio-conmon-") || StartsWith(c, "libpod-conmon-")) return {};
  constexpr std::string_view kScope = ".scope";
  if (c.size() >= kScope.size() && c.substr(c.size() - kScope.size()) == kScope) {
    c.remove_suffix(kScope.size());
  }
  for (const std::string_view prefix : {"docker-", "cri-containerd-", "crio-", "libpod-"}) {
    if (StartsWith(c, prefix)) {
      c.remove_prefix(prefix.size());
      break;
    }
  }
  return IsHex64(c) ? c : std::string_view();
}

}  // namespace

core::Result<ProcStat> ParseProcStat(std::string_view content) {
  const size_t open = content.find('(');
  const size_t close = content.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return core::InvalidArgument("stat: no '(comm)' field");
  }
  ProcStat out;
  if (!ParseUnsigned(TrimSpace(content.substr(0, open)), &out.pid)) {
    return core::InvalidArgument("stat: malformed pid (field 1)");
  }
  out.comm = content.substr(open + 1, close - open - 1);

  // Fields 3.. are single-space separated after the last ')'. Index i holds field i + 3.
  constexpr size_t kStateIdx = 0, kPpidIdx = 1, kStartIdx = 19;
  std::string_view rest = content.substr(close + 1);
  std::string_view fields[kStartIdx + 1];
  size_t n = 0;
  while (n <= kStartIdx) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty() || rest.front() == '\n') break;
    const size_t end = rest.find_first_of(" \n");
    fields[n++] = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (n <= kStartIdx) return core::InvalidArgument("stat: fewer than 22 fields");
  if (fields[kStateIdx].size() != 1)
    return core::InvalidArgument("stat: malformed state (field 3)");
  out.state = fields[kStateIdx][0];
  if (!ParseUnsigned(fields[kPpidIdx], &out.ppid)) {
    return core::InvalidArgument("stat: malformed ppid (field 4)");
  }
  if (!ParseUnsigned(fields[kStartIdx], &out.start_ticks)) {
    return core::InvalidArgument("stat: malformed starttime (field 22)");
  }
  return out;
}

core::Result<ProcStatus> ParseProcStatus(std::string_view content) {
  ProcStatus out;
  bool have_tgid = false, have_uid = false;
  while (!content.empty()) {
    const size_t eol = content.find('\n');
    const std::string_view line = content.substr(0, eol);
    content.remove_prefix(eol == std::string_view::npos ? content.size() : eol + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = TrimSpace(line.substr(colon + 1));
    if (key == "Tgid") {
      if (!ParseUnsigned(value, &out.tgid)) return core::InvalidArgument("status: malformed Tgid");
      have_tgid = true;
    } else if (key == "Uid") {
      // "real effective saved filesystem", tab-separated.
      const size_t sep = value.find_first_of(" \t");
      if (sep == std::string_view::npos) return core::InvalidArgument("status: malformed Uid");
      std::string_view eff = TrimSpace(value.substr(sep + 1));
      eff = eff.substr(0, eff.find_first_of(" \t"));
      if (!ParseUnsigned(value.substr(0, sep), &out.ruid) || !ParseUnsigned(eff, &out.euid)) {
        return core::InvalidArgument("status: malformed Uid");
      }
      have_uid = true;
    }
  }
  if (!have_tgid) return core::InvalidArgument("status: no Tgid line");
  if (!have_uid) return core::InvalidArgument("status: no Uid line");
  return out;
}

namespace {

// Appends `arg` within the remaining budget; false when it did not fit whole.
bool AppendBounded(std::string_view arg, const ArgvLimits& limits, size_t* used,
                   std::vector<std::string>* out) {
  if (out->size() >= limits.max_args || *used >= limits.max_bytes) return false;
  const size_t room = limits.max_bytes - *used - 1;  // one byte for the separator
  const bool fits = arg.size() <= room;
  if (!fits) arg = arg.substr(0, room);
  out->emplace_back(arg);
  *used += arg.size() + 1;
  return fits;
}

}  // namespace

bool SplitCmdline(std::string_view raw, const ArgvLimits& limits, std::vector<std::string>* out) {
  out->clear();
  size_t used = 0;
  while (!raw.empty()) {
    const size_t nul = raw.find('\0');
    const std::string_view arg = raw.substr(0, nul);
    if (!AppendBounded(arg, limits, &used, out)) return true;
    raw.remove_prefix(nul == std::string_view::npos ? raw.size() : nul + 1);
  }
  return false;
}

bool BoundArgv(std::span<const std::string> in, const ArgvLimits& limits,
               std::vector<std::string>* out) {
  out->clear();
  size_t used = 0;
  for (const std::string& arg : in) {
    if (!AppendBounded(arg, limits, &used, out)) return true;
  }
  return false;
}

std::string_view ContainerIdFromCgroupPath(std::string_view path) {
  // Deepest first: a nested runtime's id is below its host's.
  while (!path.empty()) {
    const size_t slash = path.rfind('/');
    const std::string_view component =
        slash == std::string_view::npos ? path : path.substr(slash + 1);
    const std::string_view id = ContainerIdFromComponent(component);
    if (!id.empty()) return id;
    if (slash == std::string_view::npos) break;
    path = path.substr(0, slash);
  }
  return {};
}

ProcCgroup ParseProcCgroup(std::string_view content, size_t max_path_bytes) {
  std::string_view v2_path, first_path, id_path, id;
  bool have_v2 = false, have_first = false;
  while (!content.empty()) {
    const size_t eol = content.find('\n');
    const std::string_view line = content.substr(0, eol);
    content.remove_prefix(eol == std::string_view::npos ? content.size() : eol + 1);
    const size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view path = line.substr(c2 + 1);
    if (!have_first) {
      first_path = path;
      have_first = true;
    }
    if (line.substr(0, c2 + 1) == "0::") {
      v2_path = path;
      have_v2 = true;
    }
    if (id.empty()) {
      id = ContainerIdFromCgroupPath(path);
      if (!id.empty()) id_path = path;
    }
  }
  const std::string_view kept = have_v2 ? v2_path : !id.empty() ? id_path : first_path;
  ProcCgroup out;
  out.path.assign(kept.substr(0, max_path_bytes));
  out.container_id.assign(id);
  return out;
}

}  // namespace vigil::enrich
