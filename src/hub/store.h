#pragma once

// The hub's embedded store (SQLite, one file; schema in docs/hub.md): agents, ingested message
// ids, incidents and their alerts, adjudications, escalations. Thread-safe: one connection,
// every call serialised by a mutex, every write one transaction.
//
// Ingestion is idempotent per (host, message_id): a message whose id was already stored is
// acknowledged as a duplicate and changes nothing. Each finding joins the open (unadjudicated)
// incident of the same host, pid and process name whose time span, widened by the incident
// window on both sides, covers the finding's time; otherwise it opens a new incident.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hub/requests.h"

struct sqlite3;

namespace vigil::hub {

struct StoreOptions {
  int64_t incident_window_ms = 300'000;
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

// Adjudicated incidents per rule or model that fired in them.
struct AdjudicationCount {
  std::string kind;  // "rule" or "model"
  std::string name;
  int64_t true_positive = 0, false_positive = 0, benign = 0;
};

class Store {
 public:
  // Opens (creating) the database file and its schema. Errors name the path.
  static core::Result<std::unique_ptr<Store>> Open(const std::string& path,
                                                   const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  core::Result<IngestResult> Ingest(const IngestMessage& m, int64_t now_ms);

  core::Result<std::vector<IncidentRow>> Incidents(const IncidentFilter& f);
  // kNotFound for an unknown id.
  core::Result<IncidentRow> Incident(int64_t id);
  core::Result<std::vector<AlertRow>> Alerts(int64_t incident_id);
  // Labels (or relabels) an incident; returns it as it was before. kNotFound for an unknown id.
  core::Result<IncidentRow> Adjudicate(int64_t id, Label label, const std::string& who,
                                       const std::string& note, int64_t now_ms);
  core::Result<std::vector<AdjudicationCount>> AdjudicationCounts();
  // Every adjudicated incident as one line of docs/triage-labels.md's format, oldest first.
  core::Result<std::string> ExportLabels();

  // Stores a new escalation (deadline = now + timeout), or returns the one already stored for
  // (host, escalation_id) with *created = false.
  core::Result<EscalationRow> OpenEscalation(const EscalationRequest& r, int64_t timeout_ms,
                                             int64_t now_ms, bool* created);
  core::Result<EscalationRow> Escalation(int64_t id);
  core::Result<std::vector<EscalationRow>> Escalations(bool pending_only, const std::string& host);
  // kNotFound for an unknown id; kFailedPrecondition when it is no longer pending.
  core::Result<EscalationRow> Decide(int64_t id, Verdict v, const std::string& who,
                                     const std::string& note, int64_t now_ms);
  // Times out every pending escalation whose deadline is at or before now; returns them.
  core::Result<std::vector<EscalationRow>> ExpireEscalations(int64_t now_ms);

  core::Result<std::vector<AgentRow>> Agents();
  core::Result<int64_t> Count(const char* table);

 private:
  Store(std::string path, sqlite3* db, StoreOptions options)
      : path_(std::move(path)), db_(db), options_(options) {}
  core::Status Fail(std::string_view what) const;
  core::Status Exec(const char* sql);
  core::Result<int64_t> JoinIncident(const std::string& host, const Finding& f, bool* created);
  core::Result<IncidentRow> IncidentLocked(int64_t id);
  core::Result<EscalationRow> EscalationLocked(int64_t id);

  const std::string path_;
  sqlite3* db_;
  const StoreOptions options_;
  std::mutex mu_;
};

}  // namespace vigil::hub
