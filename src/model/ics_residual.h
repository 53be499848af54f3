#pragma once

// The "ics-residual" family: per-signal predictors over industrial telemetry (BATADAL's C-Town
// water network, or any hourly table of named signals), scored by how far the readings stray
// from what the other signals and the recent past say they should be.
//
// Training, on normal operation only (rows = time steps, columns = signals):
//  1. Values are rounded to `resolution` (the precision the scored data is reported at).
//  2. Each signal gets a role (timeseries_features.h): constant, binary predictor (actuator
//     states), or continuous target (levels, flows, pressures).
//  3. Every target c is predicted by ridge regression from all other live signals at t and all
//     live signals (c included) at t-1, on standardised values. For a tank level this is the
//     mass balance: level(t) follows from level(t-1) and the flows of the pumps and valves
//     filling and emptying it; for a pressure, the pump states and flows around it.
//  4. Residual scales and the alarm threshold come from K-fold cross-fitting over contiguous
//     blocks of time: each block is predicted by a model fitted on the other blocks, so the
//     calibration sees residuals of data its predictor never fitted. The final predictors are
//     fitted on all rows.
//
// Scoring one time step: z_c = (x_c - predicted_c) / scale_c for every target, and for a
// constant signal z = |x - value| / resolution once it departs by more than resolution / 2.
// Each signal contributes log(1 + z^2): large residuals count, but one broken sensor cannot
// outweigh every other signal. The contribution is capped at log(1 + 10^12), reached at
// |z| = 10^6 and by a value that is not a number. Each contribution is smoothed by an EWMA with
// `smoothing` as alpha, and the raw score is their sum divided by the number of targets. A step is anomalous
// when the raw score reaches the threshold, which is the (1 - target_fpr) quantile of the
// cross-fitted raw scores of the training series. Verdict.score = raw / (raw + threshold), so
// 0.5 at the threshold. The explanation names the signals with the largest smoothed
// contributions, with their reading and the predicted value.
//
// Payload layout: docs/model-file-format.md ("ics-residual").

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/signal_model.h"
#include "model/timeseries_features.h"

namespace vigil::model {

inline constexpr std::string_view kIcsResidualFamily = "ics-residual";

struct IcsResidualOptions {
  std::string name = "ics-residual";
  std::string version = "1";
  double ridge = 1.0;         // lambda on standardised predictors, in [1e-6, 1e6]
  double resolution = 0.01;   // rounding step of the training values; 0 = keep them as they are
  double smoothing = 0.2;     // EWMA alpha of the contributions, in (0, 1]
  double target_fpr = 0.05;   // false-alarm rate the threshold is calibrated to, in (0, 0.5]
  int folds = 5;              // cross-fitting blocks, 2..20
  int explain_top = 3;        // signals named in an explanation, 0..64
};

struct IcsCalibration {
  double threshold = 0.0;     // raw score at which a step is anomalous
  double achieved_fpr = 0.0;  // share of the cross-fitted training steps at or above it
  uint64_t rows = 0;          // steps behind the calibration
};

class IcsResidualModel final : public Model, public SignalModel {
 public:
  // One continuous signal's predictor.
  struct Target {
    uint32_t signal = 0;       // column index
    double scale = 1.0;        // RMS of its cross-fitted standardised residuals (> 0)
    RidgeFit fit;              // over DesignColumnsFor(live, signal)
  };

  // `rows` holds one row per time step (consecutive, oldest first) with one column per name in
  // `signals`. Fails with kInvalidArgument for options out of range, names that are empty or
  // repeated, a column count that differs from the names, a non-finite value, fewer rows than
  // 20 per fold, or data without a continuous signal.
  static core::Result<std::unique_ptr<IcsResidualModel>> Train(std::vector<std::string> signals,
                                                               const Eigen::MatrixXd& rows,
                                                               const IcsResidualOptions& options);
  // Rebuilds the model from a decoded file. kInvalidArgument for another family, kDataLoss
  // with "SOURCE: payload: ..." for a malformed payload (the checks: docs/model-file-format.md).
  static core::Result<std::unique_ptr<IcsResidualModel>> FromFile(const ModelFile& file,
                                                                  std::string_view source);
  // The model as a file; `extra_header` (training digest, ...) is merged into the header.
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  // Model: the pipeline's events carry no signal rows yet, so a stream fed core::Events ignores
  // them all (as the Model contract says of events a family does not use) and stays at score 0.
  // Telemetry is scored through SignalModel::NewSignalStream.
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return options_.name; }
  const std::string& version() const override { return options_.version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;

  // SignalModel.
  const std::vector<std::string>& signals() const override { return signals_; }
  std::unique_ptr<SignalStreamScorer> NewSignalStream() const override;

  // Raw scores of a whole series (one per row), as a stream fed the rows in order would give.
  std::vector<double> ScoreSeries(const Eigen::MatrixXd& rows) const;

  const IcsResidualOptions& options() const { return options_; }
  const IcsCalibration& calibration() const { return calibration_; }
  const std::vector<SignalRole>& roles() const { return roles_; }
  const std::vector<Target>& targets() const { return targets_; }
  const std::vector<uint32_t>& live() const { return live_; }
  const SignalScaling& scaling() const { return scaling_; }
  // Columns of the lagged design each target's fit uses (DesignColumnsFor).
  const std::vector<uint32_t>& ColumnsOf(size_t target) const { return columns_[target]; }

 private:
  IcsResidualModel() = default;
  void BuildColumns();

  std::string family_{kIcsResidualFamily};
  IcsResidualOptions options_;
  std::vector<std::string> signals_;
  std::vector<SignalRole> roles_;
  SignalScaling scaling_;             // mean = the constant's value for constant signals
  std::vector<uint32_t> live_;        // LiveSignals(roles_)
  std::vector<Target> targets_;       // in column order
  std::vector<std::vector<uint32_t>> columns_;  // per target
  IcsCalibration calibration_;
};

}  // namespace vigil::model
