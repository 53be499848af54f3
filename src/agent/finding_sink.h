#pragma once

// FindingSink: the agent's findings sent to the hub, over a transport (docs/hub.md "The agent's
// hub sink" and "NATS JetStream"): `--sink hub:URL` posts them to the hub's HTTP API
// (agent/hub_sink.h), `--sink nats:URL` publishes them to a JetStream stream the hubs consume
// (agent/nats_sink.h). The message, its id, the spool and the retries are the same for both.
//
// Lines are the sinks' JSON Lines; the sink keeps the OCSF Detection Findings (class 2004) —
// decisions, and verdicts that are anomalous (all verdicts with anomalous_only off) — and skips
// the rest (counted). Kept findings are collected into messages of at most `batch_findings`
// findings / `batch_bytes` bytes; a message is sealed when it is full, on Flush(), or
// `batch_delay` after its first finding, and then
//
//   1. appended to a durable spool (pipeline::Spool in `spool_dir`) as one record, the exact
//      body of POST /v1/ingest, with a message id that is the SHA-256 of the host and the
//      findings: a redelivery (after a lost answer, a retry, a restart) carries the same id, and
//      the hub's ingestion is idempotent per (host, message id), so no finding is stored twice;
//   2. handed to the transport by one sender thread, in spool order; when the transport says it
//      is delivered (stored, or already there) the record is acknowledged in the spool. While it
//      says "retry" (peer unreachable, refusing for now), the message is retried with
//      exponential backoff (retry_initial doubling to retry_max) and everything after it waits,
//      spooled; when it says "refused" (the peer will never take it) it is logged, counted as
//      failed and acknowledged so that it does not block the rest.
//
// A message survives a crash from the moment Flush() (or the Write that sealed it) returned;
// lines not sealed yet are lost with the process, as with every buffered sink. At Open(), what
// an earlier run spooled and did not deliver is sent first.
//
// Memory: sealed messages are kept in memory for the sender up to `memory_bytes`; beyond that
// they are only on disk, and the sender reads them back (by reopening the spool) once it has
// sent what it holds.
//
// Counters (the registry given to Open; KIND is the options' `kind`, "hub" or "nats"):
//   vigil_KIND_sink_messages_total{result="sent"|"duplicate"|"failed"}   delivery outcomes
//   vigil_KIND_sink_findings_total{result="spooled"|"sent"|"failed"}
//   vigil_KIND_sink_retries_total                 deliveries that failed and will be retried
//   vigil_KIND_sink_lines_skipped_total{cause="not-a-finding"|"not-anomalous"}
//   vigil_KIND_sink_spooled_messages              gauge: sealed and not yet delivered
//
// Threading: Write and Flush from one thread (the Sink contract); Close and Stats from any.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/metrics.h"
#include "core/status.h"
#include "pipeline/sink.h"
#include "pipeline/spool.h"

namespace vigil::agent {

// One sealed message: `body` is the POST /v1/ingest body whose "message_id" is `id`.
struct FindingMessage {
  uint64_t seq = 0;  // in the spool
  size_t findings = 0;
  std::string id;
  std::string body;
};

enum class DeliveryOutcome : uint8_t {
  kStored,     // the peer took it
  kDuplicate,  // the peer had it already (a redelivery)
  kRefused,    // the peer will never take it: dropped, counted as failed
  kRetry,      // not delivered now (unreachable, refusing for the time being): retried
};

// How a message reaches the peer. Deliver is called by the sink's sender thread only, one
// message at a time, in spool order, and may block (up to the transport's own timeouts).
class FindingTransport {
 public:
  virtual ~FindingTransport() = default;
  virtual DeliveryOutcome Deliver(const FindingMessage& m) = 0;
  // The peer, for logs ("http://hub:8470", "nats://127.0.0.1:4222 stream VIGIL").
  virtual std::string Endpoint() const = 0;
};

struct FindingSinkOptions {
  std::string kind = "hub";  // names the sink in errors and logs, and its counters
  std::string host;          // this host's id (the messages' "host")
  std::string spool_dir;     // created when absent (its parent must exist)
  pipeline::SpoolOptions spool;
  size_t batch_findings = 500;           // 1 .. 10000 (the hub's limit per message)
  size_t batch_bytes = size_t{4} << 20;  // 1 KiB .. 6 MiB (the hub takes 8 MiB bodies)
  std::chrono::milliseconds batch_delay{1000};
  std::chrono::milliseconds retry_initial{200};
  std::chrono::milliseconds retry_max{5000};
  size_t memory_bytes = size_t{64} << 20;
  bool anomalous_only = true;
};

struct FindingSinkCounts {
  uint64_t messages_sent = 0;       // the peer stored them
  uint64_t messages_duplicate = 0;  // the peer had them already (a redelivery)
  uint64_t messages_failed = 0;     // refused for good and dropped
  uint64_t findings_spooled = 0;
  uint64_t findings_sent = 0;
  uint64_t findings_failed = 0;
  uint64_t retries = 0;
  uint64_t skipped_not_finding = 0;
  uint64_t skipped_not_anomalous = 0;
  uint64_t pending_messages = 0;  // spooled, not yet delivered
};

class FindingSink final : public pipeline::Sink {
 public:
  // Validates the options (kInvalidArgument naming the field), opens the spool (its errors,
  // e.g. kFailedPrecondition when another process has it open), queues what it holds for
  // sending (*report, may be nullptr, says what it found) and starts the sender.
  static core::Result<std::unique_ptr<FindingSink>> Open(
      FindingSinkOptions options, std::unique_ptr<FindingTransport> transport,
      core::Registry& registry, pipeline::RecoveryReport* report);
  // Close(0): seals and spools the open message; what is not delivered stays spooled.
  ~FindingSink() override;
  FindingSink(const FindingSink&) = delete;
  FindingSink& operator=(const FindingSink&) = delete;

  // Takes one line (see above for which are kept). kInvalidArgument for a line with a newline
  // or a Detection Finding the hub would refuse (naming the field); a spool error when sealing
  // the previous, full message failed (this line was then not taken; the sealed lines stay
  // buffered and are retried by the next Write or Flush).
  core::Status Write(std::string_view json_line) override;
  // Seals and spools the open message. Does not wait for the peer.
  core::Status Flush() override;
  pipeline::SinkStats Stats() const override;

  // Seals the open message, waits up to `limit` for every spooled message to be delivered,
  // then stops the sender. Returns how many messages stay spooled for the next Open.
  // Idempotent (later calls return the same count without waiting).
  uint64_t Close(std::chrono::milliseconds limit);

  FindingSinkCounts Counts() const;
  const FindingSinkOptions& options() const { return options_; }
  std::string Endpoint() const { return transport_->Endpoint(); }

 private:
  using Message = FindingMessage;

  FindingSink(FindingSinkOptions options, std::unique_ptr<FindingTransport> transport);
  core::Status InitCounters(core::Registry& registry);
  // All with mu_ held.
  core::Status SealLocked();
  void QueueLocked(uint64_t seq, size_t findings, std::string body);
  // A spooled record ("<findings>\n<body>") queued for sending; false when it is not one.
  bool QueueRecordLocked(uint64_t seq, std::string_view record);
  core::Status ReloadLocked();
  void Sender();
  // Hands one message to the transport; true when it is settled (delivered or refused).
  bool Deliver(const Message& m);

  const FindingSinkOptions options_;
  const std::string name_;                       // "sink 'hub'"
  std::unique_ptr<FindingTransport> transport_;  // the sender thread's
  std::string body_prefix_;                      // {"schema_version":...,"host":"H","message_id":"

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a message was queued, or closing
  std::condition_variable idle_cv_;  // the queue ran empty
  std::unique_ptr<pipeline::Spool> spool_;
  std::string open_items_;  // the open message's findings, comma-separated
  size_t open_findings_ = 0;
  std::chrono::steady_clock::time_point open_since_;
  std::deque<Message> queue_;  // sealed, in spool order
  size_t queue_bytes_ = 0;
  uint64_t disk_only_from_ = 0;  // != 0: messages from this seq on are on disk only
  bool stop_ = false;            // the sender gives up (drain time is over)
  bool closed_ = false;
  uint64_t left_after_close_ = 0;
  std::thread sender_;

  std::atomic<uint64_t> write_errors_{0};
  core::Counter* sent_ = nullptr;
  core::Counter* duplicate_ = nullptr;
  core::Counter* failed_ = nullptr;
  core::Counter* findings_spooled_ = nullptr;
  core::Counter* findings_sent_ = nullptr;
  core::Counter* findings_failed_ = nullptr;
  core::Counter* retries_ = nullptr;
  core::Counter* skipped_not_finding_ = nullptr;
  core::Counter* skipped_not_anomalous_ = nullptr;
  core::Gauge* pending_ = nullptr;
};

}  // namespace vigil::agent
