#pragma once

// The actuator-state model: which actuator states go with which plant readings, learned from
// normal operation (BATADAL's dataset03: pump and valve states S_* against tank levels L_T*).
//
// Learning: the range [lo, hi] of each context signal (a tank level) over the training rows is
// cut into `bins` equal bins; for every actuator, context signal and bin it counts the rows in
// the bin and, per state the actuator was in, how many of them had that state.
//
// Judging a command "set actuator A to state s" against the current readings: for each context
// signal with a reading inside its training range, look up the reading's bin. When the bin holds
// at least `min_support` training rows and A was in state s in at most `max_share` of them (by
// default: never), the command is inconsistent with the plant state, and the explanation says
// so in those terms: "S_PU2=0 in 0 of 412 training hours with L_T1 in [0.32, 0.77)". A state
// the training data never shows (a pump that never runs) is inconsistent wherever a bin has the
// support. Readings outside the training range give no opinion (the telemetry models score
// those). With no usable reading at all the model cannot judge (kUnknown).
//
// Immutable after Learn; Judge is const and thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "gateway/plant_state.h"
#include "sensor/batadal.h"

namespace vigil::gateway {

struct ActuatorModelOptions {
  std::vector<std::string> actuators;  // empty: every column named S_*
  std::vector<std::string> context;    // empty: every column named L_*
  uint32_t bins = 10;                  // 2..1000
  uint32_t min_support = 20;           // >= 1
  double max_share = 0.0;              // [0, 0.5)
  int64_t max_age_ns = int64_t{7200} * 1'000'000'000;  // readings older than this are ignored
};

struct Judgement {
  enum class Outcome : uint8_t { kConsistent, kInconsistent, kUnknown };
  Outcome outcome = Outcome::kUnknown;
  double score = 0;  // 1 - the smallest share of the state in a supported bin; 0 when consistent
  std::vector<core::Evidence> why;  // inconsistent: one entry per context signal that objects
};

class ActuatorStateModel {
 public:
  // kInvalidArgument naming `table.source` for options out of range, a named column missing,
  // an actuator column with a value that is not an integer in 0..65535, or no actuator or
  // context column at all.
  static core::Result<std::unique_ptr<ActuatorStateModel>> Learn(
      const sensor::BatadalTable& table, const ActuatorModelOptions& options);

  // Whether setting `actuator` to `state` fits the readings in `plant` at `now_mono_ns`.
  // kUnknown for an actuator the model did not learn.
  Judgement Judge(std::string_view actuator, uint32_t state, const PlantState& plant,
                  int64_t now_mono_ns) const;

  bool Knows(std::string_view actuator) const { return IndexOf(actuator) >= 0; }
  const std::vector<std::string>& actuators() const { return actuators_; }
  const std::vector<std::string>& context() const { return context_; }
  uint64_t rows() const { return rows_; }
  const std::string& source() const { return source_; }

 private:
  struct Counts {
    std::vector<uint32_t> states;  // distinct states seen, ascending
    // [context][bin] -> rows; [context][bin][state index] -> rows in that state
    std::vector<uint32_t> bin_rows;    // context * bins
    std::vector<uint32_t> state_rows;  // (context * bins + bin) * states + state
  };
  ActuatorStateModel() = default;
  int IndexOf(std::string_view actuator) const;

  ActuatorModelOptions options_;
  std::string source_;
  uint64_t rows_ = 0;
  std::vector<std::string> actuators_;
  std::vector<std::string> context_;
  std::vector<double> lo_, hi_;  // per context signal
  std::vector<Counts> counts_;   // per actuator
};

}  // namespace vigil::gateway
