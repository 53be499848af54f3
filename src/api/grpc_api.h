#pragma once

// The decision service over gRPC (proto/vigil/v1/api.proto): Inference.Score/ScoreBatch,
// Policy.Decide, Control.Enforce/Rollback/Watch/Acknowledge. TLS (and mTLS with a client CA)
// when TLS files are configured; credentials as for HTTP: a verified client certificate, or
// "authorization: Bearer <jwt>" metadata. The client's gRPC deadline narrows the request's
// budget. Refusals map to UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED (rate limit)
// and UNAVAILABLE (overloaded, not ready).
//
// Threads: gRPC's asynchronous API with one completion queue polled by `poll_threads` threads
// (default 2; with one, the process's only poller of gRPC sockets). Calls
// that cannot block are served on the polling thread that read them: scores and decisions the model
// answers inline (DecisionService::ScoresInline) with at most 4 items, orders without a wait,
// acknowledgements. Larger batches the model scores inline queue for as many threads as the machine
// has cores. Calls that may wait (Watch streams, orders with wait_ms, scores for the engine's
// worker) run on up to `max_threads` handler threads; when all are held, such a call is refused
// with UNAVAILABLE.
//
// gRPC serves on its own listener: grpc++ owns its sockets and cannot share a port with
// cpp-httplib (docs/api.md).

#include <memory>
#include <optional>
#include <string>

#include "api/frontend.h"
#include "api/tls.h"
#include "core/config.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace vigil::api {

struct GrpcApiOptions {
  core::HostPort listen{"127.0.0.1", 0};
  std::optional<TlsFiles> tls;  // none: plaintext (loopback or a trusted network only)
  int max_threads = 16;  // handler threads for calls that may wait (a Watch stream holds one)
  // Threads polling the server's completion queue, each serving the calls that cannot block.
  // 1: no hand-off between pollers, but calls served on one core; more: on more cores, with
  // gRPC's epoll1 engine handing the poller role between the threads (docs/benchmarks.md).
  int poll_threads = 2;
};

class GrpcApi {
 public:
  GrpcApi(GrpcApiOptions options, Frontend& frontend);
  ~GrpcApi();
  GrpcApi(const GrpcApi&) = delete;
  GrpcApi& operator=(const GrpcApi&) = delete;

  // Reads the TLS files, binds and starts serving. Errors name the file or host:port.
  core::Status Start();
  // Ends Watch streams, waits up to a second for calls in flight (then cancels them), waits for
  // the handler threads, stops. Idempotent.
  void Stop();
  uint16_t port() const { return port_; }

 private:
  struct Services;
  const GrpcApiOptions options_;
  Frontend& frontend_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  uint16_t port_ = 0;
};

}  // namespace vigil::api
