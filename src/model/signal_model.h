#pragma once

// The contract of model families that score multivariate time series: industrial telemetry in
// which each time step is one row of named signal values (tank levels, flows, pressures,
// actuator states). A family implements it beside Model; callers find it with
// dynamic_cast<const SignalModel*> on a loaded model. The model is immutable and may be shared
// by threads; each series gets its own SignalStreamScorer, owned by the caller and not
// thread-safe.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/event.h"

namespace vigil::model {

class SignalStreamScorer {
 public:
  virtual ~SignalStreamScorer() = default;
  // Feeds the next time step: one value per signal, in the order of SignalModel::signals().
  // Rows must come at the model's fixed time step, oldest first. Values must be finite
  // (callers validate their input; a non-finite value is scored as maximally anomalous).
  virtual void ObserveRow(std::span<const double> row) = 0;
  // The verdict on the series up to the last row (score 0, no explanation before any row).
  // `explanation` names the signals that drove the score, heaviest first.
  virtual core::Verdict Current() const = 0;
  // The family's unbounded anomaly measure behind Current().score (monotone in it).
  virtual double RawScore() const = 0;
  virtual uint64_t observed() const = 0;
};

class SignalModel {
 public:
  virtual ~SignalModel() = default;
  // The signals a row holds, in order.
  virtual const std::vector<std::string>& signals() const = 0;
  virtual std::unique_ptr<SignalStreamScorer> NewSignalStream() const = 0;
};

}  // namespace vigil::model
