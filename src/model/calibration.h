#pragma once

// Calibration records: a threshold set on normal scores to a target false-alarm rate, with the
// digest of the set it was set on and the rate it reached there. Families write the record into
// their model file header as the "calibration" object (docs/model-file-format.md):
//
//   "calibration": {"method": "held-out", "unit": "score", "threshold": 0.61,
//                   "target_fpr": 0.05, "achieved_fpr": 0.0497, "samples": 1207,
//                   "digest": "sha256:<64 hex>", ...family-specific keys...}
//
// `achieved_fpr` is the share of the calibration scores at or above the threshold; it can sit
// below the target when ties or a small set make the target unreachable, never above it.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/drift.h"
#include "model/features.h"

namespace vigil::model {

struct CalibrationRecord {
  std::string method;        // how the calibration scores were obtained: "held-out", ...
  std::string unit = "score";  // what the threshold is measured in ("score", "bits/syscall")
  double threshold = 0.0;    // a sample scoring >= threshold is anomalous
  double target_fpr = 0.0;
  double achieved_fpr = 0.0;
  uint64_t samples = 0;      // calibration scores behind the threshold
  std::string digest;        // "sha256:<hex>" of the calibration set ("" when unknown)
};

// Sets the threshold so that at most `target_fpr` of `normal_scores` lie at or above it (see
// ThresholdForFpr) and records the achieved rate. kInvalidArgument for no scores, a non-finite
// score or a target outside (0, 1).
core::Result<CalibrationRecord> CalibrateThreshold(std::span<const double> normal_scores,
                                                   double target_fpr, std::string method,
                                                   std::string digest);

// Share of `scores` at or above `threshold` (0 for none).
double FalseAlarmRate(std::span<const double> scores, double threshold);

// Writes the record's keys into `out` (an object; other keys are kept).
void CalibrationToJson(const CalibrationRecord& record, nlohmann::json& out);
// Reads a "calibration" object. kDataLoss "<source>: header "calibration": <why>" when a key is
// missing or of the wrong type, or a rate is outside [0, 1] or the threshold not finite.
core::Result<CalibrationRecord> CalibrationFromJson(const nlohmann::json& j,
                                                    std::string_view source);

// What training learnt about a model's normal scores, kept with the model so that a model read
// from a file writes the same header keys again: the calibration record (header "calibration")
// and the drift reference (header "drift_reference").
struct TrainingRecord {
  std::optional<CalibrationRecord> calibration;
  DriftReference drift;

  // Merges the record into `header`: the calibration keys into header["calibration"] (other
  // keys there are kept), the reference into header["drift_reference"] when it is not empty.
  void WriteTo(nlohmann::json& header) const;
  // Reads both from a model file header. A "calibration" object without a "digest" key (files
  // written before calibration records) gives no calibration; a malformed record or reference is
  // kDataLoss naming `source` and the key.
  static core::Result<TrainingRecord> ReadFrom(const nlohmann::json& header,
                                               std::string_view source);
};

// The record of a trace family calibrated by cross-fitting on its training traces: method
// "cross-fitted", the threshold in `unit`, the digest of every trace (subject, arch, calls) as
// the calibration set, and the drift reference of the out-of-fold scores (already mapped to
// [0, 1]; none when there are too few).
TrainingRecord CrossFittedRecord(std::span<const TrainingTrace> traces, std::string unit,
                                 double threshold, double target_fpr, double achieved_fpr,
                                 std::span<const double> oof_scores);

// Incremental SHA-256 (OpenSSL) of a data set, for calibration and training digests. Each Add
// is length-prefixed, so different splits of the same bytes give different digests.
class DatasetDigest {
 public:
  DatasetDigest();
  ~DatasetDigest();
  DatasetDigest(const DatasetDigest&) = delete;
  DatasetDigest& operator=(const DatasetDigest&) = delete;

  void Add(std::string_view bytes);
  void Add(std::span<const int32_t> values);
  void Add(std::span<const float> values);
  void Add(uint64_t value);
  // Appends `bytes` as they are, without a length prefix (digests defined over a byte stream).
  void AddUnframed(std::string_view bytes);
  // "sha256:<64 lower-case hex>"; the digest cannot be added to afterwards.
  std::string Final();

 private:
  void Raw(const void* data, size_t n);
  struct Ctx;
  Ctx* ctx_;
};

}  // namespace vigil::model
