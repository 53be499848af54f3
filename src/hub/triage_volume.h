#pragma once

// How much alert volume a triage model removes at a fixed recall (docs/hub.md, "Triage"): given
// each labelled alert's triage score and whether it was a true positive, the highest threshold
// that keeps at least `recall` of the true positives, and how many alerts that threshold keeps.
// An alert is kept when its score >= threshold.

#include <cstddef>
#include <vector>

#include "core/status.h"

namespace vigil::hub {

struct ScoredAlert {
  double score = 0;
  bool true_positive = false;
};

struct TriageVolume {
  double recall_target = 0;
  double threshold = 0;
  double recall = 0;  // achieved: true positives kept / true positives
  size_t alerts_before = 0, alerts_after = 0;
  size_t true_positives = 0, true_positives_kept = 0;
  double removed_fraction = 0;  // 1 - after / before
};

// kInvalidArgument when recall is not in (0, 1] or no alert is a true positive.
core::Result<TriageVolume> VolumeAtRecall(std::vector<ScoredAlert> alerts, double recall);

}  // namespace vigil::hub
