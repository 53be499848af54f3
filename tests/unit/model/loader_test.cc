#include "model/loader.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/isolation_forest.h"
#include "model/sequence_model.h"

namespace vigil::model {
namespace {

std::vector<TrainingTrace> Traces() {
  std::mt19937 rng(7);
  std::vector<TrainingTrace> out;
  for (int i = 0; i < 30; ++i) {
    TrainingTrace t;
    t.arch = core::Arch::kI386;
    for (int k = 0; k < 40; ++k) t.syscalls.push_back(static_cast<int32_t>(3 + rng() % 4));
    out.push_back(std::move(t));
  }
  return out;
}

// Scores the same trace through a model and through LoadModelFromFile(ToFile()).
template <typename M>
void ExpectSameScoreAfterLoad(const M& m, const char* family) {
  ModelFile file = m.ToFile(nlohmann::json::object());
  auto loaded = LoadModelFromFile(file, "mem");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  EXPECT_EQ((*loaded)->family(), family);
  const std::vector<int32_t> trace = {3, 4, 5, 6, 11, 3, 4};
  auto a = m.NewStream("");
  auto b = (*loaded)->NewStream("");
  a->ObserveSyscalls(core::Arch::kI386, trace);
  b->ObserveSyscalls(core::Arch::kI386, trace);
  EXPECT_DOUBLE_EQ(a->Current().score, b->Current().score);
}

TEST(LoaderTest, LoadsEveryFamilyBehindTheModelInterface) {
  const auto traces = Traces();
  auto seq = SequenceModel::Train(traces, SequenceModelOptions{});
  ASSERT_TRUE(seq.has_value());
  ExpectSameScoreAfterLoad(**seq, "syscall-ngram");
  IsolationForestOptions io;
  io.trees = 10;
  io.sample_size = 16;
  auto forest = IsolationForestModel::Train(traces, io);
  ASSERT_TRUE(forest.has_value()) << forest.error().message();
  ExpectSameScoreAfterLoad(**forest, "iforest");
}

TEST(LoaderTest, UnknownFamilyNamesTheSourceAndTheKnownFamilies) {
  ModelFile file;
  file.header = {{"family", "crystal-ball"}, {"name", "x"}, {"version", "1"}};
  auto m = LoadModelFromFile(file, "models/x.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(m.error().message().find("models/x.vmdl"), std::string::npos);
  EXPECT_NE(m.error().message().find("\"crystal-ball\""), std::string::npos);
  EXPECT_NE(m.error().message().find("syscall-ngram"), std::string::npos);
}

TEST(LoaderTest, MissingFileIsAnError) {
  auto m = LoadModel("/nonexistent/dir/model.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("/nonexistent/dir/model.vmdl"), std::string::npos);
}

}  // namespace
}  // namespace vigil::model
