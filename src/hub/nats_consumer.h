#pragma once

// The hub's NATS JetStream consumer (docs/hub.md "NATS JetStream"): with a `nats:` section in
// its config, `vigil hub` also takes the messages that agents' nats sinks publish to the stream.
// Every hub instance binds the same durable pull consumer (default "vigil-hub"), so N hubs split
// the stream's messages between them; each message is handed to one hub at a time and
// redelivered (to any of them) when it is not acknowledged within ack_wait.
//
// Each message is the body of POST /v1/ingest (hub::ParseIngestRequest, the parser the HTTP
// route uses), published on "<prefix>.<host>.findings" (pipeline::FindingsSubject). The consumer
// fetches up to `batch` messages at a time and stores the well-formed ones of a fetch with one
// Store::IngestBatch (one transaction), then acknowledges them all (sent together; the server's
// answer to the last one confirms them, as it handles a connection's acknowledgements in order).
// Two threads share the work: the pull loop's thread fetches and parses a batch while the
// store thread stores (and then acknowledges) the one before, so the hub's parsing and the
// store's server work at the same time. At most two fetched batches are unacknowledged: the one
// being stored and the next, parsed and waiting for it; batches are committed in fetch order.
// For each message:
//   - stored, then acknowledged; a message id the store had already (a redelivery, another hub
//     got there first, the same id twice in one batch) is a duplicate: nothing is stored and it
//     is acknowledged too;
//   - the store refused the batch's data (kInvalidArgument): each message of it is stored alone
//     (Store::Ingest), so that the one refused does not hold back the others; one that fails is
//     negatively acknowledged (redelivered after nak_delay), counted as retried. Any other store
//     failure (unavailable): every message of the batch is negatively acknowledged, counted;
//   - malformed (not the ingest body, or a body whose host is not the subject's host, or larger
//     than kMaxRequestBytes): logged naming the subject, stream sequence and reason, counted,
//     and terminated, so the server never delivers it again.
// The hub never acknowledges a message before its findings are committed, so a hub killed
// mid-stream loses nothing: what it had not acknowledged is delivered again.
//
// The connection is made by the consumer's thread, and made again (with the stream created or
// checked and the consumer bound) after every failure, with backoff: the hub starts and serves
// its HTTP API while the NATS server is down.
//
// Counters (the registry given to the constructor):
//   vigil_hub_nats_messages_total{result="stored"|"duplicate"|"malformed"|"retried"}
//   vigil_hub_nats_errors_total{op="connect"|"fetch"|"ack"}
//   vigil_hub_nats_connected (gauge, 1 while bound to the consumer)
// and the findings stored go to vigil_hub_findings_total, as for POST /v1/ingest.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "hub/nats_pull_loop.h"
#include "hub/store.h"
#include "pipeline/jetstream.h"

namespace vigil::hub {

// The connection and fetching (hub/nats_pull_loop.h), and:
struct NatsConsumerOptions : NatsPullOptions {
  std::chrono::milliseconds nak_delay{1000};  // the store failed: redelivered after this
  // Called on the store thread for each message once its batch is committed (before the
  // acknowledgement is sent); may be empty. For measurements (bench/hub/nats_ingest.sh).
  std::function<void(const IngestMessage&, const IngestResult&)> on_stored;
};

using NatsConsumerCounts = NatsPullCounts;

class NatsConsumer {
 public:
  // `store`, `clock` and `registry` must outlive the consumer.
  NatsConsumer(NatsConsumerOptions options, Store& store, const core::Clock& clock,
               core::Registry& registry);
  ~NatsConsumer();  // Stop()
  NatsConsumer(const NatsConsumer&) = delete;
  NatsConsumer& operator=(const NatsConsumer&) = delete;

  // Checks the options (kInvalidArgument naming the field) and starts the consumer's threads;
  // does not wait for the server.
  core::Status Start();
  // Stops fetching, stores and acknowledges what was fetched and parsed, and joins (within about
  // fetch_wait plus two batches' transactions). Idempotent.
  void Stop();

  bool connected() const { return loop_.connected(); }
  NatsConsumerCounts Counts() const;

 private:
  // A fetched batch's well-formed messages, parsed, with the messages they came from (moved
  // out of the fetch: settled by the store thread).
  struct Parsed {
    std::vector<IngestMessage> msgs;
    std::vector<pipeline::JetStreamMessage> from;
  };
  // On the loop's thread: parses the batch, terminates its malformed messages, hands the rest to
  // the store thread once it has taken the previous batch, and returns once it has taken this
  // one (so the loop fetches the next while this one is stored).
  void HandleBatch(std::vector<pipeline::JetStreamMessage>& batch);
  // On the loop's thread: returns once the store thread has settled every batch handed to it.
  void Drain();
  // The store thread: takes each handed batch and stores it (StoreBatch).
  void StoreLoop();
  // Stores the batch's messages in one transaction, then acknowledges them.
  void StoreBatch(Parsed& p);
  // Counts a stored (or duplicate) message and acknowledges it; `confirm`: waits for the
  // server's answer (the batch's last message), else does not.
  void Settled(const IngestMessage& msg, const IngestResult& r, pipeline::JetStreamMessage& m,
               bool confirm);
  // The message's ingest body, checked against its subject; kInvalidArgument saying why not.
  core::Result<IngestMessage> Parse(const pipeline::JetStreamMessage& m) const;

  const NatsConsumerOptions options_;
  Store& store_;
  const core::Clock& clock_;

  NatsPullCounters counters_;  // vigil_hub_nats_messages_total, vigil_hub_nats_errors_total
  core::Counter* findings_ = nullptr;
  core::Gauge* connected_gauge_ = nullptr;
  core::Status init_;  // non-OK when the counters could not be registered

  // The hand-over between the loop's thread and the store thread: `next_` holds a parsed batch
  // the store thread has not taken yet; `storing_` is true while it stores one.
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Parsed> next_;
  bool storing_ = false;
  bool stop_store_ = false;
  std::thread store_thread_;

  NatsPullLoop loop_;
};

}  // namespace vigil::hub
