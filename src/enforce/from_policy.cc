#include "enforce/from_policy.h"

namespace vigil::enforce {

core::Result<ActionKind> ActionKindFor(core::Action action) {
  switch (action) {
    case core::Action::kAlert: return ActionKind::kAlert;
    case core::Action::kKill: return ActionKind::kKill;
    case core::Action::kFreeze: return ActionKind::kFreeze;
    case core::Action::kBlockNetwork: return ActionKind::kBlockNetwork;
    case core::Action::kEscalate: return ActionKind::kEscalate;
    case core::Action::kAllow:
      return core::InvalidArgument("allow: there is nothing to enforce");
    case core::Action::kDeny:
      return core::InvalidArgument("deny is answered by the gate that asked (fanotify, seccomp), "
                                   "not carried out after the fact");
  }
  return core::InvalidArgument("unknown action");
}

core::Result<ActionRequest> RequestForRule(const policy::Rule& rule, const Target& target,
                                           std::string reason) {
  ActionRequest r;
  r.target = target;
  r.rule = rule.name;
  r.reason = std::move(reason);
  if (!rule.has_action) return r;  // alert, monitor
  const auto where = [&] { return "rule \"" + rule.name + "\" (" + rule.file + ":" +
                                  std::to_string(rule.line) + "): "; };
  if (rule.action.type == "deny") {
    return core::InvalidArgument(where() + "deny is answered by the gate that asked");
  }
  if (!ParseActionKind(rule.action.type, &r.action)) {
    return core::InvalidArgument(where() + "unknown action type \"" + rule.action.type + "\"");
  }
  if (!ParseMode(rule.action.mode, &r.mode)) {
    return core::InvalidArgument(where() + "unknown action mode \"" + rule.action.mode + "\"");
  }
  r.on_timeout = TimeoutDefaultForFallback(rule.action.fallback);
  if (r.action == ActionKind::kEscalate) {
    if (!ParseActionKind(rule.action.proposed, &r.proposed) ||
        r.proposed == ActionKind::kEscalate) {
      return core::InvalidArgument(where() + "escalate cannot propose \"" + rule.action.proposed +
                                   "\"");
    }
    r.timeout_seconds = rule.action.timeout_seconds;
  }
  return r;
}

}  // namespace vigil::enforce
