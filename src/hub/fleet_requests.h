#pragma once

// The fleet's request bodies (docs/hub.md, "Fleet: agents, artifacts, rollouts"): what agents
// send when they register and heartbeat, and what admins send to start a rollout. Outside input:
// every field is checked, errors are kInvalidArgument naming the field and the reason.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "hub/checkpoint_requests.h"

namespace vigil::hub {

// What an agent runs of one kind (policy or model).
struct AppliedArtifact {
  std::string version;  // 0..128 printable bytes (a policy's version, a model's name@version)
  std::string digest;   // "" or 64 lowercase hex digits: SHA-256 of the file(s) applied
};

// An update the agent refused (signature, digest or load), reported until the next one applies.
struct RefusalReport {
  std::string kind;    // "policy" or "model"
  std::string digest;  // 64 hex digits
  std::string reason;  // 1..1024 bytes
  int64_t time_ms = 0;
};

struct AgentReport {
  std::string host;
  std::string mode;  // "monitor" or "enforce"
  AppliedArtifact policy, model;
  // The host's own network addresses ("addresses": up to 16 IPv4/IPv6 strings), which the hub's
  // correlator uses to tell that a finding elsewhere connected to this host (hub/correlate.h).
  std::vector<std::string> addresses;
  // Heartbeat only (register: zero).
  double events_per_s = 0;
  int64_t drops = 0, alerts = 0;
  std::optional<RefusalReport> refusal;
  // Register only.
  std::string group;          // 1..64 bytes of [A-Za-z0-9._-]; absent: "default"
  std::string vigil_version;  // 1..64 printable bytes
  bool enforce_wanted = false;
  // The key that signs the host's audit checkpoints ("audit_key": {"key_id","public_key"}, as in
  // a checkpoint): the hub verifies the checkpoints it receives by it (hub/checkpoints.h).
  std::optional<AuditKeyReport> audit_key;
  // Register and heartbeat: a TPM quote document (govern::EncodeQuoteDocument) over a nonce
  // from the hub; "" when the agent sends none.
  std::string quote;
};

// POST /v1/agents/activate: the secret the agent's TPM released from the hub's credential
// challenge (docs/attestation.md, "The hub").
struct ActivateRequest {
  std::string host;
  std::string token;   // the challenge token from the register answer, 1..8192 printable bytes
  std::string secret;  // bytes (1..32), sent as hex
};

struct RolloutRequest {
  std::string digest;  // 64 hex digits (a "sha256:" prefix is accepted)
  std::string group;   // the canary group
};

// POST /v1/agents/register and /v1/agents/heartbeat.
core::Result<AgentReport> ParseRegisterRequest(std::string_view body);
core::Result<AgentReport> ParseHeartbeatRequest(std::string_view body);
core::Result<RolloutRequest> ParseRolloutRequest(std::string_view body);
core::Result<ActivateRequest> ParseActivateRequest(std::string_view body);

bool ValidGroupName(std::string_view s);
// 64 lowercase hex digits, after an optional "sha256:" prefix (stripped into *out).
bool ParseDigest(std::string_view s, std::string* out);
// "policy" or "model".
bool ValidArtifactKind(std::string_view s);

}  // namespace vigil::hub
