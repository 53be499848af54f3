#pragma once

// Sensor-inconsistency scoring of the gateway's telemetry with streaming models, learned at
// start-up from the same CSV of normal operation as the actuator-state model (model.training),
// over the signals the telemetry topics carry:
//  - per-signal predictors (model/ics_residual.h): each continuous signal predicted from the
//    others and the previous row; anomalous when the smoothed residuals reach the threshold;
//  - the KitNET-style autoencoder ensemble (model/kitnet.h) over all signals of a row.
// Both thresholds are calibrated to `target_fpr` on normal rows. Telemetry hands the scorer one
// row whenever every signal has a new reading since the previous row (telemetry.h). A model that
// turns anomalous yields one finding; it yields the next only after a normal row.
//
// Immutable models; Observe is not thread-safe (the telemetry thread calls it). The models stay
// behind a pointer so that this header does not bring Eigen to its includers (cpp-httplib's
// <resolv.h> defines a macro `_res` that breaks Eigen's headers when included first).

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "gateway/config.h"
#include "sensor/batadal.h"

namespace vigil::gateway {

struct SensorFinding {
  std::string model;        // "ics-residual" or "kitnet"
  double score = 0;         // in [0, 1); 0.5 at the threshold
  double raw = 0;           // the family's raw score
  double threshold = 0;     // its raw threshold
  uint64_t row = 0;         // 1-based number of the scored row
  std::vector<core::Evidence> why;  // the signals that drove it, heaviest first
};

// Read by other threads (metrics) while the telemetry thread scores.
struct SensorScoreStats {
  std::atomic<uint64_t> rows{0};
  std::array<std::atomic<uint64_t>, 2> anomalous_rows{};  // [0] predictors, [1] autoencoder
  std::array<std::atomic<uint64_t>, 2> findings{};
};

class SensorScorer {
 public:
  ~SensorScorer();
  // Learns the enabled models from `table` over `signals` (those of them the table holds, in
  // the table's order). kInvalidArgument naming table.source when no signal is left or a model
  // cannot be trained (too few rows, no continuous signal).
  static core::Result<std::unique_ptr<SensorScorer>> Learn(const sensor::BatadalTable& table,
                                                           const std::vector<std::string>& signals,
                                                           const TelemetryScoringConfig& config);

  // The signals of a row, in order.
  const std::vector<std::string>& signals() const { return signals_; }
  // Scores the next row (one value per signals() entry); the findings of models that just
  // turned anomalous.
  std::vector<SensorFinding> Observe(std::span<const double> row);
  const SensorScoreStats& stats() const { return stats_; }
  bool predictors() const;
  bool autoencoder() const;
  double residual_threshold() const;
  double kitnet_threshold() const;

 private:
  struct Models;  // sensor_scoring.cc
  SensorScorer();

  std::vector<std::string> signals_;
  std::unique_ptr<Models> m_;
  bool in_anomaly_[2] = {false, false};
  SensorScoreStats stats_;
};

}  // namespace vigil::gateway
