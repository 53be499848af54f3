#pragma once

// Rules files in Falco's YAML format (lists, macros, rules with condition, output, priority,
// tags, enabled, exceptions; required_engine_version; append and override), plus Vigil's
// per-rule `action` block. Files load in order; later items append to or override earlier ones.
// Each enabled rule compiles once into an evaluation tree; each field an evaluation needs is
// extracted once per event.
//
// Errors (exit 2 in the CLI) name the file, line and column and the reason: malformed YAML, an
// item of unknown kind or with unknown keys, a condition that does not parse, an undefined
// macro or list cycle, a value of the wrong type for its field. A rule that needs a field
// Vigil does not have is not an error: it is disabled with a warning naming the rule, the
// field, the file and the line (and the macro it came through).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "policy/fields.h"

namespace vigil::policy {

// The rule language version this engine implements; files asking for a newer
// required_engine_version are refused.
inline constexpr std::string_view kEngineVersion = "0.57.0";
// The largest rules file read (Falco's whole stable rules file is about 100 KB).
inline constexpr uint64_t kMaxRulesFileBytes = uint64_t{16} << 20;

enum class Priority : uint8_t {
  kEmergency, kAlert, kCritical, kError, kWarning, kNotice, kInformational, kDebug
};
std::string_view PriorityName(Priority p);

// Vigil's addition: what enforcement does when the rule fires.
struct RuleAction {
  std::string type = "alert";   // alert, deny, kill, freeze, block-network, escalate
  std::string mode = "monitor";  // monitor (record what would happen) or enforce
  std::string fallback = "allow";  // when the model is late or down: allow, deny or alert
  bool mode_given = false;      // `mode` was in the file (else the policy's mode applies)
  bool fallback_given = false;  // `fallback` was in the file (else the asset class's default)
  // escalate only: what a person is asked to approve (kill, freeze, block-network or alert) and
  // how long the question waits before the fallback's default applies (deny: carry it out).
  std::string proposed = "freeze";
  uint64_t timeout_seconds = 900;  // 1 s .. 30 days
};

struct Rule {
  std::string name;
  std::string desc;
  std::string condition;  // the text, after appends
  std::string output;
  Priority priority = Priority::kWarning;
  std::vector<std::string> tags;
  std::string source = "syscall";
  bool enabled = true;           // false: `enabled: false` in a file, or disabled by the loader
  std::string disabled_reason;   // why the loader disabled it ("" when enabled or by config)
  bool has_action = false;
  RuleAction action;
  std::string file;
  int line = 0;
};

struct LoadWarning {
  std::string file;
  int line = 0;
  std::string rule;     // "" for warnings about other items
  std::string message;  // e.g. field "proc.tty" is not supported (via macro "interactive")
  std::string ToString() const;
};

// A field a rule set reads, with its bracketed index (-1 when none is given).
struct FieldUse {
  std::string_view name;  // static text (FieldDef::name)
  int index = -1;
  bool operator==(const FieldUse&) const = default;
};

struct Match {
  const Rule* rule = nullptr;
  std::string output;  // the rule's output with %fields filled in ("<NA>" when absent)
};

// What RuleSet::Evaluate keeps about one process between its events: the values of the
// condition parts that read only the acting process (its name, executable, arguments, ancestors,
// user, container; docs/policy.md "Evaluation"), so that each is evaluated once per process
// instead of once per event. Owned by the caller, one per process (e.g. next to a reused
// EvalInput); not thread-safe.
//
// Valid while the EvalInput's process part (argv, user_name, ancestors, container_id, cwd,
// container_image, container_privileged, k8s_namespace) is unchanged: the caller calls Reset()
// when it changes. Evaluate forgets the values by itself when the rule
// set or the event's `proc` (pid, ppid, uid, comm, exe, loginuid, tty, capabilities) differs
// from the one they were computed for.
class ProcessMemo {
 public:
  void Reset() { rules_id_ = 0; }
  // Condition parts whose value came from the memo instead of being evaluated (for tests).
  uint64_t reused() const { return reused_; }

 private:
  friend class RuleSet;
  uint64_t rules_id_ = 0;  // the compiled rule set the values belong to; 0 none
  core::ProcessIdentity proc_;
  std::vector<int8_t> values_;  // per memoised part: -1 not evaluated yet, 0 false, 1 true
  uint64_t reused_ = 0;
};

class RuleSet {
 public:
  RuleSet();
  ~RuleSet();
  RuleSet(RuleSet&&) noexcept;
  RuleSet& operator=(RuleSet&&) noexcept;

  // Loads `paths` in order as one rule set (each file at most kMaxRulesFileBytes).
  static core::Result<RuleSet> LoadFiles(const std::vector<std::string>& paths);
  // Loads one document from memory; `source` names it in errors and warnings.
  static core::Result<RuleSet> LoadString(std::string_view yaml, std::string_view source);
  // Loads documents already read, in order: (name for diagnostics, YAML text).
  static core::Result<RuleSet> LoadDocuments(
      const std::vector<std::pair<std::string, std::string>>& docs);

  const std::vector<Rule>& rules() const;
  const std::vector<LoadWarning>& warnings() const;
  size_t enabled_count() const;

  // Every enabled rule whose condition holds for `in`, in load order. Thread-safe (a `memo`
  // belongs to one thread at a time). Only the rules that can hold for the event's evt.type are
  // evaluated, each specialised for that type; with a `memo` (see ProcessMemo), the parts of a
  // condition that read only the acting process are evaluated once per process
  // (docs/policy.md "Evaluation").
  std::vector<Match> Evaluate(const EvalInput& in, ProcessMemo* memo = nullptr) const;
  // The same result the plain way: every enabled rule evaluated on its whole compiled condition,
  // each with its fields extracted afresh, no evt.type plan and no memo. Slower; for tests that
  // check Evaluate against it.
  std::vector<Match> EvaluateEveryRule(const EvalInput& in) const;
  // How many enabled rules Evaluate considers for an event of evt.type `type`.
  size_t CandidateCount(std::string_view type) const;
  // How many condition parts a ProcessMemo may hold for this rule set (0: a memo is unused).
  size_t MemoizedParts() const;
  // Every field the enabled rules read, in their conditions (exceptions included) or outputs,
  // each once. What an evaluation may extract and nothing else: a caller that
  // builds the EvalInput can leave everything else out (e.g. a gate that reads /proc).
  std::vector<FieldUse> UsedFields() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::policy
