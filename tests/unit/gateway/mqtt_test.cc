// MQTT telemetry into the gateway between real peers on loopback: a private mosquitto broker
// (started after the gateway, so the gateway's first connection attempts fail and it reconnects),
// a libmosquitto publisher replaying BATADAL dataset03 rows as telemetry, a libmodbus server as
// the PLC and a libmodbus client writing through the proxy.

#include <modbus/modbus.h>
#include <mosquitto.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "../pipeline/test_util.h"
#include "../test_pki.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "audit/verify.h"
#include "fake_plc.h"
#include "memory_sink.h"
#include "gateway/gateway.h"
#include "mosquitto_broker.h"
#include "sensor/batadal.h"

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

bool WaitFor(const std::function<bool()>& done, int seconds = 10) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

bool IsTank(const std::string& s) { return s.rfind("L_T", 0) == 0; }

// Tank levels (in m, with units) on ctown/tanks; every other signal on ctown/network, the pump
// and valve states as booleans.
std::string ConfigText(const sensor::BatadalTable& t, uint16_t plc, uint16_t broker) {
  std::string tanks, network;
  for (const std::string& s : t.signals) {
    if (IsTank(s)) {
      tanks += "        - {name: " + s + ", min: 0, max: 10, units: m}\n";
    } else {
      network += "        - {name: " + s +
                 (s.rfind("S_", 0) == 0 ? ", type: bool}\n" : ", min: 0, max: 1000}\n");
    }
  }
  return "mode: enforce\nhost: test-gw\nmetrics: {listen: \"127.0.0.1:0\"}\n"
         "modbus: {listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:" + std::to_string(plc) +
         "\"}\ndecision: {deadline_us: 200000}\n"
         "model: {training: \"" VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv\"}\n"
         "telemetry:\n  broker: \"127.0.0.1:" + std::to_string(broker) + "\"\n"
         "  reconnect_min_s: 1\n  reconnect_max_s: 2\n  qos: 1\n  topics:\n"
         "    - topic: ctown/tanks\n      signals:\n" + tanks +
         "    - topic: ctown/network\n      signals:\n" + network +
         "assets:\n  - {name: PU2, register: coil, address: 2, signal: S_PU2, critical: true}\n";
}

// A publishing client; with `pki`, over TLS with the client certificate and user "sensor".
class Publisher {
 public:
  explicit Publisher(uint16_t port, const vigil::testing::TestPki* pki = nullptr) {
    mosquitto_lib_init();
    mosq_ = mosquitto_new("vigil-test-publisher", true, nullptr);
    ok_ = mosq_ != nullptr;
    if (ok_ && pki != nullptr) {
      ok_ = mosquitto_tls_set(mosq_, (*pki)("ca.pem").c_str(), nullptr,
                              (*pki)("client.pem").c_str(), (*pki)("client.key").c_str(),
                              nullptr) == MOSQ_ERR_SUCCESS &&
            mosquitto_username_pw_set(mosq_, "sensor", "sensor-pass") == MOSQ_ERR_SUCCESS;
    }
    ok_ = ok_ && mosquitto_connect(mosq_, "127.0.0.1", port, 30) == MOSQ_ERR_SUCCESS &&
          mosquitto_loop_start(mosq_) == MOSQ_ERR_SUCCESS;
  }
  ~Publisher() {
    if (mosq_ == nullptr) return;
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, false);
    mosquitto_destroy(mosq_);
  }
  bool ok() const { return ok_; }
  bool Publish(const std::string& topic, const std::string& payload) {
    return mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                             payload.data(), 1, false) == MOSQ_ERR_SUCCESS;
  }
  // One table row as the two payloads.
  bool PublishRow(const sensor::BatadalTable& t, std::span<const double> row) {
    nlohmann::json tanks = nlohmann::json::object(), network = nlohmann::json::object();
    for (size_t c = 0; c < t.cols(); ++c) {
      const std::string& s = t.signals[c];
      if (IsTank(s)) {
        tanks[s] = {{"value", row[c]}, {"unit", "m"}};
      } else if (s.rfind("S_", 0) == 0) {
        network[s] = row[c] != 0;
      } else {
        network[s] = row[c];
      }
    }
    return Publish("ctown/tanks", tanks.dump()) && Publish("ctown/network", network.dump());
  }

 private:
  mosquitto* mosq_ = nullptr;
  bool ok_ = false;
};

// A gateway made from `yaml` and started; null (with the failure recorded) when either fails.
std::unique_ptr<Gateway> StartedGateway(const std::string& yaml) {
  auto cfg = ParseGatewayConfig(yaml, "mqtt.yaml");
  if (!cfg.has_value()) return ADD_FAILURE() << cfg.error().message(), nullptr;
  auto g = Gateway::Create(*cfg, {}, core::SystemClock::Get());
  if (!g.has_value()) return ADD_FAILURE() << g.error().message(), nullptr;
  if (core::Status st = (*g)->Start(); !st.ok()) return ADD_FAILURE() << st.message(), nullptr;
  return std::move(g).value();
}

// Publishes {"x": value} on topic t (over TLS with `pki`) until the gateway has accepted a
// payload, then checks the plant state holds the value.
void ExpectReadingArrives(Gateway& g, uint16_t port, const vigil::testing::TestPki* pki,
                          double value) {
  Publisher pub(port, pki);
  ASSERT_TRUE(pub.ok());
  const TelemetryStats& ts = g.telemetry()->stats();
  const std::string payload = nlohmann::json{{"x", value}}.dump();
  ASSERT_TRUE(WaitFor([&] {
    pub.Publish("t", payload);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return ts.accepted.load() >= 1;
  }));
  EXPECT_DOUBLE_EQ(g.plant().Get("x")->value, value);
}

TEST(MqttTelemetryTest, TelemetryFeedsWriteDecisionsAndBadPayloadsAreCounted) {
  auto table = sensor::ReadBatadalTable(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
  ASSERT_TRUE(table.has_value()) << table.error().message();
  testing::FakePlc plc;
  ASSERT_TRUE(plc.Start());
  testing::MosquittoBroker broker;
  ASSERT_NE(broker.port(), 0);
  auto cfg = ParseGatewayConfig(ConfigText(*table, plc.port(), broker.port()), "mqtt.yaml");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
  testing::MemorySink sink;
  pipeline::testing::TempDir dir;
  auto signer = audit::Ed25519Signer::Generate();
  auto log = audit::AuditLog::Open(dir.Join("audit"), {}, *signer, core::SystemClock::Get());
  ASSERT_TRUE(log.has_value()) << log.error().message();
  auto created = Gateway::Create(*cfg, {log->get(), {&sink}}, core::SystemClock::Get());
  ASSERT_TRUE(created.has_value()) << created.error().message();
  std::unique_ptr<Gateway> g = std::move(created).value();
  ASSERT_TRUE(g->Start().ok());
  const TelemetryStats& ts = g->telemetry()->stats();

  // The broker is not up yet: the gateway counts the failure and keeps trying.
  ASSERT_TRUE(WaitFor([&] { return ts.connect_failures.load() >= 1; }));
  if (!broker.Start()) GTEST_SKIP() << broker.why();
  ASSERT_TRUE(WaitFor([&] { return ts.connected.load(); })) << g->Summary().dump();
  Publisher pub(broker.port());
  ASSERT_TRUE(pub.ok());
  // The subscription takes effect a moment after the connection: publish until it does.
  const auto row = [&](size_t r) { return std::span<const double>(table->row(r), table->cols()); };
  ASSERT_TRUE(WaitFor([&] {
    pub.PublishRow(*table, row(0));
    return WaitFor([&] { return ts.accepted.load() >= 2; }, 0) ||
           (std::this_thread::sleep_for(std::chrono::milliseconds(50)), false);
  }));
  // Replay a day of normal operation.
  for (size_t r = 1; r < 24; ++r) ASSERT_TRUE(pub.PublishRow(*table, row(r)));
  // The last row's tank level and its last network signal (the two topics) have arrived.
  const std::string last = table->signals.back();
  ASSERT_TRUE(WaitFor([&] {
    auto t1 = g->plant().Get("L_T1");
    auto other = g->plant().Get(last);
    return t1 && other && t1->value == table->row(23)[0] &&
           other->value == table->row(23)[table->cols() - 1];
  })) << g->Summary().dump();
  EXPECT_GE(ts.rows_scored.load(), 24u);

  modbus_t* client = modbus_new_tcp("127.0.0.1", g->modbus_port());
  ASSERT_NE(client, nullptr);
  modbus_set_slave(client, 1);
  modbus_set_response_timeout(client, 5, 0);
  ASSERT_EQ(modbus_connect(client), 0);
  ASSERT_EQ(modbus_write_bit(client, 2, 1), 1) << modbus_strerror(errno);

  // SCADA reports T1 nearly empty: stopping its fill pump is refused (enforce mode).
  auto publish_t1 = [&](double level) {
    std::vector<double> r(table->row(24), table->row(24) + table->cols());
    r[table->IndexOf("L_T1")] = level;
    const uint64_t before = ts.accepted.load();
    ASSERT_TRUE(pub.PublishRow(*table, r));
    ASSERT_TRUE(WaitFor([&] { return ts.accepted.load() >= before + 2; }));
  };
  publish_t1(0.5);
  errno = 0;
  EXPECT_EQ(modbus_write_bit(client, 2, 0), -1);
  EXPECT_EQ(errno, EMBXILVAL);
  EXPECT_EQ(plc.coil(2), 1);
  // With T1 half full the same command passes.
  publish_t1(3.0);
  ASSERT_EQ(modbus_write_bit(client, 2, 0), 1) << modbus_strerror(errno);
  EXPECT_EQ(plc.coil(2), 0);
  EXPECT_EQ(g->decisions().by_rule[static_cast<size_t>(Rule::kModel)].load(), 1u);

  // Bad payloads are counted by reason; the state and the proxy carry on.
  ASSERT_TRUE(pub.Publish("ctown/tanks", "{not json"));
  ASSERT_TRUE(pub.Publish("ctown/tanks", R"({"L_T1": {"value": 1, "unit": "ft"}})"));
  ASSERT_TRUE(pub.Publish("ctown/network", "[1]"));
  ASSERT_TRUE(WaitFor([&] {
    return ts.rejected[static_cast<size_t>(PayloadError::kNotJson)].load() == 1 &&
           ts.rejected[static_cast<size_t>(PayloadError::kUnits)].load() == 1 &&
           ts.rejected[static_cast<size_t>(PayloadError::kNotObject)].load() == 1;
  })) << g->Summary().dump();
  EXPECT_DOUBLE_EQ(g->plant().Get("L_T1")->value, 3.0);
  ASSERT_EQ(modbus_write_bit(client, 2, 1), 1) << modbus_strerror(errno);

  // Readings no normal hour shows (every tank near empty, no pressure while pumps run) raise a
  // sensor-inconsistency finding.
  std::vector<double> bad(table->row(25), table->row(25) + table->cols());
  for (size_t c = 0; c < bad.size(); ++c) {
    if (IsTank(table->signals[c])) bad[c] = 0.05;
    if (table->signals[c].rfind("P_J", 0) == 0) bad[c] = 0.0;
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pub.PublishRow(*table, bad));
  ASSERT_TRUE(WaitFor([&] {
    const SensorScoreStats& s = g->scorer()->stats();
    return s.findings[0].load() + s.findings[1].load() >= 1;
  })) << g->Summary().dump();

  const nlohmann::json summary = g->Summary();
  EXPECT_EQ(summary["telemetry"]["rejected"]["units"], 1);
  EXPECT_THAT(summary["telemetry"]["last_error"].get<std::string>(),
              HasSubstr("ctown/network: not-object"));
  EXPECT_GE(summary["telemetry"]["connect_failures"].get<int>(), 1);
  httplib::Client http("127.0.0.1", g->metrics_port());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body, HasSubstr("vigil_gateway_telemetry_rejected_total{reason=\"units\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("vigil_gateway_telemetry_connected 1"));
  EXPECT_THAT(metrics->body, HasSubstr("vigil_gateway_sensor_findings_total{model=\"kitnet\"}"));
  modbus_close(client);
  modbus_free(client);
  g->Stop();
  // The sensor alert is an audit record beside the write decisions.
  ASSERT_TRUE((*log)->Flush().ok());
  int sensor_records = 0;
  auto verified = audit::VerifyLog(dir.Join("audit"), {}, [&](const audit::RecordView& v) {
    if (v.type == audit::RecordType::kDecision &&
        v.payload.find("gateway.telemetry.") != std::string_view::npos) {
      ++sensor_records;
    }
    return true;
  });
  ASSERT_TRUE(verified.has_value()) << verified.error().message();
  EXPECT_GE(sensor_records, 1);
  const auto lines = sink.Lines();
  bool denied = false, sensor = false;
  for (const std::string& l : lines) {
    denied |= l.find("Actuator command denied") != std::string::npos &&
              l.find("S_PU2=0 in 0 of") != std::string::npos;
    sensor |= l.find("Sensor readings inconsistent") != std::string::npos;
  }
  EXPECT_TRUE(denied);
  EXPECT_TRUE(sensor);
}

// The broker going away is a lost connection, counted, and the gateway reconnects when it is
// back.
TEST(MqttTelemetryTest, ReconnectsAfterTheBrokerRestarts) {
  testing::MosquittoBroker broker;
  if (!broker.Start()) GTEST_SKIP() << broker.why();
  const std::string text =
      "metrics: {enabled: false}\nmodbus: {listen: \"127.0.0.1:0\"}\n"
      "telemetry:\n  broker: \"127.0.0.1:" + std::to_string(broker.port()) +
      "\"\n  reconnect_min_s: 1\n  topics:\n    - {topic: t, signals: [{name: x}]}\n";
  std::unique_ptr<Gateway> g = StartedGateway(text);
  ASSERT_NE(g, nullptr);
  const TelemetryStats& ts = g->telemetry()->stats();
  ASSERT_TRUE(WaitFor([&] { return ts.connected.load(); }));
  broker.Stop();
  ASSERT_TRUE(WaitFor([&] { return ts.disconnects.load() == 1 && !ts.connected.load(); }));
  ASSERT_TRUE(broker.Start());
  ASSERT_TRUE(WaitFor([&] { return ts.connects.load() == 2 && ts.connected.load(); }));
  ExpectReadingArrives(*g, broker.port(), nullptr, 7.0);
  g->Stop();
}

// A broker with TLS, client certificates and passwords: the gateway with the right CA,
// certificate and password receives telemetry; each wrong credential is refused at connect and
// counted as a failure, never a half-working connection.
TEST(MqttTelemetryTest, TlsClientCertificatesAndPasswords) {
  const vigil::testing::TestPki pki;
  if (!pki.ok) GTEST_SKIP() << "the openssl CLI could not make test certificates";
  testing::MosquittoBroker broker({pki("ca.pem"), pki("server.pem"), pki("server.key"),
                                   /*require_certificate=*/true,
                                   {{"gw", "gw-pass"}, {"sensor", "sensor-pass"}}});
  if (!broker.Start()) GTEST_SKIP() << broker.why();
  pipeline::testing::TempDir dir;
  pipeline::testing::WriteFile(dir.Join("good.pass"), "gw-pass\n");
  pipeline::testing::WriteFile(dir.Join("bad.pass"), "not-the-password\n");

  // `ca`, `cert` (NAME for NAME.pem and NAME.key, "" for none) and the password file.
  auto config = [&](const std::string& ca, const std::string& cert, const std::string& pass) {
    std::string tls = "{ca_file: \"" + pki(ca) + "\"";
    if (!cert.empty()) {
      tls += ", cert_file: \"" + pki(cert + ".pem") + "\", key_file: \"" + pki(cert + ".key") + "\"";
    }
    return "metrics: {enabled: false}\nmodbus: {listen: \"127.0.0.1:0\"}\n"
           "telemetry:\n  broker: \"127.0.0.1:" + std::to_string(broker.port()) + "\"\n"
           "  username: gw\n  password_file: \"" + dir.Join(pass) + "\"\n  tls: " + tls + "}\n"
           "  reconnect_min_s: 1\n  topics:\n    - {topic: t, signals: [{name: x}]}\n";
  };
  struct Case {
    const char* what;
    std::string yaml;
  };
  const Case refused[] = {
      {"wrong password", config("ca.pem", "client", "bad.pass")},
      {"no client certificate", config("ca.pem", "", "good.pass")},
      {"client certificate from another CA", config("ca.pem", "rogue", "good.pass")},
      {"broker certificate not from the trusted CA", config("otherca.pem", "client", "good.pass")},
  };
  for (const Case& c : refused) {
    std::unique_ptr<Gateway> g = StartedGateway(c.yaml);
    ASSERT_NE(g, nullptr) << c.what;
    const TelemetryStats& ts = g->telemetry()->stats();
    EXPECT_TRUE(WaitFor([&] { return ts.connect_failures.load() >= 1; })) << c.what;
    EXPECT_EQ(ts.connects.load(), 0u) << c.what;
    EXPECT_FALSE(ts.connected.load()) << c.what;
    g->Stop();
  }

  std::unique_ptr<Gateway> g = StartedGateway(config("ca.pem", "client", "good.pass"));
  ASSERT_NE(g, nullptr);
  const TelemetryStats& ts = g->telemetry()->stats();
  ASSERT_TRUE(WaitFor([&] { return ts.connected.load(); }));
  ExpectReadingArrives(*g, broker.port(), &pki, 3.0);
  EXPECT_EQ(ts.connect_failures.load(), 0u);
  g->Stop();
}

// Credentials that cannot be read stop the gateway at start with the key and the reason.
TEST(MqttTelemetryTest, UnreadableCredentialFilesFailTheStart) {
  pipeline::testing::TempDir dir;
  pipeline::testing::WriteFile(dir.Join("empty.pass"), "\n");
  const std::string head =
      "metrics: {enabled: false}\nmodbus: {listen: \"127.0.0.1:0\"}\ntelemetry:\n"
      "  topics:\n    - {topic: t, signals: [{name: x}]}\n";
  const std::pair<std::string, std::string> cases[] = {
      {"  username: gw\n  password_file: \"" + dir.Join("missing.pass") + "\"\n",
       "telemetry.password_file: " + dir.Join("missing.pass") + ": cannot open"},
      {"  username: gw\n  password_file: \"" + dir.Join("empty.pass") + "\"\n",
       "telemetry.password_file: the MQTT password file " + dir.Join("empty.pass") +
           ": no token in it"},
      {"  tls: {ca_file: \"" + dir.Join("none.pem") + "\"}\n", "telemetry.tls.ca_file"},
  };
  for (const auto& [extra, message] : cases) {
    auto cfg = ParseGatewayConfig(head + extra, "gw.yaml");
    ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
    auto g = Gateway::Create(*cfg, {}, core::SystemClock::Get());
    ASSERT_TRUE(g.has_value()) << g.error().message();
    const core::Status st = (*g)->Start();
    ASSERT_FALSE(st.ok()) << extra;
    EXPECT_THAT(st.message(), HasSubstr("gw.yaml")) << st.message();
    EXPECT_THAT(st.message(), HasSubstr(message)) << st.message();
  }
}

}  // namespace
}  // namespace vigil::gateway
