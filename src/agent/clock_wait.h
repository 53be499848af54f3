#pragma once

// How long a thread that waits on a condition variable for a deadline of an injected core::Clock
// may sleep before it reads that clock again.

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "core/clock.h"

namespace vigil::agent {

// `left_ns` (> 0): the time to the deadline on `clock`. The system clock's monotonic time is the
// one std::condition_variable waits in (steady_clock, CLOCK_MONOTONIC), so its threads sleep the
// whole time left: a thread that woke every 50 ms cost the agent ~20 wake-ups a second each,
// ~40 us of CPU apiece on a busy 2-core host (docs/agent-stream-budget.md, "The agent's
// wake-ups"). Any other clock (a test's FakeClock) moves without telling anyone, so it is read
// again every 50 ms at most.
inline std::chrono::nanoseconds WaitSlice(const core::Clock& clock, int64_t left_ns) {
  constexpr int64_t kFakeClockSliceNs = 50'000'000;
  const bool system = dynamic_cast<const core::SystemClock*>(&clock) != nullptr;
  return std::chrono::nanoseconds(system ? left_ns : std::min(left_ns, kFakeClockSliceNs));
}

}  // namespace vigil::agent
