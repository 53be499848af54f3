// Triage in the hub: the alert volume a triage model removes at a fixed recall
// (hub/triage_volume.h), and `vigil hub triage train|measure` on a labelled store: the model it
// trains is signed by the given key and scores the store's incidents, true positives higher.

#include "hub/triage_volume.h"

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
