#pragma once

// The gateway's MQTT telemetry (libmosquitto): subscribes to the configured topics, checks every
// payload against its topic's schema (telemetry_schema.h), writes accepted readings into the
// plant state the Modbus write checks read, and feeds the sensor-inconsistency scorer a row
// whenever every signal it scores has a new reading since the previous row.
//
// The client runs on its own thread (mosquitto_loop), so nothing here ever waits on the Modbus
// path or holds it up: the plant state takes one short write lock per accepted payload. A
// refused payload is counted by reason (and logged now and then), never more. When the broker
// is unreachable or the connection drops, the thread reconnects after reconnect_min_s, doubling
// the delay after each failure up to reconnect_max_s; a successful connection resets it and
// subscribes to every topic again.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "gateway/config.h"
#include "gateway/plant_state.h"
#include "gateway/sensor_scoring.h"

struct mosquitto;
struct mosquitto_message;

namespace vigil::gateway {

struct TelemetryStats {
  std::atomic<uint64_t> messages{0};  // every message received
  std::atomic<uint64_t> accepted{0};
  std::array<std::atomic<uint64_t>, kPayloadErrors> rejected{};  // per PayloadError
  std::atomic<uint64_t> connects{0};          // connections the broker accepted
  std::atomic<uint64_t> connect_failures{0};  // attempts that failed or were refused
  std::atomic<uint64_t> disconnects{0};       // established connections lost
  std::atomic<uint64_t> rows_scored{0};
  std::atomic<uint64_t> rows_stale{0};  // complete rows not scored: a reading older than max age
  std::atomic<bool> connected{false};
};

class Telemetry {
 public:
  using FindingFn = std::function<void(const SensorFinding&)>;

  // `plant`, `clock` and `scorer` (may be null: no scoring) must outlive it. Readings older than
  // `max_age_ns` do not make a row. `on_finding` (may be empty) runs on the telemetry thread.
  Telemetry(const TelemetryConfig& config, int64_t max_age_ns, PlantState& plant,
            const core::Clock& clock, SensorScorer* scorer, FindingFn on_finding);
  ~Telemetry();  // Stop()
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // Starts the client thread; it connects in the background (an unreachable broker is not an
  // error here: it is retried and counted). kInternal when libmosquitto cannot make a client;
  // the errors of reading telemetry.password_file and the telemetry.tls files (named by key).
  core::Status Start();
  void Stop();

  // One received message: schema check, plant state, scoring. Thread-safe.
  void HandleMessage(std::string_view topic, std::string_view payload);

  const TelemetryStats& stats() const { return stats_; }
  // "topic: reason: detail" of the last refused payload ("" when none).
  std::string last_error() const;

 private:
  // Sets the client's username/password and TLS from the config (reading their files).
  core::Status Authenticate();
  void Run();
  void OnConnect(int rc);
  void OnDisconnect(int rc);
  const TopicSchema* Match(std::string_view topic) const;
  void FeedScorer(const std::vector<std::pair<std::string, double>>& values, int64_t now);

  const TelemetryConfig config_;
  const int64_t max_age_ns_;
  PlantState& plant_;
  const core::Clock& clock_;
  SensorScorer* scorer_;
  FindingFn on_finding_;
  TelemetryStats stats_;

  mosquitto* mosq_ = nullptr;
  std::thread thread_;
  std::mutex run_mu_;
  std::condition_variable run_cv_;
  bool stop_ = false;                 // guarded by run_mu_
  std::atomic<bool> stopping_{false};
  uint32_t delay_ms_ = 0;             // the next reconnect delay (telemetry thread only)

  mutable std::mutex handle_mu_;  // HandleMessage, the row being assembled, last_error_
  std::unordered_map<std::string, size_t> scored_index_;  // signal -> position in the row
  std::vector<double> row_;
  std::vector<int64_t> row_ns_;
  std::vector<bool> row_fresh_;  // a reading since the last row
  size_t row_missing_ = 0;
  std::string last_error_;
};

}  // namespace vigil::gateway
