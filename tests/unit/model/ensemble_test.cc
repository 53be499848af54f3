#include "model/ensemble.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/loader.h"
#include "model/train/ensemble_train.h"
#include "synthetic_traces.h"

namespace vigil::model {
namespace {

using core::Arch;
using core::StatusCode;

using namespace synthetic;  // NOLINT(google-build-using-namespace): shared fixtures

EnsembleTrainOptions TinyEnsemble() {
  RnnTrainOptions rnn;
  rnn.embed = 8;
  rnn.hidden = 12;
  rnn.epochs = 4;
  rnn.batch = 8;
  rnn.bptt = 16;
  rnn.learning_rate = 0.02;
  SequenceModelOptions ngram;
  ngram.order = 3;
  ngram.folds = 3;
  auto members = ParseEnsembleMembers("ngram,rnn:seed=2:weight=2,rnn:cell=gru:hidden=8", ngram, rnn);
  EXPECT_TRUE(members.has_value());
  EnsembleTrainOptions o;
  o.members = std::move(members).value();
  o.calibration_fraction = 0.25;
  return o;
}

class EnsembleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    traces_ = new std::vector<TrainingTrace>(Corpus(48, "", 1));
    std::vector<EnsembleProgress> seen;
    auto r = TrainEnsemble(*traces_, TinyEnsemble(),
                           [&](const EnsembleProgress& p) { seen.push_back(p); });
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    // Two RNN members x 4 epochs, plus one "done" per member.
    EXPECT_EQ(seen.size(), 4u + 4u + 3u);
    model_ = r->model.release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete traces_;
  }
  static std::vector<TrainingTrace>* traces_;
  static EnsembleModel* model_;
};
std::vector<TrainingTrace>* EnsembleTest::traces_ = nullptr;
EnsembleModel* EnsembleTest::model_ = nullptr;

TEST_F(EnsembleTest, MembersAreNormalisedOnTheSameHeldOutTraces) {
  ASSERT_EQ(model_->members().size(), 3u);
  EXPECT_EQ(model_->members()[0].model->family(), "syscall-ngram");
  EXPECT_EQ(model_->members()[1].model->family(), "syscall-rnn");
  EXPECT_EQ(model_->members()[1].weight, 2.0);
  for (const EnsembleMember& m : model_->members()) EXPECT_EQ(m.reference.size(), 12u);
  EXPECT_EQ(model_->calibration().traces, 12u);
  EXPECT_EQ(model_->norm(), EnsembleNorm::kZScore);
}

TEST_F(EnsembleTest, AttackScoresAboveNormalAndNamesMembersInTheExplanation) {
  std::mt19937 rng(7);
  const core::Verdict normal = Score(*model_, NormalTrace(rng));
  const core::Verdict attack = Score(*model_, AttackTrace());
  EXPECT_GT(attack.score, normal.score);
  EXPECT_TRUE(attack.anomalous);
  EXPECT_FALSE(normal.anomalous);
  ASSERT_FALSE(attack.explanation.empty());
  EXPECT_NE(attack.explanation[0].what.find(": "), std::string::npos);
  EXPECT_NE(attack.explanation[0].what.find("setuid"), std::string::npos)
      << attack.explanation[0].what;
  EXPECT_EQ(Score(*model_, {}).score, 0.0);
}

TEST_F(EnsembleTest, CombineFollowsRankAndZScoreDefinitions) {
  std::vector<EnsembleMember> members;
  for (const EnsembleMember& m : model_->members()) {
    EnsembleMember copy;
    auto loaded = LoadModelFromFile(m.file, "member");
    ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
    copy.model = std::move(loaded).value();
    copy.file = m.file;
    copy.weight = 1.0;
    copy.reference = {0.1, 0.2, 0.2, 0.4};
    members.push_back(std::move(copy));
  }
  auto rank = EnsembleModel::Create("r", "1", EnsembleNorm::kRank, std::move(members), {});
  ASSERT_TRUE(rank.has_value()) << rank.error().ToString();
  // Mid-ranks: 0.2 sits between 1 and 3 of 4 -> 0.5; 0.05 -> 0; 0.9 -> 1.
  const double s[] = {0.2, 0.05, 0.9};
  EXPECT_NEAR((*rank)->Combine(s), (0.5 + 0.0 + 1.0) / 3, 1e-12);
  // z-score on logits: a member scoring its reference mean contributes 0.
  std::vector<EnsembleMember> one;
  EnsembleMember m;
  auto loaded = LoadModelFromFile(model_->members()[0].file, "member");
  ASSERT_TRUE(loaded.has_value());
  m.model = std::move(loaded).value();
  m.file = model_->members()[0].file;
  m.reference = {0.5, 0.5};
  one.push_back(std::move(m));
  auto z = EnsembleModel::Create("z", "1", EnsembleNorm::kZScore, std::move(one), {});
  ASSERT_TRUE(z.has_value());
  const double half[] = {0.5};
  EXPECT_NEAR((*z)->Combine(half), 0.0, 1e-9);
  const double high[] = {0.9};
  EXPECT_GT((*z)->Combine(high), 1000.0);  // sd floors at 1e-6: far past the reference
}

TEST_F(EnsembleTest, SaveLoadThroughTheFamilyLoaderGivesIdenticalScores) {
  const ModelFile f = model_->ToFile({});
  EXPECT_EQ(f.header["members"].size(), 3u);
  auto decoded = DecodeModelFile(EncodeModelFile(f), "ens.vmdl");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  auto loaded = LoadModelFromFile(*decoded, "ens.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->family(), "ensemble");
  for (const auto& t : {AttackTrace(), (*traces_)[7].syscalls}) {
    const core::Verdict a = Score(*model_, t), b = Score(**loaded, t);
    EXPECT_EQ(a.score, b.score);
    EXPECT_EQ(a.anomalous, b.anomalous);
  }
}

TEST_F(EnsembleTest, CorruptOrNestedFilesAreRefused) {
  const ModelFile good = model_->ToFile({});
  for (size_t len = 0; len < good.payload.size(); len += 1 + len / 16) {
    ModelFile f = good;
    f.payload.resize(len);
    auto m = LoadModelFromFile(f, "cut.vmdl");
    ASSERT_FALSE(m.has_value()) << "length " << len;
    EXPECT_NE(m.error().message().find("cut.vmdl"), std::string::npos) << m.error().message();
  }
  // A flipped byte inside an embedded member fails that member's checksum.
  ModelFile flipped = good;
  flipped.payload[flipped.payload.size() - 40] ^= 0x01;
  auto m = LoadModelFromFile(flipped, "flip.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("member"), std::string::npos) << m.error().message();
  // An ensemble inside an ensemble.
  EXPECT_TRUE(EnsembleModel::FromFile(good, "x").has_value());
  ModelFile nested = good;
  {
    std::string payload = good.payload.substr(0, 4 + 5 * 8 + 4);
    const uint32_t one = 1;
    std::memcpy(payload.data() + 4 + 5 * 8, &one, 4);
    const double weight = 1.0;
    payload.append(reinterpret_cast<const char*>(&weight), 8);
    const uint32_t nref = 1;
    payload.append(reinterpret_cast<const char*>(&nref), 4);
    const double ref = 0.5;
    payload.append(reinterpret_cast<const char*>(&ref), 8);
    const std::string inner = EncodeModelFile(good);
    const uint64_t len = inner.size();
    payload.append(reinterpret_cast<const char*>(&len), 8);
    payload += inner;
    nested.payload = payload;
  }
  auto n = LoadModelFromFile(nested, "nest.vmdl");
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message().find("itself an ensemble"), std::string::npos)
      << n.error().message();
}

TEST(EnsembleParseTest, MemberListErrorsNameTheMemberAndKey) {
  const SequenceModelOptions ngram;
  const RnnTrainOptions rnn;
  auto ok = ParseEnsembleMembers("ngram:order=4,rnn:cell=gru:hidden=64:seed=9:aggregate=mean", ngram,
                                 rnn);
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].ngram.order, 4);
  EXPECT_EQ((*ok)[1].rnn.cell, RnnCell::kGru);
  EXPECT_EQ((*ok)[1].rnn.hidden, 64);
  EXPECT_EQ((*ok)[1].rnn.seed, 9u);
  EXPECT_EQ((*ok)[1].rnn.embed, rnn.embed);  // unset keys keep the base
  for (const char* bad : {"forest", "rnn:hidden", "rnn:hidden=x", "ngram:hidden=4",
                          "rnn:weight=-1", "rnn:cell=tree", ""}) {
    auto r = ParseEnsembleMembers(bad, ngram, rnn);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace vigil::model
