#pragma once

// The hub's fleet routes (docs/hub.md, "Fleet: agents, artifacts, rollouts"):
//
//   GET  /v1/agents/nonce                                            agent
//   POST /v1/agents/register, /v1/agents/heartbeat                   agent (its own host)
//   POST /v1/agents/activate                                         agent (its own host)
//   GET  /v1/agents                                                  admin
//   POST /v1/artifacts (multipart: kind, file, signature)            admin
//   GET  /v1/artifacts                                               admin
//   GET  /v1/artifacts/HEX, /v1/artifacts/HEX/signature              agent
//   POST /v1/rollouts, /v1/rollouts/ID/promote; GET /v1/rollouts     admin
//
// An uploaded artifact must carry a minisign signature by one of the hub's trusted keys
// (govern::CheckSignedBytes); it is stored under the SHA-256 of its bytes. A rollout sends it
// first to one group, then, once promoted, to every agent: the heartbeat's answer names, per kind,
// the newest rollout that applies to the agent's group when the agent does not run it yet. The
// agent downloads it and checks the signature itself with its own keys before applying it.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "govern/attest.h"
#include "govern/minisign.h"
#include "hub/auth.h"
#include "hub/fleet_requests.h"
#include "hub/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace vigil::hub {

struct FleetOptions {
  // Uploads must be signed by one of these (none: every upload is refused, naming the setting).
  std::vector<govern::PublicKey> trusted_keys;
  // Enforce mode is allowed for an agent only when the quote it registered with verified
  // (over a nonce from GET /v1/agents/nonce; with `allowlist`, every measured digest in it).
  bool require_attestation = false;
  std::optional<std::set<govern::Sha256Digest>> allowlist;
  // Trusted EK CA bundle (PEM; fleet.attestation_ek_ca). Set: a quote must carry an EK
  // certificate that chains to it, and the agent must activate a credential made for that EK and
  // its attestation key (POST /v1/agents/activate) before its attestation is "verified".
  std::string ek_ca_bundle;
  std::string ek_ca_source;  // the bundle's file, for messages
  // CRLs (fleet.attestation_ek_crl; govern::VerifyEkChain): with them, a revoked EK certificate,
  // or one whose issuer has no current CRL here, is untrusted. Read once at start.
  std::string ek_crls;
  std::string ek_crl_source;
  // Signs nonces and challenge tokens (hub/fleet_attest.h); `vigil hub` derives it from the token
  // key, which every instance of one hub shares. "": a random key for this instance only.
  std::string attestation_key;
  // fleet.requote: > 0: a heartbeat answer hands out a nonce when the agent's latest verified
  // quote is this old; the agent's next heartbeat carries a quote over it, which must be signed by
  // the key the host attested with. A verified agent without a fresh quote for requote_ms +
  // nonce_ttl_ms is "failed". 0: quotes at registration only.
  int64_t requote_ms = 0;
  int64_t nonce_ttl_ms = 300'000;  // nonces and challenges expire after this
};

// Checks the bearer token for a role; on failure it has answered (401/403) and returns false.
using Authorizer =
    std::function<bool(const httplib::Request&, httplib::Response&, Role, Caller*)>;

// The rollout that applies to an agent of `group` for `kind`: the newest (highest id) that is
// promoted or whose canary group is `group`. `rollouts` in any order; nullptr when none.
const RolloutRow* RolloutFor(const std::vector<RolloutRow>& rollouts, const std::string& kind,
                             const std::string& group);

// The answer to a register or heartbeat: the agent's standing and the updates its group is to
// run (the REST routes render it as JSON, the agent gRPC service as vigil.v1.FleetAnswer).
struct FleetAnswer {
  struct Update {
    std::string kind, digest;
    int64_t rollout = 0;
  };
  std::string host, group;
  std::string attestation, attestation_reason;  // AgentStatusRow's
  bool enforce_allowed = true;
  std::string enforce_reason;
  std::vector<Update> updates;
  // What the attestation answer carries besides state and reason: "challenge" (a credential
  // challenge after registration: {"token","credential_blob","encrypted_secret"}, strings) or
  // "quote_nonce" (hex: a renewed quote is due). The REST answer carries it as it is, the gRPC
  // answer as FleetAnswer.challenge and .quote_nonce.
  nlohmann::json attestation_extra = nlohmann::json::object();
};

// The hub's judgement of a credential activation (POST /v1/agents/activate, AgentHub.Activate).
struct ActivateAnswer {
  std::string host;
  std::string attestation, attestation_reason;  // "verified" or "failed"
  bool enforce_allowed = false;
  std::string enforce_reason;
};

class Fleet {
 public:
  // Everything passed in must outlive the fleet.
  Fleet(FleetOptions options, Store& store, audit::AuditLog& audit, const core::Clock& clock);

  void Routes(httplib::Server& s, const Authorizer& authorize);

  // A register or heartbeat whose report was checked (Parse*Request) and whose host is the
  // caller's own (its token's subject, its certificate's CN): stores it, answers with updates.
  // `remote_addr`: the address the request came from ("" unknown), kept with the agent's status.
  core::Result<FleetAnswer> Register(const AgentReport& report, const std::string& remote_addr);
  core::Result<FleetAnswer> Heartbeat(const AgentReport& report, const std::string& remote_addr);
  // Judges an activation whose host is the caller's own: "verified" when the secret is the
  // credential's (the host's attestation key is then trusted; audited), "failed" otherwise. A
  // token not issued by this hub, expired, for another host or used already changes nothing (the
  // answer says why). Errors: the store or the audit log failed.
  core::Result<ActivateAnswer> Activate(const ActivateRequest& req);
  // A fresh nonce for `host` (hex), valid for options_.nonce_ttl_ms and once (any instance).
  std::string IssueNonce(const std::string& host);

  static nlohmann::json RolloutJson(const RolloutRow& r);
  static nlohmann::json ArtifactJson(const ArtifactRow& a);

 private:
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }
  core::Status Audit(audit::RecordType type, nlohmann::json payload);
  // The answer to a stored register or heartbeat of `report`, the agent now in `row`.
  core::Result<FleetAnswer> Answer(const AgentStatusRow& row, const AgentReport& report,
                                   nlohmann::json attestation_extra);
  // Checks a quote over one of our nonces, signed by `expected_ak_pem` when set: sets
  // row->attestation ("absent", "verified", "failed") and row->attestation_reason; returns the
  // document when it verified.
  std::optional<govern::QuoteDocument> CheckQuote(const std::string& quote,
                                                  const std::string& expected_ak_pem,
                                                  AgentStatusRow* row);
  // After a verified registration quote: with an EK CA, the credential challenge for the agent
  // (row "challenged", or "failed" when its EK or AK is not acceptable); without, records the
  // quote's key as the host's attested key (trusted at `now`, the registration's time). Returns
  // the challenge JSON (null when none).
  nlohmann::json Challenge(const govern::QuoteDocument& q, int64_t now, AgentStatusRow* row);
  // At a heartbeat, with options_.requote_ms: checks the quote it carries (or how old the last
  // one is) and returns a nonce to hand out when a new quote is due ("" otherwise).
  std::string Requote(const AgentReport& report, AgentStatusRow* row);
  // Stores the audit key a registration carries when it is new or changed (audited); a key other
  // than the one an admin pinned is refused and alarmed (hub/checkpoints.h) but does not fail the
  // registration.
  core::Status RegisterAuditKey(const AgentReport& report, int64_t now);
  // The answer on enforce mode for an agent in `row`'s attestation state.
  nlohmann::json EnforceJson(const AgentStatusRow& row) const;

  const FleetOptions options_;
  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  std::string key_;  // options_.attestation_key or a random one
};

}  // namespace vigil::hub
