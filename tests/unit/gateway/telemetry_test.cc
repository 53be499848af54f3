// MQTT telemetry without a broker: payload schema checks, the telemetry config keys, the plant
// state a message leaves (and its staleness), and the sensor scorer learned from BATADAL's
// dataset03. The broker path is in mqtt_test.cc.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "gateway/actuator_model.h"
#include "gateway/config.h"
#include "gateway/sensor_scoring.h"
#include "gateway/telemetry.h"
#include "gateway/telemetry_schema.h"

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

TopicSchema Tanks() {
  TopicSchema t;
  t.topic = "ctown/tanks";
  SignalSchema level;
  level.name = "L_T1";
  level.min = 0;
  level.max = 10;
  level.units = "m";
  SignalSchema pump;
  pump.name = "S_PU1";
  pump.field = "/pumps/PU1";
  pump.type = SignalType::kBool;
  SignalSchema count;
  count.name = "N";
  count.type = SignalType::kInteger;
  t.signals = {level, pump, count};
  return t;
}

TEST(TelemetrySchemaTest, AcceptsBareValuesUnitsAndPointers) {
  const PayloadCheck c = ValidatePayload(
      Tanks(), R"({"L_T1": {"value": 2.5, "unit": "m"}, "pumps": {"PU1": true}, "N": 3,
                  "extra": "ignored"})");
  ASSERT_EQ(c.error, PayloadError::kNone) << c.detail;
  ASSERT_EQ(c.values.size(), 3u);
  EXPECT_EQ(c.values[0], (std::pair<std::string, double>{"L_T1", 2.5}));
  EXPECT_EQ(c.values[1], (std::pair<std::string, double>{"S_PU1", 1.0}));
  EXPECT_EQ(c.values[2], (std::pair<std::string, double>{"N", 3.0}));
  // A bare number, a unit-less object and 0/1 for a boolean are fine too.
  const PayloadCheck d =
      ValidatePayload(Tanks(), R"({"L_T1": 0, "pumps": {"PU1": 0}, "N": {"value": -2}})");
  EXPECT_EQ(d.error, PayloadError::kNone) << d.detail;
}

TEST(TelemetrySchemaTest, RefusesEachKindOfBadPayloadWithItsReason) {
  struct Case {
    std::string payload;
    PayloadError error;
    std::string detail;
  };
  const std::vector<Case> cases = {
      {"{\"L_T1\": 2", PayloadError::kNotJson, "not JSON"},
      {"\xff\xfe", PayloadError::kNotJson, "\\xff"},
      {"[1, 2]", PayloadError::kNotObject, "got an array"},
      {R"({"pumps": {"PU1": 1}, "N": 1})", PayloadError::kMissing, "L_T1: no field"},
      {R"({"L_T1": 1, "N": 1})", PayloadError::kMissing, "/pumps/PU1: no field"},
      {R"({"L_T1": {"unit": "m"}, "pumps": {"PU1": 1}, "N": 1})", PayloadError::kMissing,
       "L_T1.value"},
      {R"({"L_T1": "high", "pumps": {"PU1": 1}, "N": 1})", PayloadError::kType,
       "L_T1: expected number, got a string"},
      {R"({"L_T1": 1, "pumps": {"PU1": 2}, "N": 1})", PayloadError::kType, "not a boolean"},
      {R"({"L_T1": 1, "pumps": {"PU1": 1}, "N": 1.5})", PayloadError::kType, "not an integer"},
      {R"({"L_T1": 12.5, "pumps": {"PU1": 1}, "N": 1})", PayloadError::kRange,
       "L_T1: 12.5 outside [0, 10]"},
      // nlohmann-json refuses a number it cannot hold as a double.
      {R"({"L_T1": 1e999, "pumps": {"PU1": 1}, "N": 1})", PayloadError::kNotJson, "not JSON"},
      {R"({"L_T1": {"value": 1, "unit": "ft"}, "pumps": {"PU1": 1}, "N": 1})",
       PayloadError::kUnits, "unit \"ft\", expected \"m\""},
      {R"({"L_T1": {"value": 1, "unit": 3}, "pumps": {"PU1": 1}, "N": 1})", PayloadError::kType,
       "L_T1.unit"},
      {std::string(kMaxTelemetryPayload + 1, ' '), PayloadError::kTooLarge, "bytes"},
  };
  for (const Case& c : cases) {
    const PayloadCheck r = ValidatePayload(Tanks(), c.payload);
    EXPECT_EQ(r.error, c.error) << c.payload.substr(0, 80) << ": " << r.detail;
    EXPECT_THAT(r.detail, HasSubstr(c.detail)) << c.payload.substr(0, 80);
    EXPECT_TRUE(r.values.empty());
  }
}

constexpr const char* kTelemetryConfig = R"(
telemetry:
  broker: 127.0.0.1:1884
  client_id: gw-1
  keepalive_s: 10
  qos: 1
  reconnect_min_s: 2
  reconnect_max_s: 60
  scoring: {predictors: false, autoencoder: true, target_fpr: 0.02}
  topics:
    - topic: ctown/tanks
      signals:
        - {name: L_T1, min: 0, max: 6.5, units: m}
        - {name: S_PU1, field: /pumps/PU1, type: bool}
    - topic: ctown/+/pressure
      signals:
        - {name: P_J280, type: number}
)";

TEST(TelemetryConfigTest, ParsesTheTelemetryKeys) {
  auto c = ParseGatewayConfig(kTelemetryConfig, "gw.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  const TelemetryConfig& t = c->telemetry;
  EXPECT_EQ(t.broker.port, 1884);
  EXPECT_EQ(t.client_id, "gw-1");
  EXPECT_EQ(t.keepalive_s, 10u);
  EXPECT_EQ(t.qos, 1u);
  EXPECT_EQ(t.reconnect_min_s, 2u);
  EXPECT_EQ(t.reconnect_max_s, 60u);
  EXPECT_FALSE(t.scoring.predictors);
  EXPECT_TRUE(t.scoring.autoencoder);
  EXPECT_DOUBLE_EQ(t.scoring.target_fpr, 0.02);
  ASSERT_EQ(t.topics.size(), 2u);
  ASSERT_EQ(t.topics[0].signals.size(), 2u);
  EXPECT_EQ(t.topics[0].signals[0].units, "m");
  EXPECT_DOUBLE_EQ(t.topics[0].signals[0].max, 6.5);
  EXPECT_EQ(t.topics[0].signals[1].field, "/pumps/PU1");
  EXPECT_EQ(t.topics[0].signals[1].type, SignalType::kBool);
  EXPECT_EQ(t.topics[1].topic, "ctown/+/pressure");
  // Defaults.
  auto d = ParseGatewayConfig("host: gw9\n", "gw.yaml");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->telemetry.client_id, "vigil-gateway-gw9");
  EXPECT_EQ(d->telemetry.broker.ToString(), "127.0.0.1:1883");
  EXPECT_TRUE(d->telemetry.topics.empty());
}

TEST(TelemetryConfigTest, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string yaml, message;
  };
  const std::vector<Case> cases = {
      {"telemetry:\n  brokr: x\n", "gw.yaml:2:3: telemetry.brokr: unknown key"},
      {"telemetry:\n  qos: 2\n", "gw.yaml:2:8: telemetry.qos: expected an integer in 0..1"},
      {"telemetry: {reconnect_min_s: 10, reconnect_max_s: 5}\n",
       "telemetry.reconnect_max_s: expected an integer >= telemetry.reconnect_min_s (10), got 5"},
      {"telemetry:\n  topics:\n    - topic: a/#/b\n      signals: [{name: x}]\n",
       "gw.yaml:3:14: telemetry.topics[0].topic: not an MQTT topic filter"},
      {"telemetry:\n  topics:\n    - topic: a\n", "telemetry.topics[0]: missing key 'signals'"},
      {"telemetry:\n  topics:\n    - signals: [{name: x}]\n",
       "telemetry.topics[0]: missing key 'topic'"},
      {"telemetry:\n  topics:\n    - topic: a\n      signals: [{name: x, type: float}]\n",
       "gw.yaml:4:33: telemetry.topics[0].signals[0].type: expected number or integer or bool"},
      {"telemetry:\n  topics:\n    - topic: a\n      signals: [{name: x, min: 5, max: 1}]\n",
       "telemetry.topics[0].signals[0].max: expected a number >= telemetry.topics[0].signals[0]"
       ".min (5), got 1"},
      {"telemetry:\n  topics:\n    - topic: a\n      signals: [{name: x, field: /a/~2}]\n",
       "telemetry.topics[0].signals[0].field: expected a key or a JSON pointer"},
      {"telemetry:\n  topics:\n    - {topic: a, signals: [{name: x}]}\n"
       "    - {topic: b, signals: [{name: x}]}\n",
       "gw.yaml:4:28: telemetry.topics[1].signals[0].name: signal \"x\" is already set by "
       "telemetry.topics[0].signals[0]"},
      {"telemetry:\n  topics:\n    - {topic: a, signals: [{name: x}]}\n"
       "    - {topic: a, signals: [{name: y}]}\n",
       "telemetry.topics[1].topic: topic \"a\" listed twice"},
      {"telemetry:\n  scoring: {target_fpr: 0.9}\n", "telemetry.scoring.target_fpr"},
  };
  for (const Case& c : cases) {
    auto r = ParseGatewayConfig(c.yaml, "gw.yaml");
    ASSERT_FALSE(r.has_value()) << c.yaml;
    EXPECT_THAT(r.error().message(), HasSubstr(c.message)) << c.yaml;
  }
}

TelemetryConfig TwoTopics() {
  TelemetryConfig c;
  c.topics.push_back(Tanks());
  TopicSchema p;
  p.topic = "ctown/+/pressure";
  SignalSchema j;
  j.name = "P_J280";
  p.signals = {j};
  c.topics.push_back(p);
  return c;
}

TEST(TelemetryTest, AcceptedPayloadsSetThePlantStateAndBadOnesAreCounted) {
  core::FakeClock clock;
  PlantState plant;
  Telemetry t(TwoTopics(), int64_t{3600} * 1'000'000'000, plant, clock, nullptr, {});
  t.HandleMessage("ctown/tanks", R"({"L_T1": 2.5, "pumps": {"PU1": 1}, "N": 4})");
  t.HandleMessage("ctown/south/pressure", R"({"P_J280": 33.5})");
  ASSERT_TRUE(plant.Get("L_T1").has_value());
  EXPECT_DOUBLE_EQ(plant.Get("L_T1")->value, 2.5);
  EXPECT_DOUBLE_EQ(plant.Get("S_PU1")->value, 1.0);
  EXPECT_DOUBLE_EQ(plant.Get("P_J280")->value, 33.5);
  EXPECT_EQ(plant.Get("L_T1")->mono_ns, clock.MonotonicNanos());
  // Refused payloads leave the state as it was, whole: L_T1 is not half-updated.
  t.HandleMessage("ctown/tanks", R"({"L_T1": 3.5, "pumps": {"PU1": 7}, "N": 4})");
  t.HandleMessage("ctown/tanks", "garbage");
  t.HandleMessage("ctown/north/flow", R"({"P_J280": 1})");
  EXPECT_DOUBLE_EQ(plant.Get("L_T1")->value, 2.5);
  const TelemetryStats& s = t.stats();
  EXPECT_EQ(s.messages.load(), 5u);
  EXPECT_EQ(s.accepted.load(), 2u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(PayloadError::kType)].load(), 1u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(PayloadError::kNotJson)].load(), 1u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(PayloadError::kUnknownTopic)].load(), 1u);
  EXPECT_THAT(t.last_error(), HasSubstr("ctown/north/flow: unknown-topic"));
}

// The plant state a telemetry message leaves feeds the actuator-state model until it is older
// than the model's state_max_age.
TEST(TelemetryTest, StaleReadingsAreNotUsedByTheActuatorModel) {
  auto table = sensor::ReadBatadalTable(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
  ASSERT_TRUE(table.has_value()) << table.error().message();
  ActuatorModelOptions o;
  o.max_age_ns = int64_t{60} * 1'000'000'000;
  auto model = ActuatorStateModel::Learn(*table, o);
  ASSERT_TRUE(model.has_value()) << model.error().message();
  TelemetryConfig c;
  TopicSchema tanks;
  tanks.topic = "ctown/tanks";
  for (int i = 1; i <= 7; ++i) {
    SignalSchema s;
    s.name = "L_T" + std::to_string(i);
    tanks.signals.push_back(s);
  }
  c.topics = {tanks};
  core::FakeClock clock;
  clock.Advance(int64_t{1000} * 1'000'000'000);
  PlantState plant;
  Telemetry t(c, o.max_age_ns, plant, clock, nullptr, {});
  t.HandleMessage("ctown/tanks", R"({"L_T1": 0.5, "L_T2": 2.05, "L_T3": 3.19, "L_T4": 2.79,
                                     "L_T5": 2.66, "L_T6": 5.32, "L_T7": 1.56})");
  // T1 nearly empty: stopping its fill pump PU2 is inconsistent.
  EXPECT_EQ((*model)->Judge("S_PU2", 0, plant, clock.MonotonicNanos()).outcome,
            Judgement::Outcome::kInconsistent);
  clock.Advance(int64_t{61} * 1'000'000'000);
  EXPECT_EQ((*model)->Judge("S_PU2", 0, plant, clock.MonotonicNanos()).outcome,
            Judgement::Outcome::kUnknown);
}

class SensorScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = sensor::ReadBatadalTable(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
    ASSERT_TRUE(t.has_value()) << t.error().message();
    table_ = new sensor::BatadalTable(std::move(t).value());
    auto s = SensorScorer::Learn(*table_, table_->signals, TelemetryScoringConfig{});
    ASSERT_TRUE(s.has_value()) << s.error().message();
    scorer_ = std::move(s).value().release();
  }
  static void TearDownTestSuite() {
    delete scorer_;
    delete table_;
  }
  static sensor::BatadalTable* table_;
  static SensorScorer* scorer_;
};
sensor::BatadalTable* SensorScorerTest::table_ = nullptr;
SensorScorer* SensorScorerTest::scorer_ = nullptr;

TEST_F(SensorScorerTest, NormalRowsRarelyAlertAndTamperedReadingsDo) {
  ASSERT_TRUE(scorer_->predictors());
  ASSERT_TRUE(scorer_->autoencoder());
  EXPECT_EQ(scorer_->signals().size(), 43u);
  std::vector<SensorFinding> normal;
  for (size_t r = 0; r < 500; ++r) {
    auto f = scorer_->Observe(std::span<const double>(table_->row(r), table_->cols()));
    normal.insert(normal.end(), f.begin(), f.end());
  }
  const SensorScoreStats& s = scorer_->stats();
  EXPECT_EQ(s.rows.load(), 500u);
  // Calibrated to 1 % per row on normal data (the rows here were trained on: fewer still).
  EXPECT_LE(s.anomalous_rows[0].load() + s.anomalous_rows[1].load(), 25u);
  // SCADA shows every tank near-empty and the junction pressures at zero while the pumps run.
  std::vector<double> row(table_->row(500), table_->row(500) + table_->cols());
  for (size_t c = 0; c < row.size(); ++c) {
    if (table_->signals[c].rfind("L_T", 0) == 0) row[c] = 0.05;
    if (table_->signals[c].rfind("P_J", 0) == 0) row[c] = 0.0;
  }
  std::vector<SensorFinding> tampered;
  for (int i = 0; i < 3; ++i) {
    auto f = scorer_->Observe(row);
    tampered.insert(tampered.end(), f.begin(), f.end());
  }
  ASSERT_EQ(tampered.size(), 2u);  // one per model, not one per row
  for (const SensorFinding& f : tampered) {
    EXPECT_GE(f.score, 0.5) << f.model;
    EXPECT_GE(f.raw, f.threshold) << f.model;
    ASSERT_FALSE(f.why.empty()) << f.model;
  }
  EXPECT_EQ(s.findings[0].load() + s.findings[1].load(),
            normal.size() + tampered.size());
}

TEST(SensorScorerLearnTest, NeedsASignalTheTableHolds) {
  auto t = sensor::ReadBatadalTable(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
  ASSERT_TRUE(t.has_value());
  auto s = SensorScorer::Learn(*t, {"nowhere"}, TelemetryScoringConfig{});
  ASSERT_FALSE(s.has_value());
  EXPECT_THAT(s.error().message(), HasSubstr("no column of it is a signal of telemetry.topics"));
}

}  // namespace
}  // namespace vigil::gateway
