#pragma once

// The autoencoder-ensemble family "kitnet", after KitNET (Mirsky et al., "Kitsune: An Ensemble
// of Autoencoders for Online Network Intrusion Detection", NDSS 2018), over fixed-length
// feature vectors.
//
// 1. Feature mapping (the first fm_grace rows): an incremental correlation matrix of the
//    features (Welford sums); the distance of two features is 1 - |r|. Single-linkage
//    agglomerative clustering of that distance gives a dendrogram, which is cut top-down: a
//    cluster of more than max_group_size features is split into its two children. Constant
//    features are at distance 1 from everything.
// 2. Training (the next ad_grace rows): each group's autoencoder (model/autoencoder.h, hidden
//    units ceil(hidden_ratio * n)) takes one SGD step on its features; the output autoencoder
//    takes one step on the vector of the groups' RMSEs.
// 3. Scoring: the output autoencoder's RMSE on the groups' RMSEs (the raw score, >= 0). The
//    threshold is the raw score at target_fpr on held-out normal rows (ThresholdForFpr), which
//    no autoencoder trained on. A verdict's score in [0, 1) is raw / (raw + threshold), so the
//    threshold maps to 0.5.
// Explanation: each feature's squared reconstruction error in its group's autoencoder, as a
// share of the total; the features with the largest shares are named.
//
// KitNetTrainer is the online form (one row at a time, as a stream arrives); KitNet::Train runs
// it over a matrix, feeding the training rows once to the mapper and `epochs` reshuffled passes
// to the autoencoders. Deterministic for a seed. Payload layout: docs/model-file-format.md.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/autoencoder.h"
#include "model/isolation_forest.h"  // FeatureWeight
#include "model/model_file.h"

namespace vigil::model {

inline constexpr std::string_view kKitNetFamily = "kitnet";
inline constexpr int kKitNetMaxGroupSize = 64;

// Which arithmetic scores: float throughout, or int8 weights with int32 accumulation
// (model/autoencoder.h). Chosen when a model is loaded; files always hold float weights.
enum class KitNetPrecision : uint8_t { kFloat, kInt8 };

struct KitNetOptions {
  std::string name = "kitnet";
  std::string version = "1";
  int max_group_size = 10;     // m: features per ensemble autoencoder, 1..64
  double hidden_ratio = 0.75;  // hidden units per visible unit, in (0, 1]
  double learning_rate = 0.1;  // SGD step, in (0, 10]
  // Rows the feature mapper learns from; 0 = every training row.
  uint64_t fm_grace = 0;
  // Training steps after the mapping; 0 = epochs x training rows.
  uint64_t ad_grace = 0;
  int epochs = 1;  // passes over the training rows in Train (used when ad_grace is 0), 1..10000
  uint64_t seed = 1;
  double target_fpr = 0.05;  // in (0, 1)
  // Share of the rows held out to calibrate the threshold, in [0, 0.9]; 0 calibrates on the
  // training rows themselves (their scores run low, so the achieved rate runs high).
  double calibration_fraction = 0.2;
  int explain_top = 3;                     // features named in an explanation, 0..64
  std::vector<std::string> feature_names;  // empty, or one per feature
};

struct KitNetCalibration {
  double threshold = 0.0;     // raw score (output RMSE) at which a row is anomalous, > 0
  double achieved_fpr = 0.0;  // share of the calibration rows at or above the threshold
  uint64_t rows = 0;
};

// Called now and then during training with the steps done and the steps in all.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class KitNet;

// Online training over a stream of rows of `dims` features. Not thread-safe.
class KitNetTrainer {
 public:
  enum class Phase : uint8_t { kMapping, kTraining, kDone };

  // Fails with kInvalidArgument for options out of range, dims outside 1..65536, or feature
  // names of the wrong length. fm_grace must be >= 1 here (0 means "all rows" only in Train),
  // and ad_grace >= 1.
  static core::Result<KitNetTrainer> Create(size_t dims, const KitNetOptions& options);

  // Feeds one row: mapping while fewer than fm_grace rows were seen (the ensemble is built
  // when the last one arrives), then one training step, until ad_grace steps are done; later
  // rows are ignored. kInvalidArgument for a row of the wrong length or a non-finite value.
  core::Status Observe(std::span<const float> row);
  Phase phase() const { return phase_; }
  uint64_t mapped() const { return mapped_; }
  uint64_t trained() const { return trained_; }

  // The trained network, uncalibrated (threshold +inf until Calibrate). kFailedPrecondition
  // before the mapping is complete.
  core::Result<KitNet> Finish() const;

 private:
  KitNetTrainer() = default;
  void BuildEnsemble();

  KitNetOptions options_;
  size_t dims_ = 0;
  Phase phase_ = Phase::kMapping;
  uint64_t mapped_ = 0;
  uint64_t trained_ = 0;
  // Welford sums of the mapping rows.
  Eigen::VectorXd mean_;
  Eigen::MatrixXd m2_;
  std::vector<std::vector<uint32_t>> groups_;
  std::vector<Autoencoder> ensemble_;
  Autoencoder output_;
  AutoencoderScratch scratch_;
  std::vector<float> gather_, rmses_;
};

class KitNet {
 public:
  // Scratch for scoring one row; one per thread (Score and Explain are otherwise const).
  struct Workspace {
    AutoencoderScratch ae;
    std::vector<float> gather, rmses, error;
  };

  // Holds out calibration_fraction of the rows (chosen with the seed), trains on the rest
  // (KitNetTrainer: fm_grace rows mapped, then ad_grace steps, both 0 = as in KitNetOptions)
  // and calibrates on the held-out rows. kInvalidArgument for bad options, fewer than 2
  // training rows, rows of differing or zero length, or a non-finite value.
  static core::Result<KitNet> Train(const std::vector<std::vector<float>>& rows,
                                    const KitNetOptions& options,
                                    const ProgressFn& progress = nullptr);
  // Rebuilds from a decoded file of family "kitnet", scoring with `precision`. Errors name
  // `source`: kInvalidArgument for another family, kDataLoss for a malformed payload.
  static core::Result<KitNet> FromFile(const ModelFile& file, std::string_view source,
                                       KitNetPrecision precision = KitNetPrecision::kFloat);
  // The network as a file (float weights); `extra_header` is merged into the header.
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  // Sets the threshold to the score at target_fpr on `normal_rows`.
  void Calibrate(std::span<const std::vector<float>> normal_rows);
  // Switches scoring to int8 weights (idempotent; there is no way back to float in place). Score
  // then runs the ensemble packed (Int8GroupPack) and the output autoencoder through the int8
  // kernel; Explain runs each autoencoder's int8 Score, which gives the same RMSEs.
  void QuantizeInt8();
  KitNetPrecision precision() const { return precision_; }

  // Raw anomaly score (output RMSE, >= 0) of `row`; entries past the end of a short row read
  // as 0 and extra entries are ignored.
  double Score(std::span<const float> row, Workspace& ws) const;
  double Score(std::span<const float> row) const;
  // raw / (raw + threshold), in [0, 1); 0.5 at the threshold.
  double UnitScore(double raw) const;
  bool IsAnomalous(double raw) const { return raw >= calibration_.threshold; }
  // The k features with the largest squared reconstruction error, as shares of the total
  // (largest first; features with no error are left out).
  std::vector<FeatureWeight> Explain(std::span<const float> row, size_t k, Workspace& ws) const;

  size_t dims() const { return dims_; }
  const std::vector<std::vector<uint32_t>>& groups() const { return groups_; }
  const KitNetOptions& options() const { return options_; }
  const KitNetCalibration& calibration() const { return calibration_; }
  const std::vector<std::string>& feature_names() const { return options_.feature_names; }
  uint64_t trained_steps() const { return trained_steps_; }

 private:
  friend class KitNetTrainer;
  KitNet() = default;
  // Fills ws.rmses (one per group) and, when `error` is non-empty, each feature's squared error.
  void EnsembleRmses(std::span<const float> row, Workspace& ws, bool with_error) const;

  KitNetOptions options_;
  KitNetCalibration calibration_;
  KitNetPrecision precision_ = KitNetPrecision::kFloat;
  size_t dims_ = 0;
  uint64_t trained_steps_ = 0;
  std::vector<std::vector<uint32_t>> groups_;  // feature indices per ensemble autoencoder
  std::vector<Autoencoder> ensemble_;
  Autoencoder output_;
  // The ensemble packed for int8 scoring (built by QuantizeInt8; empty in float).
  Int8GroupPack pack_;
};

// Single-linkage clustering of `distance` (dims x dims, symmetric) cut top-down into groups of
// at most `max_group` features; each group's indices ascend. Exposed for tests.
std::vector<std::vector<uint32_t>> ClusterFeatures(const Eigen::MatrixXd& distance,
                                                   size_t max_group);

}  // namespace vigil::model
