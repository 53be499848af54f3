#pragma once

// A private mosquitto broker for a test: listens on a free loopback port (anonymous clients
// allowed, no persistence, its log in a temporary folder), started by Start() and stopped (SIGTERM, then SIGKILL) by Stop() or
// when the object goes away. The port can be chosen before the broker starts, so a test can
// start its client first and the broker later.
//
//   MosquittoBroker broker;
//   if (!broker.Start()) GTEST_SKIP() << broker.why();

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "../pipeline/test_util.h"

extern char** environ;

namespace vigil::gateway::testing {

class MosquittoBroker {
 public:
  MosquittoBroker() : port_(KernelChosenPort()) {}
  ~MosquittoBroker() { Stop(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  const std::string& why() const { return why_; }

  // Starts the broker on port(); true once it accepts connections (within 10 s).
  bool Start() {
    if (pid_ > 0) return true;
    if (port_ == 0) {
      why_ = "no free loopback port";
      return false;
    }
    const std::string conf = dir_.Join("mosquitto.conf");
    pipeline::testing::WriteFile(conf, "listener " + std::to_string(port_) +
                                           " 127.0.0.1\nallow_anonymous true\n"
                                           "persistence false\nlog_dest file " +
                                           dir_.Join("mosquitto.log") + "\n");
    // The broker writes only to its log file, so it may keep the test's standard streams.
    std::string name = "mosquitto", flag = "-c", conf_arg = conf;
    char* const args[] = {name.data(), flag.data(), conf_arg.data(), nullptr};
    pid_t pid = -1;
    // Debian installs the broker in /usr/sbin, which a test's PATH may lack.
    int rc = posix_spawn(&pid, "/usr/sbin/mosquitto", nullptr, nullptr, args, environ);
    if (rc != 0) rc = posix_spawnp(&pid, "mosquitto", nullptr, nullptr, args, environ);
    if (rc != 0) {
      why_ = "mosquitto is not installed (apt-get install mosquitto)";
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        why_ = "mosquitto exited at start (port " + std::to_string(port_) + " taken?)";
        return false;
      }
      if (Accepts(port_)) {
        pid_ = pid;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    why_ = "mosquitto did not listen within 10 s";
    return false;
  }

  // SIGTERM, and SIGKILL when the broker has not exited within 2 s.
  void Stop() {
    if (pid_ <= 0) return;
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    kill(pid_, SIGTERM);
    pollfd p{pidfd, POLLIN, 0};
    if (pidfd < 0 || poll(&p, 1, 2000) != 1) kill(pid_, SIGKILL);
    if (pidfd >= 0) close(pidfd);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  // A port the kernel picks for a loopback socket that is then closed: free a moment later,
  // when the broker binds it (0 when none could be had).
  static uint16_t KernelChosenPort() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
  }
  // Whether something accepts connections on 127.0.0.1:port.
  static bool Accepts(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }

  pipeline::testing::TempDir dir_;  // the config and the broker's log
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string why_;
};

}  // namespace vigil::gateway::testing
