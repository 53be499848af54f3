#pragma once

// The hub's copy of its agents' audit checkpoints (docs/hub.md, "Audit checkpoints"). An audit
// log alone cannot show records cut off its end or a tail rewritten after its last checkpoint
// (docs/audit-log-format.md); a copy of every signed checkpoint kept off the host closes that.
// Agents send each checkpoint their log writes, over HTTP (POST /v1/agents/checkpoints), gRPC
// (Checkpoint, hub/agent_grpc.h) or NATS (hub/nats_streams.h); all end in CheckpointBook::Accept,
// which
//   1. verifies the signature by the audit key the host registered (below, "The audit key"):
//      "verified"; with no key registered, by the key the checkpoint names:
//      "unverified" with the reason; a signature that does not verify, or a key other than the
//      registered one: "bad-signature" with the reason;
//   2. stores it once per (host, covers, chain hash): a resend is a duplicate and changes nothing;
//   3. judges it against the host's stored checkpoints (Store::PutCheckpoint, ClassifyCheckpoint):
//      another chain hash for the same record is a "fork"; a checkpoint whose sequence and time
//      disagree with a neighbour's (a lower sequence later in time, or the reverse) is a
//      "rollback".
// A fork, a rollback or a bad signature is logged and written to the hub's audit log as a
// decision record with action "audit-checkpoint-fork", "audit-checkpoint-rollback" or
// "audit-checkpoint-bad-signature" (host, seq, covers, chain hash, detail).
//
// The audit key: a host registers it over a link that authenticates the host (an agent token whose
// subject is the host, or a client certificate whose CN is): with its fleet registration
// (POST /v1/agents/register "audit_key", gRPC Register), or alone (POST /v1/agents/audit-key,
// gRPC RegisterAuditKey), which the checkpoint sinks of `vigil agent` and `vigil gateway` call
// before their first checkpoint of a key. A key that arrives over NATS is never registered: a
// NATS subject does not authenticate its publisher (docs/hub.md "Audit checkpoints").
//
// Pinning (docs/hub.md, "Pinning a host's audit key"). Without a pin the first key a host
// registers is trusted, and a later one replaces it (trust on first use: whoever holds the host's
// credentials may register a key). An admin who learnt the host's key out of band pins it by its
// fingerprint (AuditKeyFingerprint: the SHA-256 of the public key): from then on only that key is
// registered for the host (another is refused, logged as an ALERT, counted and written to the
// hub's audit log as a decision record "audit-key-refused") and only checkpoints signed by it
// verify (another key's are "bad-signature", alarmed as such), also when the host registered no
// key. A new pin replaces the old one. Pinning is an access-grant record "audit-key-pinned".
//
// Routes: POST /v1/agents/checkpoints (agent, its own host); POST /v1/agents/audit-key (agent, its
// own host): {"schema_version","host","key_id","changed","previous_key_id"}, 403 for a key other
// than the pinned one; POST /v1/agents/audit-key/pin (admin; AuditKeyPinRequest):
// {"schema_version","host","fingerprint","previous_fingerprint","registered_key":{"key_id",
// "fingerprint","pinned"} or null}; GET /v1/agents/HOST/checkpoints (viewer; ?limit=1..1000,
// default 100): the registered key (with its fingerprint), the pin, and the checkpoints, highest
// first.
//
// Counters: vigil_hub_checkpoints_total{result="verified"|"unverified"|"bad-signature"|
// "duplicate"}, vigil_hub_checkpoint_problems_total{problem="fork"|"rollback"} and
// vigil_hub_audit_keys_refused_total (keys refused by a pin).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "hub/checkpoint_requests.h"
#include "hub/fleet.h"
#include "hub/store.h"

namespace vigil::hub {

struct AuditKeyChange {
  bool changed = false;         // false: the host had this key already
  std::string previous_key_id;  // the key replaced ("" when none)
};

// Stores `key` as `host`'s audit key when it is new or another than the stored one, and appends
// an access-grant record "audit-key-registered" or "audit-key-replaced" (host, key_id,
// previous_key_id) to `audit`. `host` must be authenticated by the caller. A key other than the
// one pinned for `host` is not stored: kPermissionDenied naming both fingerprints, after the
// alarm above (log, counter, decision record "audit-key-refused"). Errors: the store's;
// kUnavailable when the audit record could not be written (the key is stored then).
core::Result<AuditKeyChange> RegisterAuditKey(Store& store, audit::AuditLog& audit,
                                              const std::string& host, const AuditKeyReport& key,
                                              int64_t now_ms);

struct AuditKeyPinChange {
  std::string previous_fingerprint;  // the pin replaced ("" when none)
  std::optional<AuditKeyRow> registered;  // the key the host registered, if any
  bool registered_pinned = false;         // whether that key is the pinned one
};

// Pins `host`'s audit key to `fingerprint` (lowercase hex) for admin `by`, replacing any pin, and
// appends an access-grant record "audit-key-pinned" (host, fingerprint, previous_fingerprint,
// registered_key_id, registered_pinned, by, reason). A registered key that is not the pinned one
// no longer verifies checkpoints (logged). Errors: the store's; kUnavailable when the record could
// not be written (the pin is stored then).
core::Result<AuditKeyPinChange> PinAuditKey(Store& store, audit::AuditLog& audit,
                                            const AuditKeyPinRequest& pin, const std::string& by,
                                            int64_t now_ms);

class CheckpointBook {
 public:
  // Everything passed in must outlive the book.
  CheckpointBook(Store& store, audit::AuditLog& audit, const core::Clock& clock,
                 core::Registry& registry);

  // Verifies, stores and judges one checkpoint (above). Errors: the store's, or the audit log's
  // when a problem could not be recorded (the checkpoint is stored then; a resend is a duplicate,
  // so the record is not retried). Thread-safe.
  core::Result<CheckpointPut> Accept(const CheckpointReport& c);
  // RegisterAuditKey above, at the book's clock. Thread-safe.
  core::Result<AuditKeyChange> RegisterKey(const std::string& host, const AuditKeyReport& key);

  void Routes(httplib::Server& s, const Authorizer& authorize);

  static nlohmann::json CheckpointJson(const CheckpointRow& r);

 private:
  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  core::Counter* verified_;
  core::Counter* unverified_;
  core::Counter* bad_signature_;
  core::Counter* duplicate_;
  core::Counter* fork_;
  core::Counter* rollback_;
};

}  // namespace vigil::hub
