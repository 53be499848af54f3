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
#include "pipeline/jetstream.h"

namespace vigil::hub {

struct NatsCheckpointOptions {
  pipeline::JetStreamOptions nats;
  pipeline::ConsumerOptions consumer;            // kind is set to "checkpoints"
  int batch = 64;                                // messages per fetch, 1..1000
  std::chrono::milliseconds fetch_wait{500};     // also how soon Stop() is noticed
  std::chrono::milliseconds retry_initial{200};  // reconnecting: doubling up to retry_max
  std::chrono::milliseconds retry_max{5000};
  std::chrono::milliseconds nak_delay{1000};
};

struct NatsCheckpointCounts {
  uint64_t stored = 0, duplicate = 0, malformed = 0, retried = 0;
  uint64_t connect_errors = 0, fetch_errors = 0, ack_errors = 0;
};

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

  bool connected() const { return connected_.load(); }
  NatsCheckpointCounts Counts() const;

 private:
  void Run();
  void Handle(pipeline::JetStreamMessage& m);
  bool Pause(std::chrono::milliseconds d);  // false when stopping

  NatsCheckpointOptions options_;
  CheckpointBook& book_;
  core::Counter* stored_ = nullptr;
  core::Counter* duplicate_ = nullptr;
  core::Counter* malformed_ = nullptr;
  core::Counter* retried_ = nullptr;
  core::Counter* connect_errors_ = nullptr;
  core::Counter* fetch_errors_ = nullptr;
  core::Counter* ack_errors_ = nullptr;
  core::Status init_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace vigil::hub
