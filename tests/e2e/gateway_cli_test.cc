// vigil gateway as a user runs it: a bad config is refused with its file, line and key (exit 2);
// --check learns the actuator-state model (and the telemetry scoring models) and reports them.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace vigil::e2e {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class GatewayCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-gw-e2e-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(GatewayCliTest, BadConfigExitsTwoNamingTheLineAndKey) {
  const std::string cfg =
      Write("gw.yaml", "mode: enforce\nassets:\n  - {name: PU1, register: coil, adress: 1}\n");
  CmdResult r = RunVigil(dir_, "gateway --config " + cfg);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(cfg + ":3:33: assets[0].adress: unknown key"));
}

TEST_F(GatewayCliTest, MissingConfigExitsTwo) {
  EXPECT_EQ(RunVigil(dir_, "gateway --config " + (dir_ / "none.yaml").string()).exit_code, 2);
}

TEST_F(GatewayCliTest, CheckLearnsTheModel) {
  const std::string cfg = Write(
      "gw.yaml", "model: {training: \"" VIGIL_SHARED_DIR
                 "/data/batadal/BATADAL_dataset03.csv\"}\n"
                 "assets:\n  - {name: PU1, register: coil, address: 1, signal: S_PU1}\n");
  CmdResult r = RunVigil(dir_, "gateway --check --json --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["assets"], 1);
  EXPECT_EQ(j["model"]["rows"], 8761);
  EXPECT_EQ(j["model"]["actuators"].size(), 12u);
}

TEST_F(GatewayCliTest, SignalTheModelDidNotLearnIsRefused) {
  const std::string cfg = Write(
      "gw.yaml", "model: {training: \"" VIGIL_SHARED_DIR
                 "/data/batadal/BATADAL_dataset03.csv\"}\n"
                 "assets:\n  - {name: X, register: coil, address: 1, signal: S_PU99}\n");
  CmdResult r = RunVigil(dir_, "gateway --check --config " + cfg);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("assets[0].signal: the model learned no actuator \"S_PU99\""));
}

TEST_F(GatewayCliTest, CheckReportsTelemetryAndItsScoringModels) {
  const std::string cfg = Write(
      "gw.yaml", "model: {training: \"" VIGIL_SHARED_DIR
                 "/data/batadal/BATADAL_dataset03.csv\"}\n"
                 "telemetry:\n  broker: \"127.0.0.1:1\"\n  topics:\n"
                 "    - topic: ctown/tanks\n"
                 "      signals: [{name: L_T1, units: m}, {name: L_T2}, {name: L_T3}]\n"
                 "    - topic: ctown/other\n      signals: [{name: not_in_the_csv}]\n");
  CmdResult r = RunVigil(dir_, "gateway --check --json --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["telemetry"]["broker"], "127.0.0.1:1");
  EXPECT_EQ(j["telemetry"]["topics"].size(), 2u);
  // Scored: the signals the topics carry that the training CSV holds.
  EXPECT_EQ(j["telemetry"]["scoring"]["signals"],
            nlohmann::json::array({"L_T1", "L_T2", "L_T3"}));
  EXPECT_GT(j["telemetry"]["scoring"]["predictors_threshold"].get<double>(), 0.0);
  EXPECT_GT(j["telemetry"]["scoring"]["autoencoder_threshold"].get<double>(), 0.0);
  // A bad telemetry key is refused with its line.
  const std::string bad = Write("bad.yaml", "telemetry:\n  qos: 2\n");
  CmdResult b = RunVigil(dir_, "gateway --check --config " + bad);
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_THAT(b.err, HasSubstr(bad + ":2:8: telemetry.qos: expected an integer in 0..1"));
}

}  // namespace
}  // namespace vigil::e2e
