#include "model/triage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/evaluation.h"
#include "model/loader.h"
#include "model/triage_labels.h"
#include "model/triage_traces.h"
#include "model/xgboost_booster.h"

namespace vigil::model {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Rows of 4 features: f0 decides the label (positive when f0 > 0.6), f1 is weakly related,
// f2 and f3 are noise; some f3 values are missing.
FeatureTable Synthetic(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  FeatureTable t;
  t.names = {"signal", "weak", "noise", "sparse"};
  for (size_t i = 0; i < n; ++i) {
    const float s = u(rng);
    const bool pos = s > 0.6f;
    t.values.insert(t.values.end(), {s, pos ? u(rng) * 0.5f + 0.3f : u(rng) * 0.5f, u(rng),
                                     i % 3 == 0 ? kMissingFeature : u(rng)});
    t.labels.push_back(pos ? 1.0f : 0.0f);
  }
  return t;
}

TriageOptions SmallOptions() {
  TriageOptions o;
  o.booster.rounds = 20;
  o.booster.max_depth = 3;
  o.booster.eta = 0.3;
  return o;
}

std::unique_ptr<TriageModel> TrainOrDie(const FeatureTable& t, const TriageOptions& o) {
  auto m = TriageModel::Train(t, o);
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  return std::move(m).value();
}

std::vector<float> ScoresOf(const TriageModel& m, const FeatureTable& t) {
  auto s = m.ScoreRows(t.values, t.rows());
  EXPECT_TRUE(s.has_value()) << s.error().ToString();
  return s.value_or(std::vector<float>{});
}

ModelFile RoundTrip(const TriageModel& m) {
  auto file = m.ToFile(nlohmann::json::object());
  EXPECT_TRUE(file.has_value()) << file.error().ToString();
  auto decoded = DecodeModelFile(EncodeModelFile(*file), "t.vmdl");
  EXPECT_TRUE(decoded.has_value()) << decoded.error().ToString();
  return std::move(decoded).value();
}

TEST(XgbBoosterTest, LearnsASeparableProblem) {
  const FeatureTable train = Synthetic(400, 1);
  const FeatureTable test = Synthetic(300, 2);
  auto m = TrainOrDie(train, SmallOptions());
  const std::vector<float> s = ScoresOf(*m, test);
  std::vector<Scored> ex;
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_GE(s[i], 0.0f);
    EXPECT_LE(s[i], 1.0f);
    ex.push_back({s[i], test.labels[i] == 1.0f});
  }
  EXPECT_GT(RocAuc(ex), 0.98);
}

TEST(XgbBoosterTest, ContributionsAddUpToTheMargin) {
  const FeatureTable t = Synthetic(200, 3);
  auto m = TrainOrDie(t, SmallOptions());
  auto matrix = XgbMatrix::FromDense(t.values, t.rows(), t.names.size());
  ASSERT_TRUE(matrix.has_value());
  auto p = m->booster().Predict(*matrix);
  auto c = m->booster().Contributions(*matrix);
  ASSERT_TRUE(p.has_value() && c.has_value());
  ASSERT_EQ(c->size(), t.rows() * 5);
  for (size_t i = 0; i < t.rows(); ++i) {
    double margin = 0;
    for (size_t f = 0; f < 5; ++f) margin += (*c)[i * 5 + f];
    EXPECT_NEAR(1.0 / (1.0 + std::exp(-margin)), (*p)[i], 1e-4);
  }
}

TEST(XgbBoosterTest, CApiErrorsCarryXgboostsMessage) {
  const FeatureTable t = Synthetic(50, 4);
  auto matrix = XgbMatrix::FromDense(t.values, t.rows(), t.names.size());
  ASSERT_TRUE(matrix.has_value());
  std::vector<float> labels(t.rows(), 2.0f);  // the logistic objective takes labels in [0, 1]
  ASSERT_TRUE(matrix->SetLabels(labels).ok());
  BoosterParams p;
  p.rounds = 2;
  auto b = XgbBooster::Train(*matrix, p);
  ASSERT_FALSE(b.has_value());
  EXPECT_THAT(b.error().message(), StartsWith("xgboost: boosting round 0: "));
  EXPECT_THAT(b.error().message(), HasSubstr("label"));
}

TEST(XgbBoosterTest, BadParametersAndShapesAreRefused) {
  BoosterParams p;
  p.eta = 0;
  EXPECT_EQ(CheckBoosterParams(p).code(), core::StatusCode::kInvalidArgument);
  std::vector<float> v(6, 1.0f);
  EXPECT_FALSE(XgbMatrix::FromDense(v, 4, 2).has_value());
  EXPECT_FALSE(XgbMatrix::FromDense(v, 0, 6).has_value());
  auto m = TrainOrDie(Synthetic(100, 5), SmallOptions());
  EXPECT_FALSE(m->ScoreRows(v, 2).has_value());  // 3 columns for a 4-feature model
}

TEST(TriageModelTest, SaveLoadGivesIdenticalScoresAndExplanations) {
  const FeatureTable t = Synthetic(300, 6);
  auto m = TrainOrDie(t, SmallOptions());
  const ModelFile file = RoundTrip(*m);
  EXPECT_EQ(HeaderString(file, "family"), "triage");
  auto loaded = TriageModel::FromFile(file, "t.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->feature_names(), t.names);
  EXPECT_EQ(ScoresOf(**loaded, t), ScoresOf(*m, t));
  for (size_t i = 0; i < 20; ++i) {
    auto a = m->Explain(t.row(i));
    auto b = (*loaded)->Explain(t.row(i));
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(a->score, b->score);
    EXPECT_EQ(a->contributions, b->contributions);
  }
  // Saving the loaded model gives the same bytes.
  auto again = (*loaded)->ToFile(nlohmann::json::object());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->payload, file.payload);
}

TEST(TriageModelTest, ExplanationNamesTheDecidingFeature) {
  const FeatureTable t = Synthetic(400, 7);
  auto m = TrainOrDie(t, SmallOptions());
  auto s = m->ScoreNamed({{"signal", 0.95}, {"weak", 0.2}, {"noise", 0.5}});
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_GT(s->score, 0.8);
  EXPECT_TRUE(s->positive);
  ASSERT_FALSE(s->explanation.empty());
  EXPECT_EQ(s->explanation[0].what, "signal=0.95");
  EXPECT_GT(s->explanation[0].weight, 0.0);
  for (const core::Evidence& e : s->explanation) EXPECT_GT(e.weight, 0.0);
  auto low = m->ScoreNamed({{"signal", 0.1}});
  ASSERT_TRUE(low.has_value());
  EXPECT_LT(low->score, 0.2);
  EXPECT_FALSE(low->positive);
  auto unknown = m->ScoreNamed({{"nope", 1.0}});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_THAT(unknown.error().message(), HasSubstr("\"nope\""));
}

TEST(TriageModelTest, TrainingRefusesBadTables) {
  FeatureTable t = Synthetic(50, 8);
  FeatureTable one_class = t;
  std::fill(one_class.labels.begin(), one_class.labels.end(), 0.0f);
  EXPECT_THAT(TriageModel::Train(one_class, SmallOptions()).error().message(),
              HasSubstr("both classes"));
  FeatureTable dup = t;
  dup.names[1] = "signal";
  EXPECT_FALSE(TriageModel::Train(dup, SmallOptions()).has_value());
  FeatureTable inf = t;
  inf.values[3] = INFINITY;
  EXPECT_FALSE(TriageModel::Train(inf, SmallOptions()).has_value());
}

TEST(TriageModelTest, OtherFamiliesAndMismatchedFilesAreRefused) {
  auto m = TrainOrDie(Synthetic(100, 9), SmallOptions());
  ModelFile file = RoundTrip(*m);
  ModelFile other = file;
  other.header["family"] = "syscall-ngram";
  auto r = TriageModel::FromFile(other, "x.vmdl");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);

  // A booster of 4 features under a payload that lists 3.
  FeatureTable three = Synthetic(100, 10);
  three.names.pop_back();
  std::vector<float> v;
  for (size_t i = 0; i < three.rows(); ++i) {
    v.insert(v.end(), three.values.begin() + i * 4, three.values.begin() + i * 4 + 3);
  }
  three.values = v;
  auto m3 = TrainOrDie(three, SmallOptions());
  ModelFile f3 = RoundTrip(*m3);
  // Splice the 4-feature booster into the 3-feature payload.
  const std::string& p4 = file.payload;
  const std::string& p3 = f3.payload;
  // The booster is the payload's tail, after its u64 length: a UBJSON object holding "learner".
  auto xgb_start = [](const std::string& p) { return p.rfind('{', p.find("learner")); };
  const size_t s4 = xgb_start(p4), s3 = xgb_start(p3);
  ASSERT_NE(s4, std::string::npos);
  ASSERT_NE(s3, std::string::npos);
  std::string spliced = p3.substr(0, s3 - 8);
  const uint64_t len = p4.size() - s4;
  spliced.append(reinterpret_cast<const char*>(&len), 8);
  spliced.append(p4.substr(s4));
  ModelFile bad = f3;
  bad.payload = spliced;
  auto rb = TriageModel::FromFile(bad, "spliced.vmdl");
  ASSERT_FALSE(rb.has_value());
  EXPECT_EQ(rb.error().code(), core::StatusCode::kDataLoss);
  EXPECT_THAT(rb.error().message(), HasSubstr("num_feature is not 3"));
}

TEST(TriageModelTest, EveryTruncatedPayloadIsRefused) {
  auto m = TrainOrDie(Synthetic(100, 11), SmallOptions());
  const ModelFile file = RoundTrip(*m);
  for (size_t len = 0; len < file.payload.size(); len += 1 + len / 64) {
    ModelFile cut = file;
    cut.payload.resize(len);
    auto r = TriageModel::FromFile(cut, "cut.vmdl");
    ASSERT_FALSE(r.has_value()) << "payload cut at " << len << " loaded";
    EXPECT_THAT(r.error().message(), StartsWith("cut.vmdl: "));
  }
  ModelFile longer = file;
  longer.payload.push_back('\0');
  EXPECT_FALSE(TriageModel::FromFile(longer, "long.vmdl").has_value());
}

TEST(TriageModelTest, FlippedPayloadBytesAreRefusedOrScoreSanely) {
  auto m = TrainOrDie(Synthetic(100, 12), SmallOptions());
  const FeatureTable probe = Synthetic(10, 13);
  const ModelFile file = RoundTrip(*m);
  size_t refused = 0;
  for (size_t i = 0; i < file.payload.size(); i += 1 + i / 128) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      ModelFile bad = file;
      bad.payload[i] = static_cast<char>(bad.payload[i] ^ mask);
      auto r = TriageModel::FromFile(bad, "flip.vmdl");
      if (!r.has_value()) {
        ++refused;
        EXPECT_FALSE(r.error().message().empty());
        continue;
      }
      // A flip that still makes a valid model (a changed split value) must score sanely.
      auto s = (*r)->ScoreRows(probe.values, probe.rows());
      ASSERT_TRUE(s.has_value()) << "byte " << i;
      for (float v : *s) {
        EXPECT_TRUE(v >= 0.0f && v <= 1.0f) << "byte " << i;
      }
    }
  }
  EXPECT_GT(refused, 0u);
}

// The XGBoost model bytes, decoded for tampering: the payload's tail after the 8-byte length.
nlohmann::json XgbJsonOf(const TriageModel& m) {
  auto bytes = m.booster().Save();
  EXPECT_TRUE(bytes.has_value());
  return nlohmann::json::from_ubjson(*bytes);
}

TEST(XgbValidateTest, RefusesMalformedTrees) {
  auto m = TrainOrDie(Synthetic(200, 14), SmallOptions());
  const nlohmann::json good = XgbJsonOf(*m);
  {
    const std::vector<uint8_t> bytes = nlohmann::json::to_ubjson(good);
    EXPECT_TRUE(ValidateXgbModel(std::string(bytes.begin(), bytes.end()), 4, "m").ok());
    EXPECT_TRUE(ValidateXgbModel(good.dump(), 4, "m").ok());
  }
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& why) {
    nlohmann::json j = good;
    edit(j);
    const core::Status s = ValidateXgbModel(j.dump(), 4, "m.vmdl");
    EXPECT_FALSE(s.ok()) << why;
    EXPECT_THAT(s.message(), HasSubstr(why));
    // XGBoost never sees these bytes, but Load must refuse them the same way.
    EXPECT_FALSE(XgbBooster::Load(j.dump(), 4, "m.vmdl").has_value());
  };
  auto tree0 = [](nlohmann::json& j) -> nlohmann::json& {
    return j["learner"]["gradient_booster"]["model"]["trees"][0];
  };
  refused([&](nlohmann::json& j) { tree0(j)["split_indices"][0] = 9; }, "split feature 9");
  refused([&](nlohmann::json& j) { tree0(j)["left_children"][0] = 0; }, "child index out of range");
  refused([&](nlohmann::json& j) { tree0(j)["left_children"][0] = 100000; },
          "child index out of range");
  refused([&](nlohmann::json& j) { tree0(j)["right_children"][0] = -1; }, "has one child");
  refused([&](nlohmann::json& j) { tree0(j)["parents"].erase(0); }, "differs in length");
  refused([&](nlohmann::json& j) { j["learner"]["objective"]["name"] = "reg:squarederror"; },
          "objective");
  refused([&](nlohmann::json& j) { j["learner"]["learner_model_param"]["num_feature"] = "5"; },
          "num_feature");
  refused([&](nlohmann::json& j) { j["learner"]["gradient_booster"]["name"] = "dart"; }, "gbtree");
  refused([&](nlohmann::json& j) { tree0(j)["split_type"][0] = 1; }, "categorical");
  refused([&](nlohmann::json& j) { tree0(j)["tree_param"]["num_nodes"] = "2"; }, "num_nodes");
  // A typed array of nulls takes no bytes per element: a 2^40 count must not be built.
  const std::string nulls("{i\x01" "a[$Z#L\x00\x00\x01\x00\x00\x00\x00\x00}", 17);
  EXPECT_FALSE(ValidateXgbModel(nulls, 4, "m").ok());
  const std::string huge("{i\x01" "a[$Z#L\x7f\xff\xff\xff\xff\xff\xff\xff}", 17);
  EXPECT_FALSE(ValidateXgbModel(huge, 4, "m").ok());
  EXPECT_FALSE(ValidateXgbModel("", 4, "m").ok());
  EXPECT_FALSE(ValidateXgbModel("{", 4, "m").ok());
  EXPECT_FALSE(ValidateXgbModel("\x5b\x24", 4, "m").ok());
}

TEST(TriageModelTest, LoaderKnowsTheFamily) {
  auto m = TrainOrDie(Synthetic(100, 15), SmallOptions());
  auto loaded = LoadModelFromFile(RoundTrip(*m), "t.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->family(), "triage");
  // A model without stream features scores a stream as the all-missing row.
  auto stream = (*loaded)->NewStream("");
  const int32_t calls[] = {3, 4, 5};
  stream->ObserveSyscalls(core::Arch::kI386, calls);
  auto missing = m->ScoreNamed({});
  ASSERT_TRUE(missing.has_value());
  EXPECT_DOUBLE_EQ(stream->Current().score, missing->score);
}

// --- traces -----------------------------------------------------------------------------------

// i386 numbers: 3 read, 4 write, 5 open, 6 close, 192 mmap2, 195 stat64, 11 execve,
// 102 socketcall, 63 dup2, 45 brk.
std::vector<int32_t> NormalTrace(std::mt19937_64& rng) {
  static const std::vector<std::vector<int32_t>> kBlocks = {
      {5, 195, 192, 3, 3, 6}, {45, 192, 192}, {5, 3, 4, 6}, {195, 5, 3, 6}};
  std::vector<int32_t> t;
  const size_t blocks = 10 + rng() % 30;
  for (size_t b = 0; b < blocks; ++b) {
    const auto& block = kBlocks[rng() % kBlocks.size()];
    t.insert(t.end(), block.begin(), block.end());
  }
  return t;
}

std::vector<int32_t> AttackTrace(std::mt19937_64& rng) {
  std::vector<int32_t> t = NormalTrace(rng);
  const std::vector<int32_t> payload = {102, 63, 63, 63, 11};
  t.insert(t.begin() + static_cast<ptrdiff_t>(rng() % t.size()), payload.begin(), payload.end());
  return t;
}

std::vector<LabelledTrace> SyntheticTraces(size_t normal, size_t runs, size_t per_run,
                                           uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<LabelledTrace> out;
  for (size_t i = 0; i < normal; ++i) {
    LabelledTrace t;
    t.id = "normal/" + std::to_string(i);
    t.group = t.id;
    t.syscalls = NormalTrace(rng);
    out.push_back(std::move(t));
  }
  for (size_t r = 0; r < runs; ++r) {
    for (size_t i = 0; i < per_run; ++i) {
      LabelledTrace t;
      t.id = "attack/" + std::to_string(r) + "/" + std::to_string(i);
      t.group = "attack/" + std::to_string(r);
      t.category = r % 2 ? "Shell" : "Bind";
      t.syscalls = AttackTrace(rng);
      t.positive = true;
      out.push_back(std::move(t));
    }
  }
  return out;
}

TraceTriageOptions SmallTraceOptions() {
  TraceTriageOptions o;
  o.triage = SmallOptions();
  o.ngram.order = 3;
  o.ngram.folds = 2;
  o.inner_folds = 3;
  return o;
}

TEST(TraceFeaturizerTest, StreamMatchesBatchAndNamesEveryFeature) {
  std::mt19937_64 rng(20);
  std::vector<TrainingTrace> train;
  for (int i = 0; i < 10; ++i) train.push_back({"", core::Arch::kI386, NormalTrace(rng)});
  SequenceModelOptions so;
  so.order = 3;
  so.folds = 2;
  auto ngram = SequenceModel::Train(train, so);
  ASSERT_TRUE(ngram.has_value());
  auto vocab = SyscallVocabulary::Create({"read", "open", "close"});
  ASSERT_TRUE(vocab.has_value());
  TraceFeaturizer f(*vocab, std::shared_ptr<const SequenceModel>(std::move(ngram).value()));
  const auto& names = f.feature_names();
  ASSERT_EQ(names.size(), f.dims());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  EXPECT_EQ(names.back(), "syscall.<other>");

  // A training trace has no unseen n-grams; an attack trace has some, and unknown calls.
  const std::vector<float> seen = f.Featurize(core::Arch::kI386, train[0].syscalls);
  auto at = [&](const std::vector<float>& v, const std::string& n) {
    return v[static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin())];
  };
  EXPECT_EQ(at(seen, "ngram.unseen_3"), 0.0f);
  EXPECT_EQ(at(seen, "ngram.unknown_calls"), 0.0f);
  const std::vector<int32_t> attack = AttackTrace(rng);
  const std::vector<float> batch = f.Featurize(core::Arch::kI386, attack);
  EXPECT_GT(at(batch, "ngram.unseen_3"), 0.0f);
  EXPECT_GT(at(batch, "ngram.unknown_calls"), 0.0f);
  EXPECT_GE(at(batch, "ngram.unseen_longest_run"), 3.0f);
  EXPECT_FLOAT_EQ(at(batch, "trace.length_log2"), std::log2(1.0f + attack.size()));

  TraceFeatureStream s = f.NewStream();
  for (int32_t nr : attack) s.Push(core::Arch::kI386, nr);
  std::vector<float> streamed(f.dims());
  s.Features(streamed);
  EXPECT_EQ(streamed, batch);
}

TEST(TraceTriageTest, GroupsNeverStraddleFolds) {
  const auto traces = SyntheticTraces(40, 6, 3, 21);
  const std::vector<int> fold = GroupFolds(traces, 3, 1);
  std::map<std::string, int> group_fold;
  std::map<int, std::set<std::string>> categories;
  for (size_t i = 0; i < traces.size(); ++i) {
    auto [it, fresh] = group_fold.emplace(traces[i].group, fold[i]);
    EXPECT_EQ(it->second, fold[i]) << traces[i].group;
    if (traces[i].positive) categories[fold[i]].insert(traces[i].category);
  }
  // Six runs of two kinds over three folds: every fold holds both kinds of attack.
  for (int f = 0; f < 3; ++f) EXPECT_EQ(categories[f].size(), 2u) << "fold " << f;
  EXPECT_EQ(GroupFolds(traces, 3, 1), fold);
}

TEST(TraceTriageTest, CrossValidationScoresUnseenTracesAndTheModelStreams) {
  const auto traces = SyntheticTraces(60, 6, 4, 22);
  const TraceTriageOptions o = SmallTraceOptions();
  auto cv = CrossValidateTraceTriage(traces, o, 3);
  ASSERT_TRUE(cv.has_value()) << cv.error().ToString();
  EXPECT_EQ(cv->scores.size(), traces.size());
  EXPECT_GT(cv->overall.auc, 0.95);
  EXPECT_EQ(cv->overall.positives, 24u);
  EXPECT_EQ(cv->per_category.size(), 2u);
  EXPECT_EQ(cv->calibration.method, "cross-validation");

  auto m = TrainTraceTriage(traces, o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_NE((*m)->featurizer(), nullptr);
  (*m)->set_calibration(cv->calibration);
  // Stream verdicts equal the model's row scores, and survive a save/load round trip.
  auto loaded = TriageModel::FromFile(RoundTrip(**m), "t.vmdl");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->calibration().threshold, cv->calibration.threshold);
  for (size_t i : {0u, 5u, 70u, 80u}) {
    auto a = (*m)->NewStream("");
    auto b = (*loaded)->NewStream("");
    a->ObserveSyscalls(core::Arch::kI386, traces[i].syscalls);
    for (int32_t nr : traces[i].syscalls) {
      core::Event e;
      e.syscall.arch = core::Arch::kI386;
      e.syscall.nr = nr;
      b->Observe(e);
    }
    const core::Verdict va = a->Current(), vb = b->Current();
    EXPECT_EQ(va.score, vb.score);
    EXPECT_EQ(va.events, traces[i].syscalls.size());
    const std::vector<float> row =
        (*m)->featurizer()->Featurize(core::Arch::kI386, traces[i].syscalls);
    auto direct = (*m)->ScoreRows(row, 1);
    ASSERT_TRUE(direct.has_value());
    EXPECT_NEAR(va.score, (*direct)[0], 1e-5);
    if (traces[i].positive) {
      EXPECT_TRUE(va.anomalous) << traces[i].id;
      ASSERT_FALSE(va.explanation.empty());
      const auto& names = (*m)->feature_names();
      const std::string top = va.explanation[0].what.substr(0, va.explanation[0].what.find('='));
      EXPECT_NE(std::find(names.begin(), names.end(), top), names.end()) << top;
    }
  }
}

TEST(TraceTriageTest, RefusesTrainingWithoutAttacks) {
  const auto traces = SyntheticTraces(20, 0, 0, 23);
  auto m = TrainTraceTriage(traces, SmallTraceOptions());
  ASSERT_FALSE(m.has_value());
  EXPECT_THAT(m.error().message(), HasSubstr("both classes"));
}

// --- labels -----------------------------------------------------------------------------------

TEST(TriageLabelsTest, ParsesRecords) {
  const std::string text =
      "{\"id\": \"a\", \"label\": \"true_positive\", \"features\": {\"x\": 1.5, \"y\": null}}\r\n"
      "\n"
      "{\"id\": \"b\", \"label\": \"false_positive\", \"analyst\": \"kim\"}\n"
      "  \n"
      "{\"id\": \"c\", \"label\": \"benign\", \"features\": {\"z\": -2}}";
  auto r = ParseTriageLabels(text, "l.jsonl");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].id, "a");
  EXPECT_EQ((*r)[0].label, TriageLabel::kTruePositive);
  EXPECT_EQ((*r)[0].features.at("x"), 1.5);
  EXPECT_FALSE((*r)[0].features.at("y").has_value());
  EXPECT_EQ((*r)[1].label, TriageLabel::kFalsePositive);
  EXPECT_EQ((*r)[2].line, 5u);
  auto t = LabelTable(*r);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->names, (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(t->labels, (std::vector<float>{1, 0, 0}));
  EXPECT_EQ(t->values[0], 1.5f);
  EXPECT_TRUE(std::isnan(t->values[1]));
  EXPECT_TRUE(std::isnan(t->values[3]));
  EXPECT_EQ(t->values[8], -2.0f);
}

TEST(TriageLabelsTest, BadLinesNameFileLineAndReason) {
  struct Case {
    std::string line;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"{\"id\": \"a\", \"label\": \"true_positive\"", "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {"{\"label\": \"benign\"}", "missing \"id\""},
      {"{\"id\": 7, \"label\": \"benign\"}", "\"id\" must be a non-empty string"},
      {"{\"id\": \"\", \"label\": \"benign\"}", "\"id\" must be a non-empty string"},
      {"{\"id\": \"q\"}", "missing \"label\""},
      {"{\"id\": \"q\", \"label\": \"maybe\"}", "expected true_positive, false_positive or benign"},
      {"{\"id\": \"q\", \"label\": 1}", "\"label\" must be a string"},
      {"{\"id\": \"q\", \"label\": \"benign\", \"features\": [1]}",
       "\"features\" must be an object"},
      {"{\"id\": \"q\", \"label\": \"benign\", \"features\": {\"f\": \"1\"}}",
       "feature \"f\" must be a number or null"},
      {"{\"id\": \"q\", \"label\": \"benign\", \"features\": {\"f\": 1e300}}",
       "feature \"f\" is not a finite float"},
      {"{\"id\": \"q\", \"label\": \"benign\", \"features\": {\"\": 1}}", "1..256 bytes"},
      {"{\"id\": \"first\", \"label\": \"benign\"}", "duplicate id \"first\""},
  };
  for (const Case& c : cases) {
    const std::string text = "{\"id\": \"first\", \"label\": \"benign\"}\n\n" + c.line + "\n";
    auto r = ParseTriageLabels(text, "adj.jsonl");
    ASSERT_FALSE(r.has_value()) << c.line;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.error().message(), StartsWith("adj.jsonl:3: ")) << c.line;
    EXPECT_THAT(r.error().message(), HasSubstr(c.why)) << c.line;
  }
  EXPECT_FALSE(ParseTriageLabels("\n\n", "empty.jsonl").has_value());
  EXPECT_EQ(LoadTriageLabels("/nonexistent/l.jsonl").error().code(), core::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil::model
