#pragma once

// A private nats-server with JetStream for a test: loopback, a free port, its JetStream store and
// log in a temporary folder of its own (removed afterwards), started by Start() and stopped by
// Stop() (SIGTERM, then SIGKILL) or when the object goes away, also when the test failed. Start()
// again after a stop runs it on the same port with the same store, as a restarted server. A missing
// nats-server binary is a failure (scripts/install-deps.sh installs it), never a skip:
//
//   NatsServer nats;
//   ASSERT_TRUE(nats.Start()) << nats.why();

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "loopback.h"

namespace vigil::nats_testing {

class NatsServer {
 public:
  // `token`: clients must present it (nats-server --auth); "" : no authentication.
  explicit NatsServer(std::string token = "") : token_(std::move(token)) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vigil_nats_XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    port_ = pipeline::testing::KernelChosenPort();
  }
  ~NatsServer() {
    Stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  const std::string& why() const { return why_; }

  // Starts the server on port(); true once it listens (within 10 s). The first start moves to
  // another free port should the port have been taken meanwhile (port() and url() then say
  // which); a restart keeps the port.
  bool Start() {
    if (server_.running()) return true;
    if (dir_.empty()) {
      why_ = "no temporary folder";
      return false;
    }
    auto args = [&](uint16_t port) {
      std::vector<std::string> a = {
          "nats-server",        "-js", "-a",         "127.0.0.1", "-p",
          std::to_string(port), "-sd", dir_ + "/js", "-l",        dir_ + "/nats-server.log"};
      if (!token_.empty()) {
        a.push_back("--auth");
        a.push_back(token_);
      }
      return a;
    };
    const bool first = !started_;
    started_ = true;
    return server_.StartOnFreePort(args, &port_, first, "scripts/install-deps.sh test installs it",
                                   &why_);
  }

  // SIGTERM, and SIGKILL when the server has not exited within 5 s.
  void Stop() { server_.Signal(SIGTERM, 5000); }

 private:
  std::string token_;
  std::string dir_;
  uint16_t port_ = 0;
  bool started_ = false;  // once started, a restart keeps the port
  pipeline::testing::LoopbackServer server_;
  std::string why_;
};

}  // namespace vigil::nats_testing
