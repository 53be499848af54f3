#include "model/timeseries_features.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace vigil::model {
namespace {

TEST(TimeseriesFeaturesTest, QuantiseRoundsToTheResolution) {
  Eigen::MatrixXd m(1, 3);
  m << 1.234, -0.006, 2.0;
  QuantiseInPlace(m, 0.01);
  EXPECT_NEAR(m(0, 0), 1.23, 1e-12);
  EXPECT_NEAR(m(0, 1), -0.01, 1e-12);
  EXPECT_NEAR(m(0, 2), 2.0, 1e-12);
  Eigen::MatrixXd keep(1, 1);
  keep << 1.234;
  QuantiseInPlace(keep, 0.0);
  EXPECT_DOUBLE_EQ(keep(0, 0), 1.234);
}

TEST(TimeseriesFeaturesTest, ClassifiesConstantBinaryAndContinuousSignals) {
  Eigen::MatrixXd m(4, 4);
  m << 5, 0, 0.1, 7.001,  //
      5, 1, 0.7, 7.002,   //
      5, 1, 0.3, 7.0,     //
      5, 0, 0.9, 7.004;
  const auto roles = ClassifySignals(m, 0.01);
  EXPECT_EQ(roles, (std::vector<SignalRole>{SignalRole::kConstant, SignalRole::kPredictor,
                                            SignalRole::kTarget, SignalRole::kConstant}));
  // Without a resolution only exact constants are constant.
  EXPECT_EQ(ClassifySignals(m, 0.0)[3], SignalRole::kTarget);
  EXPECT_EQ(LiveSignals(roles), (std::vector<uint32_t>{1, 2}));
}

TEST(TimeseriesFeaturesTest, ScalingStandardisesAndLeavesConstantsFinite) {
  Eigen::MatrixXd m(2, 2);
  m << 1, 3,  //
      3, 3;
  const SignalScaling s = SignalScaling::Fit(m);
  EXPECT_DOUBLE_EQ(s.mean(0), 2.0);
  EXPECT_DOUBLE_EQ(s.scale(0), 1.0);
  EXPECT_DOUBLE_EQ(s.scale(1), 1.0);  // constant: replaced by 1
  const Eigen::MatrixXd z = s.Apply(m);
  EXPECT_DOUBLE_EQ(z(0, 0), -1.0);
  EXPECT_DOUBLE_EQ(z(1, 1), 0.0);
}

TEST(TimeseriesFeaturesTest, LaggedDesignHoldsTheRowAndTheRowBefore) {
  Eigen::MatrixXd z(3, 3);
  z << 1, 10, 100,  //
      2, 20, 200,   //
      3, 30, 300;
  const std::vector<uint32_t> live = {0, 2};
  const Eigen::MatrixXd d = LaggedDesign(z, live);
  ASSERT_EQ(d.cols(), 4);
  EXPECT_EQ(d.row(0), Eigen::RowVector4d(1, 100, 1, 100));  // the first row is its own lag
  EXPECT_EQ(d.row(2), Eigen::RowVector4d(3, 300, 2, 200));
  // Target 2 is predicted from column 0 at t and both columns at t-1.
  EXPECT_EQ(DesignColumnsFor(live, 2), (std::vector<uint32_t>{0, 2, 3}));
  EXPECT_EQ(DesignColumnsFor(live, 0), (std::vector<uint32_t>{1, 2, 3}));
}

TEST(TimeseriesFeaturesTest, RidgeRecoversALinearRelation) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const int n = 500;
  Eigen::MatrixXd d(n, 3);
  for (int r = 0; r < n; ++r) {
    d(r, 0) = u(rng);
    d(r, 1) = u(rng);
    d(r, 2) = 2.0 + 3.0 * d(r, 0) - 1.0 * d(r, 1);
  }
  const GramSystem g = GramSystem::Of(d);
  EXPECT_EQ(g.rows, static_cast<size_t>(n));
  const std::vector<uint32_t> cols = {0, 1};
  const RidgeFit fit = SolveRidge(g, cols, 2, 1e-9);
  EXPECT_NEAR(fit.weights(0), 3.0, 1e-6);
  EXPECT_NEAR(fit.weights(1), -1.0, 1e-6);
  EXPECT_NEAR(fit.intercept, 2.0, 1e-6);
  EXPECT_NEAR(fit.Predict(d.row(3), cols), d(3, 2), 1e-6);
  // A large penalty shrinks the slopes towards 0 but not the intercept towards 0.
  const RidgeFit shrunk = SolveRidge(g, cols, 2, 1e6);
  EXPECT_LT(std::abs(shrunk.weights(0)), 0.5);
  EXPECT_NEAR(shrunk.intercept, g.mean(2), 0.1);
}

TEST(TimeseriesFeaturesTest, GramOverChosenRowsOnly) {
  Eigen::MatrixXd d(4, 1);
  d << 1, 2, 100, 3;
  const std::vector<uint8_t> include = {1, 1, 0, 1};
  const GramSystem g = GramSystem::Of(d, include);
  EXPECT_EQ(g.rows, 3u);
  EXPECT_DOUBLE_EQ(g.mean(0), 2.0);
  EXPECT_DOUBLE_EQ(g.gram(0, 0), 2.0);  // (1-2)^2 + 0 + (3-2)^2
}

TEST(TimeseriesFeaturesTest, EwmaStartsAtTheFirstValue) {
  Ewma e(0.5);
  EXPECT_FALSE(e.started());
  EXPECT_DOUBLE_EQ(e.Update(4.0), 4.0);
  EXPECT_DOUBLE_EQ(e.Update(0.0), 2.0);
  EXPECT_DOUBLE_EQ(e.Update(2.0), 2.0);
  Ewma none(1.0);
  none.Update(3.0);
  EXPECT_DOUBLE_EQ(none.Update(9.0), 9.0);
}

}  // namespace
}  // namespace vigil::model
