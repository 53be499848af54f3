#include "model/circuit_breaker.h"

namespace vigil::model {

std::string_view BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kHalfOpen:
      return "half-open";
    case BreakerState::kOpen:
      return "open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, const core::Clock& clock)
    : options_(options), clock_(clock) {
  if (options_.failure_threshold == 0) options_.failure_threshold = 1;
}

CircuitBreaker::Admission CircuitBreaker::Admit() {
  if (state_.load(std::memory_order_acquire) == BreakerState::kClosed) return Admission::kAllow;
  std::lock_guard<std::mutex> lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case BreakerState::kClosed:
      return Admission::kAllow;
    case BreakerState::kOpen:
      if (clock_.MonotonicNanos() - opened_at_ >= options_.cooldown_ns) {
        state_.store(BreakerState::kHalfOpen, std::memory_order_release);
        probe_in_flight_ = true;
        return Admission::kProbe;
      }
      break;
    case BreakerState::kHalfOpen:
      break;  // the one probe is in flight
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  return Admission::kReject;
}

void CircuitBreaker::OnSuccess(Admission a) {
  if (a != Admission::kProbe) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (state_.load(std::memory_order_relaxed) != BreakerState::kHalfOpen || !probe_in_flight_) {
    return;
  }
  probe_in_flight_ = false;
  failures_.clear();
  state_.store(BreakerState::kClosed, std::memory_order_release);
  closed_.fetch_add(1, std::memory_order_relaxed);
}

void CircuitBreaker::OnFailure(Admission a) {
  if (a == Admission::kReject) return;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.MonotonicNanos();
  const BreakerState s = state_.load(std::memory_order_relaxed);
  if (a == Admission::kProbe) {
    if (s == BreakerState::kHalfOpen && probe_in_flight_) {
      probe_in_flight_ = false;
      OpenLocked(now);
    }
    return;
  }
  if (s != BreakerState::kClosed) return;
  failures_.push_back(now);
  while (!failures_.empty() && now - failures_.front() >= options_.window_ns) failures_.pop_front();
  while (failures_.size() > options_.failure_threshold) failures_.pop_front();
  if (failures_.size() >= options_.failure_threshold) OpenLocked(now);
}

void CircuitBreaker::OpenLocked(int64_t now) {
  opened_at_ = now;
  failures_.clear();
  state_.store(BreakerState::kOpen, std::memory_order_release);
  opened_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace vigil::model
