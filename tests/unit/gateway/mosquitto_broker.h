#pragma once

// A private mosquitto broker for a test: listens on a free loopback port (anonymous clients
// allowed, no persistence, its log in a temporary folder), started by Start() and stopped (SIGTERM, then SIGKILL) by Stop() or
// when the object goes away. The port can be chosen before the broker starts, so a test can
// start its client first and the broker later.
//
//   MosquittoBroker broker;
//   if (!broker.Start()) GTEST_SKIP() << broker.why();

#include <string>

#include "../pipeline/loopback.h"
#include "../pipeline/test_util.h"

namespace vigil::gateway::testing {

class MosquittoBroker {
 public:
  MosquittoBroker() : port_(pipeline::testing::KernelChosenPort()) {}
  ~MosquittoBroker() { Stop(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  const std::string& why() const { return why_; }

  // Starts the broker on port(); true once it accepts connections (within 10 s).
  bool Start() {
    if (server_.running()) return true;
    const std::string conf = dir_.Join("mosquitto.conf");
    pipeline::testing::WriteFile(conf, "listener " + std::to_string(port_) +
                                           " 127.0.0.1\nallow_anonymous true\n"
                                           "persistence false\nlog_dest file " +
                                           dir_.Join("mosquitto.log") + "\n");
    // The broker writes only to its log file, so it may keep the test's standard streams.
    return server_.Start({"mosquitto", "-c", conf}, port_, "apt-get install mosquitto", &why_);
  }

  // SIGTERM, and SIGKILL when the broker has not exited within 2 s.
  void Stop() { server_.Signal(SIGTERM, 2000); }

 private:
  pipeline::testing::TempDir dir_;  // the config and the broker's log
  uint16_t port_ = 0;
  pipeline::testing::LoopbackServer server_;
  std::string why_;
};

}  // namespace vigil::gateway::testing
