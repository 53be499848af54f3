// Runs the vigil binary the way a user does: flags, exit codes, messages, files written.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;

using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-cli-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `vigil ARGS` through the shell with stdout and stderr captured to files.
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_, args); }

  static std::string AdfaRoot() { return std::string(VIGIL_SHARED_DIR) + "/data/adfa-ld"; }
  static bool HaveAdfa() { return fs::is_directory(AdfaRoot() + "/Training_Data_Master"); }

  // A JSONL event file: `streams` streams of program `comm`, each a repetition of `pattern`.
  void WriteEvents(const fs::path& path, const std::string& stream, int streams,
                   const std::string& comm, const std::vector<int>& pattern, int repeats) {
    std::ofstream f(path);
    for (int s = 0; s < streams; ++s) {
      for (int r = 0; r < repeats; ++r) {
        for (int nr : pattern) {
          f << R"({"kind":"syscall","stream":")" << stream << "-" << s << R"(","proc":{"pid":)"
            << 100 + s << R"(,"comm":")" << comm << R"("},"syscall":{"arch":"x86_64","nr":)" << nr
            << "}}\n";
        }
      }
    }
  }

  // Ten streams of program "svc" in `train`, and a model trained on them in `model`.
  void TrainSmallModel(const fs::path& train, const fs::path& model) {
    WriteEvents(train, "svc", 10, "svc", {0, 1, 2, 3}, 10);
    ASSERT_EQ(Vigil("train --dataset jsonl --data " + train.string() + " --out " + model.string())
                  .exit_code,
              0);
  }

  fs::path dir_;
};

TEST_F(CliTest, HelpDescribesEveryCommand) {
  CmdResult r = Vigil("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"train", "eval", "replay"}) {
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
    CmdResult sub = Vigil(std::string(cmd) + " --help");
    EXPECT_EQ(sub.exit_code, 0) << cmd;
    EXPECT_NE(sub.out.find("--model"), std::string::npos) << cmd;
  }
}

TEST_F(CliTest, BadFlagExitsTwoNamingTheFlag) {
  CmdResult r = Vigil("train --data x --out y --bogus-flag 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--bogus-flag"), std::string::npos) << r.err;
  CmdResult none = Vigil("");
  EXPECT_EQ(none.exit_code, 2);
  CmdResult range = Vigil("train --data x --out y --order 9");
  EXPECT_EQ(range.exit_code, 2);
  EXPECT_NE(range.err.find("--order"), std::string::npos) << range.err;
}

TEST_F(CliTest, MissingDatasetExitsTwoNamingThePath) {
  CmdResult r = Vigil("train --dataset adfa-ld --data " + (dir_ / "nowhere").string() + " --out " +
                (dir_ / "m.vgm").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "m.vgm"));
}

TEST_F(CliTest, TrainsFromJsonlAndFlagsTheOddStream) {
  const fs::path train = dir_ / "train.jsonl";
  WriteEvents(train, "worker", 30, "worker", {0, 1, 2, 3, 0, 1, 4}, 20);
  const fs::path model = dir_ / "m.vgm";
  CmdResult t = Vigil("train --dataset jsonl --data " + train.string() + " --out " + model.string() +
                " --min-program-traces 10");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("programs with their own model: 1"), std::string::npos) << t.out;

  // 140 good lines, two bad ones, then 140 lines of a stream doing something new.
  const fs::path events = dir_ / "events.jsonl";
  WriteEvents(events, "usual", 1, "worker", {0, 1, 2, 3, 0, 1, 4}, 20);
  {
    std::ofstream f(events, std::ios::app);
    f << "{\"kind\":\"syscall\",\"stream\":\"odd\"\n";
    f << R"({"kind":"syscall","stream":"odd-0","proc":{"comm":"worker"},)"
      << R"("syscall":{"arch":"x86_64","nr":"x"}})" << "\n";
  }
  WriteEvents(dir_ / "odd.jsonl", "odd", 1, "worker", {59, 57, 61, 9, 10, 41, 42}, 20);
  {
    std::ofstream f(events, std::ios::app);
    f << ReadAll(dir_ / "odd.jsonl");
  }
  const fs::path out = dir_ / "verdicts.jsonl";
  CmdResult r = Vigil("replay --source jsonl --data " + events.string() + " --model " + model.string() +
                " --sink file:" + out.string());
  EXPECT_EQ(r.exit_code, 2) << "bad lines were skipped, which the exit code must say";
  EXPECT_NE(r.err.find("events.jsonl:141: not valid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("events.jsonl:142: field \"syscall.nr\""), std::string::npos) << r.err;

  std::ifstream in(out);
  std::string line;
  std::map<std::string, nlohmann::json> by_stream;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["class_uid"], 2004);
    by_stream[j["vigil"]["stream"].get<std::string>()] = j;
  }
  ASSERT_EQ(by_stream.size(), 2u) << "one verdict per stream; the good lines are all kept";
  const auto& usual = by_stream["usual-0"];
  const auto& odd = by_stream["odd-0"];
  ASSERT_FALSE(usual.is_null());
  ASSERT_FALSE(odd.is_null());
  EXPECT_EQ(usual["vigil"]["events"], 140);
  EXPECT_EQ(odd["vigil"]["events"], 140);
  EXPECT_EQ(usual["process"]["name"], "worker");
  EXPECT_FALSE(usual["vigil"]["anomalous"].get<bool>()) << usual.dump();
  EXPECT_TRUE(odd["vigil"]["anomalous"].get<bool>()) << odd.dump();
  EXPECT_GT(odd["vigil"]["score"].get<double>(), usual["vigil"]["score"].get<double>());
  ASSERT_FALSE(odd["vigil"]["explanation"].empty());
  // x86_64 59 is execve: the explanation speaks in system-call names.
  EXPECT_NE(odd["vigil"]["explanation"].dump().find("execve"), std::string::npos) << odd.dump();
}

TEST_F(CliTest, CorruptModelIsRefused) {
  const fs::path train = dir_ / "train.jsonl";
  const fs::path model = dir_ / "m.vgm";
  ASSERT_NO_FATAL_FAILURE(TrainSmallModel(train, model));
  std::string bytes = ReadAll(model);
  bytes[bytes.size() / 2] ^= 0x20;
  std::ofstream(model, std::ios::binary | std::ios::trunc) << bytes;
  CmdResult r = Vigil("replay --source jsonl --data " + train.string() + " --model " + model.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(model.string()), std::string::npos) << r.err;
  std::ofstream(model, std::ios::binary | std::ios::trunc) << "not a model";
  CmdResult r2 = Vigil("eval --data " + AdfaRoot() + " --model " + model.string());
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_NE(r2.err.find("not a Vigil model file"), std::string::npos) << r2.err;
}

TEST_F(CliTest, ModelInspectShowsLineageAndCalibrationAndRefusesBadFiles) {
  const fs::path train = dir_ / "train.jsonl";
  const fs::path model = dir_ / "m.vgm";
  ASSERT_NO_FATAL_FAILURE(TrainSmallModel(train, model));
  CmdResult text = Vigil("model inspect " + model.string());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  for (const char* want : {"family:          syscall-ngram", "checksum:        sha256:",
                           "training data:   dataset=jsonl", "calibration set: sha256:",
                           "drift reference"}) {
    EXPECT_NE(text.out.find(want), std::string::npos) << want << "\n" << text.out;
  }
  CmdResult js = Vigil("model inspect --json " + model.string());
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["family"], "syscall-ngram");
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["lineage"]["training"]["dataset"], "jsonl");
  EXPECT_EQ(j["lineage"]["training"]["traces"], 10);
  EXPECT_EQ(j["calibration"]["method"], "cross-fitted");
  EXPECT_EQ(j["calibration"]["samples"], 10);
  EXPECT_GT(j["payload_bytes"].get<int>(), 0);
  const std::string bytes = ReadAll(model);
  EXPECT_EQ(j["file_bytes"].get<size_t>(), bytes.size());

  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  std::ofstream(dir_ / "flipped.vgm", std::ios::binary) << flipped;
  CmdResult bad = Vigil("model inspect " + (dir_ / "flipped.vgm").string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("flipped.vgm: SHA-256 checksum mismatch"), std::string::npos) << bad.err;
  std::ofstream(dir_ / "short.vgm", std::ios::binary) << bytes.substr(0, 100);
  CmdResult truncated = Vigil("model inspect " + (dir_ / "short.vgm").string());
  EXPECT_EQ(truncated.exit_code, 2);
  EXPECT_NE(truncated.err.find("short.vgm"), std::string::npos) << truncated.err;
  EXPECT_EQ(Vigil("model inspect " + (dir_ / "missing.vgm").string()).exit_code, 2);
  EXPECT_EQ(Vigil("model").exit_code, 2);
}

// `vigil model LEAF` and `vigil policy LEAF`: leaves added by different files to one group each
// show their own --help and run their own code (each error names its own command).
TEST_F(CliTest, EveryModelAndPolicyLeafHasItsHelpAndRunsItsOwnCode) {
  const std::string missing = (dir_ / "missing").string();
  const std::string nokeys = " --key-dir " + (dir_ / "nokeys").string();
  const std::string reg = " --registry " + (dir_ / "reg").string();
  struct Leaf {
    std::string command, help, run;
  };
  const std::vector<Leaf> leaves = {
      {"model sign", "Sign a model file", "model sign " + missing + nokeys},
      {"model verify", "Check a model file against", "model verify " + missing + nokeys},
      {"model push", "Store a model file", "model push " + missing + reg},
      {"model list", "List the models in the registry", "model list --json" + reg},
      {"model pull", "Copy a model out of the registry",
       "model pull deadbeefdeadbeef --out " + missing + reg},
      {"model provenance", "in-toto Statement", "model provenance " + missing},
      {"model sbom", "CycloneDX 1.5 ML-BOM", "model sbom " + missing},
      {"model inspect", "lineage, calibration", "model inspect " + missing},
      {"policy check", "report which rules are enabled", "policy check /dev/null --json"},
      {"policy test", "Evaluate rules on recorded events",
       "policy test /dev/null --events " + missing},
      {"policy sign", "Sign a policy file", "policy sign " + missing + nokeys},
      {"policy verify", "Check a policy file against", "policy verify " + missing + nokeys},
  };
  for (const Leaf& leaf : leaves) {
    CmdResult help = Vigil(leaf.command + " --help");
    EXPECT_EQ(help.exit_code, 0) << leaf.command;
    EXPECT_NE(help.out.find(leaf.help), std::string::npos) << leaf.command << "\n" << help.out;
    CmdResult ran = Vigil(leaf.run);
    if (leaf.command == "model list" || leaf.command == "policy check") {
      // Nothing to fail on: an empty registry, an empty rules file; each prints its own JSON.
      EXPECT_EQ(ran.exit_code, 0) << leaf.command << "\n" << ran.err;
      const auto j = nlohmann::json::parse(ran.out);
      EXPECT_TRUE(leaf.command == "model list" ? j.is_array() : j.contains("rules"))
          << leaf.command << "\n" << ran.out;
    } else {
      EXPECT_EQ(ran.exit_code, 2) << leaf.command << "\n" << ran.err;
      EXPECT_EQ(ran.err.rfind("vigil " + leaf.command + ": error: ", 0), 0u)
          << leaf.command << "\n" << ran.err;
    }
  }
  EXPECT_EQ(Vigil("policy").exit_code, 2);
  EXPECT_EQ(Vigil("model frobnicate").exit_code, 2);
}

TEST_F(CliTest, ReplayTakesSinksAndPipelineFromTheConfig) {
  const fs::path train = dir_ / "train.jsonl";
  const fs::path model = dir_ / "m.vgm";
  ASSERT_NO_FATAL_FAILURE(TrainSmallModel(train, model));
  const fs::path out = dir_ / "from-config.jsonl";
  const fs::path config = dir_ / "vigil.yaml";
  std::ofstream(config) << "host: test-host\n"
                           "pipeline:\n  workers: 2\n  queue:\n    capacity: 8\n"
                           "sinks:\n  - type: file\n    path: " << out.string() << "\n";
  CmdResult r = Vigil("replay --config " + config.string() + " --source jsonl --data " +
                      train.string() + " --model " + model.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << "no stdout sink was configured";
  std::ifstream in(out);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["device"]["hostname"], "test-host");
    ++lines;
  }
  EXPECT_EQ(lines, 10);
}

TEST_F(CliTest, BadConfigNamesFileLineAndKey) {
  const fs::path config = dir_ / "bad.yaml";
  std::ofstream(config) << "host: h\npipeline:\n  queue:\n    capacity: lots\n";
  CmdResult r = Vigil("replay --config " + config.string() + " --data x --model y");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.yaml:4:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pipeline.queue.capacity"), std::string::npos) << r.err;
  std::ofstream(config) << "host: h\nsinkz: []\n";
  CmdResult typo = Vigil("replay --config " + config.string() + " --data x --model y");
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("sinkz"), std::string::npos) << typo.err;
  CmdResult missing = Vigil("replay --config " + (dir_ / "absent.yaml").string() +
                            " --data x --model y");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("absent.yaml"), std::string::npos) << missing.err;
}

// The whole offline path on the real dataset: train, evaluate, replay.
TEST_F(CliTest, AdfaTrainEvalReplayMeetsTheDetectionTarget) {
  if (!HaveAdfa()) GTEST_SKIP() << "ADFA-LD not found at " << AdfaRoot();
  const fs::path model = dir_ / "adfa.vgm";
  CmdResult t = Vigil("train --dataset adfa-ld --data " + AdfaRoot() + " --out " + model.string());
  ASSERT_EQ(t.exit_code, 0) << t.err;

  CmdResult e = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " + model.string() +
                " --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto j = nlohmann::json::parse(e.out);
  EXPECT_GE(j["auc"].get<double>(), 0.84);
  EXPECT_GE(j["tpr_at_fpr_5"].get<double>(), 0.25);
  EXPECT_TRUE(j.contains("tpr_at_fpr_1"));
  EXPECT_EQ(j["traces"].get<int>(), 2186 + 379);
  EXPECT_GT(j["events"].get<int64_t>(), 1'000'000);
  EXPECT_GT(j["events_per_second"].get<double>(), 0);
  ASSERT_EQ(j["per_attack"].size(), 6u);
  for (const char* type : {"Adduser", "Hydra_FTP", "Hydra_SSH", "Java_Meterpreter", "Meterpreter",
                           "Web_Shell"}) {
    ASSERT_TRUE(j["per_attack"].contains(type)) << type;
    EXPECT_GT(j["per_attack"][type]["auc"].get<double>(), 0.5) << type;
  }

  const fs::path out = dir_ / "verdicts.jsonl";
  CmdResult r = Vigil("replay --source adfa-ld --data " + AdfaRoot() + " --split attack --model " +
                model.string() + " --sink file:" + out.string() + " --workers 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.err);
  EXPECT_EQ(summary["dropped"], 0);
  EXPECT_EQ(summary["streams"], 379);
  std::ifstream in(out);
  std::string line;
  int lines = 0, anomalous = 0;
  while (std::getline(in, line)) {
    auto v = nlohmann::json::parse(line);
    ++lines;
    anomalous += v["vigil"]["anomalous"].get<bool>() ? 1 : 0;
    EXPECT_EQ(v["finding_info"]["analytic"]["name"], "syscall-cover");  // adfa-ld's default
  }
  EXPECT_EQ(lines, 379);
  EXPECT_GT(anomalous, 379 / 4);
}

// The tabular families through the CLI: train each on ADFA-LD, evaluate, read the JSON fields.
TEST_F(CliTest, IforestAndAutoencoderTrainAndEvaluateOnAdfa) {
  if (!HaveAdfa()) GTEST_SKIP() << "ADFA-LD not found at " << AdfaRoot();
  const std::vector<std::pair<std::string, std::string>> types = {
      {"iforest", "--trees 50 --sample-size 128 --forest-seed 7"},
      {"autoencoder", "--ae-epochs 3 --ae-group-size 8 --ae-bigrams 32 --ae-seed 5"}};
  for (const auto& [type, flags] : types) {
    const fs::path model = dir_ / (type + ".vgm");
    CmdResult t = Vigil("train --model-type " + type + " --dataset adfa-ld --data " + AdfaRoot() +
                        " --out " + model.string() + " --target-fpr 0.05 --json " + flags);
    ASSERT_EQ(t.exit_code, 0) << type << ": " << t.err;
    const auto header = nlohmann::json::parse(t.out);
    EXPECT_EQ(header["family"], type == "iforest" ? "iforest" : "kitnet");
    EXPECT_EQ(header["training"]["traces"], 833);
    EXPECT_TRUE(header.contains("parameters")) << type;
    EXPECT_NEAR(header["calibration"]["achieved_fpr"].get<double>(), 0.05, 0.03) << type;

    CmdResult e = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " +
                        model.string() + " --json");
    ASSERT_EQ(e.exit_code, 0) << type << ": " << e.err;
    const auto j = nlohmann::json::parse(e.out);
    EXPECT_EQ(j["traces"].get<int>(), 2186 + 379) << type;
    for (const char* key : {"auc", "tpr_at_fpr_1", "tpr_at_fpr_5"}) {
      ASSERT_TRUE(j.contains(key)) << type << " " << key;
      EXPECT_GE(j[key].get<double>(), 0.0);
      EXPECT_LE(j[key].get<double>(), 1.0);
    }
    EXPECT_EQ(j["per_attack"].size(), 6u) << type;
    EXPECT_EQ(j["precision"], "float") << type;

    if (type == "iforest") {
      // Only the autoencoder family has an int8 path; asking for it otherwise is bad usage.
      CmdResult q = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " +
                          model.string() + " --precision int8");
      EXPECT_EQ(q.exit_code, 2) << q.err;
      EXPECT_NE(q.err.find(model.string() + " is a model of family \"iforest\""),
                std::string::npos)
          << q.err;
      q = Vigil("eval --dataset batadal --data " + dir_.string() + " --model " + model.string() +
                " --precision both");
      EXPECT_EQ(q.exit_code, 2) << q.err;
      EXPECT_NE(q.err.find("--precision both: only adfa-ld models"), std::string::npos) << q.err;
      continue;
    }
    // The int8 path on the same traces, with its AUC loss and speed ratio against float.
    CmdResult both = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " +
                           model.string() + " --precision both --json");
    ASSERT_EQ(both.exit_code, 0) << both.err;
    const auto b = nlohmann::json::parse(both.out);
    ASSERT_TRUE(b.contains("int8")) << both.out;
    const auto& q = b["int8"];
    EXPECT_EQ(q["traces"], b["traces"]);
    EXPECT_EQ(q["events"], b["events"]);
    EXPECT_NEAR(q["auc"].get<double>(), b["auc"].get<double>(), 0.02);
    EXPECT_DOUBLE_EQ(q["auc_loss"].get<double>(),
                     b["auc"].get<double>() - q["auc"].get<double>());
    EXPECT_GT(q["speedup"].get<double>(), 0.0);
    EXPECT_EQ(q["per_attack"].size(), 6u);
    CmdResult int8 = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " +
                           model.string() + " --precision int8 --json");
    ASSERT_EQ(int8.exit_code, 0) << int8.err;
    const auto i8 = nlohmann::json::parse(int8.out);
    EXPECT_EQ(i8["precision"], "int8");
    EXPECT_DOUBLE_EQ(i8["auc"].get<double>(), q["auc"].get<double>());
    EXPECT_FALSE(i8.contains("int8"));
  }
}

// The recurrent and ensemble families train in the trainer module (libtorch), which the vigil
// binary loads only for them: the binary itself does not link libtorch, a model trained through
// the module scores like any other, and a binary without its module says what is missing.
TEST_F(CliTest, RecurrentFamiliesTrainThroughTheTrainerModule) {
  CmdResult elf = vigil::e2e::RunVigil(dir_, "--version");
  ASSERT_EQ(elf.exit_code, 0) << elf.err;
  ASSERT_EQ(std::system(("readelf -d " + std::string(VIGIL_BINARY) + " >" +
                         (dir_ / "dynamic.txt").string())
                            .c_str()),
            0);
  const std::string dynamic = ReadAll(dir_ / "dynamic.txt");
  ASSERT_NE(dynamic.find("(NEEDED)"), std::string::npos) << dynamic;
  EXPECT_EQ(dynamic.find("libtorch"), std::string::npos) << "vigil links libtorch:\n" << dynamic;
  EXPECT_EQ(dynamic.find("libc10"), std::string::npos) << dynamic;

  const fs::path train = dir_ / "train.jsonl";
  WriteEvents(train, "svc", 12, "svc", {0, 1, 2, 3, 0, 1}, 10);
  const fs::path rnn = dir_ / "rnn.vgm";
  CmdResult t = Vigil("train --model-type rnn --dataset jsonl --data " + train.string() +
                      " --out " + rnn.string() + " --epochs 2 --hidden 8 --embed 4 --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(nlohmann::json::parse(t.out)["family"], "syscall-rnn") << t.out;
  const fs::path ensemble = dir_ / "ensemble.vgm";
  t = Vigil("train --model-type ensemble --members ngram,rnn:seed=2 --dataset jsonl --data " +
            train.string() + " --out " + ensemble.string() + " --epochs 1 --hidden 8 --embed 4");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("member: rnn lstm e4 h8"), std::string::npos) << t.out;
  t = Vigil("train --model-type ensemble --members ngram,cnn --dataset jsonl --data " +
            train.string() + " --out " + (dir_ / "bad.vgm").string());
  EXPECT_EQ(t.exit_code, 2) << t.err;
  EXPECT_NE(t.err.find("--members"), std::string::npos) << t.err;

  // Both models score a replay of the training streams: one verdict per stream.
  for (const fs::path& model : {rnn, ensemble}) {
    const fs::path out = dir_ / (model.stem().string() + ".jsonl");
    CmdResult r = Vigil("replay --source jsonl --data " + train.string() + " --model " +
                        model.string() + " --sink file:" + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(out);
    std::string line;
    size_t verdicts = 0;
    while (std::getline(in, line)) verdicts += nlohmann::json::parse(line)["class_uid"] == 2004;
    EXPECT_EQ(verdicts, 12u) << model;
  }

  // A copy of the binary without the module beside it (nor in ../lib/vigil).
  const fs::path lone = dir_ / "bin" / "vigil";
  fs::create_directories(lone.parent_path());
  fs::copy_file(VIGIL_BINARY, lone);
  const std::string cmd = lone.string() + " train --model-type rnn --dataset jsonl --data " +
                          train.string() + " --out " + (dir_ / "x.vgm").string() + " >" +
                          (dir_ / "lone.out").string() + " 2>" + (dir_ / "lone.err").string() +
                          " </dev/null";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string err = ReadAll(dir_ / "lone.err");
  EXPECT_NE(err.find("trainer module is not available"), std::string::npos) << err;
  EXPECT_NE(err.find((lone.parent_path() / "libvigil-trainer.so").string() + ": not found"),
            std::string::npos)
      << err;
  EXPECT_FALSE(fs::exists(dir_ / "x.vgm"));
  // The rest of the binary works without it, the recurrent model's scoring included.
  EXPECT_EQ(std::system((lone.string() + " model inspect " + rnn.string() + " >/dev/null 2>&1")
                            .c_str()),
            0);
}

TEST_F(CliTest, TabularFamiliesTrainFromJsonlAndRefuseBadFlags) {
  const fs::path train = dir_ / "train.jsonl";
  WriteEvents(train, "svc", 12, "svc", {0, 1, 2, 3, 0, 1}, 10);
  const fs::path model = dir_ / "m.vgm";
  CmdResult t = Vigil("train --model-type autoencoder --dataset jsonl --data " + train.string() +
                      " --out " + model.string() + " --ae-epochs 2");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("trained kitnet model"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("autoencoders"), std::string::npos) << t.out;
  t = Vigil("train --model-type iforest --dataset jsonl --data " + train.string() + " --out " +
            model.string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("trained iforest model"), std::string::npos) << t.out;

  for (const char* bad : {"--model-type autoencoder --ae-group-size 0",
                          "--model-type autoencoder --ae-hidden-ratio 2",
                          "--model-type autoencoder --ae-epochs x", "--model-type iforest --trees 0",
                          "--model-type iforest --sample-size 1", "--model-type forest"}) {
    CmdResult r = Vigil("train --dataset jsonl --data " + train.string() + " --out " +
                        (dir_ / "bad.vgm").string() + " " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_FALSE(r.err.empty()) << bad;
    EXPECT_FALSE(fs::exists(dir_ / "bad.vgm")) << bad;
  }
  // A corrupt kitnet file is refused by eval with exit 2, naming the file.
  CmdResult ae = Vigil("train --model-type autoencoder --dataset jsonl --data " + train.string() +
                       " --out " + model.string() + " --ae-epochs 1");
  ASSERT_EQ(ae.exit_code, 0) << ae.err;
  std::string bytes = ReadAll(model);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
  std::ofstream(dir_ / "corrupt.vgm", std::ios::binary) << bytes;
  CmdResult e = Vigil("eval --dataset adfa-ld --data " + AdfaRoot() + " --model " +
                      (dir_ / "corrupt.vgm").string());
  EXPECT_EQ(e.exit_code, 2);
  EXPECT_NE(e.err.find("corrupt.vgm"), std::string::npos) << e.err;
}

// A replay with --audit writes a log that verifies against the key it made, holds one decision
// record per anomalous verdict and the model it loaded; tampering makes verify exit 1 naming
// the record; bad input exits 2.
TEST_F(CliTest, ReplayWritesAnAuditLogThatVerifiesAndHoldsTheAlerts) {
  const fs::path train = dir_ / "train.jsonl", model = dir_ / "m.vgm";
  TrainSmallModel(train, model);
  const fs::path events = dir_ / "events.jsonl";
  WriteEvents(events, "usual", 3, "svc", {0, 1, 2, 3}, 10);
  WriteEvents(dir_ / "odd.jsonl", "odd", 2, "svc", {59, 57, 61, 9, 10, 41}, 10);
  {
    std::ofstream f(events, std::ios::app);
    f << ReadAll(dir_ / "odd.jsonl");
  }
  // The checkpoints are signed with the host key that `vigil keys init` made.
  const fs::path log = dir_ / "audit", key = dir_ / "keys" / "vigil.key";
  CmdResult k = Vigil("keys init --dir " + (dir_ / "keys").string());
  ASSERT_EQ(k.exit_code, 0) << k.err;
  CmdResult r = Vigil("replay --source jsonl --data " + events.string() + " --model " +
                      model.string() + " --sink null --json --audit " + log.string() +
                      " --audit-key " + key.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NE(r.err.find("audit log " + log.string() + ": 2 decision records"), std::string::npos)
      << r.err;
  const auto summary = nlohmann::json::parse(r.err.substr(r.err.find("\n{") + 1));
  ASSERT_EQ(summary["anomalous"], 2) << r.err;

  CmdResult v = Vigil("audit verify " + log.string() + " --key " +
                      (dir_ / "keys" / "vigil.pub").string() + " --json");
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  const auto report = nlohmann::json::parse(v.out);
  EXPECT_TRUE(report["ok"].get<bool>());
  EXPECT_TRUE(report["clean_close"].get<bool>());
  EXPECT_EQ(report["last_checkpoint"], report["last_seq"]);

  CmdResult d = Vigil("audit show " + log.string() + " --type decision --json");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  std::istringstream lines(d.out);
  std::vector<std::string> streams;
  uint64_t odd1_seq = 0;  // the decision record about stream odd-1
  for (std::string line; std::getline(lines, line);) {
    const auto rec = nlohmann::json::parse(line);
    EXPECT_EQ(rec["type"], "decision");
    EXPECT_EQ(rec["payload"]["action"], "alert");
    EXPECT_TRUE(rec["payload"]["verdict"]["anomalous"].get<bool>());
    streams.push_back(rec["payload"]["verdict"]["stream"]);
    if (streams.back() == "odd-1") odd1_seq = rec["seq"].get<uint64_t>();
  }
  std::sort(streams.begin(), streams.end());
  EXPECT_EQ(streams, (std::vector<std::string>{"odd-0", "odd-1"}));
  CmdResult mc = Vigil("audit show " + log.string() + " --type model-change,mode-change --json");
  ASSERT_EQ(mc.exit_code, 0) << mc.err;
  EXPECT_NE(mc.out.find(model.string()), std::string::npos) << mc.out;
  EXPECT_NE(mc.out.find("\"sha256\""), std::string::npos) << mc.out;
  EXPECT_NE(mc.out.find("\"to\":\"stopped\""), std::string::npos) << mc.out;

  // Flip one payload byte of the decision record about odd-1: verify names exactly that record
  // (records 1-3 are log-open, model-change and mode-change; the decisions are 4 and 5).
  ASSERT_TRUE(odd1_seq == 4 || odd1_seq == 5) << odd1_seq;
  const fs::path seg = log / "00000000000000000001.vlog";
  std::string bytes = ReadAll(seg);
  const size_t at = bytes.rfind("odd-1");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'O';
  std::ofstream(seg, std::ios::binary | std::ios::trunc) << bytes;
  CmdResult bad = Vigil("audit verify " + log.string());
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.out.find("record " + std::to_string(odd1_seq) + ": altered: "),
            std::string::npos)
      << bad.out;
  CmdResult show = Vigil("audit show " + log.string());
  EXPECT_EQ(show.exit_code, 1);
  EXPECT_NE(show.err.find("altered"), std::string::npos) << show.err;

  EXPECT_EQ(Vigil("audit verify " + (dir_ / "nowhere").string()).exit_code, 2);
  EXPECT_EQ(Vigil("audit verify " + log.string() + " --key " + events.string()).exit_code, 2);
  EXPECT_EQ(Vigil("audit show " + log.string() + " --type bogus").exit_code, 2);
  EXPECT_EQ(Vigil("audit show " + log.string() + " --since yesterday").exit_code, 2);
}

}  // namespace

// --model-type triage on a tiny ADFA-LD-shaped folder: benign traces repeat common blocks,
// attack runs add a block of calls the benign ones never make.
class TriageCliTest : public CliTest {
 protected:
  void WriteTrace(const fs::path& path, bool attack, int seed) {
    static const std::vector<std::vector<int>> kBlocks = {
        {5, 195, 192, 3, 3, 6}, {45, 192, 192}, {5, 3, 4, 6}, {195, 5, 3, 6}};
    fs::create_directories(path.parent_path());
    std::ofstream f(path);
    for (int b = 0; b < 12 + seed % 7; ++b) {
      for (int nr : kBlocks[static_cast<size_t>((seed * 7 + b * 3) % 4)]) f << nr << ' ';
      if (attack && b == 5) f << "102 63 63 63 11 ";
    }
    f << '\n';
  }
  fs::path MakeAdfa() {
    const fs::path root = dir_ / "adfa";
    for (int i = 0; i < 12; ++i) {
      WriteTrace(root / "Training_Data_Master" / ("UTD-" + std::to_string(i) + ".txt"), false, i);
      WriteTrace(root / "Validation_Data_Master" / ("UVD-" + std::to_string(i) + ".txt"), false,
                 i + 50);
    }
    for (const char* run : {"Bind_1", "Bind_3", "Shell_1", "Shell_3"}) {
      for (int i = 0; i < 3; ++i) {
        WriteTrace(root / "Attack_Data_Master" / run / ("UAD-" + std::to_string(i) + ".txt"), true,
                   i + 100);
      }
    }
    return root;
  }
};

TEST_F(TriageCliTest, TrainsWithCrossValidationAndEvalLoadsIt) {
  const fs::path root = MakeAdfa();
  const fs::path model = dir_ / "triage.vgm";
  CmdResult t = Vigil("train --dataset adfa-ld --model-type triage --data " + root.string() +
                      " --cv 2 --inner-folds 2 --rounds 20 --target-fpr 0.05 --json --out " +
                      model.string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const nlohmann::json j = nlohmann::json::parse(t.out);
  EXPECT_EQ(j["family"], "triage");
  const nlohmann::json& m = j["metrics"];
  for (const char* key : {"auc", "tpr_at_fpr_1", "tpr_at_fpr_5", "per_attack", "folds"}) {
    EXPECT_TRUE(m.contains(key)) << key;
  }
  EXPECT_GT(m["auc"].get<double>(), 0.9);
  EXPECT_EQ(m["per_attack"].size(), 2u);
  EXPECT_EQ(j["training"]["traces"], 36);
  EXPECT_EQ(j["training"]["true_positives"], 12);
  EXPECT_EQ(j["calibration"]["method"], "cross-validation");

  CmdResult e = Vigil("eval --dataset adfa-ld --data " + root.string() + " --model " +
                      model.string() + " --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out)["attack_traces"], 12);
}

TEST_F(TriageCliTest, LabelsFileSelectsAndRelabelsTraces) {
  const fs::path root = MakeAdfa();
  const fs::path labels = dir_ / "labels.jsonl";
  {
    std::ofstream f(labels);
    for (int i = 0; i < 12; ++i) {
      f << R"({"id": "Training_Data_Master/UTD-)" << i << R"(.txt", "label": "benign"})" << '\n';
    }
    for (const char* run : {"Bind_1", "Shell_3"}) {
      for (int i = 0; i < 3; ++i) {
        f << R"({"id": "Attack_Data_Master/)" << run << "/UAD-" << i
          << R"(.txt", "label": "true_positive"})" << '\n';
      }
    }
    f << R"({"id": "Attack_Data_Master/Bind_3/UAD-0.txt", "label": "false_positive"})" << '\n';
  }
  CmdResult t = Vigil("train --dataset adfa-ld --model-type triage --data " + root.string() +
                      " --labels " + labels.string() + " --inner-folds 2 --rounds 10 --json --out " +
                      (dir_ / "m.vgm").string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const nlohmann::json j = nlohmann::json::parse(t.out);
  EXPECT_EQ(j["training"]["traces"], 19);
  EXPECT_EQ(j["training"]["true_positives"], 6);

  std::ofstream(labels, std::ios::app) << R"({"id": "nope.txt", "label": "benign"})" << '\n';
  CmdResult missing = Vigil("train --dataset adfa-ld --model-type triage --data " +
                            root.string() + " --labels " + labels.string() + " --out " +
                            (dir_ / "m2.vgm").string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("labels.jsonl:20: id \"nope.txt\""), std::string::npos)
      << missing.err;
}

TEST_F(TriageCliTest, TrainsFromJsonlFeatureRowsAndReportsBadLines) {
  const fs::path labels = dir_ / "alerts.jsonl";
  {
    std::ofstream f(labels);
    for (int i = 0; i < 40; ++i) {
      const bool tp = i % 4 == 0;
      f << R"({"id": "alert-)" << i << R"(", "label": ")"
        << (tp ? "true_positive" : (i % 2 ? "benign" : "false_positive"))
        << R"(", "features": {"score": )" << (tp ? 0.9 : 0.3) + (i % 5) * 0.01
        << R"(, "uid": )" << i % 3 << "}}\n";
    }
  }
  CmdResult t = Vigil("train --dataset jsonl --model-type triage --labels " + labels.string() +
                      " --cv 4 --rounds 10 --json --out " + (dir_ / "m.vgm").string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const nlohmann::json j = nlohmann::json::parse(t.out);
  EXPECT_EQ(j["training"]["rows"], 40);
  EXPECT_EQ(j["params"]["features"], 2);
  EXPECT_GT(j["metrics"]["auc"].get<double>(), 0.9);

  std::ofstream(labels, std::ios::app) << "{\"id\": \"x\", \"label\": \"maybe\"}\n";
  CmdResult bad = Vigil("train --dataset jsonl --model-type triage --labels " + labels.string() +
                        " --out " + (dir_ / "m2.vgm").string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("alerts.jsonl:41: \"label\" is \"maybe\""), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir_ / "m2.vgm"));
}
