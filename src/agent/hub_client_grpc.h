#pragma once

// The gRPC transport of HubClient (agent/hub_client.h): vigil.v1.AgentHub on the hub's agent
// port over mTLS. Each REST route the agent uses maps to one RPC, and the answer comes back in
// the REST form (the JSON body and the HTTP status of the route):
//
//   GET  /v1/agents/nonce                    Nonce
//   POST /v1/agents/register, /heartbeat     Register, Heartbeat (challenge, quote_nonce -> the
//                                            "attestation" object as the REST answer has it)
//   POST /v1/agents/activate                 Activate (200 when verified, else 422)
//   GET  /v1/artifacts/HEX[/signature]       FetchArtifact (one call serves both: the last
//                                            artifact is kept for its signature)
//   POST /v1/escalations                     Escalate (201 when it opened one, else 200)
//   GET  /v1/escalations/ID                  GetEscalation
//   POST /v1/ingest                          Ingest
//   POST /v1/agents/checkpoints              Checkpoint
//   POST /v1/agents/audit-key                RegisterAuditKey
//
// Register carries the body's "audit_key" and "addresses", Heartbeat its "addresses", as REST
// does. The request's "host" is not sent: the hub takes it from the certificate. A gRPC error other
// than UNAVAILABLE or DEADLINE_EXCEEDED is a reply with the HTTP status of its code
// (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// FAILED_PRECONDITION 409, RESOURCE_EXHAUSTED 429, others 500) and error "CODE: message";
// UNAVAILABLE and DEADLINE_EXCEEDED (no answer) are kUnavailable errors.

#include <memory>

#include "agent/hub_client.h"

namespace vigil::agent {

// The client follows a renewal (agent/cert_renewal.h): when the certificate file was replaced,
// its next call goes over a new channel with the new pair (once the pair on disk matches).
//
// `options` already passed ValidateHubLink with a grpcs:// URL. Completes an interrupted renewal
// (FinishCertSwap), then reads the certificate, key and CA
// (kNotFound, kPermissionDenied, kInvalidArgument for one that is not PEM) and checks that the
// certificate's CN is options.host and the key is its key (kInvalidArgument naming both).
core::Result<std::unique_ptr<HubClient>> CreateGrpcHubClient(HubLinkOptions options);

}  // namespace vigil::agent
