#include "model/batadal_score.h"

#include <string>

namespace vigil::model {

std::vector<AttackDetection> AttackRuns(std::span<const int> attack_id) {
  std::vector<AttackDetection> runs;
  for (size_t i = 0; i < attack_id.size(); ++i) {
    if (attack_id[i] == 0) continue;
    if (i > 0 && attack_id[i - 1] == attack_id[i]) {
      ++runs.back().duration;
      continue;
    }
    AttackDetection a;
    a.id = attack_id[i];
    a.start = i;
    a.duration = 1;
    runs.push_back(a);
  }
  return runs;
}

core::Result<BatadalScore> ComputeBatadalScore(std::span<const int> attack_id,
                                               std::span<const uint8_t> alarms, double gamma) {
  if (attack_id.size() != alarms.size()) {
    return core::InvalidArgument("BATADAL score: " + std::to_string(alarms.size()) +
                                 " alarms for " + std::to_string(attack_id.size()) +
                                 " labelled rows");
  }
  if (!(gamma >= 0.0 && gamma <= 1.0)) {
    return core::InvalidArgument("BATADAL score: gamma must be in [0, 1]");
  }
  BatadalScore out;
  for (size_t i = 0; i < alarms.size(); ++i) {
    const bool attack = attack_id[i] != 0;
    const bool alarm = alarms[i] != 0;
    if (attack) {
      (alarm ? out.tp : out.fn) += 1;
    } else {
      (alarm ? out.fp : out.tn) += 1;
    }
  }
  if (out.tp + out.fn == 0) return core::InvalidArgument("BATADAL score: no attack rows");
  if (out.tn + out.fp == 0) return core::InvalidArgument("BATADAL score: no normal rows");
  out.tpr = static_cast<double>(out.tp) / static_cast<double>(out.tp + out.fn);
  out.tnr = static_cast<double>(out.tn) / static_cast<double>(out.tn + out.fp);
  out.s_cm = (out.tpr + out.tnr) / 2.0;

  out.attacks = AttackRuns(attack_id);
  double sum = 0;
  for (AttackDetection& a : out.attacks) {
    a.time_to_detection = a.duration;
    for (size_t k = 0; k < a.duration; ++k) {
      if (alarms[a.start + k] == 0) continue;
      if (!a.detected) {
        a.detected = true;
        a.time_to_detection = k;
      }
      ++a.hours_flagged;
    }
    sum += a.ratio();
  }
  out.s_ttd = 1.0 - sum / static_cast<double>(out.attacks.size());
  out.s = gamma * out.s_ttd + (1.0 - gamma) * out.s_cm;
  return out;
}

}  // namespace vigil::model
