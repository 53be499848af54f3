#pragma once

// Replay sensors: ADFA-LD's folder layout and Vigil's own JSON Lines event files, emitted as fast
// as possible or paced (at the recorded rate, or at a fixed rate in events per second).

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "sensor/adfa.h"
#include "sensor/sensor.h"

namespace vigil::sensor {

// Emits every trace of the given splits in order, each as a stream of i386 syscall events
// (stream = the trace's id, proc.pid = a per-trace number from 1000 up, comm "") followed by a
// kStreamEnd event. A trace that fails to read is reported as an error and skipped.
class AdfaReplaySensor final : public Sensor {
 public:
  // `traces` as listed by ListAdfaTraces; `host` is stamped on every event.
  AdfaReplaySensor(std::vector<AdfaTrace> traces, std::string host);
  std::string_view name() const override { return "replay:adfa-ld"; }
  core::Result<ReadOutcome> Next(core::Event* out) override;

 private:
  std::vector<AdfaTrace> traces_;
  std::string host_;
  size_t trace_ = 0;         // index of the trace being emitted
  bool loaded_ = false;      // syscalls_ holds traces_[trace_]
  std::vector<int32_t> syscalls_;
  size_t pos_ = 0;
  uint64_t seq_ = 0;
};

// Lists the traces of one or more splits under an ADFA-LD root ("training", "validation",
// "attack" or "all").
core::Result<std::vector<AdfaTrace>> ListAdfaSplits(const std::string& root,
                                                    const std::string& splits);

// Reads Vigil JSON Lines events (docs/event-schema.md) from a file ("-" for stdin). Blank lines
// are skipped; a bad line is an error "FILE:LINE: field ...: reason" and reading continues.
class JsonlReplaySensor final : public Sensor {
 public:
  static core::Result<std::unique_ptr<JsonlReplaySensor>> Open(const std::string& path);
  ~JsonlReplaySensor() override;
  std::string_view name() const override { return "replay:jsonl"; }
  core::Result<ReadOutcome> Next(core::Event* out) override;

 private:
  JsonlReplaySensor(std::string path, FILE* f, bool owned);
  std::string path_;
  FILE* file_;
  bool owned_;
  uint64_t line_no_ = 0;
  uint64_t seq_ = 0;
  char* buf_ = nullptr;
  size_t cap_ = 0;
};

// How a replay is paced.
struct Pace {
  enum class Mode : uint8_t { kMax, kRecorded, kFixedRate } mode = Mode::kMax;
  double events_per_second = 0;  // kFixedRate
  double speed = 1.0;            // kRecorded: 2.0 replays twice as fast
};
// Parses "max", "recorded", "recorded:2" (speed) or a rate like "50000" (events per second).
core::Result<Pace> ParsePace(std::string_view spec);

// Wraps a sensor and delays events to follow `pace`. Time comes from `clock` and waiting from
// `sleep_until` (monotonic ns), both injectable so tests do not sleep.
class PacedSensor final : public Sensor {
 public:
  using SleepUntil = std::function<void(int64_t monotonic_ns)>;
  PacedSensor(Sensor& inner, Pace pace, const core::Clock& clock, SleepUntil sleep_until);
  std::string_view name() const override { return inner_.name(); }
  core::Result<ReadOutcome> Next(core::Event* out) override;

 private:
  Sensor& inner_;
  Pace pace_;
  const core::Clock& clock_;
  SleepUntil sleep_until_;
  int64_t start_mono_ = -1;
  int64_t first_event_ns_ = -1;
  uint64_t emitted_ = 0;
};

// Sleeps on the real monotonic clock.
void RealSleepUntil(int64_t monotonic_ns);

}  // namespace vigil::sensor
