#pragma once

// The isolation forest family ("iforest", Liu, Ting & Zhou 2008) over fixed-length feature
// vectors, and a Model adapter that scores a stream by its bag-of-syscalls vector
// (model/features.h).
//
// Training: a calibration_fraction of the rows (chosen with the seed) is held out; each of
// `trees` iTrees is grown on a sample of min(sample_size, rest) rows drawn without replacement
// from the rest, to the height limit ceil(log2 psi). A node splits on a feature chosen uniformly
// among those not constant on the node's rows (the original draws from all features; skipping
// constant ones keeps sparse count vectors from wasting depth), at a threshold uniform in
// (min, max). The anomaly score is s = 2^(-E[h(x)] / c(psi)) in (0, 1], with h the path
// length plus c(leaf size). The threshold is the held-out rows' score at target_fpr
// (ThresholdForFpr), so the calibration rows never shaped the trees that score them.
//
// Everything is deterministic for a seed (std::mt19937_64, own uniform draws). Payload layout:
// docs/model-file-format.md.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/calibration.h"
#include "model/drift.h"
#include "model/features.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/sequence_model.h"

namespace vigil::model {

inline constexpr std::string_view kIsolationForestFamily = "iforest";

struct IsolationForestOptions {
  std::string name = "iforest";
  std::string version = "1";
  int trees = 100;           // 1..10000
  size_t sample_size = 256;  // psi, 2..65536
  uint64_t seed = 1;
  double target_fpr = 0.05;  // in (0, 1)
  // Share of the rows held out to calibrate the threshold, in [0, 0.9]; 0 calibrates on the
  // training rows themselves (their scores are biased low, so the achieved rate runs high).
  double calibration_fraction = 0.2;
  int explain_top = 3;                     // features named by the stream adapter, 0..64
  std::vector<std::string> feature_names;  // empty, or one per feature
};

struct IForestCalibration {
  double threshold = 1.0;     // score at which a row is anomalous
  double achieved_fpr = 0.0;  // share of the calibration rows at or above the threshold
  uint64_t rows = 0;          // rows behind the calibration
};

struct FeatureWeight {
  uint32_t feature = 0;
  double weight = 0.0;  // share of the isolation credited to the feature; the list sums to <= 1
};

class IsolationForest {
 public:
  // One flat node of an iTree. Leaves have feature -1 and no children; an internal node's
  // children come after it in its tree. `size` is the training rows that reached the node.
  struct Node {
    int32_t feature = -1;
    float threshold = 0.0f;  // rows with x[feature] < threshold go left
    uint32_t left = 0;
    uint32_t right = 0;
    uint32_t size = 0;
  };

  // Fails with kInvalidArgument for options out of range, fewer than 2 training rows (after the
  // hold-out), rows of differing or zero length, a non-finite value, or feature_names of the
  // wrong length.
  static core::Result<IsolationForest> Train(const std::vector<std::vector<float>>& rows,
                                             const IsolationForestOptions& options);
  // Rebuilds a forest from a decoded model file of family "iforest". Errors name `source`:
  // kInvalidArgument for another family, kDataLoss for a malformed payload (see the spec).
  static core::Result<IsolationForest> FromFile(const ModelFile& file, std::string_view source);
  // The forest as a file; `extra_header` (training digest, metrics, ...) is merged in.
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  // Anomaly score of `row` in (0, 1]; higher is more anomalous. Entries past the end of a
  // short row read as 0 and extra entries are ignored. Does not allocate.
  double Score(std::span<const float> row) const;
  // Score(rows[i]) into out[i] for every row (out.size() == rows.size()), walking each tree for
  // a block of rows at a time so that the tree stays in cache: the same values as Score, faster
  // for many rows (benchmarks, offline evaluation).
  void ScoreBatch(std::span<const std::vector<float>> rows, std::span<double> out) const;
  bool IsAnomalous(double score) const { return score >= calibration_.threshold; }
  // The k features whose splits isolated `row`, heaviest first: along each tree's path a split
  // on feature f that sends the row to a child holding m of the node's n rows credits f with
  // log2(n / m) (splits that cut off most rows weigh most); credits are summed over the trees
  // and divided by their total. Features with no credit are left out.
  std::vector<FeatureWeight> Explain(std::span<const float> row, size_t k) const;
  // Score(row), returned, and Explain(row, k) into *top, in one walk of the trees.
  double ScoreExplained(std::span<const float> row, size_t k,
                        std::vector<FeatureWeight>* top) const;

  size_t dims() const { return dims_; }
  size_t trees() const { return roots_.size(); }
  size_t sample_size() const { return psi_; }
  const IsolationForestOptions& options() const { return options_; }
  const IForestCalibration& calibration() const { return calibration_; }
  // The calibration record (digest over the calibration rows) and the drift reference (the
  // calibration rows' scores and the values of the features split on most often); written to
  // the header as "calibration" and "drift_reference", read back by FromFile.
  const TrainingRecord& training_record() const { return record_; }
  const std::vector<std::string>& feature_names() const { return options_.feature_names; }

  // Average path length of an unsuccessful BST search among n points (c(n) of the paper).
  static double AveragePathLength(double n);

 private:
  IsolationForest() = default;
  double PathLength(size_t tree, std::span<const float> row) const;
  // The sum of the row's path lengths over the trees, in tree order. With kCredit, each split
  // on the way adds its edge credit to (*credit)[feature] (dims() entries) and to *total.
  template <bool kCredit>
  double WalkRow(std::span<const float> row, std::vector<double>* credit, double* total) const;
  // Fills leaf_c_ from the nodes' sizes (after Train or FromFile).
  void IndexLeaves();
  static DriftReference DriftReferenceOf(const IsolationForest& forest,
                                         const std::vector<std::vector<float>>& rows,
                                         const std::vector<uint32_t>& subset,
                                         const std::vector<double>& scores);

  IsolationForestOptions options_;
  IForestCalibration calibration_;
  size_t dims_ = 0;
  size_t psi_ = 0;
  double c_psi_ = 1.0;
  std::vector<Node> nodes_;      // all trees, each contiguous
  std::vector<uint32_t> roots_;  // index of each tree's root in nodes_
  std::vector<double> leaf_c_;   // per node: c(size), the path length a leaf adds
  // Per node: its depth plus leaf_c_ (a leaf's whole path length; ScoreBatch's form).
  std::vector<double> leaf_path_;
  std::vector<int> tree_height_;  // per tree: the depth of its deepest leaf
  // Per node: log2(parent's size / its size), what Explain credits the split that led to it
  // (0 for a root).
  std::vector<double> edge_credit_;
  // The scoring form of nodes_: 16 bytes a node (4 to a cache line), children as indices into
  // the whole array; built by IndexLeaves. A leaf keeps feature -1 and its children are itself,
  // so that ScoreBatch can walk every row the tree's height without testing for leaves.
  struct Step {
    int32_t feature;
    float threshold;
    uint32_t child[2];  // [0] left (x[feature] < threshold), [1] right

    // The child `row` goes to, chosen by indexing rather than a branch: the comparison is a coin
    // toss the branch predictor would miss about half the time.
    uint32_t Next(float x) const { return child[!(x < threshold)]; }
  };
  std::vector<Step> steps_;
  TrainingRecord record_;
};

// The pipeline adapter: a stream is scored by the forest on the frequency vector of the
// system calls it made so far; the explanation names the syscalls that isolated it.
class IsolationForestModel final : public Model {
 public:
  // Trains on normal traces only; the vocabulary is every call name seen in training (of the
  // traces' architectures) plus "<other>". options.feature_names is ignored (set from it).
  static core::Result<std::unique_ptr<IsolationForestModel>> Train(
      std::span<const TrainingTrace> traces, const IsolationForestOptions& options);
  // As IsolationForest::FromFile, and the feature names must be a syscall vocabulary followed
  // by "<other>".
  static core::Result<std::unique_ptr<IsolationForestModel>> FromFile(const ModelFile& file,
                                                                      std::string_view source);
  ModelFile ToFile(const nlohmann::json& extra_header) const {
    return forest_.ToFile(extra_header);
  }

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return forest_.options().name; }
  const std::string& version() const override { return forest_.options().version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;
  // A request with a feature vector is scored as that vector (of dims() values, e.g. a
  // bag-of-syscalls frequency vector; kInvalidArgument for another length); one with only a
  // system-call window as a stream fed that window.
  core::Result<core::Verdict> Score(const FeatureView& request) const override;

  const IsolationForest& forest() const { return forest_; }
  const SyscallVocabulary& vocabulary() const { return vocab_; }
  // Score of a whole trace (the same as a stream fed `nrs`).
  double ScoreTrace(core::Arch arch, std::span<const int32_t> nrs) const;

 private:
  IsolationForestModel(IsolationForest forest, SyscallVocabulary vocab)
      : forest_(std::move(forest)), vocab_(std::move(vocab)) {}
  std::string family_{kIsolationForestFamily};
  IsolationForest forest_;
  SyscallVocabulary vocab_;
};

}  // namespace vigil::model
