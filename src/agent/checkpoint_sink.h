#pragma once

// The agent's audit checkpoints sent to the hub (docs/hub.md, "Audit checkpoints"): every
// checkpoint its audit log writes (audit::AuditOptions::on_checkpoint) goes, as the body of
// POST /v1/agents/checkpoints (hub/checkpoint_requests.h), over one transport: the hub sink's
// HTTP link (agent/hub_sink.h MakeHubTransport) or the nats sink's stream, on
// "<prefix>.<host>.checkpoints" (agent/nats_sink.h MakeNatsTransport) with message id
// "checkpoint-<seq>-<hash prefix>", so that a resend is a duplicate at the stream and at the hub.
//
// Offer() never blocks the log's writer: the checkpoint is queued in memory and one sender
// thread delivers the queue in order, retrying with exponential backoff (retry_initial doubling
// to retry_max) while the transport says "retry"; a refusal is logged, counted and dropped.
// Beyond `capacity` queued checkpoints the oldest is dropped (counted): the hub needs the newest
// most. Not built: a spool: checkpoints still queued when the agent stops are not sent by the
// next run (the hub then lacks them; its fork and rollback checks work on the ones it has).
//
// Counters: vigil_checkpoint_sink_total{kind=KIND,result="sent"|"duplicate"|"failed"|"dropped"},
// vigil_checkpoint_sink_retries_total{kind=KIND}.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/finding_sink.h"
#include "audit/audit_log.h"
#include "core/metrics.h"
#include "core/status.h"

namespace vigil::agent {

struct CheckpointSinkOptions {
  std::string kind = "hub";  // names the sink in logs and counters ("hub" or "nats")
  std::string host;          // this host's id (the bodies' "host"): hub::ValidHostId
  size_t capacity = 1024;    // >= 1
  std::chrono::milliseconds retry_initial{200};
  std::chrono::milliseconds retry_max{5000};
};

struct CheckpointSinkCounts {
  uint64_t sent = 0, duplicate = 0, failed = 0, dropped = 0, retries = 0;
  uint64_t pending = 0;
};

class CheckpointSink {
 public:
  // kInvalidArgument naming the field for bad options; starts the sender.
  static core::Result<std::unique_ptr<CheckpointSink>> Open(
      CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport,
      core::Registry& registry);
  ~CheckpointSink();  // Close(0)
  CheckpointSink(const CheckpointSink&) = delete;
  CheckpointSink& operator=(const CheckpointSink&) = delete;

  // Queues one checkpoint; never blocks (beyond a short lock). Thread-safe. Ignored once closed.
  void Offer(const audit::CheckpointNotice& c);
  // Waits up to `limit` for the queue to be delivered, then stops the sender; returns how many
  // checkpoints were left undelivered. Idempotent (later calls return the same count).
  uint64_t Close(std::chrono::milliseconds limit);

  CheckpointSinkCounts Counts() const;
  std::string Endpoint() const { return transport_->Endpoint(); }
  const std::string& kind() const { return options_.kind; }

 private:
  CheckpointSink(CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport);
  void Sender();

  const CheckpointSinkOptions options_;
  std::unique_ptr<FindingTransport> transport_;  // the sender thread's

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<FindingMessage> queue_;
  bool busy_ = false;  // the sender holds a message it took from the queue
  bool stop_ = false;
  bool closed_ = false;
  uint64_t left_after_close_ = 0;
  uint64_t next_seq_ = 1;
  std::thread sender_;

  core::Counter* sent_ = nullptr;
  core::Counter* duplicate_ = nullptr;
  core::Counter* failed_ = nullptr;
  core::Counter* dropped_ = nullptr;
  core::Counter* retries_ = nullptr;
};

}  // namespace vigil::agent
