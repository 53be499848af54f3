// The inference engine around a real stream family (the engine's own tests, which TSan also
// runs, use fake models and do not link the model families).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "model/inference_engine.h"
#include "model/sequence_model.h"

namespace vigil::model {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kLongBudget = 30'000'000'000;

// The default Model::Score of a stream family gives the stream's verdict; a vector-only request
// is refused with the family named, and the engine answers it with the fallback.
TEST(EngineFamiliesTest, StreamFamiliesScoreWindowsThroughTheDefaultScore) {
  std::vector<TrainingTrace> traces;
  std::mt19937 rng(3);
  for (int i = 0; i < 12; ++i) {
    TrainingTrace t;
    t.arch = core::Arch::kI386;
    for (int j = 0; j < 40; ++j) t.syscalls.push_back(j % 4 == 0 ? 5 : (rng() % 2 ? 3 : 4));
    traces.push_back(std::move(t));
  }
  SequenceModelOptions so;
  so.order = 3;
  so.folds = 3;
  auto trained = SequenceModel::Train(traces, so);
  ASSERT_TRUE(trained.has_value()) << trained.error().ToString();
  std::shared_ptr<const Model> seq(std::move(trained).value());
  const std::vector<int32_t> window = {5, 3, 4, 11, 23, 5, 3};
  auto stream = seq->NewStream("");
  stream->ObserveSyscalls(core::Arch::kI386, window);
  const core::Verdict expected = stream->Current();

  core::FakeClock clock;
  core::Registry registry;
  InferenceEngineOptions o;
  o.registry = &registry;
  auto made = InferenceEngine::Create(seq, o, clock);
  ASSERT_TRUE(made.has_value()) << made.error().ToString();
  auto engine = std::move(made).value();
  const EngineVerdict v = engine->ScoreSync({"", core::Arch::kI386, window, {}}, kLongBudget);
  ASSERT_EQ(v.source, VerdictSource::kModel);
  EXPECT_DOUBLE_EQ(v.verdict.score, expected.score);
  EXPECT_EQ(v.verdict.events, window.size());

  const std::vector<float> x = {0.5f};
  auto refused = seq->Score({"", core::Arch::kI386, {}, x});
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message(), HasSubstr("syscall-ngram"));
  EXPECT_EQ(engine->ScoreSync({"", core::Arch::kI386, {}, x}, kLongBudget).reason,
            FallbackReason::kModelError);
}

}  // namespace
}  // namespace vigil::model
