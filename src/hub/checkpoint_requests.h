#pragma once

// The audit checkpoints agents send to the hub (docs/hub.md, "Audit checkpoints"): each signed
// checkpoint of a host's audit log (docs/audit-log-format.md, "Checkpoints"), so that a copy of
// the chain's signed heads lives off the host. The same body travels over HTTP
// (POST /v1/agents/checkpoints) and NATS (subject "<prefix>.<host>.checkpoints"):
//
//   {"schema_version":"vigil.hub/v1","host":H,"seq":N,"covers":N-1,"chain_hash":"<64 hex>",
//    "time_ns":T,"key_id":"<16 HEX>","public_key":"<64 hex>","signature":"<128 hex>"}
//
// Outside input: every field is checked; errors are kInvalidArgument naming the field.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "audit/audit_log.h"
#include "core/status.h"

namespace vigil::hub {

// The checkpoint's fields as the log wrote them (audit::CheckpointNotice: seq >= 2, covers =
// seq - 1, chain_hash 64 lowercase hex digits, time_ns > 0, key_id 16 uppercase hex digits,
// public_key 64 and signature 128 lowercase hex digits) and the host that sent it.
struct CheckpointReport : audit::CheckpointNotice {
  std::string host;
};

// A host's audit key as the agent registers it ("audit_key" in POST /v1/agents/register).
struct AuditKeyReport {
  std::string key_id;      // 16 uppercase hex digits
  std::string public_key;  // 64 lowercase hex digits
};

core::Result<CheckpointReport> ParseCheckpointRequest(std::string_view body);
// The body above (what ParseCheckpointRequest takes).
std::string CheckpointBody(const CheckpointReport& c);
// The message id a checkpoint is published with (NATS' duplicate window drops a resend):
// "checkpoint-<seq>-<first 16 digits of chain_hash>".
std::string CheckpointMessageId(const CheckpointReport& c);

// `path` names the object in errors ("audit_key").
core::Result<AuditKeyReport> ParseAuditKey(const nlohmann::json& o, const std::string& path);

// The body of POST /v1/agents/audit-key (a host registering its audit key without a fleet
// registration, hub/checkpoints.h):
//   {"schema_version":"vigil.hub/v1","host":H,"audit_key":{"key_id":..,"public_key":..}}
struct AuditKeyRequest {
  std::string host;
  AuditKeyReport key;
};
core::Result<AuditKeyRequest> ParseAuditKeyRequest(std::string_view body);
std::string AuditKeyBody(const AuditKeyRequest& r);

// The fingerprint of an audit key: the SHA-256 of its 32 Ed25519 public-key bytes, 64 lowercase
// hex digits ("" when `public_key` is not 64 hex digits).
std::string AuditKeyFingerprint(std::string_view public_key);

// The body of POST /v1/agents/audit-key/pin (an admin pinning a host's audit key,
// hub/checkpoints.h):
//   {"schema_version":"vigil.hub/v1","host":H,"fingerprint":"<64 hex>","reason":".."}
// The fingerprint may be written in either case (it is kept lowercase); "reason" is optional, at
// most 1024 bytes.
struct AuditKeyPinRequest {
  std::string host;
  std::string fingerprint;
  std::string reason;
};
core::Result<AuditKeyPinRequest> ParseAuditKeyPinRequest(std::string_view body);
std::string AuditKeyPinBody(const AuditKeyPinRequest& r);

// Exactly `n` hex digits, lowercase (or uppercase when `upper`).
bool IsHexOf(std::string_view s, size_t n, bool upper = false);

}  // namespace vigil::hub
