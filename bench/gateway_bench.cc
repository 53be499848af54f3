// Added latency of a Modbus write through the gateway's proxy, against writing to the PLC
// directly, measured side by side in one run: a libmodbus server as the PLC on loopback, one
// libmodbus client connected to the PLC and one connected to the proxy (enforce mode, the write
// decided by the policy engine's built-in gateway rules - range, and for the coil the
// actuator-state model asked through the inference engine with fresh tank levels - audit log on,
// fsync never). Writes alternate between the two paths so both see the same machine load.
//
//   build/release/bench/gateway_bench [--writes N] [--data DIR] [--plc-priority N]
//
// The PLC stands for a separate device: by default its thread runs at SCHED_FIFO 20, so that
// the machine's load (other processes on these two cores) does not delay its answers; on a
// loaded machine a PLC at normal priority answers a write forwarded by the proxy's real-time
// thread later than one from the benchmark's own (normal) thread — the waker is not a fair-class
// task, so the PLC's wake-up does not preempt — and that delay would be counted as the gateway's.
// --plc-priority 0 measures that way all the same.
//
// Prints P50/P90/P99 of each path and of the difference of the quantiles, and the machine's
// load average before and after (the figures mean little on a loaded machine).

#include <modbus/modbus.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "../tests/unit/gateway/fake_plc.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "core/thread_priority.h"
#include "gateway/gateway.h"

namespace {

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

modbus_t* Connect(uint16_t port) {
  modbus_t* c = modbus_new_tcp("127.0.0.1", port);
  if (c == nullptr || modbus_connect(c) != 0) return nullptr;
  modbus_set_slave(c, 1);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vigil;
  CLI::App app{"gateway_bench: added latency of a Modbus write through the proxy"};
  int writes = 20000;
  std::string data = std::string(VIGIL_SOURCE_DIR) + "/../shared/data/batadal";
  app.add_option("--writes", writes, "Writes per path")->check(CLI::Range(100, 10000000));
  app.add_option("--data", data, "BATADAL directory (dataset03 trains the model)");
  int plc_priority = 20;
  app.add_option("--plc-priority", plc_priority,
                 "SCHED_FIFO priority of the PLC's thread (0: normal scheduling)")
      ->check(CLI::Range(0, 99));
  int client_priority = 5;
  app.add_option("--client-priority", client_priority,
                 "SCHED_FIFO priority of the measuring client's thread (0: normal scheduling)")
      ->check(CLI::Range(0, 99));
  CLI11_PARSE(app, argc, argv);

  std::printf("load average before: %s\n", LoadAverage().c_str());
  gateway::testing::FakePlc plc;
  if (!plc.Start(plc_priority)) {
    std::fprintf(stderr, "gateway_bench: cannot start the PLC%s\n",
                 plc_priority > 0 ? " at real-time priority (root, or --plc-priority 0)" : "");
    return 1;
  }
  if (client_priority > 0) {
    const core::Status st = core::SetRealtimePriority(client_priority);
    if (!st.ok()) {
      std::fprintf(stderr, "gateway_bench: --client-priority: %s\n", st.message().c_str());
      return 1;
    }
  }
  std::printf("client thread: %s\n", client_priority > 0
                                         ? ("SCHED_FIFO " + std::to_string(client_priority)).c_str()
                                         : "normal scheduling");
  std::printf("PLC thread: %s\n", plc_priority > 0
                                      ? ("SCHED_FIFO " + std::to_string(plc_priority)).c_str()
                                      : "normal scheduling");
  const std::string text =
      "mode: enforce\nsinks: []\nmetrics: {enabled: false}\n"
      "modbus: {listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:" + std::to_string(plc.port()) +
      "\"}\nmodel: {training: \"" + data + "/BATADAL_dataset03.csv\"}\n"
      "assets:\n  - {name: PU2, register: coil, address: 2, signal: S_PU2, critical: true}\n"
      "  - {name: SP, register: holding, address: 10, min: 0, max: 1000}\n";
  auto cfg = gateway::ParseGatewayConfig(text, "bench.yaml");
  if (!cfg.has_value()) {
    std::fprintf(stderr, "gateway_bench: %s\n", cfg.error().message().c_str());
    return 2;
  }
  const std::string dir = std::filesystem::temp_directory_path() / "vigil-gateway-bench-audit";
  std::filesystem::remove_all(dir);
  auto signer = audit::Ed25519Signer::Generate();
  audit::AuditOptions ao;
  ao.fsync = audit::FsyncMode::kNever;
  auto log = audit::AuditLog::Open(dir, ao, *signer, core::SystemClock::Get());
  if (!log.has_value()) {
    std::fprintf(stderr, "gateway_bench: %s\n", log.error().message().c_str());
    return 1;
  }
  auto g = gateway::Gateway::Create(*cfg, {log->get(), {}}, core::SystemClock::Get());
  if (!g.has_value() || !(*g)->Start().ok()) {
    std::fprintf(stderr, "gateway_bench: cannot start the gateway\n");
    return 1;
  }
  const int64_t now = core::SystemClock::Get().MonotonicNanos();
  const double levels[] = {3.0, 2.05, 3.19, 2.79, 2.66, 5.32, 1.56};
  for (int i = 0; i < 7; ++i) (*g)->plant().Set("L_T" + std::to_string(i + 1), levels[i], now);

  modbus_t* direct = Connect(plc.port());
  modbus_t* proxied = Connect((*g)->modbus_port());
  if (direct == nullptr || proxied == nullptr) {
    std::fprintf(stderr, "gateway_bench: cannot connect\n");
    return 1;
  }
  std::vector<double> d_reg, p_reg, d_coil, p_coil;
  // Failed writes are timed too (an exception answer is an answer) and counted by error.
  std::map<std::string, int> failures;
  auto timed = [&](auto&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = fn();
    const auto t1 = std::chrono::steady_clock::now();
    if (rc != 1) ++failures[modbus_strerror(errno)];
    return std::chrono::duration<double, std::micro>(t1 - t0).count();
  };
  for (int i = 0; i < writes; ++i) {
    const uint16_t v = static_cast<uint16_t>(i % 1000);
    d_reg.push_back(timed([&] { return modbus_write_register(direct, 10, v); }));
    p_reg.push_back(timed([&] { return modbus_write_register(proxied, 10, v); }));
    d_coil.push_back(timed([&] { return modbus_write_bit(direct, 2, i & 1); }));
    p_coil.push_back(timed([&] { return modbus_write_bit(proxied, 2, i & 1); }));
  }
  auto row = [](const char* name, const std::vector<double>& d, const std::vector<double>& p) {
    std::printf("%-34s %9.1f %9.1f %9.1f   %9.1f %9.1f %9.1f   %+8.1f %+8.1f %+8.1f\n", name,
                Quantile(d, 0.5), Quantile(d, 0.9), Quantile(d, 0.99), Quantile(p, 0.5),
                Quantile(p, 0.9), Quantile(p, 0.99), Quantile(p, 0.5) - Quantile(d, 0.5),
                Quantile(p, 0.9) - Quantile(d, 0.9), Quantile(p, 0.99) - Quantile(d, 0.99));
  };
  // The far tail: rarer stalls (a lock's holder kept off a core, a late model verdict) show
  // here long before they reach the P99.
  auto tail = [](const char* name, const std::vector<double>& d, const std::vector<double>& p) {
    auto over = [](const std::vector<double>& v) {
      return std::count_if(v.begin(), v.end(), [](double us) { return us > 1000; });
    };
    std::printf("%-34s P99.9 %9.1f / %9.1f   max %9.1f / %9.1f   over 1 ms %ld / %ld\n", name,
                Quantile(d, 0.999), Quantile(p, 0.999), Quantile(d, 1.0), Quantile(p, 1.0),
                static_cast<long>(over(d)), static_cast<long>(over(p)));
  };
  row("write register (range check)", d_reg, p_reg);
  row("write coil (range + model check)", d_coil, p_coil);
  std::printf("%-34s %s\n", "", "direct / via proxy");
  tail("write register (range check)", d_reg, p_reg);
  tail("write coil (range + model check)", d_coil, p_coil);
  const nlohmann::json s = (*g)->Summary();
  std::printf("gateway: %s, fallbacks %s\n", s["writes"].dump().c_str(),
              s["fallbacks"].dump().c_str());
  for (const auto& [why, n] : failures) std::printf("failed writes: %d (%s)\n", n, why.c_str());
  std::printf("load average after: %s\n", LoadAverage().c_str());
  modbus_close(direct);
  modbus_free(direct);
  modbus_close(proxied);
  modbus_free(proxied);
  (*g)->Stop();
  g->reset();
  (void)(*log)->Close();
  std::filesystem::remove_all(dir);
  return 0;
}
