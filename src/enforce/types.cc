// Names, parsing and JSON of the enforcement value types (enforce.h).

#include <charconv>

#include "enforce/enforce.h"

namespace vigil::enforce {
namespace {

constexpr std::string_view kActionNames[] = {"alert", "kill", "freeze", "block-network",
                                             "escalate"};
constexpr std::string_view kStateNames[] = {"applying", "applied", "rolled-back", "failed",
                                            "monitor"};
constexpr std::string_view kEscalationStateNames[] = {"pending", "approved", "denied", "expired",
                                                      "cancelled"};
constexpr int32_t kMaxPid = 4194304;  // PID_MAX_LIMIT on 64-bit kernels
constexpr size_t kMaxCgroupPath = 4096;

template <typename E, size_t N>
bool ParseName(const std::string_view (&names)[N], std::string_view name, E* out) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) {
      *out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

core::Status CheckCgroupPath(std::string_view text, std::string_view path) {
  auto bad = [&](std::string_view why) {
    return core::InvalidArgument("target \"" + std::string(text.substr(0, 128)) + "\": " +
                                 std::string(why));
  };
  if (path.empty() || path[0] != '/') return bad("the cgroup path must start with '/'");
  if (path == "/") return bad("the root cgroup is not a target (it holds the whole host)");
  if (path.size() > kMaxCgroupPath) return bad("the cgroup path is longer than 4096 bytes");
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return bad("control character in the cgroup path");
    }
  }
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view part = path.substr(pos, slash - pos);
    if (part.empty() || part == "." || part == "..") {
      return bad("the cgroup path has an empty, \".\" or \"..\" component");
    }
    pos = slash + 1;
  }
  return core::Status::Ok();
}

}  // namespace

std::string_view ActionKindName(ActionKind a) {
  const auto i = static_cast<size_t>(a);
  return i < std::size(kActionNames) ? kActionNames[i] : "unknown";
}
bool ParseActionKind(std::string_view name, ActionKind* out) {
  return ParseName(kActionNames, name, out);
}

std::string_view ModeName(Mode m) { return m == Mode::kEnforce ? "enforce" : "monitor"; }
bool ParseMode(std::string_view name, Mode* out) {
  if (name == "monitor") *out = Mode::kMonitor;
  else if (name == "enforce") *out = Mode::kEnforce;
  else return false;
  return true;
}

std::string_view TimeoutDefaultName(TimeoutDefault d) {
  return d == TimeoutDefault::kEnforce ? "enforce" : "dismiss";
}
bool ParseTimeoutDefault(std::string_view name, TimeoutDefault* out) {
  if (name == "dismiss") *out = TimeoutDefault::kDismiss;
  else if (name == "enforce") *out = TimeoutDefault::kEnforce;
  else return false;
  return true;
}
TimeoutDefault TimeoutDefaultForFallback(std::string_view fallback) {
  return fallback == "deny" ? TimeoutDefault::kEnforce : TimeoutDefault::kDismiss;
}

std::string_view StateName(State s) {
  const auto i = static_cast<size_t>(s);
  return i < std::size(kStateNames) ? kStateNames[i] : "unknown";
}
bool ParseState(std::string_view name, State* out) { return ParseName(kStateNames, name, out); }

std::string_view EscalationStateName(EscalationState s) {
  const auto i = static_cast<size_t>(s);
  return i < std::size(kEscalationStateNames) ? kEscalationStateNames[i] : "unknown";
}
bool ParseEscalationState(std::string_view name, EscalationState* out) {
  return ParseName(kEscalationStateNames, name, out);
}

std::string Target::ToString() const {
  switch (kind) {
    case TargetKind::kProcess:
      return "pid:" + std::to_string(pid) +
             (start_time != 0 ? "@" + std::to_string(start_time) : std::string());
    case TargetKind::kProcessGroup:
      return "pgid:" + std::to_string(pid);
    case TargetKind::kCgroup:
      return "cgroup:" + cgroup;
  }
  return "?";
}

core::Result<Target> ParseTarget(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return core::InvalidArgument("target \"" + std::string(text.substr(0, 128)) + "\": " +
                                 std::string(why));
  };
  Target t;
  auto number = [&](std::string_view s, auto* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
  };
  if (text.substr(0, 4) == "pid:" || text.substr(0, 5) == "pgid:") {
    const bool group = text[1] == 'g';
    t.kind = group ? TargetKind::kProcessGroup : TargetKind::kProcess;
    std::string_view rest = text.substr(group ? 5 : 4);
    const size_t at = rest.find('@');
    if (at != std::string_view::npos) {
      if (group) return bad("a process group takes no start time");
      if (!number(rest.substr(at + 1), &t.start_time) || t.start_time == 0) {
        return bad("the start time after '@' must be a positive number of clock ticks");
      }
      rest = rest.substr(0, at);
    }
    if (!number(rest, &t.pid) || t.pid < 1 || t.pid > kMaxPid) {
      return bad("expected a process id in 1..4194304");
    }
    return t;
  }
  if (text.substr(0, 7) == "cgroup:") {
    t.kind = TargetKind::kCgroup;
    t.cgroup = std::string(text.substr(7));
    VIGIL_RETURN_IF_ERROR(CheckCgroupPath(text, t.cgroup));
    return t;
  }
  return bad("expected pid:PID[@STARTTIME], pgid:PGID or cgroup:/PATH");
}

nlohmann::json ToJson(const LedgerEntry& e) {
  return {{"id", e.id},
          {"time_ns", e.time_ns},
          {"action", ActionKindName(e.action)},
          {"target", e.target.ToString()},
          {"rule", e.rule},
          {"reason", e.reason},
          {"mode", ModeName(e.mode)},
          {"state", StateName(e.state)},
          {"detail", e.detail},
          {"reversible", e.reversible},
          {"cgroup", e.cgroup},
          {"escalation_id", e.escalation_id},
          {"rolled_back_ns", e.rolled_back_ns},
          {"rollback_detail", e.rollback_detail}};
}

nlohmann::json ToJson(const Escalation& e) {
  return {{"id", e.id},
          {"created_ns", e.created_ns},
          {"deadline_ns", e.deadline_ns},
          {"rule", e.rule},
          {"reason", e.reason},
          {"target", e.target.ToString()},
          {"proposed", ActionKindName(e.proposed)},
          {"on_timeout", TimeoutDefaultName(e.on_timeout)},
          {"state", EscalationStateName(e.state)},
          {"decided_ns", e.decided_ns},
          {"decided_by", e.decided_by},
          {"action_id", e.action_id},
          {"result_id", e.result_id}};
}

}  // namespace vigil::enforce
