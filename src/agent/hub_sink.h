#pragma once

// The hub sink (`--sink hub:URL`, docs/hub.md "The agent's hub sink"): a FindingSink whose
// messages are posted to the hub's POST /v1/ingest. An answer of 200 is a delivery (`"duplicate":
// true`: the hub had it already); 400 or 413 (the hub will never take it) is a refusal, logged
// with the hub's message; no answer, 401, 403, 429 or 5xx is retried.

#include <memory>

#include "agent/finding_sink.h"
#include "agent/hub_client.h"

namespace vigil::agent {

struct HubSinkOptions : FindingSinkOptions {
  HubLinkOptions link;  // link.host is the messages' host (FindingSinkOptions::host is ignored)
};

// The transport alone: posts each message's body to `path` with the same rules (the audit
// checkpoints' sink, agent/checkpoint_sink.h, uses it for POST /v1/agents/checkpoints).
std::unique_ptr<FindingTransport> MakeHubTransport(std::unique_ptr<HubClient> client,
                                                   std::string path);

// Fails as ValidateHubLink and FindingSink::Open do.
core::Result<std::unique_ptr<FindingSink>> OpenHubSink(HubSinkOptions options,
                                                       core::Registry& registry,
                                                       pipeline::RecoveryReport* report);

}  // namespace vigil::agent
