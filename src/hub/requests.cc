#include "hub/requests.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr size_t kMaxText = kMaxTextField;
constexpr size_t kMaxName = kMaxNameField;

core::Status Bad(const std::string& field, std::string_view why) {
  return core::InvalidArgument(field + ": " + std::string(why));
}

json ParseObject(std::string_view body, core::Status* error) {
  if (body.size() > kMaxRequestBytes) {
    *error = core::InvalidArgument("request: body over 8 MiB");
    return {};
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = core::InvalidArgument("request: not valid JSON");
  } else if (!j.is_object()) {
    *error = core::InvalidArgument("request: not a JSON object");
  }
  return j;
}

// Optional string member, at most `max` bytes.
core::Status Text(const json& o, const char* key, const std::string& path, size_t max,
                  std::string* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_string()) return Bad(path + key, "expected a string");
  if (it->get_ref<const std::string&>().size() > max) {
    return Bad(path + key, "longer than " + std::to_string(max) + " bytes");
  }
  *out = it->get<std::string>();
  return {};
}

core::Status Integer(const json& o, const char* key, const std::string& path, int64_t lo,
                     int64_t hi, bool required, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    return required ? Bad(path + key, "missing") : core::Status();
  }
  if (!it->is_number_integer()) return Bad(path + key, "expected an integer");
  const bool is_unsigned = it->is_number_unsigned();
  const bool in_range = is_unsigned
                            ? it->get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                  (lo <= 0 || it->get<uint64_t>() >= static_cast<uint64_t>(lo))
                            : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
  if (!in_range) {
    return Bad(path + key, "out of range " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  *out = is_unsigned ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>();
  return {};
}

core::Status SchemaVersion(const json& o) {
  auto it = o.find("schema_version");
  if (it == o.end()) return {};
  if (!it->is_string() || it->get_ref<const std::string&>() != kHubSchemaVersion) {
    return Bad("schema_version", "expected \"vigil.hub/v1\"");
  }
  return {};
}

core::Status Id(const json& o, const char* key, bool host, std::string* out) {
  auto it = o.find(key);
  if (it == o.end()) return Bad(key, "missing");
  if (!it->is_string() || !(host ? ValidHostId(it->get_ref<const std::string&>())
                                 : ValidMessageId(it->get_ref<const std::string&>()))) {
    return Bad(key, host ? "expected 1..253 bytes of [A-Za-z0-9._:-]"
                         : "expected 1..128 printable ASCII bytes without spaces");
  }
  *out = it->get<std::string>();
  return {};
}

core::Status VerdictField(const json& o, const char* key, bool required, Verdict* out) {
  auto it = o.find(key);
  if (it == o.end()) return required ? Bad(key, "missing") : core::Status();
  if (it->is_string() && it->get_ref<const std::string&>() == "approve") {
    *out = Verdict::kApprove;
  } else if (it->is_string() && it->get_ref<const std::string&>() == "deny") {
    *out = Verdict::kDeny;
  } else {
    return Bad(key, "expected \"approve\" or \"deny\"");
  }
  return {};
}

}  // namespace

std::string_view FindingKindName(FindingKind k) {
  return k == FindingKind::kDecision ? "decision" : "verdict";
}

std::string_view VerdictName(Verdict v) { return v == Verdict::kApprove ? "approve" : "deny"; }

std::string_view LabelName(Label l) {
  switch (l) {
    case Label::kTruePositive:
      return "true_positive";
    case Label::kFalsePositive:
      return "false_positive";
    case Label::kBenign:
      return "benign";
  }
  return "benign";
}

bool ParseLabel(std::string_view name, Label* out) {
  for (Label l : {Label::kTruePositive, Label::kFalsePositive, Label::kBenign}) {
    if (name == LabelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

bool ValidIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool ValidHostId(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool ValidMessageId(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

core::Result<EscalationRequest> ParseEscalationRequest(std::string_view body) {
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  VIGIL_RETURN_IF_ERROR(SchemaVersion(j));
  EscalationRequest r;
  VIGIL_RETURN_IF_ERROR(Id(j, "host", true, &r.host));
  VIGIL_RETURN_IF_ERROR(Id(j, "escalation_id", false, &r.escalation_id));
  VIGIL_RETURN_IF_ERROR(Text(j, "rule", "", kMaxName, &r.rule));
  VIGIL_RETURN_IF_ERROR(Text(j, "action", "", kMaxName, &r.action));
  if (r.action.empty()) return Bad("action", "missing (the action carried out on approval)");
  VIGIL_RETURN_IF_ERROR(Text(j, "reason", "", kMaxText, &r.reason));
  VIGIL_RETURN_IF_ERROR(Integer(j, "pid", "", 0, int64_t{1} << 32, false, &r.pid));
  VIGIL_RETURN_IF_ERROR(Text(j, "process", "", kMaxName, &r.process));
  int64_t timeout = 0;
  VIGIL_RETURN_IF_ERROR(Integer(j, "timeout_s", "", 1, 86400, false, &timeout));
  r.timeout_s = static_cast<uint32_t>(timeout);
  VIGIL_RETURN_IF_ERROR(VerdictField(j, "default", false, &r.default_verdict));
  return r;
}

core::Result<DecisionRequest> ParseDecisionRequest(std::string_view body) {
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  DecisionRequest r;
  VIGIL_RETURN_IF_ERROR(VerdictField(j, "decision", true, &r.verdict));
  VIGIL_RETURN_IF_ERROR(Text(j, "note", "", kMaxText, &r.note));
  return r;
}

core::Result<AdjudicationRequest> ParseAdjudicationRequest(std::string_view body) {
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  AdjudicationRequest r;
  auto l = j.find("label");
  if (l == j.end() || !l->is_string() || !ParseLabel(l->get_ref<const std::string&>(), &r.label)) {
    return Bad("label", "expected \"true_positive\", \"false_positive\" or \"benign\"");
  }
  VIGIL_RETURN_IF_ERROR(Text(j, "note", "", kMaxText, &r.note));
  return r;
}

core::Result<MissedDetectionRequest> ParseMissedDetectionRequest(std::string_view body) {
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  MissedDetectionRequest r;
  VIGIL_RETURN_IF_ERROR(Id(j, "host", true, &r.host));
  std::string rule, model;
  VIGIL_RETURN_IF_ERROR(Text(j, "rule", "", kMaxName, &rule));
  VIGIL_RETURN_IF_ERROR(Text(j, "model", "", kMaxName, &model));
  if (rule.empty() == model.empty()) {
    return Bad("rule", "give exactly one of \"rule\" and \"model\" (what should have fired)");
  }
  r.kind = rule.empty() ? "model" : "rule";
  r.name = rule.empty() ? model : rule;
  VIGIL_RETURN_IF_ERROR(Integer(j, "time_ms", "", 0, int64_t{1} << 50, true, &r.time_ms));
  VIGIL_RETURN_IF_ERROR(Text(j, "note", "", kMaxText, &r.note));
  return r;
}

}  // namespace vigil::hub
