#pragma once

// The embedded store (hub::Store on SQLite, one file in WAL mode; schema in docs/hub.md). One
// connection, every call serialised by a mutex, every write one BEGIN IMMEDIATE transaction.
// For one hub process: several processes on one file would be serialised by SQLite's lock but
// are not supported (use hub/store_postgres.h).

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "hub/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace vigil::hub {

class SqliteStore final : public Store {
 public:
  // Opens (creating) the database file and its schema. Errors name the path.
  static core::Result<std::unique_ptr<Store>> Open(const std::string& path,
                                                   const StoreOptions& options);
  ~SqliteStore() override;

  core::Result<IngestResult> Ingest(const IngestMessage& m, int64_t now_ms) override;
  core::Result<std::vector<IngestResult>> IngestBatch(const std::vector<IngestMessage>& ms,
                                                      int64_t now_ms) override;
  core::Result<std::vector<IncidentRow>> Incidents(const IncidentFilter& f) override;
  core::Result<IncidentRow> Incident(int64_t id) override;
  core::Result<std::vector<AlertRow>> Alerts(int64_t incident_id) override;
  core::Result<IncidentRow> Adjudicate(int64_t id, Label label, const std::string& who,
                                       const std::string& note, int64_t now_ms) override;
  core::Result<std::vector<AdjudicationCount>> AdjudicationCounts() override;
  core::Result<std::string> ExportLabels() override;
  core::Result<EscalationRow> OpenEscalation(const EscalationRequest& r, int64_t timeout_ms,
                                             int64_t now_ms, bool* created) override;
  core::Result<EscalationRow> Escalation(int64_t id) override;
  core::Result<std::vector<EscalationRow>> Escalations(bool pending_only,
                                                       const std::string& host) override;
  core::Result<EscalationRow> Decide(int64_t id, Verdict v, const std::string& who,
                                     const std::string& note, int64_t now_ms) override;
  core::Result<std::vector<EscalationRow>> ExpireEscalations(int64_t now_ms) override;
  core::Result<std::vector<AgentRow>> Agents() override;
  core::Status RegisterAgent(const AgentStatusRow& r, int64_t now_ms) override;
  core::Result<AgentStatusRow> Heartbeat(const std::string& host, const std::string& mode,
                                         const std::string& status_json, int64_t now_ms) override;
  core::Result<std::vector<AgentStatusRow>> AgentStatuses() override;
  core::Result<bool> PutArtifact(const ArtifactRow& a) override;
  core::Result<ArtifactRow> Artifact(const std::string& digest, bool content) override;
  core::Result<std::vector<ArtifactRow>> Artifacts() override;
  core::Result<RolloutRow> StartRollout(const std::string& digest, const std::string& group,
                                        const std::string& who, int64_t now_ms) override;
  core::Result<RolloutRow> PromoteRollout(int64_t id, const std::string& who,
                                          int64_t now_ms) override;
  core::Result<std::vector<RolloutRow>> Rollouts() override;
  core::Result<bool> UseNonce(const std::string& nonce, int64_t expires_ms,
                              int64_t now_ms) override;
  core::Status SetAttestation(const std::string& host, const std::string& state,
                              const std::string& reason) override;
  core::Status PutAttestedKey(const AttestedKeyRow& k) override;
  core::Result<AttestedKeyRow> AttestedKey(const std::string& host) override;
  core::Result<FleetRaise> RaiseFleetIncident(const FleetIncidentRow& draft, int64_t window_ms,
                                              int64_t now_ms) override;
  core::Result<std::vector<FleetIncidentRow>> FleetIncidents(int64_t limit,
                                                             int64_t before_id) override;
  core::Result<std::vector<StoredFinding>> RecentFindings(int64_t since_ms,
                                                          int64_t limit) override;
  core::Result<MissedDetectionRow> RecordMissedDetection(const MissedDetectionRow& m) override;
  core::Result<std::vector<MissedDetectionRow>> MissedDetections(int64_t limit) override;
  core::Result<std::vector<StoredFinding>> FindingsAfter(int64_t after_id,
                                                         int64_t limit) override;
  core::Result<std::vector<IncidentFeatures>> TriageFeatures(
      const std::vector<int64_t>& ids) override;
  core::Status SetTriage(const std::vector<TriageMark>& marks) override;
  core::Result<int64_t> CountSuppressed() override;
  core::Result<std::vector<ScoreSample>> ScoreSamples(int64_t since_ms, int64_t limit) override;
  core::Status PutAuditKey(const AuditKeyRow& k) override;
  core::Result<AuditKeyRow> AuditKey(const std::string& host) override;
  core::Status PutAuditKeyPin(const AuditKeyPinRow& p) override;
  core::Result<AuditKeyPinRow> AuditKeyPin(const std::string& host) override;
  core::Result<CheckpointPut> PutCheckpoint(const CheckpointRow& c) override;
  core::Status PutAgentCert(const AgentCertRow& c) override;
  core::Result<AgentCertRow> AgentCert(const std::string& sha256) override;
  core::Result<std::vector<AgentCertRow>> AgentCerts(const std::string& host,
                                                     int64_t limit) override;
  core::Result<AgentCertRow> RevokeAgentCert(const std::string& sha256, int64_t now_ms,
                                             const std::string& by,
                                             const std::string& reason) override;
  core::Result<bool> MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) override;
  core::Result<std::vector<CheckpointRow>> Checkpoints(const std::string& host,
                                                       int64_t limit) override;
  core::Result<int64_t> Count(const char* table) override;

 private:
  SqliteStore(std::string path, sqlite3* db, StoreOptions options)
      : path_(std::move(path)), db_(db), options_(options) {}
  core::Status Fail(std::string_view what) const;
  core::Status Exec(const char* sql);
  // One message, inside the caller's transaction, mu_ held.
  core::Result<IngestResult> IngestLocked(const IngestMessage& m, int64_t now_ms);
  core::Result<int64_t> JoinIncident(const std::string& host, const Finding& f, bool* created);
  core::Result<IncidentRow> IncidentLocked(int64_t id);
  core::Result<EscalationRow> EscalationLocked(int64_t id);
  core::Result<RolloutRow> RolloutLocked(int64_t id);
  // 0 (empty), 1 (no hub_schema table yet) or hub_schema's version.
  core::Result<int> SchemaVersion();
  // Creates the schema or upgrades an older one in place, in one transaction.
  core::Status Migrate();

  // The statement `sql` (a string literal: keyed by its address) prepared once and kept for the
  // store's life (nullptr when it cannot be prepared); mu_ held.
  sqlite3_stmt* Kept(const char* sql);

  const std::string path_;
  sqlite3* db_;
  const StoreOptions options_;
  std::mutex mu_;
  std::unordered_map<const char*, sqlite3_stmt*> kept_;  // ingestion's statements
};

}  // namespace vigil::hub
