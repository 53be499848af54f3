#include "model/calibration.h"

#include <openssl/evp.h>

#include <cmath>

#include "model/evaluation.h"

namespace vigil::model {

core::Result<CalibrationRecord> CalibrateThreshold(std::span<const double> normal_scores,
                                                   double target_fpr, std::string method,
                                                   std::string digest) {
  if (normal_scores.empty()) return core::InvalidArgument("calibration: no normal scores");
  if (!(target_fpr > 0.0 && target_fpr < 1.0)) {
    return core::InvalidArgument("calibration: target false-alarm rate must be in (0, 1)");
  }
  for (size_t i = 0; i < normal_scores.size(); ++i) {
    if (!std::isfinite(normal_scores[i])) {
      return core::InvalidArgument("calibration: score " + std::to_string(i) + " is not finite");
    }
  }
  CalibrationRecord r;
  r.method = std::move(method);
  r.digest = std::move(digest);
  r.target_fpr = target_fpr;
  r.samples = normal_scores.size();
  r.threshold = ThresholdForFpr(normal_scores, target_fpr);
  r.achieved_fpr = FalseAlarmRate(normal_scores, r.threshold);
  return r;
}

double FalseAlarmRate(std::span<const double> scores, double threshold) {
  if (scores.empty()) return 0.0;
  size_t over = 0;
  for (double s : scores) over += s >= threshold ? 1 : 0;
  return static_cast<double>(over) / static_cast<double>(scores.size());
}

void CalibrationToJson(const CalibrationRecord& r, nlohmann::json& out) {
  if (!out.is_object()) out = nlohmann::json::object();
  out["method"] = r.method;
  out["unit"] = r.unit;
  out["threshold"] = r.threshold;
  out["target_fpr"] = r.target_fpr;
  out["achieved_fpr"] = r.achieved_fpr;
  out["samples"] = r.samples;
  out["digest"] = r.digest;
}

core::Result<CalibrationRecord> CalibrationFromJson(const nlohmann::json& j,
                                                    std::string_view source) {
  auto bad = [&](const std::string& why) {
    return core::DataLoss(std::string(source) + ": header \"calibration\": " + why);
  };
  if (!j.is_object()) return bad("not an object");
  CalibrationRecord r;
  auto str = [&](const char* key, std::string* out) -> bool {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  auto num = [&](const char* key, double* out) -> bool {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return false;
    *out = it->get<double>();
    return true;
  };
  const std::pair<const char*, std::string*> strings[] = {
      {"method", &r.method}, {"unit", &r.unit}, {"digest", &r.digest}};
  for (const auto& [key, dst] : strings) {
    if (!str(key, dst)) return bad(std::string("\"") + key + "\" is missing or not a string");
  }
  const std::pair<const char*, double*> numbers[] = {
      {"threshold", &r.threshold}, {"target_fpr", &r.target_fpr},
      {"achieved_fpr", &r.achieved_fpr}};
  for (const auto& [key, dst] : numbers) {
    if (!num(key, dst)) return bad(std::string("\"") + key + "\" is missing or not a number");
  }
  auto samples = j.find("samples");
  if (samples == j.end() || !samples->is_number_unsigned()) {
    return bad("\"samples\" is missing or not a non-negative integer");
  }
  r.samples = samples->get<uint64_t>();
  if (!std::isfinite(r.threshold)) return bad("\"threshold\" is not finite");
  if (!(r.target_fpr >= 0.0 && r.target_fpr <= 1.0)) return bad("\"target_fpr\" is not in [0, 1]");
  if (!(r.achieved_fpr >= 0.0 && r.achieved_fpr <= 1.0)) {
    return bad("\"achieved_fpr\" is not in [0, 1]");
  }
  return r;
}

void TrainingRecord::WriteTo(nlohmann::json& header) const {
  if (!header.is_object()) header = nlohmann::json::object();
  if (calibration.has_value()) {
    nlohmann::json& c = header["calibration"];
    CalibrationToJson(*calibration, c);
  }
  if (!drift.empty()) header["drift_reference"] = drift.ToJson();
}

core::Result<TrainingRecord> TrainingRecord::ReadFrom(const nlohmann::json& header,
                                                      std::string_view source) {
  TrainingRecord r;
  if (!header.is_object()) return r;
  auto c = header.find("calibration");
  if (c != header.end() && c->is_object() && c->contains("digest")) {
    VIGIL_ASSIGN_OR_RETURN(r.calibration, CalibrationFromJson(*c, source));
  }
  VIGIL_ASSIGN_OR_RETURN(r.drift, DriftReference::FromHeader(header, source));
  return r;
}

struct DatasetDigest::Ctx {
  EVP_MD_CTX* md = nullptr;
};

DatasetDigest::DatasetDigest() : ctx_(new Ctx) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

DatasetDigest::~DatasetDigest() {
  EVP_MD_CTX_free(ctx_->md);
  delete ctx_;
}

void DatasetDigest::Raw(const void* data, size_t n) {
  const uint64_t len = n;
  EVP_DigestUpdate(ctx_->md, &len, sizeof(len));
  if (n > 0) EVP_DigestUpdate(ctx_->md, data, n);
}

void DatasetDigest::Add(std::string_view bytes) { Raw(bytes.data(), bytes.size()); }
void DatasetDigest::Add(std::span<const int32_t> values) { Raw(values.data(), values.size_bytes()); }
void DatasetDigest::Add(std::span<const float> values) { Raw(values.data(), values.size_bytes()); }
void DatasetDigest::Add(uint64_t value) { Raw(&value, sizeof(value)); }
void DatasetDigest::AddUnframed(std::string_view bytes) {
  EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size());
}

std::string DatasetDigest::Final() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, md, &n);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

TrainingRecord CrossFittedRecord(std::span<const TrainingTrace> traces, std::string unit,
                                 double threshold, double target_fpr, double achieved_fpr,
                                 std::span<const double> oof_scores) {
  DatasetDigest digest;
  for (const TrainingTrace& t : traces) {
    digest.Add(t.subject);
    digest.Add(static_cast<uint64_t>(t.arch));
    digest.Add(std::span<const int32_t>(t.syscalls));
  }
  CalibrationRecord record;
  record.method = "cross-fitted";
  record.unit = std::move(unit);
  record.threshold = threshold;
  record.target_fpr = target_fpr;
  record.achieved_fpr = achieved_fpr;
  record.samples = oof_scores.size();
  record.digest = digest.Final();
  TrainingRecord out;
  out.calibration = std::move(record);
  if (auto h = ReferenceHistogram::FromSamples(oof_scores); h.has_value()) {
    out.drift.score = std::move(h).value();
  }
  return out;
}

}  // namespace vigil::model
