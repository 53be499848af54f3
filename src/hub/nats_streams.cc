#include "hub/nats_streams.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/config.h"
#include "hub/checkpoint_requests.h"

namespace vigil::hub {

NatsCheckpointConsumer::NatsCheckpointConsumer(NatsCheckpointOptions options, CheckpointBook& book,
                                               core::Registry& registry)
    : options_(std::move(options)),
      book_(book),
      counters_(registry, "vigil_hub_nats_checkpoint",
                "Audit checkpoint messages taken from the NATS stream, by outcome",
                "Failed NATS operations of the checkpoint consumer, by operation") {
  options_.consumer.kind = "checkpoints";
}

NatsCheckpointConsumer::~NatsCheckpointConsumer() { Stop(); }

core::Status NatsCheckpointConsumer::Start() {
  VIGIL_RETURN_IF_ERROR(counters_.status);
  NatsPullHooks h;
  h.name = "nats checkpoint consumer";
  h.log_prefix = "hub: nats checkpoints";
  h.kind = "checkpoints";
  h.connect_errors = counters_.connect_errors;
  h.fetch_errors = counters_.fetch_errors;
  h.handle = [this](std::vector<pipeline::JetStreamMessage>& batch) {
    for (pipeline::JetStreamMessage& m : batch) Handle(m);
  };
  return loop_.Start(options_, std::move(h));
}

void NatsCheckpointConsumer::Stop() { loop_.Stop(); }

NatsCheckpointCounts NatsCheckpointConsumer::Counts() const { return counters_.Read(); }

void NatsCheckpointConsumer::Handle(pipeline::JetStreamMessage& m) {
  auto settle = [this](core::Status st) {
    if (!st.ok()) {
      counters_.ack_errors->Inc();
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
    counters_.malformed->Inc();
    spdlog::error(
        "hub: nats: checkpoint message on {} (stream sequence {}) refused: {}; "
        "terminated",
        m.subject(), m.stream_seq(), c.error().message());
    return settle(m.Term());
  }
  auto put = book_.Accept(*c);
  if (!put.has_value()) {
    counters_.retried->Inc();
    spdlog::warn("hub: nats: storing checkpoint {} of {} failed: {}; it will be delivered again",
                 c->seq, c->host, put.error().message());
    return settle(m.Nak(options_.nak_delay));
  }
  (put->duplicate ? counters_.duplicate : counters_.stored)->Inc();
  settle(m.Ack(options_.nats.timeout));
}

}  // namespace vigil::hub
