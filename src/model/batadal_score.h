#pragma once

// The BATADAL ranking score (Taormina et al. 2018, "Battle of the Attack Detection Algorithms",
// J. Water Resour. Plann. Manage. 144(8)); the definitions and the choices below are written
// down in docs/batadal.md.
//
//   S     = gamma * S_TTD + (1 - gamma) * S_CM,  gamma = 0.5
//   S_TTD = 1 - (1 / n_attacks) * sum_i TTD_i / dT_i
//   S_CM  = (TPR + TNR) / 2
//
// Time is counted in rows (hours). Attack i is a maximal run of rows carrying the same non-zero
// attack id; dT_i is its length in rows. TTD_i is the offset, inside the run, of the first row
// with an alarm (0 when the first attack hour is flagged); alarms before the run starts or after
// it ends do not count, and an attack with no alarm inside its run has TTD_i = dT_i. TPR and TNR
// are computed over every row: TP/FN over attack rows, TN/FP over the others.

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace vigil::model {

inline constexpr double kBatadalGamma = 0.5;

struct AttackDetection {
  int id = 0;                // the attack id of the run
  size_t start = 0;          // first row of the run
  size_t duration = 0;       // dT, rows
  bool detected = false;
  size_t time_to_detection = 0;  // TTD, rows; == duration when not detected
  size_t hours_flagged = 0;      // rows of the run with an alarm
  double ratio() const {
    return static_cast<double>(time_to_detection) / static_cast<double>(duration);
  }
};

struct BatadalScore {
  double s = 0, s_ttd = 0, s_cm = 0, tpr = 0, tnr = 0;
  uint64_t tp = 0, fn = 0, tn = 0, fp = 0;
  std::vector<AttackDetection> attacks;  // in order of their start
};

// Attack runs of `attack_id` (0 = normal row): each maximal run of one non-zero id.
std::vector<AttackDetection> AttackRuns(std::span<const int> attack_id);

// Scores binary alarms against per-row attack ids. kInvalidArgument when the spans differ in
// length, when there is no attack row or no normal row (TPR or TNR would be undefined), or when
// gamma is outside [0, 1].
core::Result<BatadalScore> ComputeBatadalScore(std::span<const int> attack_id,
                                               std::span<const uint8_t> alarms,
                                               double gamma = kBatadalGamma);

}  // namespace vigil::model
