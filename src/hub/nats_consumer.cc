#include "hub/nats_consumer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/config.h"
#include "hub/requests.h"

namespace vigil::hub {

NatsConsumer::NatsConsumer(NatsConsumerOptions options, Store& store, const core::Clock& clock,
                           core::Registry& registry)
    : options_(std::move(options)), store_(store), clock_(clock) {
  const char* kMessages = "Messages taken from the NATS stream, by outcome";
  const char* kErrors = "Failed NATS operations, by operation";
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     core::Counter** out) {
    auto c = registry.GetCounter(name, help, labels);
    if (c.has_value()) {
      *out = *c;
    } else if (init_.ok()) {
      init_ = c.error();
    }
  };
  counter("vigil_hub_nats_messages_total", kMessages, {{"result", "stored"}}, &stored_);
  counter("vigil_hub_nats_messages_total", kMessages, {{"result", "duplicate"}}, &duplicate_);
  counter("vigil_hub_nats_messages_total", kMessages, {{"result", "malformed"}}, &malformed_);
  counter("vigil_hub_nats_messages_total", kMessages, {{"result", "retried"}}, &retried_);
  counter("vigil_hub_nats_errors_total", kErrors, {{"op", "connect"}}, &connect_errors_);
  counter("vigil_hub_nats_errors_total", kErrors, {{"op", "fetch"}}, &fetch_errors_);
  counter("vigil_hub_nats_errors_total", kErrors, {{"op", "ack"}}, &ack_errors_);
  counter("vigil_hub_findings_total", "Findings stored", {}, &findings_);
  auto g = registry.GetGauge("vigil_hub_nats_connected",
                             "1 while the hub is bound to its NATS JetStream consumer");
  if (g.has_value()) {
    connected_gauge_ = *g;
  } else if (init_.ok()) {
    init_ = g.error();
  }
}

NatsConsumer::~NatsConsumer() { Stop(); }

core::Status NatsConsumer::Start() {
  VIGIL_RETURN_IF_ERROR(init_);
  VIGIL_RETURN_IF_ERROR(pipeline::ValidateJetStreamOptions(options_.nats));
  if (!core::IsNatsName(options_.consumer.durable)) {
    return core::InvalidArgument("nats consumer: expected 1..64 of [A-Za-z0-9_-], got '" +
                                 options_.consumer.durable + "'");
  }
  if (options_.batch < 1 || options_.batch > 1000 || options_.fetch_wait.count() < 1 ||
      options_.retry_initial.count() < 1 || options_.retry_max < options_.retry_initial) {
    return core::InvalidArgument(
        "nats consumer: batch must be 1..1000, fetch_wait and retry_initial >= 1 ms, retry_max "
        ">= retry_initial");
  }
  if (thread_.joinable()) return core::FailedPrecondition("nats consumer: already started");
  thread_ = std::thread([this] { Run(); });
  return core::Status::Ok();
}

void NatsConsumer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

NatsConsumerCounts NatsConsumer::Counts() const {
  NatsConsumerCounts c;
  c.stored = stored_->Value();
  c.duplicate = duplicate_->Value();
  c.malformed = malformed_->Value();
  c.retried = retried_->Value();
  c.connect_errors = connect_errors_->Value();
  c.fetch_errors = fetch_errors_->Value();
  c.ack_errors = ack_errors_->Value();
  return c;
}

bool NatsConsumer::Pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

void NatsConsumer::Run() {
  const pipeline::JetStreamOptions& o = options_.nats;
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
      connected_gauge_->Set(0);
      auto c = pipeline::JetStreamConnection::Connect(o);
      core::Status st = c.has_value() ? (*c)->EnsureStream() : c.error();
      if (st.ok()) st = (*c)->BindConsumer(options_.consumer);
      if (!st.ok()) {
        connect_errors_->Inc();
        if (st.message() != last_error) {
          spdlog::warn("hub: nats: {}; retrying", st.message());
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
      connected_gauge_->Set(1);
      spdlog::info("hub: consuming NATS stream {} (subjects {}.*.findings) as durable {} at {}",
                   o.stream, o.subject_prefix, options_.consumer.durable, o.url);
    }
    auto batch = conn->Fetch(options_.batch, options_.fetch_wait);
    if (!batch.has_value()) {
      fetch_errors_->Inc();
      spdlog::warn("hub: nats: {}; reconnecting", batch.error().message());
      conn.reset();
      continue;
    }
    for (pipeline::JetStreamMessage& m : *batch) Handle(m);
  }
  connected_.store(false);
  connected_gauge_->Set(0);
}

void NatsConsumer::Handle(pipeline::JetStreamMessage& m) {
  const std::string subject(m.subject());
  auto reject = [&](const std::string& reason) {
    malformed_->Inc();
    spdlog::error("hub: nats: message on {} (stream sequence {}) refused: {}; terminated", subject,
                  m.stream_seq(), reason);
    if (core::Status st = m.Term(); !st.ok()) {
      ack_errors_->Inc();
      spdlog::warn("hub: nats: {}", st.message());
    }
  };
  const auto host = pipeline::HostOfFindingsSubject(options_.nats.subject_prefix, subject);
  if (!host.has_value()) {
    return reject("the subject is not " + options_.nats.subject_prefix + ".<host>.findings");
  }
  if (m.data().size() > kMaxRequestBytes) {
    return reject("the body is larger than " + std::to_string(kMaxRequestBytes) + " bytes");
  }
  auto msg = ParseIngestRequest(m.data());
  if (!msg.has_value()) return reject(msg.error().message());
  if (msg->host != *host) {
    return reject("the body's host \"" + msg->host + "\" is not the subject's host \"" + *host +
                  "\"");
  }
  auto res = store_.Ingest(*msg, clock_.NowUnixNanos() / 1'000'000);
  if (!res.has_value()) {
    retried_->Inc();
    spdlog::warn("hub: nats: storing message {} of {} failed: {}; it will be delivered again",
                 msg->message_id, msg->host, res.error().message());
    if (core::Status st = m.Nak(options_.nak_delay); !st.ok()) {
      ack_errors_->Inc();
      spdlog::warn("hub: nats: {}", st.message());
    }
    return;
  }
  (res->duplicate ? duplicate_ : stored_)->Inc();
  findings_->Inc(res->findings);
  if (core::Status st = m.Ack(options_.nats.timeout); !st.ok()) {
    ack_errors_->Inc();
    spdlog::warn("hub: nats: {} (stored; a redelivery is a duplicate)", st.message());
  }
}

}  // namespace vigil::hub
