#pragma once

// The hub's NATS JetStream consumers of the subject families besides findings (docs/hub.md,
// "NATS JetStream"). nats-server 2.9 (Debian 12) allows one filter subject per consumer, so each
// family has its own durable pull consumer, shared by every hub instance as the findings one is
// (hub/nats_consumer.h): each message goes to one instance at a time and is redelivered when not
// acknowledged within ack_wait.
//
// Audit checkpoints: "<prefix>.<host>.checkpoints" (pipeline::HostSubject), the body of
// POST /v1/agents/checkpoints (hub/checkpoint_requests.h), durable "<findings durable>-checkpoints"
// by default. Each message is handed to CheckpointBook::Accept and then
//   - acknowledged once stored (or a duplicate: a resend, another instance got there first);
//   - negatively acknowledged (redelivered after nak_delay) when the store or audit log failed;
//   - malformed (not the body, its host not the subject's): logged naming the subject, stream
//     sequence and reason, counted, and terminated.
// The connection is made (and made again after a failure, with backoff) by the consumer's thread.
//
// Counters: vigil_hub_nats_checkpoint_messages_total{result="stored"|"duplicate"|"malformed"|
// "retried"}, vigil_hub_nats_checkpoint_errors_total{op="connect"|"fetch"|"ack"}.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "core/metrics.h"
#include "core/status.h"
#include "hub/checkpoints.h"
#include "hub/nats_pull_loop.h"
#include "pipeline/jetstream.h"

namespace vigil::hub {

// The connection and fetching (hub/nats_pull_loop.h; consumer.kind is set to "checkpoints"),
// and:
struct NatsCheckpointOptions : NatsPullOptions {
  std::chrono::milliseconds nak_delay{1000};
};

using NatsCheckpointCounts = NatsPullCounts;

class NatsCheckpointConsumer {
 public:
  // `book` and `registry` must outlive the consumer.
  NatsCheckpointConsumer(NatsCheckpointOptions options, CheckpointBook& book,
                         core::Registry& registry);
  ~NatsCheckpointConsumer();  // Stop()
  NatsCheckpointConsumer(const NatsCheckpointConsumer&) = delete;
  NatsCheckpointConsumer& operator=(const NatsCheckpointConsumer&) = delete;

  // Checks the options (kInvalidArgument naming the field) and starts the thread; does not wait
  // for the server.
  core::Status Start();
  void Stop();  // idempotent; joins within about fetch_wait plus one message

  bool connected() const { return loop_.connected(); }
  NatsCheckpointCounts Counts() const;

 private:
  void Handle(pipeline::JetStreamMessage& m);

  NatsCheckpointOptions options_;
  CheckpointBook& book_;
  // vigil_hub_nats_checkpoint_messages_total, vigil_hub_nats_checkpoint_errors_total
  NatsPullCounters counters_;

  NatsPullLoop loop_;
};

}  // namespace vigil::hub
