#include "gateway/modbus_proxy.h"

#include <modbus/modbus.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/thread_priority.h"

namespace vigil::gateway {
namespace {

constexpr int kMaxAdu = 260;  // MODBUS_TCP_MAX_ADU_LENGTH

bool SendAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// One connection to the PLC, opened on first use and reopened after a failure.
class Upstream {
 public:
  explicit Upstream(const ModbusConfig& config) : config_(config) {}
  ~Upstream() { Drop(); }

  // Sends the request (without its MBAP header, which libmodbus rebuilds) and reads the answer
  // into `rsp`. Returns the answer's length, or -1 (the connection is dropped).
  int Exchange(std::span<const uint8_t> req, uint8_t* rsp) {
    if (ctx_ == nullptr && !Open()) return -1;
    if (modbus_send_raw_request(ctx_, req.data() + 6, static_cast<int>(req.size() - 6)) < 0) {
      Drop();
      return -1;
    }
    const int n = modbus_receive_confirmation(ctx_, rsp);
    if (n < 0 || !ResponseMatches(req, std::span<const uint8_t>(rsp, static_cast<size_t>(n)))) {
      Drop();
      return -1;
    }
    return n;
  }

 private:
  bool Open() {
    const std::string port = std::to_string(config_.upstream.port);
    ctx_ = modbus_new_tcp_pi(config_.upstream.host.c_str(), port.c_str());
    if (ctx_ == nullptr) return false;
    modbus_set_response_timeout(ctx_, config_.upstream_timeout_ms / 1000,
                                (config_.upstream_timeout_ms % 1000) * 1000);
    if (modbus_connect(ctx_) != 0) {
      modbus_free(ctx_);
      ctx_ = nullptr;
      return false;
    }
    return true;
  }
  void Drop() {
    if (ctx_ == nullptr) return;
    modbus_close(ctx_);
    modbus_free(ctx_);
    ctx_ = nullptr;
  }

  const ModbusConfig& config_;
  modbus_t* ctx_ = nullptr;
};

}  // namespace

struct ModbusProxy::Client {
  int fd = -1;
  std::thread thread;
  std::atomic<bool> done{false};
};

ModbusProxy::ModbusProxy(const ModbusConfig& config, Decider& decider, Listener listener,
                         int realtime_priority)
    : config_(config),
      decider_(decider),
      listener_(std::move(listener)),
      realtime_priority_(realtime_priority) {}

ModbusProxy::~ModbusProxy() { Stop(); }

core::Status ModbusProxy::Start() {
  std::lock_guard lock(mu_);
  if (started_) return core::FailedPrecondition("Modbus proxy already started");
  const std::string where = config_.listen.ToString();
  const std::string port = std::to_string(config_.listen.port);
  modbus_t* ctx = modbus_new_tcp_pi(config_.listen.host.c_str(), port.c_str());
  if (ctx == nullptr) {
    return core::Unavailable(fmt::format("modbus.listen {}: {}", where, modbus_strerror(errno)));
  }
  const int fd = modbus_tcp_pi_listen(ctx, 64);
  const int err = errno;
  modbus_free(ctx);  // the listening socket stays open; the context is not needed for accept
  if (fd < 0) {
    return core::Unavailable(fmt::format("modbus.listen {}: cannot listen: {}", where,
                                         modbus_strerror(err)));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    const int e = errno;
    close(fd);
    return core::ErrnoError(e, fmt::format("modbus.listen {}", where));
  }
  port_ = addr.ss_family == AF_INET6
              ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  listen_fd_ = fd;
  started_ = true;
  acceptor_ = core::StartRealtimeThread(
      realtime_priority_, [this] { AcceptLoop(); }, &priority_status_);
  return core::Status::Ok();
}

void ModbusProxy::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopped_) return;
    stopped_ = true;
  }
  const char byte = 1;
  [[maybe_unused]] const ssize_t w = write(stop_pipe_[1], &byte, 1);
  acceptor_.join();
  std::list<std::unique_ptr<Client>> clients;
  {
    std::lock_guard lock(mu_);
    clients.swap(clients_);
  }
  for (auto& c : clients) shutdown(c->fd, SHUT_RDWR);
  for (auto& c : clients) {
    c->thread.join();
    close(c->fd);
  }
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
}

void ModbusProxy::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("gateway: poll on the Modbus listener failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the peer went away before we took it; keep serving
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard lock(mu_);
    // Reap the threads of clients that have left.
    for (auto it = clients_.begin(); it != clients_.end();) {
      if ((*it)->done.load()) {
        (*it)->thread.join();
        close((*it)->fd);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
    if (clients_.size() >= config_.max_clients) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      close(fd);
      continue;
    }
    stats_.connections.fetch_add(1, std::memory_order_relaxed);
    auto client = std::make_unique<Client>();
    client->fd = fd;
    Client* raw = client.get();
    clients_.push_back(std::move(client));
    raw->thread = std::thread([this, raw] {
      (void)core::SetRealtimePriority(realtime_priority_);  // refused alike: priority_status_
      Serve(raw);
    });
  }
}

void ModbusProxy::Serve(Client* client) {
  stats_.clients.fetch_add(1, std::memory_order_relaxed);
  // A context only for framing this client's requests and building its exception replies; the
  // socket stays ours (closed by the acceptor or Stop after this thread ends).
  modbus_t* srv = modbus_new_tcp("127.0.0.1", 502);
  if (srv != nullptr) modbus_set_socket(srv, client->fd);
  Upstream upstream(config_);
  uint8_t req[kMaxAdu];
  uint8_t rsp[kMaxAdu];
  auto forward = [&](std::span<const uint8_t> request) -> int {
    const int n = upstream.Exchange(request, rsp);
    if (n < 0) {
      stats_.upstream_errors.fetch_add(1, std::memory_order_relaxed);
      return modbus_reply_exception(srv, req, kExceptionGatewayTargetFailed) < 0 ? -2 : -1;
    }
    rsp[0] = request[0];  // the client's transaction id
    rsp[1] = request[1];
    return SendAll(client->fd, rsp, static_cast<size_t>(n)) ? n : -2;
  };
  while (srv != nullptr) {
    const int n = modbus_receive(srv, req);
    if (n < 0) break;  // closed, reset or a frame libmodbus could not read
    if (n == 0) continue;
    const std::span<const uint8_t> request(req, static_cast<size_t>(n));
    const ParsedFrame f = ParseRequest(request);
    int sent = 0;
    if (f.cls == FrameClass::kMalformed) {
      stats_.malformed.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("gateway: malformed Modbus request ({}); closing the client connection",
                   f.reason);
      break;
    }
    if (f.cls == FrameClass::kRead) {
      stats_.reads.fetch_add(1, std::memory_order_relaxed);
      if (forward(request) == -2) break;
      continue;
    }
    const bool write = f.cls == FrameClass::kWrite;
    (write ? stats_.writes : stats_.others).fetch_add(1, std::memory_order_relaxed);
    const WriteDecision d = write ? decider_.Decide(f.write) : decider_.DecideOther(f.unit, f.function);
    // Recorded before the answer leaves, so a client that sees the answer finds the record.
    if (listener_ && (write || d.deny)) listener_(f, d);
    if (d.deny && d.enforced) {
      sent = modbus_reply_exception(srv, req, d.exception) < 0 ? -2 : 0;
    } else {
      sent = forward(request);
      // A normal (non-exception) answer means the PLC took the write.
      if (write && sent > 0 && (rsp[7] & 0x80) == 0) decider_.Committed(f.write);
    }
    if (sent == -2) break;
  }
  if (srv != nullptr) modbus_free(srv);
  // The peer sees the end now; the descriptor is closed once this thread is joined.
  shutdown(client->fd, SHUT_RDWR);
  stats_.clients.fetch_sub(1, std::memory_order_relaxed);
  client->done.store(true);
}

}  // namespace vigil::gateway
