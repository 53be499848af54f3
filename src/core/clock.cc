#include "core/clock.h"

#include <time.h>

namespace vigil::core {
namespace {
int64_t Read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

SystemClock& SystemClock::Get() {
  static SystemClock clock;
  return clock;
}
int64_t SystemClock::NowUnixNanos() const { return Read(CLOCK_REALTIME); }
int64_t SystemClock::MonotonicNanos() const { return Read(CLOCK_MONOTONIC); }

}  // namespace vigil::core
