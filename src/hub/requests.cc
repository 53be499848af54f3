#include "hub/requests.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include "hub/internal/request_fields.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr size_t kMaxText = kMaxTextField;
constexpr size_t kMaxName = kMaxNameField;

using internal::Bad;
using internal::Id;
using internal::Integer;
using internal::ParseObject;
using internal::SchemaVersion;
using internal::Text;

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

core::Result<TriageTrainRequest> ParseTriageTrainRequest(std::string_view body) {
  TriageTrainRequest r;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;
  if (body.size() > 4096) return core::InvalidArgument("request: body over 4096 bytes");
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    auto whole = [&](int64_t lo, int64_t hi, auto* out) -> core::Status {
      if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
        return core::InvalidArgument("\"" + key + "\": expected an integer in " +
                                     std::to_string(lo) + ".." + std::to_string(hi));
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(v.get<int64_t>());
      return {};
    };
    if (key == "rounds") {
      VIGIL_RETURN_IF_ERROR(whole(1, 2000, &r.rounds));
    } else if (key == "max_depth") {
      VIGIL_RETURN_IF_ERROR(whole(1, 16, &r.max_depth));
    } else if (key == "folds") {
      VIGIL_RETURN_IF_ERROR(whole(2, 20, &r.folds));
    } else if (key == "seed") {
      VIGIL_RETURN_IF_ERROR(whole(0, int64_t{1} << 53, &r.seed));
    } else if (key == "eta") {
      if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 1)) {
        return core::InvalidArgument("\"eta\": expected a number in (0, 1]");
      }
      r.eta = v.get<double>();
    } else if (key == "activate") {
      if (!v.is_boolean()) return core::InvalidArgument("\"activate\": expected true or false");
      r.activate = v.get<bool>();
    } else {
      return core::InvalidArgument("\"" + key +
                                   "\": unknown key (rounds, max_depth, eta, seed, folds, activate)");
    }
  }
  return r;
}

}  // namespace vigil::hub
