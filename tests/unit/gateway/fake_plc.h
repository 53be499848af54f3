#pragma once

// A PLC for tests and benchmarks: a libmodbus TCP server on loopback (any free port) that
// answers every client from one register mapping, on its own thread. Reads and writes go
// through libmodbus' own request handling (modbus_reply).

#include <modbus/modbus.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace vigil::gateway::testing {

class FakePlc {
 public:
  // 1000 coils, 1000 holding registers, 1000 input registers, 1000 discrete inputs.
  FakePlc();
  ~FakePlc();
  // Binds 127.0.0.1:0 and serves; false when it cannot. `realtime_priority` > 0 runs the
  // serving thread at SCHED_FIFO of that priority (benchmarks: the PLC stands for a separate
  // device, which the machine's load must not delay); false when the host refuses it.
  bool Start(int realtime_priority = 0);
  uint16_t port() const { return port_; }
  uint16_t holding(int address);
  uint8_t coil(int address);
  void SetInput(int address, uint16_t value);
  uint64_t requests() const { return requests_.load(); }

 private:
  void Loop();
  modbus_t* ctx_ = nullptr;
  modbus_mapping_t* map_ = nullptr;
  std::mutex mu_;  // the mapping
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<uint64_t> requests_{0};
  std::thread thread_;
};

}  // namespace vigil::gateway::testing
