#pragma once

// What policy decided about one event: the contract between the decision engine
// (policy/engine.h) and whoever carries decisions out (src/enforce actions, the fanotify and
// seccomp gates, the agent's sinks and audit log). Plain values; no behaviour beyond names.
//
// How a decision is reached (docs/policy.md, "Decisions"):
// - every enabled rule is evaluated once on the event; each match is a RuleHit with the rule's
//   action (alert when the rule has no `action` block), its mode and its fallback;
// - a hit enforces only when the policy's mode is enforce, the rule's mode (its own, else the
//   policy's) is enforce, the rollout stage admits the event's asset class (monitor: none;
//   enforce-non-critical: non-critical assets only; enforce-all: every class), its action
//   acts (anything but alert), and the engine is allowed to enforce (the agent holds enforcement
//   back until its own enforce mode is entered: PolicyEngine::SetEnforcementAllowed);
// - the decision's action is the strongest enforcing hit's; without one, the strongest hit's,
//   recorded in monitor mode (would_enforce says whether it would have acted). The decision
//   enforces exactly when one of its hits does; the agent carries out every enforcing hit's
//   action (agent/action_bridge.h), each with its own rule, so `hits` is part of the contract;
// - the fallback is the deciding rule's, else the asset class's default (critical: deny,
//   otherwise alert), and is what a gate applies when it cannot wait for the model.
//
// A decision that matched none (matched() false; most events) carries action allow and every
// number and enum below (target pid/tid/ppid/cgroup_id, event_seq, time_ns, dst_port, ml_score,
// asset class, stage, policy mode and generation, fallback), but its strings are left empty:
// target.cgroup/container_id/comm/exe, policy_version, dst_ip, ml_model (and rule, output).
// Nothing records or acts on an unmatched decision, and copying those strings for every event
// was more than half of what Decide spent around the rule evaluation (docs/benchmarks.md
// "Decide without strings"). A matched decision carries every field. (Until 2026-11-27 the
// strings were filled for every decision; no caller read them on an unmatched one.)

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "policy/rules.h"

namespace vigil::policy {

enum class Mode : uint8_t { kMonitor, kEnforce };
enum class RolloutStage : uint8_t { kMonitor, kEnforceNonCritical, kEnforceAll };
enum class AssetClass : uint8_t { kCritical, kStandard, kNonCritical };
// What a gate does when the verdict is late or the model is down.
enum class Fallback : uint8_t { kAllow, kDeny, kAlert };

// "monitor"/"enforce"; "monitor"/"enforce-non-critical"/"enforce-all";
// "critical"/"standard"/"non-critical"; "allow"/"deny"/"alert".
std::string_view ModeName(Mode m);
std::string_view StageName(RolloutStage s);
std::string_view AssetClassName(AssetClass c);
std::string_view FallbackName(Fallback f);
// Inverse lookups; false when the name is unknown.
bool ParseMode(std::string_view name, Mode* out);
bool ParseStage(std::string_view name, RolloutStage* out);
bool ParseAssetClass(std::string_view name, AssetClass* out);
bool ParseFallback(std::string_view name, Fallback* out);
// "alert", "deny", "kill", "freeze", "block-network", "escalate" (rule action types).
bool ParseActionKind(std::string_view name, core::Action* out);
// The order in which actions win over each other: allow < alert < escalate < block-network <
// deny < freeze < kill.
int ActionStrength(core::Action a);
// Whether carrying out `a` changes anything (not allow, not alert).
inline bool Acts(core::Action a) { return a != core::Action::kAllow && a != core::Action::kAlert; }

// Whom an action applies to: the process behind the event and its cgroup.
struct DecisionTarget {
  uint32_t pid = 0;  // thread-group id
  uint32_t tid = 0;
  uint32_t ppid = 0;
  uint64_t cgroup_id = 0;     // cgroup v2 id from the kernel; 0 when unknown
  std::string cgroup;         // cgroup v2 path ("/system.slice/x.service"); "" when unknown
  std::string container_id;   // "host" outside containers
  std::string comm;
  std::string exe;
};

// One rule that matched.
struct RuleHit {
  std::string rule;
  Priority priority = Priority::kWarning;
  std::string output;  // the rule's output with its %fields filled in
  core::Action action = core::Action::kAlert;
  Mode mode = Mode::kMonitor;  // kEnforce only when policy, rule, stage and action all allow it
  Fallback fallback = Fallback::kAlert;
  core::Action proposed = core::Action::kFreeze;  // escalate: the action a person may approve
  uint64_t timeout_seconds = 900;                 // escalate: how long the question waits
};

struct Decision {
  core::Action action = core::Action::kAllow;  // kAllow when no rule matched
  Mode mode = Mode::kMonitor;  // kEnforce: carry `action` out; kMonitor: record only
  bool would_enforce = false;  // monitor mode held back an action that acts
  Fallback fallback = Fallback::kAlert;
  // escalate (the deciding rule's action block): the proposed action and the timeout.
  core::Action proposed = core::Action::kFreeze;
  uint64_t timeout_seconds = 900;
  // The deciding rule ("" when none matched).
  std::string rule;
  Priority priority = Priority::kWarning;
  std::string output;
  std::vector<RuleHit> hits;  // every matching rule, in load order

  DecisionTarget target;
  AssetClass asset_class = AssetClass::kStandard;
  RolloutStage stage = RolloutStage::kMonitor;
  Mode policy_mode = Mode::kMonitor;
  std::string policy_version;      // the bundle's version
  uint64_t policy_generation = 0;  // 1 for the first policy loaded, +1 per successful reload

  uint64_t event_seq = 0;
  int64_t time_ns = 0;       // the event's time
  // The event's network destination (a connect): its address as the sensor wrote it ("" when
  // the event has none) and port. The hub correlates findings across hosts by it.
  std::string dst_ip;
  uint16_t dst_port = 0;
  bool has_verdict = false;  // the model's verdict was part of the evaluation
  double ml_score = 0;
  std::string ml_model;

  bool matched() const { return !hits.empty(); }
  // True when the enforcer must act now.
  bool enforce() const { return mode == Mode::kEnforce && Acts(action); }
};

}  // namespace vigil::policy
