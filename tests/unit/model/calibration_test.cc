#include "model/calibration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "model/isolation_forest.h"
#include "model/sequence_model.h"

namespace vigil::model {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<double> Normal(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = g(rng);
  return v;
}

TEST(CalibrationTest, ReachesTheTargetRateOnHeldNormalData) {
  const std::vector<double> calibration = Normal(5000, 1);
  const std::vector<double> held = Normal(20000, 2);
  for (double target : {0.01, 0.05, 0.10}) {
    auto r = CalibrateThreshold(calibration, target, "held-out", "sha256:x");
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_LE(r->achieved_fpr, target);
    EXPECT_NEAR(r->achieved_fpr, target, 0.001);
    // A fresh sample of the same normal behaviour: within sampling tolerance of the target.
    EXPECT_NEAR(FalseAlarmRate(held, r->threshold), target, 0.25 * target + 0.003) << target;
    EXPECT_EQ(r->samples, 5000u);
    EXPECT_EQ(r->target_fpr, target);
  }
}

TEST(CalibrationTest, RefusesBadInput) {
  const std::vector<double> none;
  EXPECT_FALSE(CalibrateThreshold(none, 0.05, "m", "").has_value());
  const std::vector<double> some = {0.1, 0.2};
  EXPECT_FALSE(CalibrateThreshold(some, 0.0, "m", "").has_value());
  EXPECT_FALSE(CalibrateThreshold(some, 1.0, "m", "").has_value());
  const std::vector<double> nan = {0.1, std::nan("")};
  EXPECT_FALSE(CalibrateThreshold(nan, 0.05, "m", "").has_value());
}

TEST(CalibrationTest, JsonRoundTripAndPreciseErrors) {
  CalibrationRecord r{"held-out", "score", 0.61, 0.05, 0.049, 1207, "sha256:ab"};
  nlohmann::json j = {{"rows", 1207}};
  CalibrationToJson(r, j);
  EXPECT_EQ(j["rows"], 1207);  // other keys are kept
  auto back = CalibrationFromJson(j, "m.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->threshold, 0.61);
  EXPECT_EQ(back->digest, "sha256:ab");
  EXPECT_EQ(back->samples, 1207u);

  nlohmann::json bad = j;
  bad["achieved_fpr"] = 1.5;
  auto e = CalibrationFromJson(bad, "m.vmdl");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code(), core::StatusCode::kDataLoss);
  EXPECT_THAT(e.error().message(), HasSubstr("m.vmdl: header \"calibration\": \"achieved_fpr\""));
  bad = j;
  bad.erase("digest");
  EXPECT_THAT(CalibrationFromJson(bad, "m.vmdl").error().message(), HasSubstr("\"digest\""));
  bad = j;
  bad["samples"] = -3;
  EXPECT_THAT(CalibrationFromJson(bad, "m.vmdl").error().message(), HasSubstr("\"samples\""));
}

TEST(DatasetDigestTest, DependsOnContentAndSplit) {
  auto digest = [](std::initializer_list<std::string_view> parts) {
    DatasetDigest d;
    for (std::string_view p : parts) d.Add(p);
    return d.Final();
  };
  EXPECT_THAT(digest({"ab"}), StartsWith("sha256:"));
  EXPECT_EQ(digest({"ab"}).size(), 7u + 64u);
  EXPECT_EQ(digest({"ab", "c"}), digest({"ab", "c"}));
  EXPECT_NE(digest({"ab", "c"}), digest({"a", "bc"}));
}

// Both families record their calibration (with the calibration set's digest) and a drift
// reference in the header, and read them back.
TEST(CalibrationTest, IsolationForestRecordsCalibrationAndDriftReference) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(2000, std::vector<float>(4));
  for (auto& r : rows) {
    for (float& v : r) v = g(rng);
  }
  IsolationForestOptions o;
  o.trees = 50;
  o.target_fpr = 0.05;
  auto forest = IsolationForest::Train(rows, o);
  ASSERT_TRUE(forest.has_value()) << forest.error().ToString();
  const TrainingRecord& rec = forest->training_record();
  ASSERT_TRUE(rec.calibration.has_value());
  EXPECT_EQ(rec.calibration->method, "held-out");
  EXPECT_EQ(rec.calibration->samples, 400u);
  EXPECT_THAT(rec.calibration->digest, StartsWith("sha256:"));
  EXPECT_EQ(rec.calibration->threshold, forest->calibration().threshold);
  EXPECT_LE(rec.calibration->achieved_fpr, 0.05);
  ASSERT_TRUE(rec.drift.score.has_value());
  EXPECT_EQ(rec.drift.score->samples, 400u);
  EXPECT_FALSE(rec.drift.features.empty());
  EXPECT_LE(rec.drift.features.size(), 5u);

  // Held normal rows: the false-alarm rate stays near the target.
  std::vector<double> held;
  for (int i = 0; i < 4000; ++i) {
    std::vector<float> r(4);
    for (float& v : r) v = g(rng);
    held.push_back(forest->Score(r));
  }
  EXPECT_NEAR(FalseAlarmRate(held, forest->calibration().threshold), 0.05, 0.03);

  const ModelFile file = forest->ToFile({});
  EXPECT_EQ(file.header["calibration"]["digest"], rec.calibration->digest);
  EXPECT_EQ(file.header["calibration"]["rows"], 400);
  ASSERT_TRUE(file.header.contains("drift_reference"));
  auto back = IsolationForest::FromFile(file, "f.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  ASSERT_TRUE(back->training_record().calibration.has_value());
  EXPECT_EQ(back->training_record().calibration->digest, rec.calibration->digest);
  EXPECT_EQ(back->training_record().drift.ToJson(), rec.drift.ToJson());

  ModelFile broken = file;
  broken.header["drift_reference"]["score"]["proportions"][0] = -1;
  auto refused = IsolationForest::FromFile(broken, "f.vmdl");
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message(), HasSubstr("f.vmdl: header \"drift_reference\""));
}

TEST(CalibrationTest, SequenceModelRecordsCalibrationAndDriftReference) {
  std::vector<TrainingTrace> traces;
  std::mt19937 rng(3);
  for (int i = 0; i < 30; ++i) {
    TrainingTrace t;
    t.arch = core::Arch::kI386;
    for (int j = 0; j < 60; ++j) t.syscalls.push_back(j % 5 == 0 ? 5 : (rng() % 3 ? 3 : 4));
    traces.push_back(std::move(t));
  }
  SequenceModelOptions o;
  o.order = 3;
  auto m = SequenceModel::Train(traces, o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  const TrainingRecord& rec = (*m)->training_record();
  ASSERT_TRUE(rec.calibration.has_value());
  EXPECT_EQ(rec.calibration->method, "cross-fitted");
  EXPECT_EQ(rec.calibration->unit, "bits/syscall");
  EXPECT_EQ(rec.calibration->samples, 30u);
  EXPECT_EQ(rec.calibration->threshold, (*m)->CalibrationFor(kGlobalSubject).threshold);
  ASSERT_TRUE(rec.drift.score.has_value());

  // Another training set gives another digest.
  std::vector<TrainingTrace> other = traces;
  other[0].syscalls[1] = 4;
  auto m2 = SequenceModel::Train(other, o);
  ASSERT_TRUE(m2.has_value());
  EXPECT_NE((*m2)->training_record().calibration->digest, rec.calibration->digest);

  const ModelFile file = (*m)->ToFile({});
  EXPECT_TRUE(file.header["calibration"].contains("subjects"));
  auto back = SequenceModel::FromFile(file, "s.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ((*back)->training_record().calibration->digest, rec.calibration->digest);
  EXPECT_EQ((*back)->ToFile({}).header, file.header);
}

}  // namespace
}  // namespace vigil::model
