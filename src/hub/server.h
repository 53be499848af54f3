#pragma once

// The hub's HTTP/JSON API (cpp-httplib; HTTPS when TLS files are configured). Routes, roles and
// bodies: docs/hub.md.
//
//   GET  /healthz, /metrics (Prometheus text)                        no credentials
//   POST /v1/ingest                                                  agent (its own host)
//   GET  /v1/incidents, /v1/incidents/ID, /v1/labels                 viewer
//   POST /v1/incidents/ID/adjudication                               analyst
//   POST /v1/escalations                                             agent (its own host)
//   GET  /v1/escalations, /v1/escalations/ID                         viewer (agent: its own)
//   POST /v1/escalations/ID/decision                                 analyst
//   POST /v1/tokens                                                  admin
//   the fleet's routes (agents, artifacts, rollouts): hub/fleet.h
//   POST /v1/login, GET /v1/precision, the web UI at / and /ui/       web.h
//
// Errors are {"schema_version":"vigil.hub/v1","error":{"code","message"}} with 400 (bad
// request), 401 (no, expired or forged token), 403 (role), 404, 409 (escalation already decided
// or past its deadline), 503 (store or audit log unavailable). Every change (adjudication,
// escalation opened/decided/timed out, token issued) is appended to the audit log.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/metrics.h"
#include "hub/agent_certs.h"
#include "hub/auth.h"
#include "hub/checkpoints.h"
#include "hub/fleet.h"
#include "hub/store.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace vigil::hub {

class Triage;  // hub/triage.h

struct HubTls {
  std::string cert;  // PEM certificate chain
  std::string key;   // PEM private key
};

struct ServerOptions {
  core::HostPort listen{"127.0.0.1", 8470};
  std::optional<HubTls> tls;  // none: plain HTTP (loopback or a trusted network only)
  int threads = 8;
  uint32_t escalation_timeout_s = 300;       // when the agent gives none
  uint32_t max_escalation_timeout_s = 3600;  // longer requests are cut to this
  uint32_t max_token_ttl_s = 86400;          // POST /v1/tokens
  std::string users_file;                    // POST /v1/login (web.h); "": logins refused
  uint32_t login_ttl_s = 900;                // the lifetime of a login's token
  FleetOptions fleet;                        // register, heartbeat, artifacts, rollouts
};

class Server {
 public:
  // Everything passed in must outlive the server.
  Server(ServerOptions options, Store& store, const HubAuth& auth, audit::AuditLog& audit,
         const core::Clock& clock, core::Registry& registry);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and serves on a new thread (core::HttpListener). Errors name the file or host:port.
  core::Status Start();
  // Stops accepting, finishes in-flight requests, joins; also right after Start(). Idempotent.
  void Stop();
  uint16_t port() const { return listener_.port(); }

  // Times out due escalations (their default applies) and audits each; the HTTP routes call it
  // before they read or decide escalations, and `vigil hub` calls it every second.
  core::Status ExpireDue();
  // Opens the escalation an agent asks for (its host already checked against the caller), or
  // finds the one it opened before under the same escalation_id (*created false); audits an
  // opening as by `by`. POST /v1/escalations and the agent gRPC service's Escalate.
  core::Result<EscalationRow> OpenEscalation(const EscalationRequest& e, const std::string& by,
                                             bool* created);
  // The escalation `id` as its host's agent sees it (after timing out due ones);
  // kPermissionDenied when it belongs to another host.
  core::Result<EscalationRow> HostEscalation(int64_t id, const std::string& host);
  // An agent's message (the body of POST /v1/ingest) from the agent of `caller_host`: checks it
  // (kInvalidArgument naming the field), refuses another host's (kPermissionDenied), stores it
  // once and counts it (vigil_hub_ingest_messages_total, vigil_hub_findings_total). *message_id:
  // the message's id. POST /v1/ingest and the agent gRPC service's Ingest.
  core::Result<IngestResult> IngestFromAgent(std::string_view body, const std::string& caller_host,
                                             std::string* message_id);
  // Register, heartbeat, nonce and artifacts for the agent gRPC service.
  Fleet& fleet() { return fleet_; }
  // The agents' audit checkpoints (also taken from NATS: hub/nats_streams.h).
  CheckpointBook& checkpoints() { return checkpoints_; }
  Store& store() { return store_; }
  // The agents' client certificates: recorded, revoked, renewed (hub/agent_certs.h).
  AgentCerts& certs() { return certs_; }

  // The triage model in service (hub/triage.h): GET /v1/triage, POST /v1/triage/train and
  // /v1/triage/model answer with it; without one they answer 503. Set before Start().
  void SetTriage(Triage* triage) { triage_ = triage; }

  // Sets the adjudication gauges from the store (GET /metrics calls it).
  core::Status RefreshMetrics();

  // The JSON the API answers with (also used by tests and the CLI).
  static nlohmann::json IncidentJson(const IncidentRow& r);
  static nlohmann::json EscalationJson(const EscalationRow& r);

 private:
  void Routes(httplib::Server& s);
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }
  core::Status Audit(audit::RecordType type, nlohmann::json payload);

  const ServerOptions options_;
  Store& store_;
  const HubAuth& auth_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  core::Registry& registry_;
  Fleet fleet_;
  Triage* triage_ = nullptr;
  CheckpointBook checkpoints_;
  AgentCerts certs_;
  core::HttpListener listener_;
};

}  // namespace vigil::hub
