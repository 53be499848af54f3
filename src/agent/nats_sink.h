#pragma once

// The NATS sink (`--sink nats:URL`, docs/hub.md "NATS JetStream"): a FindingSink whose messages
// are published to the JetStream stream the hubs consume, on the host's subject
// "<prefix>.<host>.findings" (pipeline::FindingsSubject), with the header Nats-Msg-Id set to the
// message id, so that the stream's duplicate window drops a resend too. A message is delivered
// when the stream acknowledged it (a PubAck; "duplicate" when the stream had the id already).
// No connection, no PubAck in time, or a stream that cannot be created or does not take the
// subject: retried (the connection is made again, and the stream created or checked, at the
// first message after each failure). A message larger than the server's max_payload is refused
// (logged with both sizes): lower batch_bytes (the server's default max_payload is 1 MiB).

#include <memory>

#include "agent/finding_sink.h"
#include "pipeline/jetstream.h"

namespace vigil::agent {

struct NatsSinkOptions : FindingSinkOptions {
  NatsSinkOptions() { batch_bytes = size_t{768} << 10; }  // under the server's 1 MiB default
  pipeline::JetStreamOptions nats;
};

// The transport alone: publishes each message's body to `subject` with its id as Nats-Msg-Id
// (the audit checkpoints' sink, agent/checkpoint_sink.h, uses it for
// "<prefix>.<host>.checkpoints").
// `options` must have passed pipeline::ValidateJetStreamOptions.
std::unique_ptr<FindingTransport> MakeNatsTransport(pipeline::JetStreamOptions options,
                                                    std::string subject);

// Fails as pipeline::ValidateJetStreamOptions and FindingSink::Open do. Does not connect: the
// sender does, so that the agent starts (and spools) while the NATS server is down.
core::Result<std::unique_ptr<FindingSink>> OpenNatsSink(NatsSinkOptions options,
                                                        core::Registry& registry,
                                                        pipeline::RecoveryReport* report);

}  // namespace vigil::agent
