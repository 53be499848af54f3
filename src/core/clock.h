#pragma once

// Injectable time. Production code takes a Clock&; tests pass a FakeClock and advance it, so no
// test sleeps to wait for time to pass.

#include <atomic>
#include <cstdint>

namespace vigil::core {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, nanoseconds since the Unix epoch (for timestamps on records).
  virtual int64_t NowUnixNanos() const = 0;
  // Monotonic time in nanoseconds from an arbitrary origin (for durations and deadlines).
  virtual int64_t MonotonicNanos() const = 0;
};

// The real clocks (CLOCK_REALTIME, CLOCK_MONOTONIC). Thread-safe; a process-wide instance.
class SystemClock final : public Clock {
 public:
  static SystemClock& Get();
  int64_t NowUnixNanos() const override;
  int64_t MonotonicNanos() const override;
};

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_unix_nanos = 1'700'000'000'000'000'000)
      : unix_(start_unix_nanos), mono_(0) {}
  int64_t NowUnixNanos() const override { return unix_.load(); }
  int64_t MonotonicNanos() const override { return mono_.load(); }
  void Advance(int64_t nanos) {
    unix_ += nanos;
    mono_ += nanos;
  }

 private:
  std::atomic<int64_t> unix_;
  std::atomic<int64_t> mono_;
};

}  // namespace vigil::core
