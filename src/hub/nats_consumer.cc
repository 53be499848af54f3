#include "hub/nats_consumer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/config.h"
#include "hub/requests.h"

namespace vigil::hub {

NatsConsumer::NatsConsumer(NatsConsumerOptions options, Store& store, const core::Clock& clock,
                           core::Registry& registry)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      counters_(registry, "vigil_hub_nats", "Messages taken from the NATS stream, by outcome",
                "Failed NATS operations, by operation"),
      init_(counters_.status) {
  auto f = registry.GetCounter("vigil_hub_findings_total", "Findings stored", {});
  if (f.has_value()) {
    findings_ = *f;
  } else if (init_.ok()) {
    init_ = f.error();
  }
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
  if (store_thread_.joinable()) return core::FailedPrecondition("nats consumer: already started");
  NatsPullHooks h;
  h.name = "nats consumer";
  h.log_prefix = "hub: nats";
  h.kind = "findings";
  h.connect_errors = counters_.connect_errors;
  h.fetch_errors = counters_.fetch_errors;
  h.on_connected = [this](bool c) { connected_gauge_->Set(c ? 1 : 0); };
  h.handle = [this](std::vector<pipeline::JetStreamMessage>& batch) { HandleBatch(batch); };
  h.drain = [this] { Drain(); };
  {
    std::lock_guard lock(mu_);
    stop_store_ = false;
  }
  store_thread_ = std::thread([this] { StoreLoop(); });
  core::Status st = loop_.Start(options_, std::move(h));
  if (!st.ok()) {
    {
      std::lock_guard lock(mu_);
      stop_store_ = true;
    }
    cv_.notify_all();
    store_thread_.join();
  }
  return st;
}

void NatsConsumer::Stop() {
  loop_.Stop();  // drains: what was handed to the store thread is settled
  {
    std::lock_guard lock(mu_);
    stop_store_ = true;
  }
  cv_.notify_all();
  if (store_thread_.joinable()) store_thread_.join();
}

NatsConsumerCounts NatsConsumer::Counts() const { return counters_.Read(); }

namespace {

void SettleFailed(core::Counter* ack_errors, const core::Status& st) {
  if (!st.ok()) {
    ack_errors->Inc();
    spdlog::warn("hub: nats: {}", st.message());
  }
}

}  // namespace

void NatsConsumer::HandleBatch(std::vector<pipeline::JetStreamMessage>& batch) {
  // The well-formed messages of the batch, parsed, and where each came from.
  Parsed p;
  p.msgs.reserve(batch.size());
  p.from.reserve(batch.size());
  for (pipeline::JetStreamMessage& m : batch) {
    auto msg = Parse(m);
    if (!msg.has_value()) {
      counters_.malformed->Inc();
      spdlog::error("hub: nats: message on {} (stream sequence {}) refused: {}; terminated",
                    m.subject(), m.stream_seq(), msg.error().message());
      SettleFailed(counters_.ack_errors, m.Term());
      continue;
    }
    p.msgs.push_back(std::move(msg).value());
    p.from.push_back(std::move(m));
  }
  if (p.msgs.empty()) return;
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !next_.has_value(); });
  next_ = std::move(p);
  cv_.notify_all();
  cv_.wait(lock, [this] { return !next_.has_value(); });
}

void NatsConsumer::Drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !next_.has_value() && !storing_; });
}

void NatsConsumer::StoreLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Stop() sets stop_store_ after the loop's thread drained: nothing is left in next_ then.
    cv_.wait(lock, [this] { return next_.has_value() || stop_store_; });
    if (!next_.has_value()) return;
    Parsed p = std::move(*next_);
    next_.reset();
    storing_ = true;
    cv_.notify_all();
    lock.unlock();
    StoreBatch(p);
    p = Parsed();  // the messages go before the loop's thread may drop their connection
    lock.lock();
    storing_ = false;
    cv_.notify_all();
  }
}

void NatsConsumer::StoreBatch(Parsed& p) {
  auto settle = [this](const core::Status& st) { SettleFailed(counters_.ack_errors, st); };
  std::vector<IngestMessage>& msgs = p.msgs;
  std::vector<pipeline::JetStreamMessage>& from = p.from;
  auto stored = store_.IngestBatch(msgs, clock_.NowUnixNanos() / 1'000'000);
  if (!stored.has_value() && stored.error().code() == core::StatusCode::kInvalidArgument &&
      msgs.size() > 1) {
    // The store refused data of one of them: each alone, so that only that one is retried.
    spdlog::warn("hub: nats: storing a batch of {} messages failed: {}; storing them one by one",
                 msgs.size(), stored.error().message());
    for (size_t i = 0; i < msgs.size(); ++i) {
      auto one = store_.Ingest(msgs[i], clock_.NowUnixNanos() / 1'000'000);
      if (one.has_value()) {
        Settled(msgs[i], *one, from[i], /*confirm=*/true);
        continue;
      }
      counters_.retried->Inc();
      spdlog::warn("hub: nats: storing message {} of {} failed: {}; it will be delivered again",
                   msgs[i].message_id, msgs[i].host, one.error().message());
      settle(from[i].Nak(options_.nak_delay));
    }
    return;
  }
  if (!stored.has_value()) {
    // The store failed (unavailable, or refused the one message): all of it comes again.
    spdlog::warn(
        "hub: nats: storing {} message(s), the first {} of {}, failed: {}; they will be "
        "delivered again",
        msgs.size(), msgs[0].message_id, msgs[0].host, stored.error().message());
    for (pipeline::JetStreamMessage& m : from) {
      counters_.retried->Inc();
      settle(m.Nak(options_.nak_delay));
    }
    return;
  }
  // Committed: the acknowledgements go out together; the server's answer to the last one (it
  // handles a connection's acknowledgements in order) confirms them all.
  for (size_t i = 0; i < msgs.size(); ++i) {
    Settled(msgs[i], (*stored)[i], from[i], /*confirm=*/i + 1 == msgs.size());
  }
}

void NatsConsumer::Settled(const IngestMessage& msg, const IngestResult& r,
                           pipeline::JetStreamMessage& m, bool confirm) {
  (r.duplicate ? counters_.duplicate : counters_.stored)->Inc();
  findings_->Inc(r.findings);
  if (options_.on_stored) options_.on_stored(msg, r);
  if (core::Status st = confirm ? m.Ack(options_.nats.timeout) : m.AckNoWait(); !st.ok()) {
    counters_.ack_errors->Inc();
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
