#pragma once

// The decision half of a synchronous gate: given one held call (its event and the acting
// process's context), what the rules say, under the gate's mode and deadline, with the per-rule
// fallback when the model is late or fails. The mechanics of holding and answering calls are the
// sensor's (sensor/seccomp_gate.h, sensor/fanotify_gate.h); the app wires the two together.
//
// Rules at a gate. A rule whose action is `deny` denies the call when it matches and is enforced:
// the gate runs in enforce mode AND the rule's action says `mode: enforce`. Otherwise a matching
// deny rule is counted as "would have denied" and the call is allowed. Matching rules with other
// actions (alert, kill, ...) are recorded as alerts; the gate itself only allows or denies.
//
// Deadline and fallback. The caller gives a deadline (monotonic ns). Rules are evaluated inline
// (bounded work: no I/O). When a VerdictSource is configured, rules that read ml.* fields need
// the model's verdict: the gate first finds the "candidate" rules, those that match when the
// model is assumed to have flagged the process (score 1, anomalous) but not without a verdict,
// and tells the caller their combined fallback (deny when any enforced candidate says
// `fallback: deny`) through `set_fallback` before asking the model. A model error applies that
// fallback at once (counted and recorded once the caller reports, by Answered, that the decision
// was the call's answer); a model that does not answer by the deadline leaves the call to the
// sensor's watchdog, which answers with the fallback it was given (reported here via
// FallbackAnswered). Without a VerdictSource ml.* fields are absent (checks on them are false)
// and no rule waits. Every fallback a call gets is counted and recorded once: a decision the
// watchdog overtook (LateDecision) adds none of its own. The same for a decision's own records
// (deny, alerts) and outcome count: written by Answered, never for a decision that was discarded.
//
// Rules in force. The gate holds a versioned rule set (GateRules) that SetRules replaces
// atomically: a decision reads the rules in force once, at its start, and is made and recorded
// wholly with them, with their version in each record (policy_version) and in the decision; a
// decision under way when they are replaced finishes with the old ones, which live as long as it
// does.
//
// Thread-safety: Decide, FallbackAnswered, SetRules and SetVerdictSource may be called from any
// thread. The verdict source (and a rule set given by pointer) must outlive the gate.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "policy/rules.h"

namespace vigil::enforce {

enum class GateMode : uint8_t { kMonitor, kEnforce };
std::string_view GateModeName(GateMode m);  // "monitor", "enforce"
bool ParseGateMode(std::string_view name, GateMode* out);

// The model's verdict on the process behind a call, for rules that read ml.* fields.
class VerdictSource {
 public:
  virtual ~VerdictSource() = default;
  // Should return by `deadline_ns` (CLOCK_MONOTONIC ns). An error is a failed model (fallback
  // now); returning after the deadline is a late one (the watchdog has answered already).
  virtual core::Result<core::Verdict> Score(const policy::EvalInput& in, int64_t deadline_ns) = 0;
  // Called by the gate for every call it decides, before Score (if any) for the same call, in
  // the order the gate decides them: a source that scores the history of a process's calls
  // records the call here. Must be quick (no I/O, no model).
  virtual void Observe(const policy::EvalInput& in) { (void)in; }
};

enum class FallbackReason : uint8_t {
  kDeadline,    // no decision by the deadline: the sensor's watchdog answered
  kModelError,  // the verdict source failed in time
  kUnreadable,  // the sensor could not read the call's arguments: nothing to decide on
  kError,       // the decision failed (an exception from a library it calls): DecisionFailed
  kQueued,      // queued behind a stuck decision: allowed by the sensor's watchdog undecided
  kStopping,    // pending when the gate stopped: answered undecided with the gate's fallback
};
// "deadline", "model_error", "unreadable", "error", "queued", "stopping"
std::string_view FallbackReasonName(FallbackReason r);

struct GateOptions {
  std::string name = "gate";  // the `gate` label of the metrics ("seccomp", "fanotify")
  GateMode mode = GateMode::kEnforce;
  int64_t deadline_ns = 5'000'000;
  // What a call gets when its decision does not finish by the deadline before any rule is known
  // to be at stake (e.g. reading the process's context hung): false allows, true denies.
  bool default_deny = false;
};

// A rule set and the version of the policy it comes from ("" when it has none).
struct GateRules {
  std::shared_ptr<const policy::RuleSet> rules;
  std::string version;
};

struct GateDecision {
  bool deny = false;        // the answer for the call
  bool would_deny = false;  // a deny rule matched but is not enforced (monitor)
  bool fallback = false;    // the answer is a fallback (model error)
  bool model_fallback = false;  // the model failed in time (counted by Answered)
  std::string model_error;      // model_fallback: what the verdict source said
  bool error_fallback = false;  // the decision failed (DecisionFailed; counted by Answered)
  std::string error;            // error_fallback: what failed
  bool late = false;            // decided after the deadline by Decide's clock (the watchdog
                                // answers; LateDecision counts it)
  const policy::Rule* rule = nullptr;  // the deny rule, or the candidate whose fallback applied
  std::string output;                  // the deny rule's output line
  int alerts = 0;                      // matching rules with other actions
  // What Answered records (and counts in vigil_gate_decisions_total) once the decision is known
  // to be the call's answer: the matches (deny_match: the index of the deny rule's, -1 when none
  // is recorded; the others are alerts) and the model's verdict when one was used.
  std::vector<policy::Match> matches;
  int deny_match = -1;
  std::optional<core::Verdict> verdict;
  // The rules the decision was made with (keeps `rule` alive); in_force->version: its version.
  std::shared_ptr<const GateRules> in_force;
};

// One thing the gate wants recorded (the app turns it into an audit record).
struct GateRecord {
  enum class Kind : uint8_t { kDecision, kFallback } kind = Kind::kDecision;
  const core::Event* event = nullptr;
  core::Decision decision;  // action, rule, reason (output or fallback cause), enforced, and
                            // the model's verdict when one was used
  std::string_view gate;
  std::string_view mode;               // "monitor" or "enforce"
  FallbackReason reason = FallbackReason::kDeadline;  // kFallback only
  std::string_view policy_version;     // the rules' version ("" when none, or not yet decided)
};
using RecordFn = std::function<void(const GateRecord&)>;

// What the gate counted. Everything but `decisions` and `late` is of the calls' answers: a
// decision the watchdog overtook (LateDecision) counts only in `decisions` and `late`.
struct GateStats {
  uint64_t decisions = 0;    // decisions made (Decide), whether or not they answered their call
  uint64_t denied = 0;       // calls denied (by a decision or a fallback)
  uint64_t would_deny = 0;   // monitor: deny rules or deny fallbacks not enforced
  uint64_t alerts = 0;
  uint64_t fallbacks = 0;  // every fallback (deadline, model error, unreadable, error, queued)
  uint64_t deadline_fallbacks = 0;
  uint64_t model_fallbacks = 0;  // the verdict source failed in time (kModelError)
  uint64_t stopping_fallbacks = 0;  // pending when the gate stopped (kStopping)
  uint64_t late = 0;             // decisions discarded: the watchdog had answered (LateDecision)
};

class DecisionGate {
 public:
  // `metrics` may be null (no metrics); `verdicts` may be null (no model: ml.* fields absent).
  DecisionGate(GateRules rules, GateOptions options, VerdictSource* verdicts,
               core::Registry* metrics, RecordFn record);
  // Rules without a version, owned by the caller (they must outlive the gate).
  DecisionGate(const policy::RuleSet* rules, GateOptions options, VerdictSource* verdicts,
               core::Registry* metrics, RecordFn record);
  ~DecisionGate();
  DecisionGate(const DecisionGate&) = delete;
  DecisionGate& operator=(const DecisionGate&) = delete;

  // Decides the call described by `in` (in.event required) with the rules in force.
  // `set_fallback(deny)` is called when the candidate rules are known, before the model is asked.
  GateDecision Decide(const policy::EvalInput& in, int64_t deadline_ns,
                      const std::function<void(bool deny)>& set_fallback);
  // The same with `in_force`, rules() read by the caller (who read what the rules need with them).
  GateDecision Decide(std::shared_ptr<const GateRules> in_force, const policy::EvalInput& in,
                      int64_t deadline_ns, const std::function<void(bool deny)>& set_fallback);

  // The decision of a call whose deciding failed (the caller caught an exception a library
  // threw): the fallback `deny` the call would get at its deadline, given at once. Counted and
  // recorded as a fallback (reason kError, `what` in the record) by Answered, or as late by
  // LateDecision when the watchdog answered first, as any decision.
  GateDecision DecisionFailed(bool deny, std::string what);

  // Puts `rules` in force (rules.rules must be non-null): decisions started after the call use
  // them. Thread-safe.
  void SetRules(GateRules rules);
  // The rules in force. Thread-safe.
  std::shared_ptr<const GateRules> rules() const { return rules_.load(); }

  // Every answered call is counted once, by exactly one of FallbackAnswered and Answered, in
  // vigil_gate_decisions_total{outcome} with the answer it got (allow or deny) and in
  // stats().denied when denied: the sum of the outcomes is the number of calls answered.
  //
  // The sensor answered the call of `event` with the fallback `deny` without a decision: its
  // watchdog at the deadline (kDeadline) or behind a stuck decision (kQueued), because the
  // arguments were unreadable (kUnreadable), or as the gate stopped (kStopping). Counted as
  // a fallback (stats().fallbacks, vigil_gate_fallbacks_total{reason}) and as its answer's
  // outcome; recorded.
  // `rules`: those the call's decision started with (its deadline fallback was armed from them),
  // recorded as the fallback's policy_version; null: the rules in force now.
  void FallbackAnswered(const core::Event& event, bool deny, FallbackReason why,
                        const GateRules* rules = nullptr);
  // Decision `d` (of `event`, as given to Decide) was its call's answer: its records (the deny
  // rule's, the alerts', or a model fallback's) are written now, its outcome counted in
  // vigil_gate_decisions_total and stats().denied (and would_have_enforced, alerts), and a
  // model fallback in it in stats().fallbacks and model_fallbacks and
  // vigil_gate_fallbacks_total's model_error (a failed decision's: `error`). Not called for a
  // decision the watchdog overtook (LateDecision): its call records and counts the watchdog's
  // fallback alone.
  void Answered(const core::Event& event, const GateDecision& d);
  // A decision finished after the sensor's watchdog had answered its call (FallbackAnswered
  // counted that answer): the decision is discarded, counted once here in stats().late and
  // vigil_gate_late_decisions_total, and nowhere else but stats().decisions. Called for every
  // decision that was not its call's answer, whether it finished before or after its deadline
  // by Decide's clock (GateDecision::late).
  void LateDecision();

  // Gives a gate started without a model one (the agent's gate takes the first gate model the hub
  // rolls out): decisions started after the call ask `verdicts` (non-null; it must outlive the
  // gate), those under way finish as they started. Thread-safe.
  void SetVerdictSource(VerdictSource* verdicts) {
    verdicts_.store(verdicts, std::memory_order_release);
  }

  const GateOptions& options() const { return options_; }
  bool has_verdicts() const { return verdicts_.load(std::memory_order_acquire) != nullptr; }
  GateStats stats() const;

  // Whether an enforce-mode gate may deny now. While false it decides as in monitor mode (deny
  // rules and deny fallbacks are counted as would-have-denied; records say "monitor"): the agent
  // holds its gate back until its own enforce-mode preconditions hold (verified models and
  // policies). Default true; thread-safe.
  void SetEnforcementAllowed(bool allowed) {
    enforcement_allowed_.store(allowed, std::memory_order_relaxed);
  }
  // The mode the gate decides in now: options().mode, or monitor while enforcement is held back.
  GateMode mode() const {
    return enforcement_allowed_.load(std::memory_order_relaxed) ? options_.mode
                                                                 : GateMode::kMonitor;
  }

 private:
  struct Metrics;
  bool Enforced(const policy::Rule& r) const;
  void Record(GateRecord::Kind kind, const core::Event& e, core::Action action,
              const policy::Rule* rule, std::string reason, bool enforced,
              std::string_view version, FallbackReason why = FallbackReason::kDeadline,
              const core::Verdict* verdict = nullptr);

  std::atomic<std::shared_ptr<const GateRules>> rules_;
  const GateOptions options_;
  std::atomic<VerdictSource*> verdicts_;
  std::atomic<bool> enforcement_allowed_{true};
  RecordFn record_;
  std::unique_ptr<Metrics> metrics_;
};

// Whether the rule denies at a gate (action type `deny`).
bool IsGateDenyRule(const policy::Rule& r);

}  // namespace vigil::enforce
