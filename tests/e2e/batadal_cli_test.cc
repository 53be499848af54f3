// `vigil train --dataset batadal` and `vigil eval --dataset batadal` as a user runs them, on
// small slices of the real BATADAL files (skipped when ../shared/data/batadal is absent).

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;

using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;

std::vector<std::string> Lines(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Writes the header and the data lines [first, first + count) of `lines` (1 = first data line),
// each passed through `edit`.
void WriteSlice(const fs::path& to, const std::vector<std::string>& lines, size_t first,
                size_t count, std::string (*edit)(const std::string&) = nullptr) {
  std::ofstream f(to);
  auto put = [&](const std::string& l) { f << (edit != nullptr ? edit(l) : l) << "\n"; };
  put(lines[0]);
  for (size_t i = first; i < first + count && i < lines.size(); ++i) put(lines[i]);
}

std::string DropLastField(const std::string& line) { return line.substr(0, line.rfind(',')); }

class BatadalCliTest : public ::testing::Test {
 protected:
  static fs::path Source() { return fs::path(VIGIL_SHARED_DIR) / "data" / "batadal"; }

  void SetUp() override {
    if (!fs::exists(Source() / "BATADAL_dataset03.csv")) {
      GTEST_SKIP() << "BATADAL data not found under " << Source();
    }
    dir_ = fs::temp_directory_path() /
           ("vigil-batadal-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    data_ = dir_ / "data";
    // 50 days of normal operation; 250 hours of dataset04 around attack 1 (rows 1729..1778).
    WriteSlice(data_ / "BATADAL_dataset03.csv", Lines(Source() / "BATADAL_dataset03.csv"), 1,
               1200);
    d04_ = Lines(Source() / "BATADAL_dataset04.csv");
    labels_ = Lines(Source() / "BATADAL_dataset04_full_labels.csv");
    WriteSlice(data_ / "BATADAL_dataset04.csv", d04_, 1629, 250);
    WriteSlice(data_ / "BATADAL_dataset04_full_labels.csv", labels_, 1629, 250);
    model_ = dir_ / "ics.vmdl";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_, args); }

  void Train() {
    const CmdResult r = Vigil("train --dataset batadal --data " + data_.string() + " --out " +
                              model_.string() + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["family"], "ics-residual");
    EXPECT_EQ(j["training"]["rows"], 1200);
    EXPECT_EQ(j["training"]["dataset"], "batadal");
    EXPECT_EQ(j["parameters"]["target_fpr"], 0.05);
    EXPECT_EQ(j["calibration"]["rows"], 1200);
  }

  nlohmann::json Eval() {
    const CmdResult r = Vigil("eval --dataset batadal --data " + data_.string() + " --model " +
                              model_.string() + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  }

  fs::path dir_, data_, model_;
  std::vector<std::string> d04_, labels_;
};

void ExpectScoreFields(const nlohmann::json& j) {
  for (const char* key : {"s", "s_ttd", "s_cm", "tpr", "tnr", "auc", "tpr_at_fpr_1",
                          "tpr_at_fpr_5"}) {
    ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key;
    EXPECT_GE(j[key].get<double>(), 0.0) << key;
    EXPECT_LE(j[key].get<double>(), 1.0) << key;
  }
  EXPECT_DOUBLE_EQ(j["s"].get<double>(),
                   0.5 * j["s_ttd"].get<double>() + 0.5 * j["s_cm"].get<double>());
}

TEST_F(BatadalCliTest, TrainsOnDataset03AndScoresDataset04) {
  Train();
  const nlohmann::json j = Eval();
  ExpectScoreFields(j);
  EXPECT_EQ(j["hours"], 250);
  EXPECT_EQ(j["attacks"], 1);
  EXPECT_EQ(j["attack_hours"], 50);
  EXPECT_FALSE(j.contains("test"));
  const auto& a = j["per_attack"]["1"];
  EXPECT_EQ(a["start"], "13/09/16 23");
  EXPECT_EQ(a["duration_hours"], 50);
  // Attack 1 shows in T7 and the flows around it within hours.
  EXPECT_TRUE(a["detected"].get<bool>());
  EXPECT_LE(a["ttd_hours"].get<int>(), 5);
  ASSERT_FALSE(a["explanation_at_detection"].empty());
  EXPECT_GT(j["auc"].get<double>(), 0.8);

  const CmdResult text = Vigil("eval --dataset batadal --data " + data_.string() + " --model " +
                               model_.string());
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("S_TTD"), std::string::npos);
}

TEST_F(BatadalCliTest, ReportsTheTestSplitSeparatelyWhenPresent) {
  Train();
  // A test split in the published layout: no ATT_FLAG column in the data, labels without ids.
  WriteSlice(data_ / "BATADAL_test_dataset.csv", d04_, 2300, 200, &DropLastField);
  WriteSlice(data_ / "BATADAL_test_labels.csv", labels_, 2300, 200, &DropLastField);
  const nlohmann::json j = Eval();
  ASSERT_TRUE(j.contains("test"));
  ExpectScoreFields(j["test"]);
  EXPECT_EQ(j["test"]["hours"], 200);
  EXPECT_EQ(j["test"]["attacks"], 1);  // attack 3 of dataset04, numbered 1 in its split
  EXPECT_EQ(j["test"]["per_attack"]["1"]["duration_hours"], 60);
  ExpectScoreFields(j);

  fs::remove(data_ / "BATADAL_test_labels.csv");
  const CmdResult r = Vigil("eval --dataset batadal --data " + data_.string() + " --model " +
                            model_.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("BATADAL_test_labels.csv"), std::string::npos) << r.err;
}

TEST_F(BatadalCliTest, BadInputIsRefusedWithItsPlace) {
  // Line 4 of the training file gets a value that is not a number in its third field.
  std::vector<std::string> train = Lines(data_ / "BATADAL_dataset03.csv");
  std::string& line = train[3];
  const size_t c1 = line.find(',');
  const size_t c2 = line.find(',', c1 + 1);
  const size_t c3 = line.find(',', c2 + 1);
  line.replace(c2 + 1, c3 - c2 - 1, "oops");
  {
    std::ofstream f(data_ / "BATADAL_dataset03.csv");
    for (const std::string& l : train) f << l << "\n";
  }
  CmdResult r = Vigil("train --dataset batadal --data " + data_.string() + " --out " +
                      model_.string());
  EXPECT_EQ(r.exit_code, 2);
  const std::string where =
      "BATADAL_dataset03.csv:4:" + std::to_string(c2 + 2) + ": field 3 (L_T2): \"oops\"";
  EXPECT_NE(r.err.find(where), std::string::npos) << r.err;

  r = Vigil("train --dataset batadal --data " + (dir_ / "nowhere").string() + " --out " +
            model_.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("BATADAL_dataset03.csv: cannot open"), std::string::npos) << r.err;
}

TEST_F(BatadalCliTest, RefusesADamagedModelAndMismatchedLabels) {
  Train();
  std::string bytes = ReadAll(model_);
  bytes[bytes.size() / 2] ^= 0x40;
  const fs::path damaged = dir_ / "damaged.vmdl";
  std::ofstream(damaged, std::ios::binary) << bytes;
  CmdResult r = Vigil("eval --dataset batadal --data " + data_.string() + " --model " +
                      damaged.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;

  WriteSlice(data_ / "BATADAL_dataset04_full_labels.csv", labels_, 1630, 250);
  r = Vigil("eval --dataset batadal --data " + data_.string() + " --model " + model_.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("label row 1 is for 09/09/16 21 but"), std::string::npos) << r.err;
}

}  // namespace
