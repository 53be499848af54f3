#pragma once

// Feature extractors for multivariate time series (ICS telemetry: one row of signal values per
// time step), shared by the families that score them: signal roles, per-signal scaling,
// quantisation to a sensor resolution, the lagged design of a per-signal predictor, a ridge
// fit, and exponentially weighted smoothing of a score.

#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Dense>

namespace vigil::model {

// How a signal takes part in a per-signal residual model.
enum class SignalRole : uint8_t {
  kConstant = 0,   // one value in training; any departure from it is suspicious
  kPredictor = 1,  // binary (0/1 only) in training, e.g. an actuator state: used to predict others
  kTarget = 2,     // continuous: predicted from the others and its own past, and a predictor
};

// Rounds every value to the nearest multiple of `resolution` (no change when it is <= 0): the
// precision a sensor reports at. Training on data finer than the data to be scored teaches
// relations that hold only to more decimals than the scored data has.
void QuantiseInPlace(Eigen::MatrixXd& rows, double resolution);

// The role of each column of `rows` (observations x signals): kConstant when max - min is at
// most resolution / 2 (or exactly 0), kPredictor when every value is 0 or 1, else kTarget.
std::vector<SignalRole> ClassifySignals(const Eigen::MatrixXd& rows, double resolution);

// Per-column mean and standard deviation (population); a deviation below 1e-12 is replaced by 1
// so that constant columns scale to 0 instead of dividing by zero.
struct SignalScaling {
  Eigen::VectorXd mean;
  Eigen::VectorXd scale;
  static SignalScaling Fit(const Eigen::MatrixXd& rows);
  // (rows - mean) / scale, column-wise.
  Eigen::MatrixXd Apply(const Eigen::MatrixXd& rows) const;
};

// The columns that predict signals: every signal whose role is not kConstant, in column order.
std::vector<uint32_t> LiveSignals(std::span<const SignalRole> roles);

// The lagged design for a per-signal predictor, over standardised rows z (time x signals):
// row t holds z[t, live] followed by z[t-1, live] (z[0] stands in for the row before the
// first). The predictor of target c uses every column but c's lag-0 column (DesignColumnsFor).
Eigen::MatrixXd LaggedDesign(const Eigen::MatrixXd& z, std::span<const uint32_t> live);
// Indices into LaggedDesign's columns used to predict signal `target` (which must be live):
// all 2L columns except the target's own lag-0 column, so 2L - 1 of them.
std::vector<uint32_t> DesignColumnsFor(std::span<const uint32_t> live, uint32_t target);

// Ridge regression with an unpenalised intercept over the columns of one design matrix: the
// centred Gram matrix of the design's rows is computed once, and each response column is then
// regressed on any subset of the other columns by solving a small system.
struct GramSystem {
  Eigen::MatrixXd gram;  // (D - mean)^T (D - mean) over the chosen rows
  Eigen::VectorXd mean;  // column means over the chosen rows
  size_t rows = 0;
  // Over the rows of `design` with include[row] true (every row when `include` is empty).
  static GramSystem Of(const Eigen::MatrixXd& design, std::span<const uint8_t> include = {});
};
struct RidgeFit {
  Eigen::VectorXd weights;  // one per predictor column, in the order given
  double intercept = 0.0;
  // intercept + design[row, cols] . weights
  double Predict(const Eigen::Ref<const Eigen::RowVectorXd, 0, Eigen::InnerStride<>>& design_row,
                 std::span<const uint32_t> cols) const;
};
// Minimises sum (y - b - X w)^2 + lambda |w|^2 with y = column `response` and X = columns `cols`
// (which must not hold `response`). lambda > 0 keeps the system positive definite.
RidgeFit SolveRidge(const GramSystem& g, std::span<const uint32_t> cols, uint32_t response,
                    double lambda);

// Exponentially weighted moving average: v <- alpha x + (1 - alpha) v, starting at the first
// value seen. alpha in (0, 1]; 1 means no smoothing.
class Ewma {
 public:
  explicit Ewma(double alpha = 1.0) : alpha_(alpha) {}
  double Update(double x) {
    value_ = started_ ? alpha_ * x + (1.0 - alpha_) * value_ : x;
    started_ = true;
    return value_;
  }
  double value() const { return value_; }
  bool started() const { return started_; }

 private:
  double alpha_;
  double value_ = 0.0;
  bool started_ = false;
};

}  // namespace vigil::model
