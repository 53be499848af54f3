#pragma once

// The schema of the gateway's MQTT telemetry (docs/gateway.md, "Telemetry payloads"): per topic,
// the signals its payloads carry, each with the JSON field it is read from, its type, allowed
// range and units. ValidatePayload checks one payload against its topic's schema and yields the
// readings, or the first reason the payload is refused. A payload is taken whole or not at all.
//
// Payload: a JSON object (at most kMaxTelemetryPayload bytes). Each signal's field holds either
// the bare value or {"value": V, "unit": "U"}; a unit, when the payload gives one, must equal the
// configured units. Fields the schema does not name are ignored.
//
// Depends on nlohmann-json and fmt only (the fuzz target compiles this file alone).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigil::gateway {

inline constexpr size_t kMaxTelemetryPayload = 64 * 1024;

// number: any finite number; integer: a number with no fraction; bool: true/false or 0/1 (read
// as 0 or 1).
enum class SignalType : uint8_t { kNumber, kInteger, kBool };
std::string_view SignalTypeName(SignalType t);  // "number", "integer", "bool"

struct SignalSchema {
  std::string name;   // the plant-state signal it sets (e.g. "L_T1")
  std::string field;  // the payload key it is read from; "/a/b" is a JSON pointer. Default: name
  SignalType type = SignalType::kNumber;
  double min = -std::numeric_limits<double>::max();
  double max = std::numeric_limits<double>::max();
  std::string units;  // empty: a unit in the payload is not checked
};

struct TopicSchema {
  std::string topic;  // an MQTT subscription; may hold + and # wildcards
  std::vector<SignalSchema> signals;
};

// Why a payload was refused. Counted per reason (vigil_gateway_telemetry_rejected_total).
enum class PayloadError : uint8_t {
  kNone,
  kTooLarge,    // over kMaxTelemetryPayload bytes
  kNotJson,     // not valid JSON (or not UTF-8)
  kNotObject,   // valid JSON but not an object
  kMissing,     // a schema field is absent
  kType,        // a value of the wrong type (a string for a number, 2.5 for an integer, ...)
  kRange,       // a value outside [min, max], or not finite
  kUnits,       // the payload's unit differs from the configured one
  kUnknownTopic,  // no schema for the topic (a wildcard subscription matched something else)
};
inline constexpr size_t kPayloadErrors = 9;
std::string_view PayloadErrorName(PayloadError e);  // "none", "too-large", "not-json", ...

struct PayloadCheck {
  PayloadError error = PayloadError::kNone;
  std::string detail;  // for a refusal: "L_T1: 12.5 outside [0, 10]" (printable ASCII)
  std::vector<std::pair<std::string, double>> values;  // every signal of the topic when accepted
};

// Checks `payload` against `schema`. Never throws.
PayloadCheck ValidatePayload(const TopicSchema& schema, std::string_view payload);

// Whether `field` is usable as a SignalSchema::field (a plain key, or a valid JSON pointer).
bool ValidFieldName(std::string_view field);

}  // namespace vigil::gateway
