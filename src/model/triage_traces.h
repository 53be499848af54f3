#pragma once

// Triage of whole system-call traces (the ADFA-LD people-in-the-loop target): labelled traces in,
// a "triage" model with a TraceFeaturizer out, and a grouped cross-validation that measures it
// on traces it never saw.
//
// Stacking without leaks: the featurizer's n-gram model is trained on the negative (normal)
// traces only. A training row's n-gram features come from an n-gram model that did not see that
// row — the training set is split into inner folds by group and each fold is featurized by a
// model of the others — while the model that ships (and scores new traces) is trained on all of
// them. In cross-validation the whole procedure runs inside each outer fold, so a held-out trace
// is never seen by the n-gram model, the vocabulary or the trees that score it.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "model/sequence_model.h"
#include "model/triage.h"

namespace vigil::model {

struct LabelledTrace {
  std::string id;
  // Traces of one group are always in the same fold: an attack run (ADFA-LD's
  // Attack_Data_Master/<Type>_<n>/), or the trace's own id.
  std::string group;
  std::string category;  // attack type of a positive trace, for per-category metrics
  core::Arch arch = core::Arch::kI386;
  std::vector<int32_t> syscalls;
  bool positive = false;
};

struct TraceTriageOptions {
  TriageOptions triage;
  SequenceModelOptions ngram;  // the unsupervised n-gram model inside the featurizer
  int inner_folds = 5;         // folds of the out-of-fold featurization, 2..20
  uint64_t seed = 1;           // fold assignment
  double target_fpr = 0.01;    // false-alarm rate a cross-validated threshold is calibrated to
};

// Called as work progresses: stage name, units done, units in the stage.
using TriageProgress = std::function<void(std::string_view stage, size_t done, size_t total)>;

// Assigns every trace a fold in 0..k-1 so that a group never straddles two folds. Positive
// groups are dealt round-robin per category (each fold gets runs of every attack type when a
// type has at least k runs), negative groups in a seeded shuffle; deterministic for a seed.
std::vector<int> GroupFolds(std::span<const LabelledTrace> traces, int k, uint64_t seed);

// Trains the stacked model on every trace. Needs positives, and negatives in every inner fold.
core::Result<std::unique_ptr<TriageModel>> TrainTraceTriage(std::span<const LabelledTrace> traces,
                                                            const TraceTriageOptions& options,
                                                            const TriageProgress& progress = {});

struct DetectionMetrics {
  double auc = 0.5;
  double tpr_at_fpr_1 = 0.0;
  double tpr_at_fpr_5 = 0.0;
  size_t positives = 0;
};

struct TraceCvResult {
  int folds = 0;
  std::vector<double> scores;  // out-of-fold P(true positive), one per trace
  std::vector<int> fold_of;    // the fold each trace was held out in
  DetectionMetrics overall;
  std::map<std::string, DetectionMetrics> per_category;  // every negative vs one category
  // Out-of-fold threshold for options.target_fpr and the false-alarm rate it reaches.
  TriageCalibration calibration;
};

// Grouped k-fold cross-validation of TrainTraceTriage: each fold's traces are scored by a model
// trained (featurizer included) on the other folds only.
core::Result<TraceCvResult> CrossValidateTraceTriage(std::span<const LabelledTrace> traces,
                                                     const TraceTriageOptions& options, int folds,
                                                     const TriageProgress& progress = {});

}  // namespace vigil::model
