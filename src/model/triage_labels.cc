#include "model/triage_labels.h"
#include "core/files.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

namespace vigil::model {
namespace {

constexpr size_t kMaxLine = 1u << 20;
constexpr size_t kMaxFeaturesPerLine = 4096;
constexpr size_t kMaxFeatureNames = 65536;

}  // namespace

std::string_view TriageLabelName(TriageLabel label) {
  switch (label) {
    case TriageLabel::kTruePositive:
      return "true_positive";
    case TriageLabel::kFalsePositive:
      return "false_positive";
    case TriageLabel::kBenign:
      return "benign";
  }
  return "benign";
}

core::Result<std::vector<LabelRecord>> ParseTriageLabels(std::string_view text,
                                                         std::string_view source) {
  std::vector<LabelRecord> out;
  std::unordered_set<std::string> ids;
  std::set<std::string, std::less<>> names;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    auto bad = [&](const std::string& why) {
      return core::InvalidArgument(std::string(source) + ":" + std::to_string(line_no) + ": " +
                                   why);
    };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (line.size() > kMaxLine) return bad("line longer than 1 MiB");
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return bad("not valid JSON");
    if (!j.is_object()) return bad("not a JSON object");
    LabelRecord r;
    r.line = line_no;
    const auto id = j.find("id");
    if (id == j.end()) return bad("missing \"id\"");
    if (!id->is_string() || id->get_ref<const std::string&>().empty()) {
      return bad("\"id\" must be a non-empty string");
    }
    r.id = id->get<std::string>();
    if (!ids.insert(r.id).second) return bad("duplicate id \"" + r.id + "\"");
    const auto label = j.find("label");
    if (label == j.end()) return bad("missing \"label\"");
    if (!label->is_string()) return bad("\"label\" must be a string");
    const std::string& l = label->get_ref<const std::string&>();
    if (l == "true_positive") {
      r.label = TriageLabel::kTruePositive;
    } else if (l == "false_positive") {
      r.label = TriageLabel::kFalsePositive;
    } else if (l == "benign") {
      r.label = TriageLabel::kBenign;
    } else {
      return bad("\"label\" is \"" + l + "\"; expected true_positive, false_positive or benign");
    }
    const auto features = j.find("features");
    if (features != j.end()) {
      if (!features->is_object()) return bad("\"features\" must be an object");
      if (features->size() > kMaxFeaturesPerLine) return bad("more than 4096 features");
      for (const auto& [name, value] : features->items()) {
        if (name.empty() || name.size() > 256) {
          return bad("feature names must be 1..256 bytes long");
        }
        if (value.is_null()) {
          r.features.emplace(name, std::nullopt);
        } else if (value.is_number()) {
          const double v = value.get<double>();
          if (!std::isfinite(v) || std::fabs(v) > 3.0e38) {
            return bad("feature \"" + name + "\" is not a finite float");
          }
          r.features.emplace(name, v);
        } else {
          return bad("feature \"" + name + "\" must be a number or null");
        }
        if (names.insert(name).second && names.size() > kMaxFeatureNames) {
          return bad("more than 65536 distinct feature names in the file");
        }
      }
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return core::InvalidArgument(std::string(source) + ": no labelled records");
  return out;
}

core::Result<std::vector<LabelRecord>> LoadTriageLabels(const std::string& path) {
  auto text = core::ReadFile(path, uint64_t{1} << 30);
  if (!text.has_value()) return text.error().WithContext("labels file");
  return ParseTriageLabels(*text, path);
}

core::Result<FeatureTable> LabelTable(const std::vector<LabelRecord>& records) {
  std::set<std::string> names;
  for (const LabelRecord& r : records) {
    for (const auto& [name, value] : r.features) names.insert(name);
  }
  if (names.empty()) return core::InvalidArgument("no record gives any feature");
  FeatureTable t;
  t.names.assign(names.begin(), names.end());
  t.values.assign(records.size() * t.names.size(), kMissingFeature);
  t.labels.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    for (const auto& [name, value] : records[i].features) {
      if (!value.has_value()) continue;
      const auto it = std::lower_bound(t.names.begin(), t.names.end(), name);
      t.values[i * t.names.size() + static_cast<size_t>(it - t.names.begin())] =
          static_cast<float>(*value);
    }
    t.labels.push_back(IsPositive(records[i].label) ? 1.0f : 0.0f);
  }
  return t;
}

}  // namespace vigil::model
