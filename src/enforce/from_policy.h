#pragma once

// From what policy decides to what enforcement carries out. The rule's `action` block (type,
// mode, fallback: policy/rules.h) and core's decided Action name the same actions as
// enforce::ActionKind, except two that are not enforcement actions here: `allow` (nothing to
// do) and `deny` (answered by the gate that asked: fanotify or seccomp).

#include <string>

#include "core/event.h"
#include "core/status.h"
#include "enforce/enforce.h"
#include "policy/rules.h"

namespace vigil::enforce {

// kInvalidArgument for kAllow and kDeny (naming why).
core::Result<ActionKind> ActionKindFor(core::Action action);

// The request a matched rule asks for against `target`: the rule's action type and mode (a rule
// without an action block asks for an alert in monitor mode, as policy treats it), its name, and
// for escalate its fallback as the timeout default (deny -> enforce, allow/alert -> dismiss) and
// the block's proposed action and timeout (a freeze and 15 minutes when not given).
// kInvalidArgument for deny, or for an action block that does not validate (policy validates them
// at load, so this means a bug upstream).
core::Result<ActionRequest> RequestForRule(const policy::Rule& rule, const Target& target,
                                           std::string reason);

}  // namespace vigil::enforce
