#pragma once

// The hub's gRPC service for agents, vigil.v1.AgentHub (proto/vigil/v1/agent.proto; docs/hub.md
// "Agents over gRPC with mTLS"). It listens on its own port over TLS with a server certificate
// issued by the hub CA at start. Enrol needs no client certificate (a one-time token instead);
// every other method needs a client certificate from the hub CA, whose CN is the agent's host id
// (and OU its group): a certificate from another CA fails the TLS handshake, a call without one
// is UNAUTHENTICATED, a revoked or superseded one PERMISSION_DENIED (hub/agent_certs.h, checked
// at every call). Renew issues the caller a new certificate over a fresh key. Register,
// Heartbeat, Nonce, FetchArtifact, Escalate, GetEscalation, Ingest, Checkpoint and
// RegisterAuditKey run the same code as the REST routes (hub::Fleet, hub::Server's escalations
// and ingestion, hub::CheckpointBook).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "hub/enrolment.h"
#include "hub/server.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace vigil::hub {

struct AgentGrpcOptions {
  core::HostPort listen{"127.0.0.1", 8471};
  std::vector<std::string> server_names{"localhost", "127.0.0.1"};
  uint32_t cert_ttl_s = 30 * 86400;         // an enrolled agent's certificate
  uint32_t server_cert_ttl_s = 90 * 86400;  // the port's own certificate (made at each start)
  // Enrol calls taken from one peer address per minute (agents.enrol_attempts_per_minute); more
  // are RESOURCE_EXHAUSTED without looking at the token, and audited (the first in each minute).
  uint32_t enrol_attempts_per_minute = 10;
};

class AgentGrpc {
 public:
  // Everything passed in must outlive the service.
  AgentGrpc(AgentGrpcOptions options, const HubCa& ca, EnrolTokens& tokens, Server& server,
            audit::AuditLog& audit, const core::Clock& clock);
  ~AgentGrpc();
  AgentGrpc(const AgentGrpc&) = delete;
  AgentGrpc& operator=(const AgentGrpc&) = delete;

  // Issues the port's certificate and listens. Errors name the address or the names.
  core::Status Start();
  // Stops (waits at most a second for calls in flight). Idempotent.
  void Stop();
  uint16_t port() const { return port_; }

  // Appends an "enrol-token-created" audit record for each token `vigil hub enrol-token
  // create` added since the last call (`vigil hub` calls it at start and every second; Enrol
  // calls it before it consumes a token).
  core::Status AuditNewTokens();

 private:
  class Service;
  // Counts an Enrol attempt from `peer` (its address without the port) at `now_s`: true when it
  // is within the minute's budget. *first_refusal: this is the first refusal in the window.
  bool AdmitEnrol(const std::string& peer, int64_t now_s, bool* first_refusal);

  struct EnrolWindow {
    int64_t start_s = 0;
    uint32_t attempts = 0;
  };
  const AgentGrpcOptions options_;
  const HubCa& ca_;
  EnrolTokens& tokens_;
  Server& server_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> grpc_;
  uint16_t port_ = 0;
  std::mutex enrol_mu_;
  std::map<std::string, EnrolWindow> enrol_windows_;  // by peer address
};

}  // namespace vigil::hub
