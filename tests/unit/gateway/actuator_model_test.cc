// The actuator-state model learned from BATADAL's dataset03 (normal operation only). Facts of
// that data the tests rely on: pump PU3 never runs; pump PU2 is always on while tank T1 is
// below about 1.0 m, and runs at every level of T1 some of the time.

#include "gateway/actuator_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vigil::gateway {
namespace {

using ::testing::HasSubstr;

class ActuatorModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto table = sensor::ReadBatadalTable(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
    ASSERT_TRUE(table.has_value()) << table.error().message();
    auto m = ActuatorStateModel::Learn(*table, ActuatorModelOptions{});
    ASSERT_TRUE(m.has_value()) << m.error().message();
    model_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() { delete model_; }

  // Tank levels of a normal hour (the first row of dataset03) with T1 replaced.
  void Levels(double t1, int64_t at) {
    const double levels[] = {t1, 2.05, 3.19, 2.79, 2.66, 5.32, 1.56};
    for (int i = 0; i < 7; ++i) plant_.Set("L_T" + std::to_string(i + 1), levels[i], at);
  }

  static ActuatorStateModel* model_;
  PlantState plant_;
};
ActuatorStateModel* ActuatorModelTest::model_ = nullptr;

TEST_F(ActuatorModelTest, LearnsEveryPumpAndValveAgainstEveryTank) {
  EXPECT_EQ(model_->actuators().size(), 12u);  // S_PU1..S_PU11, S_V2
  EXPECT_EQ(model_->context().size(), 7u);     // L_T1..L_T7
  EXPECT_EQ(model_->rows(), 8761u);
}

TEST_F(ActuatorModelTest, PumpThatNeverRunsIsInconsistentEverywhere) {
  Levels(2.5, 0);
  const Judgement j = model_->Judge("S_PU3", 1, plant_, 0);
  EXPECT_EQ(j.outcome, Judgement::Outcome::kInconsistent);
  ASSERT_FALSE(j.why.empty());
  EXPECT_THAT(j.why[0].what, HasSubstr("S_PU3=1 in 0 of"));
  EXPECT_DOUBLE_EQ(j.score, 1.0);
  EXPECT_EQ(model_->Judge("S_PU3", 0, plant_, 0).outcome, Judgement::Outcome::kConsistent);
}

TEST_F(ActuatorModelTest, StoppingTheFillPumpOfAnEmptyTankIsInconsistent) {
  Levels(0.5, 0);
  const Judgement off = model_->Judge("S_PU2", 0, plant_, 0);
  EXPECT_EQ(off.outcome, Judgement::Outcome::kInconsistent);
  ASSERT_FALSE(off.why.empty());
  EXPECT_THAT(off.why[0].what, HasSubstr("with L_T1 in ["));
  EXPECT_EQ(model_->Judge("S_PU2", 1, plant_, 0).outcome, Judgement::Outcome::kConsistent);
  // With T1 half full, stopping PU2 is normal.
  Levels(3.0, 0);
  EXPECT_EQ(model_->Judge("S_PU2", 0, plant_, 0).outcome, Judgement::Outcome::kConsistent);
}

TEST_F(ActuatorModelTest, NoFreshReadingMeansNoJudgement) {
  EXPECT_EQ(model_->Judge("S_PU3", 1, plant_, 0).outcome, Judgement::Outcome::kUnknown);
  Levels(2.5, 0);
  const int64_t three_hours = int64_t{3 * 3600} * 1'000'000'000;
  EXPECT_EQ(model_->Judge("S_PU3", 1, plant_, three_hours).outcome,
            Judgement::Outcome::kUnknown);
  EXPECT_EQ(model_->Judge("S_NOPE", 1, plant_, 0).outcome, Judgement::Outcome::kUnknown);
}

TEST(ActuatorModelLearnTest, RefusesNonStateActuatorValues) {
  auto t = sensor::ParseBatadalTable(
      "DATETIME,L_T1,S_PU1\n01/01/14 00,1.0,0.5\n01/01/14 01,1.0,1\n", "t.csv");
  ASSERT_TRUE(t.has_value()) << t.error().message();
  auto m = ActuatorStateModel::Learn(*t, {});
  ASSERT_FALSE(m.has_value());
  EXPECT_THAT(m.error().message(), HasSubstr("t.csv: row 1: actuator S_PU1 = 0.5"));
  auto missing = ActuatorStateModel::Learn(*t, {.actuators = {"S_PU9"}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_THAT(missing.error().message(), HasSubstr("no column \"S_PU9\""));
}

}  // namespace
}  // namespace vigil::gateway
