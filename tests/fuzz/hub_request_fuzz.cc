// libFuzzer target for the hub's parsers of outside input (src/hub/requests.h and config.h):
// the first byte picks the parser (ingest batch, one finding line, escalation, decision,
// adjudication, config file; 0xd0..0xd7 a triage training request; 0xd8..0xdb an audit
// checkpoint, 0xdc..0xdd an audit key registration, 0xde..0xdf an audit key pin; 0xe0..0xe7 a
// missed detection, 0xe8..0xef the triage in-force note; from 0xf0 the fleet's register,
// heartbeat and rollout bodies); any bytes must give a value or an error that says what was wrong,
// and an accepted ingest message must hold only valid ids and findings within the limits; an
// accepted config's PostgreSQL `store:` URI passes the store's own check, and its redacted form
// (what the hub prints) does not show the password of its user info.
// Seeds: tests/fuzz/corpus/hub/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hub/checkpoint_requests.h"
#include "hub/config.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"
#include "hub/store_location.h"
#include "hub/triage_note.h"

namespace {

template <typename T>
void Check(const vigil::core::Result<T>& r) {
  if (!r.has_value() && r.error().message().empty()) __builtin_trap();
}

void CheckFinding(const vigil::hub::Finding& f) {
  if (f.score && !(*f.score >= 0 && *f.score <= 1)) __builtin_trap();
  if (f.explanation.size() > vigil::hub::kMaxExplanation) __builtin_trap();
  for (const auto& e : f.explanation) {
    if (!std::isfinite(e.weight)) __builtin_trap();
  }
  if (f.raw.empty()) __builtin_trap();
  if (!f.dst_ip.empty() && !vigil::hub::ValidIpAddress(f.dst_ip)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] >= 0xd0 && data[0] < 0xd8) {
    // POST /v1/triage/train's body.
    auto r = vigil::hub::ParseTriageTrainRequest(input);
    Check(r);
    if (r.has_value() && (r->rounds < 1 || r->rounds > 2000 || r->max_depth < 1 ||
                          r->max_depth > 16 || !(r->eta > 0 && r->eta <= 1))) {
      __builtin_trap();
    }
    return 0;
  }
  if (data[0] >= 0xde && data[0] < 0xe0) {
    // An audit key pin (POST /v1/agents/audit-key/pin): a valid host, a lowercase fingerprint, a
    // bounded reason; rendered back, it parses to the same host and fingerprint.
    auto r = vigil::hub::ParseAuditKeyPinRequest(input);
    Check(r);
    if (r.has_value()) {
      if (!vigil::hub::ValidHostId(r->host) || !vigil::hub::IsHexOf(r->fingerprint, 64) ||
          r->reason.size() > 1024) {
        __builtin_trap();
      }
      auto again = vigil::hub::ParseAuditKeyPinRequest(vigil::hub::AuditKeyPinBody(*r));
      if (!again.has_value() || again->host != r->host || again->fingerprint != r->fingerprint) {
        __builtin_trap();
      }
    }
    return 0;
  }
  if (data[0] >= 0xdc && data[0] < 0xde) {
    // An audit key registration (POST /v1/agents/audit-key): what is accepted renders back to a
    // body that parses to the same values.
    auto r = vigil::hub::ParseAuditKeyRequest(input);
    Check(r);
    if (r.has_value()) {
      if (!vigil::hub::ValidHostId(r->host) || !vigil::hub::IsHexOf(r->key.key_id, 16, true) ||
          !vigil::hub::IsHexOf(r->key.public_key, 64)) {
        __builtin_trap();
      }
      auto again = vigil::hub::ParseAuditKeyRequest(vigil::hub::AuditKeyBody(*r));
      if (!again.has_value() || again->host != r->host || again->key.key_id != r->key.key_id ||
          again->key.public_key != r->key.public_key) {
        __builtin_trap();
      }
    }
    return 0;
  }
  if (data[0] >= 0xd8 && data[0] < 0xe0) {
    // An audit checkpoint (POST /v1/agents/checkpoints, NATS "<prefix>.<host>.checkpoints"):
    // what is accepted renders back to a body that parses to the same values.
    auto r = vigil::hub::ParseCheckpointRequest(input);
    Check(r);
    if (r.has_value()) {
      if (!vigil::hub::ValidHostId(r->host) || r->covers + 1 != r->seq || r->time_ns <= 0 ||
          !vigil::hub::IsHexOf(r->chain_hash, 64) || !vigil::hub::IsHexOf(r->key_id, 16, true) ||
          !vigil::hub::IsHexOf(r->signature, 128)) {
        __builtin_trap();
      }
      auto again = vigil::hub::ParseCheckpointRequest(vigil::hub::CheckpointBody(*r));
      if (!again.has_value() || again->seq != r->seq || again->chain_hash != r->chain_hash ||
          again->time_ns != r->time_ns) {
        __builtin_trap();
      }
    }
    return 0;
  }
  if (data[0] >= 0xe8 && data[0] < 0xf0) {
    // The triage model's in-force note (hub/triage_note.h): what is accepted is of the version
    // this hub reads and renders back to a note that reads the same.
    auto r = vigil::hub::ParseTriageInForceNote(input, "in-force.json");
    Check(r);
    if (r.has_value()) {
      if (r->format_version != vigil::hub::kTriageNoteVersion || r->path.empty()) __builtin_trap();
      // (A note near the size limit may render longer: the fields it lacked are written.)
      const std::string bytes = vigil::hub::TriageInForceNoteBytes(*r);
      auto again = vigil::hub::ParseTriageInForceNote(bytes, "again");
      if (bytes.size() <= (1 << 16) &&
          (!again.has_value() || again->unversioned || again->path != r->path ||
           again->sha256 != r->sha256 || again->activated_ms != r->activated_ms)) {
        __builtin_trap();
      }
    }
    return 0;
  }
  if (data[0] >= 0xe0 && data[0] < 0xe8) {
    // A missed detection (POST /v1/missed-detections).
    auto r = vigil::hub::ParseMissedDetectionRequest(input);
    Check(r);
    if (r.has_value() && (!vigil::hub::ValidHostId(r->host) || r->name.empty() ||
                          (r->kind != "rule" && r->kind != "model") || r->time_ms < 0)) {
      __builtin_trap();
    }
    return 0;
  }
  if (data[0] >= 0xf0) {
    // The fleet's bodies (hub/fleet_requests.h): register, heartbeat, rollout.
    switch (data[0] % 3) {
      case 0: {
        auto r = vigil::hub::ParseRegisterRequest(input);
        Check(r);
        if (r.has_value() && (!vigil::hub::ValidHostId(r->host) ||
                              !vigil::hub::ValidGroupName(r->group) ||
                              (r->mode != "monitor" && r->mode != "enforce"))) {
          __builtin_trap();
        }
        break;
      }
      case 1: {
        auto r = vigil::hub::ParseHeartbeatRequest(input);
        Check(r);
        if (r.has_value() && (!(r->events_per_s >= 0) || r->drops < 0 || r->alerts < 0 ||
                              (r->refusal && r->refusal->digest.size() != 64))) {
          __builtin_trap();
        }
        break;
      }
      default: {
        auto r = vigil::hub::ParseRolloutRequest(input);
        Check(r);
        if (r.has_value() && (r->digest.size() != 64 || !vigil::hub::ValidGroupName(r->group))) {
          __builtin_trap();
        }
        break;
      }
    }
    return 0;
  }
  switch (data[0] % 6) {
    case 0: {
      auto m = vigil::hub::ParseIngestRequest(input);
      Check(m);
      if (m.has_value()) {
        if (!vigil::hub::ValidHostId(m->host) || !vigil::hub::ValidMessageId(m->message_id) ||
            m->findings.size() > vigil::hub::kMaxFindingsPerMessage) {
          __builtin_trap();
        }
        for (const auto& f : m->findings) CheckFinding(f);
      }
      break;
    }
    case 1: {
      auto f = vigil::hub::ParseFindingJson(input);
      Check(f);
      if (f.has_value()) CheckFinding(*f);
      break;
    }
    case 2: {
      auto e = vigil::hub::ParseEscalationRequest(input);
      Check(e);
      if (e.has_value() && (e->action.empty() || e->timeout_s > 86400)) __builtin_trap();
      break;
    }
    case 3:
      Check(vigil::hub::ParseDecisionRequest(input));
      break;
    case 4:
      Check(vigil::hub::ParseAdjudicationRequest(input));
      break;
    default: {
      auto c = vigil::hub::ParseHubConfig(input, "fuzz.yaml", "/base");
      Check(c);
      if (c.has_value() && c->server.escalation_timeout_s > c->server.max_escalation_timeout_s) {
        __builtin_trap();
      }
      if (c.has_value() && vigil::hub::IsPostgresLocation(c->store)) {
        if (!vigil::hub::CheckPostgresUri(c->store).ok()) __builtin_trap();
        const std::string shown = vigil::hub::RedactStoreLocation(c->store);
        const std::string& uri = c->store;
        // The user info's password, as written: between the first ':' after the scheme and the
        // '@' that ends the user info (libpq: the first '@' before any '/').
        const size_t start = uri.find("://") + 3;
        const size_t at = uri.find_first_of("@/", start);
        const size_t colon = uri.find(':', start);
        if (at != std::string::npos && uri[at] == '@' && colon < at) {
          const std::string pw = uri.substr(colon + 1, at - colon - 1);
          // Only a password that occurs once in the URI can be told apart from the rest.
          if (pw.size() >= 6 && uri.find(pw) == uri.rfind(pw) &&
              shown.find(pw) != std::string::npos) {
            __builtin_trap();
          }
        }
      }
      break;
    }
  }
  return 0;
}
