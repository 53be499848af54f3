#include "hub/checkpoint_requests.h"

#include <cstdint>

#include "audit/payloads.h"
#include "hub/requests.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

core::Status CheckpointFieldError(const std::string& field, const std::string& why) {
  return core::InvalidArgument(field + ": " + why);
}

core::Status CheckpointHexField(const json& o, const std::string& path, const char* key, size_t n,
                                bool upper, std::string* out) {
  auto it = o.find(key);
  if (it == o.end()) return CheckpointFieldError(path + key, "missing");
  if (!it->is_string() || !IsHexOf(it->get_ref<const std::string&>(), n, upper)) {
    return CheckpointFieldError(
        path + key,
        "expected " + std::to_string(n) + (upper ? " uppercase" : " lowercase") + " hex digits");
  }
  *out = it->get<std::string>();
  return {};
}

core::Status CheckpointUnsignedField(const json& o, const char* key, uint64_t min, uint64_t* out) {
  auto it = o.find(key);
  if (it == o.end()) return CheckpointFieldError(key, "missing");
  if (!it->is_number_unsigned() || it->get<uint64_t>() < min ||
      it->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return CheckpointFieldError(
        key, "expected an integer " + std::to_string(min) + ".." + std::to_string(INT64_MAX));
  }
  *out = it->get<uint64_t>();
  return {};
}

}  // namespace

bool IsHexOf(std::string_view s, size_t n, bool upper) {
  if (s.size() != n) return false;
  for (const char c : s) {
    const bool digit = c >= '0' && c <= '9';
    const bool letter = upper ? (c >= 'A' && c <= 'F') : (c >= 'a' && c <= 'f');
    if (!digit && !letter) return false;
  }
  return true;
}

core::Result<AuditKeyReport> ParseAuditKey(const json& o, const std::string& path) {
  if (!o.is_object())
    return CheckpointFieldError(path, "expected an object {\"key_id\",\"public_key\"}");
  AuditKeyReport k;
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, path + ".", "key_id", 16, true, &k.key_id));
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, path + ".", "public_key", 64, false, &k.public_key));
  return k;
}

namespace {

// The object, its schema version and its host, which every checkpoint body starts with.
core::Result<json> CheckpointEnvelope(std::string_view body, std::string* host_out) {
  if (body.size() > 64 * 1024) return CheckpointFieldError("body", "larger than 65536 bytes");
  json o = json::parse(body, nullptr, false);
  if (o.is_discarded() || !o.is_object()) return CheckpointFieldError("body", "not a JSON object");
  auto sv = o.find("schema_version");
  if (sv == o.end() || !sv->is_string() || sv->get_ref<const std::string&>() != kHubSchemaVersion) {
    return CheckpointFieldError("schema_version",
                                "expected \"" + std::string(kHubSchemaVersion) + "\"");
  }
  auto host = o.find("host");
  if (host == o.end() || !host->is_string() || !ValidHostId(host->get_ref<const std::string&>())) {
    return CheckpointFieldError("host", "expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  *host_out = host->get<std::string>();
  return o;
}

}  // namespace

core::Result<AuditKeyRequest> ParseAuditKeyRequest(std::string_view body) {
  AuditKeyRequest r;
  VIGIL_ASSIGN_OR_RETURN(const json o, CheckpointEnvelope(body, &r.host));
  auto key = o.find("audit_key");
  if (key == o.end()) return CheckpointFieldError("audit_key", "missing");
  VIGIL_ASSIGN_OR_RETURN(r.key, ParseAuditKey(*key, "audit_key"));
  return r;
}

std::string AuditKeyFingerprint(std::string_view public_key) {
  if (!IsHexOf(public_key, 64)) return "";
  std::string bytes(32, '\0');
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i < 32; ++i) {
    bytes[i] = static_cast<char>(nibble(public_key[2 * i]) * 16 + nibble(public_key[2 * i + 1]));
  }
  return audit::Sha256Hex(bytes);
}

core::Result<AuditKeyPinRequest> ParseAuditKeyPinRequest(std::string_view body) {
  AuditKeyPinRequest r;
  VIGIL_ASSIGN_OR_RETURN(const json o, CheckpointEnvelope(body, &r.host));
  auto fp = o.find("fingerprint");
  if (fp == o.end()) return CheckpointFieldError("fingerprint", "missing");
  std::string text = fp->is_string() ? fp->get<std::string>() : "";
  for (char& c : text) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!IsHexOf(text, 64)) {
    return CheckpointFieldError(
        "fingerprint", "expected 64 hex digits (the SHA-256 of the audit key's public key)");
  }
  r.fingerprint = std::move(text);
  if (auto reason = o.find("reason"); reason != o.end() && !reason->is_null()) {
    if (!reason->is_string() || reason->get_ref<const std::string&>().size() > 1024) {
      return CheckpointFieldError("reason", "expected a string of at most 1024 bytes");
    }
    r.reason = reason->get<std::string>();
  }
  return r;
}

std::string AuditKeyPinBody(const AuditKeyPinRequest& r) {
  const json j = {{"schema_version", kHubSchemaVersion},
                  {"host", r.host},
                  {"fingerprint", r.fingerprint},
                  {"reason", r.reason}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string AuditKeyBody(const AuditKeyRequest& r) {
  const json j = {{"schema_version", kHubSchemaVersion},
                  {"host", r.host},
                  {"audit_key", {{"key_id", r.key.key_id}, {"public_key", r.key.public_key}}}};
  return j.dump();
}

core::Result<CheckpointReport> ParseCheckpointRequest(std::string_view body) {
  CheckpointReport c;
  VIGIL_ASSIGN_OR_RETURN(const json o, CheckpointEnvelope(body, &c.host));
  VIGIL_RETURN_IF_ERROR(CheckpointUnsignedField(o, "seq", 2, &c.seq));
  VIGIL_RETURN_IF_ERROR(CheckpointUnsignedField(o, "covers", 1, &c.covers));
  if (c.covers + 1 != c.seq) return CheckpointFieldError("covers", "expected seq - 1");
  uint64_t time_ns = 0;
  VIGIL_RETURN_IF_ERROR(CheckpointUnsignedField(o, "time_ns", 1, &time_ns));
  c.time_ns = static_cast<int64_t>(time_ns);
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, "", "chain_hash", 64, false, &c.chain_hash));
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, "", "key_id", 16, true, &c.key_id));
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, "", "public_key", 64, false, &c.public_key));
  VIGIL_RETURN_IF_ERROR(CheckpointHexField(o, "", "signature", 128, false, &c.signature));
  return c;
}

std::string CheckpointBody(const CheckpointReport& c) {
  const json j = {{"schema_version", kHubSchemaVersion},
                  {"host", c.host},
                  {"seq", c.seq},
                  {"covers", c.covers},
                  {"chain_hash", c.chain_hash},
                  {"time_ns", c.time_ns},
                  {"key_id", c.key_id},
                  {"public_key", c.public_key},
                  {"signature", c.signature}};
  return j.dump();
}

std::string CheckpointMessageId(const CheckpointReport& c) {
  return "checkpoint-" + std::to_string(c.seq) + "-" + c.chain_hash.substr(0, 16);
}

}  // namespace vigil::hub
