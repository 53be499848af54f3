#include "model/isolation_forest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/evaluation.h"

namespace vigil::model {
namespace {

using ::testing::HasSubstr;

constexpr size_t kDims = 8;

// Rows of a standard Gaussian blob.
std::vector<std::vector<float>> Blob(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(n, std::vector<float>(kDims));
  for (auto& r : rows) {
    for (float& v : r) v = g(rng);
  }
  return rows;
}

// Points far from the blob: random directions at a radius of 5..8 (blob rows lie at about
// sqrt(8) ~= 2.8).
std::vector<std::vector<float>> Outliers(size_t n, uint64_t seed) {
  std::vector<std::vector<float>> rows = Blob(n, seed);
  std::mt19937_64 rng(seed + 1);
  for (auto& r : rows) {
    double norm = 0;
    for (float v : r) norm += static_cast<double>(v) * v;
    const double radius = 5.0 + 3.0 * static_cast<double>(rng() % 1000) / 1000.0;
    for (float& v : r) v = static_cast<float>(v * radius / std::sqrt(norm));
  }
  return rows;
}

IsolationForest TrainOrDie(const std::vector<std::vector<float>>& rows,
                           const IsolationForestOptions& o) {
  auto f = IsolationForest::Train(rows, o);
  EXPECT_TRUE(f.has_value()) << f.error().ToString();
  return std::move(f).value();
}

TEST(IsolationForestTest, AveragePathLengthMatchesThePaper) {
  EXPECT_EQ(IsolationForest::AveragePathLength(1), 0.0);
  EXPECT_EQ(IsolationForest::AveragePathLength(2), 1.0);
  // c(256) = 2 H(255) - 2 * 255 / 256 ~= 10.24.
  EXPECT_NEAR(IsolationForest::AveragePathLength(256), 10.24, 0.01);
}

TEST(IsolationForestTest, RefusesBadInput) {
  const auto rows = Blob(100, 1);
  IsolationForestOptions o;
  o.trees = 0;
  EXPECT_FALSE(IsolationForest::Train(rows, o).has_value());
  o = {};
  o.target_fpr = 0.0;
  EXPECT_FALSE(IsolationForest::Train(rows, o).has_value());
  o = {};
  auto ragged = rows;
  ragged[7].pop_back();
  EXPECT_FALSE(IsolationForest::Train(ragged, o).has_value());
  auto nan = rows;
  nan[3][2] = std::nanf("");
  EXPECT_FALSE(IsolationForest::Train(nan, o).has_value());
  EXPECT_FALSE(IsolationForest::Train({}, o).has_value());
  o.feature_names = {"a", "b"};
  EXPECT_FALSE(IsolationForest::Train(rows, o).has_value());
}

TEST(IsolationForestTest, SameSeedGivesTheSameForest) {
  const auto rows = Blob(1000, 2);
  IsolationForestOptions o;
  o.seed = 42;
  const IsolationForest a = TrainOrDie(rows, o);
  const IsolationForest b = TrainOrDie(rows, o);
  EXPECT_EQ(a.ToFile({}).payload, b.ToFile({}).payload);
  o.seed = 43;
  const IsolationForest c = TrainOrDie(rows, o);
  EXPECT_NE(a.ToFile({}).payload, c.ToFile({}).payload);
  const auto probe = Outliers(1, 9)[0];
  EXPECT_EQ(a.Score(probe), b.Score(probe));
}

TEST(IsolationForestTest, OutliersScoreHigherThanInliers) {
  const IsolationForest f = TrainOrDie(Blob(2000, 3), {});
  std::vector<Scored> scored;
  for (const auto& r : Blob(1000, 4)) scored.push_back({f.Score(r), false});
  for (const auto& r : Outliers(200, 5)) scored.push_back({f.Score(r), true});
  for (const Scored& s : scored) {
    EXPECT_GT(s.score, 0.0);
    EXPECT_LE(s.score, 1.0);
  }
  const double auc = RocAuc(scored);
  std::printf("synthetic blob: AUC %.4f, TPR@5%% %.3f\n", auc, TprAtFpr(scored, 0.05));
  EXPECT_GT(auc, 0.95);
}

TEST(IsolationForestTest, ScoreBatchGivesScoreOfEveryRow) {
  const IsolationForest f = TrainOrDie(Blob(1000, 3), {});
  auto rows = Blob(600, 6);  // more than one block of rows
  for (const auto& r : Outliers(50, 7)) rows.push_back(r);
  std::vector<double> out(rows.size(), -1.0);
  f.ScoreBatch(rows, out);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(out[i], f.Score(rows[i])) << i;
}

// Score walks a full row through eight trees at a time (leaves leading back to themselves);
// a row shorter than the forest's dimensions takes the plain walk of each tree, reading the
// missing entries as 0. The two must agree on every row, for every tree count (13: one group of
// eight and a remainder), and ScoreBatch with it.
TEST(IsolationForestTest, EveryWalkGivesTheSameScore) {
  for (int trees : {1, 8, 13, 100}) {
    IsolationForestOptions o;
    o.trees = trees;
    const IsolationForest f = TrainOrDie(Blob(1000, 3), o);
    auto rows = Blob(300, 8);
    for (const auto& r : Outliers(37, 9)) rows.push_back(r);
    std::vector<std::vector<float>> full;
    for (auto r : rows) {
      r.back() = 0.0f;
      full.push_back(r);
    }
    std::vector<double> batch(full.size(), -1.0);
    f.ScoreBatch(full, batch);
    for (size_t i = 0; i < full.size(); ++i) {
      const std::span<const float> shorter(full[i].data(), full[i].size() - 1);
      const double plain = f.Score(shorter);
      EXPECT_EQ(f.Score(full[i]), plain) << trees << " trees, row " << i;
      EXPECT_EQ(batch[i], plain) << trees << " trees, row " << i;
      // The walk that also explains: the same score, and the same features credited by either
      // walk (weights summed in another order may differ in the last bits).
      std::vector<FeatureWeight> lanes, walked;
      EXPECT_EQ(f.ScoreExplained(full[i], 3, &lanes), plain) << trees << " trees, row " << i;
      EXPECT_EQ(f.ScoreExplained(shorter, 3, &walked), plain) << trees << " trees, row " << i;
      ASSERT_EQ(lanes.size(), walked.size()) << trees << " trees, row " << i;
      ASSERT_FALSE(lanes.empty()) << trees << " trees, row " << i;
      for (size_t j = 0; j < lanes.size(); ++j) {
        EXPECT_NEAR(lanes[j].weight, walked[j].weight, 1e-12) << trees << " trees, row " << i;
        if (std::abs(lanes[j].weight - walked[j].weight) > 1e-12) continue;
        EXPECT_EQ(lanes[j].feature, walked[j].feature) << trees << " trees, row " << i;
      }
    }
  }
}

TEST(IsolationForestTest, CalibrationReachesItsTargetOnHeldOutNormalData) {
  for (double target : {0.01, 0.05, 0.10}) {
    IsolationForestOptions o;
    o.target_fpr = target;
    o.calibration_fraction = 0.25;
    const IsolationForest f = TrainOrDie(Blob(4000, 6), o);
    EXPECT_EQ(f.calibration().rows, 1000u);
    EXPECT_LE(f.calibration().achieved_fpr, target);
    size_t alarms = 0;
    const auto normals = Blob(5000, 7);
    for (const auto& r : normals) alarms += f.IsAnomalous(f.Score(r)) ? 1 : 0;
    const double fpr = static_cast<double>(alarms) / static_cast<double>(normals.size());
    std::printf("target FPR %.2f: held-out FPR %.4f\n", target, fpr);
    EXPECT_NEAR(fpr, target, 0.01 + 0.3 * target) << "target " << target;
  }
}

TEST(IsolationForestTest, ExplainNamesThePerturbedFeature) {
  const IsolationForest f = TrainOrDie(Blob(2000, 8), {});
  for (uint32_t feature = 0; feature < kDims; ++feature) {
    // The blob's centre with one feature pushed 6 sigmas out.
    std::vector<float> row(kDims, 0.0f);
    row[feature] = feature % 2 ? 6.0f : -6.0f;
    const std::vector<FeatureWeight> top = f.Explain(row, 3);
    ASSERT_FALSE(top.empty());
    EXPECT_EQ(top[0].feature, feature);
    EXPECT_GT(top[0].weight, 0.0);
    EXPECT_LE(top.size(), 3u);
    double sum = 0;
    for (const auto& w : top) sum += w.weight;
    EXPECT_LE(sum, 1.0 + 1e-9);
  }
}

TEST(IsolationForestTest, SaveLoadRoundTripGivesIdenticalScores) {
  IsolationForestOptions o;
  o.name = "blob";
  o.version = "7";
  o.feature_names = {"a", "b", "c", "d", "e", "f", "g", "h"};
  const IsolationForest f = TrainOrDie(Blob(1000, 9), o);
  const std::string bytes = EncodeModelFile(f.ToFile({{"training_digest", "abc"}}));
  auto decoded = DecodeModelFile(bytes, "blob.vmdl");
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(decoded->header["calibration"]["method"], "held-out");
  auto g = IsolationForest::FromFile(*decoded, "blob.vmdl");
  ASSERT_TRUE(g.has_value()) << g.error().ToString();
  EXPECT_EQ(g->options().name, "blob");
  EXPECT_EQ(g->options().version, "7");
  EXPECT_EQ(g->feature_names(), o.feature_names);
  EXPECT_EQ(g->calibration().threshold, f.calibration().threshold);
  EXPECT_EQ(g->trees(), f.trees());
  auto probes = Blob(100, 10);
  for (const auto& r : Outliers(100, 11)) probes.push_back(r);
  for (const auto& r : probes) {
    EXPECT_EQ(g->Score(r), f.Score(r));
    const auto ea = f.Explain(r, 3), eb = g->Explain(r, 3);
    ASSERT_EQ(ea.size(), eb.size());
    for (size_t i = 0; i < ea.size(); ++i) EXPECT_EQ(ea[i].feature, eb[i].feature);
  }
  EXPECT_EQ(g->ToFile({}).payload, f.ToFile({}).payload);
}

// Payload offsets of a forest without feature names (docs/model-file-format.md).
constexpr size_t kTreeCountAt = 48;
constexpr size_t kNodeCountAt = 52;
constexpr size_t kRootAt = 56;  // feature, threshold, left, right, size: u32 each

void PutU32(std::string& s, size_t at, uint32_t v) { std::memcpy(s.data() + at, &v, 4); }

class IsolationForestCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    IsolationForestOptions o;
    o.trees = 5;
    file_ = TrainOrDie(Blob(500, 12), o).ToFile({});
    uint32_t root_feature = 0;
    std::memcpy(&root_feature, file_.payload.data() + kRootAt, 4);
    ASSERT_LT(root_feature, kDims) << "the first root should be a split";
    ASSERT_TRUE(IsolationForest::FromFile(file_, "ok.vmdl").has_value());
  }
  std::string Refused(const ModelFile& f) {
    auto m = IsolationForest::FromFile(f, "bad.vmdl");
    EXPECT_FALSE(m.has_value());
    if (m.has_value()) return "";
    EXPECT_THAT(m.error().message(), HasSubstr("bad.vmdl"));
    return m.error().message();
  }
  ModelFile file_;
};

TEST_F(IsolationForestCorruptionTest, RefusesAnotherFamily) {
  ModelFile f = file_;
  f.header["family"] = "syscall-ngram";
  auto m = IsolationForest::FromFile(f, "bad.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), core::StatusCode::kInvalidArgument);
}

TEST_F(IsolationForestCorruptionTest, RefusesAFeatureIndexOutsideTheDims) {
  ModelFile f = file_;
  PutU32(f.payload, kRootAt, kDims);
  EXPECT_THAT(Refused(f), HasSubstr("feature index 8"));
  PutU32(f.payload, kRootAt, static_cast<uint32_t>(-2));
  EXPECT_THAT(Refused(f), HasSubstr("feature index"));
}

TEST_F(IsolationForestCorruptionTest, RefusesAChildOutOfRange) {
  uint32_t count = 0;
  std::memcpy(&count, file_.payload.data() + kNodeCountAt, 4);
  ModelFile f = file_;
  PutU32(f.payload, kRootAt + 8, count + 5);
  EXPECT_THAT(Refused(f), HasSubstr("child index out of range"));
  f = file_;
  PutU32(f.payload, kRootAt + 12, 0);  // a cycle back to the root
  EXPECT_THAT(Refused(f), HasSubstr("child index out of range"));
}

TEST_F(IsolationForestCorruptionTest, RefusesANonFiniteThreshold) {
  ModelFile f = file_;
  const float inf = std::numeric_limits<float>::infinity();
  uint32_t bits = 0;
  std::memcpy(&bits, &inf, 4);
  PutU32(f.payload, kRootAt + 4, bits);
  EXPECT_THAT(Refused(f), HasSubstr("not finite"));
}

TEST_F(IsolationForestCorruptionTest, RefusesBadCountsAndSizes) {
  ModelFile f = file_;
  PutU32(f.payload, kTreeCountAt, 0);
  EXPECT_THAT(Refused(f), HasSubstr("tree count"));
  f = file_;
  PutU32(f.payload, kRootAt + 16, 3);
  EXPECT_THAT(Refused(f), HasSubstr("not the sum"));
  f = file_;
  PutU32(f.payload, kNodeCountAt, 1u << 30);
  EXPECT_THAT(Refused(f), HasSubstr("node count"));
}

TEST_F(IsolationForestCorruptionTest, RefusesTruncationAtEveryLength) {
  for (size_t n = 0; n < file_.payload.size(); n += 7) {
    ModelFile f = file_;
    f.payload.resize(n);
    EXPECT_FALSE(IsolationForest::FromFile(f, "bad.vmdl").has_value()) << "length " << n;
  }
  ModelFile f = file_;
  f.payload.pop_back();
  EXPECT_THAT(Refused(f), HasSubstr("past the end"));
}

TEST_F(IsolationForestCorruptionTest, RefusesTrailingBytes) {
  ModelFile f = file_;
  f.payload.push_back('\0');
  EXPECT_THAT(Refused(f), HasSubstr("1 trailing bytes"));
}

// The pipeline adapter on synthetic i386 traces: a workload of file I/O, and an intruder that
// spawns shells.
constexpr int32_t kRead = 3, kWrite = 4, kOpen = 5, kClose = 6, kExecve = 11, kClone = 120;

std::vector<TrainingTrace> Workload(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TrainingTrace> out;
  for (size_t i = 0; i < n; ++i) {
    TrainingTrace t;
    t.arch = core::Arch::kI386;
    const size_t len = 200 + rng() % 200;
    for (size_t j = 0; j < len; ++j) {
      const uint64_t r = rng() % 100;
      t.syscalls.push_back(r < 40   ? kRead
                           : r < 70 ? kWrite
                           : r < 85 ? kOpen
                           : r < 99 ? kClose
                                    : kClone);
    }
    if (i % 10 == 0) t.syscalls.push_back(kExecve);
    out.push_back(std::move(t));
  }
  return out;
}

TEST(IsolationForestModelTest, StreamVerdictNamesTheSyscallsThatIsolatedIt) {
  auto m = IsolationForestModel::Train(Workload(600, 13), {});
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ((*m)->family(), "iforest");
  EXPECT_EQ((*m)->forest().feature_names().back(), "<other>");

  auto quiet = (*m)->NewStream("app");
  EXPECT_EQ(quiet->Current().score, 0.0);
  EXPECT_TRUE(quiet->Current().explanation.empty());

  TrainingTrace attack = Workload(1, 14)[0];
  for (int i = 0; i < 60; ++i) attack.syscalls.push_back(kExecve);
  auto s = (*m)->NewStream("app");
  s->ObserveSyscalls(core::Arch::kI386, attack.syscalls);
  const core::Verdict v = s->Current();
  EXPECT_EQ(v.subject, "app");
  EXPECT_EQ(v.events, attack.syscalls.size());
  EXPECT_EQ(s->observed(), attack.syscalls.size());
  EXPECT_TRUE(v.anomalous) << v.score;
  ASSERT_FALSE(v.explanation.empty());
  EXPECT_EQ(v.explanation[0].what, "execve");
  EXPECT_EQ(v.score, (*m)->ScoreTrace(core::Arch::kI386, attack.syscalls));

  // Event by event gives the same verdict as the batch.
  auto e = (*m)->NewStream("app");
  core::Event ev;
  ev.kind = core::EventKind::kSyscall;
  ev.syscall.arch = core::Arch::kI386;
  for (int32_t nr : attack.syscalls) {
    ev.syscall.nr = nr;
    e->Observe(ev);
  }
  EXPECT_EQ(e->Current().score, v.score);

  size_t alarms = 0;
  const auto normals = Workload(400, 15);
  for (const auto& t : normals) {
    alarms += (*m)->ScoreTrace(t.arch, t.syscalls) >= (*m)->forest().calibration().threshold;
  }
  EXPECT_LT(static_cast<double>(alarms) / static_cast<double>(normals.size()), 0.15);

  const ModelFile file = (*m)->ToFile({});
  auto back = IsolationForestModel::FromFile(file, "m.vmdl");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  auto s2 = (*back)->NewStream("app");
  s2->ObserveSyscalls(core::Arch::kI386, attack.syscalls);
  EXPECT_EQ(s2->Current().score, v.score);
  EXPECT_EQ(s2->Current().explanation[0].what, "execve");
}

TEST(IsolationForestModelTest, RefusesAForestWithoutASyscallVocabulary) {
  IsolationForestOptions o;
  o.feature_names = {"a", "b", "c", "d", "e", "f", "g", "h"};
  const ModelFile file = TrainOrDie(Blob(300, 16), o).ToFile({});
  auto m = IsolationForestModel::FromFile(file, "plain.vmdl");
  ASSERT_FALSE(m.has_value());
  EXPECT_THAT(m.error().message(), HasSubstr("plain.vmdl"));
}

// ADFA-LD (../shared/data/adfa-ld): a report, not a target. Trains on Training_Data_Master,
// scores Validation (normal) and Attack traces, prints the AUC and TPR at 5 % false alarms.
std::vector<std::vector<int32_t>> ReadTraces(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : files) {
    std::ifstream in(p);
    std::vector<int32_t> t;
    int32_t nr = 0;
    while (in >> nr) t.push_back(nr);
    out.push_back(std::move(t));
  }
  return out;
}

TEST(IsolationForestModelTest, AdfaLdReport) {
  const std::filesystem::path root = std::string(VIGIL_SHARED_DIR) + "/data/adfa-ld";
  if (!std::filesystem::is_directory(root / "Training_Data_Master")) {
    GTEST_SKIP() << "ADFA-LD not found at " << root.string();
  }
  const auto started = std::chrono::steady_clock::now();
  std::vector<TrainingTrace> training;
  for (auto& s : ReadTraces(root / "Training_Data_Master")) {
    training.push_back({"", core::Arch::kI386, std::move(s)});
  }
  ASSERT_EQ(training.size(), 833u);
  auto m = IsolationForestModel::Train(training, {});
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  std::vector<Scored> scored;
  size_t alarms = 0, normals = 0;
  for (const auto& s : ReadTraces(root / "Validation_Data_Master")) {
    const double score = (*m)->ScoreTrace(core::Arch::kI386, s);
    scored.push_back({score, false});
    alarms += (*m)->forest().IsAnomalous(score) ? 1 : 0;
    ++normals;
  }
  for (const auto& s : ReadTraces(root / "Attack_Data_Master")) {
    scored.push_back({(*m)->ScoreTrace(core::Arch::kI386, s), true});
  }
  const double auc = RocAuc(scored);
  const double tpr5 = TprAtFpr(scored, 0.05);
  const double tpr1 = TprAtFpr(scored, 0.01);
  const double fpr = static_cast<double>(alarms) / static_cast<double>(normals);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "ADFA-LD iforest (bag of syscalls, %zu features): AUC %.4f, TPR@5%% %.3f, "
      "TPR@1%% %.3f, validation FPR at the calibrated threshold %.3f (%zu normal, %zu "
      "attack traces, %.2f s)\n",
      (*m)->vocabulary().dims(), auc, tpr5, tpr1, fpr, normals, scored.size() - normals, secs);
  RecordProperty("auc", std::to_string(auc));
  RecordProperty("tpr_at_fpr_5", std::to_string(tpr5));
  // Bags of system calls do not separate ADFA-LD's attacks (AUC about 0.5 here, in line with
  // what other isolation forests reach on these features); what must hold on real data is the
  // calibration: the threshold fitted on held-out training rows keeps validation false alarms
  // near the 5 % target.
  EXPECT_LT(fpr, 0.10);
  EXPECT_GT(auc, 0.3);
}

}  // namespace
}  // namespace vigil::model
