#pragma once

// From the policy's decisions to enforcement on this host: the agent hands every decision to
// Submit() on the event path; decisions that enforce (policy/decision.h: policy, rule, rollout
// stage and asset class all allow it, and the engine is allowed to enforce) are queued and
// carried out by one worker thread through enforce::Enforcer, which records each action in its
// ledger and audit outbox. Nothing on the event path reads /proc or touches the ledger.
//
// What is carried out: the action of every enforcing hit of the decision (RuleHit::mode is
// enforce; a decision enforces exactly when one of its hits does), each on the process behind
// the event, `pid:PID@STARTTIME` (the start time is read when the worker takes the item, so a
// pid recycled later is never hit), each with its own rule's name, output, and for escalate its
// `proposed` action, `timeout` and default (from the rule's fallback: deny -> enforce, else
// dismiss). kill, freeze, block-network and escalate go to Enforcer::Apply in enforce mode, so
// each is its own ledger entry, audit record and counter, and reversible on its own. Hits in
// monitor mode stay what the policy engine made them: would-have-enforced counts and the
// decision's record; they are not queued. `deny` is a gate's answer and is not carried out
// after the fact (skipped, cause gate-only).
//
// Several actions of one decision, in this order: freeze, block-network, escalate, kill. Freeze
// first stops the process at once; block-network then finds it in the freeze's Vigil cgroup
// and cuts that cgroup off (enforce.h: the two share it); an escalation asks about a process
// that is already held; kill comes last, since nothing can be done to a process after it. The
// same action asked by several hits is carried out once, for the first such hit in load order
// (the others: skipped, cause duplicate). A kill makes a freeze of the same decision moot: the
// freeze is not carried out (skipped, cause superseded); and once a kill of a process succeeded,
// any later action on that process is skipped the same way.
//
// Never acted on (skipped, cause protected): the agent's own process, its parent chain (read at
// Create), pid 1, pid 2 and kernel threads (PF_KTHREAD, or children of kthreadd).
//
// A process is acted on at most once per action for as long as it lives: an action for a
// process whose same action is queued or was already carried out is skipped (cause duplicate),
// so a burst of matching events asks once, and a freeze rolled back by a person is not undone
// by the next event.
//
// Counters (core::Registry): the enforcer's vigil_enforcement_{success,failure,rollback}_total
// {action}; a request the enforcer refuses or cannot record is counted here as a failure too.
// vigil_enforcement_rule_actions_total{rule,action,result}: what the worker did for each rule
// (result: applied, failed, refused). Each skip or drop below counts one action:
// vigil_enforcement_skipped_total{cause}: protected, duplicate, superseded, gate-only.
// vigil_enforcement_dropped_total{cause}: full (`queue_capacity` actions were already queued),
// stopped (after Stop()).
// vigil_enforcement_ledger_entries{action,state}: the whole ledger, refreshed by Housekeep(), so
// rollbacks and escalation answers made by `vigil enforcement|escalations` show up too.
//
// Housekeeping (every `housekeeping_interval`, after each action, and at Stop()): expires due
// escalations (their default applies), moves the ledger's audit outbox to `audit`, and logs a
// warning with the number of actions dropped because the queue was full since the last such
// warning (at most one per `housekeeping_interval`, and a last one at Stop()).
//
// Thread-safety: Submit() may be called from any thread; Start/Stop from the owner.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"
#include "enforce/enforce.h"
#include "policy/decision.h"

namespace vigil::agent {

struct ActionBridgeOptions {
  // Actions queued for the worker (not decisions: one decision may queue several), >= 1.
  size_t queue_capacity = 256;
  std::chrono::milliseconds housekeeping_interval{1000};
  std::string proc_root = "/proc";
  // Receives the enforcer's audit records (type "enforcement", "rollback" or "escalation").
  // Empty: the records stay in the ledger's outbox for a CLI command to move.
  enforce::Enforcer::AuditWriter audit;
  // Told about every action the worker carried out or that failed (for the agent's console).
  std::function<void(const enforce::ActionRequest&, const core::Result<enforce::Outcome>&)>
      on_result;
};

// What became of one enforcing hit's action.
enum class SubmitResult : uint8_t {
  kQueued,
  kGateOnly,      // deny: a gate's answer, not carried out after the fact
  kProtected,     // the agent, its parent chain, pid 1, pid 2
  kDuplicate,     // the same action on the same process is already queued (or asked by an
                  // earlier hit of the decision)
  kSuperseded,    // a freeze in a decision that also kills the process
  kDroppedFull,
  kDroppedStopped,
};
std::string_view SubmitResultName(SubmitResult r);

struct Submitted {
  core::Action action = core::Action::kAlert;
  std::string rule;
  SubmitResult result = SubmitResult::kQueued;
};
// One entry per enforcing hit, in the order the actions are carried out; empty when the decision
// does not enforce (nothing to do: monitor counts are the policy engine's).
using SubmitReport = std::vector<Submitted>;

class ActionBridge {
 public:
  // `enforcer` and `registry` must outlive the bridge. Reads the agent's parent chain from
  // `proc_root`. Errors: a counter that cannot be registered.
  static core::Result<std::unique_ptr<ActionBridge>> Create(enforce::Enforcer& enforcer,
                                                            ActionBridgeOptions options,
                                                            core::Registry& registry);
  ~ActionBridge();  // Stop()s
  ActionBridge(const ActionBridge&) = delete;
  ActionBridge& operator=(const ActionBridge&) = delete;

  void Start();
  // Carries out what is queued, housekeeps once more and joins the worker. Idempotent.
  void Stop();

  // Never blocks on the host or the ledger; allocates only for a decision that enforces.
  SubmitReport Submit(const policy::Decision& decision);

  // Expires due escalations, drains the audit outbox, refreshes the ledger gauges. Called by
  // the worker; callable from any thread (tests call it without Start()).
  void Housekeep();
  // Waits until the queue is empty and no action is in progress, at most `limit`; false on
  // timeout. With no worker started, runs the queued actions on the caller's thread.
  bool WaitIdle(std::chrono::milliseconds limit);

  const std::set<int32_t>& protected_pids() const { return protected_; }
  size_t queued() const;

  struct Item {
    enforce::ActionKind action = enforce::ActionKind::kAlert;
    int32_t pid = 0;
    std::string rule;
    std::string reason;
    enforce::ActionKind proposed = enforce::ActionKind::kFreeze;
    enforce::TimeoutDefault on_timeout = enforce::TimeoutDefault::kDismiss;
    uint64_t timeout_seconds = 900;
  };

 private:
  ActionBridge(enforce::Enforcer& enforcer, ActionBridgeOptions options,
               core::Registry& registry);
  SubmitResult Enqueue(const policy::RuleHit& hit, enforce::ActionKind kind, int32_t pid);
  void CountRule(const std::string& rule, enforce::ActionKind action, std::string_view result);
  void ReportDrops(bool now);
  void Worker();
  void Carry(const Item& item);
  bool IsKernelThread(int32_t pid, uint64_t* start_time) const;

  enforce::Enforcer& enforcer_;
  const ActionBridgeOptions options_;
  core::Registry& registry_;
  std::set<int32_t> protected_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work queued, or stop
  std::condition_variable idle_cv_;  // the queue ran empty
  std::deque<Item> queue_;
  std::set<std::pair<int32_t, uint8_t>> pending_;  // (pid, action) queued or in progress
  bool busy_ = false;
  bool stopping_ = false;
  bool started_ = false;
  bool worker_done_ = false;
  std::thread worker_;

  // Worker only: (pid, action) -> start time of the process acted on.
  std::map<std::pair<int32_t, uint8_t>, uint64_t> done_;
  // Worker only: pid -> start time of a process a kill was applied to.
  std::map<int32_t, uint64_t> killed_;

  core::Counter* skipped_protected_ = nullptr;
  core::Counter* skipped_duplicate_ = nullptr;
  core::Counter* skipped_gate_ = nullptr;
  core::Counter* skipped_superseded_ = nullptr;
  core::Counter* dropped_full_ = nullptr;
  std::mutex report_mu_;
  uint64_t reported_full_ = 0;  // dropped_full_ when last logged
  std::chrono::steady_clock::time_point next_report_{};
  core::Counter* dropped_stopped_ = nullptr;
  core::Counter* failure_[enforce::kActionKindCount] = {};
  std::mutex tally_mu_;
  enforce::Enforcer::Tally tally_;
  std::vector<core::Registry::CallbackHandle> gauges_;
};

}  // namespace vigil::agent
