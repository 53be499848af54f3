#include "hub/store_sqlite.h"

#include <sqlite3.h>

#include <algorithm>

#include "hub/internal/checkpoint_rows.h"
#include "hub/internal/store_rows.h"

namespace vigil::hub {
namespace {

using internal::kEscalationColumns;
using internal::kIncidentColumns;

constexpr const char* kSqliteSchema = R"sql(
CREATE TABLE IF NOT EXISTS agents (
  host TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
  messages INTEGER NOT NULL, findings INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  host TEXT NOT NULL, message_id TEXT NOT NULL, received_ms INTEGER NOT NULL,
  findings INTEGER NOT NULL, PRIMARY KEY (host, message_id));
CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, pid INTEGER NOT NULL,
  process TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
  alerts INTEGER NOT NULL, verdicts INTEGER NOT NULL, decisions INTEGER NOT NULL,
  max_score REAL, max_severity INTEGER NOT NULL,
  label TEXT, labelled_by TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
  labelled_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS incidents_key ON incidents (host, pid, process, last_ms);
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id INTEGER NOT NULL REFERENCES incidents(id),
  kind TEXT NOT NULL, time_ms INTEGER NOT NULL, severity_id INTEGER NOT NULL,
  uid TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, rule TEXT NOT NULL,
  action TEXT NOT NULL, model TEXT NOT NULL, model_version TEXT NOT NULL, score REAL,
  explanation TEXT NOT NULL, raw TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id);
CREATE TABLE IF NOT EXISTS escalations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, escalation_id TEXT NOT NULL,
  rule TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, pid INTEGER NOT NULL,
  process TEXT NOT NULL, created_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
  default_verdict TEXT NOT NULL, state TEXT NOT NULL, decided_by TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '', decided_ms INTEGER NOT NULL DEFAULT 0,
  UNIQUE (host, escalation_id));
)sql";

// Version 2 (the fleet: docs/hub.md), applied to a version-1 database in place. Version 1 had no
// hub_schema table: a database with an agents table and no hub_schema is version 1.
constexpr const char* kSqliteSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agent_status (
  host TEXT PRIMARY KEY, group_name TEXT NOT NULL, mode TEXT NOT NULL,
  vigil_version TEXT NOT NULL, attestation TEXT NOT NULL, attestation_reason TEXT NOT NULL,
  registered_ms INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS artifacts (
  digest TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
  signature TEXT NOT NULL, key_id TEXT NOT NULL, uploaded_by TEXT NOT NULL,
  uploaded_ms INTEGER NOT NULL, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL REFERENCES artifacts(digest),
  kind TEXT NOT NULL, group_name TEXT NOT NULL, state TEXT NOT NULL, created_by TEXT NOT NULL,
  created_ms INTEGER NOT NULL, promoted_by TEXT NOT NULL DEFAULT '',
  promoted_ms INTEGER NOT NULL DEFAULT 0);
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (2);
)sql";

// Version 3 (attestation: docs/attestation.md), applied after version 2.
constexpr const char* kSqliteSchemaV3 = R"sql(
CREATE TABLE IF NOT EXISTS attestation_nonces (
  nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attested_keys (
  host TEXT PRIMARY KEY, ak_name TEXT NOT NULL, ak_public TEXT NOT NULL,
  ek_sha256 TEXT NOT NULL, trusted_ms INTEGER NOT NULL, quoted_ms INTEGER NOT NULL);
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (3);
)sql";

// Version 4: fleet incidents and missed detections (docs/hub.md), applied after version 3.
constexpr const char* kSqliteSchemaV4 = R"sql(
CREATE TABLE IF NOT EXISTS fleet_incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL,
  hosts TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
  summary TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS fleet_incidents_key ON fleet_incidents (kind, key, last_ms);
CREATE TABLE IF NOT EXISTS missed_detections (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, kind TEXT NOT NULL,
  name TEXT NOT NULL, time_ms INTEGER NOT NULL, note TEXT NOT NULL, recorded_by TEXT NOT NULL,
  recorded_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time_ms);
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (4);
)sql";

// Version 5: the triage model's mark on incidents (hub/triage.h), applied after version 4: each
// column added unless the table has it already.
constexpr std::pair<const char*, const char*> kSqliteSchemaV5Columns[] = {
    {"triage_score", "ALTER TABLE incidents ADD COLUMN triage_score REAL"},
    {"triage_suppressed",
     "ALTER TABLE incidents ADD COLUMN triage_suppressed INTEGER NOT NULL DEFAULT 0"}};
constexpr const char* kSqliteSchemaV5 = R"sql(
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (5);
)sql";

// Version 6: audit checkpoints (docs/hub.md, "Audit checkpoints"), applied after version 5.
constexpr const char* kSqliteSchemaV6 = R"sql(
CREATE TABLE IF NOT EXISTS audit_keys (
  host TEXT PRIMARY KEY, key_id TEXT NOT NULL, public_key TEXT NOT NULL,
  registered_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, seq INTEGER NOT NULL,
  covers INTEGER NOT NULL, chain_hash TEXT NOT NULL, time_ns INTEGER NOT NULL,
  key_id TEXT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL,
  verification TEXT NOT NULL, reason TEXT NOT NULL, problem TEXT NOT NULL,
  problem_detail TEXT NOT NULL, received_ms INTEGER NOT NULL,
  UNIQUE (host, covers, chain_hash));
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (6);
)sql";

// Version 7 changed PostgreSQL's indexes only (hub/store_postgres.cc); SQLite's schema is as
// version 6 left it.
constexpr const char* kSqliteSchemaV7 = R"sql(
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (7);
)sql";

// Version 8: agent certificates and their revocations (docs/hub.md, "Revoking and renewing agent
// certificates"), applied after version 7.
constexpr const char* kSqliteSchemaV8 = R"sql(
CREATE TABLE IF NOT EXISTS agent_certs (
  sha256 TEXT PRIMARY KEY, host TEXT NOT NULL, group_name TEXT NOT NULL, how TEXT NOT NULL,
  replaces TEXT NOT NULL, not_after_s INTEGER NOT NULL, issued_ms INTEGER NOT NULL,
  first_used_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL, revoked_by TEXT NOT NULL,
  revoke_reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS agent_certs_host ON agent_certs (host, issued_ms);
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (8);
)sql";

// Version 9: audit key pins (docs/hub.md, "Pinning a host's audit key"), applied after version 8.
constexpr const char* kSqliteSchemaV9 = R"sql(
CREATE TABLE IF NOT EXISTS audit_key_pins (
  host TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, pinned_by TEXT NOT NULL,
  reason TEXT NOT NULL, pinned_ms INTEGER NOT NULL);
DELETE FROM hub_schema;
INSERT INTO hub_schema (version) VALUES (9);
)sql";

// Bytes bound as a BLOB.
struct Blob {
  const std::string& bytes;
};

// One prepared statement: positional binds from the arguments, rows by Next().
class Sql {
 public:
  Sql(sqlite3* db, const char* text) {
    ok_ = sqlite3_prepare_v2(db, text, -1, &s_, nullptr) == SQLITE_OK;
  }
  // A statement the store keeps prepared (nullptr: it could not be prepared): reset, not
  // finalised, at the end.
  explicit Sql(sqlite3_stmt* kept) : s_(kept), ok_(kept != nullptr), kept_(true) {}
  ~Sql() {
    if (!kept_) {
      sqlite3_finalize(s_);
    } else if (s_ != nullptr) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  template <typename... Args>
  Sql& Bind(const Args&... args) {
    int i = 0;
    (Put(++i, args), ...);
    return *this;
  }
  // A row (true), the end (false; also after an error: see ok()).
  bool Next() {
    if (!ok_) return false;
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) ok_ = false;
    return false;
  }
  bool ok() const { return ok_; }
  int64_t I(int c) const { return sqlite3_column_int64(s_, c); }
  std::string T(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c));
  }
  std::optional<double> D(int c) const {
    if (sqlite3_column_type(s_, c) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(s_, c);
  }
  bool Null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string B(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(s_, c));
  }

 private:
  void Put(int i, int64_t v) { Check(sqlite3_bind_int64(s_, i, v)); }
  void Put(int i, const std::string& v) {
    Check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void Put(int i, const std::optional<double>& v) {
    Check(v ? sqlite3_bind_double(s_, i, *v) : sqlite3_bind_null(s_, i));
  }
  void Put(int i, const Blob& v) {
    Check(sqlite3_bind_blob(s_, i, v.bytes.data(), static_cast<int>(v.bytes.size()),
                            SQLITE_TRANSIENT));
  }
  void Check(int rc) { ok_ = ok_ && rc == SQLITE_OK; }

  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
  bool kept_ = false;
};

// Rolls back unless committed.
class WriteTxn {
 public:
  explicit WriteTxn(sqlite3* db) : db_(db) {
    open_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~WriteTxn() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool open() const { return open_; }
  bool Commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return false;
    open_ = false;
    return true;
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

}  // namespace

core::Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path,
                                                 const StoreOptions& options) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return core::Unavailable("hub store \"" + path + "\": cannot open: " + why);
  }
  std::unique_ptr<SqliteStore> s(new SqliteStore(path, db, options));
  sqlite3_busy_timeout(db, 5000);
  VIGIL_RETURN_IF_ERROR(s->Exec("PRAGMA journal_mode=WAL"));
  VIGIL_RETURN_IF_ERROR(s->Exec("PRAGMA synchronous=NORMAL"));
  VIGIL_RETURN_IF_ERROR(s->Migrate());
  return std::unique_ptr<Store>(std::move(s));
}

core::Result<int> SqliteStore::SchemaVersion() {
  Sql has(db_, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1");
  has.Bind(std::string("hub_schema"));
  if (has.Next()) {
    Sql v(db_, "SELECT MAX(version) FROM hub_schema");
    if (!v.Next()) return Fail("reading the schema version");
    return static_cast<int>(v.I(0));
  }
  if (!has.ok()) return Fail("reading the schema version");
  Sql v1(db_, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1");
  v1.Bind(std::string("agents"));
  if (v1.Next()) return 1;
  if (!v1.ok()) return Fail("reading the schema version");
  return 0;
}

core::Status SqliteStore::Migrate() {
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  VIGIL_ASSIGN_OR_RETURN(const int version, SchemaVersion());
  if (version > kHubSchemaVersionNumber) {
    return core::FailedPrecondition("hub store \"" + path_ + "\": the database has hub schema version " +
                                    std::to_string(version) + ", newer than this hub's " +
                                    std::to_string(kHubSchemaVersionNumber) + ": upgrade the hub");
  }
  if (version == kHubSchemaVersionNumber) return {};
  if (version < 1) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchema));
  if (version < 2) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV2));
  if (version < 3) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV3));
  if (version < 4) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV4));
  if (version < 5) {
    for (const auto& [column, alter] : kSqliteSchemaV5Columns) {
      Sql has(db_, "SELECT 1 FROM pragma_table_info('incidents') WHERE name = ?1");
      has.Bind(std::string(column));
      const bool present = has.Next();
      if (!has.ok()) return Fail("reading the incidents table's columns");
      if (!present) VIGIL_RETURN_IF_ERROR(Exec(alter));
    }
    VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV5));
  }
  if (version < 6) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV6));
  if (version < 7) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV7));
  if (version < 8) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV8));
  if (version < 9) VIGIL_RETURN_IF_ERROR(Exec(kSqliteSchemaV9));
  if (!txn.Commit()) return Fail("commit");
  return {};
}

SqliteStore::~SqliteStore() {
  for (const auto& [sql, stmt] : kept_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

sqlite3_stmt* SqliteStore::Kept(const char* sql) {
  auto it = kept_.find(sql);
  if (it != kept_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return nullptr;
  }
  kept_.emplace(sql, stmt);
  return stmt;
}

core::Status SqliteStore::Fail(std::string_view what) const {
  return core::Unavailable("hub store \"" + path_ + "\": " + std::string(what) + ": " +
                           sqlite3_errmsg(db_));
}

core::Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return core::Unavailable("hub store \"" + path_ + "\": " + why);
  }
  return {};
}

core::Result<int64_t> SqliteStore::JoinIncident(const std::string& host, const Finding& f,
                                                bool* created) {
  const int64_t w = options_.incident_window_ms;
  const std::optional<double> score = f.score;
  const int64_t is_decision = f.kind == FindingKind::kDecision ? 1 : 0;
  Sql find(
      Kept("SELECT id FROM incidents WHERE host = ?1 AND pid = ?2 AND process = ?3 AND "
           "label IS NULL AND first_ms - ?5 <= ?4 AND last_ms + ?5 >= ?4 "
           "ORDER BY last_ms DESC LIMIT 1"));
  find.Bind(host, f.pid, f.process, f.time_ms, w);
  int64_t id = 0;
  if (find.Next()) id = find.I(0);
  if (!find.ok()) return Fail("finding an incident");
  *created = id == 0;
  if (id == 0) {
    Sql ins(
        Kept("INSERT INTO incidents (host, pid, process, first_ms, last_ms, alerts, verdicts, "
             "decisions, max_score, max_severity) VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5, ?6, ?7, ?8)"));
    ins.Bind(host, f.pid, f.process, f.time_ms, 1 - is_decision, is_decision, score,
             int64_t{f.severity_id});
    ins.Next();
    if (!ins.ok()) return Fail("opening an incident");
    return sqlite3_last_insert_rowid(db_);
  }
  Sql up(
      Kept("UPDATE incidents SET first_ms = MIN(first_ms, ?2), last_ms = MAX(last_ms, ?2), "
           "alerts = alerts + 1, verdicts = verdicts + ?3, decisions = decisions + ?4, "
           "max_score = CASE WHEN ?5 IS NULL THEN max_score WHEN max_score IS NULL THEN ?5 "
           "ELSE MAX(max_score, ?5) END, max_severity = MAX(max_severity, ?6) WHERE id = ?1"));
  up.Bind(id, f.time_ms, 1 - is_decision, is_decision, score, int64_t{f.severity_id});
  up.Next();
  if (!up.ok()) return Fail("updating an incident");
  return id;
}

core::Result<IngestResult> SqliteStore::Ingest(const IngestMessage& m, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  VIGIL_ASSIGN_OR_RETURN(IngestResult out, IngestLocked(m, now_ms));
  if (!txn.Commit()) return Fail("commit");
  return out;
}

core::Result<std::vector<IngestResult>> SqliteStore::IngestBatch(
    const std::vector<IngestMessage>& ms, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  std::vector<IngestResult> out;
  out.reserve(ms.size());
  for (const IngestMessage& m : ms) {
    VIGIL_ASSIGN_OR_RETURN(IngestResult r, IngestLocked(m, now_ms));
    out.push_back(std::move(r));
  }
  if (!txn.Commit()) return Fail("commit");
  return out;
}

core::Result<IngestResult> SqliteStore::IngestLocked(const IngestMessage& m, int64_t now_ms) {
  IngestResult out;
  Sql seen(
      Kept("INSERT OR IGNORE INTO messages (host, message_id, received_ms, findings) "
           "VALUES (?1, ?2, ?3, ?4)"));
  seen.Bind(m.host, m.message_id, now_ms, static_cast<int64_t>(m.findings.size()));
  seen.Next();
  if (!seen.ok()) return Fail("recording the message id");
  out.duplicate = sqlite3_changes(db_) == 0;
  const int64_t stored = out.duplicate ? 0 : static_cast<int64_t>(m.findings.size());
  Sql agent(
      Kept("INSERT INTO agents (host, first_seen_ms, last_seen_ms, messages, findings) "
           "VALUES (?1, ?2, ?2, 1, ?3) ON CONFLICT (host) DO UPDATE SET "
           "last_seen_ms = MAX(last_seen_ms, ?2), messages = messages + 1, "
           "findings = findings + ?3"));
  agent.Bind(m.host, now_ms, stored);
  agent.Next();
  if (!agent.ok()) return Fail("recording the agent");
  if (!out.duplicate) {
    for (const Finding& f : m.findings) {
      bool created = false;
      VIGIL_ASSIGN_OR_RETURN(const int64_t incident, JoinIncident(m.host, f, &created));
      if (created) ++out.new_incidents;
      if (std::find(out.incidents.begin(), out.incidents.end(), incident) == out.incidents.end()) {
        out.incidents.push_back(incident);
      }
      Sql ins(
          Kept("INSERT INTO alerts (incident_id, kind, time_ms, severity_id, uid, title, message, "
               "rule, action, model, model_version, score, explanation, raw) VALUES "
               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"));
      ins.Bind(incident, std::string(FindingKindName(f.kind)), f.time_ms, int64_t{f.severity_id},
               f.uid, f.title, f.message, f.rule, f.action, f.model, f.model_version, f.score,
               internal::ExplanationJson(f), f.raw);
      ins.Next();
      if (!ins.ok()) return Fail("storing an alert");
      ++out.findings;
    }
  }
  return out;
}

core::Result<std::vector<IncidentRow>> SqliteStore::Incidents(const IncidentFilter& f) {
  std::lock_guard lock(mu_);
  const std::string sql =
      std::string("SELECT ") + kIncidentColumns +
      " FROM incidents WHERE (?1 = '' OR host = ?1) AND (?2 = 0 OR id < ?2) AND "
      "(?3 = 2 OR (?3 = 1) = (label IS NOT NULL)) AND (?5 = 2 OR triage_suppressed = ?5) "
      "ORDER BY id DESC LIMIT ?4";
  Sql q(db_, sql.c_str());
  const int64_t adjudicated = f.adjudicated ? (*f.adjudicated ? 1 : 0) : 2;
  const int64_t suppressed = f.suppressed ? (*f.suppressed ? 1 : 0) : 2;
  q.Bind(f.host, f.before_id, adjudicated, std::clamp<int64_t>(f.limit, 1, 1000), suppressed);
  std::vector<IncidentRow> out;
  while (q.Next()) out.push_back(internal::IncidentFrom(q));
  if (!q.ok()) return Fail("listing incidents");
  return out;
}

core::Result<IncidentRow> SqliteStore::IncidentLocked(int64_t id) {
  const std::string sql =
      std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE id = ?1";
  Sql q(db_, sql.c_str());
  q.Bind(id);
  if (q.Next()) return internal::IncidentFrom(q);
  if (!q.ok()) return Fail("reading an incident");
  return core::NotFound("incident " + std::to_string(id) + ": no such incident");
}

core::Result<IncidentRow> SqliteStore::Incident(int64_t id) {
  std::lock_guard lock(mu_);
  return IncidentLocked(id);
}

core::Result<std::vector<AlertRow>> SqliteStore::Alerts(int64_t incident_id) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + internal::kAlertColumns +
                          " FROM alerts WHERE incident_id = ?1 ORDER BY time_ms, id";
  Sql q(db_, sql.c_str());
  q.Bind(incident_id);
  std::vector<AlertRow> out;
  while (q.Next()) out.push_back(internal::AlertFrom(q));
  if (!q.ok()) return Fail("reading alerts");
  return out;
}

core::Result<IncidentRow> SqliteStore::Adjudicate(int64_t id, Label label, const std::string& who,
                                            const std::string& note, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  VIGIL_ASSIGN_OR_RETURN(IncidentRow before, IncidentLocked(id));
  Sql up(db_,
         "UPDATE incidents SET label = ?2, labelled_by = ?3, note = ?4, labelled_ms = ?5 "
         "WHERE id = ?1");
  up.Bind(id, std::string(LabelName(label)), who, note, now_ms);
  up.Next();
  if (!up.ok()) return Fail("labelling an incident");
  if (!txn.Commit()) return Fail("commit");
  return before;
}

core::Result<std::vector<AdjudicationCount>> SqliteStore::AdjudicationCounts() {
  std::lock_guard lock(mu_);
  std::vector<AdjudicationCount> out;
  for (const char* kind : {"rule", "model"}) {
    Sql q(db_, internal::AdjudicationCountSql(kind).c_str());
    while (q.Next()) internal::AddAdjudicationCount(out, kind, q.T(0), q.T(1), q.I(2));
    if (!q.ok()) return Fail("counting adjudications");
  }
  Sql missed(db_, internal::kMissedCountSql);
  while (missed.Next()) internal::AddMissedCount(out, missed.T(0), missed.T(1), missed.I(2));
  if (!missed.ok()) return Fail("counting missed detections");
  return out;
}

core::Result<std::string> SqliteStore::ExportLabels() {
  std::lock_guard lock(mu_);
  Sql q(db_, internal::kLabelExportSelect);
  std::string out;
  while (q.Next()) out += internal::LabelLine(q);
  if (!q.ok()) return Fail("exporting labels");
  return out;
}

core::Result<EscalationRow> SqliteStore::EscalationLocked(int64_t id) {
  const std::string sql =
      std::string("SELECT ") + kEscalationColumns + " FROM escalations WHERE id = ?1";
  Sql q(db_, sql.c_str());
  q.Bind(id);
  if (q.Next()) return internal::EscalationFrom(q);
  if (!q.ok()) return Fail("reading an escalation");
  return core::NotFound("escalation " + std::to_string(id) + ": no such escalation");
}

core::Result<EscalationRow> SqliteStore::OpenEscalation(const EscalationRequest& r, int64_t timeout_ms,
                                                  int64_t now_ms, bool* created) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  Sql ins(db_,
          "INSERT OR IGNORE INTO escalations (host, escalation_id, rule, action, reason, pid, "
          "process, created_ms, deadline_ms, default_verdict, state) VALUES "
          "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending')");
  ins.Bind(r.host, r.escalation_id, r.rule, r.action, r.reason, r.pid, r.process, now_ms,
           now_ms + timeout_ms, std::string(VerdictName(r.default_verdict)));
  ins.Next();
  if (!ins.ok()) return Fail("storing an escalation");
  *created = sqlite3_changes(db_) == 1;
  Sql find(db_, "SELECT id FROM escalations WHERE host = ?1 AND escalation_id = ?2");
  find.Bind(r.host, r.escalation_id);
  if (!find.Next()) return Fail("finding an escalation");
  const int64_t id = find.I(0);
  VIGIL_ASSIGN_OR_RETURN(EscalationRow row, EscalationLocked(id));
  if (!txn.Commit()) return Fail("commit");
  return row;
}

core::Result<EscalationRow> SqliteStore::Escalation(int64_t id) {
  std::lock_guard lock(mu_);
  return EscalationLocked(id);
}

core::Result<std::vector<EscalationRow>> SqliteStore::Escalations(bool pending_only,
                                                            const std::string& host) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + kEscalationColumns +
                          " FROM escalations WHERE (?1 = 0 OR state = 'pending') AND "
                          "(?2 = '' OR host = ?2) ORDER BY id DESC LIMIT 1000";
  Sql q(db_, sql.c_str());
  q.Bind(int64_t{pending_only ? 1 : 0}, host);
  std::vector<EscalationRow> out;
  while (q.Next()) out.push_back(internal::EscalationFrom(q));
  if (!q.ok()) return Fail("listing escalations");
  return out;
}

core::Result<EscalationRow> SqliteStore::Decide(int64_t id, Verdict v, const std::string& who,
                                          const std::string& note, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  VIGIL_ASSIGN_OR_RETURN(EscalationRow row, EscalationLocked(id));
  if (row.state != EscalationState::kPending) {
    return core::FailedPrecondition("escalation " + std::to_string(id) + ": already " +
                                    std::string(EscalationStateName(row.state)));
  }
  if (now_ms >= row.deadline_ms) {
    return core::FailedPrecondition("escalation " + std::to_string(id) +
                                    ": its deadline has passed (the default applies)");
  }
  row.state = v == Verdict::kApprove ? EscalationState::kApproved : EscalationState::kDenied;
  Sql up(db_,
         "UPDATE escalations SET state = ?2, decided_by = ?3, note = ?4, decided_ms = ?5 "
         "WHERE id = ?1 AND state = 'pending'");
  up.Bind(id, std::string(EscalationStateName(row.state)), who, note, now_ms);
  up.Next();
  if (!up.ok()) return Fail("deciding an escalation");
  if (!txn.Commit()) return Fail("commit");
  row.decided_by = who;
  row.note = note;
  row.decided_ms = now_ms;
  return row;
}

core::Result<std::vector<EscalationRow>> SqliteStore::ExpireEscalations(int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  const std::string sql = std::string("SELECT ") + kEscalationColumns +
                          " FROM escalations WHERE state = 'pending' AND deadline_ms <= ?1";
  std::vector<EscalationRow> due;
  {
    Sql q(db_, sql.c_str());
    q.Bind(now_ms);
    while (q.Next()) due.push_back(internal::EscalationFrom(q));
    if (!q.ok()) return Fail("finding due escalations");
  }
  for (EscalationRow& r : due) {
    Sql up(db_,
           "UPDATE escalations SET state = 'timed_out', decided_by = 'hub', "
           "decided_ms = ?2 WHERE id = ?1");
    up.Bind(r.id, now_ms);
    up.Next();
    if (!up.ok()) return Fail("timing out an escalation");
    r.state = EscalationState::kTimedOut;
    r.decided_by = "hub";
    r.decided_ms = now_ms;
  }
  if (!txn.Commit()) return Fail("commit");
  return due;
}

core::Result<std::vector<AgentRow>> SqliteStore::Agents() {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "SELECT host, first_seen_ms, last_seen_ms, messages, findings FROM agents "
        "ORDER BY host");
  std::vector<AgentRow> out;
  while (q.Next()) out.push_back({q.T(0), q.I(1), q.I(2), q.I(3), q.I(4)});
  if (!q.ok()) return Fail("listing agents");
  return out;
}

core::Status SqliteStore::RegisterAgent(const AgentStatusRow& r, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "INSERT INTO agent_status (host, group_name, mode, vigil_version, attestation, "
        "attestation_reason, registered_ms, heartbeat_ms, status) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8) ON CONFLICT (host) DO UPDATE SET "
        "group_name = ?2, mode = ?3, vigil_version = ?4, attestation = ?5, "
        "attestation_reason = ?6, registered_ms = ?7, heartbeat_ms = ?7, status = ?8");
  q.Bind(r.host, r.group, r.mode, r.vigil_version, r.attestation, r.attestation_reason, now_ms,
         r.status_json);
  q.Next();
  if (!q.ok()) return Fail("registering an agent");
  return {};
}

core::Result<AgentStatusRow> SqliteStore::Heartbeat(const std::string& host,
                                                    const std::string& mode,
                                                    const std::string& status_json,
                                                    int64_t now_ms) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("UPDATE agent_status SET mode = ?2, status = ?3, "
                                      "heartbeat_ms = MAX(heartbeat_ms, ?4) WHERE host = ?1 "
                                      "RETURNING ") +
                          internal::kAgentStatusColumns;
  Sql q(db_, sql.c_str());
  q.Bind(host, mode, status_json, now_ms);
  if (q.Next()) {
    AgentStatusRow r = internal::AgentStatusFrom(q);
    while (q.Next()) {
    }
    if (!q.ok()) return Fail("recording a heartbeat");
    return r;
  }
  if (!q.ok()) return Fail("recording a heartbeat");
  return core::NotFound("agent " + host + ": not registered (POST /v1/agents/register first)");
}

core::Result<std::vector<AgentStatusRow>> SqliteStore::AgentStatuses() {
  std::lock_guard lock(mu_);
  const std::string sql =
      std::string("SELECT ") + internal::kAgentStatusColumns + " FROM agent_status ORDER BY host";
  Sql q(db_, sql.c_str());
  std::vector<AgentStatusRow> out;
  while (q.Next()) out.push_back(internal::AgentStatusFrom(q));
  if (!q.ok()) return Fail("listing agents");
  return out;
}

core::Result<bool> SqliteStore::PutArtifact(const ArtifactRow& a) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "INSERT OR IGNORE INTO artifacts (digest, kind, name, size, signature, key_id, "
        "uploaded_by, uploaded_ms, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  q.Bind(a.digest, a.kind, a.name, a.size, a.signature, a.key_id, a.uploaded_by, a.uploaded_ms,
         Blob{a.content});
  q.Next();
  if (!q.ok()) return Fail("storing an artifact");
  return sqlite3_changes(db_) != 0;
}

core::Result<ArtifactRow> SqliteStore::Artifact(const std::string& digest, bool content) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + internal::kArtifactColumns +
                          (content ? ", content" : "") + " FROM artifacts WHERE digest = ?1";
  Sql q(db_, sql.c_str());
  q.Bind(digest);
  if (q.Next()) {
    ArtifactRow r = internal::ArtifactFrom(q);
    if (content) r.content = q.B(8);
    return r;
  }
  if (!q.ok()) return Fail("reading an artifact");
  return core::NotFound("artifact sha256:" + digest + ": no such artifact");
}

core::Result<std::vector<ArtifactRow>> SqliteStore::Artifacts() {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + internal::kArtifactColumns +
                          " FROM artifacts ORDER BY uploaded_ms DESC, digest";
  Sql q(db_, sql.c_str());
  std::vector<ArtifactRow> out;
  while (q.Next()) out.push_back(internal::ArtifactFrom(q));
  if (!q.ok()) return Fail("listing artifacts");
  return out;
}

core::Result<RolloutRow> SqliteStore::RolloutLocked(int64_t id) {
  const std::string sql =
      std::string("SELECT ") + internal::kRolloutColumns + " FROM rollouts WHERE id = ?1";
  Sql q(db_, sql.c_str());
  q.Bind(id);
  if (q.Next()) return internal::RolloutFrom(q);
  if (!q.ok()) return Fail("reading a rollout");
  return core::NotFound("rollout " + std::to_string(id) + ": no such rollout");
}

core::Result<RolloutRow> SqliteStore::StartRollout(const std::string& digest,
                                                   const std::string& group,
                                                   const std::string& who, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  Sql kind(db_, "SELECT kind FROM artifacts WHERE digest = ?1");
  kind.Bind(digest);
  if (!kind.Next()) {
    if (!kind.ok()) return Fail("reading an artifact");
    return core::NotFound("artifact sha256:" + digest + ": no such artifact");
  }
  Sql ins(db_,
          "INSERT INTO rollouts (digest, kind, group_name, state, created_by, created_ms) "
          "VALUES (?1, ?2, ?3, 'canary', ?4, ?5)");
  ins.Bind(digest, kind.T(0), group, who, now_ms);
  ins.Next();
  if (!ins.ok()) return Fail("starting a rollout");
  VIGIL_ASSIGN_OR_RETURN(RolloutRow r, RolloutLocked(sqlite3_last_insert_rowid(db_)));
  if (!txn.Commit()) return Fail("commit");
  return r;
}

core::Result<RolloutRow> SqliteStore::PromoteRollout(int64_t id, const std::string& who,
                                                     int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  VIGIL_ASSIGN_OR_RETURN(RolloutRow r, RolloutLocked(id));
  if (r.state != "canary") {
    return core::FailedPrecondition("rollout " + std::to_string(id) + ": already promoted");
  }
  Sql up(db_,
         "UPDATE rollouts SET state = 'promoted', promoted_by = ?2, promoted_ms = ?3 "
         "WHERE id = ?1 AND state = 'canary'");
  up.Bind(id, who, now_ms);
  up.Next();
  if (!up.ok()) return Fail("promoting a rollout");
  VIGIL_ASSIGN_OR_RETURN(r, RolloutLocked(id));
  if (!txn.Commit()) return Fail("commit");
  return r;
}

core::Result<std::vector<RolloutRow>> SqliteStore::Rollouts() {
  std::lock_guard lock(mu_);
  const std::string sql =
      std::string("SELECT ") + internal::kRolloutColumns + " FROM rollouts ORDER BY id DESC";
  Sql q(db_, sql.c_str());
  std::vector<RolloutRow> out;
  while (q.Next()) out.push_back(internal::RolloutFrom(q));
  if (!q.ok()) return Fail("listing rollouts");
  return out;
}

core::Result<bool> SqliteStore::UseNonce(const std::string& nonce, int64_t expires_ms,
                                         int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  Sql gc(db_, "DELETE FROM attestation_nonces WHERE expires_ms <= ?1");
  gc.Bind(now_ms);
  gc.Next();
  if (!gc.ok()) return Fail("dropping expired nonces");
  Sql q(db_, "INSERT OR IGNORE INTO attestation_nonces (nonce, expires_ms) VALUES (?1, ?2)");
  q.Bind(nonce, expires_ms);
  q.Next();
  if (!q.ok()) return Fail("recording a nonce");
  const bool fresh = sqlite3_changes(db_) != 0;
  if (!txn.Commit()) return Fail("commit");
  return fresh;
}

core::Status SqliteStore::SetAttestation(const std::string& host, const std::string& state,
                                         const std::string& reason) {
  std::lock_guard lock(mu_);
  Sql q(db_, "UPDATE agent_status SET attestation = ?2, attestation_reason = ?3 WHERE host = ?1");
  q.Bind(host, state, reason);
  q.Next();
  if (!q.ok()) return Fail("recording an attestation");
  return {};
}

core::Status SqliteStore::PutAttestedKey(const AttestedKeyRow& k) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "INSERT OR REPLACE INTO attested_keys (host, ak_name, ak_public, ek_sha256, trusted_ms, "
        "quoted_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  q.Bind(k.host, k.ak_name, k.ak_public, k.ek_sha256, k.trusted_ms, k.quoted_ms);
  q.Next();
  if (!q.ok()) return Fail("recording an attested key");
  return {};
}

core::Result<AttestedKeyRow> SqliteStore::AttestedKey(const std::string& host) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "SELECT host, ak_name, ak_public, ek_sha256, trusted_ms, quoted_ms FROM attested_keys "
        "WHERE host = ?1");
  q.Bind(host);
  if (q.Next()) return AttestedKeyRow{q.T(0), q.T(1), q.T(2), q.T(3), q.I(4), q.I(5)};
  if (!q.ok()) return Fail("reading an attested key");
  return core::NotFound("host " + host + ": no attested key");
}

core::Result<FleetRaise> SqliteStore::RaiseFleetIncident(const FleetIncidentRow& draft,
                                                          int64_t window_ms, int64_t now_ms) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  FleetRaise out;
  const std::string sql = std::string("SELECT ") + internal::kFleetIncidentColumns +
                          " FROM fleet_incidents WHERE kind = ?1 AND key = ?2 AND "
                          "first_ms - ?5 <= ?4 AND last_ms + ?5 >= ?3 ORDER BY last_ms DESC "
                          "LIMIT 1";
  Sql find(db_, sql.c_str());
  find.Bind(draft.kind, draft.key, draft.first_ms, draft.last_ms, window_ms);
  const bool found = find.Next();
  if (!find.ok()) return Fail("finding a fleet incident");
  if (found) {
    out.row = internal::FleetIncidentFrom(find);
    out.changed = internal::MergeFleetDraft(&out.row, draft);
    if (!out.changed) return out;
    out.row.updated_ms = now_ms;
    Sql up(db_,
           "UPDATE fleet_incidents SET hosts = ?2, first_ms = ?3, last_ms = ?4, summary = ?5, "
           "updated_ms = ?6 WHERE id = ?1");
    up.Bind(out.row.id, internal::FleetHostsJson(out.row.hosts), out.row.first_ms,
            out.row.last_ms, out.row.summary, now_ms);
    up.Next();
    if (!up.ok()) return Fail("updating a fleet incident");
  } else {
    out.row = draft;
    out.row.created_ms = out.row.updated_ms = now_ms;
    Sql ins(db_,
            "INSERT INTO fleet_incidents (kind, key, hosts, first_ms, last_ms, summary, "
            "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)");
    ins.Bind(draft.kind, draft.key, internal::FleetHostsJson(draft.hosts), draft.first_ms,
             draft.last_ms, draft.summary, now_ms);
    ins.Next();
    if (!ins.ok()) return Fail("storing a fleet incident");
    out.row.id = sqlite3_last_insert_rowid(db_);
    out.created = true;
  }
  if (!txn.Commit()) return Fail("commit");
  return out;
}

core::Result<std::vector<FleetIncidentRow>> SqliteStore::FleetIncidents(int64_t limit,
                                                                        int64_t before_id) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + internal::kFleetIncidentColumns +
                          " FROM fleet_incidents WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC "
                          "LIMIT ?2";
  Sql q(db_, sql.c_str());
  q.Bind(before_id, std::clamp<int64_t>(limit, 1, 1000));
  std::vector<FleetIncidentRow> out;
  while (q.Next()) out.push_back(internal::FleetIncidentFrom(q));
  if (!q.ok()) return Fail("listing fleet incidents");
  return out;
}

core::Result<std::vector<StoredFinding>> SqliteStore::RecentFindings(int64_t since_ms,
                                                                     int64_t limit) {
  std::lock_guard lock(mu_);
  Sql q(db_, internal::kRecentFindingsSql);
  q.Bind(since_ms, limit);
  std::vector<StoredFinding> out;
  while (q.Next()) out.push_back({q.T(0), q.T(1), q.I(2)});
  if (!q.ok()) return Fail("reading recent findings");
  std::reverse(out.begin(), out.end());
  return out;
}

core::Result<std::vector<StoredFinding>> SqliteStore::FindingsAfter(int64_t after_id,
                                                                    int64_t limit) {
  std::lock_guard lock(mu_);
  Sql q(Kept(internal::kFindingsAfterSql));
  q.Bind(after_id, limit);
  std::vector<StoredFinding> out;
  while (q.Next()) out.push_back({q.T(0), q.T(1), q.I(2)});
  if (!q.ok()) return Fail("reading findings");
  return out;
}

core::Result<std::vector<IncidentFeatures>> SqliteStore::TriageFeatures(
    const std::vector<int64_t>& ids) {
  std::lock_guard lock(mu_);
  std::vector<IncidentFeatures> out;
  for (const int64_t id : ids) {
    Sql q(Kept(internal::kIncidentFeatureSql));
    q.Bind(id);
    if (q.Next()) out.push_back(internal::IncidentFeaturesFrom(q));
    if (!q.ok()) return Fail("reading an incident's triage features");
  }
  return out;
}

core::Status SqliteStore::SetTriage(const std::vector<TriageMark>& marks) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  for (const TriageMark& m : marks) {
    Sql q(Kept("UPDATE incidents SET triage_score = ?2, triage_suppressed = ?3 WHERE id = ?1"));
    q.Bind(m.id, std::optional<double>(m.score), int64_t{m.suppressed ? 1 : 0});
    q.Next();
    if (!q.ok()) return Fail("marking an incident's triage");
  }
  if (!txn.Commit()) return Fail("commit");
  return {};
}

core::Result<int64_t> SqliteStore::CountSuppressed() {
  std::lock_guard lock(mu_);
  Sql q(db_, "SELECT COUNT(*) FROM incidents WHERE triage_suppressed = 1");
  if (!q.Next()) return Fail("counting suppressed incidents");
  return q.I(0);
}

core::Result<MissedDetectionRow> SqliteStore::RecordMissedDetection(const MissedDetectionRow& m) {
  std::lock_guard lock(mu_);
  Sql ins(db_,
          "INSERT INTO missed_detections (host, kind, name, time_ms, note, recorded_by, "
          "recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  ins.Bind(m.host, m.kind, m.name, m.time_ms, m.note, m.recorded_by, m.recorded_ms);
  ins.Next();
  if (!ins.ok()) return Fail("storing a missed detection");
  MissedDetectionRow out = m;
  out.id = sqlite3_last_insert_rowid(db_);
  return out;
}

core::Result<std::vector<MissedDetectionRow>> SqliteStore::MissedDetections(int64_t limit) {
  std::lock_guard lock(mu_);
  const std::string sql = std::string("SELECT ") + internal::kMissedColumns +
                          " FROM missed_detections ORDER BY id DESC LIMIT ?1";
  Sql q(db_, sql.c_str());
  q.Bind(std::clamp<int64_t>(limit, 1, 1000));
  std::vector<MissedDetectionRow> out;
  while (q.Next()) out.push_back(internal::MissedFrom(q));
  if (!q.ok()) return Fail("listing missed detections");
  return out;
}

core::Result<std::vector<ScoreSample>> SqliteStore::ScoreSamples(int64_t since_ms,
                                                                 int64_t limit) {
  std::lock_guard lock(mu_);
  Sql q(db_, internal::kScoreSamplesSql);
  q.Bind(since_ms, limit);
  std::vector<ScoreSample> out;
  while (q.Next()) out.push_back({q.T(0), q.I(1), q.D(2).value_or(0)});
  if (!q.ok()) return Fail("reading scores");
  std::reverse(out.begin(), out.end());
  return out;
}

core::Status SqliteStore::PutAuditKey(const AuditKeyRow& k) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "INSERT OR REPLACE INTO audit_keys (host, key_id, public_key, registered_ms) VALUES "
        "(?1, ?2, ?3, ?4)");
  q.Bind(k.host, k.key_id, k.public_key, k.registered_ms);
  q.Next();
  if (!q.ok()) return Fail("recording an audit key");
  return {};
}

core::Result<AuditKeyRow> SqliteStore::AuditKey(const std::string& host) {
  std::lock_guard lock(mu_);
  Sql q(db_, "SELECT host, key_id, public_key, registered_ms FROM audit_keys WHERE host = ?1");
  q.Bind(host);
  if (q.Next()) return AuditKeyRow{q.T(0), q.T(1), q.T(2), q.I(3)};
  if (!q.ok()) return Fail("reading an audit key");
  return core::NotFound("host " + host + ": no audit key registered");
}

core::Status SqliteStore::PutAuditKeyPin(const AuditKeyPinRow& p) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "INSERT OR REPLACE INTO audit_key_pins (host, fingerprint, pinned_by, reason, pinned_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
  q.Bind(p.host, p.fingerprint, p.pinned_by, p.reason, p.pinned_ms);
  q.Next();
  if (!q.ok()) return Fail("recording an audit key pin");
  return {};
}

core::Result<AuditKeyPinRow> SqliteStore::AuditKeyPin(const std::string& host) {
  std::lock_guard lock(mu_);
  Sql q(db_,
        "SELECT host, fingerprint, pinned_by, reason, pinned_ms FROM audit_key_pins WHERE host = "
        "?1");
  q.Bind(host);
  if (q.Next()) return AuditKeyPinRow{q.T(0), q.T(1), q.T(2), q.T(3), q.I(4)};
  if (!q.ok()) return Fail("reading an audit key pin");
  return core::NotFound("host " + host + ": no audit key pinned");
}

core::Result<CheckpointPut> SqliteStore::PutCheckpoint(const CheckpointRow& c) {
  std::lock_guard lock(mu_);
  WriteTxn txn(db_);
  if (!txn.open()) return Fail("begin");
  const std::string cols = internal::kCheckpointColumns;
  auto read = [&](const std::string& where,
                  auto... args) -> core::Result<std::vector<CheckpointRow>> {
    Sql q(db_, ("SELECT " + cols + " FROM audit_checkpoints WHERE " + where).c_str());
    q.Bind(args...);
    std::vector<CheckpointRow> found;
    while (q.Next()) found.push_back(internal::CheckpointFrom(q));
    if (!q.ok()) return Fail("reading audit checkpoints");
    return found;
  };
  CheckpointPut out;
  VIGIL_ASSIGN_OR_RETURN(auto same,
                         read("host = ?1 AND covers = ?2 ORDER BY id", c.host, c.covers));
  for (const CheckpointRow& r : same) {
    if (r.chain_hash == c.chain_hash) {
      out.row = r;
      out.duplicate = true;
      return out;
    }
  }
  std::erase_if(same, [](const CheckpointRow& r) { return r.verification == "bad-signature"; });
  VIGIL_ASSIGN_OR_RETURN(
      auto below, read("host = ?1 AND covers < ?2 AND verification <> 'bad-signature' "
                       "ORDER BY covers DESC, id DESC LIMIT 1",
                       c.host, c.covers));
  VIGIL_ASSIGN_OR_RETURN(
      auto above, read("host = ?1 AND covers > ?2 AND verification <> 'bad-signature' "
                       "ORDER BY covers ASC, id DESC LIMIT 1",
                       c.host, c.covers));
  out.row = c;
  ClassifyCheckpoint(&out.row, same, below.empty() ? nullptr : &below[0],
                     above.empty() ? nullptr : &above[0]);
  Sql ins(db_,
          "INSERT INTO audit_checkpoints (host, seq, covers, chain_hash, time_ns, key_id, "
          "public_key, signature, verification, reason, problem, problem_detail, received_ms) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  const CheckpointRow& r = out.row;
  ins.Bind(r.host, r.seq, r.covers, r.chain_hash, r.time_ns, r.key_id, r.public_key, r.signature,
           r.verification, r.reason, r.problem, r.problem_detail, r.received_ms);
  ins.Next();
  if (!ins.ok()) return Fail("storing an audit checkpoint");
  out.row.id = sqlite3_last_insert_rowid(db_);
  if (!txn.Commit()) return Fail("commit");
  return out;
}

core::Result<std::vector<CheckpointRow>> SqliteStore::Checkpoints(const std::string& host,
                                                                  int64_t limit) {
  std::lock_guard lock(mu_);
  Sql q(db_, (std::string("SELECT ") + internal::kCheckpointColumns +
              " FROM audit_checkpoints WHERE host = ?1 ORDER BY covers DESC, id DESC LIMIT ?2")
                 .c_str());
  q.Bind(host, std::clamp<int64_t>(limit, 1, 1000));
  std::vector<CheckpointRow> out;
  while (q.Next()) out.push_back(internal::CheckpointFrom(q));
  if (!q.ok()) return Fail("listing audit checkpoints");
  return out;
}

namespace {
AgentCertRow AgentCertOf(Sql& q) {
  return AgentCertRow{q.T(0), q.T(1), q.T(2), q.T(3), q.T(4), q.I(5),
                      q.I(6), q.I(7), q.I(8), q.T(9), q.T(10)};
}
}  // namespace

core::Status SqliteStore::PutAgentCert(const AgentCertRow& c) {
  std::lock_guard lock(mu_);
  Sql q(db_, (std::string("INSERT OR IGNORE INTO agent_certs (") + internal::kAgentCertColumns +
              ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
                 .c_str());
  q.Bind(c.sha256, c.host, c.group, c.how, c.replaces, c.not_after_s, c.issued_ms,
         c.first_used_ms, c.revoked_ms, c.revoked_by, c.revoke_reason);
  q.Next();
  if (!q.ok()) return Fail("recording an agent certificate");
  return {};
}

core::Result<AgentCertRow> SqliteStore::AgentCert(const std::string& sha256) {
  std::lock_guard lock(mu_);
  Sql q(db_, (std::string("SELECT ") + internal::kAgentCertColumns +
              " FROM agent_certs WHERE sha256 = ?1")
                 .c_str());
  q.Bind(sha256);
  if (q.Next()) return AgentCertOf(q);
  if (!q.ok()) return Fail("reading an agent certificate");
  return core::NotFound("agent certificate sha256:" + sha256 + ": not issued by this hub");
}

core::Result<std::vector<AgentCertRow>> SqliteStore::AgentCerts(const std::string& host,
                                                                int64_t limit) {
  std::lock_guard lock(mu_);
  Sql q(db_, (std::string("SELECT ") + internal::kAgentCertColumns +
              " FROM agent_certs WHERE ?1 = '' OR host = ?1 ORDER BY issued_ms DESC, sha256 "
              "LIMIT ?2")
                 .c_str());
  q.Bind(host, limit);
  std::vector<AgentCertRow> out;
  while (q.Next()) out.push_back(AgentCertOf(q));
  if (!q.ok()) return Fail("listing agent certificates");
  return out;
}

core::Result<AgentCertRow> SqliteStore::RevokeAgentCert(const std::string& sha256, int64_t now_ms,
                                                        const std::string& by,
                                                        const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    WriteTxn txn(db_);
    if (!txn.open()) return Fail("begin");
    Sql add(db_, (std::string("INSERT OR IGNORE INTO agent_certs (") +
                  internal::kAgentCertColumns +
                  ") VALUES (?1, '', '', 'revoked', '', 0, ?2, 0, 0, '', '')")
                     .c_str());
    add.Bind(sha256, now_ms);
    add.Next();
    if (!add.ok()) return Fail("revoking an agent certificate");
    Sql q(db_,
          "UPDATE agent_certs SET revoked_ms = ?2, revoked_by = ?3, revoke_reason = ?4 "
          "WHERE sha256 = ?1 AND revoked_ms = 0");
    q.Bind(sha256, now_ms, by, reason);
    q.Next();
    if (!q.ok()) return Fail("revoking an agent certificate");
    if (!txn.Commit()) return Fail("commit");
  }
  return AgentCert(sha256);
}

core::Result<bool> SqliteStore::MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Sql q(db_, "UPDATE agent_certs SET first_used_ms = ?2 WHERE sha256 = ?1 AND first_used_ms = 0");
  q.Bind(sha256, now_ms);
  q.Next();
  if (!q.ok()) return Fail("marking an agent certificate used");
  return sqlite3_changes(db_) == 1;
}

core::Result<int64_t> SqliteStore::Count(const char* table) {
  std::lock_guard lock(mu_);
  if (!internal::IsStoreTable(table)) return core::InvalidArgument(std::string("no table ") + table);
  Sql q(db_, (std::string("SELECT COUNT(*) FROM ") + table).c_str());
  if (!q.Next()) return Fail("counting");
  return q.I(0);
}

}  // namespace vigil::hub
