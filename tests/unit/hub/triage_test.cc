// Triage in the hub: the alert volume a triage model removes at a fixed recall
// (hub/triage_volume.h), and `vigil hub triage train|measure` on a labelled store: the model it
// trains is signed by the given key and scores the store's incidents, true positives higher.

#include "hub/triage_volume.h"

#include "hub/triage_holdout.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/trust.h"
#include "hub/store.h"
#include "hub_fixtures.h"
#include "test_hub_state.h"
#include "model/model_file.h"
#include "model/triage.h"
#include "model/triage_labels.h"

namespace vigil::hub {
namespace {

TEST(TriageVolumeTest, KeepsTheFewestAlertsThatReachTheRecall) {
  // 4 true positives scoring 0.9, 0.8, 0.6, 0.2; 6 others scoring 0.7, 0.5, 0.4, 0.3, 0.1, 0.05.
  std::vector<ScoredAlert> a = {{0.9, true},  {0.8, true},  {0.6, true},  {0.2, true},
                                {0.7, false}, {0.5, false}, {0.4, false}, {0.3, false},
                                {0.1, false}, {0.05, false}};
  auto v = VolumeAtRecall(a, 0.75);  // 3 of 4: threshold 0.6 keeps 0.9, 0.8, 0.7, 0.6
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_DOUBLE_EQ(v->threshold, 0.6);
  EXPECT_EQ(v->alerts_before, 10u);
  EXPECT_EQ(v->alerts_after, 4u);
  EXPECT_EQ(v->true_positives_kept, 3u);
  EXPECT_DOUBLE_EQ(v->recall, 0.75);
  EXPECT_DOUBLE_EQ(v->removed_fraction, 0.6);
  // Full recall keeps down to the weakest true positive (0.2): 8 alerts.
  v = VolumeAtRecall(a, 1.0);
  ASSERT_TRUE(v.has_value());
  EXPECT_DOUBLE_EQ(v->threshold, 0.2);
  EXPECT_EQ(v->alerts_after, 8u);
  // Ties at the threshold are all kept.
  v = VolumeAtRecall({{0.5, true}, {0.5, false}, {0.5, false}, {0.1, false}}, 0.5);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->alerts_after, 3u);
  EXPECT_FALSE(VolumeAtRecall(a, 0).has_value());
  EXPECT_FALSE(VolumeAtRecall(a, 1.5).has_value());
  EXPECT_FALSE(VolumeAtRecall({{0.3, false}}, 0.9).has_value());
}

// Rows of two features: "signal" (attacks, 1 in 4, score higher, with overlap) and "noise"
// (the same for both kinds). Deep trees memorise the noise of the rows they learn from.
model::FeatureTable NoisyTable(size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  model::FeatureTable t;
  t.names = {"signal", "noise"};
  for (size_t i = 0; i < rows; ++i) {
    const bool attack = i % 4 == 0;
    t.values.push_back(attack ? 0.3f + 0.7f * u(rng) : 0.7f * u(rng));
    t.values.push_back(u(rng));
    t.labels.push_back(attack ? 1.0f : 0.0f);
  }
  return t;
}

double RecallAt(const std::vector<float>& scores, const model::FeatureTable& t, double threshold) {
  size_t tp = 0, kept = 0;
  for (size_t i = 0; i < t.rows(); ++i) {
    if (t.labels[i] != 1.0f) continue;
    ++tp;
    kept += scores[i] >= threshold ? 1 : 0;
  }
  return static_cast<double>(kept) / static_cast<double>(tp);
}

TEST(TriageHeldOutTest, FoldsAreStratifiedAndDeterministic) {
  std::vector<float> labels(23, 0.0f);
  for (size_t i = 0; i < labels.size(); i += 3) labels[i] = 1.0f;  // 8 positives
  const std::vector<int> a = StratifiedFolds(labels, 4, 9);
  EXPECT_EQ(a, StratifiedFolds(labels, 4, 9));
  EXPECT_NE(a, StratifiedFolds(labels, 4, 10));
  std::map<int, int> pos, all;
  for (size_t i = 0; i < labels.size(); ++i) {
    ++all[a[i]];
    pos[a[i]] += labels[i] == 1.0f ? 1 : 0;
  }
  for (int f = 0; f < 4; ++f) {
    EXPECT_EQ(pos[f], 2) << f;
    EXPECT_GE(all[f], 5) << f;
    EXPECT_LE(all[f], 6) << f;
  }
  // Too few of one kind for two folds: refused, naming the counts.
  model::FeatureTable t = NoisyTable(8, 1);  // attacks: rows 0 and 4
  EXPECT_EQ(HeldOutFolds(t, 5).value_or(0), 2);
  t.labels[4] = 0.0f;
  auto one = HeldOutFolds(t, 5);
  ASSERT_FALSE(one.has_value());
  EXPECT_NE(one.error().message().find("1 true positives"), std::string::npos)
      << one.error().message();
}

// The threshold chosen on out-of-fold scores keeps the recall on data from the same source that
// no model saw (within the sampling error of 60 training positives), and the reported held-out
// recall predicts what new data shows; the threshold chosen on the training rows (what the hub
// did before) keeps about half of the new true positives. Figures (printed): held-out threshold
// 0.019, new-data recall 0.891, reported 0.883; training threshold 0.643, new-data recall 0.467.
TEST(TriageHeldOutTest, TheHeldOutThresholdReachesTheRecallOnNewData) {
  const model::FeatureTable train = NoisyTable(240, 11);
  const model::FeatureTable fresh = NoisyTable(4000, 12);
  model::TriageOptions o;
  o.booster.rounds = 300;
  o.booster.max_depth = 4;
  o.booster.eta = 0.1;
  const double recall = 0.9;
  auto held = ChooseHeldOutThreshold(train, o, 5, 3, recall);
  ASSERT_TRUE(held.has_value()) << held.error().ToString();
  EXPECT_EQ(held->folds, 5);
  EXPECT_EQ(held->held_out.alerts_before, 240u);
  EXPECT_EQ(held->held_out.true_positives, 60u);
  EXPECT_GE(held->chosen.recall, recall);
  auto again = ChooseHeldOutThreshold(train, o, 5, 3, recall);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->chosen.threshold, held->chosen.threshold);

  auto m = model::TriageModel::Train(train, o);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  auto on_train = (*m)->ScoreRows(train.values, train.rows());
  auto on_fresh = (*m)->ScoreRows(fresh.values, fresh.rows());
  ASSERT_TRUE(on_train.has_value() && on_fresh.has_value());
  std::vector<ScoredAlert> scored;
  for (size_t i = 0; i < train.rows(); ++i) scored.push_back({(*on_train)[i], train.labels[i] == 1.0f});
  auto optimistic = VolumeAtRecall(scored, recall);
  ASSERT_TRUE(optimistic.has_value());

  const double fresh_held = RecallAt(*on_fresh, fresh, held->chosen.threshold);
  const double fresh_optimistic = RecallAt(*on_fresh, fresh, optimistic->threshold);
  std::printf("threshold: held-out %.4f (fresh recall %.3f, reported %.3f), training %.4f "
              "(fresh recall %.3f)\n",
              held->chosen.threshold, fresh_held, held->held_out.recall, optimistic->threshold,
              fresh_optimistic);
  EXPECT_GE(fresh_held, recall - 0.05);
  EXPECT_LT(fresh_optimistic, 0.75);
  // The reported held-out figure is near what new data shows.
  EXPECT_NEAR(held->held_out.recall, fresh_held, 0.05);
}

class HubTriageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("hub_triage_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  govern::internal::CommandOutput Vigil(std::vector<std::string> args) {
    args.insert(args.begin(), VIGIL_BINARY);
    auto r = govern::internal::RunCommand(args);
    EXPECT_TRUE(r.has_value());
    return r.value_or(govern::internal::CommandOutput{});
  }
  std::filesystem::path dir_;
};

TEST_F(HubTriageCliTest, TrainsASignedModelFromTheLabelledStoreThatScores) {
  const std::string state = (dir_ / "hub").string();
  std::filesystem::create_directories(state);
  // Refused while nothing is labelled.
  ASSERT_TRUE(govern::InitKeys((dir_ / "keys").string(), false).has_value());
  const std::string key = govern::SecretKeyPath((dir_ / "keys").string());
  const std::string out = (dir_ / "triage.vmod").string();
  {
    auto store = Store::Open(state + "/hub.db", StoreOptions{});
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
  }
  auto empty = Vigil({"hub", "triage", "train", "--state-dir", state, "--out", out, "--key", key});
  EXPECT_EQ(empty.exit_code, 1);
  // 80 incidents, one verdict each: real attacks score high (with overlap), the rest low.
  {
    auto store = Store::Open(state + "/hub.db", StoreOptions{});
    ASSERT_TRUE(store.has_value());
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 80; ++i) {
      const bool attack = i % 4 == 0;
      const double score = attack ? 0.55 + 0.45 * u(rng) : 0.7 * u(rng);
      auto m = ParseIngestRequest(testing::IngestBody(
          "h", "m" + std::to_string(i),
          {testing::VerdictLine("h", 1000 + i, "p", i * 1000, score)}));
      ASSERT_TRUE(m.has_value()) << m.error().ToString();
      auto r = (*store)->Ingest(*m, 1);
      ASSERT_TRUE(r.has_value() && r->incidents.size() == 1);
      ASSERT_TRUE((*store)
                      ->Adjudicate(r->incidents[0],
                                   attack ? Label::kTruePositive : Label::kFalsePositive, "ana",
                                   "", 2 + i)
                      .has_value());
    }
  }
  auto trained = Vigil({"hub", "triage", "train", "--state-dir", state, "--out", out, "--key", key,
                        "--rounds", "30", "--triage-threads", "1"});
  ASSERT_EQ(trained.exit_code, 0) << trained.out;
  EXPECT_NE(trained.out.find("signed with key"), std::string::npos) << trained.out;
  // Signed by that key, over those bytes.
  auto pub = govern::LoadPublicKey(govern::PublicKeyPath((dir_ / "keys").string()));
  auto sig = govern::LoadSignature(out + ".minisig");
  auto bytes = core::ReadFile(out, 1 << 26);
  ASSERT_TRUE(pub.has_value() && sig.has_value() && bytes.has_value());
  EXPECT_EQ(govern::Verify(*pub, *sig, *bytes).outcome, govern::VerifyOutcome::kValid);
  // It scores the exported incidents: true positives above the rest on average.
  auto file = model::ReadModelFile(out);
  ASSERT_TRUE(file.has_value()) << file.error().ToString();
  EXPECT_EQ(file->header["training"]["rows"], 80);
  // The training is a record of the hub's audit log: what, from which data, with what options.
  int trained_records = 0;
  for (const auto& [type, p] : testing::ReadAuditRecords(state + "/audit")) {
    if (type != audit::RecordType::kModelChange || p["action"] != "trained") continue;
    ++trained_records;
    EXPECT_EQ(p["sha256"], model::Sha256Hex(*bytes));
    auto text = core::ReadFile(out + ".labels.jsonl", 1 << 26);
    ASSERT_TRUE(text.has_value());
    EXPECT_EQ(p["data_digest"], "sha256:" + model::Sha256Hex(*text));
    EXPECT_EQ(p["parameters"]["options"]["--rounds"], nlohmann::json({"30"}));
    EXPECT_EQ(p["training"]["rows"], 80);
  }
  EXPECT_EQ(trained_records, 1);
  auto m = model::TriageModel::FromFile(*file, out);
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  auto labels = model::LoadTriageLabels(out + ".labels.jsonl");
  ASSERT_TRUE(labels.has_value()) << labels.error().ToString();
  ASSERT_EQ(labels->size(), 80u);
  double tp = 0, other = 0;
  for (const model::LabelRecord& r : *labels) {
    std::map<std::string, double> f;
    for (const auto& [k, v] : r.features) {
      if (v) f.emplace(k, *v);
    }
    auto s = (*m)->ScoreNamed(f);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    (model::IsPositive(r.label) ? tp : other) += s->score;
  }
  EXPECT_GT(tp / 20, other / 60 + 0.3);
  // The volume it removes at 90% recall on the store's labelled set.
  auto measured = Vigil({"hub", "triage", "measure", "--state-dir", state, "--model", out,
                         "--recall", "0.9", "--json"});
  ASSERT_EQ(measured.exit_code, 0) << measured.out;
  const auto j = nlohmann::json::parse(measured.out);
  EXPECT_EQ(j["alerts_before"], 80);
  EXPECT_EQ(j["true_positives"], 20);
  EXPECT_GE(j["true_positives_kept"].get<int>(), 18);
  EXPECT_LT(j["alerts_after"].get<int>(), 80);
  EXPECT_GT(j["removed_fraction"].get<double>(), 0.3);
  // A set in another form is refused with its name.
  const std::string bad = (dir_ / "bad.jsonl").string();
  ASSERT_TRUE(govern::internal::WriteFileAtomic(bad, "{\"id\":1}\n", 0644).ok());
  EXPECT_EQ(Vigil({"hub", "triage", "measure", "--model", out, "--set", bad}).exit_code, 2);
}

}  // namespace
}  // namespace vigil::hub
