#include "hub/store_postgres.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <libpq-fe.h>

#include <pqxx/pqxx>
#include <set>
#include <tuple>
#include <type_traits>
#include <vector>

#include "govern/attest.h"
#include "hub/internal/checkpoint_rows.h"
#include "hub/internal/store_rows.h"
#include "hub/store_location.h"

namespace vigil::hub {
namespace {

using internal::kEscalationColumns;
using internal::kIncidentColumns;

// Serialises schema creation between instances (advisory locks are per database).
constexpr int64_t kPgSchemaLockKey = 0x7669'6769'6c68'7562;  // "vigilhub"
constexpr int kPgAttempts = 5;

constexpr const char* kPgSchema = R"sql(
CREATE TABLE IF NOT EXISTS agents (
  host TEXT PRIMARY KEY, first_seen_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL,
  messages BIGINT NOT NULL, findings BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  host TEXT NOT NULL, message_id TEXT NOT NULL, received_ms BIGINT NOT NULL,
  findings BIGINT NOT NULL, PRIMARY KEY (host, message_id));
CREATE TABLE IF NOT EXISTS incidents (
  id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL,
  process TEXT NOT NULL, first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL,
  alerts BIGINT NOT NULL, verdicts BIGINT NOT NULL, decisions BIGINT NOT NULL,
  max_score DOUBLE PRECISION, max_severity BIGINT NOT NULL,
  label TEXT, labelled_by TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
  labelled_ms BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (host, pid, process, last_ms)
  WHERE label IS NULL;
CREATE TABLE IF NOT EXISTS alerts (
  id BIGSERIAL PRIMARY KEY, incident_id BIGINT NOT NULL REFERENCES incidents(id),
  kind TEXT NOT NULL, time_ms BIGINT NOT NULL, severity_id BIGINT NOT NULL,
  uid TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, rule TEXT NOT NULL,
  action TEXT NOT NULL, model TEXT NOT NULL, model_version TEXT NOT NULL,
  score DOUBLE PRECISION, explanation TEXT NOT NULL, raw TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id);
CREATE TABLE IF NOT EXISTS escalations (
  id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, escalation_id TEXT NOT NULL,
  rule TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, pid BIGINT NOT NULL,
  process TEXT NOT NULL, created_ms BIGINT NOT NULL, deadline_ms BIGINT NOT NULL,
  default_verdict TEXT NOT NULL, state TEXT NOT NULL, decided_by TEXT NOT NULL DEFAULT '',
  note TEXT NOT NULL DEFAULT '', decided_ms BIGINT NOT NULL DEFAULT 0,
  UNIQUE (host, escalation_id));
CREATE INDEX IF NOT EXISTS escalations_pending ON escalations (deadline_ms)
  WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER NOT NULL);
)sql";

// Version 4: fleet incidents and missed detections (docs/hub.md), applied after version 3.
constexpr const char* kPgSchemaV4 = R"sql(
CREATE TABLE IF NOT EXISTS fleet_incidents (
  id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, hosts TEXT NOT NULL,
  first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, summary TEXT NOT NULL,
  created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS fleet_incidents_key ON fleet_incidents (kind, key, last_ms);
CREATE TABLE IF NOT EXISTS missed_detections (
  id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
  time_ms BIGINT NOT NULL, note TEXT NOT NULL, recorded_by TEXT NOT NULL,
  recorded_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time_ms);
)sql";

// Version 5: the triage model's mark on incidents (hub/triage.h), applied after version 4.
constexpr const char* kPgSchemaV5 = R"sql(
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS triage_score DOUBLE PRECISION;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS triage_suppressed INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 6: audit checkpoints (docs/hub.md, "Audit checkpoints"), applied after version 5.
constexpr const char* kPgSchemaV6 = R"sql(
CREATE TABLE IF NOT EXISTS audit_keys (
  host TEXT PRIMARY KEY, key_id TEXT NOT NULL, public_key TEXT NOT NULL,
  registered_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, seq BIGINT NOT NULL, covers BIGINT NOT NULL,
  chain_hash TEXT NOT NULL, time_ns BIGINT NOT NULL, key_id TEXT NOT NULL,
  public_key TEXT NOT NULL, signature TEXT NOT NULL, verification TEXT NOT NULL,
  reason TEXT NOT NULL, problem TEXT NOT NULL, problem_detail TEXT NOT NULL,
  received_ms BIGINT NOT NULL, UNIQUE (host, covers, chain_hash));
)sql";

// Version 7: cheaper ingest (docs/benchmarks.md, "Where PostgreSQL's time goes"), applied after
// version 6. The open-incident index no longer holds last_ms and incidents' pages keep half their
// room, so that a batch's UPDATE of the incidents its findings join is a HOT update (no index
// entries, a quarter of the WAL); the lookup reads a process's open incidents and filters their
// time span. Alerts lose their foreign key to incidents: its check was a query per alert (a fifth
// of the server's ingest CPU). Nothing deletes incidents, and IngestIn writes each alert in the
// transaction that inserted or locked its incident (hub_store_test checks no alert is orphaned).
constexpr const char* kPgSchemaV7 = R"sql(
DROP INDEX IF EXISTS incidents_open;
CREATE INDEX incidents_open ON incidents (host, pid, process) WHERE label IS NULL;
ALTER TABLE incidents SET (fillfactor = 50);
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_incident_id_fkey;
)sql";

// Version 8: agent certificates and their revocations (docs/hub.md, "Revoking and renewing agent
// certificates"), applied after version 7.
constexpr const char* kPgSchemaV8 = R"sql(
CREATE TABLE IF NOT EXISTS agent_certs (
  sha256 TEXT PRIMARY KEY, host TEXT NOT NULL, group_name TEXT NOT NULL, how TEXT NOT NULL,
  replaces TEXT NOT NULL, not_after_s BIGINT NOT NULL, issued_ms BIGINT NOT NULL,
  first_used_ms BIGINT NOT NULL, revoked_ms BIGINT NOT NULL, revoked_by TEXT NOT NULL,
  revoke_reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS agent_certs_host ON agent_certs (host, issued_ms);
)sql";

// Version 9: audit key pins (docs/hub.md, "Pinning a host's audit key"), applied after version 8.
constexpr const char* kPgSchemaV9 = R"sql(
CREATE TABLE IF NOT EXISTS audit_key_pins (
  host TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, pinned_by TEXT NOT NULL,
  reason TEXT NOT NULL, pinned_ms BIGINT NOT NULL);
)sql";

// Version 2 (the fleet: docs/hub.md), applied to a version-1 database in place.
constexpr const char* kPgSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS agent_status (
  host TEXT PRIMARY KEY, group_name TEXT NOT NULL, mode TEXT NOT NULL,
  vigil_version TEXT NOT NULL, attestation TEXT NOT NULL, attestation_reason TEXT NOT NULL,
  registered_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS artifacts (
  digest TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL,
  signature TEXT NOT NULL, key_id TEXT NOT NULL, uploaded_by TEXT NOT NULL,
  uploaded_ms BIGINT NOT NULL, content BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (
  id BIGSERIAL PRIMARY KEY, digest TEXT NOT NULL REFERENCES artifacts(digest),
  kind TEXT NOT NULL, group_name TEXT NOT NULL, state TEXT NOT NULL, created_by TEXT NOT NULL,
  created_ms BIGINT NOT NULL, promoted_by TEXT NOT NULL DEFAULT '',
  promoted_ms BIGINT NOT NULL DEFAULT 0);
)sql";

// Version 3 (attestation: docs/attestation.md), applied after version 2.
constexpr const char* kPgSchemaV3 = R"sql(
CREATE TABLE IF NOT EXISTS attestation_nonces (
  nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS attested_keys (
  host TEXT PRIMARY KEY, ak_name TEXT NOT NULL, ak_public TEXT NOT NULL,
  ek_sha256 TEXT NOT NULL, trusted_ms BIGINT NOT NULL, quoted_ms BIGINT NOT NULL);
)sql";

// PostgreSQL's text type cannot hold NUL: such characters (a JSON "\u0000") are stored as
// U+FFFD. Everything else is stored as given (the strings are valid UTF-8: they come from JSON).
std::string PgText(const std::string& s) {
  if (s.find('\0') == std::string::npos) return s;
  std::string out;
  out.reserve(s.size() + 8);
  for (const char c : s) {
    if (c == '\0') {
      out += "\xEF\xBF\xBD";
    } else {
      out += c;
    }
  }
  return out;
}

// PostgreSQL array literals, for unnest() over one parameter per column: a message's rows go
// in a few statements whatever its size.
std::string PgArray(const std::vector<int64_t>& v) {
  std::string out = "{";
  out.reserve(v.size() * 21 + 2);
  char buf[24];
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v[i]).ptr);
  }
  return out + "}";
}
std::string PgArray(const std::vector<std::optional<double>>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    if (!v[i]) {
      out += "NULL";
      continue;
    }
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, *v[i]);  // shortest exact form
    out.append(buf, r.ptr);
  }
  return out + "}";
}
std::string PgArray(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (const char c : v[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// Rows in COPY's binary format (PostgreSQL's "COPY ... FROM STDIN (FORMAT binary)"): a
// header, per row a field count and each field as a length (-1: NULL) and its bytes (integers
// and doubles big-endian), then -1. No escaping, no number formatting: libpqxx's text-format
// writer (pqxx::stream_to) spent a quarter of the hub's ingest CPU escaping fields byte by byte.
class PgBinaryRows {
 public:
  PgBinaryRows() {
    buf_.append("PGCOPY\n\xff\r\n\0", 11);
    Be32(0);  // flags
    Be32(0);  // header extension length
  }
  void Row(int16_t fields) { Be16(static_cast<uint16_t>(fields)); }
  void Int8(int64_t v) {
    Be32(8);
    Be64(static_cast<uint64_t>(v));
  }
  void Float8(std::optional<double> v) {
    if (!v) {
      Be32(0xffffffffu);
      return;
    }
    uint64_t bits;
    std::memcpy(&bits, &*v, sizeof bits);
    Be32(8);
    Be64(bits);
  }
  // As PgText stores it: NUL as U+FFFD.
  void Text(std::string_view s) {
    const size_t at = buf_.size();
    Be32(0);
    for (size_t nul; (nul = s.find('\0')) != std::string_view::npos; s.remove_prefix(nul + 1)) {
      buf_.append(s.data(), nul);
      buf_.append("\xEF\xBF\xBD");
    }
    buf_.append(s);
    const uint32_t n = static_cast<uint32_t>(buf_.size() - at - 4);
    for (int i = 0; i < 4; ++i) buf_[at + i] = static_cast<char>(n >> (24 - 8 * i));
  }
  void End() { Be16(0xffffu); }
  std::string& bytes() { return buf_; }

 private:
  void Be16(uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    buf_.append(b, 2);
  }
  void Be32(uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    buf_.append(b, 4);
  }
  void Be64(uint64_t v) {
    Be32(static_cast<uint32_t>(v >> 32));
    Be32(static_cast<uint32_t>(v));
  }
  std::string buf_;
};

// The transaction's libpq connection, for the COPY data libpqxx 6.4 cannot pass through
// unescaped (pqxx::largeobject hands its subclasses that handle).
struct PgConnectionOf final : pqxx::largeobject {
  static PGconn* Of(const pqxx::dbtransaction& t) {
    return reinterpret_cast<PGconn*>(raw_connection(t));
  }
};

// Runs `copy_sql` (a COPY ... FROM STDIN (FORMAT binary)) in `w` and sends rows(&out), which
// calls out.Row() etc. and flush() now and then; throws as libpqxx does on failure.
template <typename Rows>
void PgCopyBinary(pqxx::work& w, const std::string& copy_sql, Rows rows) {
  PGconn* pg = PgConnectionOf::Of(w);
  w.exec(copy_sql);  // the server now waits for the data (PGRES_COPY_IN)
  PgBinaryRows out;
  auto flush = [&] {
    std::string& b = out.bytes();
    if (!b.empty() && PQputCopyData(pg, b.data(), static_cast<int>(b.size())) != 1) {
      throw pqxx::broken_connection(PQerrorMessage(pg));
    }
    b.clear();
  };
  rows(out, flush);
  out.End();
  flush();
  if (PQputCopyEnd(pg, nullptr) != 1) throw pqxx::broken_connection(PQerrorMessage(pg));
  std::string error, state;
  while (PGresult* r = PQgetResult(pg)) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && error.empty()) {
      error = PQresultErrorMessage(r);
      if (const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = code;
      if (error.empty()) error = "COPY failed";
    }
    PQclear(r);
  }
  if (PQstatus(pg) != CONNECTION_OK) throw pqxx::broken_connection(PQerrorMessage(pg));
  if (!error.empty()) throw pqxx::sql_error(error, copy_sql, state.empty() ? nullptr : state.c_str());
}

// A result row with the accessors internal::*From read.
class PgRow {
 public:
  explicit PgRow(const pqxx::row& r) : r_(r) {}
  int64_t I(int c) const { return r_[c].is_null() ? 0 : r_[c].as<int64_t>(); }
  std::string T(int c) const {
    return r_[c].is_null() ? std::string() : std::string(r_[c].c_str(), r_[c].size());
  }
  std::optional<double> D(int c) const {
    if (r_[c].is_null()) return std::nullopt;
    return r_[c].as<double>();
  }
  bool Null(int c) const { return r_[c].is_null(); }

 private:
  const pqxx::row& r_;
};

// The (host, pid, process) an advisory lock guards: FNV-1a over the three, as a signed key.
int64_t ProcessLockKey(const std::string& host, int64_t pid, const std::string& process) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view bytes) {
    for (const char c : bytes) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;  // separator
    h *= 0x100000001b3ull;
  };
  mix(host);
  mix(std::to_string(pid));
  mix(process);
  return static_cast<int64_t>(h);
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string uri, StoreOptions options)
      : uri_(std::move(uri)),
        shown_(RedactStoreLocation(uri_)),
        password_(PostgresUriPassword(uri_)),
        options_(options) {}

  core::Status CreateSchema();

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
  core::Result<std::vector<ScoreSample>> ScoreSamples(int64_t since_ms, int64_t limit) override;
  core::Result<std::vector<StoredFinding>> FindingsAfter(int64_t after_id,
                                                         int64_t limit) override;
  core::Result<std::vector<IncidentFeatures>> TriageFeatures(
      const std::vector<int64_t>& ids) override;
  core::Status SetTriage(const std::vector<TriageMark>& marks) override;
  core::Result<int64_t> CountSuppressed() override;
  core::Status PutAuditKey(const AuditKeyRow& k) override;
  core::Result<AuditKeyRow> AuditKey(const std::string& host) override;
  core::Status PutAuditKeyPin(const AuditKeyPinRow& p) override;
  core::Result<AuditKeyPinRow> AuditKeyPin(const std::string& host) override;
  core::Result<CheckpointPut> PutCheckpoint(const CheckpointRow& c) override;
  core::Result<std::vector<CheckpointRow>> Checkpoints(const std::string& host,
                                                       int64_t limit) override;
  core::Status PutAgentCert(const AgentCertRow& c) override;
  core::Result<AgentCertRow> AgentCert(const std::string& sha256) override;
  core::Result<std::vector<AgentCertRow>> AgentCerts(const std::string& host,
                                                     int64_t limit) override;
  core::Result<AgentCertRow> RevokeAgentCert(const std::string& sha256, int64_t now_ms,
                                             const std::string& by,
                                             const std::string& reason) override;
  core::Result<bool> MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) override;
  core::Result<int64_t> Count(const char* table) override;

 private:
  // Runs fn(work) -> core::Result<T> in one transaction, committed when fn succeeds. Catches
  // every libpqxx exception; retries serialization failures and deadlocks.
  template <typename Fn>
  std::invoke_result_t<Fn, pqxx::work&> Run(std::string_view what, Fn fn);
  core::Status Fail(std::string_view what, const std::string& why,
                    core::StatusCode code = core::StatusCode::kUnavailable) const {
    return core::Status(code, "hub store \"" + shown_ + "\": " + std::string(what) + ": " +
                                  ScrubSecret(OneLine(why), password_));
  }
  core::Result<std::vector<IngestResult>> IngestIn(pqxx::work& w,
                                                   const std::vector<const IngestMessage*>& ms,
                                                   int64_t now_ms) const;
  static core::Result<IncidentRow> IncidentIn(pqxx::work& w, int64_t id, bool for_update);
  static core::Result<EscalationRow> EscalationIn(pqxx::work& w, int64_t id);

  const std::string uri_;
  const std::string shown_;     // uri_ with its password redacted
  const std::string password_;  // scrubbed from every message
  const StoreOptions options_;
  // The pool: idle_ holds the open connections no call is using; open_ counts every open (or
  // being opened) connection, leased ones included, and stays <= options_.pool_size.
  std::mutex mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  int open_ = 0;
};

template <typename Fn>
std::invoke_result_t<Fn, pqxx::work&> PostgresStore::Run(std::string_view what, Fn fn) {
  // A connection of the pool: an idle one, else a slot for a new one while fewer than pool_size
  // are open, else wait for one to come back.
  std::unique_ptr<pqxx::connection> conn;
  {
    std::unique_lock lock(mu_);
    if (!pool_cv_.wait_for(lock, std::chrono::milliseconds(options_.pool_wait_ms),
                           [&] { return !idle_.empty() || open_ < options_.pool_size; })) {
      return Fail(what, "all " + std::to_string(options_.pool_size) +
                            " connections of the store's pool stayed busy for " +
                            std::to_string(options_.pool_wait_ms) + " ms");
    }
    if (idle_.empty()) {
      ++open_;
    } else {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  // Gives the connection back (a broken or dropped one frees its slot).
  struct Lease {
    PostgresStore* store;
    std::unique_ptr<pqxx::connection>* conn;
    ~Lease() {
      {
        std::lock_guard lock(store->mu_);
        if (*conn != nullptr && (*conn)->is_open()) {
          store->idle_.push_back(std::move(*conn));
        } else {
          --store->open_;
        }
      }
      store->pool_cv_.notify_one();
    }
  } lease{this, &conn};
  for (int attempt = 1;; ++attempt) {
    try {
      if (conn == nullptr || !conn->is_open()) {
        conn.reset();
        auto c = std::make_unique<pqxx::connection>(uri_);
        // CREATE ... IF NOT EXISTS and friends would print NOTICEs on stderr.
        pqxx::nontransaction setup(*c);
        setup.exec("SET client_min_messages = warning");
        setup.commit();
        conn = std::move(c);
      }
      pqxx::work w(*conn);
      auto r = fn(w);
      if (!r.has_value()) return r;  // the transaction is aborted as `w` goes
      w.commit();
      return r;
    } catch (const pqxx::serialization_failure& e) {
      if (attempt >= kPgAttempts) return Fail(what, e.what());
    } catch (const pqxx::deadlock_detected& e) {
      if (attempt >= kPgAttempts) return Fail(what, e.what());
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      return Fail(what, e.what());
    } catch (const pqxx::in_doubt_error& e) {
      conn.reset();
      return Fail(what, std::string("commit outcome unknown: ") + e.what());
    } catch (const pqxx::sql_error& e) {
      const std::string state = e.sqlstate();
      return Fail(what, e.what() + (state.empty() ? "" : " (SQLSTATE " + state + ")"),
                  state.starts_with("22") ? core::StatusCode::kInvalidArgument
                                          : core::StatusCode::kUnavailable);
    } catch (const std::exception& e) {
      if (conn != nullptr && !conn->is_open()) conn.reset();
      return Fail(what, e.what());
    }
  }
}

core::Status PostgresStore::CreateSchema() {
  auto done = Run("creating the schema", [](pqxx::work& w) -> core::Result<int> {
    w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", kPgSchemaLockKey);
    const pqxx::result has = w.exec("SELECT to_regclass('hub_schema') IS NOT NULL");
    int version = 0;
    if (has[0][0].as<bool>()) {
      const pqxx::result v = w.exec("SELECT MAX(version) FROM hub_schema");
      version = v[0][0].is_null() ? 0 : v[0][0].as<int>();
      if (version > kPostgresSchemaVersion) {
        return core::FailedPrecondition(
            "the database has hub schema version " + std::to_string(version) +
            ", newer than this hub's " + std::to_string(kPostgresSchemaVersion) +
            ": upgrade the hub");
      }
      if (version == kPostgresSchemaVersion) return version;
      if (version < 1) w.exec(kPgSchema);
    } else {
      w.exec(kPgSchema);
    }
    if (version < 2) w.exec(kPgSchemaV2);
    if (version < 3) w.exec(kPgSchemaV3);
    if (version < 4) w.exec(kPgSchemaV4);
    if (version < 5) w.exec(kPgSchemaV5);
    if (version < 6) w.exec(kPgSchemaV6);
    if (version < 7) w.exec(kPgSchemaV7);
    if (version < 8) w.exec(kPgSchemaV8);
    if (version < 9) w.exec(kPgSchemaV9);
    w.exec("DELETE FROM hub_schema");
    w.exec_params("INSERT INTO hub_schema (version) VALUES ($1)", kPostgresSchemaVersion);
    return kPostgresSchemaVersion;
  });
  if (!done.has_value()) {
    if (done.error().code() == core::StatusCode::kFailedPrecondition) {
      return core::FailedPrecondition("hub store \"" + shown_ + "\": " + done.error().message());
    }
    return done.error();
  }
  return {};
}

// An incident a batch's findings may join: loaded (locked) or opened by this batch.
struct PgIncident {
  int64_t id = 0;  // 0 until a new one gets its id
  size_t key = 0;  // its (host, pid, process) in the batch's keys
  int64_t first_ms = 0, last_ms = 0, alerts = 0, verdicts = 0, decisions = 0;
  std::optional<double> max_score;
  int64_t max_severity = 0;
  bool changed = false;
};

core::Result<IngestResult> PostgresStore::Ingest(const IngestMessage& m, int64_t now_ms) {
  auto r = Run("ingesting a message", [&](pqxx::work& w) { return IngestIn(w, {&m}, now_ms); });
  if (!r.has_value()) return r.error();
  return std::move(r->front());
}

core::Result<std::vector<IngestResult>> PostgresStore::IngestBatch(
    const std::vector<IngestMessage>& ms, int64_t now_ms) {
  if (ms.empty()) return std::vector<IngestResult>();
  std::vector<const IngestMessage*> p;
  p.reserve(ms.size());
  for (const IngestMessage& m : ms) p.push_back(&m);
  return Run("ingesting " + std::to_string(ms.size()) + " messages",
             [&](pqxx::work& w) { return IngestIn(w, p, now_ms); });
}

// The whole batch in a fixed number of statements: message ids, advisory locks, open incidents,
// new incident ids, incidents inserted, incidents updated, alerts, agents.
core::Result<std::vector<IngestResult>> PostgresStore::IngestIn(
    pqxx::work& w, const std::vector<const IngestMessage*>& ms, int64_t now_ms) const {
  const int64_t w_ms = options_.incident_window_ms;
  std::vector<IngestResult> out(ms.size());
  // Message ids: a repeat within the batch is a duplicate; the others are inserted at once and
  // those the table had already (RETURNING leaves them out) are duplicates too.
  {
    std::set<std::pair<std::string_view, std::string_view>> in_batch;
    std::vector<std::string> host, id;
    std::vector<int64_t> count;
    for (size_t i = 0; i < ms.size(); ++i) {
      if (!in_batch.emplace(ms[i]->host, ms[i]->message_id).second) {
        out[i].duplicate = true;
        continue;
      }
      host.push_back(ms[i]->host);
      id.push_back(ms[i]->message_id);
      count.push_back(static_cast<int64_t>(ms[i]->findings.size()));
    }
    std::set<std::pair<std::string, std::string>> fresh;
    for (const auto& row : w.exec_params(
             "INSERT INTO messages (host, message_id, received_ms, findings) SELECT u.h, u.id, "
             "$3::bigint, u.n FROM unnest($1::text[], $2::text[], $4::bigint[]) AS u(h, id, n) "
             "ON CONFLICT (host, message_id) DO NOTHING RETURNING host, message_id",
             PgArray(host), PgArray(id), now_ms, PgArray(count))) {
      fresh.emplace(row[0].c_str(), row[1].c_str());
    }
    for (size_t i = 0; i < ms.size(); ++i) {
      if (!out[i].duplicate) {
        out[i].duplicate = fresh.erase({ms[i]->host, ms[i]->message_id}) == 0;
      }
    }
  }
  // The (host, pid, process) keys of the fresh findings and the time range each can join in.
  struct Key {
    std::string host;
    int64_t pid;
    std::string process;
    int64_t lo, hi;
  };
  std::vector<Key> keys;
  std::map<std::tuple<std::string_view, int64_t, std::string>, size_t> key_of;
  std::vector<std::pair<size_t, size_t>> findings;  // (message, finding)
  std::vector<size_t> finding_key;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (out[i].duplicate) continue;
    for (size_t j = 0; j < ms[i]->findings.size(); ++j) {
      const Finding& f = ms[i]->findings[j];
      auto [it, added] = key_of.try_emplace({ms[i]->host, f.pid, PgText(f.process)}, keys.size());
      if (added) {
        keys.push_back({ms[i]->host, f.pid, std::get<2>(it->first), f.time_ms, f.time_ms});
      }
      Key& k = keys[it->second];
      k.lo = std::min(k.lo, f.time_ms);
      k.hi = std::max(k.hi, f.time_ms);
      findings.emplace_back(i, j);
      finding_key.push_back(it->second);
    }
  }
  if (!findings.empty()) {
    std::vector<int64_t> locks, key_pid, key_lo, key_hi;
    std::vector<std::string> key_host, key_process;
    for (const Key& k : keys) {
      locks.push_back(ProcessLockKey(k.host, k.pid, k.process));
      key_host.push_back(k.host);
      key_pid.push_back(k.pid);
      key_process.push_back(k.process);
      key_lo.push_back(k.lo - w_ms);
      key_hi.push_back(k.hi + w_ms);
    }
    std::sort(locks.begin(), locks.end());
    locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
    // unnest yields the sorted array in order: the locks are taken in ascending key order.
    w.exec_params("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", PgArray(locks));
    // The open incidents those findings could join. No row locks: the advisory locks keep other
    // ingests and labelling (Adjudicate takes its process's lock) off them until commit, and
    // this statement's snapshot, taken after the locks, sees all they committed. (FOR UPDATE
    // wrote a row lock and its WAL per incident.) Keys are distinct: each incident comes once.
    std::vector<PgIncident> inc;
    std::vector<std::vector<size_t>> inc_of_key(keys.size());
    for (const auto& row : w.exec_params(
             "SELECT i.id, k.n, i.first_ms, i.last_ms, i.alerts, i.verdicts, i.decisions, "
             "i.max_score, i.max_severity FROM incidents i JOIN unnest($1::text[], $2::bigint[], "
             "$3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS k(host, pid, process, "
             "lo, hi, n) ON i.host = k.host AND i.pid = k.pid AND i.process = k.process WHERE "
             "i.label IS NULL AND i.last_ms >= k.lo AND i.first_ms <= k.hi "
             "ORDER BY i.id",
             PgArray(key_host), PgArray(key_pid), PgArray(key_process), PgArray(key_lo),
             PgArray(key_hi))) {
      const PgRow q(row);
      const size_t key = static_cast<size_t>(q.I(1) - 1);
      if (key >= keys.size()) return core::Internal("incident key out of range");
      inc_of_key[key].push_back(inc.size());
      inc.push_back({q.I(0), key, q.I(2), q.I(3), q.I(4), q.I(5), q.I(6), q.D(7), q.I(8), false});
    }
    // Join in order, as the SQLite store does: the incident of the process whose widened span
    // covers the finding, the latest-ending one first; else a new one.
    std::vector<size_t> joined(findings.size());
    const size_t existing = inc.size();
    for (size_t n = 0; n < findings.size(); ++n) {
      const auto [i, j] = findings[n];
      const Finding& f = ms[i]->findings[j];
      size_t best = inc.size();
      for (const size_t c : inc_of_key[finding_key[n]]) {
        if (inc[c].first_ms - w_ms > f.time_ms || inc[c].last_ms + w_ms < f.time_ms) continue;
        if (best == inc.size() || inc[c].last_ms > inc[best].last_ms) best = c;
      }
      if (best == inc.size()) {
        inc_of_key[finding_key[n]].push_back(inc.size());
        inc.push_back(
            {0, finding_key[n], f.time_ms, f.time_ms, 0, 0, 0, std::nullopt, f.severity_id, true});
        ++out[i].new_incidents;
      }
      PgIncident& c = inc[best];
      c.first_ms = std::min(c.first_ms, f.time_ms);
      c.last_ms = std::max(c.last_ms, f.time_ms);
      ++c.alerts;
      ++(f.kind == FindingKind::kDecision ? c.decisions : c.verdicts);
      if (f.score && (!c.max_score || *f.score > *c.max_score)) c.max_score = f.score;
      c.max_severity = std::max<int64_t>(c.max_severity, f.severity_id);
      c.changed = true;
      joined[n] = best;
    }
    // Ids for the new incidents, in the order they were opened.
    if (inc.size() > existing) {
      std::vector<int64_t> ids;
      for (const auto& row :
           w.exec_params("SELECT nextval(pg_get_serial_sequence('incidents', 'id')) "
                         "FROM generate_series(1, $1::bigint)",
                         static_cast<int64_t>(inc.size() - existing))) {
        ids.push_back(row[0].as<int64_t>());
      }
      std::sort(ids.begin(), ids.end());
      for (size_t j = existing; j < inc.size(); ++j) inc[j].id = ids[j - existing];
    }
    // Write the incidents: new ones inserted, joined ones updated (under their processes' locks).
    for (const bool fresh : {true, false}) {
      std::vector<int64_t> id, pid, first, last, alerts, verdicts, decisions, severity;
      std::vector<std::string> host, proc;
      std::vector<std::optional<double>> score;
      for (size_t j = fresh ? existing : 0; j < (fresh ? inc.size() : existing); ++j) {
        const PgIncident& c = inc[j];
        if (!c.changed) continue;
        id.push_back(c.id);
        host.push_back(keys[c.key].host);
        pid.push_back(keys[c.key].pid);
        proc.push_back(keys[c.key].process);
        first.push_back(c.first_ms);
        last.push_back(c.last_ms);
        alerts.push_back(c.alerts);
        verdicts.push_back(c.verdicts);
        decisions.push_back(c.decisions);
        score.push_back(c.max_score);
        severity.push_back(c.max_severity);
      }
      if (id.empty()) continue;
      if (fresh) {
        w.exec_params(
            "INSERT INTO incidents (id, host, pid, process, first_ms, last_ms, alerts, "
            "verdicts, decisions, max_score, max_severity) SELECT u.id, u.host, u.pid, "
            "u.process, u.f, u.l, u.a, u.v, u.d, u.s, u.sev FROM unnest($1::bigint[], "
            "$2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], "
            "$8::bigint[], $9::bigint[], $10::float8[], $11::bigint[]) AS u(id, host, pid, "
            "process, f, l, a, v, d, s, sev)",
            PgArray(id), PgArray(host), PgArray(pid), PgArray(proc), PgArray(first), PgArray(last),
            PgArray(alerts), PgArray(verdicts), PgArray(decisions), PgArray(score),
            PgArray(severity));
      } else {
        w.exec_params(
            "UPDATE incidents i SET first_ms = u.f, last_ms = u.l, alerts = u.a, "
            "verdicts = u.v, decisions = u.d, max_score = u.s, max_severity = u.sev FROM "
            "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], "
            "$6::bigint[], $7::float8[], $8::bigint[]) AS u(id, f, l, a, v, d, s, sev) "
            "WHERE i.id = u.id",
            PgArray(id), PgArray(first), PgArray(last), PgArray(alerts), PgArray(verdicts),
            PgArray(decisions), PgArray(score), PgArray(severity));
      }
    }
    // The alerts, in the findings' order, with a binary COPY (cheaper for the server than
    // unnest() over array literals, and for the hub than COPY's text format).
    PgCopyBinary(
        w,
        "COPY alerts (incident_id, kind, time_ms, severity_id, uid, title, message, rule, action, "
        "model, model_version, score, explanation, raw) FROM STDIN (FORMAT binary)",
        [&](PgBinaryRows& copy, const auto& flush) {
          for (size_t n = 0; n < findings.size(); ++n) {
            const auto [i, j] = findings[n];
            const Finding& f = ms[i]->findings[j];
            const int64_t id = inc[joined[n]].id;
            std::vector<int64_t>& seen = out[i].incidents;
            if (std::find(seen.begin(), seen.end(), id) == seen.end()) seen.push_back(id);
            ++out[i].findings;
            copy.Row(14);
            copy.Int8(id);
            copy.Text(FindingKindName(f.kind));
            copy.Int8(f.time_ms);
            copy.Int8(f.severity_id);
            for (const std::string* t :
                 {&f.uid, &f.title, &f.message, &f.rule, &f.action, &f.model, &f.model_version}) {
              copy.Text(*t);
            }
            copy.Float8(f.score);
            copy.Text(internal::ExplanationJson(f));
            copy.Text(f.raw);
            if (copy.bytes().size() >= (1u << 18)) flush();
          }
        });
  }
  // The agents, one row per host in ascending host order (two batches lock them in one order).
  std::map<std::string_view, std::pair<int64_t, int64_t>> per_host;  // messages, findings
  for (size_t i = 0; i < ms.size(); ++i) {
    auto& [messages, stored] = per_host[ms[i]->host];
    ++messages;
    stored += static_cast<int64_t>(out[i].findings);
  }
  std::vector<std::string> host;
  std::vector<int64_t> messages, stored;
  for (const auto& [h, n] : per_host) {
    host.emplace_back(h);
    messages.push_back(n.first);
    stored.push_back(n.second);
  }
  w.exec_params(
      "INSERT INTO agents (host, first_seen_ms, last_seen_ms, messages, findings) SELECT u.h, "
      "$2::bigint, $2::bigint, u.m, u.f FROM unnest($1::text[], $3::bigint[], $4::bigint[]) "
      "WITH ORDINALITY AS u(h, m, f, n) ORDER BY u.n ON CONFLICT (host) DO UPDATE SET "
      "last_seen_ms = GREATEST(agents.last_seen_ms, EXCLUDED.last_seen_ms), "
      "messages = agents.messages + EXCLUDED.messages, "
      "findings = agents.findings + EXCLUDED.findings",
      PgArray(host), now_ms, PgArray(messages), PgArray(stored));
  return out;
}

core::Result<std::vector<IncidentRow>> PostgresStore::Incidents(const IncidentFilter& f) {
  const std::string sql =
      std::string("SELECT ") + kIncidentColumns +
      " FROM incidents WHERE ($1::text = '' OR host = $1::text) AND "
      "($2::bigint = 0 OR id < $2::bigint) AND "
      "($3::int = 2 OR ($3::int = 1) = (label IS NOT NULL)) AND "
      "($5::int = 2 OR triage_suppressed = $5::int) ORDER BY id DESC LIMIT $4::bigint";
  const int adjudicated = f.adjudicated ? (*f.adjudicated ? 1 : 0) : 2;
  const int suppressed = f.suppressed ? (*f.suppressed ? 1 : 0) : 2;
  return Run("listing incidents", [&](pqxx::work& w) -> core::Result<std::vector<IncidentRow>> {
    std::vector<IncidentRow> out;
    for (const auto& row : w.exec_params(sql, PgText(f.host), f.before_id, adjudicated,
                                         std::clamp<int64_t>(f.limit, 1, 1000), suppressed)) {
      out.push_back(internal::IncidentFrom(PgRow(row)));
    }
    return out;
  });
}

core::Result<IncidentRow> PostgresStore::IncidentIn(pqxx::work& w, int64_t id, bool for_update) {
  const std::string sql = std::string("SELECT ") + kIncidentColumns +
                          " FROM incidents WHERE id = $1::bigint" +
                          (for_update ? " FOR UPDATE" : "");
  const pqxx::result r = w.exec_params(sql, id);
  if (r.empty()) return core::NotFound("incident " + std::to_string(id) + ": no such incident");
  return internal::IncidentFrom(PgRow(r[0]));
}

core::Result<IncidentRow> PostgresStore::Incident(int64_t id) {
  return Run("reading an incident", [&](pqxx::work& w) { return IncidentIn(w, id, false); });
}

core::Result<std::vector<AlertRow>> PostgresStore::Alerts(int64_t incident_id) {
  const std::string sql = std::string("SELECT ") + internal::kAlertColumns +
                          " FROM alerts WHERE incident_id = $1::bigint ORDER BY time_ms, id";
  return Run("reading alerts", [&](pqxx::work& w) -> core::Result<std::vector<AlertRow>> {
    std::vector<AlertRow> out;
    for (const auto& row : w.exec_params(sql, incident_id)) {
      out.push_back(internal::AlertFrom(PgRow(row)));
    }
    return out;
  });
}

core::Result<IncidentRow> PostgresStore::Adjudicate(int64_t id, Label label,
                                                    const std::string& who,
                                                    const std::string& note, int64_t now_ms) {
  return Run("labelling an incident", [&](pqxx::work& w) -> core::Result<IncidentRow> {
    // The incident's process lock first: an ingest joining findings to it holds that lock (and
    // no row lock) from its read of the incident to its commit.
    const pqxx::result key =
        w.exec_params("SELECT host, pid, process FROM incidents WHERE id = $1::bigint", id);
    if (!key.empty()) {
      const PgRow k(key[0]);
      w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)",
                    ProcessLockKey(k.T(0), k.I(1), k.T(2)));
    }
    VIGIL_ASSIGN_OR_RETURN(IncidentRow before, IncidentIn(w, id, true));
    w.exec_params(
        "UPDATE incidents SET label = $2, labelled_by = $3, note = $4, labelled_ms = $5::bigint "
        "WHERE id = $1::bigint",
        id, std::string(LabelName(label)), PgText(who), PgText(note), now_ms);
    return before;
  });
}

core::Result<std::vector<AdjudicationCount>> PostgresStore::AdjudicationCounts() {
  return Run("counting adjudications",
             [&](pqxx::work& w) -> core::Result<std::vector<AdjudicationCount>> {
               std::vector<AdjudicationCount> out;
               for (const char* kind : {"rule", "model"}) {
                 for (const auto& row : w.exec(internal::AdjudicationCountSql(kind))) {
                   const PgRow q(row);
                   internal::AddAdjudicationCount(out, kind, q.T(0), q.T(1), q.I(2));
                 }
               }
               for (const auto& row : w.exec(internal::kMissedCountSql)) {
                 const PgRow q(row);
                 internal::AddMissedCount(out, q.T(0), q.T(1), q.I(2));
               }
               return out;
             });
}

core::Result<std::string> PostgresStore::ExportLabels() {
  return Run("exporting labels", [&](pqxx::work& w) -> core::Result<std::string> {
    std::string out;
    for (const auto& row : w.exec(internal::kLabelExportSelect)) {
      out += internal::LabelLine(PgRow(row));
    }
    return out;
  });
}

core::Result<EscalationRow> PostgresStore::EscalationIn(pqxx::work& w, int64_t id) {
  const std::string sql =
      std::string("SELECT ") + kEscalationColumns + " FROM escalations WHERE id = $1::bigint";
  const pqxx::result r = w.exec_params(sql, id);
  if (r.empty()) {
    return core::NotFound("escalation " + std::to_string(id) + ": no such escalation");
  }
  return internal::EscalationFrom(PgRow(r[0]));
}

core::Result<EscalationRow> PostgresStore::OpenEscalation(const EscalationRequest& r,
                                                          int64_t timeout_ms, int64_t now_ms,
                                                          bool* created) {
  const std::string insert =
      std::string(
          "INSERT INTO escalations (host, escalation_id, rule, action, reason, pid, process, "
          "created_ms, deadline_ms, default_verdict, state) VALUES ($1, $2, $3, $4, $5, "
          "$6::bigint, $7, $8::bigint, $9::bigint, $10, 'pending') "
          "ON CONFLICT (host, escalation_id) DO NOTHING RETURNING ") +
      kEscalationColumns;
  const std::string find = std::string("SELECT ") + kEscalationColumns +
                           " FROM escalations WHERE host = $1 AND escalation_id = $2";
  return Run("storing an escalation", [&](pqxx::work& w) -> core::Result<EscalationRow> {
    const pqxx::result ins = w.exec_params(
        insert, r.host, PgText(r.escalation_id), PgText(r.rule), PgText(r.action),
        PgText(r.reason), r.pid, PgText(r.process), now_ms, now_ms + timeout_ms,
        std::string(VerdictName(r.default_verdict)));
    *created = !ins.empty();
    if (!ins.empty()) return internal::EscalationFrom(PgRow(ins[0]));
    const pqxx::result got = w.exec_params(find, r.host, PgText(r.escalation_id));
    if (got.empty()) return core::Internal("escalation vanished after a conflicting insert");
    return internal::EscalationFrom(PgRow(got[0]));
  });
}

core::Result<EscalationRow> PostgresStore::Escalation(int64_t id) {
  return Run("reading an escalation", [&](pqxx::work& w) { return EscalationIn(w, id); });
}

core::Result<std::vector<EscalationRow>> PostgresStore::Escalations(bool pending_only,
                                                                    const std::string& host) {
  const std::string sql = std::string("SELECT ") + kEscalationColumns +
                          " FROM escalations WHERE ($1::int = 0 OR state = 'pending') AND "
                          "($2::text = '' OR host = $2::text) ORDER BY id DESC LIMIT 1000";
  return Run("listing escalations",
             [&](pqxx::work& w) -> core::Result<std::vector<EscalationRow>> {
               std::vector<EscalationRow> out;
               for (const auto& row : w.exec_params(sql, pending_only ? 1 : 0, PgText(host))) {
                 out.push_back(internal::EscalationFrom(PgRow(row)));
               }
               return out;
             });
}

core::Result<EscalationRow> PostgresStore::Decide(int64_t id, Verdict v, const std::string& who,
                                                  const std::string& note, int64_t now_ms) {
  const std::string sql =
      std::string(
          "UPDATE escalations SET state = $2, decided_by = $3, note = $4, "
          "decided_ms = $5::bigint WHERE id = $1::bigint AND state = 'pending' AND "
          "deadline_ms > $5::bigint RETURNING ") +
      kEscalationColumns;
  const EscalationState to =
      v == Verdict::kApprove ? EscalationState::kApproved : EscalationState::kDenied;
  return Run("deciding an escalation", [&](pqxx::work& w) -> core::Result<EscalationRow> {
    const pqxx::result up = w.exec_params(sql, id, std::string(EscalationStateName(to)),
                                          PgText(who), PgText(note), now_ms);
    if (!up.empty()) return internal::EscalationFrom(PgRow(up[0]));
    // Not decided now: say why.
    VIGIL_ASSIGN_OR_RETURN(const EscalationRow row, EscalationIn(w, id));
    if (row.state != EscalationState::kPending) {
      return core::FailedPrecondition("escalation " + std::to_string(id) + ": already " +
                                      std::string(EscalationStateName(row.state)));
    }
    return core::FailedPrecondition("escalation " + std::to_string(id) +
                                    ": its deadline has passed (the default applies)");
  });
}

core::Result<std::vector<EscalationRow>> PostgresStore::ExpireEscalations(int64_t now_ms) {
  const std::string sql = std::string(
                              "UPDATE escalations SET state = 'timed_out', decided_by = 'hub', "
                              "decided_ms = $1::bigint WHERE state = 'pending' AND "
                              "deadline_ms <= $1::bigint RETURNING ") +
                          kEscalationColumns;
  return Run("timing out escalations",
             [&](pqxx::work& w) -> core::Result<std::vector<EscalationRow>> {
               std::vector<EscalationRow> due;
               for (const auto& row : w.exec_params(sql, now_ms)) {
                 due.push_back(internal::EscalationFrom(PgRow(row)));
               }
               std::sort(due.begin(), due.end(),
                         [](const EscalationRow& a, const EscalationRow& b) { return a.id < b.id; });
               return due;
             });
}

core::Result<std::vector<AgentRow>> PostgresStore::Agents() {
  return Run("listing agents", [&](pqxx::work& w) -> core::Result<std::vector<AgentRow>> {
    std::vector<AgentRow> out;
    for (const auto& row : w.exec("SELECT host, first_seen_ms, last_seen_ms, messages, findings "
                                  "FROM agents ORDER BY host")) {
      const PgRow q(row);
      out.push_back({q.T(0), q.I(1), q.I(2), q.I(3), q.I(4)});
    }
    return out;
  });
}

core::Status PostgresStore::RegisterAgent(const AgentStatusRow& r, int64_t now_ms) {
  auto done = Run("registering an agent", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(
        "INSERT INTO agent_status (host, group_name, mode, vigil_version, attestation, "
        "attestation_reason, registered_ms, heartbeat_ms, status) VALUES "
        "($1, $2, $3, $4, $5, $6, $7::bigint, $7::bigint, $8) ON CONFLICT (host) DO UPDATE SET "
        "group_name = $2, mode = $3, vigil_version = $4, attestation = $5, "
        "attestation_reason = $6, registered_ms = $7::bigint, heartbeat_ms = $7::bigint, "
        "status = $8",
        PgText(r.host), PgText(r.group), PgText(r.mode), PgText(r.vigil_version),
        PgText(r.attestation), PgText(r.attestation_reason), now_ms, PgText(r.status_json));
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Result<AgentStatusRow> PostgresStore::Heartbeat(const std::string& host,
                                                      const std::string& mode,
                                                      const std::string& status_json,
                                                      int64_t now_ms) {
  return Run("recording a heartbeat", [&](pqxx::work& w) -> core::Result<AgentStatusRow> {
    const std::string sql = std::string("UPDATE agent_status SET mode = $2, status = $3, "
                                        "heartbeat_ms = GREATEST(heartbeat_ms, $4::bigint) "
                                        "WHERE host = $1 RETURNING ") +
                            internal::kAgentStatusColumns;
    const pqxx::result r = w.exec_params(sql, PgText(host), PgText(mode), PgText(status_json),
                                         now_ms);
    if (r.empty()) {
      return core::NotFound("agent " + host + ": not registered (POST /v1/agents/register first)");
    }
    return internal::AgentStatusFrom(PgRow(r[0]));
  });
}

core::Result<std::vector<AgentStatusRow>> PostgresStore::AgentStatuses() {
  return Run("listing agents", [&](pqxx::work& w) -> core::Result<std::vector<AgentStatusRow>> {
    std::vector<AgentStatusRow> out;
    for (const auto& row : w.exec(std::string("SELECT ") + internal::kAgentStatusColumns +
                                  " FROM agent_status ORDER BY host")) {
      out.push_back(internal::AgentStatusFrom(PgRow(row)));
    }
    return out;
  });
}

core::Result<bool> PostgresStore::PutArtifact(const ArtifactRow& a) {
  return Run("storing an artifact", [&](pqxx::work& w) -> core::Result<bool> {
    // The bytes travel as hex text and are decoded by the server into the BYTEA column.
    const pqxx::result r = w.exec_params(
        "INSERT INTO artifacts (digest, kind, name, size, signature, key_id, uploaded_by, "
        "uploaded_ms, content) VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, $8::bigint, "
        "decode($9, 'hex')) ON CONFLICT (digest) DO NOTHING RETURNING 1",
        a.digest, a.kind, PgText(a.name), a.size, PgText(a.signature), a.key_id,
        PgText(a.uploaded_by), a.uploaded_ms, govern::HexOf(a.content));
    return !r.empty();
  });
}

core::Result<ArtifactRow> PostgresStore::Artifact(const std::string& digest, bool content) {
  return Run("reading an artifact", [&](pqxx::work& w) -> core::Result<ArtifactRow> {
    const std::string sql = std::string("SELECT ") + internal::kArtifactColumns +
                            (content ? ", encode(content, 'hex')" : "") +
                            " FROM artifacts WHERE digest = $1";
    const pqxx::result r = w.exec_params(sql, digest);
    if (r.empty()) return core::NotFound("artifact sha256:" + digest + ": no such artifact");
    const PgRow q(r[0]);
    ArtifactRow a = internal::ArtifactFrom(q);
    if (content) {
      auto bytes = govern::BytesOfHex(q.T(8));
      if (!bytes) return core::DataLoss("artifact sha256:" + digest + ": stored bytes unreadable");
      a.content = std::move(*bytes);
    }
    return a;
  });
}

core::Result<std::vector<ArtifactRow>> PostgresStore::Artifacts() {
  return Run("listing artifacts", [&](pqxx::work& w) -> core::Result<std::vector<ArtifactRow>> {
    std::vector<ArtifactRow> out;
    for (const auto& row : w.exec(std::string("SELECT ") + internal::kArtifactColumns +
                                  " FROM artifacts ORDER BY uploaded_ms DESC, digest")) {
      out.push_back(internal::ArtifactFrom(PgRow(row)));
    }
    return out;
  });
}

core::Result<RolloutRow> PostgresStore::StartRollout(const std::string& digest,
                                                     const std::string& group,
                                                     const std::string& who, int64_t now_ms) {
  return Run("starting a rollout", [&](pqxx::work& w) -> core::Result<RolloutRow> {
    const std::string sql =
        std::string("INSERT INTO rollouts (digest, kind, group_name, state, created_by, "
                    "created_ms) SELECT digest, kind, $2, 'canary', $3, $4::bigint FROM artifacts "
                    "WHERE digest = $1 RETURNING ") +
        internal::kRolloutColumns;
    const pqxx::result r = w.exec_params(sql, digest, PgText(group), PgText(who), now_ms);
    if (r.empty()) return core::NotFound("artifact sha256:" + digest + ": no such artifact");
    return internal::RolloutFrom(PgRow(r[0]));
  });
}

core::Result<RolloutRow> PostgresStore::PromoteRollout(int64_t id, const std::string& who,
                                                       int64_t now_ms) {
  return Run("promoting a rollout", [&](pqxx::work& w) -> core::Result<RolloutRow> {
    const std::string sql =
        std::string("UPDATE rollouts SET state = 'promoted', promoted_by = $2, "
                    "promoted_ms = $3::bigint WHERE id = $1::bigint AND state = 'canary' "
                    "RETURNING ") +
        internal::kRolloutColumns;
    const pqxx::result r = w.exec_params(sql, id, PgText(who), now_ms);
    if (!r.empty()) return internal::RolloutFrom(PgRow(r[0]));
    const pqxx::result seen = w.exec_params("SELECT 1 FROM rollouts WHERE id = $1::bigint", id);
    if (seen.empty()) return core::NotFound("rollout " + std::to_string(id) + ": no such rollout");
    return core::FailedPrecondition("rollout " + std::to_string(id) + ": already promoted");
  });
}

core::Result<std::vector<RolloutRow>> PostgresStore::Rollouts() {
  return Run("listing rollouts", [&](pqxx::work& w) -> core::Result<std::vector<RolloutRow>> {
    std::vector<RolloutRow> out;
    for (const auto& row : w.exec(std::string("SELECT ") + internal::kRolloutColumns +
                                  " FROM rollouts ORDER BY id DESC")) {
      out.push_back(internal::RolloutFrom(PgRow(row)));
    }
    return out;
  });
}

core::Result<bool> PostgresStore::UseNonce(const std::string& nonce, int64_t expires_ms,
                                           int64_t now_ms) {
  return Run("recording a nonce", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params("DELETE FROM attestation_nonces WHERE expires_ms <= $1::bigint", now_ms);
    const pqxx::result r = w.exec_params(
        "INSERT INTO attestation_nonces (nonce, expires_ms) VALUES ($1, $2::bigint) "
        "ON CONFLICT (nonce) DO NOTHING RETURNING 1",
        PgText(nonce), expires_ms);
    return !r.empty();
  });
}

core::Status PostgresStore::SetAttestation(const std::string& host, const std::string& state,
                                           const std::string& reason) {
  auto done = Run("recording an attestation", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(
        "UPDATE agent_status SET attestation = $2, attestation_reason = $3 WHERE host = $1",
        PgText(host), PgText(state), PgText(reason));
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Status PostgresStore::PutAttestedKey(const AttestedKeyRow& k) {
  auto done = Run("recording an attested key", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(
        "INSERT INTO attested_keys (host, ak_name, ak_public, ek_sha256, trusted_ms, quoted_ms) "
        "VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint) ON CONFLICT (host) DO UPDATE SET "
        "ak_name = $2, ak_public = $3, ek_sha256 = $4, trusted_ms = $5::bigint, "
        "quoted_ms = $6::bigint",
        PgText(k.host), PgText(k.ak_name), PgText(k.ak_public), PgText(k.ek_sha256),
        k.trusted_ms, k.quoted_ms);
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Result<AttestedKeyRow> PostgresStore::AttestedKey(const std::string& host) {
  return Run("reading an attested key", [&](pqxx::work& w) -> core::Result<AttestedKeyRow> {
    const pqxx::result r = w.exec_params(
        "SELECT host, ak_name, ak_public, ek_sha256, trusted_ms, quoted_ms FROM attested_keys "
        "WHERE host = $1",
        PgText(host));
    if (r.empty()) return core::NotFound("host " + host + ": no attested key");
    const PgRow row(r[0]);
    return AttestedKeyRow{row.T(0), row.T(1), row.T(2), row.T(3), row.I(4), row.I(5)};
  });
}

core::Status PostgresStore::PutAuditKey(const AuditKeyRow& k) {
  auto done = Run("recording an audit key", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(
        "INSERT INTO audit_keys (host, key_id, public_key, registered_ms) VALUES ($1, $2, $3, "
        "$4::bigint) ON CONFLICT (host) DO UPDATE SET key_id = $2, public_key = $3, "
        "registered_ms = $4::bigint",
        PgText(k.host), PgText(k.key_id), PgText(k.public_key), k.registered_ms);
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Result<AuditKeyRow> PostgresStore::AuditKey(const std::string& host) {
  return Run("reading an audit key", [&](pqxx::work& w) -> core::Result<AuditKeyRow> {
    const pqxx::result r = w.exec_params(
        "SELECT host, key_id, public_key, registered_ms FROM audit_keys WHERE host = $1",
        PgText(host));
    if (r.empty()) return core::NotFound("host " + host + ": no audit key registered");
    const PgRow row(r[0]);
    return AuditKeyRow{row.T(0), row.T(1), row.T(2), row.I(3)};
  });
}

core::Status PostgresStore::PutAuditKeyPin(const AuditKeyPinRow& p) {
  auto done = Run("recording an audit key pin", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(
        "INSERT INTO audit_key_pins (host, fingerprint, pinned_by, reason, pinned_ms) VALUES ($1, "
        "$2, $3, $4, $5::bigint) ON CONFLICT (host) DO UPDATE SET fingerprint = $2, pinned_by = "
        "$3, reason = $4, pinned_ms = $5::bigint",
        PgText(p.host), PgText(p.fingerprint), PgText(p.pinned_by), PgText(p.reason),
        p.pinned_ms);
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Result<AuditKeyPinRow> PostgresStore::AuditKeyPin(const std::string& host) {
  return Run("reading an audit key pin", [&](pqxx::work& w) -> core::Result<AuditKeyPinRow> {
    const pqxx::result r = w.exec_params(
        "SELECT host, fingerprint, pinned_by, reason, pinned_ms FROM audit_key_pins WHERE host = "
        "$1",
        PgText(host));
    if (r.empty()) return core::NotFound("host " + host + ": no audit key pinned");
    const PgRow row(r[0]);
    return AuditKeyPinRow{row.T(0), row.T(1), row.T(2), row.T(3), row.I(4)};
  });
}

core::Result<CheckpointPut> PostgresStore::PutCheckpoint(const CheckpointRow& c) {
  return Run("storing an audit checkpoint", [&](pqxx::work& w) -> core::Result<CheckpointPut> {
    // Instances storing checkpoints of one host wait for each other, so that each judges the
    // next against everything stored before it.
    w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)",
                  ProcessLockKey("audit_checkpoints", 0, c.host));
    const std::string select =
        std::string("SELECT ") + internal::kCheckpointColumns + " FROM audit_checkpoints ";
    auto rows = [](const pqxx::result& result) {
      std::vector<CheckpointRow> found;
      for (const auto& row : result) found.push_back(internal::CheckpointFrom(PgRow(row)));
      return found;
    };
    CheckpointPut out;
    std::vector<CheckpointRow> same = rows(w.exec_params(
        select + "WHERE host = $1 AND covers = $2::bigint ORDER BY id", PgText(c.host), c.covers));
    for (const CheckpointRow& r : same) {
      if (r.chain_hash == c.chain_hash) {
        out.row = r;
        out.duplicate = true;
        return out;
      }
    }
    std::erase_if(same, [](const CheckpointRow& r) { return r.verification == "bad-signature"; });
    const std::vector<CheckpointRow> below = rows(w.exec_params(
        select + "WHERE host = $1 AND covers < $2::bigint AND verification <> 'bad-signature' "
                 "ORDER BY covers DESC, id DESC LIMIT 1",
        PgText(c.host), c.covers));
    const std::vector<CheckpointRow> above = rows(w.exec_params(
        select + "WHERE host = $1 AND covers > $2::bigint AND verification <> 'bad-signature' "
                 "ORDER BY covers ASC, id DESC LIMIT 1",
        PgText(c.host), c.covers));
    out.row = c;
    ClassifyCheckpoint(&out.row, same, below.empty() ? nullptr : &below[0],
                       above.empty() ? nullptr : &above[0]);
    const CheckpointRow& r = out.row;
    const pqxx::result id = w.exec_params(
        "INSERT INTO audit_checkpoints (host, seq, covers, chain_hash, time_ns, key_id, "
        "public_key, signature, verification, reason, problem, problem_detail, received_ms) "
        "VALUES ($1, $2::bigint, $3::bigint, $4, $5::bigint, $6, $7, $8, $9, $10, $11, $12, "
        "$13::bigint) RETURNING id",
        PgText(r.host), r.seq, r.covers, PgText(r.chain_hash), r.time_ns, PgText(r.key_id),
        PgText(r.public_key), PgText(r.signature), PgText(r.verification), PgText(r.reason),
        PgText(r.problem), PgText(r.problem_detail), r.received_ms);
    out.row.id = id[0][0].as<int64_t>();
    return out;
  });
}

core::Result<std::vector<CheckpointRow>> PostgresStore::Checkpoints(const std::string& host,
                                                                    int64_t limit) {
  return Run("listing audit checkpoints",
             [&](pqxx::work& w) -> core::Result<std::vector<CheckpointRow>> {
               std::vector<CheckpointRow> out;
               for (const auto& row : w.exec_params(
                        std::string("SELECT ") + internal::kCheckpointColumns +
                            " FROM audit_checkpoints WHERE host = $1 ORDER BY covers DESC, id "
                            "DESC LIMIT $2::bigint",
                        PgText(host), std::clamp<int64_t>(limit, 1, 1000))) {
                 out.push_back(internal::CheckpointFrom(PgRow(row)));
               }
               return out;
             });
}

core::Result<FleetRaise> PostgresStore::RaiseFleetIncident(const FleetIncidentRow& draft,
                                                            int64_t window_ms, int64_t now_ms) {
  return Run("raising a fleet incident", [&](pqxx::work& w) -> core::Result<FleetRaise> {
    // Instances raising the same kind and key wait for each other (the lock is the
    // transaction's), so the second sees the first's row and merges into it.
    w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)",
                  ProcessLockKey("fleet_incidents", 0, draft.kind + "\n" + draft.key));
    FleetRaise out;
    const pqxx::result found = w.exec_params(
        std::string("SELECT ") + internal::kFleetIncidentColumns +
            " FROM fleet_incidents WHERE kind = $1 AND key = $2 AND first_ms - $5::bigint <= "
            "$4::bigint AND last_ms + $5::bigint >= $3::bigint ORDER BY last_ms DESC LIMIT 1",
        PgText(draft.kind), PgText(draft.key), draft.first_ms, draft.last_ms, window_ms);
    if (!found.empty()) {
      out.row = internal::FleetIncidentFrom(PgRow(found[0]));
      out.changed = internal::MergeFleetDraft(&out.row, draft);
      if (!out.changed) return out;
      out.row.updated_ms = now_ms;
      w.exec_params(
          "UPDATE fleet_incidents SET hosts = $2, first_ms = $3::bigint, last_ms = $4::bigint, "
          "summary = $5, updated_ms = $6::bigint WHERE id = $1::bigint",
          out.row.id, PgText(internal::FleetHostsJson(out.row.hosts)), out.row.first_ms,
          out.row.last_ms, PgText(out.row.summary), now_ms);
      return out;
    }
    out.row = draft;
    out.row.created_ms = out.row.updated_ms = now_ms;
    const pqxx::result id = w.exec_params(
        "INSERT INTO fleet_incidents (kind, key, hosts, first_ms, last_ms, summary, created_ms, "
        "updated_ms) VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6, $7::bigint, $7::bigint) "
        "RETURNING id",
        PgText(draft.kind), PgText(draft.key), PgText(internal::FleetHostsJson(draft.hosts)),
        draft.first_ms, draft.last_ms, PgText(draft.summary), now_ms);
    out.row.id = id[0][0].as<int64_t>();
    out.created = true;
    return out;
  });
}

core::Result<std::vector<FleetIncidentRow>> PostgresStore::FleetIncidents(int64_t limit,
                                                                          int64_t before_id) {
  return Run("listing fleet incidents",
             [&](pqxx::work& w) -> core::Result<std::vector<FleetIncidentRow>> {
               std::vector<FleetIncidentRow> out;
               for (const auto& row : w.exec_params(
                        std::string("SELECT ") + internal::kFleetIncidentColumns +
                            " FROM fleet_incidents WHERE ($1::bigint = 0 OR id < $1::bigint) "
                            "ORDER BY id DESC LIMIT $2::bigint",
                        before_id, std::clamp<int64_t>(limit, 1, 1000))) {
                 out.push_back(internal::FleetIncidentFrom(PgRow(row)));
               }
               return out;
             });
}

core::Result<std::vector<StoredFinding>> PostgresStore::RecentFindings(int64_t since_ms,
                                                                       int64_t limit) {
  return Run("reading recent findings",
             [&](pqxx::work& w) -> core::Result<std::vector<StoredFinding>> {
               std::vector<StoredFinding> out;
               for (const auto& row :
                    w.exec_params(internal::kRecentFindingsSql, since_ms, limit)) {
                 const PgRow q(row);
                 out.push_back({q.T(0), q.T(1), q.I(2)});
               }
               std::reverse(out.begin(), out.end());
               return out;
             });
}

core::Result<MissedDetectionRow> PostgresStore::RecordMissedDetection(
    const MissedDetectionRow& m) {
  return Run("storing a missed detection", [&](pqxx::work& w) -> core::Result<MissedDetectionRow> {
    const pqxx::result id = w.exec_params(
        "INSERT INTO missed_detections (host, kind, name, time_ms, note, recorded_by, "
        "recorded_ms) VALUES ($1, $2, $3, $4::bigint, $5, $6, $7::bigint) RETURNING id",
        PgText(m.host), PgText(m.kind), PgText(m.name), m.time_ms, PgText(m.note),
        PgText(m.recorded_by), m.recorded_ms);
    MissedDetectionRow out = m;
    out.id = id[0][0].as<int64_t>();
    return out;
  });
}

core::Result<std::vector<MissedDetectionRow>> PostgresStore::MissedDetections(int64_t limit) {
  return Run("listing missed detections",
             [&](pqxx::work& w) -> core::Result<std::vector<MissedDetectionRow>> {
               std::vector<MissedDetectionRow> out;
               for (const auto& row : w.exec_params(
                        std::string("SELECT ") + internal::kMissedColumns +
                            " FROM missed_detections ORDER BY id DESC LIMIT $1::bigint",
                        std::clamp<int64_t>(limit, 1, 1000))) {
                 out.push_back(internal::MissedFrom(PgRow(row)));
               }
               return out;
             });
}

core::Result<std::vector<ScoreSample>> PostgresStore::ScoreSamples(int64_t since_ms,
                                                                   int64_t limit) {
  return Run("reading scores", [&](pqxx::work& w) -> core::Result<std::vector<ScoreSample>> {
    std::vector<ScoreSample> out;
    for (const auto& row : w.exec_params(internal::kScoreSamplesSql, since_ms, limit)) {
      const PgRow q(row);
      out.push_back({q.T(0), q.I(1), q.D(2).value_or(0)});
    }
    std::reverse(out.begin(), out.end());
    return out;
  });
}

core::Result<std::vector<StoredFinding>> PostgresStore::FindingsAfter(int64_t after_id,
                                                                      int64_t limit) {
  return Run("reading findings", [&](pqxx::work& w) -> core::Result<std::vector<StoredFinding>> {
    std::vector<StoredFinding> out;
    for (const auto& row : w.exec_params(internal::kFindingsAfterSql, after_id, limit)) {
      const PgRow q(row);
      out.push_back({q.T(0), q.T(1), q.I(2)});
    }
    return out;
  });
}

core::Result<std::vector<IncidentFeatures>> PostgresStore::TriageFeatures(
    const std::vector<int64_t>& ids) {
  return Run("reading triage features",
             [&](pqxx::work& w) -> core::Result<std::vector<IncidentFeatures>> {
               std::vector<IncidentFeatures> out;
               for (const int64_t id : ids) {
                 for (const auto& row : w.exec_params(internal::kIncidentFeatureSql, id)) {
                   out.push_back(internal::IncidentFeaturesFrom(PgRow(row)));
                 }
               }
               return out;
             });
}

core::Status PostgresStore::SetTriage(const std::vector<TriageMark>& marks) {
  auto done = Run("marking incidents' triage", [&](pqxx::work& w) -> core::Result<bool> {
    for (const TriageMark& m : marks) {
      w.exec_params(
          "UPDATE incidents SET triage_score = $2::double precision, triage_suppressed = "
          "$3::int WHERE id = $1::bigint",
          m.id, m.score, m.suppressed ? 1 : 0);
    }
    return true;
  });
  return done.has_value() ? core::Status() : done.error();
}

core::Result<int64_t> PostgresStore::CountSuppressed() {
  return Run("counting suppressed incidents", [&](pqxx::work& w) -> core::Result<int64_t> {
    return w.exec("SELECT COUNT(*) FROM incidents WHERE triage_suppressed = 1")[0][0]
        .as<int64_t>();
  });
}

AgentCertRow AgentCertOf(const pqxx::row& r) {
  const PgRow row(r);
  return AgentCertRow{row.T(0), row.T(1), row.T(2), row.T(3), row.T(4), row.I(5),
                      row.I(6), row.I(7), row.I(8), row.T(9), row.T(10)};
}

core::Status PostgresStore::PutAgentCert(const AgentCertRow& c) {
  auto done = Run("recording an agent certificate", [&](pqxx::work& w) -> core::Result<bool> {
    w.exec_params(std::string("INSERT INTO agent_certs (") + internal::kAgentCertColumns +
                      ") VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint, $8::bigint, "
                      "$9::bigint, $10, $11) ON CONFLICT (sha256) DO NOTHING",
                  PgText(c.sha256), PgText(c.host), PgText(c.group), PgText(c.how),
                  PgText(c.replaces), c.not_after_s, c.issued_ms, c.first_used_ms, c.revoked_ms,
                  PgText(c.revoked_by), PgText(c.revoke_reason));
    return true;
  });
  if (!done.has_value()) return done.error();
  return {};
}

core::Result<AgentCertRow> PostgresStore::AgentCert(const std::string& sha256) {
  return Run("reading an agent certificate", [&](pqxx::work& w) -> core::Result<AgentCertRow> {
    const pqxx::result r = w.exec_params(std::string("SELECT ") + internal::kAgentCertColumns +
                                             " FROM agent_certs WHERE sha256 = $1",
                                         PgText(sha256));
    if (r.empty()) {
      return core::NotFound("agent certificate sha256:" + sha256 + ": not issued by this hub");
    }
    return AgentCertOf(r[0]);
  });
}

core::Result<std::vector<AgentCertRow>> PostgresStore::AgentCerts(const std::string& host,
                                                                  int64_t limit) {
  return Run("listing agent certificates",
             [&](pqxx::work& w) -> core::Result<std::vector<AgentCertRow>> {
               const pqxx::result r = w.exec_params(
                   std::string("SELECT ") + internal::kAgentCertColumns +
                       " FROM agent_certs WHERE $1 = '' OR host = $1 ORDER BY issued_ms DESC, "
                       "sha256 LIMIT $2::bigint",
                   PgText(host), limit);
               std::vector<AgentCertRow> out;
               for (const auto& row : r) out.push_back(AgentCertOf(row));
               return out;
             });
}

core::Result<AgentCertRow> PostgresStore::RevokeAgentCert(const std::string& sha256,
                                                          int64_t now_ms, const std::string& by,
                                                          const std::string& reason) {
  return Run("revoking an agent certificate", [&](pqxx::work& w) -> core::Result<AgentCertRow> {
    w.exec_params(std::string("INSERT INTO agent_certs (") + internal::kAgentCertColumns +
                      ") VALUES ($1, '', '', 'revoked', '', 0, $2::bigint, 0, 0, '', '') "
                      "ON CONFLICT (sha256) DO NOTHING",
                  PgText(sha256), now_ms);
    w.exec_params(
        "UPDATE agent_certs SET revoked_ms = $2::bigint, revoked_by = $3, revoke_reason = $4 "
        "WHERE sha256 = $1 AND revoked_ms = 0",
        PgText(sha256), now_ms, PgText(by), PgText(reason));
    const pqxx::result r = w.exec_params(std::string("SELECT ") + internal::kAgentCertColumns +
                                             " FROM agent_certs WHERE sha256 = $1",
                                         PgText(sha256));
    return AgentCertOf(r[0]);
  });
}

core::Result<bool> PostgresStore::MarkAgentCertUsed(const std::string& sha256, int64_t now_ms) {
  return Run("marking an agent certificate used", [&](pqxx::work& w) -> core::Result<bool> {
    const pqxx::result r = w.exec_params(
        "UPDATE agent_certs SET first_used_ms = $2::bigint WHERE sha256 = $1 AND "
        "first_used_ms = 0 RETURNING sha256",
        PgText(sha256), now_ms);
    return !r.empty();
  });
}

core::Result<int64_t> PostgresStore::Count(const char* table) {
  if (!internal::IsStoreTable(table)) {
    return core::InvalidArgument(std::string("no table ") + table);
  }
  const std::string sql = std::string("SELECT COUNT(*) FROM ") + table;
  return Run("counting", [&](pqxx::work& w) -> core::Result<int64_t> {
    return w.exec(sql)[0][0].as<int64_t>();
  });
}

}  // namespace

core::Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& uri,
                                                       const StoreOptions& options) {
  if (core::Status s = CheckPostgresUri(uri); !s.ok()) {
    return core::InvalidArgument("hub store \"" + RedactStoreLocation(uri) +
                                 "\": " + s.message());
  }
  if (options.pool_size < 1 || options.pool_size > 64 || options.pool_wait_ms < 0) {
    return core::InvalidArgument("hub store \"" + RedactStoreLocation(uri) +
                                 "\": pool size must be 1..64 and the pool wait >= 0 ms");
  }
  auto store = std::make_unique<PostgresStore>(uri, options);
  VIGIL_RETURN_IF_ERROR(store->CreateSchema());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil::hub
