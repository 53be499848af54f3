#include "agent/nats_sink.h"

#include <spdlog/spdlog.h>

namespace vigil::agent {
namespace {

class NatsTransport final : public FindingTransport {
 public:
  NatsTransport(pipeline::JetStreamOptions options, std::string subject)
      : options_(std::move(options)), subject_(std::move(subject)) {}

  DeliveryOutcome Deliver(const FindingMessage& m) override {
    if (conn_ != nullptr && !conn_->connected()) conn_.reset();
    if (conn_ == nullptr) {
      auto c = pipeline::JetStreamConnection::Connect(options_);
      if (!c.has_value()) return Failed(c.error());
      if (core::Status st = (*c)->EnsureStream(); !st.ok()) return Failed(st);
      conn_ = std::move(c).value();
      error_.clear();
    }
    if (m.id.empty()) {
      spdlog::error("nats sink: spooled message {} has no message id; dropped", m.seq);
      return DeliveryOutcome::kRefused;
    }
    const uint64_t max_payload = conn_->max_payload();
    if (max_payload > 0 && m.body.size() > max_payload) {
      spdlog::error(
          "nats sink: message {} ({} findings, {} bytes) is larger than the server's "
          "max_payload ({} bytes); dropped (lower the sink's batch size)",
          m.seq, m.findings, m.body.size(), max_payload);
      return DeliveryOutcome::kRefused;
    }
    auto ack = conn_->Publish(subject_, m.body, m.id);
    if (!ack.has_value()) {
      conn_.reset();  // a lost PubAck or a broken connection: start afresh next time
      return Failed(ack.error());
    }
    return ack->duplicate ? DeliveryOutcome::kDuplicate : DeliveryOutcome::kStored;
  }

  std::string Endpoint() const override {
    return options_.url + " stream " + options_.stream + " subject " + subject_;
  }

 private:
  // Logs a failure once per distinct reason (the sink logs that it retries).
  DeliveryOutcome Failed(const core::Status& st) {
    if (st.message() != error_) spdlog::warn("nats sink: {}", st.message());
    error_ = st.message();
    return DeliveryOutcome::kRetry;
  }

  const pipeline::JetStreamOptions options_;
  const std::string subject_;
  std::unique_ptr<pipeline::JetStreamConnection> conn_;
  std::string error_;
};

}  // namespace

std::unique_ptr<FindingTransport> MakeNatsTransport(pipeline::JetStreamOptions options,
                                                    std::string subject) {
  return std::make_unique<NatsTransport>(std::move(options), std::move(subject));
}

core::Result<std::unique_ptr<FindingSink>> OpenNatsSink(NatsSinkOptions options,
                                                        core::Registry& registry,
                                                        pipeline::RecoveryReport* report) {
  VIGIL_RETURN_IF_ERROR(pipeline::ValidateJetStreamOptions(options.nats));
  if (options.nats.name.empty()) options.nats.name = "vigil-agent " + options.host;
  std::string subject = pipeline::FindingsSubject(options.nats.subject_prefix, options.host);
  auto transport = MakeNatsTransport(options.nats, std::move(subject));
  FindingSinkOptions sink = options;
  sink.kind = "nats";
  return FindingSink::Open(std::move(sink), std::move(transport), registry, report);
}

}  // namespace vigil::agent
