#pragma once

// Training of an ensemble (model/ensemble.h): every member is trained on the same fitting part of
// the normal traces, scores the same held-out calibration part (its reference), and the
// ensemble's threshold is calibrated on the combined scores of those held-out traces.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/ensemble.h"
#include "model/sequence_model.h"
#include "model/train/rnn_train.h"

namespace vigil::model {

struct EnsembleMemberSpec {
  enum class Kind { kNgram, kRnn } kind = Kind::kRnn;
  SequenceModelOptions ngram;
  RnnTrainOptions rnn;
  double weight = 1.0;
  std::string Describe() const;  // e.g. "rnn lstm e32 h128 x1 seed 1"
};

struct EnsembleTrainOptions {
  std::string name = "ensemble";
  std::string version = "1";
  std::vector<EnsembleMemberSpec> members;
  EnsembleNorm norm = EnsembleNorm::kZScore;
  double target_fpr = 0.05;
  double calibration_fraction = 0.2;
  uint64_t seed = 1;  // the fitting/calibration split
};

// Parses a member list: members separated by ',', each "KIND[:KEY=VALUE]..." with KIND "ngram"
// (keys order, weight) or "rnn" (keys cell, embed, hidden, layers, epochs, dropout, lr, seed,
// aggregate, window, weight). Unset keys take their values from `base_ngram` / `base_rnn`.
// Errors (kInvalidArgument) quote the member and key at fault.
core::Result<std::vector<EnsembleMemberSpec>> ParseEnsembleMembers(
    std::string_view text, const SequenceModelOptions& base_ngram, const RnnTrainOptions& base_rnn);

struct EnsembleProgress {
  size_t member = 0;  // 0-based
  size_t members = 0;
  std::string what;   // the member's description
  RnnEpoch epoch;     // for RNN members, after each epoch; epoch.epoch == 0 when a member ends
};
using EnsembleProgressFn = std::function<void(const EnsembleProgress&)>;

struct EnsembleTrainResult {
  std::unique_ptr<EnsembleModel> model;
  size_t fit_traces = 0;
  size_t calibration_traces = 0;
};

core::Result<EnsembleTrainResult> TrainEnsemble(std::span<const TrainingTrace> traces,
                                                const EnsembleTrainOptions& options,
                                                const EnsembleProgressFn& progress = {});

}  // namespace vigil::model
