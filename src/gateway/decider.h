#pragma once

// The inline decision on every actuator command the proxy sees (a Modbus write), in order:
//  1. unmapped: an address no asset names is denied (modbus.unmapped_writes: deny, the default);
//  2. range: each value must lie in the asset's [min, max];
//  3. rate: |value - last passed value| / seconds since then must not exceed max_rate;
//  4. model: for an asset with a `signal`, the actuator-state model (through a ModelGate, with a
//     deadline) must find the commanded state consistent with the plant state.
// When the model cannot answer (late, breaker open, overloaded, or no usable plant reading) the
// asset's fallback applies: a critical asset fails closed (deny), any other fails open with an
// alert. Every fallback is counted by cause.
//
// Modes: a denial is enforced (the write gets a Modbus exception and never reaches the PLC) when
// the asset's mode (or the gateway's) is enforce; in monitor mode it passes and is recorded as
// would-have-denied.
//
// Thread-safe: Decide and Committed may be called from every client thread at once.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/event.h"
#include "core/metrics.h"
#include "gateway/actuator_model.h"
#include "gateway/config.h"
#include "gateway/modbus_frame.h"

namespace vigil::gateway {

// Modbus exception codes the proxy answers with.
inline constexpr uint8_t kExceptionIllegalFunction = 0x01;
inline constexpr uint8_t kExceptionIllegalDataValue = 0x03;
inline constexpr uint8_t kExceptionServerBusy = 0x06;  // fail-closed fallback: try again later
inline constexpr uint8_t kExceptionGatewayTargetFailed = 0x0B;  // the PLC did not answer

// Answers "is setting actuator `signal` to `state` consistent with the plant?". Runs on the
// ModelGate's worker thread, one call at a time.
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

// Why a model verdict was not used.
enum class FallbackCause : uint8_t { kNone, kLate, kBreakerOpen, kOverload, kNoState };
inline constexpr size_t kFallbackCauses = 5;
std::string_view FallbackCauseName(FallbackCause c);  // "none", "late", "breaker-open", ...

// Runs a CommandJudge on its own worker thread and waits for each answer at most `deadline_us`.
// After `breaker_failures` consecutive late answers the breaker opens: for
// `breaker_cooldown_ms` questions are not asked at all (answered kBreakerOpen at once), then one
// is let through; an answer in time closes the breaker.
class ModelGate {
 public:
  struct Answer {
    FallbackCause cause = FallbackCause::kNone;  // kNone: `judgement` holds the model's verdict
    Judgement judgement;
  };
  // `judge` and `clock` must outlive the gate.
  ModelGate(CommandJudge& judge, const DecisionConfig& config, const core::Clock& clock);
  ~ModelGate();
  ModelGate(const ModelGate&) = delete;
  ModelGate& operator=(const ModelGate&) = delete;

  Answer Ask(const std::string& signal, uint32_t state);

  uint64_t late_answers() const { return late_.load(); }     // finished after their deadline
  uint64_t breaker_opened() const { return opened_.load(); }

 private:
  struct Job;
  void Work();

  CommandJudge& judge_;
  const DecisionConfig config_;
  const core::Clock& clock_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  uint32_t consecutive_late_ = 0;  // guarded by mu_
  int64_t open_until_ns_ = 0;      // guarded by mu_
  std::atomic<uint64_t> late_{0};
  std::atomic<uint64_t> opened_{0};
  std::thread worker_;
};

enum class Rule : uint8_t { kNone, kUnmapped, kRange, kRate, kModel, kFallback, kFunction };
std::string_view RuleName(Rule r);  // "none", "unmapped", "range", "rate", "model", ...

struct WriteDecision {
  bool deny = false;      // the checks say no
  bool enforced = false;  // ... and the write was refused (enforce mode)
  bool alert = false;     // passed, but an operator should know (fail-open fallback)
  Rule rule = Rule::kNone;
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
};

struct DeciderStats {
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> denied{0};           // enforced denials
  std::atomic<uint64_t> would_have_denied{0};  // denials passed in monitor mode
  std::atomic<uint64_t> alerts{0};           // fail-open fallbacks
  std::array<std::atomic<uint64_t>, 7> by_rule{};                // denials per Rule
  std::array<std::atomic<uint64_t>, kFallbackCauses> fallbacks{};  // per FallbackCause
};

class Decider {
 public:
  // `gate` may be null (no model: assets with a signal then always take their fallback with
  // cause kNoState). `gate`, `clock` and `decide_latency` (may be null) must outlive it.
  Decider(const GatewayConfig& config, ModelGate* gate, const core::Clock& clock,
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
  // Checks one value; fills `d` when it objects (returns true then).
  bool Check(AssetState& a, uint16_t address, uint32_t value, WriteDecision* d);
  void Finish(WriteDecision* d);

  const GatewayConfig& config_;
  ModelGate* gate_;
  const core::Clock& clock_;
  core::Histogram* latency_;
  // key: kind << 24 | (unit + 1) << 16 | address, unit -1 stored as 0
  std::unordered_map<uint32_t, std::unique_ptr<AssetState>> assets_;
  DeciderStats stats_;
};

}  // namespace vigil::gateway
