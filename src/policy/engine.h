#pragma once

// The decision engine: holds the policy in force (a versioned bundle of rules files, with its
// mode and rollout stage), classifies each event's asset, evaluates the compiled rules once per
// event and returns a Decision (policy/decision.h). Reload() swaps in a new policy atomically;
// when the new files do not load, the previous policy stays in force and the error (file:line)
// is returned and counted.
//
// A policy source is a list of files, each either a rules file (a YAML list of Falco items) or
// a bundle manifest (a YAML map; docs/policy.md "Bundles"):
//
//   version: "2026.11.26-1"   # optional; default: "sha256:" + 16 hex digits of the rules' bytes
//   mode: monitor             # monitor | enforce (default: the engine options' mode)
//   stage: monitor            # monitor | enforce-non-critical | enforce-all
//   rules: [base.yaml, local.yaml]  # relative to the manifest's directory
//
// At most one manifest per source; rules files listed after it are loaded after its own.
//
// Thread-safety: Decide(), Current() and the counters may be called from any thread at any
// time, also during Reload(); Reload() calls are serialised internally.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"
#include "policy/decision.h"
#include "policy/fields.h"
#include "policy/rules.h"

namespace vigil::policy {

// An event's asset is `cls` when any of the listed keys matches (an empty list matches nothing).
struct AssetRule {
  AssetClass cls = AssetClass::kStandard;
  std::vector<std::string> comms;            // proc.name equal
  std::vector<std::string> exe_prefixes;     // executable path starts with
  std::vector<std::string> cgroup_prefixes;  // cgroup path starts with
  std::vector<std::string> container_ids;    // container id (or a prefix of at least 12 digits)
};

struct PolicyOptions {
  // Files to load, in order (rules files and at most one bundle manifest). When empty,
  // `embedded_yaml` is loaded instead (named `embedded_name` in diagnostics).
  std::vector<std::string> files;
  std::string embedded_yaml;
  std::string embedded_name = "<embedded>";
  // With `files` given: load `embedded_yaml` (when non-empty) before them, as the first rules
  // document (the gateway's rules generated from its config, which the files may append to or
  // override). It counts in the default version's digest, not in PolicySnapshot::sources.
  bool embedded_first = false;
  // Used when no manifest says otherwise.
  Mode mode = Mode::kMonitor;
  RolloutStage stage = RolloutStage::kMonitor;
  std::string version;  // "" = the rules' digest
  // Asset classification: the first matching rule, else `default_class`.
  AssetClass default_class = AssetClass::kStandard;
  std::vector<AssetRule> assets;
  // Fallback of a decision whose rule gives none, per class (indexed by AssetClass).
  Fallback class_fallback[3] = {Fallback::kDeny, Fallback::kAlert, Fallback::kAlert};
};

// A rule's action block as the engine applies it.
struct RuleSettings {
  core::Action action = core::Action::kAlert;
  bool mode_given = false;
  Mode mode = Mode::kMonitor;
  bool fallback_given = false;
  Fallback fallback = Fallback::kAlert;
  core::Action proposed = core::Action::kFreeze;  // escalate: what a person is asked to approve
  uint64_t timeout_seconds = 900;                 // escalate: how long the question waits
};

// The policy in force: immutable once published.
struct PolicySnapshot {
  RuleSet rules;
  std::string version;
  uint64_t generation = 0;
  Mode mode = Mode::kMonitor;
  RolloutStage stage = RolloutStage::kMonitor;
  std::vector<std::string> files;  // what was loaded, in order
  // (path, bytes) of every file read (a bundle manifest included), in the order read: the bytes
  // the rules were parsed from, for a signature check or a measurement of exactly those (a file
  // read again could have been replaced in between). Empty for the embedded rules.
  std::vector<std::pair<std::string, std::string>> sources;
  std::vector<RuleSettings> settings;  // indexed like rules.rules()
  // Per rule (indexed like rules.rules()): counters in the engine's registry.
  std::vector<core::Counter*> matches;
  std::vector<core::Counter*> would_enforce;
  std::vector<core::Counter*> enforced;
};

class PolicyEngine {
 public:
  // Loads `options`' source. Errors: the load's (kInvalidArgument "FILE:LINE:COL: reason",
  // kNotFound for a missing file), or a bad option. `registry` (not owned; nullptr: the engine
  // keeps a private one) receives vigil_policy_* metrics and must outlive the engine.
  static core::Result<std::unique_ptr<PolicyEngine>> Create(PolicyOptions options,
                                                            core::Registry* registry = nullptr);
  ~PolicyEngine();
  PolicyEngine(const PolicyEngine&) = delete;
  PolicyEngine& operator=(const PolicyEngine&) = delete;

  // Re-reads the same source. On success the new policy replaces the old one atomically
  // (generation + 1) and decisions made after the call returns use it; on failure the previous
  // policy stays in force and the error is returned.
  core::Status Reload();

  // Evaluates `*in` (in->event required; in->verdict optional) against the policy in force.
  // Sets in->asset_class to the engine's classification first. Thread-safe; evaluation reads
  // each field at most once. `memo` (optional; RuleSet::Evaluate) keeps what only depends on
  // in's process across calls for the same process: the caller resets it when in's process
  // part changes.
  Decision Decide(EvalInput* in, ProcessMemo* memo = nullptr) const;

  // The asset class of `in`'s process under the engine's options. A Modbus request
  // (in.modbus set) is classified by its asset instead: critical when the asset is, else
  // non-critical; a request no asset maps gets the default class.
  AssetClass Classify(const EvalInput& in) const;

  // What a gate applies when the model's verdict on `*in` is not available (late, breaker open,
  // model down or without the data to judge). The rules at stake are the enabled rules whose
  // action acts and that match with `assumed` as the verdict (e.g. score 1, anomalous) but not
  // without a verdict. Returns the one with the strictest fallback (its own `fallback`, else
  // the asset class's; deny over alert over allow; then an enforced rule, then the stronger
  // action), with the mode it would be carried out in (enforce only when policy mode, rule mode,
  // stage and SetEnforcementAllowed all allow it, as in Decide); nullopt when no rule is at
  // stake. Counts nothing; sets in->asset_class like Decide and leaves in->verdict as it was.
  struct AtStake {
    std::string rule;
    Fallback fallback = Fallback::kAlert;
    Mode mode = Mode::kMonitor;
    Priority priority = Priority::kWarning;
  };
  std::optional<AtStake> FallbackAtStake(EvalInput* in, const core::Verdict& assumed) const;

  std::shared_ptr<const PolicySnapshot> Current() const;

  // Whether decisions may enforce at all. While false, every decision is made as if the
  // policy's mode were monitor (recorded, would-have-enforced counted): the agent holds
  // enforcement back until its own preconditions hold (verified models, attestation). The
  // decision's policy_mode still names the policy's mode. Default true; thread-safe.
  void SetEnforcementAllowed(bool allowed) { enforcement_allowed_.store(allowed); }
  bool enforcement_allowed() const { return enforcement_allowed_.load(); }

  struct Counts {
    uint64_t decisions = 0;      // Decide() calls
    uint64_t matched = 0;        // decisions with at least one hit
    uint64_t would_enforce = 0;  // monitor-mode decisions that would have acted
    uint64_t enforce = 0;        // decisions that enforce
    uint64_t reloads = 0;        // successful reloads (not the first load)
    uint64_t reload_failures = 0;
  };
  Counts counts() const;

 private:
  PolicyEngine(PolicyOptions options, core::Registry* registry);
  core::Result<std::shared_ptr<const PolicySnapshot>> Build(uint64_t generation) const;

  const PolicyOptions options_;
  std::unique_ptr<core::Registry> own_registry_;
  core::Registry* registry_;
  std::atomic<std::shared_ptr<const PolicySnapshot>> current_;
  std::atomic<bool> enforcement_allowed_{true};
  std::mutex reload_mu_;

  core::Counter* decisions_ = nullptr;
  core::Counter* matched_ = nullptr;
  core::Counter* would_enforce_ = nullptr;
  core::Counter* enforce_ = nullptr;
  core::Counter* reloads_ = nullptr;
  core::Counter* reload_failures_ = nullptr;
  core::Gauge* generation_ = nullptr;
};

}  // namespace vigil::policy
