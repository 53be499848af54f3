#include "hub/fleet.h"

#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "govern/credential.h"
#include "govern/trust.h"
#include "hub/checkpoints.h"
#include "hub/fleet_attest.h"
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

// What the store keeps of a report (AgentStatusRow::status_json). "addresses": the ones the agent
// gave and the one its request came from (the correlator's, hub/correlate.h).
std::string StatusJson(const AgentReport& r, bool heartbeat, const std::string& remote_addr) {
  json j = {{"policy", AppliedJson(r.policy)}, {"model", AppliedJson(r.model)}};
  std::vector<std::string> addresses = r.addresses;
  if (ValidIpAddress(remote_addr) &&
      std::find(addresses.begin(), addresses.end(), remote_addr) == addresses.end()) {
    addresses.push_back(remote_addr);
  }
  j["addresses"] = addresses;
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

Fleet::Fleet(FleetOptions options, Store& store, audit::AuditLog& audit, const core::Clock& clock)
    : options_(std::move(options)), store_(store), audit_(audit), clock_(clock),
      key_(options_.attestation_key) {
  if (key_.empty()) {
    key_.resize(32);
    randombytes_buf(key_.data(), key_.size());
  }
}

std::string Fleet::IssueNonce(const std::string& host) {
  return govern::HexOf(MintAttestNonce(key_, host, NowMs() + options_.nonce_ttl_ms));
}

std::optional<govern::QuoteDocument> Fleet::CheckQuote(const std::string& quote,
                                                       const std::string& expected_ak_pem,
                                                       AgentStatusRow* row) {
  row->attestation = "absent";
  row->attestation_reason.clear();
  if (quote.empty()) return std::nullopt;
  row->attestation = "failed";
  auto doc = govern::ParseQuoteDocument(quote, "attestation");
  if (!doc.has_value()) {
    row->attestation_reason = doc.error().message();
    return std::nullopt;
  }
  // The nonce: minted by a hub instance with our key for this host, not expired, not used yet.
  const int64_t now = NowMs();
  auto expires = CheckAttestNonce(key_, row->host, doc->nonce, now);
  if (!expires.has_value()) {
    row->attestation_reason = expires.error().message();
    return std::nullopt;
  }
  auto fresh = store_.UseNonce(govern::HexOf(doc->nonce), *expires, now);
  if (!fresh.has_value() || !*fresh) {
    row->attestation_reason = fresh.has_value()
                                  ? "the quote's nonce was already used (a replayed quote)"
                                  : fresh.error().message();
    return std::nullopt;
  }
  govern::QuoteCheckOptions o;
  o.nonce = doc->nonce;
  o.allowed = options_.allowlist;
  o.expected_ak_pem = expected_ak_pem;
  auto check = govern::VerifyQuote(*doc, o);
  if (!check.has_value()) {
    row->attestation_reason = check.error().message();
  } else if (!check->ok()) {
    row->attestation_reason =
        std::string(govern::QuoteFailureName(check->failure)) + ": " + check->detail;
  } else {
    row->attestation = "verified";
    return std::move(doc).value();
  }
  return std::nullopt;
}

json Fleet::Challenge(const govern::QuoteDocument& q, int64_t now, AgentStatusRow* row) {
  if (options_.ek_ca_bundle.empty()) {
    AttestedKeyRow k{row->host, "", q.ak_public_pem, "", now, now};
    if (core::Status st = store_.PutAttestedKey(k); !st.ok()) {
      row->attestation = "failed";
      row->attestation_reason = st.message();
    }
    return nullptr;
  }
  row->attestation = "failed";
  auto b = govern::CheckEkBinding(q, options_.ek_ca_bundle, options_.ek_ca_source,
                                  options_.ek_crls, options_.ek_crl_source);
  if (!b.has_value()) {
    row->attestation_reason = b.error().message();
    return nullptr;
  }
  if (!b->ok()) {
    row->attestation_reason =
        std::string(govern::QuoteFailureName(b->failure)) + ": " + b->detail;
    return nullptr;
  }
  std::string secret(govern::kCredentialSecretBytes, '\0');
  randombytes_buf(secret.data(), secret.size());
  auto c = govern::MakeCredential(b->ek, b->ak.name, secret);
  const std::string secret_sha256 = govern::HexOf(govern::Sha256Of(secret));
  sodium_memzero(secret.data(), secret.size());
  if (!c.has_value()) {
    row->attestation_reason = c.error().message();
    return nullptr;
  }
  ChallengeClaims claims;
  claims.host = row->host;
  claims.ak_name = govern::HexOf(b->ak.name);
  claims.ak_public = b->ak.pem;
  claims.ek_sha256 = b->ek.sha256;
  claims.expires_ms = now + options_.nonce_ttl_ms;
  claims.secret_sha256 = secret_sha256;
  row->attestation = "challenged";
  row->attestation_reason = "quote verified; the hub waits for the agent to activate the "
                            "credential made for its EK (" + b->ek.subject + ")";
  return {{"credential_blob", govern::HexOf(c->id_object)},
          {"encrypted_secret", govern::HexOf(c->encrypted_secret)},
          {"token", MintChallengeToken(key_, claims)}};
}

std::string Fleet::Requote(const AgentReport& report, AgentStatusRow* row) {
  if (options_.requote_ms <= 0) return "";
  auto key = store_.AttestedKey(row->host);
  // Never attested (or unreadable), or attested before its latest registration, which did not
  // attest again: nothing to renew (a new registration must attest).
  if (!key.has_value() || key->trusted_ms < row->registered_ms) return "";
  const int64_t now = NowMs();
  const std::string before = row->attestation;
  if (!report.quote.empty()) {
    if (CheckQuote(report.quote, key->ak_public, row)) {
      key->quoted_ms = now;
      if (core::Status st = store_.PutAttestedKey(*key); !st.ok()) {
        row->attestation = "failed";
        row->attestation_reason = st.message();
      }
    }
  } else if (row->attestation == "verified" &&
             now - key->quoted_ms > options_.requote_ms + options_.nonce_ttl_ms) {
    row->attestation = "failed";
    row->attestation_reason = "no fresh quote for " +
                              std::to_string((now - key->quoted_ms) / 1000) +
                              " s (fleet.requote asks for one every " +
                              std::to_string(options_.requote_ms / 1000) + " s)";
  }
  if (!report.quote.empty() || row->attestation != before) {
    if (core::Status st = store_.SetAttestation(row->host, row->attestation,
                                                row->attestation_reason);
        !st.ok()) {
      row->attestation = "failed";
      row->attestation_reason = st.message();
    }
  }
  return now - key->quoted_ms >= options_.requote_ms ? IssueNonce(row->host) : "";
}

json Fleet::EnforceJson(const AgentStatusRow& row) const {
  if (!options_.require_attestation) {
    return {{"allowed", true}, {"reason", "the hub does not require attestation"}};
  }
  const bool verified = row.attestation == "verified";
  std::string reason =
      verified ? (options_.ek_ca_bundle.empty()
                      ? "attestation verified"
                      : "attestation verified; the attestation key is tied to a trusted EK")
      : row.attestation == "failed"     ? "attestation failed: " + row.attestation_reason
      : row.attestation == "challenged" ? "attestation pending: " + row.attestation_reason
                                        : std::string("the hub requires attestation and this "
                                                      "agent registered without a quote");
  return {{"allowed", verified}, {"reason", std::move(reason)}};
}

core::Status Fleet::Audit(audit::RecordType type, json payload) {
  core::Status s = audit_.Append(type, std::move(payload));
  if (!s.ok()) return core::Unavailable("audit log: " + s.message());
  return {};
}

core::Result<FleetAnswer> Fleet::Answer(const AgentStatusRow& row, const AgentReport& report,
                                        json attestation_extra) {
  VIGIL_ASSIGN_OR_RETURN(const std::vector<RolloutRow> rollouts, store_.Rollouts());
  FleetAnswer a;
  a.host = report.host;
  a.group = row.group;
  a.attestation = row.attestation;
  a.attestation_reason = row.attestation_reason;
  a.attestation_extra = std::move(attestation_extra);
  for (const auto& [kind, running] :
       {std::pair{"policy", &report.policy}, std::pair{"model", &report.model}}) {
    const RolloutRow* target = RolloutFor(rollouts, kind, row.group);
    if (target == nullptr || target->digest == running->digest) continue;
    a.updates.push_back({kind, target->digest, target->id});
  }
  const json enforce = EnforceJson(row);
  a.enforce_allowed = enforce["allowed"].get<bool>();
  a.enforce_reason = enforce["reason"].get<std::string>();
  return a;
}

core::Result<FleetAnswer> Fleet::Register(const AgentReport& report,
                                          const std::string& remote_addr) {
  AgentStatusRow row;
  row.host = report.host;
  row.group = report.group;
  row.mode = report.mode;
  row.vigil_version = report.vigil_version;
  row.status_json = StatusJson(report, false, remote_addr);
  json attestation = json::object();
  const int64_t now = NowMs();
  if (auto doc = CheckQuote(report.quote, "", &row)) {
    if (json ch = Challenge(*doc, now, &row); !ch.is_null()) {
      attestation["challenge"] = std::move(ch);
    }
  }
  VIGIL_RETURN_IF_ERROR(store_.RegisterAgent(row, now));
  if (report.audit_key.has_value()) VIGIL_RETURN_IF_ERROR(RegisterAuditKey(report, now));
  return Answer(row, report, std::move(attestation));
}

core::Status Fleet::RegisterAuditKey(const AgentReport& report, int64_t now) {
  auto change = hub::RegisterAuditKey(store_, audit_, report.host, *report.audit_key, now);
  // A key refused by an admin's pin was alarmed and recorded there; the host still registers
  // (its checkpoints will not verify), so that its mode and updates stay visible.
  if (!change.has_value() && change.error().code() == core::StatusCode::kPermissionDenied) {
    return {};
  }
  return change.has_value() ? core::Status() : change.error();
}

core::Result<FleetAnswer> Fleet::Heartbeat(const AgentReport& report,
                                           const std::string& remote_addr) {
  VIGIL_ASSIGN_OR_RETURN(
      AgentStatusRow row,
      store_.Heartbeat(report.host, report.mode, StatusJson(report, true, remote_addr), NowMs()));
  json attestation = json::object();
  if (std::string nonce = Requote(report, &row); !nonce.empty()) {
    attestation["quote_nonce"] = std::move(nonce);
  }
  return Answer(row, report, std::move(attestation));
}

core::Result<ActivateAnswer> Fleet::Activate(const ActivateRequest& req) {
  const int64_t now = NowMs();
  AgentStatusRow row;
  row.host = req.host;
  row.attestation = "failed";
  // A token that is not ours, expired, for another host or used already changes nothing; a
  // wrong secret fails the host's attestation.
  bool judged = false;
  auto claims = CheckChallengeToken(key_, req.token, now);
  if (!claims.has_value()) {
    row.attestation_reason = claims.error().message();
  } else if (claims->host != req.host) {
    row.attestation_reason = "challenge token: issued to another host";
  } else {
    VIGIL_ASSIGN_OR_RETURN(
        const bool fresh, store_.UseNonce("challenge:" + govern::HexOf(govern::Sha256Of(req.token)),
                                          claims->expires_ms, now));
    judged = fresh;
    if (!fresh) {
      row.attestation_reason = "challenge token: already used (a replayed activation)";
    } else if (govern::HexOf(govern::Sha256Of(req.secret)) != claims->secret_sha256) {
      row.attestation_reason =
          "activation-failed: the secret is not the credential's: the attestation key is not "
          "in the TPM of the EK certificate";
    } else {
      AttestedKeyRow k{req.host, claims->ak_name, claims->ak_public, claims->ek_sha256, now, now};
      VIGIL_RETURN_IF_ERROR(store_.PutAttestedKey(k));
      row.attestation = "verified";
      row.attestation_reason = "attestation key " + claims->ak_name +
                               " is tied to the EK certificate sha256:" + claims->ek_sha256;
    }
    if (judged) {
      VIGIL_RETURN_IF_ERROR(
          Audit(audit::RecordType::kAccessGrant,
                {{"action", row.attestation == "verified" ? "attestation-key-trusted"
                                                          : "attestation-key-refused"},
                 {"host", row.host},
                 {"ak_name", claims->ak_name},
                 {"ek_sha256", claims->ek_sha256},
                 {"reason", row.attestation_reason}}));
    }
  }
  if (judged) {
    VIGIL_RETURN_IF_ERROR(store_.SetAttestation(row.host, row.attestation, row.attestation_reason));
  }
  const json enforce = EnforceJson(row);
  ActivateAnswer a;
  a.host = row.host;
  a.attestation = row.attestation;
  a.attestation_reason = row.attestation_reason;
  a.enforce_allowed = enforce["allowed"].get<bool>();
  a.enforce_reason = enforce["reason"].get<std::string>();
  return a;
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
    json attestation = a->attestation_extra;
    attestation["state"] = a->attestation;
    attestation["reason"] = a->attestation_reason;
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"host", a->host},
           {"group", a->group},
           {"attestation", std::move(attestation)},
           {"enforce", {{"allowed", a->enforce_allowed}, {"reason", a->enforce_reason}}},
           {"updates", std::move(updates)}});
  };

  s.Post("/v1/agents/register", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto report = ParseRegisterRequest(q.body);
    if (!report.has_value()) return ReplyStatus(r, report.error());
    if (!OwnsHost(c, report->host, r)) return;
    reply(Register(*report, q.remote_addr), r);
  });

  s.Post("/v1/agents/activate", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto req = ParseActivateRequest(q.body);
    if (!req.has_value()) return ReplyStatus(r, req.error());
    if (!OwnsHost(c, req->host, r)) return;
    auto a = Activate(*req);
    if (!a.has_value()) return ReplyStatus(r, a.error());
    Reply(r, a->attestation == "verified" ? 200 : 422,
          {{"schema_version", kHubSchemaVersion},
           {"host", a->host},
           {"attestation", {{"state", a->attestation}, {"reason", a->attestation_reason}}},
           {"enforce", {{"allowed", a->enforce_allowed}, {"reason", a->enforce_reason}}}});
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
    reply(Heartbeat(*report, q.remote_addr), r);
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
      for (const char* key : {"policy", "model", "health", "refusal", "addresses"}) {
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
