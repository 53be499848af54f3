#pragma once

// HttpListener: binding, serving and stopping one cpp-httplib server on its own thread, shared
// by Vigil's HTTP servers (the metrics server below, the hub, the decision service's HTTP API).
//
// MetricsServer: a small HTTP server (cpp-httplib) on its own thread that serves
//   GET /metrics  the Registry in the Prometheus text format (text/plain; version=0.0.4)
//   GET /healthz  200 {"status":"ok", ...} or 503 {"status":"unhealthy", ...} from a callback
// Anything else is 404. There is no authentication: bind it to loopback or a trusted network.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace vigil::core {

// The listen backlog HttpListener asks for (the kernel caps it at net.core.somaxconn). httplib
// listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into Debian's
// libcpp-httplib): a burst of connects beyond that is dropped by the kernel and the client's
// first read fails.
inline constexpr int kHttpListenBacklog = 1024;

class HttpListener {
 public:
  HttpListener() = default;
  // Stops the server if running.
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Takes `server` (its routes, handlers, timeouts and task queue set by the caller), sets
  // SO_REUSEADDR but not SO_REUSEPORT on the listening socket (a second process on the same port
  // fails to bind instead of silently sharing its connections), TCP_NODELAY on accepted sockets
  // (an answer is written as headers then body: with Nagle's algorithm the body waits for the
  // client's delayed ACK, ~40 ms on a keep-alive connection), binds `address` on the calling
  // thread (port 0: any free port), raises the listen backlog to kHttpListenBacklog and serves
  // on a new thread; requests may arrive as soon as it returns OK. Errors, named `what` (e.g.
  // "hub") and the address: kFailedPrecondition when already started; kUnavailable when the
  // address cannot be bound or listened on (with the reason); kInternal if httplib throws.
  Status Start(std::unique_ptr<httplib::Server> server, const HostPort& address,
               std::string_view what);
  // Stops accepting, finishes in-flight requests and joins the server threads; also right after
  // Start() (httplib's stop() is ignored until its accept loop runs, so it is repeated until the
  // loop has returned). Idempotent. A stopped listener cannot be started again.
  void Stop();

  // The bound port (useful after a Start with port 0); 0 before a successful Start().
  uint16_t port() const { return port_.load(); }
  bool running() const { return running_.load(); }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::mutex mu_;  // serialises Start() and Stop()
  bool started_ = false;
  std::atomic<uint16_t> port_{0};
  std::atomic<bool> running_{false};
  std::atomic<bool> serve_returned_{false};
};

struct HealthReport {
  bool healthy = true;
  // Merged into the /healthz body next to "status" (e.g. {"sensors": 2, "queue_depth": 10}).
  // Anything but a JSON object is ignored; a "status" key in it is ignored.
  nlohmann::json detail;
};

class MetricsServer {
 public:
  // Called on a server thread for every /healthz request; must be thread-safe and quick. A
  // callback that throws yields 500 {"status":"error",...}.
  using HealthCallback = std::function<HealthReport()>;

  // `registry` must outlive the server. Without a health callback /healthz always says ok.
  explicit MetricsServer(Registry& registry, HealthCallback health = nullptr);
  // Stops the server if running.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds `host:port` (port 0: any free port) on the calling thread, then serves on a new
  // thread; requests may arrive as soon as it returns OK. Errors: kFailedPrecondition when
  // already started; kUnavailable when the address cannot be bound (the message names
  // host:port and the reason); kInternal if httplib throws.
  Status Start(const std::string& host, uint16_t port);
  // Stops accepting, finishes in-flight requests and joins the server threads. Idempotent;
  // after it returns the registry and callback are no longer used. A stopped server cannot be
  // started again.
  void Stop();

  // The bound port (useful after Start(host, 0)); 0 before a successful Start().
  uint16_t port() const { return listener_.port(); }
  bool running() const { return listener_.running(); }

 private:
  Registry& registry_;
  const HealthCallback health_;
  HttpListener listener_;
};

}  // namespace vigil::core
