#pragma once

// The decision service as JSON over HTTP (cpp-httplib; HTTPS with OpenSSL when TLS files are
// configured). Routes (docs/api.md):
//   POST /v1/score  /v1/score:batch  /v1/decide  /v1/enforce  /v1/rollback  /v1/ack
//   GET  /metrics (Prometheus text)  /healthz (the process serves)  /readyz (models and policies
//        loaded and verified; 503 with the reason otherwise)
// Every /v1 answer is JSON; errors are
//   {"schema_version":"vigil.api/v1","error":{"code":"INVALID_ARGUMENT","message":"..."}}
// with 400 (bad request), 401 (no or bad credentials), 403 (scope), 404 (unknown order),
// 429 (rate limit), 503 (overloaded, not ready). /metrics, /healthz and /readyz need no
// credentials: expose the listener only where that is acceptable.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/frontend.h"
#include "api/tls.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace vigil::api {

struct HttpApiOptions {
  core::HostPort listen{"127.0.0.1", 0};
  std::optional<TlsFiles> tls;  // none: plain HTTP (loopback or a trusted network only)
  int threads = 16;             // connections served at once (each keep-alive holds one)
};

class HttpApi {
 public:
  // `frontend` and `registry` must outlive the server.
  HttpApi(HttpApiOptions options, Frontend& frontend, core::Registry& registry);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // Loads TLS files, binds, and serves on a new thread (core::HttpListener). Errors name the
  // file or host:port.
  core::Status Start();
  // Stops accepting, finishes in-flight requests, joins; also right after Start(). Idempotent.
  void Stop();
  uint16_t port() const { return listener_.port(); }

 private:
  void Routes(httplib::Server& s);

  const HttpApiOptions options_;
  Frontend& frontend_;
  core::Registry& registry_;
  core::HttpListener listener_;
};

}  // namespace vigil::api
