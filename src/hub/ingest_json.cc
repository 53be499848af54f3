// ParseIngestRequest and ParseFindingJson (hub/requests.h): the hub's hot path, every finding
// an agent sends over HTTP or NATS. They read the text once into a reused token tape
// (hub/internal/json_tape.h) instead of building an nlohmann tree, and give the same answers as
// the tree-based reading they replace: the same values, the same errors in the same order
// (tests/unit/hub/ingest_json_test.cc and the fuzz target ingest_json_fuzz compare them with
// that reading, kept in tests/unit/hub/ingest_reference.h). A finding's `raw` is its text as
// received (a span of the body) rather than a re-serialisation.

#include <cmath>
#include <string>

#include "hub/internal/json_tape.h"
#include "hub/requests.h"

namespace vigil::hub {
// Named, so that the hub_wire unity build does not join these names with requests.cc's.
namespace ingest_json {
namespace {

using internal::JsonKind;
using internal::JsonTape;
constexpr uint32_t kAbsent = JsonTape::kAbsent;
constexpr size_t kKeepTokens = size_t{1} << 16;  // a thread's tape keeps at most 2 MiB

// The members an object is read for, in a fixed order: at[k] is the value of names[k].
template <size_t N>
struct Fields {
  uint32_t at[N];
  Fields(const JsonTape& t, uint32_t obj, const std::string_view (&names)[N]) {
    t.Members(obj, names, at, N);
  }
  uint32_t operator[](size_t k) const { return at[k]; }
};

// Reads one finding; errors name the field under `prefix` ("findings[3]." or "").
class FindingReader {
 public:
  FindingReader(const JsonTape& t, int64_t index) : t_(t), index_(index) {}

  // Fills *out (a default Finding); on an error *out is left part-filled.
  core::Status Read(uint32_t f, Finding* out) const;

 private:
  std::string Path(std::string_view field) const {
    std::string p = index_ < 0 ? "" : "findings[" + std::to_string(index_) + "]";
    if (!field.empty()) {
      if (!p.empty()) p += '.';
      p += field;
    }
    return p;
  }
  core::Status Bad(std::string_view field, std::string_view why) const {
    return core::InvalidArgument(Path(field) + ": " + std::string(why));
  }
  bool Is(uint32_t v, JsonKind k) const { return v != kAbsent && t_[v].kind == k; }
  bool Null(uint32_t v) const { return v == kAbsent || t_[v].kind == JsonKind::kNull; }
  bool Number(uint32_t v) const {
    return v != kAbsent && (t_[v].kind == JsonKind::kUnsigned || t_[v].kind == JsonKind::kInteger ||
                            t_[v].kind == JsonKind::kFloat);
  }
  double Double(uint32_t v) const {
    const auto& n = t_[v];
    return n.kind == JsonKind::kFloat      ? n.num.d
           : n.kind == JsonKind::kUnsigned ? static_cast<double>(n.num.u)
                                           : static_cast<double>(n.num.i);
  }

  // An optional string of at most `max` bytes (null: absent).
  core::Status Text(uint32_t v, std::string_view field, size_t max, std::string* out) const {
    if (Null(v)) return {};
    if (t_[v].kind != JsonKind::kString) return Bad(field, "expected a string");
    std::string s = t_[v].escaped ? t_.String(v) : std::string();
    const size_t size = t_[v].escaped ? s.size() : t_[v].end - t_[v].begin;
    if (size > max) return Bad(field, "longer than " + std::to_string(max) + " bytes");
    if (t_[v].escaped) {
      *out = std::move(s);
    } else {
      out->assign(t_.text().data() + t_[v].begin, size);
    }
    return {};
  }

  core::Status Integer(uint32_t v, std::string_view field, int64_t lo, int64_t hi, bool required,
                       int64_t* out) const {
    if (Null(v)) return required ? Bad(field, "missing") : core::Status();
    const auto& n = t_[v];
    if (n.kind != JsonKind::kUnsigned && n.kind != JsonKind::kInteger) {
      return Bad(field, "expected an integer");
    }
    const bool is_unsigned = n.kind == JsonKind::kUnsigned;
    const bool in_range = is_unsigned ? n.num.u <= static_cast<uint64_t>(hi) &&
                                            (lo <= 0 || n.num.u >= static_cast<uint64_t>(lo))
                                      : n.num.i >= lo && n.num.i <= hi;
    if (!in_range) {
      return Bad(field, "out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    *out = is_unsigned ? static_cast<int64_t>(n.num.u) : n.num.i;
    return {};
  }

  core::Status Score(uint32_t v, std::string_view field, std::optional<double>* out) const {
    if (Null(v)) return {};
    if (!Number(v) || !std::isfinite(Double(v)) || Double(v) < 0 || Double(v) > 1) {
      return Bad(field, "expected a number in [0, 1]");
    }
    *out = Double(v);
    return {};
  }

  core::Status Explanation(uint32_t ex, Finding* out) const;

  const JsonTape& t_;
  const int64_t index_;
};

constexpr std::string_view kFindingFields[] = {"class_uid",    "time",    "severity_id",  "message",
                                               "finding_info", "process", "dst_endpoint", "vigil"};
constexpr std::string_view kInfoFields[] = {"uid", "title", "analytic"};
constexpr std::string_view kAnalyticFields[] = {"name", "version"};
constexpr std::string_view kProcessFields[] = {"pid", "name"};
constexpr std::string_view kEndpointFields[] = {"ip"};
constexpr std::string_view kVigilFields[] = {"rule",   "action", "ml",
                                             "reason", "score",  "explanation"};
constexpr std::string_view kMlFields[] = {"score", "model"};
constexpr std::string_view kEvidenceFields[] = {"what", "weight"};

core::Status FindingReader::Read(uint32_t f, Finding* finding) const {
  if (t_[f].kind != JsonKind::kObject) {
    return core::InvalidArgument(Path("") + ": not a JSON object");
  }
  Finding& out = *finding;
  const Fields m(t_, f, kFindingFields);
  int64_t class_uid = 0;
  VIGIL_RETURN_IF_ERROR(Integer(m[0], "class_uid", 0, 1'000'000, true, &class_uid));
  if (class_uid != 2004) return Bad("class_uid", "expected 2004 (Detection Finding)");
  VIGIL_RETURN_IF_ERROR(Integer(m[1], "time", 0, int64_t{1} << 50, true, &out.time_ms));
  int64_t severity = 0;
  VIGIL_RETURN_IF_ERROR(Integer(m[2], "severity_id", 0, 99, false, &severity));
  out.severity_id = static_cast<int>(severity);
  VIGIL_RETURN_IF_ERROR(Text(m[3], "message", kMaxTextField, &out.message));
  const uint32_t info = m[4];
  if (info != kAbsent) {
    if (!Is(info, JsonKind::kObject)) return Bad("finding_info", "expected an object");
    const Fields i(t_, info, kInfoFields);
    VIGIL_RETURN_IF_ERROR(Text(i[0], "finding_info.uid", kMaxNameField, &out.uid));
    VIGIL_RETURN_IF_ERROR(Text(i[1], "finding_info.title", kMaxNameField, &out.title));
  }
  if (m[5] != kAbsent) {
    if (!Is(m[5], JsonKind::kObject)) return Bad("process", "expected an object");
    const Fields p(t_, m[5], kProcessFields);
    VIGIL_RETURN_IF_ERROR(Integer(p[0], "process.pid", 0, int64_t{1} << 32, false, &out.pid));
    VIGIL_RETURN_IF_ERROR(Text(p[1], "process.name", kMaxNameField, &out.process));
  }
  if (!Null(m[6])) {
    if (!Is(m[6], JsonKind::kObject)) return Bad("dst_endpoint", "expected an object");
    const Fields d(t_, m[6], kEndpointFields);
    VIGIL_RETURN_IF_ERROR(Text(d[0], "dst_endpoint.ip", 64, &out.dst_ip));
    if (!out.dst_ip.empty() && !ValidIpAddress(out.dst_ip)) {
      return Bad("dst_endpoint.ip", "expected an IPv4 or IPv6 address");
    }
  }
  if (!Is(m[7], JsonKind::kObject)) return Bad("vigil", "missing or not an object");
  const Fields v(t_, m[7], kVigilFields);
  if (v[0] != kAbsent) {
    out.kind = FindingKind::kDecision;
    VIGIL_RETURN_IF_ERROR(Text(v[0], "vigil.rule", kMaxNameField, &out.rule));
    VIGIL_RETURN_IF_ERROR(Text(v[1], "vigil.action", kMaxNameField, &out.action));
    if (!Null(v[2])) {
      if (!Is(v[2], JsonKind::kObject)) return Bad("vigil.ml", "expected an object");
      const Fields ml(t_, v[2], kMlFields);
      VIGIL_RETURN_IF_ERROR(Score(ml[0], "vigil.ml.score", &out.score));
      VIGIL_RETURN_IF_ERROR(Text(ml[1], "vigil.ml.model", kMaxNameField, &out.model));
    }
    if (out.message.empty()) {
      VIGIL_RETURN_IF_ERROR(Text(v[3], "vigil.reason", kMaxTextField, &out.message));
    }
  } else if (v[4] != kAbsent) {
    out.kind = FindingKind::kVerdict;
    VIGIL_RETURN_IF_ERROR(Score(v[4], "vigil.score", &out.score));
    if (info != kAbsent) {
      const Fields i(t_, info, kInfoFields);
      if (i[2] != kAbsent) {
        if (!Is(i[2], JsonKind::kObject)) {
          return Bad("finding_info.analytic", "expected an object");
        }
        const Fields an(t_, i[2], kAnalyticFields);
        VIGIL_RETURN_IF_ERROR(Text(an[0], "finding_info.analytic.name", kMaxNameField, &out.model));
        VIGIL_RETURN_IF_ERROR(
            Text(an[1], "finding_info.analytic.version", kMaxNameField, &out.model_version));
      }
    }
    if (!Null(v[5])) VIGIL_RETURN_IF_ERROR(Explanation(v[5], &out));
  } else {
    return Bad("vigil", "neither a decision (\"rule\") nor a verdict (\"score\")");
  }
  out.raw.assign(t_.text().data() + t_[f].begin, t_[f].end - t_[f].begin);
  return {};
}

core::Status FindingReader::Explanation(uint32_t ex, Finding* out) const {
  if (!Is(ex, JsonKind::kArray)) return Bad("vigil.explanation", "expected an array");
  const size_t n = std::min<size_t>(t_[ex].count, kMaxExplanation);
  out->explanation.reserve(n);
  uint32_t e = ex + 1;
  for (size_t i = 0; i < n; ++i, e = t_[e].next) {
    // The item's name is built for an error only (this loop runs for every finding).
    auto item = [i](std::string_view member) {
      return "vigil.explanation[" + std::to_string(i) + "]" + std::string(member);
    };
    if (!Is(e, JsonKind::kObject)) return Bad(item(""), "expected an object");
    const Fields m(t_, e, kEvidenceFields);
    FindingEvidence ev;
    if (!Text(m[0], {}, kMaxNameField, &ev.what).ok()) {
      return Text(m[0], item(".what"), kMaxNameField, &ev.what);
    }
    if (m[1] != kAbsent) {
      if (!Number(m[1]) || !std::isfinite(Double(m[1]))) {
        return Bad(item(".weight"), "expected a finite number");
      }
      ev.weight = Double(m[1]);
    }
    out->explanation.push_back(std::move(ev));
  }
  return {};
}

// The thread's tape, holding `body` (checked as JSON and as an object), or the error.
core::Result<const JsonTape*> ParseObject(std::string_view body) {
  if (body.size() > kMaxRequestBytes) return core::InvalidArgument("request: body over 8 MiB");
  thread_local JsonTape tape;
  tape.Trim(kKeepTokens);
  if (!tape.Parse(body)) return core::InvalidArgument("request: not valid JSON");
  if (tape[0].kind != JsonKind::kObject) return core::InvalidArgument("request: not a JSON object");
  return &tape;
}

constexpr std::string_view kMessageFields[] = {"schema_version", "host", "message_id", "findings"};

}  // namespace
}  // namespace ingest_json

core::Result<IngestMessage> ParseIngestRequest(std::string_view body) {
  using namespace ingest_json;
  auto parsed = ParseObject(body);
  if (!parsed.has_value()) return parsed.error();
  const JsonTape& t = **parsed;
  const Fields m(t, 0, kMessageFields);
  if (m[0] != kAbsent &&
      !(t[m[0]].kind == JsonKind::kString && t.StringIs(m[0], kHubSchemaVersion))) {
    return core::InvalidArgument("schema_version: expected \"vigil.hub/v1\"");
  }
  IngestMessage out;
  if (m[1] == kAbsent) return core::InvalidArgument("host: missing");
  if (t[m[1]].kind != JsonKind::kString || !ValidHostId(out.host = t.String(m[1]))) {
    return core::InvalidArgument("host: expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (m[2] == kAbsent) return core::InvalidArgument("message_id: missing");
  if (t[m[2]].kind != JsonKind::kString || !ValidMessageId(out.message_id = t.String(m[2]))) {
    return core::InvalidArgument(
        "message_id: expected 1..128 printable ASCII bytes without spaces");
  }
  if (m[3] == kAbsent || t[m[3]].kind != JsonKind::kArray) {
    return core::InvalidArgument("findings: missing or not an array");
  }
  const size_t n = t[m[3]].count;
  if (n > kMaxFindingsPerMessage) {
    return core::InvalidArgument("findings: more than 10000 in one message");
  }
  out.findings.resize(n);  // read in place
  uint32_t f = m[3] + 1;
  for (size_t i = 0; i < n; ++i, f = t[f].next) {
    VIGIL_RETURN_IF_ERROR(FindingReader(t, static_cast<int64_t>(i)).Read(f, &out.findings[i]));
  }
  return out;
}

core::Result<Finding> ParseFindingJson(std::string_view line) {
  using namespace ingest_json;
  auto parsed = ParseObject(line);
  if (!parsed.has_value()) return parsed.error();
  Finding out;
  VIGIL_RETURN_IF_ERROR(FindingReader(**parsed, -1).Read(0, &out));
  return out;
}

}  // namespace vigil::hub
