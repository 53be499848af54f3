#pragma once

// Drift indicators: the population stability index (PSI) of the scores a model gives in service,
// and of chosen input features, against reference histograms of its training data that the
// model file header records (docs/model-file-format.md, header key "drift_reference"):
//
//   "drift_reference": {"score": {"edges": [e1, ..., e(k-1)], "proportions": [p1, ..., pk],
//                                  "samples": n},
//                       "features": {"<name>": {...same shape..., "index": i}, ...}}
//
// Bin i holds values v with edges[i-1] < v <= edges[i] (the first bin is open below, the last
// open above); edges are the reference's quantiles, so each bin holds about 1/k of it.
//
//   PSI = sum_i (a_i - e_i) * ln(a_i / e_i)
//
// over the actual (a) and expected (e) bin proportions, each floored at 1e-4 so that an empty
// bin does not make it infinite. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shift.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"

namespace vigil::model {

inline constexpr double kPsiFloor = 1e-4;

struct ReferenceHistogram {
  std::vector<double> edges;        // interior bin edges, strictly increasing (bins - 1)
  std::vector<double> proportions;  // per bin, summing to 1
  uint64_t samples = 0;

  size_t bins() const { return proportions.size(); }
  // The bin of `v` (NaN goes to the first bin).
  size_t BinOf(double v) const;

  // Quantile bins of `samples` (at most `bins`, 2..100; repeated quantiles merge, so a constant
  // sample gives fewer bins). kInvalidArgument for fewer than 2 samples or a non-finite one.
  static core::Result<ReferenceHistogram> FromSamples(std::span<const double> samples,
                                                      size_t bins = 10);
  nlohmann::json ToJson() const;
  // kDataLoss "<source>: <where>: <why>" for a malformed object (edges not increasing or not
  // finite, proportions negative or not summing to 1 within 1e-6, sizes that do not match).
  static core::Result<ReferenceHistogram> FromJson(const nlohmann::json& j,
                                                   std::string_view source,
                                                   std::string_view where);
};

// PSI between two proportion vectors of equal length (see above); NaN when lengths differ.
double PopulationStabilityIndex(std::span<const double> expected, std::span<const double> actual);
// PSI of `samples` binned by `reference` against its proportions.
double PopulationStabilityIndex(const ReferenceHistogram& reference,
                                std::span<const double> samples);

// The reference of one input feature: its name, its index in the model's feature vector and
// its histogram (JSON: the histogram's keys plus "index").
struct FeatureReference {
  std::string name;
  uint32_t index = 0;
  ReferenceHistogram histogram;
};

struct DriftReference {
  std::optional<ReferenceHistogram> score;
  std::vector<FeatureReference> features;  // in header order

  bool empty() const { return !score.has_value() && features.empty(); }
  nlohmann::json ToJson() const;
  // Reads header key "drift_reference" of a model file header; an absent key gives an empty
  // reference. Errors as for ReferenceHistogram::FromJson.
  static core::Result<DriftReference> FromHeader(const nlohmann::json& header,
                                                 std::string_view source);
};

struct DriftMonitorOptions {
  std::string model;             // label of the metrics and name in alerts
  double threshold = 0.25;       // PSI above which an alert is raised
  uint64_t min_samples = 200;    // no PSI is judged on fewer observations
  core::Registry* registry = nullptr;  // nullptr means core::Registry::Get()
};

struct DriftReport {
  uint64_t samples = 0;                                   // score observations in the window
  double score_psi = 0.0;                                 // NaN without a score reference
  std::vector<std::pair<std::string, double>> feature_psi;  // per referenced feature
  // Set when this evaluation crossed the threshold (from below): a verdict the caller can sink
  // like a model's, anomalous, its score min(1, psi) and its explanation naming what drifted.
  std::optional<core::Verdict> alert;
};

// Counts observations into the reference's bins (lock-free) and turns them into PSI gauges
//   vigil_model_drift_psi{model, of="score"|"feature:<name>"}
// and alerts (vigil_model_drift_alerts_total{model}, a warning log line and
// DriftReport::alert). An alert is raised when a PSI judged on at least min_samples observations
// goes above the threshold, and re-armed once no judged PSI is above it (after Reset, a window
// with too few observations judges none).
class DriftMonitor {
 public:
  static core::Result<std::unique_ptr<DriftMonitor>> Create(DriftReference reference,
                                                            const DriftMonitorOptions& options);
  DriftMonitor(const DriftMonitor&) = delete;
  DriftMonitor& operator=(const DriftMonitor&) = delete;

  // Thread-safe, lock-free. A score is counted when a score reference exists.
  void ObserveScore(double score);
  // Counts row[index] of each referenced feature (indices past the row are not counted).
  void ObserveFeatures(std::span<const float> row);

  // Computes the PSIs of everything observed since the last Reset, sets the gauges and decides
  // on an alert. Not to be called from several threads at once.
  DriftReport Evaluate();
  // Starts a new observation window (e.g. one per hour).
  void Reset();

  const DriftReference& reference() const { return reference_; }
  uint64_t alerts() const { return alerts_ != nullptr ? alerts_->Value() : 0; }

 private:
  struct Counts {
    std::unique_ptr<std::atomic<uint64_t>[]> bins;
    size_t n = 0;
    std::vector<double> Proportions(uint64_t* total) const;
  };
  DriftMonitor(DriftReference reference, const DriftMonitorOptions& options);

  DriftReference reference_;
  DriftMonitorOptions options_;
  Counts score_;
  std::vector<Counts> features_;
  core::Gauge* score_gauge_ = nullptr;
  std::vector<core::Gauge*> feature_gauges_;
  core::Counter* alerts_ = nullptr;
  bool alerting_ = false;
};

}  // namespace vigil::model
