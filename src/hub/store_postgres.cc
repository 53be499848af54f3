#include "hub/store_postgres.h"

#include <algorithm>
#include <mutex>
#include <pqxx/pqxx>
#include <type_traits>

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
  core::Result<int64_t> JoinIncident(pqxx::work& w, const std::string& host, const Finding& f,
                                     bool* created);
  static core::Result<IncidentRow> IncidentIn(pqxx::work& w, int64_t id, bool for_update);
  static core::Result<EscalationRow> EscalationIn(pqxx::work& w, int64_t id);

  const std::string uri_;
  const std::string shown_;     // uri_ with its password redacted
  const std::string password_;  // scrubbed from every message
  const StoreOptions options_;
  std::mutex mu_;
  std::unique_ptr<pqxx::connection> conn_;
};

template <typename Fn>
std::invoke_result_t<Fn, pqxx::work&> PostgresStore::Run(std::string_view what, Fn fn) {
  std::lock_guard lock(mu_);
  for (int attempt = 1;; ++attempt) {
    try {
      if (conn_ == nullptr || !conn_->is_open()) {
        conn_.reset();
        auto c = std::make_unique<pqxx::connection>(uri_);
        // CREATE ... IF NOT EXISTS and friends would print NOTICEs on stderr.
        pqxx::nontransaction setup(*c);
        setup.exec("SET client_min_messages = warning");
        setup.commit();
        conn_ = std::move(c);
      }
      pqxx::work w(*conn_);
      auto r = fn(w);
      if (!r.has_value()) return r;  // the transaction is aborted as `w` goes
      w.commit();
      return r;
    } catch (const pqxx::serialization_failure& e) {
      if (attempt >= kPgAttempts) return Fail(what, e.what());
    } catch (const pqxx::deadlock_detected& e) {
      if (attempt >= kPgAttempts) return Fail(what, e.what());
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      return Fail(what, e.what());
    } catch (const pqxx::in_doubt_error& e) {
      conn_.reset();
      return Fail(what, std::string("commit outcome unknown: ") + e.what());
    } catch (const pqxx::sql_error& e) {
      const std::string state = e.sqlstate();
      return Fail(what, e.what() + (state.empty() ? "" : " (SQLSTATE " + state + ")"),
                  state.starts_with("22") ? core::StatusCode::kInvalidArgument
                                          : core::StatusCode::kUnavailable);
    } catch (const std::exception& e) {
      if (conn_ != nullptr && !conn_->is_open()) conn_.reset();
      return Fail(what, e.what());
    }
  }
}

core::Status PostgresStore::CreateSchema() {
  auto done = Run("creating the schema", [](pqxx::work& w) -> core::Result<int> {
    w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", kPgSchemaLockKey);
    const pqxx::result has = w.exec("SELECT to_regclass('hub_schema') IS NOT NULL");
    if (has[0][0].as<bool>()) {
      const pqxx::result v = w.exec("SELECT MAX(version) FROM hub_schema");
      const int version = v[0][0].is_null() ? 0 : v[0][0].as<int>();
      if (version > kPostgresSchemaVersion) {
        return core::FailedPrecondition(
            "the database has hub schema version " + std::to_string(version) +
            ", newer than this hub's " + std::to_string(kPostgresSchemaVersion) +
            ": upgrade the hub");
      }
      if (version == kPostgresSchemaVersion) return version;
    }
    w.exec(kPgSchema);
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

core::Result<int64_t> PostgresStore::JoinIncident(pqxx::work& w, const std::string& host,
                                                  const Finding& f, bool* created) {
  const int64_t is_decision = f.kind == FindingKind::kDecision ? 1 : 0;
  // FOR UPDATE: an incident labelled meanwhile is re-checked (label IS NULL) and skipped.
  const pqxx::result found = w.exec_params(
      "SELECT id FROM incidents WHERE host = $1 AND pid = $2::bigint AND process = $3 AND "
      "label IS NULL AND first_ms - $5::bigint <= $4::bigint AND "
      "last_ms + $5::bigint >= $4::bigint ORDER BY last_ms DESC LIMIT 1 FOR UPDATE",
      host, f.pid, PgText(f.process), f.time_ms, options_.incident_window_ms);
  *created = found.empty();
  if (found.empty()) {
    const pqxx::result ins = w.exec_params(
        "INSERT INTO incidents (host, pid, process, first_ms, last_ms, alerts, verdicts, "
        "decisions, max_score, max_severity) VALUES ($1, $2::bigint, $3, $4::bigint, "
        "$4::bigint, 1, $5::bigint, $6::bigint, $7::float8, $8::bigint) RETURNING id",
        host, f.pid, PgText(f.process), f.time_ms, 1 - is_decision, is_decision, f.score,
        int64_t{f.severity_id});
    return ins[0][0].as<int64_t>();
  }
  const int64_t id = found[0][0].as<int64_t>();
  w.exec_params(
      "UPDATE incidents SET first_ms = LEAST(first_ms, $2::bigint), "
      "last_ms = GREATEST(last_ms, $2::bigint), alerts = alerts + 1, "
      "verdicts = verdicts + $3::bigint, decisions = decisions + $4::bigint, "
      "max_score = GREATEST(max_score, $5::float8), "
      "max_severity = GREATEST(max_severity, $6::bigint) WHERE id = $1::bigint",
      id, f.time_ms, 1 - is_decision, is_decision, f.score, int64_t{f.severity_id});
  return id;
}

core::Result<IngestResult> PostgresStore::Ingest(const IngestMessage& m, int64_t now_ms) {
  return Run("ingesting a message", [&](pqxx::work& w) -> core::Result<IngestResult> {
    IngestResult out;
    const pqxx::result seen = w.exec_params(
        "INSERT INTO messages (host, message_id, received_ms, findings) "
        "VALUES ($1, $2, $3::bigint, $4::bigint) ON CONFLICT (host, message_id) DO NOTHING "
        "RETURNING 1",
        m.host, m.message_id, now_ms, static_cast<int64_t>(m.findings.size()));
    out.duplicate = seen.empty();
    if (!out.duplicate) {
      std::vector<int64_t> keys;
      keys.reserve(m.findings.size());
      for (const Finding& f : m.findings) {
        keys.push_back(ProcessLockKey(m.host, f.pid, PgText(f.process)));
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      for (const int64_t k : keys) w.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", k);
      for (const Finding& f : m.findings) {
        bool created = false;
        VIGIL_ASSIGN_OR_RETURN(const int64_t incident, JoinIncident(w, m.host, f, &created));
        if (created) ++out.new_incidents;
        if (std::find(out.incidents.begin(), out.incidents.end(), incident) ==
            out.incidents.end()) {
          out.incidents.push_back(incident);
        }
        w.exec_params(
            "INSERT INTO alerts (incident_id, kind, time_ms, severity_id, uid, title, message, "
            "rule, action, model, model_version, score, explanation, raw) VALUES ($1::bigint, "
            "$2, $3::bigint, $4::bigint, $5, $6, $7, $8, $9, $10, $11, $12::float8, $13, $14)",
            incident, std::string(FindingKindName(f.kind)), f.time_ms, int64_t{f.severity_id},
            PgText(f.uid), PgText(f.title), PgText(f.message), PgText(f.rule), PgText(f.action),
            PgText(f.model), PgText(f.model_version), f.score,
            PgText(internal::ExplanationJson(f)), PgText(f.raw));
        ++out.findings;
      }
    }
    w.exec_params(
        "INSERT INTO agents (host, first_seen_ms, last_seen_ms, messages, findings) "
        "VALUES ($1, $2::bigint, $2::bigint, 1, $3::bigint) ON CONFLICT (host) DO UPDATE SET "
        "last_seen_ms = GREATEST(agents.last_seen_ms, EXCLUDED.last_seen_ms), "
        "messages = agents.messages + 1, findings = agents.findings + EXCLUDED.findings",
        m.host, now_ms, static_cast<int64_t>(out.findings));
    return out;
  });
}

core::Result<std::vector<IncidentRow>> PostgresStore::Incidents(const IncidentFilter& f) {
  const std::string sql =
      std::string("SELECT ") + kIncidentColumns +
      " FROM incidents WHERE ($1::text = '' OR host = $1::text) AND "
      "($2::bigint = 0 OR id < $2::bigint) AND "
      "($3::int = 2 OR ($3::int = 1) = (label IS NOT NULL)) ORDER BY id DESC LIMIT $4::bigint";
  const int adjudicated = f.adjudicated ? (*f.adjudicated ? 1 : 0) : 2;
  return Run("listing incidents", [&](pqxx::work& w) -> core::Result<std::vector<IncidentRow>> {
    std::vector<IncidentRow> out;
    for (const auto& row : w.exec_params(sql, PgText(f.host), f.before_id, adjudicated,
                                         std::clamp<int64_t>(f.limit, 1, 1000))) {
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
  auto store = std::make_unique<PostgresStore>(uri, options);
  VIGIL_RETURN_IF_ERROR(store->CreateSchema());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil::hub
