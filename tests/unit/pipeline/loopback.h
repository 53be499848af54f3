#pragma once

// Loopback ports and server processes for tests that start a server of their own (nats-server,
// mosquitto): on 127.0.0.1, on a port the kernel found free, stopped also when the test fails.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vigil::pipeline::testing {

// A port the kernel picks for a loopback socket that is then closed: free a moment later, when
// the server binds it (0 when none could be had).
inline uint16_t KernelChosenPort() {
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
inline bool AcceptsOnLoopback(uint16_t port) {
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

// One server process listening on a loopback port. Start() spawns /usr/sbin/NAME (Debian puts
// servers there, which a test's PATH may lack) or NAME from PATH, and waits until the port
// accepts; Signal() ends it. The destructor kills what is still running.
class LoopbackServer {
 public:
  LoopbackServer() = default;
  ~LoopbackServer() { Signal(SIGKILL, 0); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  bool running() const { return pid_ > 0; }

  // args[0] is the program's name. True once 127.0.0.1:port accepts (within 10 s); else *why
  // says what went wrong (`hint` is added when the program is missing, e.g. how to install it).
  bool Start(std::vector<std::string> args, uint16_t port, const std::string& hint,
             std::string* why) {
    if (pid_ > 0) return true;
    if (port == 0) {
      *why = "no free loopback port";
      return false;
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string name = args[0], sbin = "/usr/sbin/" + name;
    pid_t pid = -1;
    int rc = posix_spawn(&pid, sbin.c_str(), nullptr, nullptr, argv.data(), environ);
    if (rc != 0) rc = posix_spawnp(&pid, name.c_str(), nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      *why = name + " is not installed (" + hint + ")";
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        *why = name + " exited at start (port " + std::to_string(port) + " taken?)";
        return false;
      }
      if (AcceptsOnLoopback(port)) {
        pid_ = pid;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    *why = name + " did not listen within 10 s";
    return false;
  }

  // Sends `sig`, then SIGKILL when the process has not exited within `wait_ms`; reaps it.
  void Signal(int sig, int wait_ms) {
    if (pid_ <= 0) return;
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    kill(pid_, sig);
    pollfd p{pidfd, POLLIN, 0};
    if (pidfd < 0 || poll(&p, 1, wait_ms) != 1) kill(pid_, SIGKILL);
    if (pidfd >= 0) close(pidfd);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace vigil::pipeline::testing
