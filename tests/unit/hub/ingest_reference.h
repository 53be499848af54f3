#pragma once

// The hub's reading of ingest bodies and findings as it was before hub/ingest_json.cc: an
// nlohmann::json tree, then field checks in a fixed order. Kept here, for tests only, as the
// reference the fast parser must agree with (tests/unit/hub/ingest_json_test.cc and
// tests/fuzz/ingest_json_fuzz.cc), except for `raw`, which it re-serialises (sorted keys).

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/status.h"
#include "hub/internal/request_fields.h"
#include "hub/requests.h"

namespace vigil::hub::reference {
namespace detail {

using internal::json;

constexpr size_t kMaxText = kMaxTextField;
constexpr size_t kMaxName = kMaxNameField;

using internal::Bad;
using internal::Id;
using internal::Integer;
using internal::ParseObject;
using internal::SchemaVersion;
using internal::Text;

inline core::Status Score(const json& o, const char* key, const std::string& path,
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

inline core::Result<Finding> FindingFrom(const json& f, const std::string& path) {
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

}  // namespace detail

inline core::Result<IngestMessage> ParseIngestRequest(std::string_view body) {
  core::Status error;
  const detail::json j = detail::ParseObject(body, &error);
  if (!error.ok()) return error;
  VIGIL_RETURN_IF_ERROR(detail::SchemaVersion(j));
  IngestMessage m;
  VIGIL_RETURN_IF_ERROR(detail::Id(j, "host", true, &m.host));
  VIGIL_RETURN_IF_ERROR(detail::Id(j, "message_id", false, &m.message_id));
  auto f = j.find("findings");
  if (f == j.end() || !f->is_array()) return detail::Bad("findings", "missing or not an array");
  if (f->size() > kMaxFindingsPerMessage)
    return detail::Bad("findings", "more than 10000 in one message");
  m.findings.reserve(f->size());
  for (size_t i = 0; i < f->size(); ++i) {
    auto one = detail::FindingFrom((*f)[i], "findings[" + std::to_string(i) + "].");
    if (!one.has_value()) return one.error();
    m.findings.push_back(std::move(one).value());
  }
  return m;
}

inline core::Result<Finding> ParseFindingJson(std::string_view line) {
  core::Status error;
  const detail::json j = detail::ParseObject(line, &error);
  if (!error.ok()) return error;
  return detail::FindingFrom(j, "");
}

// Where two readings of the same input differ ("" when they agree): whether they accepted it,
// the error message, every field of every finding; raw texts must hold the same JSON value.
inline std::string Difference(const Finding& a, const Finding& b, const std::string& where) {
  auto same_raw = [](const std::string& x, const std::string& y) {
    const auto jx = detail::json::parse(x, nullptr, false);
    const auto jy = detail::json::parse(y, nullptr, false);
    return !jx.is_discarded() && !jy.is_discarded() && jx == jy;
  };
  if (a.kind != b.kind) return where + "kind";
  if (a.time_ms != b.time_ms) return where + "time_ms";
  if (a.severity_id != b.severity_id) return where + "severity_id";
  if (a.uid != b.uid) return where + "uid";
  if (a.title != b.title) return where + "title";
  if (a.message != b.message) return where + "message";
  if (a.pid != b.pid) return where + "pid";
  if (a.process != b.process) return where + "process";
  if (a.rule != b.rule) return where + "rule";
  if (a.action != b.action) return where + "action";
  if (a.model != b.model) return where + "model";
  if (a.model_version != b.model_version) return where + "model_version";
  if (a.score.has_value() != b.score.has_value() || (a.score && *a.score != *b.score)) {
    return where + "score";
  }
  if (a.explanation.size() != b.explanation.size()) return where + "explanation size";
  for (size_t i = 0; i < a.explanation.size(); ++i) {
    if (a.explanation[i].what != b.explanation[i].what ||
        a.explanation[i].weight != b.explanation[i].weight) {
      return where + "explanation[" + std::to_string(i) + "]";
    }
  }
  if (a.dst_ip != b.dst_ip) return where + "dst_ip";
  if (!same_raw(a.raw, b.raw)) return where + "raw: " + a.raw + " vs " + b.raw;
  return "";
}

template <typename T>
std::string Difference(const core::Result<T>& fast, const core::Result<T>& ref) {
  if (fast.has_value() != ref.has_value()) {
    return std::string("accepted by ") + (fast.has_value() ? "the fast parser" : "the reference") +
           " only: " + (fast.has_value() ? ref.error().message() : fast.error().message());
  }
  if (!fast.has_value()) {
    return fast.error().message() == ref.error().message()
               ? ""
               : "errors differ: " + fast.error().message() + " vs " + ref.error().message();
  }
  if constexpr (std::is_same_v<T, Finding>) {
    return Difference(*fast, *ref, "");
  } else {
    if (fast->host != ref->host || fast->message_id != ref->message_id) return "host or id";
    if (fast->findings.size() != ref->findings.size()) return "findings size";
    for (size_t i = 0; i < fast->findings.size(); ++i) {
      std::string d =
          Difference(fast->findings[i], ref->findings[i], "findings[" + std::to_string(i) + "].");
      if (!d.empty()) return d;
    }
    return "";
  }
}

}  // namespace vigil::hub::reference
