// The agent side of the hub, end to end with the real binaries: `vigil replay --sink hub:URL`
// delivers every finding exactly once to a `vigil hub` that is stopped mid-stream and started
// again on the same port.

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;
using vigil::e2e::Spawn;
using vigil::e2e::WaitFor;
using vigil::e2e::WriteSyscallStreams;

namespace {

// Waits for a child; its exit code, or -1.
int Reap(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class HubLinkE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hub_link_e2e_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    state_ = dir_ / "hub";
  }
  void TearDown() override {
    StopHub();
    for (pid_t p : children_) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    fs::remove_all(dir_);
  }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }

  // A token from the CLI (the hub must not be running).
  std::string Token(const std::string& role, const std::string& subject) {
    CmdResult r = Vigil("hub token --state-dir " + state_.string() + " --role " + role +
                        " --subject " + subject + " --ttl 1h");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  // Starts `vigil hub` (on port_, or any free port the first time) and waits for its ready line.
  void StartHub() {
    ++starts_;
    const fs::path out = dir_ / ("hub.out." + std::to_string(starts_));
    const fs::path err = dir_ / ("hub.err." + std::to_string(starts_));
    hub_ = Spawn({VIGIL_BINARY, "hub", "--state-dir", state_.string(), "--listen",
                  "127.0.0.1:" + std::to_string(port_), "--json"},
                 out, err);
    ASSERT_TRUE(WaitFor([&] { return ReadAll(out).find('\n') != std::string::npos; },
                        std::chrono::seconds(15)))
        << ReadAll(err);
    const std::string text = ReadAll(out);
    const json ready = json::parse(text.substr(0, text.find('\n')), nullptr, false);
    ASSERT_TRUE(ready.is_object()) << text;
    port_ = ready["port"];
  }
  int StopHub() {
    if (hub_ <= 0) return -1;
    kill(hub_, SIGTERM);
    const int code = Reap(hub_);
    hub_ = -1;
    return code;
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  json Get(const std::string& path, const std::string& token) {
    httplib::Client http("127.0.0.1", port_);
    auto r = http.Get(path, {{"Authorization", "Bearer " + token}});
    if (!r || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }
  // Findings the hub stored for `host` (-1 when the hub does not answer).
  int64_t StoredFindings(const std::string& admin, const std::string& host) {
    const json a = Get("/v1/agents", admin);
    if (!a.is_object()) return -1;
    for (const json& row : a["agents"]) {
      if (row["host"] == host) return row["findings"];
    }
    return 0;
  }


  // Trains a model on 10 "svc" streams; *replay = "replay --source jsonl --data TRAIN --model
  // MODEL" of those streams (their verdicts are not anomalous).
  void TrainForReplay(std::string* replay) {
    const fs::path train = dir_ / "train.jsonl", model = dir_ / "m.vgm";
    WriteSyscallStreams(train, "svc", 10, {0, 1, 2, 3}, 10);
    CmdResult t =
        Vigil("train --dataset jsonl --data " + train.string() + " --out " + model.string());
    ASSERT_EQ(t.exit_code, 0) << t.err;
    *replay = "replay --source jsonl --data " + train.string() + " --model " + model.string();
  }

  fs::path dir_, state_;
  pid_t hub_ = -1;
  int port_ = 0;
  int starts_ = 0;
  std::vector<pid_t> children_;
};

TEST_F(HubLinkE2eTest, ReplayDeliversEveryFindingExactlyOnceAcrossAHubRestart) {
  static constexpr char kFailing[] = "does not take messages";
  const std::string admin = Token("admin", "root");
  const fs::path token_file = dir_ / "agent.token";
  std::ofstream(token_file) << Token("agent", "web-1") << "\n";
  const fs::path train = dir_ / "train.jsonl", model = dir_ / "m.vgm";
  WriteSyscallStreams(train, "svc", 10, {0, 1, 2, 3}, 10);
  CmdResult t =
      Vigil("train --dataset jsonl --data " + train.string() + " --out " + model.string());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  // 120 streams of 29 events at 600 events/s: a finding every 50 ms for about 6 s.
  constexpr int kStreams = 120;
  const fs::path events = dir_ / "events.jsonl";
  WriteSyscallStreams(events, "run", kStreams, {0, 1, 59, 3}, 7);

  ASSERT_NO_FATAL_FAILURE(StartHub());
  const fs::path out = dir_ / "replay.out", err = dir_ / "replay.err";
  const fs::path copy = dir_ / "findings.jsonl";
  const pid_t replay = Spawn({VIGIL_BINARY,
                              "replay",
                              "--source",
                              "jsonl",
                              "--data",
                              events.string(),
                              "--model",
                              model.string(),
                              "--host",
                              "web-1",
                              "--pace",
                              "600",
                              "--sink",
                              "hub:" + Url(),
                              "--sink",
                              "file:" + copy.string(),
                              "--hub-token-file",
                              token_file.string(),
                              "--hub-spool",
                              (dir_ / "spool").string(),
                              "--hub-all-verdicts",
                              "--hub-drain",
                              "30s"},
                             out, err);
  children_.push_back(replay);
  // Mid-stream: the hub has some findings, then goes away until the replay has failed to send
  // to it: its sink logs kFailing each time it starts failing (after "takes messages again" if
  // it had).
  ASSERT_TRUE(WaitFor([&] { return StoredFindings(admin, "web-1") > 0; }, std::chrono::seconds(20)))
      << ReadAll(err);
  const int64_t before = StoredFindings(admin, "web-1");
  EXPECT_LT(before, kStreams) << "the replay ended before the hub was stopped";
  auto failures = [&] {
    const std::string text = ReadAll(err);
    int n = 0;
    for (size_t at = text.find(kFailing); at != std::string::npos;
         at = text.find(kFailing, at + 1)) {
      ++n;
    }
    return n;
  };
  const int failed_before = failures();
  EXPECT_EQ(StopHub(), 0);
  ASSERT_TRUE(WaitFor([&] { return failures() > failed_before; }, std::chrono::seconds(30)))
      << ReadAll(err);
  ASSERT_NO_FATAL_FAILURE(StartHub());
  children_.clear();
  const int code = Reap(replay);
  const std::string replay_err = ReadAll(err);
  ASSERT_EQ(code, 0) << replay_err;

  // Every finding the replay wrote (its file sink has them all) is at the hub exactly once.
  std::set<std::string> written;
  {
    std::ifstream in(copy);
    for (std::string line; std::getline(in, line);) {
      const json f = json::parse(line);
      ASSERT_EQ(f["class_uid"], 2004);
      written.insert(f["finding_info"]["uid"].get<std::string>());
    }
  }
  ASSERT_EQ(written.size(), static_cast<size_t>(kStreams));
  EXPECT_EQ(StoredFindings(admin, "web-1"), kStreams);
  const json list = Get("/v1/incidents?limit=1000", admin);
  ASSERT_TRUE(list.is_object());
  std::multiset<std::string> stored;
  for (const json& i : list["incidents"]) {
    const json detail = Get("/v1/incidents/" + std::to_string(i["id"].get<int64_t>()), admin);
    ASSERT_TRUE(detail.is_object());
    for (const json& a : detail["incident"]["alerts"]) stored.insert(a["uid"].get<std::string>());
  }
  EXPECT_EQ(stored.size(), written.size());
  for (const std::string& uid : written) EXPECT_EQ(stored.count(uid), 1u) << uid;

  // The outage was seen and retried: the replay says so, and nothing stays spooled.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(replay_err, m, std::regex(R"((\d+) retries; 0 messages stay)")))
      << replay_err;
  EXPECT_GT(std::stoi(m[1]), 0) << replay_err;
}

// `vigil agent --config FILE` with the hub sink in the file and no flag: a policy alert of the
// live agent reaches the hub, and the agent drains its hub sink when stopped.
TEST_F(HubLinkE2eTest, AgentWithOnlyAConfigReachesTheHub) {
  if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
  if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
  const std::string admin = Token("admin", "root");
  const fs::path token_file = dir_ / "agent.token";
  std::ofstream(token_file) << Token("agent", "cfg-1") << "\n";
  const fs::path trigger = dir_ / "open-me";
  std::ofstream(trigger) << "x";
  const fs::path rules = dir_ / "rules.yaml";
  std::ofstream(rules) << "- rule: Trigger opened\n  desc: d\n  condition: evt.type in (open, "
                          "openat) and fd.name = "
                       << trigger.string() << "\n  output: trigger opened by %proc.name\n"
                       << "  priority: WARNING\n";
  ASSERT_NO_FATAL_FAILURE(StartHub());
  const fs::path config = dir_ / "agent.yaml";
  std::ofstream(config) << "host: cfg-1\nstate_dir: " << (dir_ / "agent").string()
                        << "\nmetrics:\n  enabled: false\nagent:\n  learn: 1s\n"
                        << "  events: [open]\npolicy:\n  files: [" << rules.string() << "]\n"
                        << "sinks:\n  - type: null\n  - type: hub\n    url: " << Url()
                        << "\n    token_file: " << token_file.string() << "\n    spool: "
                        << (dir_ / "hub-spool").string() << "\n    drain: 20s\n";
  fs::create_directories(dir_ / "agent");
  const fs::path out = dir_ / "agent.out", err = dir_ / "agent.err";
  const pid_t agent = Spawn({VIGIL_BINARY, "agent", "--config", config.string()}, out, err);
  children_.push_back(agent);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  // Opened until the hub has the alert (the first opens may come before the rule is loaded).
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ifstream{trigger}.get();
        return StoredFindings(admin, "cfg-1") > 0;
      },
      std::chrono::seconds(20)))
      << ReadAll(err);
  kill(agent, SIGTERM);
  children_.clear();
  EXPECT_EQ(Reap(agent), 0) << ReadAll(err);
  const std::string agent_err = ReadAll(err);
  EXPECT_NE(agent_err.find("hub " + Url() + ": "), std::string::npos) << agent_err;
  EXPECT_NE(agent_err.find(" 0 messages stay spooled"), std::string::npos) << agent_err;
  EXPECT_TRUE(fs::is_directory(dir_ / "hub-spool")) << "the config's spool was not used";
  // The agent registered its audit key and its addresses; its audit checkpoints (the final one
  // at least) reached the hub and verify by that key.
  EXPECT_NE(agent_err.find("audit checkpoints to hub"), std::string::npos) << agent_err;
  httplib::Client http("127.0.0.1", port_);
  auto r = http.Get("/v1/agents/cfg-1/checkpoints", {{"Authorization", "Bearer " + admin}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const nlohmann::json body = nlohmann::json::parse(r->body);
  EXPECT_FALSE(body["audit_key"].is_null()) << r->body;
  ASSERT_GE(body["checkpoints"].size(), 1u) << r->body;
  for (const nlohmann::json& c : body["checkpoints"]) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
    EXPECT_EQ(c["problem"], "") << c.dump();
  }
}

TEST_F(HubLinkE2eTest, BadHubSinkSettingsExitTwoNamingThem) {
  std::string base;
  ASSERT_NO_FATAL_FAILURE(TrainForReplay(&base));
  base += " --hub-spool " + (dir_ / "spool").string();
  CmdResult r = Vigil(base + " --sink hub:ftp://127.0.0.1:1 --hub-token-file /dev/null");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("ftp://127.0.0.1:1"), std::string::npos) << r.err;
  r = Vigil(base + " --sink hub:http://127.0.0.1:1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--hub-token-file"), std::string::npos) << r.err;
  r = Vigil(base + " --sink hub:http://127.0.0.1:1 --hub-token-file x --hub-drain soon");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--hub-drain"), std::string::npos) << r.err;
  // The hub is unreachable and the drain time short: the findings stay spooled, exit 1.
  std::ofstream(dir_ / "t") << "x.y.z\n";
  r = Vigil(base + " --sink hub:http://127.0.0.1:1 --hub-token-file " + (dir_ / "t").string() +
            " --hub-drain 1s --host web-1 --hub-all-verdicts");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("messages stay spooled"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(" 0 messages stay spooled"), std::string::npos) << r.err;
}

// The config's hub sink is checked when the file is read (exit 2 naming file, line and key),
// and a --hub-* flag replaces its setting.
TEST_F(HubLinkE2eTest, ConfigHubSinkIsCheckedAndFlagsOverrideIt) {
  std::string base;
  ASSERT_NO_FATAL_FAILURE(TrainForReplay(&base));
  base += " --config ";
  std::ofstream(dir_ / "t") << "x.y.z\n";
  const fs::path bad = dir_ / "bad.yaml";
  std::ofstream(bad) << "host: web-1\nsinks:\n  - type: hub\n    url: ftp://127.0.0.1:1\n"
                     << "    token_file: " << (dir_ / "t").string() << "\n";
  CmdResult r = Vigil(base + bad.string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bad.yaml:4:10: sinks[0].url: expected http://HOST:PORT"),
            std::string::npos)
      << r.err;

  // An unreachable hub: the config waits 10 minutes for it at the end, the flag 1 second.
  const fs::path good = dir_ / "good.yaml";
  std::ofstream(good) << "host: web-1\nsinks:\n  - type: hub\n    url: http://127.0.0.1:1\n"
                      << "    token_file: " << (dir_ / "t").string() << "\n    spool: "
                      << (dir_ / "cfg-spool").string() << "\n    drain: 10m\n"
                      << "    all_verdicts: true\n";
  const auto start = std::chrono::steady_clock::now();
  r = Vigil(base + good.string() + " --hub-drain 1s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("hub http://127.0.0.1:1: 0 findings sent"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(" 0 messages stay spooled"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_directory(dir_ / "cfg-spool")) << "the config's spool was not used";
}

}  // namespace
