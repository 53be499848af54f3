#pragma once

// The life of the client certificates the hub CA issues to agents (docs/hub.md, "Revoking and
// renewing agent certificates"): each one is recorded in the store when issued (Enrol, Renew);
// an admin revokes one by fingerprint, or every one of a host, over REST (`vigil hub cert
// revoke`); every authenticated agent gRPC call is checked against the store, so a revocation
// holds at once on every hub instance that shares it. A renewed certificate replaces its
// predecessor when it is first used: from then on the old one is refused.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/status.h"
#include "hub/fleet.h"
#include "hub/store.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace vigil::hub {

class AgentCerts {
 public:
  // Everything passed in must outlive this.
  AgentCerts(Store& store, audit::AuditLog& audit, const core::Clock& clock)
      : store_(store), audit_(audit), clock_(clock) {}

  // Records a certificate the CA just issued to `host` (how: "enrolled" or "renewed"; replaces:
  // the renewed certificate's sha256). Returns its sha256. kInvalidArgument for text that is
  // not a PEM certificate; the store's errors.
  core::Result<std::string> Record(std::string_view cert_pem, const std::string& host,
                                   const std::string& group, const std::string& how,
                                   const std::string& replaces, int64_t not_after_s);

  // Checks the certificate `sha256` that a call from `host` was made with: kPermissionDenied
  // naming when, by whom and why when it is revoked. A certificate the store has no record of
  // (issued before this hub recorded them) is admitted. The first call with a renewed
  // certificate revokes the one it replaces (audited "agent-cert-superseded").
  core::Status Admit(const std::string& sha256, const std::string& host);

  // Revokes the certificate `sha256` (when not "") or every unrevoked one issued to `host`;
  // audits "agent-cert-revoked" for each. Returns the rows as stored afterwards (kNotFound when
  // `host` has no certificate on record).
  core::Result<std::vector<AgentCertRow>> Revoke(const std::string& sha256,
                                                 const std::string& host, const std::string& by,
                                                 const std::string& reason);

  // GET /v1/agents/certs[?host=H] (admin): the certificates on record, newest first.
  // POST /v1/agents/certs/revoke (admin) {"sha256": HEX | "host": H, "reason": TEXT}.
  void Routes(httplib::Server& s, const Authorizer& authorize);

  static nlohmann::json CertJson(const AgentCertRow& r);

 private:
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }
  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
};

}  // namespace vigil::hub
