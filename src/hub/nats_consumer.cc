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
    HandleBatch(*batch);
  }
  connected_.store(false);
  connected_gauge_->Set(0);
}

void NatsConsumer::HandleBatch(std::vector<pipeline::JetStreamMessage>& batch) {
  auto settle = [this](core::Status st) {
    if (!st.ok()) {
      ack_errors_->Inc();
      spdlog::warn("hub: nats: {}", st.message());
    }
  };
  // The well-formed messages of the batch, parsed, and where each came from.
  std::vector<IngestMessage> msgs;
  std::vector<pipeline::JetStreamMessage*> from;
  msgs.reserve(batch.size());
  for (pipeline::JetStreamMessage& m : batch) {
    auto msg = Parse(m);
    if (!msg.has_value()) {
      malformed_->Inc();
      spdlog::error("hub: nats: message on {} (stream sequence {}) refused: {}; terminated",
                    m.subject(), m.stream_seq(), msg.error().message());
      settle(m.Term());
      continue;
    }
    msgs.push_back(std::move(msg).value());
    from.push_back(&m);
  }
  if (msgs.empty()) return;
  auto stored = store_.IngestBatch(msgs, clock_.NowUnixNanos() / 1'000'000);
  if (!stored.has_value() && stored.error().code() == core::StatusCode::kInvalidArgument &&
      msgs.size() > 1) {
    // The store refused data of one of them: each alone, so that only that one is retried.
    spdlog::warn("hub: nats: storing a batch of {} messages failed: {}; storing them one by one",
                 msgs.size(), stored.error().message());
    for (size_t i = 0; i < msgs.size(); ++i) {
      auto one = store_.Ingest(msgs[i], clock_.NowUnixNanos() / 1'000'000);
      if (one.has_value()) {
        Settled(msgs[i], *one, *from[i], /*confirm=*/true);
        continue;
      }
      retried_->Inc();
      spdlog::warn("hub: nats: storing message {} of {} failed: {}; it will be delivered again",
                   msgs[i].message_id, msgs[i].host, one.error().message());
      settle(from[i]->Nak(options_.nak_delay));
    }
    return;
  }
  if (!stored.has_value()) {
    // The store failed (unavailable, or refused the one message): all of it comes again.
    spdlog::warn(
        "hub: nats: storing {} message(s), the first {} of {}, failed: {}; they will be "
        "delivered again",
        msgs.size(), msgs[0].message_id, msgs[0].host, stored.error().message());
    for (pipeline::JetStreamMessage* m : from) {
      retried_->Inc();
      settle(m->Nak(options_.nak_delay));
    }
    return;
  }
  // Committed: the acknowledgements go out together; the server's answer to the last one (it
  // handles a connection's acknowledgements in order) confirms them all.
  for (size_t i = 0; i < msgs.size(); ++i) {
    Settled(msgs[i], (*stored)[i], *from[i], /*confirm=*/i + 1 == msgs.size());
  }
}

void NatsConsumer::Settled(const IngestMessage& msg, const IngestResult& r,
                           pipeline::JetStreamMessage& m, bool confirm) {
  (r.duplicate ? duplicate_ : stored_)->Inc();
  findings_->Inc(r.findings);
  if (options_.on_stored) options_.on_stored(msg, r);
  if (core::Status st = confirm ? m.Ack(options_.nats.timeout) : m.AckNoWait(); !st.ok()) {
    ack_errors_->Inc();
    spdlog::warn("hub: nats: {} (stored; a redelivery is a duplicate)", st.message());
  }
}

core::Result<IngestMessage> NatsConsumer::Parse(const pipeline::JetStreamMessage& m) const {
  const auto host = pipeline::HostOfFindingsSubject(options_.nats.subject_prefix, m.subject());
  if (!host.has_value()) {
    return core::InvalidArgument("the subject is not " + options_.nats.subject_prefix +
                                 ".<host>.findings");
  }
  if (m.data().size() > kMaxRequestBytes) {
    return core::InvalidArgument("the body is larger than " + std::to_string(kMaxRequestBytes) +
                                 " bytes");
  }
  auto msg = ParseIngestRequest(m.data());
  if (!msg.has_value()) return msg.error();
  if (msg->host != *host) {
    return core::InvalidArgument("the body's host \"" + msg->host +
                                 "\" is not the subject's host \"" + *host + "\"");
  }
  return msg;
}

}  // namespace vigil::hub
