#include "hub/triage_holdout.h"

#include <algorithm>
#include <random>
#include <string>

namespace vigil::hub {

std::vector<int> StratifiedFolds(const std::vector<float>& labels, int k, uint64_t seed) {
  std::vector<size_t> pos, neg;
  for (size_t i = 0; i < labels.size(); ++i) (labels[i] == 1.0f ? pos : neg).push_back(i);
  std::mt19937_64 rng(seed);
  std::vector<int> fold(labels.size(), 0);
  size_t next = 0;
  for (auto* list : {&pos, &neg}) {
    for (size_t i = list->size(); i > 1; --i) std::swap((*list)[i - 1], (*list)[rng() % i]);
    for (size_t i : *list) fold[i] = static_cast<int>(next++ % static_cast<size_t>(k));
  }
  return fold;
}

core::Result<std::vector<double>> OutOfFoldScores(const model::FeatureTable& table,
                                                  const model::TriageOptions& options,
                                                  const std::vector<int>& fold, int k) {
  std::vector<double> out(table.rows(), 0.0);
  for (int f = 0; f < k; ++f) {
    model::FeatureTable train;
    train.names = table.names;
    std::vector<size_t> test;
    std::vector<float> test_values;
    for (size_t i = 0; i < table.rows(); ++i) {
      const auto row = table.row(i);
      if (fold[i] == f) {
        test.push_back(i);
        test_values.insert(test_values.end(), row.begin(), row.end());
      } else {
        train.values.insert(train.values.end(), row.begin(), row.end());
        train.labels.push_back(table.labels[i]);
      }
    }
    const std::string name = "fold " + std::to_string(f + 1) + " of " + std::to_string(k);
    if (test.empty()) return core::InvalidArgument(name + ": no row (too few rows for the folds)");
    auto m = model::TriageModel::Train(train, options);
    if (!m.has_value()) return m.error().WithContext(name);
    VIGIL_ASSIGN_OR_RETURN(std::vector<float> s, (*m)->ScoreRows(test_values, test.size()));
    for (size_t n = 0; n < test.size(); ++n) out[test[n]] = s[n];
  }
  return out;
}

core::Result<int> HeldOutFolds(const model::FeatureTable& table, int max_folds) {
  size_t positives = 0;
  for (float l : table.labels) positives += l == 1.0f ? 1 : 0;
  const size_t negatives = table.rows() - positives;
  const size_t k = std::min({static_cast<size_t>(std::max(max_folds, 0)), positives, negatives});
  if (k < 2) {
    return core::FailedPrecondition(
        "choosing the triage threshold on held-out data needs at least 2 adjudicated incidents "
        "of each kind (and 2 folds): " +
        std::to_string(positives) + " true positives, " + std::to_string(negatives) +
        " others, folds " + std::to_string(max_folds));
  }
  return static_cast<int>(k);
}

core::Result<HeldOutThreshold> ChooseHeldOutThreshold(const model::FeatureTable& table,
                                                      const model::TriageOptions& options,
                                                      int max_folds, uint64_t seed, double recall) {
  HeldOutThreshold h;
  VIGIL_ASSIGN_OR_RETURN(h.folds, HeldOutFolds(table, max_folds));
  h.seed = seed;
  const std::vector<int> fold = StratifiedFolds(table.labels, h.folds, seed);
  VIGIL_ASSIGN_OR_RETURN(std::vector<double> oof, OutOfFoldScores(table, options, fold, h.folds));
  std::vector<ScoredAlert> all;
  all.reserve(oof.size());
  for (size_t i = 0; i < oof.size(); ++i) all.push_back({oof[i], table.labels[i] == 1.0f});
  VIGIL_ASSIGN_OR_RETURN(h.chosen, VolumeAtRecall(all, recall));
  h.held_out.recall_target = recall;
  for (int f = 0; f < h.folds; ++f) {
    std::vector<ScoredAlert> others;
    for (size_t i = 0; i < all.size(); ++i) {
      if (fold[i] != f) others.push_back(all[i]);
    }
    VIGIL_ASSIGN_OR_RETURN(TriageVolume v, VolumeAtRecall(std::move(others), recall));
    for (size_t i = 0; i < all.size(); ++i) {
      if (fold[i] != f) continue;
      const bool kept = all[i].score >= v.threshold;
      ++h.held_out.alerts_before;
      h.held_out.alerts_after += kept ? 1 : 0;
      h.held_out.true_positives += all[i].true_positive ? 1 : 0;
      h.held_out.true_positives_kept += kept && all[i].true_positive ? 1 : 0;
    }
  }
  TriageVolume& o = h.held_out;
  o.recall = o.true_positives == 0 ? 0
                                   : static_cast<double>(o.true_positives_kept) /
                                         static_cast<double>(o.true_positives);
  o.removed_fraction = o.alerts_before == 0 ? 0
                                            : 1.0 - static_cast<double>(o.alerts_after) /
                                                        static_cast<double>(o.alerts_before);
  return h;
}

nlohmann::json VolumeJson(const TriageVolume& v) {
  return {{"recall_target", v.recall_target},
          {"threshold", v.threshold},
          {"recall", v.recall},
          {"alerts_before", v.alerts_before},
          {"alerts_after", v.alerts_after},
          {"true_positives", v.true_positives},
          {"true_positives_kept", v.true_positives_kept},
          {"removed_fraction", v.removed_fraction}};
}

nlohmann::json HeldOutJson(const HeldOutThreshold& h) {
  nlohmann::json held_out = VolumeJson(h.held_out);
  held_out.erase("threshold");
  return {{"method", "stratified k-fold, out-of-fold scores"},
          {"folds", h.folds},
          {"seed", h.seed},
          {"recall_target", h.chosen.recall_target},
          {"threshold", h.chosen.threshold},
          // What the threshold keeps of the out-of-fold scores it was chosen on.
          {"out_of_fold", VolumeJson(h.chosen)},
          // Each fold judged at the threshold chosen on the others: the figures to expect.
          {"held_out", std::move(held_out)}};
}

}  // namespace vigil::hub
