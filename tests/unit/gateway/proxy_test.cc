// The proxy between real peers on loopback: a libmodbus server as the PLC (FakePlc), libmodbus
// clients, and the gateway built from a config document, with a real audit log.

#include <arpa/inet.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "../pipeline/test_util.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "audit/verify.h"
#include "fake_plc.h"
#include "memory_sink.h"
#include "core/files.h"
#include "gateway/gateway.h"
#include "sensor/batadal.h"

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

std::string ConfigText(uint16_t plc_port, std::string_view mode, bool model,
                       std::string_view extra = "") {
  std::string text = "mode: " + std::string(mode) +
                     "\nhost: test-gw\nmetrics: {listen: \"127.0.0.1:0\"}\n"
                     "modbus: {listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:" +
                     std::to_string(plc_port) + "\", upstream_timeout_ms: 2000}\n"
                     "decision: {deadline_us: 200000}\n";
  if (model) {
    text += "model: {training: \"" VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv\"}\n";
  }
  text += std::string(extra) +
      "assets:\n"
      "  - {name: setpoint, register: holding, address: 10, min: 0, max: 100}\n"
      "  - {name: PU2, register: coil, address: 2, critical: true" +
      std::string(model ? ", signal: S_PU2" : "") +
      "}\n"
      "  - {name: PU3, register: coil, address: 3, critical: true" +
      std::string(model ? ", signal: S_PU3" : "") + "}\n";
  return text;
}

class ProxyTest : public ::testing::Test {
 protected:
  void Start(std::string_view mode, bool model = false, std::string_view extra = "") {
    ASSERT_TRUE(plc_.Start());
    auto cfg = ParseGatewayConfig(ConfigText(plc_.port(), mode, model, extra), "test.yaml");
    ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
    signer_ = audit::Ed25519Signer::Generate();
    auto log = audit::AuditLog::Open(dir_.Join("audit"), {}, *signer_, core::SystemClock::Get());
    ASSERT_TRUE(log.has_value()) << log.error().message();
    audit_ = std::move(log).value();
    auto g = Gateway::Create(*cfg, {audit_.get(), {&sink_}}, core::SystemClock::Get());
    ASSERT_TRUE(g.has_value()) << g.error().message();
    gateway_ = std::move(g).value();
    ASSERT_TRUE(gateway_->Start().ok());
    client_ = Connect();
    ASSERT_NE(client_, nullptr);
  }

  modbus_t* Connect() {
    modbus_t* c = modbus_new_tcp("127.0.0.1", gateway_->modbus_port());
    modbus_set_slave(c, 1);
    modbus_set_response_timeout(c, 5, 0);
    if (modbus_connect(c) != 0) {
      modbus_free(c);
      return nullptr;
    }
    return c;
  }

  void TearDown() override {
    if (client_ != nullptr) {
      modbus_close(client_);
      modbus_free(client_);
    }
    if (gateway_) gateway_->Stop();
  }

  // The decision records of the audit log, as payload strings.
  std::vector<std::string> AuditedDecisions() {
    EXPECT_TRUE(audit_->Flush().ok());
    std::vector<std::string> out;
    auto r = audit::VerifyLog(dir_.Join("audit"), {}, [&](const audit::RecordView& v) {
      if (v.type == audit::RecordType::kDecision || v.type == audit::RecordType::kFallback) {
        out.emplace_back(v.payload);
      }
      return true;
    });
    EXPECT_TRUE(r.has_value());
    return out;
  }

  // Tank levels of a normal hour with T1 (filled by PU1/PU2) as given.
  void Levels(double t1) {
    const double levels[] = {t1, 2.05, 3.19, 2.79, 2.66, 5.32, 1.56};
    const int64_t now = core::SystemClock::Get().MonotonicNanos();
    for (int i = 0; i < 7; ++i) gateway_->plant().Set("L_T" + std::to_string(i + 1), levels[i], now);
  }

  pipeline::testing::TempDir dir_;
  testing::FakePlc plc_;
  std::unique_ptr<audit::Signer> signer_;
  std::unique_ptr<audit::AuditLog> audit_;
  testing::MemorySink sink_;
  std::unique_ptr<Gateway> gateway_;
  modbus_t* client_ = nullptr;
};

// The training CSV given as bytes (read once by `vigil gateway`, which checked them) is what the
// model learns from: the file is not read again (here it is not even there any more).
TEST(GatewayTrainingTest, LearnsFromTheBytesGivenNotASecondRead) {
  const std::string real = VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv";
  auto bytes = core::ReadFile(real, sensor::kMaxBatadalFileBytes);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  std::string text = ConfigText(1, "enforce", true);
  const std::string gone = "/nonexistent/vigil-training.csv";
  text.replace(text.find(real), real.size(), gone);
  auto cfg = ParseGatewayConfig(text, "test.yaml");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
  auto g = Gateway::Create(*cfg, {}, core::SystemClock::Get(), nullptr, &*bytes);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  ASSERT_NE((*g)->model(), nullptr);
  // Without the bytes, the file is read, and is missing.
  auto missing = Gateway::Create(*cfg, {}, core::SystemClock::Get());
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message(), HasSubstr("model.training"));
  // Bytes that are not a BATADAL table are refused, named as the training file.
  const std::string junk = "not,a,table\n";
  auto bad = Gateway::Create(*cfg, {}, core::SystemClock::Get(), nullptr, &junk);
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message(), HasSubstr(gone));
}

TEST_F(ProxyTest, ReadsPassThrough) {
  Start("enforce");
  plc_.SetInput(5, 4242);
  uint16_t v = 0;
  ASSERT_EQ(modbus_read_input_registers(client_, 5, 1, &v), 1) << modbus_strerror(errno);
  EXPECT_EQ(v, 4242);
  EXPECT_EQ(gateway_->proxy().reads.load(), 1u);
}

TEST_F(ProxyTest, InRangeWritePasses) {
  Start("enforce");
  ASSERT_EQ(modbus_write_register(client_, 10, 55), 1) << modbus_strerror(errno);
  EXPECT_EQ(plc_.holding(10), 55);
  EXPECT_EQ(gateway_->decisions().allowed.load(), 1u);
  const auto records = AuditedDecisions();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0], HasSubstr("\"action\":\"allow\""));
}

TEST_F(ProxyTest, OutOfRangeWriteGetsExceptionInEnforceMode) {
  Start("enforce");
  errno = 0;
  EXPECT_EQ(modbus_write_register(client_, 10, 500), -1);
  EXPECT_EQ(errno, EMBXILVAL);
  EXPECT_EQ(plc_.holding(10), 0);
  EXPECT_EQ(gateway_->decisions().denied.load(), 1u);
  // The connection stays usable.
  ASSERT_EQ(modbus_write_register(client_, 10, 7), 1);
  EXPECT_EQ(plc_.holding(10), 7);
  const auto records = AuditedDecisions();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_THAT(records[0], HasSubstr("\"action\":\"deny\""));
  EXPECT_THAT(records[0], HasSubstr("\"rule\":\"gateway.range\""));
  EXPECT_THAT(records[0], HasSubstr("\"exception\":3"));
  // Written without a JSON tree: canonical, with every member of the Modbus write.
  const nlohmann::json rec = nlohmann::json::parse(records[0]);
  EXPECT_EQ(records[0], audit::CanonicalJson(rec));
  EXPECT_EQ(rec["modbus"], (nlohmann::json{{"address", 10},
                                           {"asset", "setpoint"},
                                           {"count", 1},
                                           {"critical", false},
                                           {"exception", 3},
                                           {"fallback", "none"},
                                           {"first_address", 10},
                                           {"function", 6},
                                           {"register", "holding"},
                                           {"unit", 1},
                                           {"value", 500}}))
      << records[0];
  ASSERT_EQ(sink_.Lines().size(), 1u);
  EXPECT_THAT(sink_.Lines()[0], HasSubstr("\"class_uid\":2004"));
  EXPECT_THAT(sink_.Lines()[0], HasSubstr("Actuator command denied"));
}

TEST_F(ProxyTest, OutOfRangeWritePassesInMonitorModeAndIsCounted) {
  Start("monitor");
  ASSERT_EQ(modbus_write_register(client_, 10, 500), 1) << modbus_strerror(errno);
  EXPECT_EQ(plc_.holding(10), 500);
  EXPECT_EQ(gateway_->decisions().would_have_denied.load(), 1u);
  EXPECT_EQ(gateway_->decisions().denied.load(), 0u);
  const auto records = AuditedDecisions();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0], HasSubstr("\"enforced\":false"));
  EXPECT_THAT(records[0], HasSubstr("\"mode\":\"monitor\""));
  ASSERT_EQ(sink_.Lines().size(), 1u);
  EXPECT_THAT(sink_.Lines()[0], HasSubstr("would have been denied"));
}

TEST_F(ProxyTest, LearnedModelDeniesCommandsInconsistentWithThePlant) {
  Start("enforce", /*model=*/true);
  Levels(0.5);  // T1 nearly empty
  // A pump the training data never runs.
  errno = 0;
  EXPECT_EQ(modbus_write_bit(client_, 3, 1), -1);
  EXPECT_EQ(errno, EMBXILVAL);
  EXPECT_EQ(plc_.coil(3), 0);
  // Stopping T1's fill pump while T1 is nearly empty.
  ASSERT_EQ(modbus_write_bit(client_, 2, 1), 1) << modbus_strerror(errno);
  EXPECT_EQ(modbus_write_bit(client_, 2, 0), -1);
  EXPECT_EQ(plc_.coil(2), 1);
  // With T1 half full the same command is normal.
  Levels(3.0);
  ASSERT_EQ(modbus_write_bit(client_, 2, 0), 1) << modbus_strerror(errno);
  EXPECT_EQ(plc_.coil(2), 0);
  EXPECT_EQ(gateway_->decisions().by_rule[static_cast<size_t>(Rule::kModel)].load(), 2u);
  ASSERT_EQ(sink_.Lines().size(), 2u);
  EXPECT_THAT(sink_.Lines()[1], HasSubstr("S_PU2=0 in 0 of"));
  EXPECT_THAT(sink_.Lines()[1], HasSubstr("actuator-state"));
}

TEST_F(ProxyTest, CriticalActuatorWithoutPlantStateFailsClosed) {
  Start("enforce", /*model=*/true);
  errno = 0;
  EXPECT_EQ(modbus_write_bit(client_, 2, 1), -1);
  EXPECT_EQ(errno, EMBXSBUSY);
  EXPECT_EQ(
      gateway_->decisions().fallbacks[static_cast<size_t>(FallbackCause::kNoState)].load(), 1u);
  const auto records = AuditedDecisions();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0], HasSubstr("\"fallback\":\"no-state\""));
}

TEST_F(ProxyTest, MalformedFrameClosesOnlyItsConnection) {
  Start("enforce");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(gateway_->modbus_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // Write single register with an MBAP length that does not match the frame.
  const uint8_t bad[] = {0, 1, 0, 0, 0, 42, 1, 6, 0, 10, 0, 5};
  ASSERT_EQ(send(fd, bad, sizeof(bad), 0), static_cast<ssize_t>(sizeof(bad)));
  char buf[16];
  EXPECT_EQ(recv(fd, buf, sizeof(buf), 0), 0);  // closed by the proxy, no answer
  close(fd);
  EXPECT_EQ(plc_.holding(10), 0);
  EXPECT_EQ(gateway_->proxy().malformed.load(), 1u);
  ASSERT_EQ(modbus_write_register(client_, 10, 9), 1) << modbus_strerror(errno);
  EXPECT_EQ(plc_.holding(10), 9);
}

TEST_F(ProxyTest, SilentPlcGetsGatewayTargetException) {
  Start("enforce");
  // A second gateway whose upstream port has nobody listening.
  auto cfg = ParseGatewayConfig(ConfigText(1, "enforce", false), "test.yaml");
  ASSERT_TRUE(cfg.has_value());
  cfg->metrics_enabled = false;
  auto g = Gateway::Create(*cfg, {}, core::SystemClock::Get());
  ASSERT_TRUE(g.has_value());
  ASSERT_TRUE((*g)->Start().ok());
  modbus_t* c = modbus_new_tcp("127.0.0.1", (*g)->modbus_port());
  ASSERT_EQ(modbus_connect(c), 0);
  uint16_t v = 0;
  errno = 0;
  EXPECT_EQ(modbus_read_registers(c, 0, 1, &v), -1);
  EXPECT_EQ(errno, EMBXGTAR);
  EXPECT_EQ((*g)->proxy().upstream_errors.load(), 1u);
  modbus_close(c);
  modbus_free(c);
}

TEST_F(ProxyTest, MetricsEndpointCountsDecisions) {
  Start("monitor");
  ASSERT_EQ(modbus_write_register(client_, 10, 500), 1);
  ASSERT_EQ(modbus_write_register(client_, 10, 5), 1);
  httplib::Client http("127.0.0.1", gateway_->metrics_port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("vigil_gateway_writes_total{outcome=\"would_have_denied\"} 1"));
  EXPECT_THAT(res->body, HasSubstr("vigil_gateway_writes_total{outcome=\"allowed\"} 1"));
  EXPECT_THAT(res->body, HasSubstr("vigil_gateway_denials_total{rule=\"range\"} 1"));
  EXPECT_THAT(res->body, HasSubstr("vigil_gateway_requests_total{kind=\"write\"} 2"));
}

// A rule of one's own, in the policy language, decides a write through the real proxy; the record
// names it and carries the policy's version and stage, as a host gate's record does.
TEST_F(ProxyTest, RuleOfOnesOwnDeniesThroughTheProxyWithThePolicyVersion) {
  const std::string rules = dir_.Join("gw-rules.yaml");
  std::ofstream(rules) << "- rule: setpoint_ceiling\n  desc: d\n"
                          "  condition: modbus.asset = setpoint and modbus.value > 80\n"
                          "  output: \"setpoint := %modbus.value above 80\"\n"
                          "  priority: ERROR\n  action: {type: deny}\n";
  Start("enforce", false, "policy: {rules: [\"" + rules + "\"], version: v-test}\n");
  errno = 0;
  EXPECT_EQ(modbus_write_register(client_, 10, 90), -1);  // inside [0, 100]: the rule objects
  EXPECT_EQ(errno, EMBXILVAL);
  EXPECT_EQ(plc_.holding(10), 0);
  ASSERT_EQ(modbus_write_register(client_, 10, 70), 1);
  EXPECT_EQ(gateway_->decisions().by_rule[static_cast<size_t>(Rule::kCustom)].load(), 1u);
  const auto records = AuditedDecisions();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_THAT(records[0], HasSubstr("\"rule\":\"setpoint_ceiling\""));
  EXPECT_THAT(records[0], HasSubstr("setpoint := 90 above 80"));
  EXPECT_THAT(records[0], HasSubstr("\"policy_version\":\"v-test\""));
  EXPECT_THAT(records[0], HasSubstr("\"policy_stage\":\"enforce-all\""));
  EXPECT_THAT(records[1], HasSubstr("\"policy_version\":\"v-test\""));
  EXPECT_EQ(records[0], audit::CanonicalJson(nlohmann::json::parse(records[0])));
  ASSERT_EQ(sink_.Lines().size(), 1u);
  EXPECT_THAT(sink_.Lines()[0], HasSubstr("\"policy_version\":\"v-test\""));
}

}  // namespace
}  // namespace vigil::gateway
