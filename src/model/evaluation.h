#pragma once

// Detection metrics over scored examples: ROC AUC and the true-positive rate reached at a given
// false-positive rate. Ties are handled exactly (AUC counts a tie as half a win; the TPR at a
// target FPR uses the threshold whose FPR does not exceed the target).

#include <span>

namespace vigil::model {

struct Scored {
  double score = 0.0;  // higher means more anomalous
  bool positive = false;
};

// Area under the ROC curve; 0.5 when either class is empty.
double RocAuc(std::span<const Scored> examples);

// Highest TPR at any threshold whose FPR <= max_fpr (e.g. 0.05); 0 when no positive exists.
double TprAtFpr(std::span<const Scored> examples, double max_fpr);

// The score threshold at which the FPR on `normal_scores` is at most `fpr`: the smallest value t
// such that the fraction of normal scores >= t is <= fpr (fpr is clamped to [0,1]; +inf when
// `normal_scores` is empty). Used to calibrate thresholds.
double ThresholdForFpr(std::span<const double> normal_scores, double fpr);

}  // namespace vigil::model
