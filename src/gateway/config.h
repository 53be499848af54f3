#pragma once

// The gateway's configuration file (YAML, `vigil gateway --config FILE`). Full schema with
// defaults and an example: docs/gateway.md. Unknown keys are errors, and every error names the
// input, the line and column (1-based) and the key path:
//   gw.yaml:12:7: assets[2].max: expected a number >= assets[2].min (0), got -3

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "gateway/telemetry_schema.h"
#include "policy/decision.h"

namespace vigil::gateway {

// monitor: every write reaches the PLC; denials are recorded as would-have-denied.
// enforce: denied writes get a Modbus exception and never reach the PLC.
enum class Mode : uint8_t { kMonitor, kEnforce };
std::string_view ModeName(Mode m);  // "monitor", "enforce"

// Which Modbus table a write goes to.
enum class RegisterKind : uint8_t { kCoil, kHolding };
std::string_view RegisterKindName(RegisterKind k);  // "coil", "holding"

// One actuator behind the proxy: a coil or holding register the clients write.
struct AssetConfig {
  std::string name;
  RegisterKind kind = RegisterKind::kHolding;
  uint16_t address = 0;
  int unit = -1;  // Modbus unit id 0..255; -1 matches any
  double min = 0;
  double max = 65535;  // coils: 0..1
  // Largest change per second against the last value the proxy passed (0: no rate limit).
  double max_rate = 0;
  // The actuator's column in the learned state model (e.g. "S_PU1"); empty: no model check.
  std::string signal;
  bool critical = false;  // fails closed when the model cannot answer in time
  std::optional<Mode> mode;  // overrides the gateway's mode for this asset
};

struct ModbusConfig {
  core::HostPort listen{"127.0.0.1", 5020};
  core::HostPort upstream{"127.0.0.1", 502};
  uint32_t upstream_timeout_ms = 1000;  // 1..60000
  uint32_t max_clients = 16;            // 1..1024
  bool deny_unmapped_writes = true;     // writes to an address no asset names
  bool deny_other_functions = true;     // function codes other than 1-6, 15, 16, 23
};

struct DecisionConfig {
  uint32_t deadline_us = 2000;         // model verdict deadline, 1..10^7
  uint32_t breaker_failures = 5;       // consecutive late/failed verdicts that open the breaker
  uint32_t breaker_cooldown_ms = 1000; // how long an open breaker skips the model
  // SCHED_FIFO priority of the threads a write waits on (the proxy's and the model's), 0 (off)
  // .. 99 (docs/gateway.md, "Priority")
  uint32_t realtime_priority = 10;
};

struct ActuatorModelConfig {
  std::string training;              // BATADAL-format CSV of normal operation; empty: no model
  std::vector<std::string> actuators;  // default: every S_* column
  std::vector<std::string> context;    // default: every L_* column
  uint32_t bins = 10;                // level bins per context signal, 2..1000
  uint32_t min_support = 20;         // training rows a bin needs before it can deny, >= 1
  double max_share = 0.0;            // a state seen in at most this share of a bin's rows is
                                     // inconsistent there, in [0, 0.5)
  uint64_t state_max_age_s = 7200;   // plant readings older than this are not used
};

// How telemetry is scored for sensor inconsistencies (needs model.training: the models learn
// from the same CSV, over the signals the topics carry).
struct TelemetryScoringConfig {
  bool predictors = true;    // per-signal predictors (the ics-residual family)
  bool autoencoder = true;   // the KitNET-style autoencoder ensemble over all signals
  double target_fpr = 0.01;  // false-alarm rate per scored row the thresholds aim at, (0, 0.5]
};

// TLS to the MQTT broker (libmosquitto over OpenSSL). The broker's certificate must chain to
// ca_file and name the broker's host (DNS name or IP address); a client certificate is sent
// when cert_file and key_file are given (a broker with `require_certificate true` needs one).
struct MqttTlsConfig {
  std::string ca_file;    // PEM, required
  std::string cert_file;  // PEM client certificate; empty: none (then key_file is empty too)
  std::string key_file;   // its unencrypted PEM private key
};

// MQTT telemetry (libmosquitto): the topics the gateway subscribes to and their schemas.
// No topics: no telemetry (the plant state stays empty).
struct TelemetryConfig {
  core::HostPort broker{"127.0.0.1", 1883};
  std::string client_id;              // default "vigil-gateway-<host>"
  std::string username;               // empty: no username/password sent
  std::string password_file;          // the password is this file's first line; needs username
  std::optional<MqttTlsConfig> tls;   // absent: plain TCP
  uint32_t keepalive_s = 30;          // 5..3600
  uint32_t qos = 0;                   // 0 or 1
  uint32_t reconnect_min_s = 1;       // first delay before reconnecting, 1..3600
  uint32_t reconnect_max_s = 30;      // the delay doubles up to this, >= reconnect_min_s
  std::vector<TopicSchema> topics;
  TelemetryScoringConfig scoring;
};

// The rules every Modbus request is decided by (docs/gateway.md, "Rules"): the built-in rules
// generated from this config (unmapped, range, rate, model, function), then `rules`, in the
// policy engine's rule language (policy/engine.h), which may add rules or append to / override
// the built-in ones.
struct GatewayPolicyConfig {
  std::vector<std::string> rules;  // rules files or one bundle manifest; empty: built-ins only
  policy::RolloutStage stage = policy::RolloutStage::kEnforceAll;
  std::string version;             // "" = the digest of the rules' bytes
};

struct GatewayConfig {
  std::string source;  // the file name, for messages
  Mode mode = Mode::kMonitor;
  std::string host;                   // default gethostname()
  std::string state_dir = "/var/lib/vigil";
  std::string audit_dir;              // default <state_dir>/audit
  std::vector<std::string> sinks = {"stdout"};  // pipeline::MakeSink specs
  bool metrics_enabled = true;
  core::HostPort metrics_listen{"127.0.0.1", 9465};
  ModbusConfig modbus;
  DecisionConfig decision;
  ActuatorModelConfig model;
  TelemetryConfig telemetry;
  GatewayPolicyConfig policy;
  std::vector<AssetConfig> assets;
};

// Parses and validates a gateway config document; `source` names it in errors. Never throws;
// every failure is kInvalidArgument with "source:line:column: key: reason".
core::Result<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source);

// Reads and parses `path` (kNotFound when absent; files over core::kMaxConfigBytes refused).
core::Result<GatewayConfig> LoadGatewayConfig(const std::string& path);

}  // namespace vigil::gateway
