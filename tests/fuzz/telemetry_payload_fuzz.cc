// libFuzzer target for the gateway's MQTT telemetry payload check (gateway/telemetry_schema.h):
// any bytes against a schema with every signal type, a range, units and a JSON-pointer field.
// An accepted payload yields one finite, in-range value per signal (booleans 0/1, integers
// whole); a refused one yields no values and a printable reason.
// Seeds: tests/fuzz/corpus/telemetry/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/telemetry_schema.h"

namespace {

vigil::gateway::TopicSchema MakeSchema() {
  using vigil::gateway::SignalSchema;
  using vigil::gateway::SignalType;
  vigil::gateway::TopicSchema t;
  t.topic = "ctown/tanks";
  SignalSchema level{"L_T1", "", SignalType::kNumber, 0, 10, "m"};
  SignalSchema pump{"S_PU1", "/pumps/PU1", SignalType::kBool};
  SignalSchema count{"N", "n", SignalType::kInteger, -5, 5, ""};
  t.signals = {level, pump, count};
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vigil::gateway::TopicSchema schema = MakeSchema();
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const vigil::gateway::PayloadCheck c = vigil::gateway::ValidatePayload(schema, payload);
  if (c.error == vigil::gateway::PayloadError::kNone) {
    if (c.values.size() != schema.signals.size()) __builtin_trap();
    for (size_t i = 0; i < c.values.size(); ++i) {
      const auto& s = schema.signals[i];
      const double v = c.values[i].second;
      if (c.values[i].first != s.name || !std::isfinite(v) || v < s.min || v > s.max) {
        __builtin_trap();
      }
      if (s.type == vigil::gateway::SignalType::kBool && v != 0 && v != 1) __builtin_trap();
      if (s.type == vigil::gateway::SignalType::kInteger && v != std::floor(v)) __builtin_trap();
    }
  } else {
    if (!c.values.empty() || c.detail.empty()) __builtin_trap();
    for (char ch : c.detail) {
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
