// libFuzzer target for the triage labels parser (outside input: `vigil train --labels FILE`,
// adjudications from people or the hub). Any bytes must give either records or an error that
// names the input and line; records that parse must build a table whose shape matches them.
// Seeds: tests/fuzz/corpus/triage_labels/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/triage_labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto records = vigil::model::ParseTriageLabels(text, "fuzz.jsonl");
  if (!records.has_value()) {
    if (records.error().message().rfind("fuzz.jsonl:", 0) != 0) __builtin_trap();
    return 0;
  }
  for (const auto& r : *records) {
    if (r.id.empty() || r.line == 0) __builtin_trap();
  }
  auto table = vigil::model::LabelTable(*records);
  if (!table.has_value()) return 0;
  if (table->values.size() != table->rows() * table->names.size()) __builtin_trap();
  if (table->rows() != records->size()) __builtin_trap();
  for (float v : table->values) {
    if (std::isinf(v)) __builtin_trap();
  }
  return 0;
}
