#pragma once

// The Modbus/TCP inline proxy. It accepts SCADA/HMI clients on `listen` and gives each client
// its own thread and its own connection to the PLC at `upstream` (so a slow client or a slow
// answer never holds up another client). libmodbus frames every request (modbus_receive) and
// every PLC response (modbus_receive_confirmation), builds the exception responses
// (modbus_reply_exception) and the forwarded requests (modbus_send_raw_request); the proxy
// checks the MBAP header on both sides (modbus_frame.h) and restores the client's transaction
// id on the response it relays.
//
//   reads (1-4)             forwarded
//   writes (5, 6, 15, 16, 23) decided by the Decider; enforced denials get the decision's
//                           exception code, everything else is forwarded
//   other function codes    decided by Decider::DecideOther
//   malformed frames        counted; the client's connection is closed (other clients go on)
//   PLC silent or broken    exception 0x0B (gateway target failed to respond) to the client,
//                           the PLC connection is reopened for the next request
//
// Listener callbacks run on the client's thread once the decision is made, before the request
// is answered or forwarded.

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "core/config.h"
#include "core/status.h"
#include "gateway/decider.h"
#include "gateway/modbus_frame.h"

namespace vigil::gateway {

struct ProxyStats {
  std::atomic<uint64_t> connections{0};       // clients accepted
  std::atomic<uint64_t> refused{0};           // clients turned away (max_clients)
  std::atomic<uint64_t> clients{0};           // connected now
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> others{0};
  std::atomic<uint64_t> malformed{0};         // frames refused; their connection closed
  std::atomic<uint64_t> upstream_errors{0};   // PLC unreachable, silent or answering garbage
};

class ModbusProxy {
 public:
  using Listener = std::function<void(const ParsedFrame&, const WriteDecision&)>;

  // `decider` must outlive the proxy. `listener` (may be empty) hears every decision on a write
  // or other function code.
  // The acceptor and every client's thread run at SCHED_FIFO `realtime_priority` (0: normal
  // scheduling; core/thread_priority.h).
  ModbusProxy(const ModbusConfig& config, Decider& decider, Listener listener,
              int realtime_priority = 0);
  ~ModbusProxy();  // Stop()
  ModbusProxy(const ModbusProxy&) = delete;
  ModbusProxy& operator=(const ModbusProxy&) = delete;

  // Binds the listen address (port 0: any free port) and starts accepting. kUnavailable naming
  // the address when it cannot be bound; kFailedPrecondition when already started.
  core::Status Start();
  // Closes the listener and every client connection and joins their threads. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  const ProxyStats& stats() const { return stats_; }
  // Whether the real-time priority was applied (to the acceptor, at Start; OK when it was 0).
  const core::Status& priority_status() const { return priority_status_; }

 private:
  struct Client;
  void AcceptLoop();
  void Serve(Client* client);

  const ModbusConfig config_;
  Decider& decider_;
  const Listener listener_;
  const int realtime_priority_;
  core::Status priority_status_;
  ProxyStats stats_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::list<std::unique_ptr<Client>> clients_;  // guarded by mu_
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace vigil::gateway
