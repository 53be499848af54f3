#pragma once

// A private mosquitto broker for a test: listens on a free loopback port (anonymous clients
// allowed, no persistence, its log in a temporary folder), started by Start() and stopped (SIGTERM, then SIGKILL) by Stop() or
// when the object goes away. The port can be chosen before the broker starts, so a test can
// start its client first and the broker later.
//
//   MosquittoBroker broker;
//   if (!broker.Start()) GTEST_SKIP() << broker.why();
//
// With BrokerSecurity, the listener speaks TLS (server certificate and key, clients verified
// against ca_file when require_certificate) and/or refuses anonymous clients, accepting only the
// users of `users` (a mosquitto_passwd file made by the broker object).

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "../pipeline/loopback.h"
#include "../pipeline/test_util.h"

namespace vigil::gateway::testing {

struct BrokerSecurity {
  std::string ca_file;    // TLS: the CA clients' certificates must chain to
  std::string cert_file;  // TLS: the broker's certificate; empty: plain TCP
  std::string key_file;
  bool require_certificate = false;
  std::vector<std::pair<std::string, std::string>> users;  // (name, password); empty: anonymous
};

class MosquittoBroker {
 public:
  explicit MosquittoBroker(BrokerSecurity security = {})
      : port_(pipeline::testing::KernelChosenPort()), security_(std::move(security)) {}
  ~MosquittoBroker() { Stop(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  const std::string& why() const { return why_; }

  // Starts the broker on port(); true once it listens (within 10 s).
  bool Start() {
    if (server_.running()) return true;
    const std::string conf = dir_.Join("mosquitto.conf");
    std::string text = " 127.0.0.1\npersistence false\nlog_dest file " +
                       dir_.Join("mosquitto.log") + "\n";
    // As root the broker would drop to the mosquitto user, who cannot read the test's keys.
    if (::geteuid() == 0) text += "user root\n";
    if (!security_.cert_file.empty()) {
      text += "cafile " + security_.ca_file + "\ncertfile " + security_.cert_file +
              "\nkeyfile " + security_.key_file + "\nrequire_certificate " +
              (security_.require_certificate ? "true" : "false") + "\n";
    }
    if (security_.users.empty()) {
      text += "allow_anonymous true\n";
    } else {
      const std::string passwd = dir_.Join("passwd");
      for (const auto& [name, password] : security_.users) {
        const std::string cmd = "mosquitto_passwd -b " +
                                std::string(std::filesystem::exists(passwd) ? "" : "-c ") +
                                passwd + " '" + name + "' '" + password + "' >/dev/null 2>&1";
        if (std::system(cmd.c_str()) != 0) {
          why_ = "mosquitto_passwd could not make the password file (apt-get install mosquitto)";
          return false;
        }
      }
      text += "allow_anonymous false\npassword_file " + passwd + "\n";
    }
    // The broker writes only to its log file, so it may keep the test's standard streams. The
    // first start moves to another free port should the port have been taken meanwhile.
    auto args = [&](uint16_t port) {
      pipeline::testing::WriteFile(conf, "listener " + std::to_string(port) + text);
      return std::vector<std::string>{"mosquitto", "-c", conf};
    };
    const bool first = !started_;
    started_ = true;
    return server_.StartOnFreePort(args, &port_, first, "apt-get install mosquitto", &why_);
  }

  // SIGTERM, and SIGKILL when the broker has not exited within 2 s.
  void Stop() { server_.Signal(SIGTERM, 2000); }

 private:
  pipeline::testing::TempDir dir_;  // the config, the password file and the broker's log
  uint16_t port_ = 0;
  bool started_ = false;  // once started, a restart keeps the port
  BrokerSecurity security_;
  pipeline::testing::LoopbackServer server_;
  std::string why_;
};

}  // namespace vigil::gateway::testing
