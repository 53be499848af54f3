#include "hub/triage_volume.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace vigil::hub {

core::Result<TriageVolume> VolumeAtRecall(std::vector<ScoredAlert> alerts, double recall) {
  if (!(recall > 0 && recall <= 1)) {
    return core::InvalidArgument("recall: expected a number in (0, 1], got " +
                                 std::to_string(recall));
  }
  TriageVolume v;
  v.recall_target = recall;
  v.alerts_before = alerts.size();
  for (const ScoredAlert& a : alerts) v.true_positives += a.true_positive ? 1 : 0;
  if (v.true_positives == 0) {
    return core::InvalidArgument("labelled set: no true positive, so no recall to keep");
  }
  // The fewest true positives to keep, then the score of the last of them (highest first): every
  // alert scoring at least that is kept, ties included.
  const auto need = static_cast<size_t>(std::ceil(recall * static_cast<double>(v.true_positives) -
                                                  1e-9));
  std::vector<double> tp;
  for (const ScoredAlert& a : alerts) {
    if (a.true_positive) tp.push_back(a.score);
  }
  std::sort(tp.begin(), tp.end(), std::greater<>());
  v.threshold = tp[std::max<size_t>(need, 1) - 1];
  for (const ScoredAlert& a : alerts) {
    if (a.score < v.threshold) continue;
    ++v.alerts_after;
    v.true_positives_kept += a.true_positive ? 1 : 0;
  }
  v.recall = static_cast<double>(v.true_positives_kept) / static_cast<double>(v.true_positives);
  v.removed_fraction =
      v.alerts_before == 0
          ? 0
          : 1.0 - static_cast<double>(v.alerts_after) / static_cast<double>(v.alerts_before);
  return v;
}

}  // namespace vigil::hub
