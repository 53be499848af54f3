#pragma once

// The threshold and [0,1] score map of a family calibrated on normal traces it did not train
// on (the recurrent model and ensembles): the threshold is the raw score that `target_fpr` of
// those traces reach (at least `min_margin` above their median), and score(raw) =
// 1 / (1 + exp(-(raw - threshold) / scale)) puts the threshold at 0.5 and the median at 0.05.

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/internal/bytes.h"

namespace vigil::model {

struct HeldOutCalibration {
  double threshold = 0.0;     // raw score at which a stream is anomalous
  double scale = 1.0;         // logistic scale of the score map, > 0
  double median = 0.0;        // median raw score of the calibration traces
  double achieved_fpr = 0.0;  // share of the calibration traces at or above the threshold
  uint64_t traces = 0;        // calibration traces
};

HeldOutCalibration CalibrateHeldOut(std::vector<double> normal_raw, double target_fpr,
                                    double min_margin);
double LogisticScore(const HeldOutCalibration& c, double raw);
// Finite threshold and a positive, finite scale.
bool IsValid(const HeldOutCalibration& c);
// {"threshold", "achieved_fpr", "median", "traces"} for model headers.
nlohmann::json ToJson(const HeldOutCalibration& c);
// Payload form: f64 threshold, f64 scale, f64 median, f64 achieved_fpr, u64 traces.
void PutCalibration(internal::ByteWriter* w, const HeldOutCalibration& c);
bool GetCalibration(internal::ByteReader* r, HeldOutCalibration* c);

}  // namespace vigil::model
