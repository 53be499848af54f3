// libFuzzer target for the "triage" model payload (outside input: model files given to
// `vigil eval`, the agent's loader). The container's SHA-256 keeps random mutations from
// reaching the payload parser through a whole file, yet a file with a valid checksum can still
// hold a hostile payload, so the bytes are fed directly as the payload of an intact container:
// the field checks and ValidateXgbModel must refuse anything XGBoost could misread. Every model
// that loads scores a short stream and a row. Seeds: tests/fuzz/corpus/triage_model/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_file.h"
#include "model/triage.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::model::ModelFile file;
  file.header = {{"family", "triage"}, {"name", "fuzz"}, {"version", "1"}};
  file.payload.assign(reinterpret_cast<const char*>(data), size);
  auto model = vigil::model::TriageModel::FromFile(file, "fuzz-payload");
  if (!model.has_value()) {
    if (model.error().message().empty()) __builtin_trap();
    return 0;
  }
  static constexpr int32_t kSyscalls[] = {3, 5, 6, 192, 195, 3, 3, 11, 0, -1, 511, 340, 5, 5};
  auto stream = (*model)->NewStream("");
  stream->ObserveSyscalls(vigil::core::Arch::kI386, kSyscalls);
  const vigil::core::Verdict v = stream->Current();
  if (std::isnan(v.score) || v.score < 0.0 || v.score > 1.0) __builtin_trap();
  std::vector<float> row((*model)->feature_names().size(), 0.5f);
  auto s = (*model)->ScoreRows(row, 1);
  if (s.has_value() && (std::isnan((*s)[0]) || (*s)[0] < 0.0f || (*s)[0] > 1.0f)) __builtin_trap();
  return 0;
}
