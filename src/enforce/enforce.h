#pragma once

// Enforcement: the actions a decision asks for, carried out on this host, each recorded in a
// durable ledger with its rollback. docs/enforcement.md describes the actions, the ledger and
// the escalation queue; this header is the contract.
//
//   alert          recorded only; nothing on the host changes.
//   kill           SIGKILL to a process (through a pidfd, so a recycled pid is never hit), to a
//                  process group, or to every process of a cgroup (cgroup.kill). Not reversible:
//                  a rollback is refused and recorded as such.
//   freeze         cgroup v2 freezer. A process (with its descendants) or a process group is
//                  moved into a Vigil-owned cgroup <cgroup2 root>/<subtree>/a<ID>, which is then
//                  frozen; a cgroup target is frozen in place. Rollback thaws, moves the
//                  processes back to the cgroups they came from and removes the Vigil cgroup.
//   block-network  cgroup/connect4, connect6, sendmsg4 and sendmsg6 BPF programs attached to
//                  the cgroup v2 root refuse (EPERM) every connect from a deny-listed cgroup or
//                  its descendants. A process target is first moved into a Vigil-owned cgroup
//                  as for freeze, so that only it (and its descendants) is cut off. Rollback
//                  removes the deny-list entry (the programs detach with the last entry) and
//                  moves the processes back.
//   escalate       a pending question in a durable local queue: a person approves (the proposed
//                  action is carried out) or denies (nothing is done) before a deadline; at the
//                  deadline the escalation's default applies.
//
// Monitor mode decides and records, never acts: the ledger gets a "monitor" entry and the
// would-have-enforced counter of the action goes up.
//
// Every action, rollback and escalation step is written, in the same SQLite transaction as the
// ledger change, to an audit outbox; DrainAudit() hands the records to the audit log in order
// (whoever holds the log: the agent, or a CLI command when no agent runs).
//
// Counters (core::Registry, label action=<name>): vigil_enforcement_success_total,
// vigil_enforcement_failure_total, vigil_enforcement_rollback_total,
// vigil_enforcement_would_have_enforced_total.
//
// Thread-safety: an Enforcer may be used from several threads; operations that change the host
// or the ledger are serialised, across processes too (flock on <state_dir>/enforce.lock).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

namespace vigil::enforce {

enum class ActionKind : uint8_t { kAlert, kKill, kFreeze, kBlockNetwork, kEscalate };
inline constexpr int kActionKindCount = 5;
// "alert", "kill", "freeze", "block-network", "escalate" (the names rules use).
std::string_view ActionKindName(ActionKind a);
bool ParseActionKind(std::string_view name, ActionKind* out);

enum class TargetKind : uint8_t { kProcess, kProcessGroup, kCgroup };

struct Target {
  TargetKind kind = TargetKind::kProcess;
  int32_t pid = 0;          // kProcess: the process id; kProcessGroup: the group id
  uint64_t start_time = 0;  // kProcess: starttime from /proc/PID/stat (clock ticks since boot)
                            // of the process meant; 0: not checked. A mismatch means the pid was
                            // recycled and the action is refused.
  std::string cgroup;       // kCgroup: path below the cgroup v2 root, starting with '/'
  // "pid:123", "pid:123@456789" (with start time), "pgid:123", "cgroup:/a/b".
  std::string ToString() const;
};
// Parses the ToString() form. kInvalidArgument naming the text and the fault otherwise: pid
// out of 1..4194304, a cgroup path that is not absolute, is "/", holds "..", "." or empty
// components, control characters, or is longer than 4096 bytes.
core::Result<Target> ParseTarget(std::string_view text);

enum class Mode : uint8_t { kMonitor, kEnforce };
std::string_view ModeName(Mode m);  // "monitor", "enforce"
bool ParseMode(std::string_view name, Mode* out);

// What an escalation does when nobody answers before its deadline.
enum class TimeoutDefault : uint8_t {
  kDismiss,  // nothing is done (the rule's fallback was allow or alert)
  kEnforce,  // the proposed action is carried out (the rule's fallback was deny)
};
std::string_view TimeoutDefaultName(TimeoutDefault d);  // "dismiss", "enforce"
bool ParseTimeoutDefault(std::string_view name, TimeoutDefault* out);
// The default a rule's fallback ("allow", "deny", "alert") implies: deny -> kEnforce.
TimeoutDefault TimeoutDefaultForFallback(std::string_view fallback);

// One action a decision asks for. (The policy room's Decision is mapped to this by the caller.)
struct ActionRequest {
  ActionKind action = ActionKind::kAlert;
  Target target;
  std::string rule;    // the rule that asked for it ("" for a manual action)
  std::string reason;  // why, for the ledger and the audit record
  Mode mode = Mode::kMonitor;
  // kEscalate only.
  ActionKind proposed = ActionKind::kFreeze;  // carried out on approval; not kEscalate
  TimeoutDefault on_timeout = TimeoutDefault::kDismiss;
  uint64_t timeout_seconds = 900;  // 1 .. 30 days
};

enum class State : uint8_t {
  kApplying,    // recorded, being carried out (left so only by a crash in between)
  kApplied,
  kRolledBack,
  kFailed,
  kMonitor,     // monitor mode: decided and recorded, not carried out
};
inline constexpr int kStateCount = 5;
std::string_view StateName(State s);  // "applying", "applied", "rolled-back", "failed", "monitor"
bool ParseState(std::string_view name, State* out);

// One row of the ledger.
struct LedgerEntry {
  uint64_t id = 0;
  int64_t time_ns = 0;  // Unix nanoseconds when recorded
  ActionKind action = ActionKind::kAlert;
  Target target;
  std::string rule;
  std::string reason;
  Mode mode = Mode::kMonitor;
  State state = State::kApplying;
  std::string detail;        // what was done, or why it failed
  bool reversible = false;   // a rollback can undo it (false for kill)
  std::string cgroup;        // the cgroup acted on (the Vigil-owned one for moved processes)
  uint64_t escalation_id = 0;
  int64_t rolled_back_ns = 0;
  std::string rollback_detail;
};
nlohmann::json ToJson(const LedgerEntry& e);

enum class EscalationState : uint8_t { kPending, kApproved, kDenied, kExpired, kCancelled };
// "pending", "approved", "denied", "expired", "cancelled".
std::string_view EscalationStateName(EscalationState s);
bool ParseEscalationState(std::string_view name, EscalationState* out);

struct Escalation {
  uint64_t id = 0;
  int64_t created_ns = 0;
  int64_t deadline_ns = 0;
  std::string rule;
  std::string reason;
  Target target;
  ActionKind proposed = ActionKind::kFreeze;
  TimeoutDefault on_timeout = TimeoutDefault::kDismiss;
  EscalationState state = EscalationState::kPending;
  int64_t decided_ns = 0;
  std::string decided_by;    // who approved or denied; "timeout" for an expiry
  uint64_t action_id = 0;    // the ledger entry of the escalate action
  uint64_t result_id = 0;    // the ledger entry of the carried-out action (0: none)
};
nlohmann::json ToJson(const Escalation& e);

// The result of Apply, Rollback, Approve or Deny.
struct Outcome {
  uint64_t id = 0;            // the ledger entry
  State state = State::kFailed;
  std::string detail;
  core::Status error;         // OK unless the action or rollback failed
  uint64_t escalation_id = 0;
};

struct EnforcerOptions {
  std::string state_dir;                 // the ledger is <state_dir>/enforcement.db
  std::string cgroup_root;               // "": the cgroup2 mount from /proc/self/mountinfo
                                         // (mounted at /run/vigil/cgroup2 when there is none)
  std::string cgroup_subtree = "vigil";  // Vigil-owned cgroups live below <root>/<subtree>
  std::string bpf_pin_dir = "/sys/fs/bpf/vigil";  // block-network pins its programs and map here
  std::string actor = "vigil";           // named in audit records ("vigil agent", "vigil CLI")
};

class Enforcer {
 public:
  // Opens (creating) the ledger. Kernel facilities (cgroup2, bpffs) are looked up when an
  // action first needs them, so a host without them can still list and record. `clock` and
  // `registry` must outlive the Enforcer. kDataLoss when the ledger is not a Vigil ledger or
  // is damaged; an I/O status naming the path otherwise.
  static core::Result<std::unique_ptr<Enforcer>> Open(const EnforcerOptions& options,
                                                      const core::Clock& clock,
                                                      core::Registry& registry);
  ~Enforcer();
  Enforcer(const Enforcer&) = delete;
  Enforcer& operator=(const Enforcer&) = delete;

  // Carries out (enforce mode) or records (monitor mode) one action. An error result only for a
  // request that is not valid (kInvalidArgument: a kill of a cgroup path that is "/", an
  // escalation proposing escalate, a timeout out of range) or when the ledger cannot be
  // written; an action that fails on the host is recorded as failed and returned as an Outcome
  // with state kFailed and the error.
  core::Result<Outcome> Apply(const ActionRequest& request);

  // Undoes ledger entry `id`. kNotFound for an unknown id; kFailedPrecondition when the entry
  // cannot be rolled back (already rolled back, failed, monitor, or not reversible: kill; the
  // refusal of a kill's rollback is itself recorded and audited). A rollback that fails on the
  // host returns an Outcome with the error; the entry stays applied.
  core::Result<Outcome> Rollback(uint64_t id);

  // Ledger entries, newest first (at most `limit`; 0: all).
  core::Result<std::vector<LedgerEntry>> List(size_t limit = 0) const;
  core::Result<LedgerEntry> Get(uint64_t id) const;
  // How many ledger entries each action has in each state (monitor: would have enforced),
  // over the whole ledger, so the figures survive restarts and cover every process.
  struct Tally {
    uint64_t by_state[kStateCount][kActionKindCount] = {};  // [State][ActionKind]
    uint64_t rolled_back_total = 0;
  };
  core::Result<Tally> Count() const;

  // Escalations, newest first; `pending_only` leaves out decided ones. Applies due expiries
  // first.
  core::Result<std::vector<Escalation>> Escalations(bool pending_only);
  // Decides a pending escalation. kNotFound for an unknown id; kFailedPrecondition when it is
  // no longer pending (an expired one names the default that was applied). Approval carries out
  // the proposed action (its Outcome is returned); a denial carries out nothing.
  core::Result<Outcome> Approve(uint64_t escalation_id, std::string_view who);
  core::Result<Outcome> Deny(uint64_t escalation_id, std::string_view who);
  // Applies the default of every pending escalation whose deadline has passed; returns how
  // many expired. The agent calls it periodically; the escalation commands call it first.
  core::Result<size_t> ExpireDue();

  // Hands queued audit records to `write` (type is "enforcement", "rollback" or "escalation";
  // the payload is the record's JSON) in order, removing each one `write` accepts. Stops at the
  // first error `write` returns and returns it; the rest stay queued.
  using AuditWriter = std::function<core::Status(std::string_view type, nlohmann::json payload)>;
  core::Result<size_t> DrainAudit(const AuditWriter& write);
  core::Result<size_t> PendingAudit() const;

  const std::string& ledger_path() const;

 private:
  struct Impl;
  explicit Enforcer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::enforce
