#include "hub/requests.h"

#include <arpa/inet.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr size_t kMaxText = 4096;  // any free-text field (message, reason, note)
constexpr size_t kMaxName = 256;   // rule, model, process, title, uid

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

core::Status Score(const json& o, const char* key, const std::string& path,
                   std::optional<double>* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return {};
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0 ||
      it->get<double>() > 1) {
    return Bad(path + key, "expected a number in [0, 1]");
  }
  *out = it->get<double>();
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

core::Result<Finding> FindingFrom(const json& f, const std::string& path) {
  if (!f.is_object()) return Bad(path.substr(0, path.size() - 1), "not a JSON object");
  Finding out;
  int64_t class_uid = 0;
  VIGIL_RETURN_IF_ERROR(Integer(f, "class_uid", path, 0, 1'000'000, true, &class_uid));
  if (class_uid != 2004) return Bad(path + "class_uid", "expected 2004 (Detection Finding)");
  VIGIL_RETURN_IF_ERROR(Integer(f, "time", path, 0, int64_t{1} << 50, true, &out.time_ms));
  int64_t severity = 0;
  VIGIL_RETURN_IF_ERROR(Integer(f, "severity_id", path, 0, 99, false, &severity));
  out.severity_id = static_cast<int>(severity);
  VIGIL_RETURN_IF_ERROR(Text(f, "message", path, kMaxText, &out.message));
  auto info = f.find("finding_info");
  if (info != f.end()) {
    if (!info->is_object()) return Bad(path + "finding_info", "expected an object");
    VIGIL_RETURN_IF_ERROR(Text(*info, "uid", path + "finding_info.", kMaxName, &out.uid));
    VIGIL_RETURN_IF_ERROR(Text(*info, "title", path + "finding_info.", kMaxName, &out.title));
  }
  auto proc = f.find("process");
  if (proc != f.end()) {
    if (!proc->is_object()) return Bad(path + "process", "expected an object");
    VIGIL_RETURN_IF_ERROR(
        Integer(*proc, "pid", path + "process.", 0, int64_t{1} << 32, false, &out.pid));
    VIGIL_RETURN_IF_ERROR(Text(*proc, "name", path + "process.", kMaxName, &out.process));
  }
  auto dst = f.find("dst_endpoint");
  if (dst != f.end() && !dst->is_null()) {
    if (!dst->is_object()) return Bad(path + "dst_endpoint", "expected an object");
    VIGIL_RETURN_IF_ERROR(Text(*dst, "ip", path + "dst_endpoint.", 64, &out.dst_ip));
    if (!out.dst_ip.empty() && !ValidIpAddress(out.dst_ip)) {
      return Bad(path + "dst_endpoint.ip", "expected an IPv4 or IPv6 address");
    }
  }
  auto v = f.find("vigil");
  if (v == f.end() || !v->is_object()) return Bad(path + "vigil", "missing or not an object");
  const std::string vp = path + "vigil.";
  if (v->contains("rule")) {
    out.kind = FindingKind::kDecision;
    VIGIL_RETURN_IF_ERROR(Text(*v, "rule", vp, kMaxName, &out.rule));
    VIGIL_RETURN_IF_ERROR(Text(*v, "action", vp, kMaxName, &out.action));
    auto ml = v->find("ml");
    if (ml != v->end() && !ml->is_null()) {
      if (!ml->is_object()) return Bad(vp + "ml", "expected an object");
      VIGIL_RETURN_IF_ERROR(Score(*ml, "score", vp + "ml.", &out.score));
      VIGIL_RETURN_IF_ERROR(Text(*ml, "model", vp + "ml.", kMaxName, &out.model));
    }
    if (out.message.empty()) VIGIL_RETURN_IF_ERROR(Text(*v, "reason", vp, kMaxText, &out.message));
  } else if (v->contains("score")) {
    out.kind = FindingKind::kVerdict;
    VIGIL_RETURN_IF_ERROR(Score(*v, "score", vp, &out.score));
    if (info != f.end()) {
      auto an = info->find("analytic");
      if (an != info->end()) {
        if (!an->is_object()) return Bad(path + "finding_info.analytic", "expected an object");
        const std::string ap = path + "finding_info.analytic.";
        VIGIL_RETURN_IF_ERROR(Text(*an, "name", ap, kMaxName, &out.model));
        VIGIL_RETURN_IF_ERROR(Text(*an, "version", ap, kMaxName, &out.model_version));
      }
    }
    auto ex = v->find("explanation");
    if (ex != v->end() && !ex->is_null()) {
      if (!ex->is_array()) return Bad(vp + "explanation", "expected an array");
      for (size_t i = 0; i < ex->size() && i < kMaxExplanation; ++i) {
        const json& e = (*ex)[i];
        const std::string ep = vp + "explanation[" + std::to_string(i) + "].";
        if (!e.is_object()) return Bad(ep.substr(0, ep.size() - 1), "expected an object");
        FindingEvidence ev;
        VIGIL_RETURN_IF_ERROR(Text(e, "what", ep, kMaxName, &ev.what));
        auto w = e.find("weight");
        if (w != e.end() && (!w->is_number() || !std::isfinite(w->get<double>()))) {
          return Bad(ep + "weight", "expected a finite number");
        }
        if (w != e.end()) ev.weight = w->get<double>();
        out.explanation.push_back(std::move(ev));
      }
    }
  } else {
    return Bad(path + "vigil", "neither a decision (\"rule\") nor a verdict (\"score\")");
  }
  out.raw = f.dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
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

core::Result<IngestMessage> ParseIngestRequest(std::string_view body) {
  core::Status error;
  const json j = ParseObject(body, &error);
  if (!error.ok()) return error;
  VIGIL_RETURN_IF_ERROR(SchemaVersion(j));
  IngestMessage m;
  VIGIL_RETURN_IF_ERROR(Id(j, "host", true, &m.host));
  VIGIL_RETURN_IF_ERROR(Id(j, "message_id", false, &m.message_id));
  auto f = j.find("findings");
  if (f == j.end() || !f->is_array()) return Bad("findings", "missing or not an array");
  if (f->size() > kMaxFindingsPerMessage) return Bad("findings", "more than 10000 in one message");
  m.findings.reserve(f->size());
  for (size_t i = 0; i < f->size(); ++i) {
    auto one = FindingFrom((*f)[i], "findings[" + std::to_string(i) + "].");
    if (!one.has_value()) return one.error();
    m.findings.push_back(std::move(one).value());
  }
  return m;
}

core::Result<Finding> ParseFindingJson(std::string_view line) {
  core::Status error;
  const json j = ParseObject(line, &error);
  if (!error.ok()) return error;
  return FindingFrom(j, "");
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
                                   "\": unknown key (rounds, max_depth, eta, seed, activate)");
    }
  }
  return r;
}

}  // namespace vigil::hub
