#include "hub/fleet.h"

#include <httplib.h>
#include <sodium.h>

#include <charconv>
#include <map>

#include "govern/trust.h"
#include "hub/fleet_requests.h"
#include "hub/internal/http_reply.h"

namespace vigil::hub {
namespace {

using internal::Reply;
using internal::ReplyError;
using internal::ReplyStatus;
using nlohmann::json;

json AppliedJson(const AppliedArtifact& a) {
  return {{"version", a.version}, {"digest", a.digest}};
}

// What the store keeps of a report (AgentStatusRow::status_json).
std::string StatusJson(const AgentReport& r, bool heartbeat) {
  json j = {{"policy", AppliedJson(r.policy)}, {"model", AppliedJson(r.model)}};
  j["health"] = heartbeat ? json{{"events_per_s", r.events_per_s},
                                 {"drops", r.drops},
                                 {"alerts", r.alerts}}
                          : json();
  j["refusal"] = r.refusal ? json{{"kind", r.refusal->kind},
                                  {"digest", r.refusal->digest},
                                  {"reason", r.refusal->reason},
                                  {"time_ms", r.refusal->time_ms}}
                           : json();
  return internal::Dump(j);
}

bool OwnsHost(const Caller& c, const std::string& host, httplib::Response& r) {
  if (c.subject == host) return true;
  ReplyError(r, 403, "PERMISSION_DENIED",
             "agent \"" + c.subject + "\" may not act for host \"" + host + "\"");
  return false;
}

// The digest captured by a route's ([0-9a-f]{64}).
std::string PathDigest(const httplib::Request& q) { return q.matches[1].str(); }

int64_t RouteId(const httplib::Request& q) {
  const std::string& text = q.matches[1].str();
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : 0;
}

}  // namespace

const RolloutRow* RolloutFor(const std::vector<RolloutRow>& rollouts, const std::string& kind,
                             const std::string& group) {
  const RolloutRow* best = nullptr;
  for (const RolloutRow& r : rollouts) {
    if (r.kind != kind || (r.state != "promoted" && r.group != group)) continue;
    if (best == nullptr || r.id > best->id) best = &r;
  }
  return best;
}

json Fleet::RolloutJson(const RolloutRow& r) {
  return {{"id", r.id},
          {"digest", r.digest},
          {"kind", r.kind},
          {"group", r.group},
          {"state", r.state},
          {"created_by", r.created_by},
          {"created_ms", r.created_ms},
          {"promoted_by", r.promoted_by},
          {"promoted_ms", r.promoted_ms}};
}

json Fleet::ArtifactJson(const ArtifactRow& a) {
  return {{"digest", a.digest},     {"kind", a.kind},
          {"name", a.name},         {"size", a.size},
          {"key_id", a.key_id},     {"uploaded_by", a.uploaded_by},
          {"uploaded_ms", a.uploaded_ms}};
}

std::string Fleet::IssueNonce(const std::string& host) {
  std::string bytes(32, '\0');
  randombytes_buf(bytes.data(), bytes.size());
  const int64_t now = NowMs();
  std::lock_guard lock(nonce_mu_);
  for (auto it = nonces_.begin(); it != nonces_.end();) {
    it = it->second.second <= now ? nonces_.erase(it) : std::next(it);
  }
  if (nonces_.size() >= 100'000) nonces_.clear();  // bounded: a flood only costs retries
  nonces_[host] = {bytes, now + 300'000};
  return govern::HexOf(bytes);
}

void Fleet::CheckQuote(const std::string& quote, AgentStatusRow* row) {
  row->attestation = "absent";
  row->attestation_reason.clear();
  if (quote.empty()) return;
  row->attestation = "failed";
  std::string nonce;
  {
    std::lock_guard lock(nonce_mu_);
    auto it = nonces_.find(row->host);
    if (it != nonces_.end() && it->second.second > NowMs()) nonce = it->second.first;
    if (it != nonces_.end()) nonces_.erase(it);  // once
  }
  if (nonce.empty()) {
    row->attestation_reason = "no nonce issued to this host or it expired (GET /v1/agents/nonce)";
    return;
  }
  auto doc = govern::ParseQuoteDocument(quote, "attestation");
  if (!doc.has_value()) {
    row->attestation_reason = doc.error().message();
    return;
  }
  govern::QuoteCheckOptions o;
  o.nonce = nonce;
  o.allowed = options_.allowlist;
  auto check = govern::VerifyQuote(*doc, o);
  if (!check.has_value()) {
    row->attestation_reason = check.error().message();
  } else if (!check->ok()) {
    row->attestation_reason =
        std::string(govern::QuoteFailureName(check->failure)) + ": " + check->detail;
  } else {
    row->attestation = "verified";
  }
}

core::Status Fleet::Audit(audit::RecordType type, json payload) {
  core::Status s = audit_.Append(type, std::move(payload));
  if (!s.ok()) return core::Unavailable("audit log: " + s.message());
  return {};
}

core::Result<FleetAnswer> Fleet::Answer(const AgentStatusRow& row, const AgentReport& report) {
  VIGIL_ASSIGN_OR_RETURN(const std::vector<RolloutRow> rollouts, store_.Rollouts());
  FleetAnswer a;
  a.host = report.host;
  a.group = row.group;
  a.attestation = row.attestation;
  a.attestation_reason = row.attestation_reason;
  for (const auto& [kind, running] :
       {std::pair{"policy", &report.policy}, std::pair{"model", &report.model}}) {
    const RolloutRow* target = RolloutFor(rollouts, kind, row.group);
    if (target == nullptr || target->digest == running->digest) continue;
    a.updates.push_back({kind, target->digest, target->id});
  }
  a.enforce_reason = "the hub does not require attestation";
  if (options_.require_attestation) {
    a.enforce_allowed = row.attestation == "verified";
    a.enforce_reason = a.enforce_allowed ? "attestation verified"
                       : row.attestation == "failed"
                           ? "attestation failed: " + row.attestation_reason
                           : std::string("the hub requires attestation and this agent "
                                         "registered without a quote");
  }
  return a;
}

core::Result<FleetAnswer> Fleet::Register(const AgentReport& report) {
  AgentStatusRow row;
  row.host = report.host;
  row.group = report.group;
  row.mode = report.mode;
  row.vigil_version = report.vigil_version;
  row.status_json = StatusJson(report, false);
  CheckQuote(report.quote, &row);
  VIGIL_RETURN_IF_ERROR(store_.RegisterAgent(row, NowMs()));
  return Answer(row, report);
}

core::Result<FleetAnswer> Fleet::Heartbeat(const AgentReport& report) {
  VIGIL_ASSIGN_OR_RETURN(
      const AgentStatusRow row,
      store_.Heartbeat(report.host, report.mode, StatusJson(report, true), NowMs()));
  return Answer(row, report);
}

void Fleet::Routes(httplib::Server& s, const Authorizer& authorize) {
  auto reply = [](const core::Result<FleetAnswer>& a, httplib::Response& r) {
    if (!a.has_value()) return ReplyStatus(r, a.error());
    json updates = json::array();
    for (const FleetAnswer::Update& u : a->updates) {
      updates.push_back({{"kind", u.kind},
                         {"digest", u.digest},
                         {"rollout", u.rollout},
                         {"artifact", "/v1/artifacts/" + u.digest},
                         {"signature", "/v1/artifacts/" + u.digest + "/signature"}});
    }
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"host", a->host},
           {"group", a->group},
           {"attestation", {{"state", a->attestation}, {"reason", a->attestation_reason}}},
           {"enforce", {{"allowed", a->enforce_allowed}, {"reason", a->enforce_reason}}},
           {"updates", std::move(updates)}});
  };

  s.Post("/v1/agents/register", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto report = ParseRegisterRequest(q.body);
    if (!report.has_value()) return ReplyStatus(r, report.error());
    if (!OwnsHost(c, report->host, r)) return;
    reply(Register(*report), r);
  });

  s.Get("/v1/agents/nonce", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"nonce", IssueNonce(c.subject)}});
  });

  s.Post("/v1/agents/heartbeat", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto report = ParseHeartbeatRequest(q.body);
    if (!report.has_value()) return ReplyStatus(r, report.error());
    if (!OwnsHost(c, report->host, r)) return;
    reply(Heartbeat(*report), r);
  });

  s.Get("/v1/agents", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    auto seen = store_.Agents();
    if (!seen.has_value()) return ReplyStatus(r, seen.error());
    auto registered = store_.AgentStatuses();
    if (!registered.has_value()) return ReplyStatus(r, registered.error());
    std::map<std::string, json> by_host;
    for (const AgentRow& a : *seen) {
      by_host[a.host] = {{"host", a.host},
                         {"first_seen_ms", a.first_seen_ms},
                         {"last_seen_ms", a.last_seen_ms},
                         {"messages", a.messages},
                         {"findings", a.findings},
                         {"registered", false}};
    }
    for (const AgentStatusRow& a : *registered) {
      json& j = by_host[a.host];
      if (j.is_null()) {
        j = {{"host", a.host}, {"first_seen_ms", 0}, {"last_seen_ms", 0}, {"messages", 0},
             {"findings", 0}};
      }
      json status = json::parse(a.status_json, nullptr, false);
      if (!status.is_object()) status = json::object();
      j["registered"] = true;
      j["group"] = a.group;
      j["mode"] = a.mode;
      j["vigil_version"] = a.vigil_version;
      j["registered_ms"] = a.registered_ms;
      j["last_heartbeat_ms"] = a.heartbeat_ms;
      j["attestation"] = {{"state", a.attestation}, {"reason", a.attestation_reason}};
      for (const char* key : {"policy", "model", "health", "refusal"}) {
        j[key] = status.contains(key) ? status[key] : json();
      }
    }
    json list = json::array();
    for (auto& [host, j] : by_host) list.push_back(std::move(j));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"agents", std::move(list)}});
  });

  s.Post("/v1/artifacts", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    if (!q.is_multipart_form_data() || !q.has_file("kind") || !q.has_file("file") ||
        !q.has_file("signature")) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "body: expected multipart/form-data with the parts kind, file and "
                        "signature");
    }
    const std::string kind = q.get_file_value("kind").content;
    if (!ValidArtifactKind(kind)) {
      return ReplyError(r, 400, "INVALID_ARGUMENT", "kind: expected \"policy\" or \"model\"");
    }
    const httplib::MultipartFormData file = q.get_file_value("file");
    std::string name = file.filename.empty() ? "artifact" : file.filename;
    if (name.size() > 255) name.resize(255);
    for (char& ch : name) {
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f || ch == '/') ch = '_';
    }
    if (file.content.empty()) return ReplyError(r, 400, "INVALID_ARGUMENT", "file: empty");
    auto sig = govern::ParseSignature(q.get_file_value("signature").content, "signature");
    if (!sig.has_value()) return ReplyStatus(r, sig.error());
    if (options_.trusted_keys.empty()) {
      return ReplyError(r, 412, "FAILED_PRECONDITION",
                        "the hub has no fleet.trusted_keys: it accepts no artifact");
    }
    const govern::TrustCheck t =
        govern::CheckSignedBytes(name, file.content, *sig, options_.trusted_keys);
    if (!t.trusted) {
      (void)Audit(kind == "policy" ? audit::RecordType::kPolicyChange
                                   : audit::RecordType::kModelChange,
                  {{"action", "upload-refused"},
                   {"sha256", t.sha256},
                   {"name", name},
                   {"reason", t.outcome + ": " + t.reason},
                   {"by", c.subject}});
      return ReplyError(r, 422, "UNTRUSTED", t.outcome + ": " + t.reason);
    }
    ArtifactRow a;
    a.digest = t.sha256;
    a.kind = kind;
    a.name = name;
    a.size = static_cast<int64_t>(file.content.size());
    a.content = file.content;
    a.signature = q.get_file_value("signature").content;
    a.key_id = t.key_id;
    a.uploaded_by = c.subject;
    a.uploaded_ms = NowMs();
    auto created = store_.PutArtifact(a);
    if (!created.has_value()) return ReplyStatus(r, created.error());
    if (*created) {
      core::Status st = Audit(kind == "policy" ? audit::RecordType::kPolicyChange
                                               : audit::RecordType::kModelChange,
                              {{"action", "uploaded"},
                               {"sha256", a.digest},
                               {"name", a.name},
                               {"key_id", a.key_id},
                               {"by", c.subject}});
      if (!st.ok()) return ReplyStatus(r, st);
    }
    json j = ArtifactJson(a);
    j["created"] = *created;
    Reply(r, *created ? 201 : 200, {{"schema_version", kHubSchemaVersion}, {"artifact", j}});
  });

  s.Get("/v1/artifacts", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    auto rows = store_.Artifacts();
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const ArtifactRow& a : *rows) list.push_back(ArtifactJson(a));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"artifacts", std::move(list)}});
  });

  s.Get(R"(/v1/artifacts/([0-9a-f]{64}))",
        [=, this](const httplib::Request& q, httplib::Response& r) {
          Caller c;
          if (!authorize(q, r, Role::kAgent, &c)) return;
          auto a = store_.Artifact(PathDigest(q), true);
          if (!a.has_value()) return ReplyStatus(r, a.error());
          r.set_content(a->content, "application/octet-stream");
        });

  s.Get(R"(/v1/artifacts/([0-9a-f]{64})/signature)",
        [=, this](const httplib::Request& q, httplib::Response& r) {
          Caller c;
          if (!authorize(q, r, Role::kAgent, &c)) return;
          auto a = store_.Artifact(PathDigest(q), false);
          if (!a.has_value()) return ReplyStatus(r, a.error());
          r.set_content(a->signature, "text/plain");
        });

  s.Post("/v1/rollouts", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    auto req = ParseRolloutRequest(q.body);
    if (!req.has_value()) return ReplyStatus(r, req.error());
    auto row = store_.StartRollout(req->digest, req->group, c.subject, NowMs());
    if (!row.has_value()) return ReplyStatus(r, row.error());
    core::Status st = Audit(row->kind == "policy" ? audit::RecordType::kPolicyChange
                                                  : audit::RecordType::kModelChange,
                            {{"action", "rollout-started"},
                             {"rollout", row->id},
                             {"sha256", row->digest},
                             {"group", row->group},
                             {"by", c.subject}});
    if (!st.ok()) return ReplyStatus(r, st);
    Reply(r, 201, {{"schema_version", kHubSchemaVersion}, {"rollout", RolloutJson(*row)}});
  });

  s.Post(R"(/v1/rollouts/(\d+)/promote)",
         [=, this](const httplib::Request& q, httplib::Response& r) {
           Caller c;
           if (!authorize(q, r, Role::kAdmin, &c)) return;
           auto row = store_.PromoteRollout(RouteId(q), c.subject, NowMs());
           if (!row.has_value()) return ReplyStatus(r, row.error());
           core::Status st = Audit(row->kind == "policy" ? audit::RecordType::kPolicyChange
                                                         : audit::RecordType::kModelChange,
                                   {{"action", "rollout-promoted"},
                                    {"rollout", row->id},
                                    {"sha256", row->digest},
                                    {"group", row->group},
                                    {"by", c.subject}});
           if (!st.ok()) return ReplyStatus(r, st);
           Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"rollout", RolloutJson(*row)}});
         });

  s.Get("/v1/rollouts", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    auto rows = store_.Rollouts();
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json list = json::array();
    for (const RolloutRow& row : *rows) list.push_back(RolloutJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"rollouts", std::move(list)}});
  });
}

}  // namespace vigil::hub
