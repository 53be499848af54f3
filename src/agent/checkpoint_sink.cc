#include "agent/checkpoint_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/hub_sink.h"
#include "hub/checkpoint_requests.h"
#include "hub/requests.h"

namespace vigil::agent {

core::Result<std::unique_ptr<CheckpointSink>> CheckpointSink::Open(
    CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport,
    core::Registry& registry, pipeline::RecoveryReport* report) {
  if (!hub::ValidHostId(options.host)) {
    return core::InvalidArgument(
        "checkpoint sink host: expected 1..253 bytes of [A-Za-z0-9._:-], "
        "got '" +
        options.host + "'");
  }
  if (options.capacity < 1 || options.capacity > 1'000'000 || options.retry_initial.count() < 1 ||
      options.retry_max < options.retry_initial) {
    return core::InvalidArgument(
        "checkpoint sink: capacity must be 1..1000000, retry_initial >= 1 ms, retry_max >= "
        "retry_initial");
  }
  if (options.spool_dir.empty()) return core::InvalidArgument("checkpoint sink: no spool_dir");
  if (transport == nullptr) return core::InvalidArgument("checkpoint sink: no transport");
  std::unique_ptr<CheckpointSink> s(new CheckpointSink(std::move(options), std::move(transport)));
  const core::Labels kind = {{"kind", s->options_.kind}};
  auto counter = [&](const char* name, const char* help, const char* label,
                     const char* value) -> core::Result<core::Counter*> {
    core::Labels l = kind;
    l.push_back({label, value});
    return registry.GetCounter(name, help, l);
  };
  const char* kSent = "Audit checkpoints sent to the hub, by outcome";
  const char* kDropped = "Audit checkpoints the sink gave up on, by cause";
  VIGIL_ASSIGN_OR_RETURN(s->sent_, counter("vigil_checkpoint_sink_total", kSent, "result", "sent"));
  VIGIL_ASSIGN_OR_RETURN(s->duplicate_,
                         counter("vigil_checkpoint_sink_total", kSent, "result", "duplicate"));
  VIGIL_ASSIGN_OR_RETURN(
      s->dropped_, counter("vigil_checkpoint_sink_dropped_total", kDropped, "cause", "capacity"));
  VIGIL_ASSIGN_OR_RETURN(
      s->failed_, counter("vigil_checkpoint_sink_dropped_total", kDropped, "cause", "refused"));
  VIGIL_ASSIGN_OR_RETURN(
      s->damaged_, counter("vigil_checkpoint_sink_dropped_total", kDropped, "cause", "damaged"));
  VIGIL_ASSIGN_OR_RETURN(
      s->retries_,
      registry.GetCounter("vigil_checkpoint_sink_retries_total",
                          "Audit checkpoint deliveries that failed and were retried", kind));
  VIGIL_ASSIGN_OR_RETURN(
      s->pending_, registry.GetGauge("vigil_checkpoint_sink_pending",
                                     "Audit checkpoints spooled and not yet delivered", kind));

  pipeline::RecoveryReport local;
  pipeline::RecoveryReport* rep = report != nullptr ? report : &local;
  CheckpointSink* raw = s.get();
  auto spool = pipeline::Spool::Open(
      raw->options_.spool_dir, raw->options_.spool,
      [raw](uint64_t seq, std::string_view record) {
        std::lock_guard lock(raw->mu_);
        raw->QueueLocked(seq, std::string(record));
        return core::Status::Ok();
      },
      rep);
  if (!spool.has_value()) {
    return spool.error().WithContext("checkpoint sink '" + raw->options_.kind + "' spool");
  }
  raw->damaged_->Inc(rep->corrupt_records);
  {
    std::lock_guard lock(raw->mu_);
    raw->spool_ = std::move(spool).value();
    // What was dropped for room while replaying is acknowledged now that the spool is open.
    if (!raw->queue_.empty() && raw->queue_.front().seq > 1) {
      raw->AckLocked(raw->queue_.front().seq - 1);
    }
  }
  s->sender_ = std::thread([raw] { raw->Sender(); });
  return s;
}

CheckpointSink::CheckpointSink(CheckpointSinkOptions options,
                               std::unique_ptr<FindingTransport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

CheckpointSink::~CheckpointSink() { Close(std::chrono::milliseconds(0)); }

void CheckpointSink::AckLocked(uint64_t seq) {
  if (seq == 0 || spool_ == nullptr || seq <= spool_->acked_seq()) return;
  if (core::Status st = spool_->Ack(seq); !st.ok()) {
    // Not fatal: the records are delivered again after a restart, and the hub takes them as
    // duplicates.
    spdlog::warn("checkpoint sink {}: acknowledging in the spool: {}", options_.kind, st.message());
  }
}

void CheckpointSink::QueueLocked(uint64_t seq, std::string body) {
  FindingMessage m;
  auto report = hub::ParseCheckpointRequest(body);
  if (!report.has_value()) {
    // A record the spool's checksum passed but that is not a checkpoint body: never sendable.
    spdlog::error("checkpoint sink {}: spooled record {} is not a checkpoint ({}); dropped",
                  options_.kind, seq, report.error().message());
    damaged_->Inc();
    return;
  }
  m.seq = seq;
  m.id = hub::CheckpointMessageId(*report);
  m.body = std::move(body);
  if (queue_.size() >= options_.capacity) {
    // The oldest goes; when the sender holds it, the sender counts it once it knows whether it
    // was delivered. The sender holds the front only until it is dropped: a second drop during
    // the same delivery is of another checkpoint, counted here.
    const uint64_t front = queue_.front().seq;
    if (busy_ && !busy_dropped_) {
      busy_dropped_ = true;
    } else {
      dropped_->Inc();
    }
    queue_.pop_front();
    AckLocked(front);
  }
  queue_.push_back(std::move(m));
  pending_->Set(static_cast<double>(queue_.size()));
}

void CheckpointSink::Offer(const audit::CheckpointNotice& n) {
  hub::CheckpointReport c;
  static_cast<audit::CheckpointNotice&>(c) = n;
  c.host = options_.host;
  std::string body = hub::CheckpointBody(c);
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    uint64_t seq = 0;
    if (auto appended = spool_->Append(body); appended.has_value()) {
      seq = *appended;
    } else {
      spdlog::error(
          "checkpoint sink {}: spooling checkpoint {}: {}; held in memory only (lost if the "
          "process stops before it is sent)",
          options_.kind, c.seq, appended.error().message());
    }
    QueueLocked(seq, std::move(body));
  }
  work_cv_.notify_one();
}

void CheckpointSink::Sender() {
  std::unique_lock lock(mu_);
  auto backoff = options_.retry_initial;
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    FindingMessage m = queue_.front();
    busy_ = true;
    busy_dropped_ = false;
    lock.unlock();
    const DeliveryOutcome out = transport_->Deliver(m);
    lock.lock();
    busy_ = false;
    const bool delivered = out == DeliveryOutcome::kStored || out == DeliveryOutcome::kDuplicate;
    if (busy_dropped_) {
      // Dropped for room while in flight (and acknowledged then): it counts as what became of it.
      (delivered ? (out == DeliveryOutcome::kDuplicate ? duplicate_ : sent_) : dropped_)->Inc();
      backoff = options_.retry_initial;
      if (queue_.empty()) idle_cv_.notify_all();
      continue;
    }
    if (out == DeliveryOutcome::kRetry) {
      retries_->Inc();
      if (work_cv_.wait_for(lock, backoff, [&] { return stop_; })) return;
      backoff = std::min(backoff * 2, options_.retry_max);
      continue;
    }
    backoff = options_.retry_initial;
    if (out == DeliveryOutcome::kRefused) {
      failed_->Inc();
      spdlog::error("checkpoint sink {}: {} refused {}; dropped", options_.kind,
                    transport_->Endpoint(), m.id);
    } else {
      (out == DeliveryOutcome::kDuplicate ? duplicate_ : sent_)->Inc();
    }
    queue_.pop_front();  // m: only the sender removes the front while it is busy with it
    AckLocked(m.seq);
    pending_->Set(static_cast<double>(queue_.size()));
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

uint64_t CheckpointSink::Close(std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  if (closed_) return left_after_close_;
  closed_ = true;
  idle_cv_.wait_for(lock, limit, [&] { return queue_.empty() && !busy_; });
  stop_ = true;
  lock.unlock();
  work_cv_.notify_all();
  if (sender_.joinable()) sender_.join();
  lock.lock();
  left_after_close_ = queue_.size();
  if (spool_ != nullptr) {
    if (core::Status st = spool_->Sync(); !st.ok()) {
      spdlog::warn("checkpoint sink {}: syncing the spool: {}", options_.kind, st.message());
    }
    spool_.reset();  // releases the directory for the next Open
  }
  return left_after_close_;
}

CheckpointSinkCounts CheckpointSink::Counts() const {
  CheckpointSinkCounts c;
  c.sent = sent_->Value();
  c.duplicate = duplicate_->Value();
  c.failed = failed_->Value();
  c.dropped = dropped_->Value();
  c.damaged = damaged_->Value();
  c.retries = retries_->Value();
  std::lock_guard lock(mu_);
  c.pending = queue_.size();
  return c;
}

namespace {

class AuditKeyRegistering final : public FindingTransport {
 public:
  AuditKeyRegistering(std::unique_ptr<FindingTransport> inner, std::unique_ptr<HubClient> client)
      : inner_(std::move(inner)), client_(std::move(client)) {}

  DeliveryOutcome Deliver(const FindingMessage& m) override {
    auto c = hub::ParseCheckpointRequest(m.body);
    if (c.has_value() && c->key_id + c->public_key != registered_) {
      const std::string body = hub::AuditKeyBody({c->host, {c->key_id, c->public_key}});
      auto reply = client_->Post("/v1/agents/audit-key", body);
      if (!reply.has_value()) {
        spdlog::debug("checkpoint sink: registering audit key {}: {}", c->key_id,
                      reply.error().message());
        return DeliveryOutcome::kRetry;
      }
      if (reply->status == 200) {
        registered_ = c->key_id + c->public_key;
        if (reply->body.is_object() && reply->body.value("changed", false)) {
          spdlog::info("checkpoint sink: registered audit key {} at {}", c->key_id,
                       client_->options().url);
        }
      } else if (reply->status == 400) {
        spdlog::error("checkpoint sink: {} refused audit key {}: {}; checkpoints are sent without",
                      client_->options().url, c->key_id, reply->error);
        registered_ = c->key_id + c->public_key;  // not asked again this run
      } else {
        spdlog::debug("checkpoint sink: registering audit key {}: HTTP {}: {}", c->key_id,
                      reply->status, reply->error);
        return DeliveryOutcome::kRetry;
      }
    }
    return inner_->Deliver(m);
  }

  std::string Endpoint() const override { return inner_->Endpoint(); }

 private:
  std::unique_ptr<FindingTransport> inner_;
  std::unique_ptr<HubClient> client_;
  std::string registered_;  // key_id + public_key registered in this run
};

}  // namespace

std::unique_ptr<FindingTransport> MakeAuditKeyRegistering(std::unique_ptr<FindingTransport> inner,
                                                          std::unique_ptr<HubClient> client) {
  return std::make_unique<AuditKeyRegistering>(std::move(inner), std::move(client));
}

core::Result<std::unique_ptr<FindingTransport>> MakeCheckpointHubTransport(
    const HubLinkOptions& link) {
  VIGIL_ASSIGN_OR_RETURN(auto send, HubClient::Create(link));
  // A key is registered once per run: that connection need not hold one of the hub's threads.
  HubLinkOptions once = link;
  once.keep_alive = false;
  VIGIL_ASSIGN_OR_RETURN(auto keys, HubClient::Create(once));
  return MakeAuditKeyRegistering(MakeHubTransport(std::move(send), "/v1/agents/checkpoints"),
                                 std::move(keys));
}

}  // namespace vigil::agent
