#include "fake_plc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/thread_priority.h"

namespace vigil::gateway::testing {

FakePlc::FakePlc() : map_(modbus_mapping_new(1000, 1000, 1000, 1000)) {}

FakePlc::~FakePlc() {
  if (thread_.joinable()) {
    const char b = 1;
    [[maybe_unused]] ssize_t w = write(stop_[1], &b, 1);
    thread_.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_[0] >= 0) close(stop_[0]);
  if (stop_[1] >= 0) close(stop_[1]);
  if (ctx_ != nullptr) modbus_free(ctx_);
  modbus_mapping_free(map_);
}

bool FakePlc::Start(int realtime_priority) {
  ctx_ = modbus_new_tcp("127.0.0.1", 0);
  if (ctx_ == nullptr || map_ == nullptr) return false;
  listen_fd_ = modbus_tcp_listen(ctx_, 16);
  if (listen_fd_ < 0 || pipe(stop_) != 0) return false;
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  port_ = ntohs(addr.sin_port);
  if (realtime_priority <= 0) {
    thread_ = std::thread([this] { Loop(); });
    return true;
  }
  core::Status applied;
  thread_ = core::StartRealtimeThread(realtime_priority, [this] { Loop(); }, &applied);
  return applied.ok();
}

uint16_t FakePlc::holding(int address) {
  std::lock_guard lock(mu_);
  return map_->tab_registers[address];
}

uint8_t FakePlc::coil(int address) {
  std::lock_guard lock(mu_);
  return map_->tab_bits[address];
}

void FakePlc::SetInput(int address, uint16_t value) {
  std::lock_guard lock(mu_);
  map_->tab_input_registers[address] = value;
}

void FakePlc::Loop() {
  std::vector<pollfd> fds = {{stop_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  while (true) {
    if (poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents != 0) break;
    if (fds[1].revents != 0) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    for (size_t i = 2; i < fds.size();) {
      if (fds[i].revents == 0) {
        ++i;
        continue;
      }
      modbus_set_socket(ctx_, fds[i].fd);
      const int n = modbus_receive(ctx_, query);
      if (n > 0) {
        requests_.fetch_add(1);
        std::lock_guard lock(mu_);
        modbus_reply(ctx_, query, n, map_);
        ++i;
      } else if (n < 0) {
        close(fds[i].fd);
        fds.erase(fds.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
  }
  for (size_t i = 2; i < fds.size(); ++i) close(fds[i].fd);
}

}  // namespace vigil::gateway::testing
