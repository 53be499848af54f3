// libFuzzer target for the model file header records that monitoring reads back: the
// calibration record and the drift reference (model/calibration.h, model/drift.h). A model file
// with a valid checksum can still carry a hostile header, so the bytes are parsed as the header
// JSON directly. Whatever loads is used: a drift monitor is built from the reference and fed
// values, including NaN and infinities. Errors must carry a message; nothing may crash or throw.
// Seeds: tests/fuzz/corpus/model_header/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "model/calibration.h"
#include "model/drift.h"

namespace {

void CheckError(const vigil::core::Status& s) {
  if (s.ok() || s.message().empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const nlohmann::json header = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return 0;
  auto record = vigil::model::TrainingRecord::ReadFrom(header, "fuzz.vmdl");
  if (!record.has_value()) {
    CheckError(record.error());
    return 0;
  }
  if (record->calibration.has_value()) {
    nlohmann::json back = nlohmann::json::object();
    vigil::model::CalibrationToJson(*record->calibration, back);
    if (!vigil::model::CalibrationFromJson(back, "again").has_value()) __builtin_trap();
  }
  if (record->drift.empty()) return 0;
  vigil::core::Registry registry;
  vigil::model::DriftMonitorOptions options;
  options.model = "fuzz";
  options.min_samples = 1;
  options.registry = &registry;
  auto monitor = vigil::model::DriftMonitor::Create(record->drift, options);
  if (!monitor.has_value()) {
    CheckError(monitor.error());
    return 0;
  }
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (double v : {0.0, 0.5, 1.0, -1e300, 1e300, kInf, -kInf, std::nan("")}) {
    (*monitor)->ObserveScore(v);
    const float row[8] = {static_cast<float>(v), 1, 2, 3, 4, 5, 6, 7};
    (*monitor)->ObserveFeatures(row);
  }
  const vigil::model::DriftReport report = (*monitor)->Evaluate();
  if (record->drift.score.has_value() && std::isnan(report.score_psi)) __builtin_trap();
  return 0;
}
