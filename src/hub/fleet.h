#pragma once

// The hub's fleet routes (docs/hub.md, "Fleet: agents, artifacts, rollouts"):
//
//   GET  /v1/agents/nonce                                            agent
//   POST /v1/agents/register, /v1/agents/heartbeat                   agent (its own host)
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
};

class Fleet {
 public:
  // Everything passed in must outlive the fleet.
  Fleet(FleetOptions options, Store& store, audit::AuditLog& audit, const core::Clock& clock)
      : options_(std::move(options)), store_(store), audit_(audit), clock_(clock) {}

  void Routes(httplib::Server& s, const Authorizer& authorize);

  // A register or heartbeat whose report was checked (Parse*Request) and whose host is the
  // caller's own (its token's subject, its certificate's CN): stores it, answers with updates.
  core::Result<FleetAnswer> Register(const AgentReport& report);
  core::Result<FleetAnswer> Heartbeat(const AgentReport& report);
  // A fresh nonce for `host` (hex), valid for 5 minutes and once.
  std::string IssueNonce(const std::string& host);

  static nlohmann::json RolloutJson(const RolloutRow& r);
  static nlohmann::json ArtifactJson(const ArtifactRow& a);

 private:
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }
  core::Status Audit(audit::RecordType type, nlohmann::json payload);
  core::Result<FleetAnswer> Answer(const AgentStatusRow& row, const AgentReport& report);
  // Checks a registration's quote: sets row->attestation ("absent", "verified", "failed") and
  // row->attestation_reason.
  void CheckQuote(const std::string& quote, AgentStatusRow* row);

  const FleetOptions options_;
  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  std::mutex nonce_mu_;
  std::map<std::string, std::pair<std::string, int64_t>> nonces_;  // host -> (nonce, expiry ms)
};

}  // namespace vigil::hub
