#include "model/ics_residual.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/loader.h"

namespace vigil::model {
namespace {

const std::vector<std::string> kSignals = {"L_T", "F_IN", "S_PU", "F_OUT", "P_J", "S_OFF"};
constexpr int kLevel = 0, kInflow = 1, kPump = 2, kOutflow = 3, kPressure = 4, kConstant = 5;

// A small tank: a pump fills it while the level is low (hysteresis between 2 and 4), a daily
// demand empties it, a pressure follows the pump and the level. Hourly rows, seeded.
Eigen::MatrixXd Plant(int hours, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  Eigen::MatrixXd x(hours, static_cast<Eigen::Index>(kSignals.size()));
  double level = 3.0;
  bool pump = true;
  for (int t = 0; t < hours; ++t) {
    if (level < 2.0) pump = true;
    if (level > 4.0) pump = false;
    const double inflow = pump ? 10.0 + 0.3 * noise(rng) : 0.0;
    const double outflow = 5.0 + 2.0 * std::sin(2 * M_PI * t / 24.0) + 0.3 * noise(rng);
    level += 0.05 * (inflow - outflow);
    x(t, kLevel) = level + 0.01 * noise(rng);
    x(t, kInflow) = inflow;
    x(t, kPump) = pump ? 1.0 : 0.0;
    x(t, kOutflow) = outflow;
    x(t, kPressure) = 20.0 + 3.0 * (pump ? 1.0 : 0.0) + 0.5 * level + 0.1 * noise(rng);
    x(t, kConstant) = 0.0;
  }
  return x;
}

IcsResidualOptions SmallOptions() {
  IcsResidualOptions o;
  o.target_fpr = 0.05;
  o.smoothing = 0.5;
  o.resolution = 0.001;
  return o;
}

std::unique_ptr<IcsResidualModel> TrainSmall() {
  auto m = IcsResidualModel::Train(kSignals, Plant(2000, 1), SmallOptions());
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  return m.has_value() ? std::move(m).value() : nullptr;
}

double AlarmRate(const IcsResidualModel& m, const std::vector<double>& raw, size_t from,
                 size_t to) {
  size_t alarms = 0;
  for (size_t i = from; i < to; ++i) alarms += raw[i] >= m.calibration().threshold ? 1 : 0;
  return static_cast<double>(alarms) / static_cast<double>(to - from);
}

TEST(IcsResidualTest, LearnsRolesAndCalibratesOnCrossFittedResiduals) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->roles()[kConstant], SignalRole::kConstant);
  EXPECT_EQ(m->roles()[kPump], SignalRole::kPredictor);
  EXPECT_EQ(m->roles()[kLevel], SignalRole::kTarget);
  EXPECT_EQ(m->targets().size(), 4u);
  EXPECT_GT(m->calibration().threshold, 0.0);
  EXPECT_NEAR(m->calibration().achieved_fpr, 0.05, 0.01);
  EXPECT_EQ(m->calibration().rows, 2000u);
  EXPECT_EQ(m->family(), "ics-residual");
}

TEST(IcsResidualTest, FalseAlarmRateOnUnseenNormalDataIsNearTheTarget) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const std::vector<double> raw = m->ScoreSeries(Plant(3000, 99));
  const double rate = AlarmRate(*m, raw, 0, raw.size());
  EXPECT_LT(rate, 0.12);
  EXPECT_GT(rate, 0.005);
}

TEST(IcsResidualTest, DetectsAFalseLevelReadingAndNamesIt) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  Eigen::MatrixXd x = Plant(600, 5);
  // From hour 300 on, the level sensor reports 1.5 m more than the tank holds.
  for (int t = 300; t < 340; ++t) x(t, kLevel) += 1.5;
  auto stream = m->NewSignalStream();
  std::vector<double> row(kSignals.size());
  int first_alarm = -1;
  for (int t = 0; t < 340; ++t) {
    for (size_t c = 0; c < row.size(); ++c) row[c] = x(t, static_cast<Eigen::Index>(c));
    stream->ObserveRow(row);
    if (t >= 300 && first_alarm < 0 && stream->Current().anomalous) {
      first_alarm = t;
      const core::Verdict v = stream->Current();
      ASSERT_FALSE(v.explanation.empty());
      EXPECT_EQ(v.explanation[0].what.rfind("L_T read ", 0), 0u) << v.explanation[0].what;
      EXPECT_GT(v.score, 0.5);
      EXPECT_EQ(v.events, static_cast<uint64_t>(t + 1));
    }
  }
  EXPECT_EQ(first_alarm, 300);
}

TEST(IcsResidualTest, ConstantSignalThatMovesAndNonFiniteValuesAreAnomalous) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const Eigen::MatrixXd x = Plant(50, 3);
  std::vector<double> row(kSignals.size());
  for (size_t c = 0; c < row.size(); ++c) row[c] = x(49, static_cast<Eigen::Index>(c));
  {
    auto s = m->NewSignalStream();
    row[kConstant] = 1.0;
    s->ObserveRow(row);
    const core::Verdict v = s->Current();
    EXPECT_TRUE(v.anomalous);
    ASSERT_FALSE(v.explanation.empty());
    EXPECT_EQ(v.explanation[0].what, "S_OFF read 1, constant 0 in training");
  }
  {
    auto s = m->NewSignalStream();
    row[kConstant] = 0.0;
    row[kPressure] = std::nan("");
    s->ObserveRow(row);
    EXPECT_TRUE(s->Current().anomalous);
    EXPECT_EQ(s->Current().explanation[0].what, "P_J read nan");
  }
}

TEST(IcsResidualTest, ExtremeReadingsKeepTheScoreFinite) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  auto s = m->NewSignalStream();
  std::vector<double> row(kSignals.size(), 1e300);
  for (int i = 0; i < 3; ++i) {
    s->ObserveRow(row);
    const core::Verdict v = s->Current();
    EXPECT_TRUE(std::isfinite(s->RawScore()));
    EXPECT_TRUE(v.anomalous);
    EXPECT_GT(v.score, 0.5);
    EXPECT_LE(v.score, 1.0);
    row[kLevel] = -1e300;
  }
}

TEST(IcsResidualTest, StreamAndSeriesScoresAgree) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const Eigen::MatrixXd x = Plant(100, 8);
  const std::vector<double> series = m->ScoreSeries(x);
  auto s = m->NewSignalStream();
  EXPECT_EQ(s->Current().score, 0.0);
  std::vector<double> row(kSignals.size());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (size_t c = 0; c < row.size(); ++c) row[c] = x(t, static_cast<Eigen::Index>(c));
    s->ObserveRow(row);
    EXPECT_EQ(s->RawScore(), series[static_cast<size_t>(t)]);
  }
  EXPECT_EQ(s->observed(), 100u);
}

TEST(IcsResidualTest, SaveLoadGivesIdenticalScoresAndBytes) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const ModelFile file = m->ToFile({{"training", {{"rows", 2000}}}});
  const std::string bytes = EncodeModelFile(file);
  auto decoded = DecodeModelFile(bytes, "m.vmdl");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  auto loaded = IcsResidualModel::FromFile(*decoded, "m.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  const Eigen::MatrixXd x = Plant(300, 21);
  EXPECT_EQ(m->ScoreSeries(x), (*loaded)->ScoreSeries(x));
  EXPECT_EQ((*loaded)->calibration().threshold, m->calibration().threshold);
  EXPECT_EQ(EncodeModelFile((*loaded)->ToFile({{"training", {{"rows", 2000}}}})), bytes);
  // The common loader finds the family, and it scores time series.
  auto any = LoadModelFromFile(*decoded, "m.vmdl");
  ASSERT_TRUE(any.has_value()) << any.error().ToString();
  EXPECT_NE(dynamic_cast<const SignalModel*>(any->get()), nullptr);
}

TEST(IcsResidualTest, EventStreamsIgnoreEvents) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  auto s = m->NewStream("plc");
  core::Event e;
  s->Observe(e);
  EXPECT_EQ(s->observed(), 0u);
  EXPECT_EQ(s->Current().score, 0.0);
  EXPECT_EQ(s->Current().subject, "plc");
}

TEST(IcsResidualTest, RefusesEveryTruncatedPayload) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const ModelFile good = m->ToFile(nlohmann::json::object());
  for (size_t len = 0; len < good.payload.size(); ++len) {
    ModelFile f = good;
    f.payload.resize(len);
    auto r = IcsResidualModel::FromFile(f, "m.vmdl");
    ASSERT_FALSE(r.has_value()) << "length " << len;
    EXPECT_EQ(r.error().code(), core::StatusCode::kDataLoss);
    EXPECT_EQ(r.error().message().rfind("m.vmdl: payload: ", 0), 0u) << r.error().message();
  }
  ModelFile longer = good;
  longer.payload.push_back('\0');
  auto r = IcsResidualModel::FromFile(longer, "m.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "m.vmdl: payload: 1 trailing bytes");
}

TEST(IcsResidualTest, RefusesInconsistentPayloads) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const ModelFile good = m->ToFile(nlohmann::json::object());
  // Offsets: u32 count, then the names, then 4 f64 and 2 u32 parameters, then the roles.
  size_t at = 4;
  for (const std::string& s : kSignals) at += 2 + s.size();
  const size_t params = at, roles = at + 8 * 4 + 4 * 2;
  auto refuse = [&](size_t offset, const std::string& bytes, const std::string& why) {
    ModelFile f = good;
    f.payload.replace(offset, bytes.size(), bytes);
    auto r = IcsResidualModel::FromFile(f, "m.vmdl");
    ASSERT_FALSE(r.has_value()) << why;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  };
  const double nan = std::nan("");
  refuse(params, std::string(reinterpret_cast<const char*>(&nan), 8), "resolution");
  refuse(roles, std::string(1, '\x07'), "unknown role 7");
  refuse(roles + 9, std::string(8, '\0'), "scale <= 0");
  // Turning the constant signal into a target breaks the target count.
  refuse(roles + 17 * kConstant, std::string(1, '\x02'), "does not match");
  // Turning a target into a predictor does too.
  refuse(roles + 17 * kLevel, std::string(1, '\x01'), "does not match");
  // Duplicate signal names: S_PU (after L_T and F_IN, each with a u16 length) becomes F_IN.
  refuse(4 + (2 + 3) + (2 + 4) + 2, "F_IN", "appears twice");
  // The wrong family is a different kind of error.
  ModelFile other = good;
  other.header["family"] = "iforest";
  auto r = IcsResidualModel::FromFile(other, "m.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
}

TEST(IcsResidualTest, RandomByteDamageNeverCrashes) {
  auto m = TrainSmall();
  ASSERT_NE(m, nullptr);
  const ModelFile good = m->ToFile(nlohmann::json::object());
  std::mt19937_64 rng(3);
  const Eigen::MatrixXd x = Plant(30, 4);
  for (int i = 0; i < 2000; ++i) {
    ModelFile f = good;
    const size_t at = rng() % f.payload.size();
    f.payload[at] = static_cast<char>(rng());
    auto r = IcsResidualModel::FromFile(f, "m.vmdl");
    if (r.has_value()) (void)(*r)->ScoreSeries(x);  // loads only if consistent; then it scores
  }
}

TEST(IcsResidualTest, TrainRefusesBadInput) {
  const Eigen::MatrixXd x = Plant(200, 1);
  IcsResidualOptions o = SmallOptions();
  EXPECT_FALSE(IcsResidualModel::Train(kSignals, x.topRows(99), o).has_value());
  EXPECT_FALSE(IcsResidualModel::Train({"A", "B"}, x, o).has_value());
  std::vector<std::string> dup = kSignals;
  dup[1] = dup[0];
  EXPECT_FALSE(IcsResidualModel::Train(dup, x, o).has_value());
  Eigen::MatrixXd bad = x;
  bad(7, 1) = std::nan("");
  EXPECT_FALSE(IcsResidualModel::Train(kSignals, bad, o).has_value());
  Eigen::MatrixXd binary = Eigen::MatrixXd::Zero(200, 2);
  for (int r = 0; r < 200; r += 2) binary(r, 0) = 1.0;
  auto none = IcsResidualModel::Train({"A", "B"}, binary, o);
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message().find("nothing to predict"), std::string::npos);
  o.smoothing = 0.0;
  EXPECT_FALSE(IcsResidualModel::Train(kSignals, x, o).has_value());
}

}  // namespace
}  // namespace vigil::model
