#include "gateway/telemetry_schema.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vigil::gateway {
namespace {

// Payload text in a diagnostic: printable ASCII kept, other bytes as \xNN, long text cut.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 48; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    out += (u >= 0x20 && u < 0x7f) ? std::string(1, s[i]) : fmt::format("\\x{:02x}", u);
  }
  return s.size() > 48 ? out + "..." : out;
}

std::string_view KindOf(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

PayloadCheck Refuse(PayloadError e, std::string detail) {
  PayloadCheck c;
  c.error = e;
  c.detail = std::move(detail);
  return c;
}

// The field's JSON value, or null when absent.
const nlohmann::json* Lookup(const nlohmann::json& doc, const std::string& field) {
  if (field.empty() || field[0] != '/') {
    auto it = doc.find(field);
    return it == doc.end() ? nullptr : &*it;
  }
  try {
    const nlohmann::json::json_pointer ptr(field);
    if (!doc.contains(ptr)) return nullptr;
    return &doc.at(ptr);
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // a pointer through an array with a non-number token, ...
  }
}

}  // namespace

std::string_view SignalTypeName(SignalType t) {
  switch (t) {
    case SignalType::kNumber: return "number";
    case SignalType::kInteger: return "integer";
    case SignalType::kBool: return "bool";
  }
  return "number";
}

std::string_view PayloadErrorName(PayloadError e) {
  switch (e) {
    case PayloadError::kNone: return "none";
    case PayloadError::kTooLarge: return "too-large";
    case PayloadError::kNotJson: return "not-json";
    case PayloadError::kNotObject: return "not-object";
    case PayloadError::kMissing: return "missing";
    case PayloadError::kType: return "type";
    case PayloadError::kRange: return "range";
    case PayloadError::kUnits: return "units";
    case PayloadError::kUnknownTopic: return "unknown-topic";
  }
  return "none";
}

bool ValidFieldName(std::string_view field) {
  if (field.empty() || field.find('\0') != std::string_view::npos) return false;
  if (field[0] != '/') return true;
  try {
    const nlohmann::json::json_pointer ptr{std::string(field)};
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

PayloadCheck ValidatePayload(const TopicSchema& schema, std::string_view payload) {
  if (payload.size() > kMaxTelemetryPayload) {
    return Refuse(PayloadError::kTooLarge,
                  fmt::format("{} bytes (at most {})", payload.size(), kMaxTelemetryPayload));
  }
  const nlohmann::json doc = nlohmann::json::parse(payload.begin(), payload.end(), nullptr,
                                                   /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Refuse(PayloadError::kNotJson, fmt::format("not JSON: \"{}\"", Printable(payload)));
  }
  if (!doc.is_object()) {
    return Refuse(PayloadError::kNotObject, fmt::format("expected a JSON object, got {}",
                                                        KindOf(doc)));
  }
  PayloadCheck out;
  out.values.reserve(schema.signals.size());
  for (const SignalSchema& s : schema.signals) {
    const std::string& field = s.field.empty() ? s.name : s.field;
    const nlohmann::json* v = Lookup(doc, field);
    if (v == nullptr) return Refuse(PayloadError::kMissing, fmt::format("{}: no field", field));
    if (v->is_object()) {
      auto unit = v->find("unit");
      if (unit != v->end()) {
        if (!unit->is_string()) {
          return Refuse(PayloadError::kType,
                        fmt::format("{}.unit: expected a string, got {}", field, KindOf(*unit)));
        }
        const auto& given = unit->get_ref<const std::string&>();
        if (!s.units.empty() && given != s.units) {
          return Refuse(PayloadError::kUnits, fmt::format("{}: unit \"{}\", expected \"{}\"",
                                                          field, Printable(given), s.units));
        }
      }
      auto value = v->find("value");
      if (value == v->end()) {
        return Refuse(PayloadError::kMissing, fmt::format("{}.value: no field", field));
      }
      v = &*value;
    }
    double x = 0;
    if (s.type == SignalType::kBool && v->is_boolean()) {
      x = v->get<bool>() ? 1.0 : 0.0;
    } else if (v->is_number()) {
      x = v->get<double>();
      if (!std::isfinite(x)) {
        return Refuse(PayloadError::kRange, fmt::format("{}: not a finite number", field));
      }
      if (s.type == SignalType::kInteger && x != std::floor(x)) {
        return Refuse(PayloadError::kType, fmt::format("{}: {} is not an integer", field, x));
      }
      if (s.type == SignalType::kBool && x != 0 && x != 1) {
        return Refuse(PayloadError::kType,
                      fmt::format("{}: {} is not a boolean (true, false, 0 or 1)", field, x));
      }
    } else {
      return Refuse(PayloadError::kType, fmt::format("{}: expected {}, got {}", field,
                                                     SignalTypeName(s.type), KindOf(*v)));
    }
    if (x < s.min || x > s.max) {
      return Refuse(PayloadError::kRange,
                    fmt::format("{}: {} outside [{}, {}]", field, x, s.min, s.max));
    }
    out.values.emplace_back(s.name, x);
  }
  return out;
}

}  // namespace vigil::gateway
