#pragma once

// The agent's side of the hub's agent API (docs/hub.md), addressed by its REST routes. Two
// transports, chosen by the URL's scheme:
//   http://, https://  the hub's HTTP/JSON API with the agent's bearer token. The token is read
//                      from its file at every request, so a token renewed on disk is used
//                      without a restart.
//   grpcs://           the hub's agent port (config agents.listen), vigil.v1.AgentHub over mTLS
//                      with the certificate `vigil agent enrol` wrote (agent.pem, agent.key) and
//                      the hub CA (ca.pem). Each route maps to one RPC (hub_client_grpc.h); the
//                      answers come back in the REST form (JSON body, HTTP status), so the fleet
//                      link, the escalations and the hub sink run the same code on either. The
//                      key and certificate are read at Create: a renewed certificate is used by
//                      the next client.
//
// Thread-safety: none; each thread that talks to the hub owns its HubClient.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::agent {

struct HubLinkOptions {
  // The hub's base URL: http://HOST:PORT or https://HOST:PORT (REST), grpcs://HOST:PORT (gRPC;
  // HOST must be one of the hub's agents.server_names).
  std::string url;
  std::string token_file;  // REST only: first line: an agent-role token whose subject is `host`
  std::string ca_file;     // https: the PEM bundle the hub's certificate must chain to
                           // ("" : the system's trust store); grpcs: the hub CA (required)
  std::string cert_file;   // grpcs only (required): the client certificate from enrolment
  std::string key_file;    // grpcs only (required): its private key
  std::string host;        // this host's id at the hub (the token's subject, the certificate's CN)
  std::chrono::milliseconds timeout{10000};  // connect, read and write, each
  // Keep the connection open between requests (each open connection holds one of the hub's
  // worker threads; a client that calls every few seconds closes it instead).
  bool keep_alive = true;
};

// kInvalidArgument naming the field: a URL that is not http(s)://HOST[:PORT] or
// grpcs://HOST:PORT (a path is not allowed), a host id that is not 1..253 bytes of
// [A-Za-z0-9._:-], a timeout outside 1 ms .. 10 min; for REST: no token file, a CA file with an
// http URL, a certificate or key; for gRPC: no certificate, key or CA file, a token file.
core::Status ValidateHubLink(const HubLinkOptions& options);

// True for a grpcs:// URL (the gRPC transport).
bool IsGrpcHubUrl(std::string_view url);

struct HubReply {
  int status = 0;       // the HTTP status
  nlohmann::json body;  // the answer; discarded (is_discarded()) when it is not JSON
  // For an answer other than 2xx: "CODE: message" from the hub's error object, else the first
  // 256 bytes of the body.
  std::string error;
  std::string raw;  // the body as received
};

class HubClient {
 public:
  // The client for the URL's transport. Fails as ValidateHubLink does; over gRPC also when the
  // certificate, key or CA file cannot be read, or the certificate is not for `host`.
  static core::Result<std::unique_ptr<HubClient>> Create(HubLinkOptions options);
  virtual ~HubClient();
  HubClient(const HubClient&) = delete;
  HubClient& operator=(const HubClient&) = delete;

  // A reply of any status; an error only when no reply came: kUnavailable naming the URL and the
  // transport failure (refused, timed out, TLS), or the token file's error (kNotFound,
  // kPermissionDenied, kInvalidArgument for an empty file). Over gRPC, a route that has no RPC is
  // kInvalidArgument naming it.
  virtual core::Result<HubReply> Post(const std::string& path, const std::string& body) = 0;
  virtual core::Result<HubReply> Get(const std::string& path) = 0;

  const HubLinkOptions& options() const { return options_; }

 protected:
  explicit HubClient(HubLinkOptions options);

 private:
  const HubLinkOptions options_;
};

}  // namespace vigil::agent
