#pragma once

// The hub's API requests as values, and their parsers (outside input: every field is checked and
// every error names the field and the reason; nothing throws). Formats: docs/hub.md.
//
//   POST /v1/ingest          IngestMessage  {"schema_version","host","message_id","findings":[...]}
//   POST /v1/escalations     EscalationRequest
//   POST /v1/escalations/ID/decision   {"decision":"approve"|"deny","note"}
//   POST /v1/incidents/ID/adjudication {"label":"true_positive"|"false_positive"|"benign","note"}
//
// Findings are the OCSF 1.1 Detection Findings (class_uid 2004) the agent writes to its sinks:
// a model's verdict (core/event_json.h VerdictToOcsfJson) or a policy decision
// (policy/decision_json.h DecisionToOcsfJson), told apart by their "vigil" object.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::hub {

inline constexpr std::string_view kHubSchemaVersion = "vigil.hub/v1";
inline constexpr size_t kMaxRequestBytes = size_t{8} << 20;  // one HTTP body
inline constexpr size_t kMaxFindingsPerMessage = 10000;
inline constexpr size_t kMaxExplanation = 64;  // evidence items kept per finding
inline constexpr size_t kMaxTextField = 4096;  // any free-text field (message, reason, note)
inline constexpr size_t kMaxNameField = 256;   // rule, model, process, title, uid

enum class FindingKind : uint8_t { kVerdict, kDecision };
std::string_view FindingKindName(FindingKind k);  // "verdict", "decision"

struct FindingEvidence {
  std::string what;
  double weight = 0;
};

struct Finding {
  FindingKind kind = FindingKind::kVerdict;
  int64_t time_ms = 0;  // "time" (Unix milliseconds)
  int severity_id = 0;  // 0..6 (OCSF)
  std::string uid;      // finding_info.uid
  std::string title;    // finding_info.title
  std::string message;  // "message" (decisions: the rule's output)
  int64_t pid = 0;      // process.pid
  std::string process;  // process.name ("" when not given)
  std::string rule;     // decisions: vigil.rule
  std::string action;   // decisions: vigil.action
  std::string model;    // verdicts: finding_info.analytic.name; decisions: vigil.ml.model
  std::string model_version;
  std::optional<double> score;               // verdicts: vigil.score; decisions: vigil.ml.score
  std::vector<FindingEvidence> explanation;  // verdicts: vigil.explanation (first 64)
  std::string dst_ip;  // dst_endpoint.ip: a network destination involved ("" when not given)
  std::string raw;  // the finding's text as received (for the detail view)
};

struct IngestMessage {
  std::string host;        // the agent's host id (the token's subject must match)
  std::string message_id;  // unique per host; a redelivered message carries the same id
  std::vector<Finding> findings;
};

enum class Verdict : uint8_t { kApprove, kDeny };
std::string_view VerdictName(Verdict v);  // "approve", "deny"

// An agent's escalate action, handed to the hub for a person to decide.
struct EscalationRequest {
  std::string host;
  std::string escalation_id;  // the agent's own id for it (unique per host)
  std::string rule;
  std::string action;  // the action carried out on approval ("kill", "freeze", ...)
  std::string reason;
  int64_t pid = 0;
  std::string process;
  uint32_t timeout_s = 0;                    // 0: the hub's default
  Verdict default_verdict = Verdict::kDeny;  // applied when nobody decides in time
};

struct DecisionRequest {
  Verdict verdict = Verdict::kDeny;
  std::string note;
};

enum class Label : uint8_t { kTruePositive, kFalsePositive, kBenign };
std::string_view LabelName(Label l);  // as model/triage_labels.h names them
bool ParseLabel(std::string_view name, Label* out);

struct AdjudicationRequest {
  Label label = Label::kBenign;
  std::string note;
};

// POST /v1/missed-detections: a detection that should have fired and did not (a false negative
// of a rule or a model): {"host", "rule" or "model" (exactly one), "time_ms", "note"}.
struct MissedDetectionRequest {
  std::string host;
  std::string kind;  // "rule" or "model"
  std::string name;
  int64_t time_ms = 0;
  std::string note;
};

// A host id: 1..253 bytes of [A-Za-z0-9._:-]. Message and escalation ids: 1..128 bytes of
// printable ASCII without spaces.
bool ValidHostId(std::string_view s);
bool ValidMessageId(std::string_view s);
// An IPv4 or IPv6 address in text form (inet_pton).
bool ValidIpAddress(const std::string& s);

// Each parser takes a whole request body; errors are kInvalidArgument, e.g.
// "findings[3].time: expected an integer". The ingest body and finding parsers are the hub's
// hot path (hub/ingest_json.cc: no JSON tree; a finding's raw is its text as received).
core::Result<IngestMessage> ParseIngestRequest(std::string_view body);
core::Result<EscalationRequest> ParseEscalationRequest(std::string_view body);
core::Result<DecisionRequest> ParseDecisionRequest(std::string_view body);
core::Result<AdjudicationRequest> ParseAdjudicationRequest(std::string_view body);
core::Result<MissedDetectionRequest> ParseMissedDetectionRequest(std::string_view body);
// POST /v1/triage/train's body (hub/triage.h): {"rounds":1..2000,"max_depth":1..16,
// "eta":(0,1],"seed":0..2^53,"activate":bool}, every key optional (defaults: those of `vigil
// train --model-type triage`, activate true); at most 4096 bytes. Errors name the key.
struct TriageTrainRequest {
  int rounds = 300;
  int max_depth = 4;
  double eta = 0.05;
  uint64_t seed = 0;   // the booster's and the folds' (hub/triage_holdout.h)
  int folds = 5;       // 2..20: the threshold is chosen on out-of-fold scores
  bool activate = true;
};
core::Result<TriageTrainRequest> ParseTriageTrainRequest(std::string_view body);
// One finding line as the agent writes it (vigil hub ingest reads files of them).
core::Result<Finding> ParseFindingJson(std::string_view line);

}  // namespace vigil::hub
