#pragma once

// Analysts' adjudications for the triage family, as JSONL (spec: docs/triage-labels.md): one
// JSON object per line,
//
//   {"id": "Attack_Data_Master/Adduser_1/UAD-Adduser-1-2.txt", "label": "true_positive",
//    "features": {"ngram.score": 0.93, "uid": 0}}
//
// "id" (non-empty string, unique in the file) names the alert or trace; "label" is
// "true_positive", "false_positive" or "benign"; "features" (optional) maps feature names to
// finite numbers or null (missing). Other keys are allowed and ignored. Blank lines are skipped.
// Every other line that is not such an object is an error "FILE:LINE: reason".

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/triage.h"

namespace vigil::model {

enum class TriageLabel : uint8_t { kTruePositive, kFalsePositive, kBenign };

std::string_view TriageLabelName(TriageLabel label);
// True positives are the positive class; false positives and benign items the negative one.
inline bool IsPositive(TriageLabel label) { return label == TriageLabel::kTruePositive; }

struct LabelRecord {
  std::string id;
  TriageLabel label = TriageLabel::kBenign;
  std::map<std::string, std::optional<double>> features;  // nullopt: given as null (missing)
  size_t line = 0;                                        // 1-based line in the file
};

// Parses the whole text; `source` names the input in errors. Lines may end in "\n" or "\r\n".
// Limits: 1 MiB per line, 4096 features per line, 65536 distinct feature names per file.
core::Result<std::vector<LabelRecord>> ParseTriageLabels(std::string_view text,
                                                         std::string_view source);
// Reads and parses a file (kNotFound when it cannot be opened).
core::Result<std::vector<LabelRecord>> LoadTriageLabels(const std::string& path);

// The records as a training table: columns are every feature name in the records, sorted;
// a feature a record lacks (or gives as null) is missing. Fails when no record has a feature.
core::Result<FeatureTable> LabelTable(const std::vector<LabelRecord>& records);

}  // namespace vigil::model
