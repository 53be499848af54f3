#pragma once

// The supervised triage family ("triage"): gradient-boosted trees (XGBoost, binary logistic)
// trained on adjudicated alerts or traces — true positives against false positives and benign
// ones — that put a probability on "this is a real attack". Explanation: XGBoost's per-feature
// SHAP contributions (log-odds), the features that pushed the score up most named first.
//
// A model holds its feature names and, optionally, a TraceFeaturizer (trace_features.h): with
// one, it scores system-call streams itself (the ADFA-LD people-in-the-loop model); without one
// (trained from a JSONL file of feature rows), it scores feature rows given by name, and a
// stream scorer, which has no features to give, scores the row of all-missing values (XGBoost's
// default branches) — such models are meant for ScoreNamed, the hub's path.
//
// Payload layout: docs/model-file-format.md ("triage").

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/trace_features.h"
#include "model/xgboost_booster.h"

namespace vigil::model {

inline constexpr std::string_view kTriageFamily = "triage";

// Labelled rows: names.size() columns, row-major values (NaN = missing), one 0/1 label per row.
struct FeatureTable {
  std::vector<std::string> names;
  std::vector<float> values;
  std::vector<float> labels;
  size_t rows() const { return labels.size(); }
  std::span<const float> row(size_t i) const {
    return std::span<const float>(values).subspan(i * names.size(), names.size());
  }
};

struct TriageOptions {
  std::string name = "triage";
  std::string version = "1";
  BoosterParams booster;
  int explain_top = 3;  // features named in an explanation, 0..64
};

// The score at which a row counts as a true positive. "probability" (0.5) until a
// cross-validation sets it to the out-of-fold score reaching target_fpr on the negatives.
struct TriageCalibration {
  std::string method = "probability";
  double threshold = 0.5;
  double target_fpr = 0.0;    // 0 for "probability"
  double achieved_fpr = 0.0;  // out-of-fold false-alarm rate at the threshold
  uint64_t rows = 0;          // rows behind the calibration
};

struct TriageScore {
  double score = 0.0;  // P(true positive)
  bool positive = false;
  // The explain_top features with the largest positive contributions, "name=value" (weight: the
  // contribution in log-odds); empty when none pushed the score up.
  std::vector<core::Evidence> explanation;
  std::vector<float> contributions;  // per feature, then the bias (log-odds)
};

class TriageModel final : public Model {
 public:
  // Trains on `table` (at least one row of each label; finite or NaN values). With a
  // featurizer, its feature names must be the table's.
  static core::Result<std::unique_ptr<TriageModel>> Train(
      const FeatureTable& table, const TriageOptions& options,
      std::shared_ptr<const TraceFeaturizer> featurizer = nullptr);
  // Rebuilds a model from a decoded file of family "triage"; kInvalidArgument for another
  // family, kDataLoss for a malformed payload, naming `source`.
  static core::Result<std::unique_ptr<TriageModel>> FromFile(const ModelFile& file,
                                                             std::string_view source);
  // The model as a file; `extra_header` (lineage, metrics, ...) is merged in.
  core::Result<ModelFile> ToFile(const nlohmann::json& extra_header) const;

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return options_.name; }
  const std::string& version() const override { return options_.version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;

  // Scores rows of features() values each (row-major), P(true positive) per row.
  core::Result<std::vector<float>> ScoreRows(std::span<const float> values, size_t rows) const;
  // Score and explanation of one row of features() values.
  core::Result<TriageScore> Explain(std::span<const float> row) const;
  // As Explain, with features given by name; absent names are missing values, unknown names
  // are an error (kInvalidArgument naming the first).
  core::Result<TriageScore> ScoreNamed(const std::map<std::string, double>& features) const;

  const std::vector<std::string>& feature_names() const { return names_; }
  const TraceFeaturizer* featurizer() const { return featurizer_.get(); }
  const TriageOptions& options() const { return options_; }
  const TriageCalibration& calibration() const { return calibration_; }
  void set_calibration(const TriageCalibration& c) { calibration_ = c; }
  const XgbBooster& booster() const { return booster_; }

 private:
  TriageModel(XgbBooster booster) : booster_(std::move(booster)) {}

  std::string family_{kTriageFamily};
  TriageOptions options_;
  TriageCalibration calibration_;
  std::vector<std::string> names_;
  XgbBooster booster_;
  std::shared_ptr<const TraceFeaturizer> featurizer_;
};

}  // namespace vigil::model
