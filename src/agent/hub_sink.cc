#include "agent/hub_sink.h"

#include <spdlog/spdlog.h>

namespace vigil::agent {
namespace {

class HubTransport final : public FindingTransport {
 public:
  HubTransport(std::unique_ptr<HubClient> client, std::string path)
      : client_(std::move(client)), path_(std::move(path)) {}

  DeliveryOutcome Deliver(const FindingMessage& m) override {
    auto reply = client_->Post(path_, m.body);
    if (reply.has_value() && reply->status == 200) {
      const nlohmann::json& b = reply->body;
      const bool duplicate = b.is_object() && b.contains("duplicate") &&
                             b["duplicate"].is_boolean() && b["duplicate"].get<bool>();
      return duplicate ? DeliveryOutcome::kDuplicate : DeliveryOutcome::kStored;
    }
    if (reply.has_value() && (reply->status == 400 || reply->status == 413)) {
      spdlog::error(
          "hub sink: {}{} refused message {} ({} findings) for good: HTTP {}: {}; dropped",
          client_->options().url, path_, m.seq, m.findings, reply->status, reply->error);
      return DeliveryOutcome::kRefused;
    }
    return DeliveryOutcome::kRetry;
  }

  std::string Endpoint() const override { return client_->options().url; }

 private:
  std::unique_ptr<HubClient> client_;
  const std::string path_;
};

}  // namespace

std::unique_ptr<FindingTransport> MakeHubTransport(std::unique_ptr<HubClient> client,
                                                   std::string path) {
  return std::make_unique<HubTransport>(std::move(client), std::move(path));
}

core::Result<std::unique_ptr<FindingSink>> OpenHubSink(HubSinkOptions options,
                                                       core::Registry& registry,
                                                       pipeline::RecoveryReport* report) {
  VIGIL_ASSIGN_OR_RETURN(auto client, HubClient::Create(options.link));
  FindingSinkOptions sink = options;  // the FindingSinkOptions part
  sink.kind = "hub";
  sink.host = options.link.host;
  return FindingSink::Open(std::move(sink), MakeHubTransport(std::move(client), "/v1/ingest"),
                           registry, report);
}

}  // namespace vigil::agent
