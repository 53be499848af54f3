#include "agent/hub_client.h"

#include <httplib.h>

#include "agent/hub_client_grpc.h"
#include "core/config.h"
#include "core/files.h"
#include "hub/requests.h"

namespace vigil::agent {

bool IsGrpcHubUrl(std::string_view url) { return core::IsGrpcsUrl(url); }

core::Status ValidateHubLink(const HubLinkOptions& o) {
  bool https = false;
  const bool grpc = IsGrpcHubUrl(o.url);
  if (!grpc && !core::IsHttpBaseUrl(o.url, &https)) {
    return core::InvalidArgument("hub URL \"" + o.url +
                                 "\": expected http://HOST:PORT, https://HOST:PORT or "
                                 "grpcs://HOST:PORT (no path)");
  }
  if (!hub::ValidHostId(o.host)) {
    return core::InvalidArgument("hub host id \"" + o.host +
                                 "\": expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (o.timeout.count() < 1 || o.timeout > std::chrono::minutes(10)) {
    return core::InvalidArgument("hub timeout: expected 1 ms .. 10 min");
  }
  if (grpc) {
    for (const auto& [file, what] :
         {std::pair{&o.cert_file, "a client certificate (agent.pem from vigil agent enrol)"},
          std::pair{&o.key_file, "its key (agent.key from vigil agent enrol)"},
          std::pair{&o.ca_file, "the hub CA (ca.pem from vigil agent enrol)"}}) {
      if (file->empty()) {
        return core::InvalidArgument("hub URL " + o.url + " (gRPC over mTLS) needs " + what);
      }
    }
    if (!o.token_file.empty()) {
      return core::InvalidArgument("hub token file " + o.token_file + " given for " + o.url +
                                   ": over gRPC the agent authenticates with its certificate");
    }
    return core::Status::Ok();
  }
  if (!o.cert_file.empty() || !o.key_file.empty()) {
    return core::InvalidArgument("hub certificate and key are for a grpcs:// URL; the URL is " +
                                 o.url);
  }
  if (o.token_file.empty()) {
    return core::InvalidArgument("hub token file: none given (an agent token for host \"" + o.host +
                                 "\")");
  }
  if (!o.ca_file.empty() && !https) {
    return core::InvalidArgument("hub CA file " + o.ca_file + " given for a plain http URL " +
                                 o.url);
  }
  return core::Status::Ok();
}

HubClient::HubClient(HubLinkOptions options) : options_(std::move(options)) {}

HubClient::~HubClient() = default;

namespace {

// The REST transport: HTTP(S) with the agent's bearer token.
class RestHubClient final : public HubClient {
 public:
  explicit RestHubClient(HubLinkOptions options) : HubClient(std::move(options)) {}

  core::Status Open() {
    const HubLinkOptions& o = options();
    try {
      http_ = std::make_unique<httplib::Client>(o.url);
    } catch (const std::exception& e) {
      return core::InvalidArgument("hub URL \"" + o.url + "\": " + e.what());
    }
    if (!http_->is_valid()) {
      return core::InvalidArgument("hub URL \"" + o.url + "\": not a usable URL");
    }
    if (!o.ca_file.empty()) http_->set_ca_cert_path(o.ca_file.c_str());
    http_->enable_server_certificate_verification(true);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(o.timeout);
    http_->set_connection_timeout(0, us.count());
    http_->set_read_timeout(0, us.count());
    http_->set_write_timeout(0, us.count());
    http_->set_keep_alive(o.keep_alive);
    http_->set_tcp_nodelay(true);
    return core::Status::Ok();
  }

  core::Result<HubReply> Post(const std::string& path, const std::string& body) override;
  core::Result<HubReply> Get(const std::string& path) override;

 private:
  core::Result<std::string> Token() const {
    return core::ReadTokenFile(options().token_file, "hub token");
  }

  std::unique_ptr<httplib::Client> http_;
};

core::Result<HubReply> ReplyOf(const httplib::Result& res, const std::string& where) {
  if (!res) {
    return core::Unavailable(where + ": " + httplib::to_string(res.error()));
  }
  HubReply r;
  r.status = res->status;
  r.raw = res->body;
  r.body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (r.status < 200 || r.status > 299) {
    const nlohmann::json& b = r.body;
    const nlohmann::json* e = b.is_object() && b.contains("error") ? &b["error"] : nullptr;
    if (e != nullptr && e->is_object() && e->contains("code") && (*e)["code"].is_string() &&
        e->contains("message") && (*e)["message"].is_string()) {
      r.error = (*e)["code"].get<std::string>() + ": " + (*e)["message"].get<std::string>();
    } else {
      r.error = res->body.substr(0, 256);
    }
  }
  return r;
}

core::Result<HubReply> RestHubClient::Post(const std::string& path, const std::string& body) {
  VIGIL_ASSIGN_OR_RETURN(const std::string token, Token());
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  return ReplyOf(http_->Post(path, headers, body, "application/json"),
                 "POST " + options().url + path);
}

core::Result<HubReply> RestHubClient::Get(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string token, Token());
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  return ReplyOf(http_->Get(path, headers), "GET " + options().url + path);
}

}  // namespace

core::Result<std::unique_ptr<HubClient>> HubClient::Create(HubLinkOptions options) {
  VIGIL_RETURN_IF_ERROR(ValidateHubLink(options));
  if (IsGrpcHubUrl(options.url)) return CreateGrpcHubClient(std::move(options));
  auto c = std::make_unique<RestHubClient>(std::move(options));
  VIGIL_RETURN_IF_ERROR(c->Open());
  return std::unique_ptr<HubClient>(std::move(c));
}

}  // namespace vigil::agent
