#pragma once

// The triage threshold chosen on held-out data (docs/hub.md, "Triage"). A threshold chosen on the
// very rows a model learnt from is optimistic: the model scores the true positives it memorised
// high, so the threshold that keeps `recall` of them there keeps fewer of tomorrow's. Instead:
//
//   1. StratifiedFolds deals the rows into k folds (positives and negatives each shuffled with a
//      seed, then dealt round-robin, so every fold has both kinds when each has >= k rows).
//   2. OutOfFoldScores scores every row with a model trained on the other k-1 folds.
//   3. ChooseHeldOutThreshold takes the highest threshold that keeps `recall` of the true
//      positives among those out-of-fold scores (VolumeAtRecall): the threshold for the model
//      trained on every row. It also reports how the procedure fares on data it did not choose
//      on: each fold is judged at the threshold chosen on the other folds' out-of-fold scores,
//      and the kept alerts and true positives are summed over the folds ("held_out").
//
// Deterministic: the same table, options, k and seed give the same folds and scores.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/status.h"
#include "hub/triage_volume.h"
#include "model/triage.h"

namespace vigil::hub {

// The fold (0..k-1) of each row of `labels` (1: true positive). k >= 1.
std::vector<int> StratifiedFolds(const std::vector<float>& labels, int k, uint64_t seed);

// Each row's score by a model trained (with `options`) on the rows of the other folds. Errors:
// kInvalidArgument when a fold is empty or leaves no row of one kind to train on (naming the
// fold), or the trainer's.
core::Result<std::vector<double>> OutOfFoldScores(const model::FeatureTable& table,
                                                  const model::TriageOptions& options,
                                                  const std::vector<int>& fold, int k);

struct HeldOutThreshold {
  int folds = 0;
  uint64_t seed = 0;
  // On every row's out-of-fold score: the threshold to use, and what it keeps there.
  TriageVolume chosen;
  // Summed over the folds, each judged at the threshold chosen without it (threshold unused: 0).
  TriageVolume held_out;
};

// The folds used for `table`: min(max_folds, true positives, other rows); kFailedPrecondition
// when that is below 2 (naming the counts).
core::Result<int> HeldOutFolds(const model::FeatureTable& table, int max_folds);

// Steps 1-3 above with HeldOutFolds(table, max_folds) folds. recall in (0, 1].
core::Result<HeldOutThreshold> ChooseHeldOutThreshold(const model::FeatureTable& table,
                                                      const model::TriageOptions& options,
                                                      int max_folds, uint64_t seed, double recall);

// The figures as JSON (the training answer, the audit record, the model file's header).
nlohmann::json HeldOutJson(const HeldOutThreshold& h);
nlohmann::json VolumeJson(const TriageVolume& v);

}  // namespace vigil::hub
