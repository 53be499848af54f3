#pragma once

// The gateway's view of the plant: the latest reading of each named signal (tank levels,
// flows, pressures, actuator states) with the monotonic time it arrived. Telemetry writes it;
// the actuator checks read it. Thread-safe: one priority-inheriting lock (core/pi_mutex.h), since
// the model's real-time worker reads while the telemetry thread, at normal priority, writes;
// readers copy what they need.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/pi_mutex.h"

namespace vigil::gateway {

class PlantState {
 public:
  struct Reading {
    double value = 0;
    int64_t mono_ns = 0;  // when it arrived (core::Clock::MonotonicNanos)
  };

  void Set(std::string_view signal, double value, int64_t mono_ns);
  void SetAll(std::span<const std::pair<std::string, double>> values, int64_t mono_ns);
  std::optional<Reading> Get(std::string_view signal) const;
  // Readings of `signals` (nullopt where none), under one lock.
  std::vector<std::optional<Reading>> GetAll(std::span<const std::string> signals) const;
  size_t size() const;

 private:
  mutable core::PiMutex mu_;
  std::unordered_map<std::string, Reading> values_;
};

}  // namespace vigil::gateway
