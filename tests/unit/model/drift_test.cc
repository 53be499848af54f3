#include "model/drift.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace vigil::model {
namespace {

using ::testing::HasSubstr;

std::vector<double> Normal(size_t n, double mean, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(mean, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = g(rng);
  return v;
}

TEST(ReferenceHistogramTest, QuantileBinsHoldEqualShares) {
  auto h = ReferenceHistogram::FromSamples(Normal(10000, 0, 1), 10);
  ASSERT_TRUE(h.has_value());
  ASSERT_EQ(h->bins(), 10u);
  for (double p : h->proportions) EXPECT_NEAR(p, 0.1, 0.001);
  EXPECT_EQ(h->BinOf(-100), 0u);
  EXPECT_EQ(h->BinOf(100), 9u);
  EXPECT_EQ(h->BinOf(h->edges[3]), 3u);  // an edge closes its bin
}

TEST(ReferenceHistogramTest, ConstantSamplesMergeBins) {
  const std::vector<double> c(50, 0.5);
  auto h = ReferenceHistogram::FromSamples(c, 10);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->bins(), 2u);
  EXPECT_EQ(h->proportions[0], 1.0);
}

TEST(ReferenceHistogramTest, RefusesBadSamplesAndJson) {
  const std::vector<double> one = {1.0};
  EXPECT_FALSE(ReferenceHistogram::FromSamples(one).has_value());
  const std::vector<double> inf = {1.0, INFINITY};
  EXPECT_FALSE(ReferenceHistogram::FromSamples(inf).has_value());
  auto h = ReferenceHistogram::FromSamples(Normal(100, 0, 1), 4);
  ASSERT_TRUE(h.has_value());
  auto back = ReferenceHistogram::FromJson(h->ToJson(), "m", "here");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->edges, h->edges);
  EXPECT_EQ(back->proportions, h->proportions);
  nlohmann::json bad = h->ToJson();
  bad["edges"][1] = bad["edges"][0];
  EXPECT_THAT(ReferenceHistogram::FromJson(bad, "m", "here").error().message(),
              HasSubstr("m: here: edges are not strictly increasing"));
  bad = h->ToJson();
  bad["proportions"][0] = 0.9;
  EXPECT_THAT(ReferenceHistogram::FromJson(bad, "m", "here").error().message(),
              HasSubstr("do not sum to 1"));
  bad = h->ToJson();
  bad["edges"].erase(0);
  EXPECT_THAT(ReferenceHistogram::FromJson(bad, "m", "here").error().message(),
              HasSubstr("edges do not match"));
}

TEST(PsiTest, IdenticalDistributionsGiveAboutZero) {
  auto ref = ReferenceHistogram::FromSamples(Normal(20000, 0, 1), 10);
  ASSERT_TRUE(ref.has_value());
  EXPECT_LT(PopulationStabilityIndex(*ref, Normal(20000, 0, 2)), 0.01);
  const std::vector<double> p = {0.2, 0.3, 0.5};
  EXPECT_EQ(PopulationStabilityIndex(p, p), 0.0);
}

TEST(PsiTest, ShiftedDistributionsGoAboveTheThreshold) {
  auto ref = ReferenceHistogram::FromSamples(Normal(20000, 0, 1), 10);
  ASSERT_TRUE(ref.has_value());
  const double small = PopulationStabilityIndex(*ref, Normal(20000, 0.2, 3));
  const double large = PopulationStabilityIndex(*ref, Normal(20000, 1.0, 4));
  EXPECT_GT(small, 0.02);
  EXPECT_LT(small, 0.25);
  EXPECT_GT(large, 0.25);
  EXPECT_GT(large, small);
  // Empty bins are floored, not infinite.
  const std::vector<double> e = {0.5, 0.5}, a = {1.0, 0.0};
  EXPECT_TRUE(std::isfinite(PopulationStabilityIndex(e, a)));
  const std::vector<double> three = {0.2, 0.3, 0.5};
  EXPECT_TRUE(std::isnan(PopulationStabilityIndex(e, three)));
}

DriftReference Reference() {
  DriftReference r;
  r.score = ReferenceHistogram::FromSamples(Normal(5000, 0, 1), 10).value();
  r.features.push_back({"open", 1, ReferenceHistogram::FromSamples(Normal(5000, 5, 2), 10).value()});
  return r;
}

TEST(DriftReferenceTest, HeaderRoundTrip) {
  const DriftReference r = Reference();
  nlohmann::json header = {{"family", "x"}, {"drift_reference", r.ToJson()}};
  auto back = DriftReference::FromHeader(header, "m.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->ToJson(), r.ToJson());
  ASSERT_EQ(back->features.size(), 1u);
  EXPECT_EQ(back->features[0].index, 1u);
  auto none = DriftReference::FromHeader({{"family", "x"}}, "m.vmdl");
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  header["drift_reference"]["features"]["open"].erase("index");
  EXPECT_THAT(DriftReference::FromHeader(header, "m.vmdl").error().message(),
              HasSubstr("m.vmdl: header \"drift_reference\" feature \"open\": \"index\""));
}

TEST(DriftMonitorTest, AlertsOnceWhenTheScoreShiftsAndExportsGauges) {
  core::Registry registry;
  DriftMonitorOptions o;
  o.model = "m";
  o.threshold = 0.25;
  o.min_samples = 500;
  o.registry = &registry;
  auto monitor = DriftMonitor::Create(Reference(), o);
  ASSERT_TRUE(monitor.has_value()) << monitor.error().ToString();
  DriftMonitor& d = **monitor;

  // Too few observations: not judged, even though they are far off.
  for (double s : Normal(100, 3, 5)) d.ObserveScore(s);
  EXPECT_FALSE(d.Evaluate().alert.has_value());
  d.Reset();

  // The same distribution as in training: no alert.
  for (double s : Normal(3000, 0, 6)) d.ObserveScore(s);
  DriftReport stable = d.Evaluate();
  EXPECT_EQ(stable.samples, 3000u);
  EXPECT_LT(stable.score_psi, 0.05);
  EXPECT_FALSE(stable.alert.has_value());
  d.Reset();

  // Shifted: one alert naming the score, then none while it stays shifted.
  for (double s : Normal(3000, 1.5, 7)) d.ObserveScore(s);
  DriftReport shifted = d.Evaluate();
  EXPECT_GT(shifted.score_psi, 0.25);
  ASSERT_TRUE(shifted.alert.has_value());
  EXPECT_TRUE(shifted.alert->anomalous);
  EXPECT_EQ(shifted.alert->model_name, "m");
  ASSERT_FALSE(shifted.alert->explanation.empty());
  EXPECT_THAT(shifted.alert->explanation[0].what, HasSubstr("drift: score PSI"));
  EXPECT_FALSE(d.Evaluate().alert.has_value());
  EXPECT_EQ(d.alerts(), 1u);
  const std::string text = registry.ExpositionText();
  EXPECT_THAT(text, HasSubstr("vigil_model_drift_psi{model=\"m\",of=\"score\"}"));
  EXPECT_THAT(text, HasSubstr("vigil_model_drift_psi{model=\"m\",of=\"feature:open\"}"));
  EXPECT_THAT(text, HasSubstr("vigil_model_drift_alerts_total{model=\"m\"} 1"));

  // Back to normal re-arms it.
  d.Reset();
  for (double s : Normal(3000, 0, 8)) d.ObserveScore(s);
  EXPECT_FALSE(d.Evaluate().alert.has_value());
  d.Reset();
  for (double s : Normal(3000, 1.5, 9)) d.ObserveScore(s);
  EXPECT_TRUE(d.Evaluate().alert.has_value());
  EXPECT_EQ(d.alerts(), 2u);
}

TEST(DriftMonitorTest, FeatureDriftIsJudgedOnItsOwn) {
  core::Registry registry;
  DriftMonitorOptions o;
  o.model = "m";
  o.min_samples = 500;
  o.registry = &registry;
  auto monitor = DriftMonitor::Create(Reference(), o);
  ASSERT_TRUE(monitor.has_value());
  DriftMonitor& d = **monitor;
  const std::vector<double> scores = Normal(2000, 0, 10);
  const std::vector<double> feature = Normal(2000, 8, 11);  // reference mean 5
  for (size_t i = 0; i < scores.size(); ++i) {
    d.ObserveScore(scores[i]);
    const std::vector<float> row = {0.0f, static_cast<float>(feature[i])};
    d.ObserveFeatures(row);
  }
  const DriftReport r = d.Evaluate();
  EXPECT_LT(r.score_psi, 0.1);
  ASSERT_EQ(r.feature_psi.size(), 1u);
  EXPECT_GT(r.feature_psi[0].second, 0.25);
  ASSERT_TRUE(r.alert.has_value());
  EXPECT_THAT(r.alert->explanation[0].what, HasSubstr("drift: feature open PSI"));
}

TEST(DriftMonitorTest, RefusesAnEmptyReferenceOrBadThreshold) {
  EXPECT_FALSE(DriftMonitor::Create(DriftReference{}, {}).has_value());
  core::Registry registry;
  DriftMonitorOptions o;
  o.threshold = 0;
  o.registry = &registry;
  EXPECT_FALSE(DriftMonitor::Create(Reference(), o).has_value());
}

}  // namespace
}  // namespace vigil::model
