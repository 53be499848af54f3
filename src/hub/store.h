#pragma once

// The hub's store: agents, ingested message ids, incidents and their alerts, adjudications,
// escalations (schema in docs/hub.md). Two implementations behind one contract:
//   - SQLite (hub/store_sqlite.h): one file, the embedded default; one hub process.
//   - PostgreSQL (hub/store_postgres.h, libpqxx): several hub instances share one database.
// Store::Open picks one from the location: a postgres:// or postgresql:// URI, else a path.
//
// Every implementation is thread-safe and makes each write one transaction. Ingestion is
// idempotent per (host, message_id): a message whose id was already stored (by any instance
// sharing the store) is acknowledged as a duplicate and changes nothing. Each finding joins the
// open (unadjudicated) incident of the same host, pid and process name whose time span, widened
// by the incident window on both sides, covers the finding's time; otherwise it opens a new
// incident. An escalation is decided or timed out once, whichever instance does it.
// Errors are core::Status (kUnavailable for the database, naming the store without its
// password); nothing throws.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hub/requests.h"

namespace vigil::hub {

struct StoreOptions {
  int64_t incident_window_ms = 300'000;
  // PostgreSQL: the store's connection pool holds at most pool_size connections (1..64), opened
  // when a call needs one and kept; a call that finds all of them busy waits up to pool_wait_ms
  // for one and then fails with kUnavailable naming the pool. SQLite: ignored (one connection).
  int pool_size = 4;
  int64_t pool_wait_ms = 10'000;
};

struct IngestResult {
  bool duplicate = false;  // the message id was seen before; nothing was stored
  size_t findings = 0;     // stored now
  size_t new_incidents = 0;
  std::vector<int64_t> incidents;  // the incidents the findings joined, in order, distinct
};

struct IncidentRow {
  int64_t id = 0;
  std::string host;
  int64_t pid = 0;
  std::string process;
  int64_t first_ms = 0, last_ms = 0;
  int64_t alerts = 0, verdicts = 0, decisions = 0;
  std::optional<double> max_score;
  int64_t max_severity = 0;
  std::optional<Label> label;
  std::string labelled_by, note;
  int64_t labelled_ms = 0;
  // Schema version 5: the hub's triage model's score (hub/triage.h; nullopt: not scored) and
  // whether it fell below the threshold chosen for the configured recall. A suppressed incident
  // is kept, listed and filterable like any other.
  std::optional<double> triage_score;
  bool triage_suppressed = false;
};

struct AlertRow {
  int64_t id = 0;
  FindingKind kind = FindingKind::kVerdict;
  int64_t time_ms = 0;
  int64_t severity_id = 0;
  std::string uid, title, message, rule, action, model, model_version;
  std::optional<double> score;
  std::string explanation_json;  // [{"what","weight"}...]
  std::string raw;               // the finding as received
};

struct IncidentFilter {
  std::string host;                 // "": every host
  std::optional<bool> adjudicated;  // nullopt: both
  std::optional<bool> suppressed;   // by triage; nullopt: both
  int64_t limit = 100;              // 1..1000
  int64_t before_id = 0;            // page: ids below this (0: from the newest)
};

enum class EscalationState : uint8_t { kPending, kApproved, kDenied, kTimedOut };
std::string_view EscalationStateName(EscalationState s);  // "pending", "approved", ...

struct EscalationRow {
  int64_t id = 0;
  EscalationRequest request;
  int64_t created_ms = 0, deadline_ms = 0;
  EscalationState state = EscalationState::kPending;
  std::string decided_by, note;
  int64_t decided_ms = 0;
  // What the agent is to do: approve or deny (decided, or the default on time-out); pending: none.
  std::optional<Verdict> outcome() const;
};

struct AgentRow {
  std::string host;
  int64_t first_seen_ms = 0, last_seen_ms = 0, messages = 0, findings = 0;
};

// Schema version 2: the fleet (docs/hub.md, "Fleet: agents, artifacts, rollouts").
// What an agent said when it registered and in its latest heartbeat.
struct AgentStatusRow {
  std::string host;
  std::string group;   // from the agent's config
  std::string mode;    // "monitor" or "enforce": the mode the agent is in
  std::string vigil_version;
  std::string attestation = "absent";  // "absent", "verified" or "failed"
  std::string attestation_reason;      // why it failed ("" otherwise)
  int64_t registered_ms = 0, heartbeat_ms = 0;
  // The agent's latest report as JSON: {"policy":{"version","digest"},"model":{...},
  // "health":{...},"refusal":{...}|null,"enforce_wanted":bool} (fleet.cc writes and reads it).
  std::string status_json = "{}";
};

// A signed policy or model uploaded by an admin, stored under the SHA-256 of its bytes.
struct ArtifactRow {
  std::string digest;  // 64 lowercase hex digits
  std::string kind;    // "policy" or "model"
  std::string name;    // the uploaded file's name (for people)
  int64_t size = 0;
  std::string content;    // the bytes (empty when listed without them)
  std::string signature;  // the .minisig file's text
  std::string key_id;     // the signer's key id
  std::string uploaded_by;
  int64_t uploaded_ms = 0;
};

// A rollout of an artifact: first to one group ("canary"), then, once promoted, to every agent.
struct RolloutRow {
  int64_t id = 0;
  std::string digest, kind;
  std::string group;  // the canary group
  std::string state;  // "canary" or "promoted"
  std::string created_by;
  int64_t created_ms = 0;
  std::string promoted_by;
  int64_t promoted_ms = 0;
};

// Schema version 3: attestation (docs/attestation.md, "The hub"). The attestation key a host
// proved to hold: tied to a trusted EK by credential activation (ek_sha256 set) or, without an EK
// CA, the key of its first verified quote. Later quotes of the host must be signed by it.
struct AttestedKeyRow {
  std::string host;
  std::string ak_name;    // hex TPM name (nameAlg || SHA-256 of TPMT_PUBLIC); "" without an EK
  std::string ak_public;  // PEM
  std::string ek_sha256;  // hex SHA-256 of the EK certificate (DER); "" without an EK
  int64_t trusted_ms = 0;  // when it was tied (activation) or first seen
  int64_t quoted_ms = 0;   // its latest verified quote
};

// Schema version 4: fleet incidents (hub/correlate.h) and missed detections.
struct FleetIncidentRow {
  int64_t id = 0;
  std::string kind;                // "spread" or "chain"
  std::string key;                 // spread: the behaviour key; chain: "A->B"
  std::vector<std::string> hosts;  // spread: sorted; chain: {A, B}
  int64_t first_ms = 0, last_ms = 0;
  std::string summary;
  int64_t created_ms = 0, updated_ms = 0;
};

struct FleetRaise {
  FleetIncidentRow row;  // as stored now
  bool created = false;  // a new fleet incident
  bool changed = false;  // an existing one grew (more hosts or a longer span)
};

// A detection the models and rules missed, recorded by an analyst (a false negative).
struct MissedDetectionRow {
  int64_t id = 0;
  std::string host;
  std::string kind;     // "rule" or "model": what should have fired
  std::string name;     // its name
  int64_t time_ms = 0;  // when the missed behaviour happened
  std::string note, recorded_by;
  int64_t recorded_ms = 0;
};

// A stored finding as received, with its host (rebuilding the correlator's state at start) and
// its alert id (the order instances sharing a store read each other's findings in).
struct StoredFinding {
  std::string host;
  std::string raw;
  int64_t id = 0;
};

// Schema version 5: an incident's triage features (the ones ExportLabels writes, by name; a
// missing value is absent) and the hub's triage mark for it.
struct IncidentFeatures {
  int64_t id = 0;
  std::map<std::string, double> features;
};
struct TriageMark {
  int64_t id = 0;
  double score = 0;
  bool suppressed = false;
};

// A verdict's or decision's model score (the models page's plots).
struct ScoreSample {
  std::string model;
  int64_t time_ms = 0;
  double score = 0;
};

// Schema version 6: audit checkpoints (docs/hub.md, "Audit checkpoints"). The key a host's
// agent registered for its audit log's checkpoints.
struct AuditKeyRow {
  std::string host;
  std::string key_id;      // 16 uppercase hex digits
  std::string public_key;  // 64 lowercase hex digits
  int64_t registered_ms = 0;
};

// Schema version 9: an admin's pin of a host's audit key (docs/hub.md, "Pinning a host's audit
// key"). While it stands, only the key with this fingerprint is registered for the host and
// verifies its checkpoints.
struct AuditKeyPinRow {
  std::string host;
  std::string fingerprint;  // SHA-256 of the 32-byte Ed25519 public key, 64 lowercase hex
  std::string pinned_by;    // the admin
  std::string reason;
  int64_t pinned_ms = 0;
};

// A signed checkpoint of a host's audit log, as the hub received and judged it.
struct CheckpointRow {
  int64_t id = 0;
  std::string host;
  int64_t seq = 0, covers = 0;  // the checkpoint record and the record it signs the chain to
  std::string chain_hash;
  int64_t time_ns = 0;  // the checkpoint's time on the host
  std::string key_id, public_key, signature;
  // "verified" (by the host's registered audit key), "unverified" (no key registered; its
  // signature by the key it names verifies) or "bad-signature"; `reason` says why when not
  // verified.
  std::string verification;
  std::string reason;
  // What it contradicts of the host's stored checkpoints: "" nothing, "fork" (another chain hash
  // for the same covers), "rollback" (sequence and time disagree with a neighbour's: the log went
  // back); `problem_detail` names the stored checkpoint.
  std::string problem;
  std::string problem_detail;
  int64_t received_ms = 0;
};

struct CheckpointPut {
  CheckpointRow row;       // as stored (the earlier one when a duplicate)
  bool duplicate = false;  // (host, covers, chain_hash) was stored already: nothing changed
};

// Sets row->problem and problem_detail from the host's stored checkpoints it must agree with
// (those not "bad-signature"): `same`, those of the same covers; `below` / `above`, the one with
// the next lower / higher covers (nullptr when none). A log only grows, so a higher covers must
// come with a later time; a wall clock stepped back on the host looks the same as a rollback.
void ClassifyCheckpoint(CheckpointRow* row, const std::vector<CheckpointRow>& same,
                        const CheckpointRow* below, const CheckpointRow* above);

// The schema version this hub writes; older databases are migrated in place at Open.
inline constexpr int kHubSchemaVersionNumber = 9;

// A client certificate the hub CA issued to an agent (docs/hub.md, "Revoking and renewing agent
// certificates"), or one an admin revoked by fingerprint that the hub has no record of (host "").
struct AgentCertRow {
  std::string sha256;  // of the certificate's DER, 64 lowercase hex digits
  std::string host, group;
  std::string how;       // "enrolled", "renewed" or "revoked" (known only from its revocation)
  std::string replaces;  // renewed: the sha256 of the certificate it replaces
  int64_t not_after_s = 0;
  int64_t issued_ms = 0;
  int64_t first_used_ms = 0;  // its first authenticated call (0: none yet)
  int64_t revoked_ms = 0;     // 0: not revoked
  std::string revoked_by, revoke_reason;
};

// Adjudicated incidents per rule or model that fired in them, and the detections it missed.
struct AdjudicationCount {
  std::string kind;  // "rule" or "model"
  std::string name;
  int64_t true_positive = 0, false_positive = 0, benign = 0;
  int64_t false_negative = 0;  // missed detections recorded for it
};

class Store {
 public:
  // Opens the store at `location` and creates (or checks) its schema: a PostgreSQL connection
  // URI (postgres://USER@HOST:PORT/DB?..., see hub/store_location.h) or a SQLite file path
  // (created). Errors name the location, its password redacted.
  static core::Result<std::unique_ptr<Store>> Open(const std::string& location,
                                                   const StoreOptions& options);
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  virtual core::Result<IngestResult> Ingest(const IngestMessage& m, int64_t now_ms) = 0;
  // Ingests several messages in one transaction: all of them are stored, or (on an error) none.
  // One result per message, in order, each as Ingest would return it; a message id repeated
  // within the batch is a duplicate after its first occurrence. Far fewer statements and
  // commits than one Ingest per message (the NATS consumer stores each fetched batch so).
  virtual core::Result<std::vector<IngestResult>> IngestBatch(const std::vector<IngestMessage>& ms,
                                                              int64_t now_ms) = 0;

  virtual core::Result<std::vector<IncidentRow>> Incidents(const IncidentFilter& f) = 0;
  // kNotFound for an unknown id.
  virtual core::Result<IncidentRow> Incident(int64_t id) = 0;
  virtual core::Result<std::vector<AlertRow>> Alerts(int64_t incident_id) = 0;
  // Labels (or relabels) an incident; returns it as it was before. kNotFound for an unknown id.
  virtual core::Result<IncidentRow> Adjudicate(int64_t id, Label label, const std::string& who,
                                               const std::string& note, int64_t now_ms) = 0;
  virtual core::Result<std::vector<AdjudicationCount>> AdjudicationCounts() = 0;
  // Every adjudicated incident as one line of docs/triage-labels.md's format, oldest first.
  virtual core::Result<std::string> ExportLabels() = 0;

  // Stores a new escalation (deadline = now + timeout), or returns the one already stored for
  // (host, escalation_id) with *created = false.
  virtual core::Result<EscalationRow> OpenEscalation(const EscalationRequest& r,
                                                     int64_t timeout_ms, int64_t now_ms,
                                                     bool* created) = 0;
  virtual core::Result<EscalationRow> Escalation(int64_t id) = 0;
  virtual core::Result<std::vector<EscalationRow>> Escalations(bool pending_only,
                                                               const std::string& host) = 0;
  // kNotFound for an unknown id; kFailedPrecondition when it is no longer pending or its
  // deadline has passed. Of two concurrent decisions (or a decision and a time-out) exactly
  // one succeeds.
  virtual core::Result<EscalationRow> Decide(int64_t id, Verdict v, const std::string& who,
                                             const std::string& note, int64_t now_ms) = 0;
  // Times out every pending escalation whose deadline is at or before now; returns those this
  // call timed out (an escalation is returned by one call only, across instances).
  virtual core::Result<std::vector<EscalationRow>> ExpireEscalations(int64_t now_ms) = 0;

  virtual core::Result<std::vector<AgentRow>> Agents() = 0;

  // Fleet (schema version 2). Registering stores (or replaces) the agent's row with
  // registered_ms = heartbeat_ms = now_ms.
  virtual core::Status RegisterAgent(const AgentStatusRow& r, int64_t now_ms) = 0;
  // Updates a registered agent's mode, status and heartbeat time and returns its row;
  // kNotFound when the host never registered.
  virtual core::Result<AgentStatusRow> Heartbeat(const std::string& host, const std::string& mode,
                                                 const std::string& status_json,
                                                 int64_t now_ms) = 0;
  virtual core::Result<std::vector<AgentStatusRow>> AgentStatuses() = 0;
  // Stores an artifact; false (nothing changed) when its digest is already stored.
  virtual core::Result<bool> PutArtifact(const ArtifactRow& a) = 0;
  // kNotFound for an unknown digest; `content`: with the bytes.
  virtual core::Result<ArtifactRow> Artifact(const std::string& digest, bool content) = 0;
  virtual core::Result<std::vector<ArtifactRow>> Artifacts() = 0;  // without bytes, newest first
  // A new rollout of a stored artifact to `group` (state canary); kNotFound for an unknown digest.
  virtual core::Result<RolloutRow> StartRollout(const std::string& digest, const std::string& group,
                                                const std::string& who, int64_t now_ms) = 0;
  // canary -> promoted; kNotFound for an unknown id, kFailedPrecondition when already promoted.
  // Of two concurrent promotions exactly one succeeds.
  virtual core::Result<RolloutRow> PromoteRollout(int64_t id, const std::string& who,
                                                  int64_t now_ms) = 0;
  virtual core::Result<std::vector<RolloutRow>> Rollouts() = 0;  // newest first

  // Attestation (schema version 3). Records `nonce` (a hub attestation nonce or challenge token
  // digest, hex) as used until `expires_ms`; false when it was already used (a replay), whichever
  // hub instance saw it first. Entries past their expiry are dropped.
  virtual core::Result<bool> UseNonce(const std::string& nonce, int64_t expires_ms,
                                      int64_t now_ms) = 0;
  // Sets a registered agent's attestation state and reason (no-op for an unknown host).
  virtual core::Status SetAttestation(const std::string& host, const std::string& state,
                                      const std::string& reason) = 0;
  // Stores (or replaces) the host's attested key.
  virtual core::Status PutAttestedKey(const AttestedKeyRow& k) = 0;
  // kNotFound when the host has none.
  virtual core::Result<AttestedKeyRow> AttestedKey(const std::string& host) = 0;

  // Fleet incidents (schema version 4). Merges `draft` into the fleet incident of the same kind
  // and key whose span, widened by window_ms on both sides, overlaps the draft's (hosts united,
  // span extended), or stores a new one. Of concurrent raises of one kind and key (several hub
  // instances) each sees the others' writes: one fleet incident results.
  virtual core::Result<FleetRaise> RaiseFleetIncident(const FleetIncidentRow& draft,
                                                      int64_t window_ms, int64_t now_ms) = 0;
  // Newest first; ids below before_id (0: from the newest); limit 1..1000.
  virtual core::Result<std::vector<FleetIncidentRow>> FleetIncidents(int64_t limit,
                                                                     int64_t before_id) = 0;
  // The findings (with their hosts) whose time is at or after since_ms, oldest first, at most
  // `limit` (the newest ones when more).
  virtual core::Result<std::vector<StoredFinding>> RecentFindings(int64_t since_ms,
                                                                  int64_t limit) = 0;
  // The findings whose alert id is above after_id, in id order, at most `limit` (the oldest
  // ones). Every instance sharing the store reads everyone's findings so (hub/correlate.h).
  virtual core::Result<std::vector<StoredFinding>> FindingsAfter(int64_t after_id,
                                                                 int64_t limit) = 0;
  // Stores a missed detection (its id, recorded_by and recorded_ms as given are kept but the id).
  virtual core::Result<MissedDetectionRow> RecordMissedDetection(const MissedDetectionRow& m) = 0;
  virtual core::Result<std::vector<MissedDetectionRow>> MissedDetections(int64_t limit) = 0;
  // Model scores of stored findings at or after since_ms, oldest first, at most `limit` (the
  // newest ones when more).
  virtual core::Result<std::vector<ScoreSample>> ScoreSamples(int64_t since_ms, int64_t limit) = 0;

  // Triage (schema version 5). The features of the listed incidents that exist (any order).
  virtual core::Result<std::vector<IncidentFeatures>> TriageFeatures(
      const std::vector<int64_t>& ids) = 0;
  // Stores each incident's triage score and suppression (an unknown id changes nothing).
  virtual core::Status SetTriage(const std::vector<TriageMark>& marks) = 0;
  // Incidents marked suppressed by triage (adjudicated or not).
  virtual core::Result<int64_t> CountSuppressed() = 0;
  // Audit checkpoints (schema version 6). Stores (or replaces) the host's audit key.
  virtual core::Status PutAuditKey(const AuditKeyRow& k) = 0;
  // kNotFound when the host registered none.
  virtual core::Result<AuditKeyRow> AuditKey(const std::string& host) = 0;
  // Audit key pins (schema version 9). Stores (or replaces) the host's pin.
  virtual core::Status PutAuditKeyPin(const AuditKeyPinRow& p) = 0;
  // kNotFound when no key is pinned for the host.
  virtual core::Result<AuditKeyPinRow> AuditKeyPin(const std::string& host) = 0;
  // Stores a checkpoint, its problem set by ClassifyCheckpoint against the host's stored ones in
  // the same transaction (instances storing checkpoints of one host at once wait for each other),
  // or returns the one stored for (host, covers, chain_hash) with duplicate = true. The id,
  // problem and problem_detail given are ignored.
  virtual core::Result<CheckpointPut> PutCheckpoint(const CheckpointRow& c) = 0;
  // The host's checkpoints, highest covers first (a fork's newest first), at most `limit`
  // (1..1000).
  virtual core::Result<std::vector<CheckpointRow>> Checkpoints(const std::string& host,
                                                               int64_t limit) = 0;

  // Records a certificate the CA issued (kept as it is when its sha256 is stored already).
  virtual core::Status PutAgentCert(const AgentCertRow& c) = 0;
  // kNotFound when the hub has no record of the certificate.
  virtual core::Result<AgentCertRow> AgentCert(const std::string& sha256) = 0;
  // The certificates issued to `host` ("" = every host), newest first, at most `limit` (1..1000).
  virtual core::Result<std::vector<AgentCertRow>> AgentCerts(const std::string& host,
                                                             int64_t limit) = 0;
  // Revokes the certificate `sha256` at `now_ms` (recording it with host "" when unknown); an
  // already revoked one keeps its first revocation. Returns the row as stored afterwards.
  virtual core::Result<AgentCertRow> RevokeAgentCert(const std::string& sha256, int64_t now_ms,
                                                     const std::string& by,
                                                     const std::string& reason) = 0;
  // Sets first_used_ms of `sha256` when it is 0; true when this call set it (one instance wins).
  virtual core::Result<bool> MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) = 0;

  // Rows of one of the tables agents, messages, incidents, alerts, escalations, agent_status,
  // artifacts, rollouts, attestation_nonces, attested_keys, fleet_incidents, missed_detections,
  // audit_keys, audit_checkpoints, agent_certs, audit_key_pins.
  virtual core::Result<int64_t> Count(const char* table) = 0;

 protected:
  Store() = default;
};

}  // namespace vigil::hub
