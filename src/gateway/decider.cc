#include "gateway/decider.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "core/thread_priority.h"

namespace vigil::gateway {
namespace {

constexpr size_t kMaxQueuedQuestions = 64;

uint32_t Key(RegisterKind kind, int unit, uint16_t address) {
  return static_cast<uint32_t>(kind) << 24 | static_cast<uint32_t>(unit + 1) << 16 | address;
}

}  // namespace

std::string_view FallbackCauseName(FallbackCause c) {
  switch (c) {
    case FallbackCause::kNone: return "none";
    case FallbackCause::kLate: return "late";
    case FallbackCause::kBreakerOpen: return "breaker-open";
    case FallbackCause::kOverload: return "overload";
    case FallbackCause::kNoState: return "no-state";
  }
  return "none";
}

std::string_view RuleName(Rule r) {
  switch (r) {
    case Rule::kNone: return "none";
    case Rule::kUnmapped: return "unmapped";
    case Rule::kRange: return "range";
    case Rule::kRate: return "rate";
    case Rule::kModel: return "model";
    case Rule::kFallback: return "fallback";
    case Rule::kFunction: return "function";
  }
  return "none";
}

struct ModelGate::Job {
  std::string signal;
  uint32_t state = 0;
  bool done = false;
  bool abandoned = false;  // the asker gave up (deadline)
  Judgement judgement;
};

ModelGate::ModelGate(CommandJudge& judge, const DecisionConfig& config, const core::Clock& clock)
    : judge_(judge), config_(config), clock_(clock), worker_([this] {
        // A refusal is reported by the proxy (ModbusProxy::priority_status): the host's alike.
        (void)core::SetRealtimePriority(static_cast<int>(config_.realtime_priority));
        Work();
      }) {}

ModelGate::~ModelGate() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  worker_.join();
}

void ModelGate::Work() {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    if (job->abandoned) continue;  // its asker has already applied the fallback
    lock.unlock();
    Judgement j = judge_.Judge(job->signal, job->state);
    lock.lock();
    job->judgement = std::move(j);
    job->done = true;
    if (job->abandoned) late_.fetch_add(1, std::memory_order_relaxed);
    done_cv_.notify_all();
  }
}

ModelGate::Answer ModelGate::Ask(const std::string& signal, uint32_t state) {
  Answer answer;
  auto job = std::make_shared<Job>();
  job->signal = signal;
  job->state = state;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::microseconds(config_.deadline_us);
  std::unique_lock lock(mu_);
  const int64_t now = clock_.MonotonicNanos();
  if (open_until_ns_ != 0) {
    if (now < open_until_ns_) {
      answer.cause = FallbackCause::kBreakerOpen;
      return answer;
    }
    // Half-open: this question goes through; one more late answer opens the breaker again.
    open_until_ns_ = 0;
    consecutive_late_ = config_.breaker_failures - 1;
  }
  if (queue_.size() >= kMaxQueuedQuestions) {
    answer.cause = FallbackCause::kOverload;
    return answer;
  }
  queue_.push_back(job);
  work_cv_.notify_one();
  if (!done_cv_.wait_until(lock, deadline, [&] { return job->done; })) {
    job->abandoned = true;
    answer.cause = FallbackCause::kLate;
    if (++consecutive_late_ >= config_.breaker_failures) {
      open_until_ns_ = clock_.MonotonicNanos() +
                       int64_t{config_.breaker_cooldown_ms} * 1'000'000 + 1;
      consecutive_late_ = 0;
      opened_.fetch_add(1, std::memory_order_relaxed);
    }
    return answer;
  }
  consecutive_late_ = 0;
  answer.judgement = std::move(job->judgement);
  return answer;
}

Decider::Decider(const GatewayConfig& config, ModelGate* gate, const core::Clock& clock,
                 core::Histogram* decide_latency)
    : config_(config), gate_(gate), clock_(clock), latency_(decide_latency) {
  for (const AssetConfig& a : config.assets) {
    auto state = std::make_unique<AssetState>();
    state->config = &a;
    assets_[Key(a.kind, a.unit, a.address)] = std::move(state);
  }
}

Decider::AssetState* Decider::Find(RegisterKind kind, uint8_t unit, uint16_t address) {
  auto it = assets_.find(Key(kind, unit, address));
  if (it == assets_.end()) it = assets_.find(Key(kind, -1, address));
  return it == assets_.end() ? nullptr : it->second.get();
}

bool Decider::Check(AssetState& s, uint16_t address, uint32_t value, WriteDecision* d) {
  const AssetConfig& a = *s.config;
  auto object = [&](Rule rule, std::string reason) {
    d->deny = true;
    d->rule = rule;
    d->asset = a.name;
    d->address = address;
    d->value = value;
    d->critical = a.critical;
    d->mode = a.mode.value_or(config_.mode);
    d->score = 1.0;
    d->exception = kExceptionIllegalDataValue;
    d->reason = std::move(reason);
    return true;
  };
  const double v = value;
  if (v < a.min || v > a.max) {
    return object(Rule::kRange, fmt::format("{} := {} outside the allowed range [{}, {}]", a.name,
                                            value, a.min, a.max));
  }
  if (a.max_rate > 0) {
    std::lock_guard lock(s.mu);
    if (s.has_last) {
      const double secs = static_cast<double>(clock_.MonotonicNanos() - s.last_ns) * 1e-9;
      const double change = std::fabs(v - s.last);
      if (change > a.max_rate * secs) {
        return object(Rule::kRate,
                      fmt::format("{} := {} changes it by {} in {:.3f} s (max rate {}/s)", a.name,
                                  value, change, secs, a.max_rate));
      }
    }
  }
  if (a.signal.empty()) return false;
  ModelGate::Answer answer;
  if (gate_ == nullptr) {
    answer.cause = FallbackCause::kNoState;
  } else {
    answer = gate_->Ask(a.signal, value);
    if (answer.cause == FallbackCause::kNone &&
        answer.judgement.outcome == Judgement::Outcome::kUnknown) {
      answer.cause = FallbackCause::kNoState;
    }
  }
  if (answer.cause != FallbackCause::kNone) {
    stats_.fallbacks[static_cast<size_t>(answer.cause)].fetch_add(1, std::memory_order_relaxed);
    const std::string why = fmt::format("model verdict unavailable ({})",
                                        FallbackCauseName(answer.cause));
    if (a.critical) {
      object(Rule::kFallback, fmt::format("{} := {}: {}; critical asset fails closed", a.name,
                                          value, why));
      d->fallback = answer.cause;
      d->exception = kExceptionServerBusy;
      return true;
    }
    // Fail open, with an alert; later values of the same write are still checked.
    if (!d->alert) {
      d->alert = true;
      d->fallback = answer.cause;
      d->asset = a.name;
      d->address = address;
      d->value = value;
      d->mode = a.mode.value_or(config_.mode);
      d->rule = Rule::kFallback;
      d->reason = fmt::format("{} := {}: {}; non-critical asset fails open", a.name, value, why);
    }
    return false;
  }
  if (answer.judgement.outcome == Judgement::Outcome::kInconsistent) {
    object(Rule::kModel, fmt::format("{} := {} is inconsistent with the plant state", a.name,
                                     value));
    d->score = answer.judgement.score;
    d->why = std::move(answer.judgement.why);
    return true;
  }
  return false;
}

void Decider::Finish(WriteDecision* d) {
  if (d->deny) {
    d->alert = false;
    d->enforced = d->mode == Mode::kEnforce;
    stats_.by_rule[static_cast<size_t>(d->rule)].fetch_add(1, std::memory_order_relaxed);
    (d->enforced ? stats_.denied : stats_.would_have_denied)
        .fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.allowed.fetch_add(1, std::memory_order_relaxed);
    if (d->alert) stats_.alerts.fetch_add(1, std::memory_order_relaxed);
  }
}

WriteDecision Decider::Decide(const WriteRequest& w) {
  const int64_t start = clock_.MonotonicNanos();
  stats_.writes.fetch_add(1, std::memory_order_relaxed);
  WriteDecision d;
  d.mode = config_.mode;
  for (size_t i = 0; i < w.values.size(); ++i) {
    const auto address = static_cast<uint16_t>(w.address + i);
    AssetState* s = Find(w.kind, w.unit, address);
    if (s == nullptr) {
      if (!config_.modbus.deny_unmapped_writes) continue;
      d.deny = true;
      d.rule = Rule::kUnmapped;
      d.address = address;
      d.value = w.values[i];
      d.score = 1.0;
      d.exception = kExceptionIllegalDataValue;
      d.mode = config_.mode;
      d.reason = fmt::format("write to unmapped {} {} (unit {})", RegisterKindName(w.kind),
                             address, w.unit);
      break;
    }
    if (Check(*s, address, w.values[i], &d)) break;
  }
  Finish(&d);
  if (latency_ != nullptr) latency_->ObserveNanos(clock_.MonotonicNanos() - start);
  return d;
}

WriteDecision Decider::DecideOther(uint8_t unit, uint8_t function) {
  WriteDecision d;
  d.mode = config_.mode;
  if (config_.modbus.deny_other_functions) {
    d.deny = true;
    d.rule = Rule::kFunction;
    d.score = 1.0;
    d.exception = kExceptionIllegalFunction;
    d.reason = fmt::format("function code {} (unit {}) is not let through", function, unit);
    Finish(&d);
  }
  return d;
}

void Decider::Committed(const WriteRequest& w) {
  const int64_t now = clock_.MonotonicNanos();
  for (size_t i = 0; i < w.values.size(); ++i) {
    AssetState* s = Find(w.kind, w.unit, static_cast<uint16_t>(w.address + i));
    if (s == nullptr || s->config->max_rate <= 0) continue;
    std::lock_guard lock(s->mu);
    s->has_last = true;
    s->last = w.values[i];
    s->last_ns = now;
  }
}

}  // namespace vigil::gateway
