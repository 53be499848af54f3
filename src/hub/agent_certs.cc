#include "hub/agent_certs.h"

#include <httplib.h>

#include "hub/enrolment.h"
#include "hub/internal/http_reply.h"
#include "hub/requests.h"

namespace vigil::hub {

using nlohmann::json;
using internal::Reply;
using internal::ReplyError;
using internal::ReplyStatus;

namespace {

constexpr size_t kMaxReasonBytes = 512;

core::Status Audited(audit::AuditLog& audit, json payload) {
  core::Status s = audit.Append(audit::RecordType::kAccessGrant, std::move(payload));
  if (!s.ok()) return core::Unavailable("audit log: " + s.message());
  return {};
}

}  // namespace

json AgentCerts::CertJson(const AgentCertRow& r) {
  json j = {{"sha256", r.sha256},           {"host", r.host},
            {"group", r.group},             {"how", r.how},
            {"not_after_s", r.not_after_s}, {"issued_ms", r.issued_ms},
            {"first_used_ms", r.first_used_ms}, {"revoked", r.revoked_ms != 0}};
  if (!r.replaces.empty()) j["replaces"] = r.replaces;
  if (r.revoked_ms != 0) {
    j["revoked_ms"] = r.revoked_ms;
    j["revoked_by"] = r.revoked_by;
    j["revoke_reason"] = r.revoke_reason;
  }
  return j;
}

core::Result<std::string> AgentCerts::Record(std::string_view cert_pem, const std::string& host,
                                             const std::string& group, const std::string& how,
                                             const std::string& replaces, int64_t not_after_s) {
  VIGIL_ASSIGN_OR_RETURN(std::string sha256, CertSha256(cert_pem));
  AgentCertRow row;
  row.sha256 = sha256;
  row.host = host;
  row.group = group;
  row.how = how;
  row.replaces = replaces;
  row.not_after_s = not_after_s;
  row.issued_ms = NowMs();
  VIGIL_RETURN_IF_ERROR(store_.PutAgentCert(row));
  return sha256;
}

core::Status AgentCerts::Admit(const std::string& sha256, const std::string& host) {
  auto row = store_.AgentCert(sha256);
  if (!row.has_value()) {
    return row.error().code() == core::StatusCode::kNotFound ? core::Status() : row.error();
  }
  if (row->revoked_ms != 0) {
    return core::Status(core::StatusCode::kPermissionDenied, "the client certificate sha256:" + sha256 + " of host " + host +
                                  " was revoked (at " + std::to_string(row->revoked_ms / 1000) +
                                  ", by " + row->revoked_by + ": " + row->revoke_reason +
                                  "); enrol again (vigil agent enrol)");
  }
  if (row->first_used_ms != 0) return {};
  VIGIL_ASSIGN_OR_RETURN(const bool first, store_.MarkAgentCertUsed(sha256, NowMs()));
  if (!first || row->replaces.empty()) return {};
  VIGIL_ASSIGN_OR_RETURN(
      const AgentCertRow old,
      store_.RevokeAgentCert(row->replaces, NowMs(), "hub",
                             "renewed: replaced by sha256:" + sha256 + ", now in use"));
  return Audited(audit_, {{"action", "agent-cert-superseded"},
                          {"host", host},
                          {"sha256", old.sha256},
                          {"by_cert", sha256}});
}

core::Result<std::vector<AgentCertRow>> AgentCerts::Revoke(const std::string& sha256,
                                                           const std::string& host,
                                                           const std::string& by,
                                                           const std::string& reason) {
  std::vector<std::string> targets;
  if (!sha256.empty()) {
    targets.push_back(sha256);
  } else {
    VIGIL_ASSIGN_OR_RETURN(const std::vector<AgentCertRow> rows, store_.AgentCerts(host, 1000));
    if (rows.empty()) {
      return core::NotFound("host " + host + ": no certificate on record at this hub");
    }
    for (const AgentCertRow& r : rows) {
      if (r.revoked_ms == 0) targets.push_back(r.sha256);
    }
  }
  std::vector<AgentCertRow> out;
  for (const std::string& t : targets) {
    VIGIL_ASSIGN_OR_RETURN(AgentCertRow row, store_.RevokeAgentCert(t, NowMs(), by, reason));
    VIGIL_RETURN_IF_ERROR(Audited(audit_, {{"action", "agent-cert-revoked"},
                                           {"host", row.host},
                                           {"sha256", row.sha256},
                                           {"reason", reason},
                                           {"by", by}}));
    out.push_back(std::move(row));
  }
  return out;
}

void AgentCerts::Routes(httplib::Server& s, const Authorizer& authorize) {
  s.Get("/v1/agents/certs", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    const std::string host = q.get_param_value("host");
    if (!host.empty() && !ValidHostId(host)) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "host: expected 1..253 bytes of [A-Za-z0-9._:-]");
    }
    auto rows = store_.AgentCerts(host, 1000);
    if (!rows.has_value()) return ReplyStatus(r, rows.error());
    json certs = json::array();
    for (const AgentCertRow& row : *rows) certs.push_back(CertJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"certs", std::move(certs)}});
  });
  s.Post("/v1/agents/certs/revoke", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    const json j = json::parse(q.body, nullptr, false);
    if (!j.is_object()) return ReplyError(r, 400, "INVALID_ARGUMENT", "body: expected an object");
    auto text = [&j](const char* key) {
      return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    for (const char* key : {"sha256", "host", "reason"}) {
      if (j.contains(key) && !j[key].is_string()) {
        return ReplyError(r, 400, "INVALID_ARGUMENT", std::string(key) + ": expected a string");
      }
    }
    std::string sha256;
    const std::string host = text("host"), reason = text("reason");
    if (j.contains("sha256") == !host.empty()) {
      return ReplyError(r, 400, "INVALID_ARGUMENT", "give one of sha256 and host");
    }
    if (j.contains("sha256") && !ParseCertFingerprint(text("sha256"), &sha256)) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "sha256: expected the certificate's SHA-256, 64 hex digits (colons "
                        "allowed)");
    }
    if (!host.empty() && !ValidHostId(host)) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "host: expected 1..253 bytes of [A-Za-z0-9._:-]");
    }
    if (reason.empty() || reason.size() > kMaxReasonBytes) {
      return ReplyError(r, 400, "INVALID_ARGUMENT",
                        "reason: expected 1.." + std::to_string(kMaxReasonBytes) + " bytes");
    }
    auto revoked = Revoke(sha256, host, c.subject, reason);
    if (!revoked.has_value()) return ReplyStatus(r, revoked.error());
    json certs = json::array();
    for (const AgentCertRow& row : *revoked) certs.push_back(CertJson(row));
    Reply(r, 200, {{"schema_version", kHubSchemaVersion}, {"revoked", std::move(certs)}});
  });
}

}  // namespace vigil::hub
