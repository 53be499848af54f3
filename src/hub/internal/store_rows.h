#pragma once

// Shared by the store implementations (hub/store_sqlite.cc, hub/store_postgres.cc): the column
// lists both schemas have, and rows built from a result row through an accessor with
//   int64_t I(int col); std::string T(int col); std::optional<double> D(int col); bool Null(int)
// so that both backends read the same columns into the same structs.

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "audit/canonical_json.h"
#include "hub/store.h"

namespace vigil::hub::internal {

inline constexpr const char* kIncidentColumns =
    "id, host, pid, process, first_ms, last_ms, alerts, verdicts, decisions, max_score, "
    "max_severity, label, labelled_by, note, labelled_ms, triage_score, triage_suppressed";

inline constexpr const char* kEscalationColumns =
    "id, host, escalation_id, rule, action, reason, pid, process, created_ms, deadline_ms, "
    "default_verdict, state, decided_by, note, decided_ms";

inline constexpr const char* kAlertColumns =
    "id, kind, time_ms, severity_id, uid, title, message, rule, action, model, model_version, "
    "score, explanation, raw";

// Per incident: its alerts' kinds, scores, severities, rules and models, as triage features (the
// columns LabelLine and FeaturesFrom read, in order); the caller appends the condition on
// incidents `i` (then GROUP BY i.id).
#define VIGIL_HUB_INCIDENT_FEATURE_SELECT                                                   \
  "SELECT i.id, i.host, i.label, i.labelled_by, i.first_ms, i.last_ms, i.alerts, "         \
  "i.verdicts, i.decisions, i.max_score, i.max_severity, AVG(a.score), "                   \
  "COUNT(DISTINCT NULLIF(a.rule, '')), COUNT(DISTINCT NULLIF(a.model, '')) "               \
  "FROM incidents i JOIN alerts a ON a.incident_id = i.id WHERE "

// Every adjudicated incident's features (Store::ExportLabels).
inline constexpr const char* kLabelExportSelect =
    VIGIL_HUB_INCIDENT_FEATURE_SELECT
    "i.label IS NOT NULL GROUP BY i.id ORDER BY i.labelled_ms, i.id";
// One incident's features (Store::TriageFeatures; ?1/$1 the id).
inline constexpr const char* kIncidentFeatureSql =
    VIGIL_HUB_INCIDENT_FEATURE_SELECT "i.id = $1 GROUP BY i.id";
#undef VIGIL_HUB_INCIDENT_FEATURE_SELECT

// The tables Store::Count accepts.
inline bool IsStoreTable(std::string_view table) {
  static const std::set<std::string, std::less<>> known{
      "agents",       "messages",  "incidents",          "alerts",        "escalations",
      "agent_status", "artifacts", "rollouts",           "attestation_nonces",
      "attested_keys", "fleet_incidents", "missed_detections", "audit_keys", "audit_checkpoints",
      "agent_certs", "audit_key_pins"};
  return known.count(table) != 0;
}

inline constexpr const char* kAgentStatusColumns =
    "host, group_name, mode, vigil_version, attestation, attestation_reason, registered_ms, "
    "heartbeat_ms, status";

inline constexpr const char* kAgentCertColumns =
    "sha256, host, group_name, how, replaces, not_after_s, issued_ms, first_used_ms, revoked_ms, "
    "revoked_by, revoke_reason";

inline constexpr const char* kRolloutColumns =
    "id, digest, kind, group_name, state, created_by, created_ms, promoted_by, promoted_ms";

// The artifact columns but its content (which each backend reads its own way), then the content.
inline constexpr const char* kArtifactColumns =
    "digest, kind, name, size, signature, key_id, uploaded_by, uploaded_ms";

template <typename Row>
AgentStatusRow AgentStatusFrom(const Row& q) {
  AgentStatusRow r;
  r.host = q.T(0);
  r.group = q.T(1);
  r.mode = q.T(2);
  r.vigil_version = q.T(3);
  r.attestation = q.T(4);
  r.attestation_reason = q.T(5);
  r.registered_ms = q.I(6);
  r.heartbeat_ms = q.I(7);
  r.status_json = q.T(8);
  return r;
}

template <typename Row>
RolloutRow RolloutFrom(const Row& q) {
  RolloutRow r;
  r.id = q.I(0);
  r.digest = q.T(1);
  r.kind = q.T(2);
  r.group = q.T(3);
  r.state = q.T(4);
  r.created_by = q.T(5);
  r.created_ms = q.I(6);
  r.promoted_by = q.T(7);
  r.promoted_ms = q.I(8);
  return r;
}

template <typename Row>
ArtifactRow ArtifactFrom(const Row& q) {
  ArtifactRow r;
  r.digest = q.T(0);
  r.kind = q.T(1);
  r.name = q.T(2);
  r.size = q.I(3);
  r.signature = q.T(4);
  r.key_id = q.T(5);
  r.uploaded_by = q.T(6);
  r.uploaded_ms = q.I(7);
  return r;
}

// A finding's explanation as stored: [{"what","weight"}...].
inline std::string ExplanationJson(const Finding& f) {
  // The bytes nlohmann's dump() of [{"what","weight"}...] gives (keys sorted: "weight" first),
  // written without building the tree (it was a tenth of the hub's ingest CPU).
  std::string out;
  {
    audit::CanonicalWriter w(&out);
    w.BeginArray();
    for (const FindingEvidence& e : f.explanation) {
      w.BeginObject();
      w.Key("weight");
      w.Double(e.weight);
      w.Key("what");
      w.String(e.what);
      w.EndObject();
    }
    w.EndArray();
  }
  return out;
}

template <typename Row>
IncidentRow IncidentFrom(const Row& q) {
  IncidentRow r;
  r.id = q.I(0);
  r.host = q.T(1);
  r.pid = q.I(2);
  r.process = q.T(3);
  r.first_ms = q.I(4);
  r.last_ms = q.I(5);
  r.alerts = q.I(6);
  r.verdicts = q.I(7);
  r.decisions = q.I(8);
  r.max_score = q.D(9);
  r.max_severity = q.I(10);
  Label l;
  if (!q.Null(11) && ParseLabel(q.T(11), &l)) r.label = l;
  r.labelled_by = q.T(12);
  r.note = q.T(13);
  r.labelled_ms = q.I(14);
  r.triage_score = q.D(15);
  r.triage_suppressed = q.I(16) != 0;
  return r;
}

template <typename Row>
EscalationRow EscalationFrom(const Row& q) {
  EscalationRow r;
  r.id = q.I(0);
  r.request.host = q.T(1);
  r.request.escalation_id = q.T(2);
  r.request.rule = q.T(3);
  r.request.action = q.T(4);
  r.request.reason = q.T(5);
  r.request.pid = q.I(6);
  r.request.process = q.T(7);
  r.created_ms = q.I(8);
  r.deadline_ms = q.I(9);
  r.request.timeout_s = static_cast<uint32_t>((r.deadline_ms - r.created_ms) / 1000);
  r.request.default_verdict = q.T(10) == "approve" ? Verdict::kApprove : Verdict::kDeny;
  const std::string state = q.T(11);
  for (auto s : {EscalationState::kPending, EscalationState::kApproved, EscalationState::kDenied,
                 EscalationState::kTimedOut}) {
    if (state == EscalationStateName(s)) r.state = s;
  }
  r.decided_by = q.T(12);
  r.note = q.T(13);
  r.decided_ms = q.I(14);
  return r;
}

template <typename Row>
AlertRow AlertFrom(const Row& q) {
  AlertRow a;
  a.id = q.I(0);
  a.kind = q.T(1) == "decision" ? FindingKind::kDecision : FindingKind::kVerdict;
  a.time_ms = q.I(2);
  a.severity_id = q.I(3);
  a.uid = q.T(4);
  a.title = q.T(5);
  a.message = q.T(6);
  a.rule = q.T(7);
  a.action = q.T(8);
  a.model = q.T(9);
  a.model_version = q.T(10);
  a.score = q.D(11);
  a.explanation_json = q.T(12);
  a.raw = q.T(13);
  return a;
}

// One row of kLabelExportSelect as a line of docs/triage-labels.md's format (with '\n').
// The triage features of a kLabelExportSelect / kIncidentFeatureSql row: the names the trainer
// learns from (docs/triage-labels.md) and the hub's scorer gives the model (hub/triage.h).
template <typename Row>
std::vector<std::pair<std::string, std::optional<double>>> FeaturesFrom(const Row& q) {
  return {{"alerts", static_cast<double>(q.I(6))},
          {"verdicts", static_cast<double>(q.I(7))},
          {"decisions", static_cast<double>(q.I(8))},
          {"max_score", q.D(9)},
          {"max_severity", static_cast<double>(q.I(10))},
          {"mean_score", q.D(11)},
          {"distinct_rules", static_cast<double>(q.I(12))},
          {"distinct_models", static_cast<double>(q.I(13))},
          {"span_s", static_cast<double>(q.I(5) - q.I(4)) / 1000.0}};
}

template <typename Row>
IncidentFeatures IncidentFeaturesFrom(const Row& q) {
  IncidentFeatures out;
  out.id = q.I(0);
  for (auto& [name, value] : FeaturesFrom(q)) {
    if (value) out.features.emplace(std::move(name), *value);
  }
  return out;
}

template <typename Row>
std::string LabelLine(const Row& q) {
  nlohmann::json features = nlohmann::json::object();
  for (const auto& [name, value] : FeaturesFrom(q)) {
    if (!value) {
      features[name] = nullptr;
    } else if (std::trunc(*value) == *value && std::fabs(*value) < 9e15) {
      features[name] = static_cast<int64_t>(*value);  // counts stay integers in the file
    } else {
      features[name] = *value;
    }
  }
  nlohmann::json line = {{"id", "hub:" + q.T(1) + ":" + std::to_string(q.I(0))},
                         {"label", q.T(2)},
                         {"host", q.T(1)},
                         {"analyst", q.T(3)},
                         {"features", std::move(features)}};
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// Adds one (kind, name, label, incidents) row of the adjudication count queries to `out`
// (rows arrive ordered by name within a kind).
inline void AddAdjudicationCount(std::vector<AdjudicationCount>& out, const std::string& kind,
                                 const std::string& name, const std::string& label,
                                 int64_t incidents) {
  if (out.empty() || out.back().kind != kind || out.back().name != name) {
    out.push_back({kind, name});
  }
  Label l;
  if (!ParseLabel(label, &l)) return;
  int64_t& slot = l == Label::kTruePositive    ? out.back().true_positive
                  : l == Label::kFalsePositive ? out.back().false_positive
                                               : out.back().benign;
  slot = incidents;
}

// The adjudication count query for kind "rule" or "model" (rows: name, label, incidents).
inline std::string AdjudicationCountSql(const std::string& col) {
  return "SELECT a." + col +
         ", i.label, COUNT(DISTINCT i.id) FROM alerts a JOIN incidents i ON "
         "a.incident_id = i.id WHERE i.label IS NOT NULL AND a." +
         col + " <> '' GROUP BY a." + col + ", i.label ORDER BY a." + col;
}

inline constexpr const char* kFleetIncidentColumns =
    "id, kind, key, hosts, first_ms, last_ms, summary, created_ms, updated_ms";

inline constexpr const char* kMissedColumns =
    "id, host, kind, name, time_ms, note, recorded_by, recorded_ms";

// The stored findings with their hosts (Store::RecentFindings; ?1/$1 since, ?2/$2 limit):
// the newest `limit`, which the caller reverses.
inline constexpr const char* kRecentFindingsSql =
    "SELECT i.host, a.raw, a.id FROM alerts a JOIN incidents i ON a.incident_id = i.id "
    "WHERE a.time_ms >= $1 ORDER BY a.time_ms DESC, a.id DESC LIMIT $2";

// The stored findings after an alert id, in id order (Store::FindingsAfter; $1 after, $2 limit).
inline constexpr const char* kFindingsAfterSql =
    "SELECT i.host, a.raw, a.id FROM alerts a JOIN incidents i ON a.incident_id = i.id "
    "WHERE a.id > $1 ORDER BY a.id LIMIT $2";

// Model scores (Store::ScoreSamples), newest `limit` first.
inline constexpr const char* kScoreSamplesSql =
    "SELECT model, time_ms, score FROM alerts WHERE time_ms >= $1 AND score IS NOT NULL AND "
    "model <> '' ORDER BY time_ms DESC, id DESC LIMIT $2";

// Missed detections per rule or model (rows: kind, name, count).
inline constexpr const char* kMissedCountSql =
    "SELECT kind, name, COUNT(*) FROM missed_detections GROUP BY kind, name ORDER BY kind, name";

inline std::string FleetHostsJson(const std::vector<std::string>& hosts) {
  return nlohmann::json(hosts).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <typename Row>
FleetIncidentRow FleetIncidentFrom(const Row& q) {
  FleetIncidentRow r;
  r.id = q.I(0);
  r.kind = q.T(1);
  r.key = q.T(2);
  const nlohmann::json hosts = nlohmann::json::parse(q.T(3), nullptr, false);
  if (hosts.is_array()) {
    for (const auto& h : hosts) {
      if (h.is_string()) r.hosts.push_back(h.get<std::string>());
    }
  }
  r.first_ms = q.I(4);
  r.last_ms = q.I(5);
  r.summary = q.T(6);
  r.created_ms = q.I(7);
  r.updated_ms = q.I(8);
  return r;
}

template <typename Row>
MissedDetectionRow MissedFrom(const Row& q) {
  return {q.I(0), q.T(1), q.T(2), q.T(3), q.I(4), q.T(5), q.T(6), q.I(7)};
}

// Merges a raised draft into the stored fleet incident `row`: hosts united (a spread's kept
// sorted; a chain's are its two ends), span extended, the summary replaced when hosts were added.
// Returns whether anything changed.
inline bool MergeFleetDraft(FleetIncidentRow* row, const FleetIncidentRow& draft) {
  bool changed = false;
  for (const std::string& h : draft.hosts) {
    if (std::find(row->hosts.begin(), row->hosts.end(), h) == row->hosts.end()) {
      row->hosts.push_back(h);
      changed = true;
    }
  }
  if (changed && row->kind == "spread") std::sort(row->hosts.begin(), row->hosts.end());
  if (changed) row->summary = draft.summary;
  if (draft.first_ms < row->first_ms || draft.last_ms > row->last_ms) changed = true;
  row->first_ms = std::min(row->first_ms, draft.first_ms);
  row->last_ms = std::max(row->last_ms, draft.last_ms);
  return changed;
}

// Adds a missed-detection count to the adjudication counts (kind, name), keeping the order
// AdjudicationCounts gives (by kind, then name).
inline void AddMissedCount(std::vector<AdjudicationCount>& out, const std::string& kind,
                           const std::string& name, int64_t n) {
  for (AdjudicationCount& c : out) {
    if (c.kind == kind && c.name == name) {
      c.false_negative = n;
      return;
    }
  }
  AdjudicationCount c{kind, name};
  c.false_negative = n;
  out.push_back(std::move(c));
}

}  // namespace vigil::hub::internal
