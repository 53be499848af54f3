#pragma once

// The inference engine's circuit breaker. Closed, it lets every request through to the model
// and remembers failures (errors and deadline misses); `failure_threshold` failures within
// `window_ns` open it. Open, it turns every request away (the engine answers with the fallback
// verdict) until `cooldown_ns` have passed; the next request is then let through as the one
// half-open probe while all others are still turned away. The probe's success closes the
// breaker (failures forgotten); its failure opens it again for another cool-down.
//
// Thread-safe. Admit() in the closed state and OnSuccess() of an ordinary request are one atomic
// load each; everything else takes a mutex. Time comes from the injected clock.

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>

#include "core/clock.h"

namespace vigil::model {

struct CircuitBreakerOptions {
  uint32_t failure_threshold = 5;        // failures in the window that open the breaker, >= 1
  int64_t window_ns = 10'000'000'000;    // how far back failures count
  int64_t cooldown_ns = 5'000'000'000;   // open time before a half-open probe
};

enum class BreakerState : uint8_t { kClosed = 0, kHalfOpen = 1, kOpen = 2 };
std::string_view BreakerStateName(BreakerState s);

class CircuitBreaker {
 public:
  // What Admit() decided for one request; pass it back to OnSuccess/OnFailure.
  enum class Admission : uint8_t { kAllow, kProbe, kReject };

  // `clock` must outlive the breaker. A failure_threshold of 0 is taken as 1.
  CircuitBreaker(const CircuitBreakerOptions& options, const core::Clock& clock);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  Admission Admit();
  // The outcome of a request admitted with `a` (kReject is ignored). Outcomes of requests
  // admitted under an earlier state (an ordinary request that finishes after the breaker opened)
  // do not change the state.
  void OnSuccess(Admission a);
  void OnFailure(Admission a);

  BreakerState state() const { return state_.load(std::memory_order_acquire); }
  // Times the breaker opened (from closed or from a failed probe), and closed again.
  uint64_t opened() const { return opened_.load(std::memory_order_relaxed); }
  uint64_t closed() const { return closed_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  void OpenLocked(int64_t now);

  CircuitBreakerOptions options_;
  const core::Clock& clock_;
  std::atomic<BreakerState> state_{BreakerState::kClosed};
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> closed_{0};
  std::atomic<uint64_t> rejected_{0};
  std::mutex mu_;
  std::deque<int64_t> failures_;  // monotonic times of recent failures (closed state)
  int64_t opened_at_ = 0;
  bool probe_in_flight_ = false;
};

}  // namespace vigil::model
