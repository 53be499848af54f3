#include "agent/checkpoint_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "hub/checkpoint_requests.h"
#include "hub/requests.h"

namespace vigil::agent {

core::Result<std::unique_ptr<CheckpointSink>> CheckpointSink::Open(
    CheckpointSinkOptions options, std::unique_ptr<FindingTransport> transport,
    core::Registry& registry) {
  if (!hub::ValidHostId(options.host)) {
    return core::InvalidArgument(
        "checkpoint sink host: expected 1..253 bytes of [A-Za-z0-9._:-], "
        "got '" +
        options.host + "'");
  }
  if (options.capacity < 1 || options.retry_initial.count() < 1 ||
      options.retry_max < options.retry_initial) {
    return core::InvalidArgument(
        "checkpoint sink: capacity must be >= 1, retry_initial >= 1 ms, retry_max >= "
        "retry_initial");
  }
  if (transport == nullptr) return core::InvalidArgument("checkpoint sink: no transport");
  std::unique_ptr<CheckpointSink> s(new CheckpointSink(std::move(options), std::move(transport)));
  const char* kHelp = "Audit checkpoints sent to the hub, by outcome";
  const core::Labels kind = {{"kind", s->options_.kind}};
  auto counter = [&](const char* result) -> core::Result<core::Counter*> {
    core::Labels l = kind;
    l.push_back({"result", result});
    return registry.GetCounter("vigil_checkpoint_sink_total", kHelp, l);
  };
  VIGIL_ASSIGN_OR_RETURN(s->sent_, counter("sent"));
  VIGIL_ASSIGN_OR_RETURN(s->duplicate_, counter("duplicate"));
  VIGIL_ASSIGN_OR_RETURN(s->failed_, counter("failed"));
  VIGIL_ASSIGN_OR_RETURN(s->dropped_, counter("dropped"));
  VIGIL_ASSIGN_OR_RETURN(
      s->retries_,
      registry.GetCounter("vigil_checkpoint_sink_retries_total",
                          "Audit checkpoint deliveries that failed and were retried", kind));
  s->sender_ = std::thread([raw = s.get()] { raw->Sender(); });
  return s;
}

CheckpointSink::CheckpointSink(CheckpointSinkOptions options,
                               std::unique_ptr<FindingTransport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

CheckpointSink::~CheckpointSink() { Close(std::chrono::milliseconds(0)); }

void CheckpointSink::Offer(const audit::CheckpointNotice& n) {
  hub::CheckpointReport c;
  static_cast<audit::CheckpointNotice&>(c) = n;
  c.host = options_.host;
  FindingMessage m;
  m.id = hub::CheckpointMessageId(c);
  m.body = hub::CheckpointBody(c);
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    m.seq = next_seq_++;
    if (queue_.size() >= options_.capacity) {
      queue_.pop_front();
      dropped_->Inc();
    }
    queue_.push_back(std::move(m));
  }
  work_cv_.notify_one();
}

void CheckpointSink::Sender() {
  std::unique_lock lock(mu_);
  auto backoff = options_.retry_initial;
  std::string last_failure;
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    FindingMessage m = queue_.front();
    busy_ = true;
    lock.unlock();
    const DeliveryOutcome out = transport_->Deliver(m);
    lock.lock();
    busy_ = false;
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
    // The front may have been dropped for room meanwhile: remove this message if it is still there.
    if (!queue_.empty() && queue_.front().seq == m.seq) queue_.pop_front();
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
  return left_after_close_;
}

CheckpointSinkCounts CheckpointSink::Counts() const {
  CheckpointSinkCounts c;
  c.sent = sent_->Value();
  c.duplicate = duplicate_->Value();
  c.failed = failed_->Value();
  c.dropped = dropped_->Value();
  c.retries = retries_->Value();
  std::lock_guard lock(mu_);
  c.pending = queue_.size();
  return c;
}

}  // namespace vigil::agent
