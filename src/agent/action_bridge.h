#pragma once

// From the policy's decisions to enforcement on this host: the agent hands every decision to
// Submit() on the event path; decisions that enforce (policy/decision.h: policy, rule, rollout
// stage and asset class all allow it, and the engine is allowed to enforce) are queued and
// carried out by one worker thread through enforce::Enforcer, which records each action in its
// ledger and audit outbox. Nothing on the event path reads /proc or touches the ledger.
//
// What is carried out: the decision's action (the strongest enforcing hit's) on the process
// behind the event, `pid:PID@STARTTIME` (the start time is read when the worker takes the item,
// so a pid recycled later is never hit). kill, freeze, block-network and alert go to
// Enforcer::Apply in enforce mode; escalate queues the question with the rule's `proposed`
// action and `timeout`, its default from the rule's fallback (deny: enforce, else dismiss).
// `deny` is a gate's answer and is not carried out after the fact (skipped, cause gate-only).
//
// Never acted on (skipped, cause protected): the agent's own process, its parent chain (read at
// Create), pid 1, pid 2 and kernel threads (PF_KTHREAD, or children of kthreadd).
//
// A process is acted on at most once per action for as long as it lives: a decision for a
// process whose same action is queued or was already carried out is skipped (cause duplicate),
// so a burst of matching events asks once, and a freeze rolled back by a person is not undone
// by the next event.
//
// Counters (core::Registry): the enforcer's vigil_enforcement_{success,failure,rollback}_total
// {action}; a request the enforcer refuses or cannot record is counted here as a failure too.
// vigil_enforcement_skipped_total{cause}: protected, duplicate, gate-only.
// vigil_enforcement_dropped_total{cause}: full (the queue was full), stopped (after Stop()).
// vigil_enforcement_ledger_entries{action,state}: the whole ledger, refreshed by Housekeep(), so
// rollbacks and escalation answers made by `vigil enforcement|escalations` show up too.
//
// Housekeeping (every `housekeeping_interval`, after each action, and at Stop()): expires due
// escalations (their default applies) and moves the ledger's audit outbox to `audit`.
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

enum class SubmitResult : uint8_t {
  kNotEnforcing,  // the decision does not enforce: nothing to do (monitor counts are policy's)
  kQueued,
  kGateOnly,      // deny: a gate's answer, not carried out after the fact
  kProtected,     // the agent, its parent chain, pid 1, pid 2
  kDuplicate,     // the same action on the same process is already queued
  kDroppedFull,
  kDroppedStopped,
};
std::string_view SubmitResultName(SubmitResult r);

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
  SubmitResult Submit(const policy::Decision& decision);

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
  ActionBridge(enforce::Enforcer& enforcer, ActionBridgeOptions options);
  void Worker();
  void Carry(const Item& item);
  bool IsKernelThread(int32_t pid, uint64_t* start_time) const;

  enforce::Enforcer& enforcer_;
  const ActionBridgeOptions options_;
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

  core::Counter* skipped_protected_ = nullptr;
  core::Counter* skipped_duplicate_ = nullptr;
  core::Counter* skipped_gate_ = nullptr;
  core::Counter* dropped_full_ = nullptr;
  core::Counter* dropped_stopped_ = nullptr;
  core::Counter* failure_[enforce::kActionKindCount] = {};
  std::mutex tally_mu_;
  enforce::Enforcer::Tally tally_;
  std::vector<core::Registry::CallbackHandle> gauges_;
};

}  // namespace vigil::agent
