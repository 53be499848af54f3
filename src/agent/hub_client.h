#pragma once

// The agent's side of the hub's HTTP/JSON API (docs/hub.md): one client per thread, speaking
// HTTP or HTTPS to the hub's base URL with the agent's bearer token. The token is read from its
// file at every request, so a token renewed on disk is used without a restart.
//
// Thread-safety: none; each thread that talks to the hub owns its HubClient.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace vigil::agent {

struct HubLinkOptions {
  std::string url;         // the hub's base URL: http://HOST:PORT or https://HOST:PORT
  std::string token_file;  // first line: an agent-role token whose subject is `host`
  std::string ca_file;     // https: the PEM bundle the hub's certificate must chain to
                           // ("" : the system's trust store)
  std::string host;        // this host's id at the hub (the token's subject)
  std::chrono::milliseconds timeout{10000};  // connect, read and write, each
  // Keep the connection open between requests (each open connection holds one of the hub's
  // worker threads; a client that calls every few seconds closes it instead).
  bool keep_alive = true;
};

// kInvalidArgument naming the field: a URL that is not http(s)://HOST[:PORT] (a path is not
// allowed), a host id that is not 1..253 bytes of [A-Za-z0-9._:-], no token file, a CA file
// with an http URL, a timeout outside 1 ms .. 10 min.
core::Status ValidateHubLink(const HubLinkOptions& options);

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
  // Fails as ValidateHubLink does.
  static core::Result<std::unique_ptr<HubClient>> Create(HubLinkOptions options);
  ~HubClient();
  HubClient(const HubClient&) = delete;
  HubClient& operator=(const HubClient&) = delete;

  // A reply of any status; an error only when no reply came: kUnavailable naming the URL and the
  // transport failure (refused, timed out, TLS), or the token file's error (kNotFound,
  // kPermissionDenied, kInvalidArgument for an empty file).
  core::Result<HubReply> Post(const std::string& path, const std::string& body);
  core::Result<HubReply> Get(const std::string& path);

  const HubLinkOptions& options() const { return options_; }

 private:
  explicit HubClient(HubLinkOptions options);
  core::Result<std::string> Token() const;

  const HubLinkOptions options_;
  std::unique_ptr<httplib::Client> http_;
};

}  // namespace vigil::agent
