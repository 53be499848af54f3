#pragma once

// HubSink: the agent's findings sent to a hub (`--sink hub:URL`, docs/hub.md "The agent's hub
// sink"). Lines are the sinks' JSON Lines; the sink keeps the OCSF Detection Findings (class
// 2004) — decisions, and verdicts that are anomalous (all verdicts with anomalous_only off) —
// and skips the rest (counted). Kept findings are collected into messages of at most
// `batch_findings` findings / `batch_bytes` bytes; a message is sealed when it is full, on
// Flush(), or `batch_delay` after its first finding, and then
//
//   1. appended to a durable spool (pipeline::Spool in `spool_dir`) as one record, the exact
//      body that is posted, with a message id that is the SHA-256 of the host and the findings:
//      a redelivery (after a lost answer, a retry, a restart) carries the same id, and the hub's
//      ingestion is idempotent per (host, message id), so no finding is stored twice;
//   2. posted to POST /v1/ingest by one sender thread, in spool order; on an answer of 200 the
//      record is acknowledged in the spool. While the hub is unreachable or answers 401, 403,
//      429 or 5xx, the message is retried with exponential backoff (retry_initial doubling to
//      retry_max) and everything after it waits, spooled; a 400 or 413 (the hub will never take
//      it) is logged, counted as failed and acknowledged so that it does not block the rest.
//
// A message survives a crash from the moment Flush() (or the Write that sealed it) returned;
// lines not sealed yet are lost with the process, as with every buffered sink. At Open(), what
// an earlier run spooled and did not deliver is sent first.
//
// Memory: sealed messages are kept in memory for the sender up to `memory_bytes`; beyond that
// they are only on disk, and the sender reads them back (by reopening the spool) once it has
// sent what it holds.
//
// Counters (the registry given to Open):
//   vigil_hub_sink_messages_total{result="sent"|"duplicate"|"failed"}   answers to posts
//   vigil_hub_sink_findings_total{result="spooled"|"sent"|"failed"}
//   vigil_hub_sink_retries_total                 posts that failed and will be retried
//   vigil_hub_sink_lines_skipped_total{cause="not-a-finding"|"not-anomalous"}
//   vigil_hub_sink_spooled_messages              gauge: sealed and not yet delivered
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

#include "agent/hub_client.h"
#include "core/metrics.h"
#include "core/status.h"
#include "pipeline/sink.h"
#include "pipeline/spool.h"

namespace vigil::agent {

struct HubSinkOptions {
  HubLinkOptions link;
  std::string spool_dir;  // created when absent (its parent must exist)
  pipeline::SpoolOptions spool;
  size_t batch_findings = 500;           // 1 .. 10000 (the hub's limit per message)
  size_t batch_bytes = size_t{4} << 20;  // 1 KiB .. 6 MiB (the hub takes 8 MiB bodies)
  std::chrono::milliseconds batch_delay{1000};
  std::chrono::milliseconds retry_initial{200};
  std::chrono::milliseconds retry_max{5000};
  size_t memory_bytes = size_t{64} << 20;
  bool anomalous_only = true;
};

struct HubSinkCounts {
  uint64_t messages_sent = 0;       // the hub stored them
  uint64_t messages_duplicate = 0;  // the hub had them already (a redelivery)
  uint64_t messages_failed = 0;     // refused for good (400/413) and dropped
  uint64_t findings_spooled = 0;
  uint64_t findings_sent = 0;
  uint64_t findings_failed = 0;
  uint64_t retries = 0;
  uint64_t skipped_not_finding = 0;
  uint64_t skipped_not_anomalous = 0;
  uint64_t pending_messages = 0;  // spooled, not yet delivered
};

class HubSink final : public pipeline::Sink {
 public:
  // Validates the options (kInvalidArgument naming the field), opens the spool (its errors,
  // e.g. kFailedPrecondition when another process has it open), queues what it holds for
  // sending (*report, may be nullptr, says what it found) and starts the sender.
  static core::Result<std::unique_ptr<HubSink>> Open(HubSinkOptions options,
                                                     core::Registry& registry,
                                                     pipeline::RecoveryReport* report);
  // Close(0): seals and spools the open message; what is not delivered stays spooled.
  ~HubSink() override;
  HubSink(const HubSink&) = delete;
  HubSink& operator=(const HubSink&) = delete;

  // Takes one line (see above for which are kept). kInvalidArgument for a line with a newline
  // or a Detection Finding the hub would refuse (naming the field); a spool error when sealing
  // the previous, full message failed (this line was then not taken; the sealed lines stay
  // buffered and are retried by the next Write or Flush).
  core::Status Write(std::string_view json_line) override;
  // Seals and spools the open message. Does not wait for the hub.
  core::Status Flush() override;
  pipeline::SinkStats Stats() const override;

  // Seals the open message, waits up to `limit` for every spooled message to be delivered,
  // then stops the sender. Returns how many messages stay spooled for the next Open.
  // Idempotent (later calls return the same count without waiting).
  uint64_t Close(std::chrono::milliseconds limit);

  HubSinkCounts Counts() const;

 private:
  struct Message {
    uint64_t seq = 0;
    size_t findings = 0;
    std::string body;
  };

  explicit HubSink(HubSinkOptions options);
  core::Status InitCounters(core::Registry& registry);
  // All with mu_ held.
  core::Status SealLocked();
  void QueueLocked(uint64_t seq, size_t findings, std::string body);
  core::Status ReloadLocked();
  void Sender();
  // Posts one message; true when it is settled (delivered or refused for good).
  bool Deliver(const Message& m);

  const HubSinkOptions options_;
  std::unique_ptr<HubClient> client_;  // the sender thread's
  std::string body_prefix_;            // {"schema_version":...,"host":"H","message_id":"

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
