#pragma once

// Loopback ports and server processes for tests that start a server of their own (nats-server,
// mosquitto): on 127.0.0.1, on a port the kernel found free, stopped also when the test fails.

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
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

// Whether process `pid` holds a socket listening on `port` (TCP, IPv4 or IPv6, any local
// address): the server a test started, not another process that took the port first (a port
// picked free and released can be taken by anyone before the server binds it). False once the
// process has exited: its /proc files are read with plain syscalls, whose errors mean "no".
inline bool OwnsListener(pid_t pid, uint16_t port) {
  std::set<std::string> sockets;  // "socket:[INODE]" of every listener on the port
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    const int fd = open(table, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(fd);
    std::istringstream lines(text);
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(f >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      const size_t colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
      sockets.insert("socket:[" + inode + "]");
    }
  }
  if (sockets.empty()) return false;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    char target[64];
    const ssize_t n = readlink(it->path().c_str(), target, sizeof target - 1);
    if (n > 0 && sockets.count(std::string(target, static_cast<size_t>(n))) > 0) return true;
  }
  return false;
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

// One server process listening on a loopback port. StartOnFreePort() spawns /usr/sbin/NAME
// (Debian puts servers there, which a test's PATH may lack) or NAME from PATH, and waits until
// the process itself listens on the port; Signal() ends it. The destructor kills what is still running.
class LoopbackServer {
 public:
  LoopbackServer() = default;
  ~LoopbackServer() { Signal(SIGKILL, 0); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  bool running() const { return pid_ > 0; }

  // Starts the program on *port (0: a port the kernel found free). With `may_move`, while the
  // program exits at start, as it does when another process took the port between the pick and
  // its bind, starts it again on another free port, 5 times in all at most; *port is then the
  // port it listens on. `args_for(port)` gives the arguments for a port (args[0]: the program's
  // name). True once the program listens (within 10 s); else *why says what went wrong (`hint`
  // is added when the program is missing, e.g. how to install it).
  template <typename ArgsFor>
  bool StartOnFreePort(ArgsFor args_for, uint16_t* port, bool may_move, const std::string& hint,
                       std::string* why) {
    if (pid_ > 0) return true;
    for (int attempt = 1;; ++attempt) {
      if (*port == 0) *port = KernelChosenPort();
      const Outcome o = Launch(args_for(*port), *port, hint, why);
      if (o != kExited || !may_move || attempt == 5) return o == kStarted;
      *port = 0;
    }
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
  enum Outcome { kStarted, kExited, kFailed };

  Outcome Launch(std::vector<std::string> args, uint16_t port, const std::string& hint,
                 std::string* why) {
    if (pid_ > 0) return kStarted;
    if (port == 0) {
      *why = "no free loopback port";
      return kFailed;
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
      return kFailed;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        *why = name + " exited at start (port " + std::to_string(port) + " taken?)";
        return kExited;
      }
      // Accepting and the process's own: not another process that holds the port.
      if (AcceptsOnLoopback(port) && OwnsListener(pid, port)) {
        pid_ = pid;
        return kStarted;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    *why = name + " did not listen within 10 s";
    return kFailed;
  }

  pid_t pid_ = -1;
};

}  // namespace vigil::pipeline::testing
