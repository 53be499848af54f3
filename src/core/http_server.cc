#include "core/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

namespace vigil::core {
namespace {

constexpr const char* kJsonContentType = "application/json";

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ServeHealth(const MetricsServer::HealthCallback& health, httplib::Response& res) {
  try {
    HealthReport report;
    if (health) report = health();
    nlohmann::json body = nlohmann::json::object();
    body["status"] = report.healthy ? "ok" : "unhealthy";
    if (report.detail.is_object()) {
      for (const auto& [key, value] : report.detail.items()) {
        if (key != "status") body[key] = value;
      }
    }
    res.status = report.healthy ? 200 : 503;
    res.set_content(DumpJson(body), kJsonContentType);
  } catch (const std::exception& e) {
    res.status = 500;
    res.set_content(DumpJson({{"status", "error"}, {"error", e.what()}}), kJsonContentType);
  }
}

}  // namespace

HttpListener::~HttpListener() { Stop(); }

Status HttpListener::Start(std::unique_ptr<httplib::Server> server, const HostPort& address,
                           std::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return FailedPrecondition(fmt::format("{}: already started", what));
  const std::string where = address.ToString();
  try {
    // httplib calls this for the listening socket before it binds: the descriptor is kept to
    // raise the backlog after httplib's listen(fd, 5).
    int listening = -1;
    server->set_socket_options([&listening](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listening = sock;
    });
    server->set_tcp_nodelay(true);
    errno = 0;
    int bound = -1;
    if (address.port == 0) {
      bound = server->bind_to_any_port(address.host);
    } else if (server->bind_to_port(address.host, address.port)) {
      bound = address.port;
    }
    if (bound <= 0) {
      const int err = errno;
      return Unavailable(fmt::format(
          "{}: cannot listen on {}: {}", what, where,
          err != 0 ? std::strerror(err) : "host cannot be resolved or address not available"));
    }
    // Linux takes a second listen() on a listening socket as a new backlog.
    if (listening < 0 || ::listen(listening, kHttpListenBacklog) != 0) {
      const int err = listening < 0 ? EBADF : errno;
      return Unavailable(fmt::format("{}: cannot listen on {} with a backlog of {}: {}", what,
                                     where, kHttpListenBacklog, std::strerror(err)));
    }
    server->set_socket_options(nullptr);
    port_ = static_cast<uint16_t>(bound);
    server_ = std::move(server);
    started_ = true;
    running_ = true;
    thread_ = std::thread([this, name = std::string(what)] {
      try {
        if (!server_->listen_after_bind()) spdlog::warn("{}: accept loop failed", name);
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", name, e.what());
      } catch (...) {
        spdlog::error("{}: unknown exception", name);
      }
      serve_returned_ = true;
    });
  } catch (const std::exception& e) {
    return Internal(fmt::format("{}: starting on {}: {}", what, where, e.what()));
  }
  return Status::Ok();
}

void HttpListener::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the accept loop has marked itself running: a Stop()
  // right after Start() repeats it until the loop has returned.
  while (!serve_returned_.load()) {
    server_->stop();
    if (!serve_returned_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  thread_.join();
  running_ = false;
}

MetricsServer::MetricsServer(Registry& registry, HealthCallback health)
    : registry_(registry), health_(std::move(health)) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const std::string& host, uint16_t port) {
  std::unique_ptr<httplib::Server> server;
  try {
    server = std::make_unique<httplib::Server>();
    // Scrapes are rare and small: two workers are plenty and keep the thread count low.
    server->new_task_queue = [] { return new httplib::ThreadPool(2); };
    server->set_read_timeout(5, 0);
    server->set_write_timeout(5, 0);
    server->set_payload_max_length(64 * 1024);
    server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(registry_.ExpositionText(), std::string(kPrometheusTextContentType));
    });
    server->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      ServeHealth(health_, res);
    });
    server->set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
          res.status = 500;
          res.set_content("internal error\n", "text/plain");
        });
  } catch (const std::exception& e) {
    return Internal(fmt::format("metrics server: {}", e.what()));
  }
  const HostPort address{host, port};
  VIGIL_RETURN_IF_ERROR(listener_.Start(std::move(server), address, "metrics server"));
  spdlog::info("metrics server listening on {}", HostPort{host, listener_.port()}.ToString());
  return Status::Ok();
}

void MetricsServer::Stop() { listener_.Stop(); }

}  // namespace vigil::core
