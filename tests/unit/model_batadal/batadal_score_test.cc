#include "model/batadal_score.h"

#include <gtest/gtest.h>

#include <vector>

namespace vigil::model {
namespace {

// attack ids: 0 = normal hour.
BatadalScore Score(const std::vector<int>& ids, const std::vector<uint8_t>& alarms) {
  auto s = ComputeBatadalScore(ids, alarms);
  EXPECT_TRUE(s.has_value()) << s.error().ToString();
  return s.has_value() ? *s : BatadalScore{};
}

TEST(BatadalScoreTest, PerfectDetectorScoresOne) {
  const std::vector<int> ids = {0, 0, 1, 1, 1, 0, 2, 2, 0};
  const std::vector<uint8_t> alarms = {0, 0, 1, 1, 1, 0, 1, 1, 0};
  const BatadalScore s = Score(ids, alarms);
  EXPECT_DOUBLE_EQ(s.s, 1.0);
  EXPECT_DOUBLE_EQ(s.s_ttd, 1.0);
  EXPECT_DOUBLE_EQ(s.s_cm, 1.0);
  ASSERT_EQ(s.attacks.size(), 2u);
  EXPECT_EQ(s.attacks[0].time_to_detection, 0u);
  EXPECT_TRUE(s.attacks[1].detected);
}

TEST(BatadalScoreTest, UndetectedAttackCountsItsWholeDuration) {
  // Attack 1 (4 h) detected at its third hour; attack 2 (2 h) never.
  const std::vector<int> ids = {0, 1, 1, 1, 1, 0, 0, 2, 2, 0};
  const std::vector<uint8_t> alarms = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  const BatadalScore s = Score(ids, alarms);
  ASSERT_EQ(s.attacks.size(), 2u);
  EXPECT_TRUE(s.attacks[0].detected);
  EXPECT_EQ(s.attacks[0].time_to_detection, 2u);
  EXPECT_EQ(s.attacks[0].duration, 4u);
  EXPECT_EQ(s.attacks[0].hours_flagged, 2u);
  EXPECT_FALSE(s.attacks[1].detected);
  EXPECT_EQ(s.attacks[1].time_to_detection, 2u);
  EXPECT_DOUBLE_EQ(s.attacks[1].ratio(), 1.0);
  // S_TTD = 1 - (2/4 + 2/2) / 2 = 0.25.
  EXPECT_DOUBLE_EQ(s.s_ttd, 0.25);
  // TP 2, FN 4 -> TPR 1/3; TN 4, FP 0 -> TNR 1.
  EXPECT_EQ(s.tp, 2u);
  EXPECT_EQ(s.fn, 4u);
  EXPECT_DOUBLE_EQ(s.tpr, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.tnr, 1.0);
  EXPECT_DOUBLE_EQ(s.s_cm, (1.0 / 3.0 + 1.0) / 2.0);
  EXPECT_DOUBLE_EQ(s.s, 0.5 * 0.25 + 0.5 * s.s_cm);
}

TEST(BatadalScoreTest, AlarmBeforeTheAttackStartsDoesNotCount) {
  // An alarm the hour before the attack (a false positive) and none during it.
  const std::vector<int> ids = {0, 0, 1, 1, 1, 0};
  const std::vector<uint8_t> alarms = {0, 1, 0, 0, 0, 1};
  const BatadalScore s = Score(ids, alarms);
  ASSERT_EQ(s.attacks.size(), 1u);
  EXPECT_FALSE(s.attacks[0].detected);
  EXPECT_DOUBLE_EQ(s.s_ttd, 0.0);
  EXPECT_EQ(s.fp, 2u);
  EXPECT_EQ(s.tn, 1u);
  EXPECT_DOUBLE_EQ(s.tnr, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.tpr, 0.0);
}

TEST(BatadalScoreTest, AlarmsAfterTheAttackEndsDoNotCount) {
  const std::vector<int> ids = {1, 1, 0, 0};
  const std::vector<uint8_t> alarms = {0, 0, 1, 1};
  const BatadalScore s = Score(ids, alarms);
  EXPECT_FALSE(s.attacks[0].detected);
  EXPECT_DOUBLE_EQ(s.s_ttd, 0.0);
  EXPECT_DOUBLE_EQ(s.s_cm, 0.0);
  EXPECT_DOUBLE_EQ(s.s, 0.0);
}

TEST(BatadalScoreTest, DetectionAtTheLastHourIsBetterThanNone) {
  const std::vector<int> ids = {0, 3, 3, 3, 3, 3};
  const BatadalScore late = Score(ids, {0, 0, 0, 0, 0, 1});
  EXPECT_TRUE(late.attacks[0].detected);
  EXPECT_EQ(late.attacks[0].time_to_detection, 4u);
  EXPECT_DOUBLE_EQ(late.s_ttd, 1.0 - 4.0 / 5.0);
  EXPECT_EQ(late.attacks[0].id, 3);
}

TEST(BatadalScoreTest, AdjacentAttacksWithDifferentIdsAreSeparate) {
  const std::vector<int> ids = {0, 1, 1, 2, 2, 2, 0};
  const std::vector<uint8_t> alarms = {0, 1, 1, 0, 0, 1, 0};
  const BatadalScore s = Score(ids, alarms);
  ASSERT_EQ(s.attacks.size(), 2u);
  EXPECT_EQ(s.attacks[0].duration, 2u);
  EXPECT_EQ(s.attacks[1].start, 3u);
  EXPECT_EQ(s.attacks[1].time_to_detection, 2u);
  EXPECT_DOUBLE_EQ(s.s_ttd, 1.0 - (0.0 + 2.0 / 3.0) / 2.0);
}

TEST(BatadalScoreTest, GammaWeighsTheParts) {
  const std::vector<int> ids = {0, 1, 1, 0};
  const std::vector<uint8_t> alarms = {1, 0, 1, 0};
  auto s = ComputeBatadalScore(ids, alarms, 1.0);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->s, s->s_ttd);
  s = ComputeBatadalScore(ids, alarms, 0.0);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->s, s->s_cm);
}

TEST(BatadalScoreTest, RefusesUndefinedInputs) {
  EXPECT_FALSE(ComputeBatadalScore(std::vector<int>{0, 1}, std::vector<uint8_t>{0}).has_value());
  EXPECT_FALSE(ComputeBatadalScore(std::vector<int>{0, 0}, std::vector<uint8_t>{0, 1}).has_value());
  EXPECT_FALSE(ComputeBatadalScore(std::vector<int>{1, 1}, std::vector<uint8_t>{0, 1}).has_value());
  EXPECT_FALSE(
      ComputeBatadalScore(std::vector<int>{0, 1}, std::vector<uint8_t>{0, 1}, 1.5).has_value());
}

TEST(BatadalScoreTest, AttackRunsSplitOnIdChanges) {
  const auto runs = AttackRuns(std::vector<int>{1, 1, 0, 1, 2, 2, 0});
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].start, 0u);
  EXPECT_EQ(runs[0].duration, 2u);
  EXPECT_EQ(runs[1].start, 3u);
  EXPECT_EQ(runs[1].id, 1);
  EXPECT_EQ(runs[2].id, 2);
  EXPECT_EQ(runs[2].duration, 2u);
}

}  // namespace
}  // namespace vigil::model
