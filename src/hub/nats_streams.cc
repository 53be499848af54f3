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
  NatsPullHooks h;
  h.name = "nats checkpoint consumer";
  h.log_prefix = "hub: nats checkpoints";
  h.kind = "checkpoints";
  h.connect_errors = connect_errors_;
  h.fetch_errors = fetch_errors_;
  h.handle = [this](std::vector<pipeline::JetStreamMessage>& batch) {
    for (pipeline::JetStreamMessage& m : batch) Handle(m);
  };
  return loop_.Start(options_, std::move(h));
}

void NatsCheckpointConsumer::Stop() { loop_.Stop(); }

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
