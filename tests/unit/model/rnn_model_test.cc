#include "model/rnn_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "model/train/rnn_train.h"
#include "synthetic_traces.h"

namespace vigil::model {
namespace {

using core::Arch;
using core::StatusCode;

using namespace synthetic;  // NOLINT(google-build-using-namespace): shared fixtures

RnnTrainOptions TinyOptions() {
  RnnTrainOptions o;
  o.embed = 8;
  o.hidden = 16;
  o.epochs = 8;
  o.batch = 8;
  o.bptt = 16;
  o.learning_rate = 0.02;
  o.calibration_fraction = 0.25;
  return o;
}

class RnnModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    traces_ = new std::vector<TrainingTrace>(Corpus(48, "", 1));
    auto r = TrainRnn(*traces_, TinyOptions());
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    result_ = new RnnTrainResult(std::move(r).value());
  }
  static void TearDownTestSuite() {
    delete result_;
    delete traces_;
  }
  static const RnnModel& model() { return *result_->model; }
  static std::vector<TrainingTrace>* traces_;
  static RnnTrainResult* result_;
};
std::vector<TrainingTrace>* RnnModelTest::traces_ = nullptr;
RnnTrainResult* RnnModelTest::result_ = nullptr;

TEST_F(RnnModelTest, TrainingReportsEveryEpochAndHoldsOutCalibrationTraces) {
  ASSERT_EQ(result_->epochs.size(), 8u);
  EXPECT_EQ(result_->calibration_traces, 12u);
  EXPECT_EQ(result_->fit_traces, 36u);
  EXPECT_LT(result_->epochs.back().train_loss, result_->epochs.front().train_loss);
  EXPECT_GE(result_->best_epoch, 1);
  EXPECT_EQ(model().calibration().traces, 12u);
  EXPECT_EQ(model().family(), "syscall-rnn");
}

TEST_F(RnnModelTest, EigenStreamMatchesLibtorchPerCall) {
  for (const auto& trace : {(*traces_)[3].syscalls, (*traces_)[0].syscalls, AttackTrace()}) {
    auto ref = TorchSurprisals(model(), Arch::kI386, trace);
    ASSERT_TRUE(ref.has_value()) << ref.error().ToString();
    const std::vector<float> got = model().Surprisals(Arch::kI386, trace);
    ASSERT_EQ(got.size(), ref->size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], (*ref)[i], 1e-3) << "call " << i;
  }
}

TEST_F(RnnModelTest, GruMatchesLibtorchToo) {
  RnnTrainOptions o = TinyOptions();
  o.cell = RnnCell::kGru;
  o.layers = 2;
  o.epochs = 1;
  auto r = TrainRnn(*traces_, o);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  const std::vector<int32_t> trace = AttackTrace();
  auto ref = TorchSurprisals(*r->model, Arch::kI386, trace);
  ASSERT_TRUE(ref.has_value()) << ref.error().ToString();
  const std::vector<float> got = r->model->Surprisals(Arch::kI386, trace);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], (*ref)[i], 1e-3) << "call " << i;
}

TEST_F(RnnModelTest, AttackScoresAboveNormalAndExplainsTheSurprisingCalls) {
  std::mt19937 rng(7);
  const core::Verdict normal = Score(model(), NormalTrace(rng));
  const core::Verdict attack = Score(model(), AttackTrace());
  EXPECT_GT(attack.score, normal.score);
  EXPECT_TRUE(attack.anomalous);
  EXPECT_FALSE(normal.anomalous);
  ASSERT_FALSE(attack.explanation.empty());
  EXPECT_NE(attack.explanation[0].what.find("setuid"), std::string::npos)
      << attack.explanation[0].what;
  EXPECT_EQ(attack.model_name, "syscall-rnn");
}

TEST_F(RnnModelTest, StreamMatchesWholeTraceScoreAndEventsAreCounted) {
  const std::vector<int32_t> t = AttackTrace();
  auto stream = StreamOfEvents(model(), t);
  EXPECT_EQ(stream->observed(), t.size());
  EXPECT_DOUBLE_EQ(stream->Current().score,
                   model().ScoreFromRaw(model().RawScore(Arch::kI386, t)));
  EXPECT_EQ(model().NewStream("")->Current().score, 0.0);
}

TEST_F(RnnModelTest, AggregatesFollowTheirDefinitions) {
  const std::vector<int32_t> t = AttackTrace();
  const std::vector<float> s = model().Surprisals(Arch::kI386, t);
  auto with = [&](RnnAggregate a, uint32_t window) {
    RnnScoring sc;
    sc.aggregate = a;
    sc.window = window;
    auto m = RnnModel::Create("x", "1", model().vocab(), model().weights(), sc,
                              model().calibration());
    EXPECT_TRUE(m.has_value());
    return (*m)->RawScore(Arch::kI386, t);
  };
  const double mean = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
  EXPECT_NEAR(with(RnnAggregate::kMean, 1), mean, 1e-9);
  double best = 0;
  for (size_t i = 0; i + 5 <= s.size(); ++i) {
    best = std::max(best, std::accumulate(s.begin() + i, s.begin() + i + 5, 0.0) / 5);
  }
  EXPECT_NEAR(with(RnnAggregate::kWindowMax, 5), best, 1e-5);
  std::vector<float> sorted = s;
  std::sort(sorted.rbegin(), sorted.rend());
  EXPECT_NEAR(with(RnnAggregate::kTopMean, 4),
              std::accumulate(sorted.begin(), sorted.begin() + 4, 0.0) / 4, 1e-5);
  // Shorter than the window: the mean of all calls.
  EXPECT_NEAR(with(RnnAggregate::kWindowMax, 100000), mean, 1e-5);
}

TEST_F(RnnModelTest, SaveLoadGivesIdenticalScores) {
  const ModelFile f = model().ToFile({{"training", {{"digest", "sha256:x"}}}});
  EXPECT_EQ(f.header["params"]["hidden"], 16);
  auto decoded = DecodeModelFile(EncodeModelFile(f), "mem");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  auto loaded = RnnModel::FromFile(*decoded, "mem");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  for (const auto& t : {AttackTrace(), (*traces_)[5].syscalls}) {
    const core::Verdict a = Score(model(), t), b = Score(**loaded, t);
    EXPECT_EQ(a.score, b.score);
    EXPECT_EQ(a.anomalous, b.anomalous);
    ASSERT_EQ(a.explanation.size(), b.explanation.size());
  }
  EXPECT_EQ((*loaded)->ToFile({}).payload, f.payload);
}

TEST_F(RnnModelTest, CorruptPayloadsAreRefused) {
  const ModelFile good = model().ToFile({});
  ExpectCutsAndTrailingBytesRefused(good, &RnnModel::FromFile, 64);
  // Parameters out of range: cell, embed, layers, aggregate.
  for (size_t offset : {0u, 4u, 12u, 16u}) {
    ModelFile f = good;
    f.payload[offset] = static_cast<char>(0x7f);
    f.payload[offset + 3] = static_cast<char>(0x7f);
    EXPECT_FALSE(RnnModel::FromFile(f, "f").has_value()) << "offset " << offset;
  }
  // A weight that is not finite (the last float of the output bias).
  ModelFile nan = good;
  const uint32_t bits = 0x7fc00000u;
  std::memcpy(nan.payload.data() + nan.payload.size() - 4, &bits, 4);
  auto m = RnnModel::FromFile(nan, "nan.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("finite"), std::string::npos) << m.error().message();
  // Another family.
  ModelFile other = good;
  other.header["family"] = "syscall-ngram";
  EXPECT_EQ(RnnModel::FromFile(other, "f").error().code(), StatusCode::kInvalidArgument);
}

TEST(RnnTrainTest, RefusesBadOptionsAndTooFewTraces) {
  const std::vector<TrainingTrace> traces = Corpus(4, "", 3);
  RnnTrainOptions o = TinyOptions();
  o.hidden = 0;
  EXPECT_EQ(TrainRnn(traces, o).error().code(), StatusCode::kInvalidArgument);
  o = TinyOptions();
  o.learning_rate = 2;
  EXPECT_EQ(TrainRnn(traces, o).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TrainRnn(std::span(traces).first(1), TinyOptions()).error().code(),
            StatusCode::kInvalidArgument);
}

TEST(RnnTrainTest, SplitIsSeededAndDisjoint) {
  std::vector<size_t> fit, cal, fit2, cal2;
  SplitForCalibration(10, 0.3, 5, &fit, &cal);
  SplitForCalibration(10, 0.3, 5, &fit2, &cal2);
  EXPECT_EQ(cal.size(), 3u);
  EXPECT_EQ(fit.size(), 7u);
  EXPECT_EQ(cal, cal2);
  for (size_t c : cal) EXPECT_EQ(std::count(fit.begin(), fit.end(), c), 0);
  SplitForCalibration(10, 0.0, 5, &fit, &cal);
  EXPECT_TRUE(cal.empty());
  EXPECT_EQ(fit.size(), 10u);
}

}  // namespace
}  // namespace vigil::model
