#include "gateway/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

constexpr char kExample[] = R"(mode: enforce
host: gw1
state_dir: /tmp/vigil-gw
sinks: [stdout, "file:/tmp/gw.jsonl"]
metrics: {listen: "127.0.0.1:0"}
modbus:
  listen: 127.0.0.1:1502
  upstream: 10.0.0.5:502
  upstream_timeout_ms: 500
  unmapped_writes: allow
decision: {deadline_us: 500, breaker_failures: 3, breaker_cooldown_ms: 200, realtime_priority: 0}
model:
  training: data/BATADAL_dataset03.csv
  actuators: [S_PU1, S_PU2]
  state_max_age: 2h
policy: {rules: [gw-rules.yaml, local.yaml], stage: enforce-non-critical, version: "2026.11.27-1"}
assets:
  - {name: PU1, register: coil, address: 0, signal: S_PU1, critical: true}
  - {name: PU2, register: coil, address: 1, signal: S_PU2, mode: monitor}
  - {name: V2-setpoint, register: holding, address: 10, unit: 1, min: 0, max: 100, max_rate: 5}
)";

TEST(GatewayConfigTest, ParsesEveryKey) {
  auto c = ParseGatewayConfig(kExample, "gw.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->mode, Mode::kEnforce);
  EXPECT_EQ(c->host, "gw1");
  EXPECT_EQ(c->audit_dir, "/tmp/vigil-gw/audit");
  EXPECT_EQ(c->sinks.size(), 2u);
  EXPECT_EQ(c->metrics_listen.port, 0);
  EXPECT_EQ(c->modbus.listen.port, 1502);
  EXPECT_EQ(c->modbus.upstream.host, "10.0.0.5");
  EXPECT_EQ(c->modbus.upstream_timeout_ms, 500u);
  EXPECT_FALSE(c->modbus.deny_unmapped_writes);
  EXPECT_TRUE(c->modbus.deny_other_functions);
  EXPECT_EQ(c->decision.deadline_us, 500u);
  EXPECT_EQ(c->decision.breaker_failures, 3u);
  EXPECT_EQ(c->decision.realtime_priority, 0u);
  EXPECT_EQ(c->model.state_max_age_s, 7200u);
  ASSERT_EQ(c->assets.size(), 3u);
  EXPECT_EQ(c->assets[0].kind, RegisterKind::kCoil);
  EXPECT_EQ(c->assets[0].max, 1);
  EXPECT_TRUE(c->assets[0].critical);
  EXPECT_EQ(c->assets[1].mode, Mode::kMonitor);
  EXPECT_EQ(c->assets[2].unit, 1);
  EXPECT_EQ(c->assets[2].max, 100);
  EXPECT_EQ(c->assets[2].max_rate, 5);
  EXPECT_EQ(c->policy.rules, (std::vector<std::string>{"gw-rules.yaml", "local.yaml"}));
  EXPECT_EQ(c->policy.stage, policy::RolloutStage::kEnforceNonCritical);
  EXPECT_EQ(c->policy.version, "2026.11.27-1");
}

TEST(GatewayConfigTest, PolicyKeysAreChecked) {
  auto def = ParseGatewayConfig("", "gw.yaml");
  ASSERT_TRUE(def.has_value());
  EXPECT_TRUE(def->policy.rules.empty());
  EXPECT_EQ(def->policy.stage, policy::RolloutStage::kEnforceAll);
  auto stage = ParseGatewayConfig("mode: enforce\npolicy:\n  stage: everything\n", "gw.yaml");
  ASSERT_FALSE(stage.has_value());
  EXPECT_THAT(stage.error().message(),
              HasSubstr("gw.yaml:3:10: policy.stage: expected monitor, enforce-non-critical or "
                        "enforce-all"));
  auto key = ParseGatewayConfig("policy: {rule: [a.yaml]}\n", "gw.yaml");
  ASSERT_FALSE(key.has_value());
  EXPECT_THAT(key.error().message(), HasSubstr("gw.yaml:1:10: policy.rule: unknown key"));
  auto twice = ParseGatewayConfig("policy: {rules: [a.yaml, a.yaml]}\n", "gw.yaml");
  ASSERT_FALSE(twice.has_value());
  EXPECT_THAT(twice.error().message(), HasSubstr("policy.rules[1]"));
}

TEST(GatewayConfigTest, EmptyDocumentGivesDefaults) {
  auto c = ParseGatewayConfig("", "gw.yaml");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->mode, Mode::kMonitor);
  EXPECT_TRUE(c->assets.empty());
  EXPECT_EQ(c->decision.realtime_priority, 10u);
}

struct BadCase {
  const char* yaml;
  const char* message;
};

TEST(GatewayConfigTest, ErrorsNameFileLineAndKey) {
  const BadCase cases[] = {
      {"mode: enforce\nmodbus:\n  lisen: 1.2.3.4:5\n", "gw.yaml:3:3: modbus.lisen: unknown key"},
      {"mode: block\n", "gw.yaml:1:7: mode: expected monitor or enforce"},
      {"assets:\n  - {name: a, register: holding, address: 1, min: 10, max: 5}\n",
       "gw.yaml:2:60: assets[0].max: expected a number >= assets[0].min (10), got 5"},
      {"assets:\n  - {name: a, register: coil, address: 1, max: 7}\n",
       "assets[0].max: a coil is 0 or 1"},
      {"assets:\n  - {name: a, address: 70000}\n", "gw.yaml:2:24: assets[0].address"},
      {"assets:\n  - {name: a, address: 1}\n  - {name: a, address: 2}\n",
       "gw.yaml:3:5: assets[1].name: asset \"a\" named twice"},
      {"assets:\n  - {name: a, address: 1}\n  - {name: b, address: 1}\n",
       "assets[1].address: holding 1 (unit -1) belongs to another asset"},
      {"assets:\n  - {register: coil}\n", "assets[0]: missing key 'name'"},
      {"modbus: {upstream: nohost}\n", "modbus.upstream"},
      {"model: {max_share: 0.5}\n", "model.max_share: expected a number in [0, 0.5)"},
      {"model: {actuators: [S_PU1]}\nassets:\n  - {name: a, register: coil, address: 0, "
       "signal: S_PU9}\n",
       "assets[0].signal: \"S_PU9\" is not in model.actuators"},
      {"sinks: [kafka]\n", "sinks[0]: expected stdout, null, file:PATH, hub:URL or nats:URL"},
      {"modbus: [1, 2\n", "gw.yaml:2:1: invalid YAML"},
      {"decision: {deadline_us: 0}\n", "decision.deadline_us: expected an integer in 1..10000000"},
      {"decision: {realtime_priority: 100}\n",
       "decision.realtime_priority: expected an integer in 0..99"},
      {"telemetry:\n  tls: {cert_file: c.pem, key_file: c.key}\n",
       "gw.yaml:2:8: telemetry.tls: missing key 'ca_file'"},
      {"telemetry:\n  tls: {ca_file: ca.pem, cert_file: c.pem}\n",
       "telemetry.tls: 'cert_file' and 'key_file' go together"},
      {"telemetry:\n  tls: {ca_file: ca.pem, capath: /etc/ssl}\n",
       "gw.yaml:2:26: telemetry.tls.capath: unknown key"},
      {"telemetry:\n  password_file: /etc/vigil/mqtt.pass\n",
       "gw.yaml:2:18: telemetry.password_file: a password needs 'username' beside it"},
      {"telemetry:\n  username: \"\"\n", "telemetry.username: expected a non-empty string"},
  };
  for (const BadCase& c : cases) {
    auto r = ParseGatewayConfig(c.yaml, "gw.yaml");
    ASSERT_FALSE(r.has_value()) << c.yaml;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.error().message(), HasSubstr(c.message)) << c.yaml;
  }
}

TEST(GatewayConfigTest, ExampleConfigShippedInDeployParses) {
  auto c = LoadGatewayConfig(VIGIL_SOURCE_DIR "/deploy/gateway.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_FALSE(c->assets.empty());
}

TEST(GatewayConfigTest, MissingFileIsNotFound) {
  auto c = LoadGatewayConfig("/nonexistent/gw.yaml");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), core::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil::gateway
