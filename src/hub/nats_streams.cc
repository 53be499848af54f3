#include "hub/nats_streams.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/config.h"
#include "hub/checkpoint_requests.h"

namespace vigil::hub {

NatsCheckpointConsumer::NatsCheckpointConsumer(NatsCheckpointOptions options, CheckpointBook& book,
                                               core::Registry& registry)
    : options_(std::move(options)), book_(book) {
  options_.consumer.kind = "checkpoints";
  const char* kMessages = "Audit checkpoint messages taken from the NATS stream, by outcome";
  const char* kErrors = "Failed NATS operations of the checkpoint consumer, by operation";
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     core::Counter** out) {
    auto c = registry.GetCounter(name, help, labels);
    if (c.has_value()) {
      *out = *c;
    } else if (init_.ok()) {
      init_ = c.error();
    }
  };
  const char* kM = "vigil_hub_nats_checkpoint_messages_total";
  const char* kE = "vigil_hub_nats_checkpoint_errors_total";
  counter(kM, kMessages, {{"result", "stored"}}, &stored_);
  counter(kM, kMessages, {{"result", "duplicate"}}, &duplicate_);
  counter(kM, kMessages, {{"result", "malformed"}}, &malformed_);
  counter(kM, kMessages, {{"result", "retried"}}, &retried_);
  counter(kE, kErrors, {{"op", "connect"}}, &connect_errors_);
  counter(kE, kErrors, {{"op", "fetch"}}, &fetch_errors_);
  counter(kE, kErrors, {{"op", "ack"}}, &ack_errors_);
}

NatsCheckpointConsumer::~NatsCheckpointConsumer() { Stop(); }

core::Status NatsCheckpointConsumer::Start() {
  VIGIL_RETURN_IF_ERROR(init_);
  VIGIL_RETURN_IF_ERROR(pipeline::ValidateJetStreamOptions(options_.nats));
  if (!core::IsNatsName(options_.consumer.durable)) {
    return core::InvalidArgument(
        "nats checkpoint consumer: expected 1..64 of [A-Za-z0-9_-], got '" +
        options_.consumer.durable + "'");
  }
  if (options_.batch < 1 || options_.batch > 1000 || options_.fetch_wait.count() < 1 ||
      options_.retry_initial.count() < 1 || options_.retry_max < options_.retry_initial) {
    return core::InvalidArgument(
        "nats checkpoint consumer: batch must be 1..1000, fetch_wait and retry_initial >= 1 ms, "
        "retry_max >= retry_initial");
  }
  if (thread_.joinable()) {
    return core::FailedPrecondition("nats checkpoint consumer: already started");
  }
  thread_ = std::thread([this] { Run(); });
  return core::Status::Ok();
}

void NatsCheckpointConsumer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

NatsCheckpointCounts NatsCheckpointConsumer::Counts() const {
  NatsCheckpointCounts c;
  c.stored = stored_->Value();
  c.duplicate = duplicate_->Value();
  c.malformed = malformed_->Value();
  c.retried = retried_->Value();
  c.connect_errors = connect_errors_->Value();
  c.fetch_errors = fetch_errors_->Value();
  c.ack_errors = ack_errors_->Value();
  return c;
}

bool NatsCheckpointConsumer::Pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

void NatsCheckpointConsumer::Run() {
  std::unique_ptr<pipeline::JetStreamConnection> conn;
  auto backoff = options_.retry_initial;
  std::string last_error;
  auto stopping = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  };
  while (!stopping()) {
    if (conn == nullptr || !conn->connected()) {
      conn.reset();
      connected_.store(false);
      auto c = pipeline::JetStreamConnection::Connect(options_.nats);
      core::Status st = c.has_value() ? (*c)->EnsureStream() : c.error();
      if (st.ok()) st = (*c)->BindConsumer(options_.consumer);
      if (!st.ok()) {
        connect_errors_->Inc();
        if (st.message() != last_error) {
          spdlog::warn("hub: nats checkpoints: {}; retrying", st.message());
          last_error = st.message();
        }
        if (!Pause(backoff)) break;
        backoff = std::min(backoff * 2, options_.retry_max);
        continue;
      }
      conn = std::move(c).value();
      backoff = options_.retry_initial;
      last_error.clear();
      connected_.store(true);
      spdlog::info("hub: consuming NATS stream {} (subjects {}.*.checkpoints) as durable {}",
                   options_.nats.stream, options_.nats.subject_prefix, options_.consumer.durable);
    }
    auto batch = conn->Fetch(options_.batch, options_.fetch_wait);
    if (!batch.has_value()) {
      fetch_errors_->Inc();
      spdlog::warn("hub: nats checkpoints: {}; reconnecting", batch.error().message());
      conn.reset();
      continue;
    }
    for (pipeline::JetStreamMessage& m : *batch) Handle(m);
  }
  connected_.store(false);
}

void NatsCheckpointConsumer::Handle(pipeline::JetStreamMessage& m) {
  auto settle = [this](core::Status st) {
    if (!st.ok()) {
      ack_errors_->Inc();
      spdlog::warn("hub: nats checkpoints: {}", st.message());
    }
  };
  const auto host =
      pipeline::HostOfSubject(options_.nats.subject_prefix, m.subject(), "checkpoints");
  core::Result<CheckpointReport> c =
      host.has_value()
          ? ParseCheckpointRequest(m.data())
          : core::InvalidArgument("the subject is not " + options_.nats.subject_prefix +
                                  ".<host>.checkpoints");
  if (c.has_value() && c->host != *host) {
    c = core::InvalidArgument("the body's host \"" + c->host + "\" is not the subject's host \"" +
                              *host + "\"");
  }
  if (!c.has_value()) {
    malformed_->Inc();
    spdlog::error(
        "hub: nats: checkpoint message on {} (stream sequence {}) refused: {}; "
        "terminated",
        m.subject(), m.stream_seq(), c.error().message());
    return settle(m.Term());
  }
  auto put = book_.Accept(*c);
  if (!put.has_value()) {
    retried_->Inc();
    spdlog::warn("hub: nats: storing checkpoint {} of {} failed: {}; it will be delivered again",
                 c->seq, c->host, put.error().message());
    return settle(m.Nak(options_.nak_delay));
  }
  (put->duplicate ? duplicate_ : stored_)->Inc();
  settle(m.Ack(options_.nats.timeout));
}

}  // namespace vigil::hub
