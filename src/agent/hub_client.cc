#include "agent/hub_client.h"

#include <httplib.h>

#include "core/config.h"
#include "core/files.h"
#include "hub/requests.h"

namespace vigil::agent {
namespace {


}  // namespace

core::Status ValidateHubLink(const HubLinkOptions& o) {
  bool https = false;
  if (!core::IsHttpBaseUrl(o.url, &https)) {
    return core::InvalidArgument("hub URL \"" + o.url +
                                 "\": expected http://HOST:PORT or https://HOST:PORT (no path)");
  }
  if (!hub::ValidHostId(o.host)) {
    return core::InvalidArgument("hub host id \"" + o.host +
                                 "\": expected 1..253 bytes of [A-Za-z0-9._:-]");
  }
  if (o.token_file.empty()) {
    return core::InvalidArgument("hub token file: none given (an agent token for host \"" + o.host +
                                 "\")");
  }
  if (!o.ca_file.empty() && !https) {
    return core::InvalidArgument("hub CA file " + o.ca_file + " given for a plain http URL " +
                                 o.url);
  }
  if (o.timeout.count() < 1 || o.timeout > std::chrono::minutes(10)) {
    return core::InvalidArgument("hub timeout: expected 1 ms .. 10 min");
  }
  return core::Status::Ok();
}

HubClient::HubClient(HubLinkOptions options) : options_(std::move(options)) {}

HubClient::~HubClient() = default;

core::Result<std::unique_ptr<HubClient>> HubClient::Create(HubLinkOptions options) {
  VIGIL_RETURN_IF_ERROR(ValidateHubLink(options));
  std::unique_ptr<HubClient> c(new HubClient(std::move(options)));
  try {
    c->http_ = std::make_unique<httplib::Client>(c->options_.url);
  } catch (const std::exception& e) {
    return core::InvalidArgument("hub URL \"" + c->options_.url + "\": " + e.what());
  }
  if (!c->http_->is_valid()) {
    return core::InvalidArgument("hub URL \"" + c->options_.url + "\": not a usable URL");
  }
  if (!c->options_.ca_file.empty()) {
    c->http_->set_ca_cert_path(c->options_.ca_file.c_str());
  }
  c->http_->enable_server_certificate_verification(true);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(c->options_.timeout);
  c->http_->set_connection_timeout(0, us.count());
  c->http_->set_read_timeout(0, us.count());
  c->http_->set_write_timeout(0, us.count());
  c->http_->set_keep_alive(c->options_.keep_alive);
  c->http_->set_tcp_nodelay(true);
  return c;
}

core::Result<std::string> HubClient::Token() const {
  return core::ReadTokenFile(options_.token_file, "hub token");
}

namespace {

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

}  // namespace

core::Result<HubReply> HubClient::Post(const std::string& path, const std::string& body) {
  VIGIL_ASSIGN_OR_RETURN(const std::string token, Token());
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  return ReplyOf(http_->Post(path, headers, body, "application/json"),
                 "POST " + options_.url + path);
}

core::Result<HubReply> HubClient::Get(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string token, Token());
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  return ReplyOf(http_->Get(path, headers), "GET " + options_.url + path);
}

}  // namespace vigil::agent
