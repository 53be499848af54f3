#include "hub/fleet_requests.h"

#include <nlohmann/json.hpp>

#include "hub/requests.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

core::Status Invalid(const std::string& field, const std::string& why) {
  return core::InvalidArgument(field + ": " + why);
}

bool PrintableBytes(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// A string of at most `max` printable bytes (at least `min`); absent: unchanged unless required.
core::Status TextField(const json& o, const std::string& path, const char* key, size_t min, size_t max,
                  bool required, std::string* out) {
  auto it = o.find(key);
  if (it == o.end()) return required ? Invalid(path + key, "missing") : core::Status();
  if (!it->is_string()) return Invalid(path + key, "expected a string");
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() < min || s.size() > max || !PrintableBytes(s)) {
    return Invalid(path + key, "expected " + std::to_string(min) + ".." + std::to_string(max) +
                               " printable bytes");
  }
  *out = s;
  return {};
}

core::Status CountField(const json& o, const std::string& path, const char* key, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end()) return {};
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return Invalid(path + key, "expected a non-negative integer");
  }
  *out = it->get<int64_t>();
  return {};
}

core::Status AppliedField(const json& o, const char* key, AppliedArtifact* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_object()) return Invalid(key, "expected an object {\"version\",\"digest\"}");
  const std::string path = std::string(key) + ".";
  VIGIL_RETURN_IF_ERROR(TextField(*it, path, "version", 0, 128, false, &out->version));
  std::string digest;
  VIGIL_RETURN_IF_ERROR(TextField(*it, path, "digest", 0, 71, false, &digest));
  if (!digest.empty() && !ParseDigest(digest, &out->digest)) {
    return Invalid(path + "digest", "expected 64 lowercase hex digits (SHA-256)");
  }
  return {};
}

core::Status ReportFields(const json& o, AgentReport* r) {
  auto host = o.find("host");
  if (host == o.end()) return Invalid("host", "missing");
  if (!host->is_string() || !ValidHostId(host->get_ref<const std::string&>())) {
    return Invalid("host", "expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  r->host = host->get<std::string>();
  auto mode = o.find("mode");
  if (mode == o.end()) return Invalid("mode", "missing");
  if (!mode->is_string() || (mode->get_ref<const std::string&>() != "monitor" &&
                             mode->get_ref<const std::string&>() != "enforce")) {
    return Invalid("mode", "expected \"monitor\" or \"enforce\"");
  }
  r->mode = mode->get<std::string>();
  VIGIL_RETURN_IF_ERROR(AppliedField(o, "policy", &r->policy));
  if (auto it = o.find("addresses"); it != o.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 16) {
      return Invalid("addresses", "expected an array of at most 16 IP addresses");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      if (!a.is_string() || a.get_ref<const std::string&>().size() > 64 ||
          !ValidIpAddress(a.get<std::string>())) {
        return Invalid("addresses[" + std::to_string(i) + "]", "expected an IPv4 or IPv6 address");
      }
      r->addresses.push_back(a.get<std::string>());
    }
  }
  return AppliedField(o, "model", &r->model);
}

core::Status QuoteField(const json& o, std::string* out) {
  if (auto it = o.find("attestation"); it != o.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().size() > (size_t{1} << 20)) {
      return Invalid("attestation", "expected a quote document (a string of 1 byte..1 MiB)");
    }
    *out = it->get<std::string>();
  }
  return {};
}

bool IsHex(std::string_view s) {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

core::Result<json> JsonObject(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Invalid("body", "expected a JSON object");
  return j;
}

}  // namespace

bool ValidGroupName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool ParseDigest(std::string_view s, std::string* out) {
  if (s.starts_with("sha256:")) s.remove_prefix(7);
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  *out = std::string(s);
  return true;
}

bool ValidArtifactKind(std::string_view s) { return s == "policy" || s == "model"; }

core::Result<AgentReport> ParseRegisterRequest(std::string_view body) {
  VIGIL_ASSIGN_OR_RETURN(const json o, JsonObject(body));
  AgentReport r;
  VIGIL_RETURN_IF_ERROR(ReportFields(o, &r));
  r.group = "default";
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "group", 1, 64, false, &r.group));
  if (!ValidGroupName(r.group)) return Invalid("group", "expected 1..64 bytes of [A-Za-z0-9._-]");
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "vigil_version", 1, 64, true, &r.vigil_version));
  if (auto it = o.find("enforce_wanted"); it != o.end()) {
    if (!it->is_boolean()) return Invalid("enforce_wanted", "expected true or false");
    r.enforce_wanted = it->get<bool>();
  }
  VIGIL_RETURN_IF_ERROR(QuoteField(o, &r.quote));
  if (auto it = o.find("audit_key"); it != o.end() && !it->is_null()) {
    VIGIL_ASSIGN_OR_RETURN(r.audit_key, ParseAuditKey(*it, "audit_key"));
  }
  return r;
}

core::Result<AgentReport> ParseHeartbeatRequest(std::string_view body) {
  VIGIL_ASSIGN_OR_RETURN(const json o, JsonObject(body));
  AgentReport r;
  VIGIL_RETURN_IF_ERROR(ReportFields(o, &r));
  if (auto it = o.find("health"); it != o.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("health", "expected an object");
    if (auto e = it->find("events_per_s"); e != it->end()) {
      if (!e->is_number() || !(e->get<double>() >= 0) || e->get<double>() > 1e12) {
        return Invalid("health.events_per_s", "expected a number in [0, 1e12]");
      }
      r.events_per_s = e->get<double>();
    }
    VIGIL_RETURN_IF_ERROR(CountField(*it, "health.", "drops", &r.drops));
    VIGIL_RETURN_IF_ERROR(CountField(*it, "health.", "alerts", &r.alerts));
  }
  if (auto it = o.find("refusal"); it != o.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("refusal", "expected an object or null");
    RefusalReport f;
    VIGIL_RETURN_IF_ERROR(TextField(*it, "refusal.", "kind", 1, 16, true, &f.kind));
    if (!ValidArtifactKind(f.kind)) return Invalid("refusal.kind", "expected \"policy\" or \"model\"");
    std::string digest;
    VIGIL_RETURN_IF_ERROR(TextField(*it, "refusal.", "digest", 1, 71, true, &digest));
    if (!ParseDigest(digest, &f.digest)) {
      return Invalid("refusal.digest", "expected 64 lowercase hex digits (SHA-256)");
    }
    VIGIL_RETURN_IF_ERROR(TextField(*it, "refusal.", "reason", 1, 1024, true, &f.reason));
    VIGIL_RETURN_IF_ERROR(CountField(*it, "refusal.", "time_ms", &f.time_ms));
    r.refusal = std::move(f);
  }
  VIGIL_RETURN_IF_ERROR(QuoteField(o, &r.quote));
  return r;
}

core::Result<ActivateRequest> ParseActivateRequest(std::string_view body) {
  VIGIL_ASSIGN_OR_RETURN(const json o, JsonObject(body));
  ActivateRequest r;
  auto host = o.find("host");
  if (host == o.end()) return Invalid("host", "missing");
  if (!host->is_string() || !ValidHostId(host->get_ref<const std::string&>())) {
    return Invalid("host", "expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  r.host = host->get<std::string>();
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "token", 1, 8192, true, &r.token));
  std::string secret;
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "secret", 2, 64, true, &secret));
  if (secret.size() % 2 != 0 || !IsHex(secret)) {
    return Invalid("secret", "expected 1..32 bytes as hex digits");
  }
  for (size_t i = 0; i < secret.size(); i += 2) {
    r.secret.push_back(static_cast<char>(std::stoi(secret.substr(i, 2), nullptr, 16)));
  }
  return r;
}

core::Result<RolloutRequest> ParseRolloutRequest(std::string_view body) {
  VIGIL_ASSIGN_OR_RETURN(const json o, JsonObject(body));
  RolloutRequest r;
  std::string digest;
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "digest", 1, 71, true, &digest));
  if (!ParseDigest(digest, &r.digest)) {
    return Invalid("digest", "expected 64 lowercase hex digits (SHA-256), optionally after sha256:");
  }
  VIGIL_RETURN_IF_ERROR(TextField(o, "", "group", 1, 64, true, &r.group));
  if (!ValidGroupName(r.group)) return Invalid("group", "expected 1..64 bytes of [A-Za-z0-9._-]");
  return r;
}

}  // namespace vigil::hub
