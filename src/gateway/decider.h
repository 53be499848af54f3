#pragma once

// The inline decision on every Modbus request the proxy must decide (an actuator write, or a
// function code that is neither a read nor a checked write), made by the same engines as the host
// gates' (docs/gateway.md, "Deciding a write"):
//  - the policy engine (policy/engine.h) evaluates the gateway's rules: the built-in rules
//    generated from the config (BuiltinRules: unmapped, range, rate, model, function) and the
//    user's rules files (policy.rules), in the rule language of the host rules, over the
//    modbus.* fields (policy/fields.h ModbusInput), ml.* and asset.class. A write of several
//    registers is evaluated once per register; the first denial decides for the whole write.
//  - the inference engine (model/inference_engine.h) asks the actuator-state model, with the
//    gate deadline and its circuit breaker, for assets with a `signal`, when no rule has denied
//    the value without it; its verdict is the ml.* fields of a second evaluation.
// When the verdict is not available (late, breaker open, engine stopped, model error, or no
// usable plant reading) the policy engine's fallback applies (PolicyEngine::FallbackAtStake):
// the fallback of the rules that would deny had the model flagged the write — their own
// `fallback:`, else the asset class's: a critical asset (class critical) fails closed (deny),
// any other fails open with an alert. Every fallback is counted by cause.
//
// Modes: a denial is enforced (a Modbus exception; the PLC never sees the write) when the policy
// engine enforces it (policy mode, the rule's mode, the rollout stage policy.stage for the
// asset's class) and the asset's mode (or the gateway's) is enforce; otherwise it passes and is
// recorded as would-have-denied.
//
// Thread-safe: Decide and Committed may be called from every client thread at once.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "gateway/actuator_model.h"
#include "gateway/config.h"
#include "gateway/modbus_frame.h"
#include "model/inference_engine.h"
#include "model/model.h"
#include "policy/engine.h"

namespace vigil::gateway {

// Modbus exception codes the proxy answers with.
inline constexpr uint8_t kExceptionIllegalFunction = 0x01;
inline constexpr uint8_t kExceptionIllegalDataValue = 0x03;
inline constexpr uint8_t kExceptionServerBusy = 0x06;  // fail-closed fallback: try again later
inline constexpr uint8_t kExceptionGatewayTargetFailed = 0x0B;  // the PLC did not answer

// Answers "is setting actuator `signal` to `state` consistent with the plant?". Runs on the
// inference engine's worker thread (JudgeModel), one call at a time.
class CommandJudge {
 public:
  virtual ~CommandJudge() = default;
  virtual Judgement Judge(const std::string& signal, uint32_t state) = 0;
};

// The actuator-state model over the live plant state.
class ActuatorJudge final : public CommandJudge {
 public:
  // All three must outlive the judge.
  ActuatorJudge(const ActuatorStateModel& model, const PlantState& plant, const core::Clock& clock)
      : model_(model), plant_(plant), clock_(clock) {}
  Judgement Judge(const std::string& signal, uint32_t state) override {
    return model_.Judge(signal, state, plant_, clock_.MonotonicNanos());
  }

 private:
  const ActuatorStateModel& model_;
  const PlantState& plant_;
  const core::Clock& clock_;
};

// Any CommandJudge as a model::Model for the inference engine: a request's subject is the
// actuator's signal and values[0] the commanded state. The verdict's score is the judgement's,
// anomalous when inconsistent, explained by its evidence; a judgement without an opinion (no
// usable plant reading) is a verdict with `events` 0. Thread-safe when the judge is.
class JudgeModel final : public model::Model {
 public:
  explicit JudgeModel(CommandJudge& judge) : judge_(judge) {}  // `judge` must outlive the model
  const std::string& family() const override { return name_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  // Commands are judged one at a time, not as streams: a stream scores nothing.
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view subject) const override;
  core::Result<core::Verdict> Score(const model::FeatureView& request) const override;

 private:
  CommandJudge& judge_;
  const std::string name_ = "actuator-state";
  const std::string version_ = "1";
};

// The inference engine's options for the gateway's model from `decision`: answers on the
// engine's worker (the caller waits at most deadline_us), no verdict cache (the plant state
// changes under the same command), the breaker opening after `breaker_failures` late or failed
// verdicts within 10 s for `breaker_cooldown_ms`, and the worker at `realtime_priority`.
// `registry` (must outlive the engine) receives its vigil_engine_* metrics (engine="gateway").
model::InferenceEngineOptions ModelEngineOptions(const DecisionConfig& decision,
                                                 core::Registry* registry);

// The built-in rules generated from `config`, as a rules document (docs/gateway.md, "Rules").
std::string BuiltinRules(const GatewayConfig& config);

// The gateway's policy engine: the built-in rules, then config.policy.rules; its mode is enforce
// when the gateway or any asset is in enforce mode, its stage config.policy.stage. A rule the
// loader would disable (a field the engine lacks) is an error here, naming the file and line: a
// rule meant to guard a write must not be skipped. `registry` (may be null) receives
// vigil_policy_* metrics and must outlive the engine.
core::Result<std::unique_ptr<policy::PolicyEngine>> CreateGatewayPolicy(
    const GatewayConfig& config, core::Registry* registry);

// Why a model verdict was not used.
enum class FallbackCause : uint8_t {
  kNone, kLate, kBreakerOpen, kOverload, kNoState, kModelError
};
inline constexpr size_t kFallbackCauses = 6;
// "none", "late", "breaker-open", "overload", "no-state", "model-error"
std::string_view FallbackCauseName(FallbackCause c);

// What decided: a built-in rule (gateway.<name>), the fallback, or a rule of the user's (custom).
enum class Rule : uint8_t {
  kNone, kUnmapped, kRange, kRate, kModel, kFallback, kFunction, kCustom
};
inline constexpr size_t kRules = 8;
std::string_view RuleName(Rule r);  // "none", "unmapped", "range", "rate", "model", ..., "custom"

struct WriteDecision {
  bool deny = false;      // the rules say no
  bool enforced = false;  // ... and the write was refused (enforce mode)
  bool alert = false;     // passed, but an operator should know (fail-open fallback, alert rule)
  Rule rule = Rule::kNone;
  std::string policy_rule;  // the policy rule that decided (for a fallback: the one at stake)
  FallbackCause fallback = FallbackCause::kNone;
  uint8_t exception = 0;  // the Modbus exception code sent when enforced
  std::string asset;      // the asset that decided (empty for unmapped / other functions)
  uint16_t address = 0;
  uint32_t value = 0;
  bool critical = false;
  Mode mode = Mode::kMonitor;
  double score = 0;       // 1 for rule denials; the model's score for model denials
  std::string reason;
  std::vector<core::Evidence> why;
  // The policy the decision was made under, as in a host decision.
  std::string policy_version;
  uint64_t policy_generation = 0;
  policy::RolloutStage stage = policy::RolloutStage::kMonitor;
  policy::AssetClass asset_class = policy::AssetClass::kStandard;
};

struct DeciderStats {
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> denied{0};           // enforced denials
  std::atomic<uint64_t> would_have_denied{0};  // denials passed in monitor mode
  std::atomic<uint64_t> alerts{0};           // fail-open fallbacks
  std::atomic<uint64_t> rule_alerts{0};      // passed writes an alert rule matched
  std::array<std::atomic<uint64_t>, kRules> by_rule{};             // denials per Rule
  std::array<std::atomic<uint64_t>, kFallbackCauses> fallbacks{};  // per FallbackCause
};

class Decider {
 public:
  // `model` may be null (no model: assets with a signal take their fallback with cause
  // kNoState). `policy`, `model`, `clock` and `decide_latency` (may be null) must outlive it.
  Decider(const GatewayConfig& config, const policy::PolicyEngine& policy,
          model::InferenceEngine* model, const core::Clock& clock,
          core::Histogram* decide_latency = nullptr);

  WriteDecision Decide(const WriteRequest& w);
  // A request with a function code that is neither a read nor a checked write.
  WriteDecision DecideOther(uint8_t unit, uint8_t function);
  // The PLC accepted `w`: its values become the last values for the rate check.
  void Committed(const WriteRequest& w);

  const DeciderStats& stats() const { return stats_; }

 private:
  struct AssetState {
    const AssetConfig* config = nullptr;
    std::mutex mu;
    bool has_last = false;
    double last = 0;
    int64_t last_ns = 0;
  };
  AssetState* Find(RegisterKind kind, uint8_t unit, uint16_t address);
  // Decides one value; fills `d` and returns true when it is denied.
  bool Check(AssetState* s, policy::EvalInput* in, policy::ModbusInput* m, WriteDecision* d);
  // Takes the policy decision `pd` into `d`: true when it denies (an acting rule matched).
  bool Apply(const policy::Decision& pd, const AssetConfig* a, WriteDecision* d);
  void Finish(WriteDecision* d);

  const GatewayConfig& config_;
  const policy::PolicyEngine& policy_;
  model::InferenceEngine* model_;
  const core::Clock& clock_;
  core::Histogram* latency_;
  // key: kind << 24 | (unit + 1) << 16 | address, unit -1 stored as 0
  std::unordered_map<uint32_t, std::unique_ptr<AssetState>> assets_;
  std::atomic<uint64_t> seq_{0};
  DeciderStats stats_;
};

}  // namespace vigil::gateway
