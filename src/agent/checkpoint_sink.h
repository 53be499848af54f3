#pragma once

// The agent's audit checkpoints sent to the hub (docs/hub.md, "Audit checkpoints"): every
// checkpoint its audit log writes (audit::AuditOptions::on_checkpoint) goes, as the body of
// POST /v1/agents/checkpoints (hub/checkpoint_requests.h), over one transport: the hub sink's
// HTTP link (agent/hub_sink.h MakeHubTransport) or the nats sink's stream, on
// "<prefix>.<host>.checkpoints" (agent/nats_sink.h MakeNatsTransport) with message id
// "checkpoint-<seq>-<hash prefix>", so that a resend is a duplicate at the stream and at the hub.
//
// Offer() never blocks the log's writer: the checkpoint is appended to a durable spool
// (pipeline::Spool in `spool_dir`, one record per checkpoint: its body) and queued in memory, and
// one sender thread delivers the queue in spool order, retrying with exponential backoff
// (retry_initial doubling to retry_max) while the transport says "retry"; each delivered (or
// refused) checkpoint is acknowledged in the spool. At Open(), what an earlier run spooled and did
// not deliver is queued first, in its order: a restart or a long hub outage loses nothing that
// fits. A resend after a lost answer or a crash carries the same body and message id, and the hub
// stores a checkpoint once per (host, covers, chain hash), so it is stored once.
//
// Bounds: at most `capacity` checkpoints wait; beyond that the oldest is dropped (acknowledged
// unsent): the hub needs the newest most. A spool that cannot be written (a full disk) keeps the
// checkpoint in memory only (logged): it is still sent while the process lives.
//
// Counters: vigil_checkpoint_sink_total{kind=KIND,result="sent"|"duplicate"},
// vigil_checkpoint_sink_dropped_total{kind=KIND,cause="capacity"|"refused"|"damaged"} (refused:
// the peer will never take it; damaged: lost in a damaged spool region or unreadable there),
// vigil_checkpoint_sink_retries_total{kind=KIND}, and the gauge
// vigil_checkpoint_sink_pending{kind=KIND}.
//
// Before delivering a checkpoint signed by a key it has not registered yet in this run, the
// transport from MakeAuditKeyRegistering registers that key as the host's audit key over an
// authenticated hub link (POST /v1/agents/audit-key, gRPC RegisterAuditKey: the hub binds it to
// the token's subject or the certificate's host), so hosts without a fleet link (`vigil
// gateway`, NATS-only hosts given a hub link) get "verified" checkpoints too.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/finding_sink.h"
#include "agent/hub_client.h"
#include "audit/audit_log.h"
#include "core/metrics.h"
#include "core/status.h"
#include "pipeline/spool.h"

namespace vigil::agent {

struct CheckpointSinkOptions {
  std::string kind = "hub";  // names the sink in logs and counters ("hub" or "nats")
  std::string host;          // this host's id (the bodies' "host"): hub::ValidHostId
  std::string spool_dir;     // required; created when absent (its parent must exist)
  pipeline::SpoolOptions spool;
  size_t capacity = 1024;  // 1 .. 1,000,000 checkpoints waiting
  std::chrono::milliseconds retry_initial{200};
  std::chrono::milliseconds retry_max{5000};
};

struct CheckpointSinkCounts {
  uint64_t sent = 0, duplicate = 0, retries = 0;
  uint64_t failed = 0;   // dropped: refused by the peer
  uint64_t dropped = 0;  // dropped: over capacity
  uint64_t damaged = 0;  // dropped: lost or unreadable in the spool
  uint64_t pending = 0;  // spooled (or held) and not yet delivered
};

class CheckpointSink {
 public:
  // kInvalidArgument naming the field for bad options; the spool's errors (kFailedPrecondition
  // when another process has it open); queues what the spool holds (*report, may be nullptr,
  // says what it found) and starts the sender.
  static core::Result<std::unique_ptr<CheckpointSink>> Open(
      CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport,
      core::Registry& registry, pipeline::RecoveryReport* report);
  ~CheckpointSink();  // Close(0)
  CheckpointSink(const CheckpointSink&) = delete;
  CheckpointSink& operator=(const CheckpointSink&) = delete;

  // Queues one checkpoint; never blocks (beyond a short lock). Thread-safe. Ignored once closed.
  void Offer(const audit::CheckpointNotice& c);
  // Waits up to `limit` for the queue to be delivered, then stops the sender; returns how many
  // checkpoints were left undelivered (those spooled go first at the next Open). Idempotent
  // (later calls return the same count).
  uint64_t Close(std::chrono::milliseconds limit);

  CheckpointSinkCounts Counts() const;
  std::string Endpoint() const { return transport_->Endpoint(); }
  const std::string& kind() const { return options_.kind; }

 private:
  CheckpointSink(CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport);
  void Sender();
  // With mu_ held: queues a spooled (seq != 0) or memory-only (seq == 0) checkpoint body, dropping
  // the oldest when full.
  void QueueLocked(uint64_t seq, std::string body);
  // With mu_ held: acknowledges everything up to `seq` in the spool (0: nothing).
  void AckLocked(uint64_t seq);

  const CheckpointSinkOptions options_;
  std::unique_ptr<FindingTransport> transport_;  // the sender thread's

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::unique_ptr<pipeline::Spool> spool_;
  std::deque<FindingMessage> queue_;  // waiting, in spool order
  bool busy_ = false;                 // the sender holds a message it took from the queue
  bool busy_dropped_ = false;         // ... and it was dropped for room meanwhile
  bool stop_ = false;
  bool closed_ = false;
  uint64_t left_after_close_ = 0;
  std::thread sender_;

  core::Counter* sent_ = nullptr;
  core::Counter* duplicate_ = nullptr;
  core::Counter* failed_ = nullptr;
  core::Counter* dropped_ = nullptr;
  core::Counter* damaged_ = nullptr;
  core::Counter* retries_ = nullptr;
  core::Gauge* pending_ = nullptr;
};

// A transport that, before handing a checkpoint to `inner`, registers the key that signed it as
// this host's audit key through `client` (POST /v1/agents/audit-key), once per key per run. No
// answer, 401, 403, 429 or 5xx: the checkpoint is retried (kRetry); another refusal (400) is
// logged and the checkpoint delivered anyway (the hub then judges it without that key).
std::unique_ptr<FindingTransport> MakeAuditKeyRegistering(std::unique_ptr<FindingTransport> inner,
                                                          std::unique_ptr<HubClient> client);
// The hub link's checkpoint transport: POST /v1/agents/checkpoints (agent/hub_sink.h
// MakeHubTransport) with the key registered first (above), both over `link`. Fails as
// HubClient::Create does.
core::Result<std::unique_ptr<FindingTransport>> MakeCheckpointHubTransport(
    const HubLinkOptions& link);

}  // namespace vigil::agent
