#pragma once

// One source contract for live capture, replay of recordings and synthetic test events. A
// sensor is pulled by one thread; it is not thread-safe.

#include <cstdint>
#include <string_view>

#include "core/event.h"
#include "core/status.h"

namespace vigil::sensor {

enum class ReadOutcome : uint8_t {
  kEvent,  // *out holds the next event
  kEnd,    // the input is exhausted; every later call returns kEnd too
};

class Sensor {
 public:
  virtual ~Sensor() = default;
  virtual std::string_view name() const = 0;
  // Reads the next event. An error reports one bad piece of input (its message names the input,
  // the place and the reason); the sensor has skipped it and the next call continues after it.
  // Callers count and report such errors; they never lose events already returned.
  virtual core::Result<ReadOutcome> Next(core::Event* out) = 0;
  // True when the next Next() will return without waiting for input (the sensor holds events
  // it has already read, e.g. the rest of a ring-buffer pass). A consumer may then gather
  // events and hand them on together; when false it should hand on what it holds first.
  virtual bool Buffered() const { return false; }
  // True when every successful Next() assigns the whole of *out (no field keeps what the event
  // read before left there), so a caller may reuse one Event without resetting it in between.
  virtual bool AssignsWholeEvent() const { return false; }
};

}  // namespace vigil::sensor
