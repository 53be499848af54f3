#include "model/held_out_calibration.h"

#include <algorithm>
#include <cmath>

#include "model/evaluation.h"

namespace vigil::model {

HeldOutCalibration CalibrateHeldOut(std::vector<double> normal_raw, double target_fpr,
                                    double min_margin) {
  HeldOutCalibration c;
  c.traces = normal_raw.size();
  std::sort(normal_raw.begin(), normal_raw.end());
  if (!normal_raw.empty()) {
    const double pos = 0.5 * static_cast<double>(normal_raw.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, normal_raw.size() - 1);
    c.median = normal_raw[lo] + (normal_raw[hi] - normal_raw[lo]) * (pos - static_cast<double>(lo));
  }
  c.threshold = std::max(ThresholdForFpr(normal_raw, target_fpr), c.median + min_margin);
  if (!std::isfinite(c.threshold)) c.threshold = c.median + std::max(min_margin, 1.0);
  size_t over = 0;
  for (double r : normal_raw) over += r >= c.threshold ? 1 : 0;
  c.achieved_fpr =
      normal_raw.empty() ? 0.0 : static_cast<double>(over) / static_cast<double>(normal_raw.size());
  // The median normal trace maps to 0.05: (median - threshold) / scale = ln(0.05 / 0.95).
  const double gap = c.threshold - c.median;
  c.scale = gap > 1e-6 ? gap / std::log(19.0) : std::max(0.05 * std::fabs(c.threshold), 1e-3);
  return c;
}

double LogisticScore(const HeldOutCalibration& c, double raw) {
  return 1.0 / (1.0 + std::exp(-(raw - c.threshold) / c.scale));
}

bool IsValid(const HeldOutCalibration& c) {
  return std::isfinite(c.threshold) && std::isfinite(c.scale) && c.scale > 0;
}

nlohmann::json ToJson(const HeldOutCalibration& c) {
  return {{"threshold", c.threshold},
          {"achieved_fpr", c.achieved_fpr},
          {"median", c.median},
          {"traces", c.traces}};
}

void PutCalibration(internal::ByteWriter* w, const HeldOutCalibration& c) {
  w->F64(c.threshold);
  w->F64(c.scale);
  w->F64(c.median);
  w->F64(c.achieved_fpr);
  w->U64(c.traces);
}

bool GetCalibration(internal::ByteReader* r, HeldOutCalibration* c) {
  return r->F64(&c->threshold) && r->F64(&c->scale) && r->F64(&c->median) &&
         r->F64(&c->achieved_fpr) && r->U64(&c->traces);
}

}  // namespace vigil::model
