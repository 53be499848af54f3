#pragma once

// A thin RAII layer over the XGBoost C API (Debian's libxgboost, 1.7): a dense feature matrix
// (DMatrix) and a binary-logistic gradient-boosted tree ensemble (Booster). Every C API failure
// becomes a Status whose message carries XGBGetLastError(); nothing here throws or aborts.
//
// Thread safety: an XgbBooster is immutable after Train/Load; Predict and Contributions may be
// called from several threads (they serialise on an internal mutex, because the C API hands back
// buffers owned by the booster).
//
// Model bytes: Save() returns XGBoost's own model serialisation in Universal Binary JSON (UBJSON,
// XGBoost's "ubj" format); Load() accepts those bytes (or XGBoost's JSON form) only after
// ValidateXgbModel() has checked them, so no malformed tree ever reaches XGBoost's predictor.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::model {

inline constexpr float kMissingFeature = std::numeric_limits<float>::quiet_NaN();

struct BoosterParams {
  int rounds = 200;               // boosting rounds (trees), 1..10000
  int max_depth = 6;              // 1..16
  double eta = 0.1;               // learning rate, (0, 1]
  double subsample = 1.0;         // row share per tree, (0, 1]
  double colsample_bytree = 1.0;  // column share per tree, (0, 1]
  double min_child_weight = 1.0;  // >= 0
  double lambda = 1.0;            // L2 regularisation, >= 0
  double scale_pos_weight = 1.0;  // weight of positive rows, > 0
  int threads = 1;                // XGBoost's nthread, 1..256
  uint64_t seed = 0;
};

// OK when every parameter is inside the range stated above; otherwise kInvalidArgument naming it.
core::Status CheckBoosterParams(const BoosterParams& p);

// A row-major dense matrix of float features (NaN = missing) with optional 0/1 labels.
class XgbMatrix {
 public:
  // `values` holds rows*cols entries; rows >= 1, cols >= 1.
  static core::Result<XgbMatrix> FromDense(std::span<const float> values, size_t rows, size_t cols);
  // One label per row (0 or 1 for the logistic objective).
  core::Status SetLabels(std::span<const float> labels);

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  void* handle() const { return handle_.get(); }

 private:
  struct Free {
    void operator()(void* h) const;
  };
  std::unique_ptr<void, Free> handle_;
  size_t rows_ = 0;
  size_t cols_ = 0;
};

class XgbBooster {
 public:
  // Trains a "binary:logistic" ensemble with the "hist" tree method on `train` (labels set).
  static core::Result<XgbBooster> Train(const XgbMatrix& train, const BoosterParams& params);
  // Rebuilds a booster from model bytes written by Save() after ValidateXgbModel(bytes,
  // expected_features); `source` names the input in errors (kDataLoss for bad bytes).
  static core::Result<XgbBooster> Load(std::string_view bytes, size_t expected_features,
                                       std::string_view source);

  // XGBoost's UBJSON model bytes. The same booster always gives the same bytes.
  core::Result<std::string> Save() const;
  // P(positive) per row of `m` (m.cols() must equal features()).
  core::Result<std::vector<float>> Predict(const XgbMatrix& m) const;
  // Per-row SHAP contributions in log-odds: rows x (features()+1) values, the last of each row
  // being the bias; each row sums to the row's margin (logit of Predict).
  core::Result<std::vector<float>> Contributions(const XgbMatrix& m) const;

  size_t features() const { return features_; }
  int rounds() const { return rounds_; }

 private:
  struct Free {
    void operator()(void* h) const;
  };
  struct State {
    std::unique_ptr<void, Free> handle;
    std::mutex mu;
  };
  XgbBooster() = default;
  core::Result<std::vector<float>> PredictType(const XgbMatrix& m, int type) const;

  std::unique_ptr<State> state_;
  size_t features_ = 0;
  int rounds_ = 0;
};

// Checks XGBoost model bytes (UBJSON, or JSON when a '"' follows the opening '{') before XGBoost
// sees them: a gbtree learner of objective binary:logistic with `expected_features` features, at
// most 10000 trees of at most 2^20 nodes, and in each tree parallel arrays of one length, children
// that come after their parent (so every path ends), both or neither child per node, split
// features below the feature count and finite split values and leaf weights. Errors are
// kDataLoss "<source>: xgboost model: <reason>".
core::Status ValidateXgbModel(std::string_view bytes, size_t expected_features,
                              std::string_view source);

// The XGBoost library's version, e.g. "1.7.4".
std::string XgbVersion();

}  // namespace vigil::model
