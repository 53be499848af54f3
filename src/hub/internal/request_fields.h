#pragma once

// The field readers of the hub's nlohmann-based request parsers (hub/requests.cc: escalations,
// decisions, adjudications, missed detections; the tests' reference reading of ingest bodies,
// tests/unit/hub/ingest_reference.h). Every error names the field and the reason.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"
#include "hub/requests.h"

namespace vigil::hub::internal {

using nlohmann::json;

inline core::Status Bad(const std::string& field, std::string_view why) {
  return core::InvalidArgument(field + ": " + std::string(why));
}

inline json ParseObject(std::string_view body, core::Status* error) {
  if (body.size() > kMaxRequestBytes) {
    *error = core::InvalidArgument("request: body over 8 MiB");
    return {};
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = core::InvalidArgument("request: not valid JSON");
  } else if (!j.is_object()) {
    *error = core::InvalidArgument("request: not a JSON object");
  }
  return j;
}

// Optional string member, at most `max` bytes.
inline core::Status Text(const json& o, const char* key, const std::string& path, size_t max,
                         std::string* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_string()) return Bad(path + key, "expected a string");
  if (it->get_ref<const std::string&>().size() > max) {
    return Bad(path + key, "longer than " + std::to_string(max) + " bytes");
  }
  *out = it->get<std::string>();
  return {};
}

inline core::Status Integer(const json& o, const char* key, const std::string& path, int64_t lo,
                            int64_t hi, bool required, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    return required ? Bad(path + key, "missing") : core::Status();
  }
  if (!it->is_number_integer()) return Bad(path + key, "expected an integer");
  const bool is_unsigned = it->is_number_unsigned();
  const bool in_range = is_unsigned
                            ? it->get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                  (lo <= 0 || it->get<uint64_t>() >= static_cast<uint64_t>(lo))
                            : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
  if (!in_range) {
    return Bad(path + key, "out of range " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  *out = is_unsigned ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>();
  return {};
}

inline core::Status SchemaVersion(const json& o) {
  auto it = o.find("schema_version");
  if (it == o.end()) return {};
  if (!it->is_string() || it->get_ref<const std::string&>() != kHubSchemaVersion) {
    return Bad("schema_version", "expected \"vigil.hub/v1\"");
  }
  return {};
}

inline core::Status Id(const json& o, const char* key, bool host, std::string* out) {
  auto it = o.find(key);
  if (it == o.end()) return Bad(key, "missing");
  if (!it->is_string() || !(host ? ValidHostId(it->get_ref<const std::string&>())
                                 : ValidMessageId(it->get_ref<const std::string&>()))) {
    return Bad(key, host ? "expected 1..253 bytes of [A-Za-z0-9._:-]"
                         : "expected 1..128 printable ASCII bytes without spaces");
  }
  *out = it->get<std::string>();
  return {};
}

}  // namespace vigil::hub::internal
