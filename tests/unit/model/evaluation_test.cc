#include "model/evaluation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace vigil::model {
namespace {

std::vector<Scored> Make(const std::vector<double>& pos, const std::vector<double>& neg) {
  std::vector<Scored> out;
  for (double s : pos) out.push_back({s, true});
  for (double s : neg) out.push_back({s, false});
  return out;
}

double FractionAtLeast(const std::vector<double>& v, double t) {
  size_t n = 0;
  for (double x : v) n += x >= t ? 1 : 0;
  return static_cast<double>(n) / static_cast<double>(v.size());
}

TEST(RocAucTest, PerfectSeparationIsOne) {
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.9, 0.8, 0.7}, {0.1, 0.2, 0.3, 0.4})), 1.0);
}

TEST(RocAucTest, InvertedSeparationIsZero) {
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.1, 0.2}, {0.8, 0.9, 0.7})), 0.0);
}

TEST(RocAucTest, AllTiedIsOneHalf) {
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.5, 0.5}, {0.5, 0.5, 0.5})), 0.5);
}

TEST(RocAucTest, KnownMixedCaseCountsTiesAsHalf) {
  // Pairs (pos, neg): 0.8>0.5, 0.8>0.1, 0.4<0.5, 0.4>0.1 -> 3/4.
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.8, 0.4}, {0.5, 0.1})), 0.75);
  // (0.5 vs 0.5) is a tie worth 1/2; (0.5 vs 0.1) a win -> 1.5/2.
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.5}, {0.5, 0.1})), 0.75);
}

TEST(RocAucTest, EmptyClassIsOneHalf) {
  EXPECT_DOUBLE_EQ(RocAuc(Make({0.3, 0.4}, {})), 0.5);
  EXPECT_DOUBLE_EQ(RocAuc(Make({}, {0.3})), 0.5);
  EXPECT_DOUBLE_EQ(RocAuc({}), 0.5);
}

TEST(RocAucTest, RandomScoresAreNearOneHalf) {
  std::mt19937_64 rng(7);
  std::vector<Scored> ex;
  for (int i = 0; i < 20000; ++i) {
    ex.push_back({static_cast<double>(rng() % 1000), (rng() & 1) != 0});
  }
  EXPECT_NEAR(RocAuc(ex), 0.5, 0.02);
}

TEST(RocAucTest, IndependentOfInputOrder) {
  auto ex = Make({0.9, 0.4, 0.4, 0.2}, {0.4, 0.3, 0.1, 0.95});
  const double auc = RocAuc(ex);
  std::reverse(ex.begin(), ex.end());
  EXPECT_DOUBLE_EQ(RocAuc(ex), auc);
}

TEST(TprAtFprTest, KnownCases) {
  // Descending: 0.9+ 0.85- 0.8+ 0.3+ 0.2- 0.1- 0.05-
  const auto ex = Make({0.9, 0.8, 0.3}, {0.85, 0.2, 0.1, 0.05});
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.0), 1.0 / 3);  // only above 0.85
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.2), 1.0 / 3);  // one false positive is 25 %
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.25), 1.0);     // threshold 0.3 costs exactly one
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 1.0), 1.0);
}

TEST(TprAtFprTest, TiedScoresMoveTogether) {
  // A positive tied with a negative at the top cannot be taken without the negative.
  const auto ex = Make({0.9, 0.5}, {0.9, 0.1});
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.49), 0.0);
  EXPECT_DOUBLE_EQ(TprAtFpr(ex, 0.5), 1.0);
}

TEST(TprAtFprTest, DegenerateClasses) {
  EXPECT_DOUBLE_EQ(TprAtFpr(Make({}, {0.1, 0.2}), 0.05), 0.0);
  EXPECT_DOUBLE_EQ(TprAtFpr(Make({0.1, 0.2}, {}), 0.0), 1.0);
}

TEST(ThresholdForFprTest, KnownCase) {
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const double t = ThresholdForFpr(v, 0.1);
  EXPECT_GT(t, 9.0);
  EXPECT_LE(t, 10.0);
  EXPECT_DOUBLE_EQ(FractionAtLeast(v, t), 0.1);
}

TEST(ThresholdForFprTest, RespectsTheRateWithTies) {
  const std::vector<std::vector<double>> cases = {
      {5, 5, 5, 5, 1, 1, 1, 1, 1, 1},
      {3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
      {9, 7, 7, 7, 2, 2, 1, 0, 0, -4, 8, 8},
      {1.5},
  };
  for (const auto& v : cases) {
    for (double fpr : {0.0, 0.05, 0.1, 0.25, 0.3, 0.5, 0.99, 1.0}) {
      const double t = ThresholdForFpr(v, fpr);
      EXPECT_LE(FractionAtLeast(v, t), fpr + 1e-12) << "fpr " << fpr << " t " << t;
      // Smallest such threshold among the candidates: one step lower breaks the rate, unless
      // every normal is already flagged.
      if (FractionAtLeast(v, t) < 1.0) {
        const double lower = std::nextafter(t, -std::numeric_limits<double>::infinity());
        EXPECT_GT(FractionAtLeast(v, lower), fpr) << "fpr " << fpr << " t " << t;
      }
    }
  }
}

TEST(ThresholdForFprTest, ZeroRateIsAboveEveryNormal) {
  const std::vector<double> v = {0.2, 0.7, 0.7};
  EXPECT_GT(ThresholdForFpr(v, 0.0), 0.7);
}

TEST(ThresholdForFprTest, EmptyInputIsInfinite) {
  EXPECT_EQ(ThresholdForFpr({}, 0.05), std::numeric_limits<double>::infinity());
}

TEST(ThresholdForFprTest, OutOfRangeRatesAreClamped) {
  const std::vector<double> v = {1, 2, 3};
  EXPECT_EQ(ThresholdForFpr(v, -0.5), ThresholdForFpr(v, 0.0));
  EXPECT_EQ(ThresholdForFpr(v, std::nan("")), ThresholdForFpr(v, 0.0));
  EXPECT_EQ(ThresholdForFpr(v, 7.0), ThresholdForFpr(v, 1.0));
}

}  // namespace
}  // namespace vigil::model
