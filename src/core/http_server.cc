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

std::string Address(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace

MetricsServer::MetricsServer(Registry& registry, HealthCallback health)
    : registry_(registry), health_(std::move(health)) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const std::string& host, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return FailedPrecondition("metrics server: already started");
  const std::string address = Address(host, port);
  try {
    auto server = std::make_unique<httplib::Server>();
    // Scrapes are rare and small: two workers are plenty and keep the thread count low.
    server->new_task_queue = [] { return new httplib::ThreadPool(2); };
    server->set_read_timeout(5, 0);
    server->set_write_timeout(5, 0);
    server->set_payload_max_length(64 * 1024);
    // httplib's default also sets SO_REUSEPORT, which would let a second agent bind the same
    // port and silently receive half of the scrapes; a clash must fail instead.
    server->set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
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

    errno = 0;
    int bound = -1;
    if (port == 0) {
      bound = server->bind_to_any_port(host);
    } else if (server->bind_to_port(host, port)) {
      bound = port;
    }
    if (bound <= 0) {
      const int err = errno;
      return Unavailable(fmt::format(
          "metrics server: cannot bind {}: {}", address,
          err != 0 ? std::strerror(err) : "host cannot be resolved or address not available"));
    }
    port_ = static_cast<uint16_t>(bound);
    server_ = std::move(server);
    started_ = true;
    running_ = true;
    thread_ = std::thread([this] { Serve(); });
  } catch (const std::exception& e) {
    return Internal(fmt::format("metrics server: starting on {}: {}", address, e.what()));
  }
  spdlog::info("metrics server listening on {}", Address(host, port_));
  return Status::Ok();
}

void MetricsServer::Serve() {
  try {
    if (!server_->listen_after_bind()) spdlog::warn("metrics server: accept loop failed");
  } catch (const std::exception& e) {
    spdlog::error("metrics server: {}", e.what());
  } catch (...) {
    spdlog::error("metrics server: unknown exception");
  }
  serve_returned_ = true;
}

void MetricsServer::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the accept loop has marked itself running, so a Stop()
  // right after Start() waits for that (or for the loop to have ended on its own).
  while (!server_->is_running() && !serve_returned_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
  running_ = false;
}

}  // namespace vigil::core
