// vigil gateway as a user runs it: a bad config is refused with its file, line and key (exit 2);
// --check learns the actuator-state model (and the telemetry scoring models) and reports them;
// enforce mode needs the config and the training data signed by a trusted key, else the gateway
// runs in monitor mode (a write it would deny passes) and the audit log says why; with a hub sink
// its findings become incidents at a real hub.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "govern/keys.h"
#include "govern/trust.h"
#include "vigil_cli.h"

namespace vigil::e2e {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class GatewayCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-gw-e2e-" + std::to_string(getpid()) +
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

TEST_F(GatewayCliTest, RulesItCannotEvaluateExitTwoNamingFileAndLine) {
  const std::string rules =
      Write("gw-rules.yaml", "- rule: ok\n  desc: d\n  condition: modbus.value > 5\n  output: o\n"
                             "  priority: ERROR\n  action: {type: deny}\n"
                             "- rule: typo\n  desc: d\n  condition: modbus.adress = 3\n"
                             "  output: o\n  priority: ERROR\n  action: {type: deny}\n");
  const std::string cfg = Write("gw.yaml", "policy: {rules: [\"" + rules + "\"]}\n");
  for (const std::string& check : {std::string(" --check"), std::string()}) {
    CmdResult r = RunVigil(dir_, "gateway" + check + " --config " + cfg);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(cfg + ": policy.rules: " + rules + ":7: rule \"typo\""));
    EXPECT_THAT(r.err, HasSubstr("modbus.adress"));
  }
  // Fixed, the check reports the policy.
  Write("gw-rules.yaml", "- rule: ok\n  desc: d\n  condition: modbus.value > 5\n  output: o\n"
                         "  priority: ERROR\n  action: {type: deny}\n");
  CmdResult ok = RunVigil(dir_, "gateway --check --json --config " + cfg);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["policy"]["stage"], "enforce-all");
  EXPECT_EQ(j["policy"]["rules"], 6);  // unmapped, range, rate, model, function, and "ok"
  EXPECT_EQ(j["policy"]["files"].back(), rules);
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

// Signatures in enforce mode. The gateway runs on a free port in front of a PLC that is not there
// (127.0.0.1:1): a write the gateway denies gets exception 0x03 from the gateway, a write it
// lets pass gets 0x0B (the PLC did not answer). PU1 (coil 1) may only be written 0.
// Keys and signatures are made in-process with the govern library (as `vigil keys init` and
// `vigil policy sign` make them): each vigil process costs about a second to start here.
class GatewayTrustTest : public GatewayCliTest {
 protected:
  void SetUp() override {
    GatewayCliTest::SetUp();
    ASSERT_TRUE(govern::InitKeys((dir_ / "keys").string(), false).has_value());
    ASSERT_TRUE(govern::InitKeys((dir_ / "stranger").string(), false).has_value());
    // The first 600 hours of BATADAL's normal operation are enough to learn from, quickly.
    std::ifstream full(VIGIL_SHARED_DIR "/data/batadal/BATADAL_dataset03.csv");
    std::ofstream part(dir_ / "train.csv");
    std::string line;
    for (int i = 0; i <= 600 && std::getline(full, line); ++i) part << line << "\n";
    training_ = (dir_ / "train.csv").string();
  }
  // The config: `mode` for the gateway, `asset_mode` ("" = none) for PU1.
  std::string Config(const std::string& mode, const std::string& asset_mode = "",
                     const std::string& sinks = "[]") {
    return Write("gw.yaml",
                 "mode: " + mode + "\nhost: plant-gw\nstate_dir: " + dir_.string() +
                     "\nsinks: " + sinks + "\nmetrics: {enabled: false}\n"
                     "modbus: {listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:1\", "
                     "upstream_timeout_ms: 500}\n"
                     "model: {training: \"" + training_ + "\"}\n"
                     "assets:\n  - {name: PU1, register: coil, address: 1, min: 0, max: 0, "
                     "signal: S_PU1" +
                     (asset_mode.empty() ? "" : ", mode: " + asset_mode) + "}\n");
  }
  // Writes FILE.minisig with the secret key in `key_dir`.
  void Sign(const std::string& file, const std::string& key_dir) {
    auto key = govern::LoadSecretKey(govern::SecretKeyPath((dir_ / key_dir).string()));
    ASSERT_TRUE(key.has_value()) << key.error().message();
    const std::string bytes = ReadAll(file);
    ASSERT_TRUE(govern::SignArtifact(file, bytes, *key, "", 1'700'000'000).has_value());
  }
  std::string Trust() const { return " --trusted-key " + (dir_ / "keys" / "vigil.pub").string(); }

  struct Served {
    int exception = -1;  // the gateway's answer to writing 1 to PU1 (-1: no exception answer)
    nlohmann::json summary;
    std::string err;
  };
  // Starts the gateway (audit log in dir_/audit), writes coil 1 := ON once, stops it.
  // `extra`: more arguments for `vigil gateway`; `exit_code`: what it must exit with.
  Served Serve(const std::string& cfg, const std::vector<std::string>& extra = {},
               int exit_code = 0) {
    Served s;
    std::vector<std::string> argv = {
        VIGIL_BINARY, "gateway", "--config", cfg, "--json", "--audit", (dir_ / "audit").string(),
        "--audit-key", (dir_ / "audit.key").string(), "--trusted-key",
        (dir_ / "keys" / "vigil.pub").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    fs::remove(dir_ / "gw.out");  // not to read the last run's port
    fs::remove(dir_ / "gw.err");
    pid_t pid = Spawn(argv, dir_ / "gw.out", dir_ / "gw.err");
    const std::regex port_re(R"(\(port (\d+)\))");
    std::smatch m;
    int port = 0;
    bool exited = false;
    WaitFor(
        [&] {
          s.err = ReadAll(dir_ / "gw.err");
          if (std::regex_search(s.err, m, port_re)) port = std::stoi(m[1].str());
          exited = port == 0 && waitpid(pid, nullptr, WNOHANG) == pid;
          return port != 0 || exited;
        },
        std::chrono::seconds(20));
    if (port != 0) s.exception = WriteCoilOn(port);
    if (exited) {
      ADD_FAILURE() << "the gateway exited before serving: " << s.err;
    } else {
      EXPECT_EQ(StopVigil(pid), exit_code) << s.err;
    }
    s.err = ReadAll(dir_ / "gw.err");
    s.summary = nlohmann::json::parse(ReadAll(dir_ / "gw.out"), nullptr, false);
    return s;
  }
  // A token from `vigil hub token` for the hub whose state is in `state`.
  std::string HubToken(const fs::path& state, const std::string& role,
                       const std::string& subject) {
    CmdResult r = RunVigil(dir_, "hub token --state-dir " + state.string() + " --role " + role +
                                     " --subject " + subject + " --ttl 1h");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  // Modbus/TCP "write single coil 1 := ON" to unit 1; the exception code of the answer.
  static int WriteCoilOn(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int code = -1;
    const uint8_t req[] = {0, 1, 0, 0, 0, 6, 1, 0x05, 0, 1, 0xFF, 0};
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        send(fd, req, sizeof req, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req)) {
      uint8_t resp[260];
      size_t got = 0;
      while (got < 9) {
        const ssize_t n = recv(fd, resp + got, sizeof resp - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      if (got >= 9 && resp[7] == (0x05 | 0x80)) code = resp[8];
    }
    close(fd);
    return code;
  }
  // The audit log's records (vigil audit show --json), one run of the gateway each: a run ends
  // with its mode-change record to "stopped".
  std::vector<std::vector<nlohmann::json>> AuditRuns() {
    const CmdResult show = RunVigil(dir_, "audit show " + (dir_ / "audit").string() + " --json");
    EXPECT_EQ(show.exit_code, 0) << show.err;
    std::vector<std::vector<nlohmann::json>> runs(1);
    std::istringstream lines(show.out);
    for (std::string line; std::getline(lines, line);) {
      nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
      const bool end = r["type"] == "mode-change" && r["payload"]["to"] == "stopped";
      runs.back().push_back(std::move(r));
      if (end) runs.emplace_back();
    }
    runs.pop_back();
    return runs;
  }
  static const nlohmann::json* Find(const std::vector<nlohmann::json>& run,
                                    const std::string& type, const std::string& action) {
    for (const nlohmann::json& r : run) {
      if (r["type"] == type && r["payload"].value("action", "") == action) return &r["payload"];
    }
    return nullptr;
  }
  // The start's mode-change payload of a run.
  static nlohmann::json Start(const std::vector<nlohmann::json>& run) {
    for (const nlohmann::json& r : run) {
      if (r["type"] == "mode-change" && r["payload"]["from"] == "stopped") return r["payload"];
    }
    return nullptr;
  }

  std::string training_;
};

TEST_F(GatewayTrustTest, EnforceModeRefusesUnsignedUnknownKeyOrAlteredConfigOrTrainingData) {
  struct Case {
    std::string kind;  // "policy" (the config) or "model" (the training data)
    std::string outcome;
    std::function<void(const std::string& file)> spoil;  // makes `file` untrusted
  };
  const std::vector<Case> cases = {
      {"policy", "unsigned", [](const std::string& f) { fs::remove(f + ".minisig"); }},
      {"model", "unknown-key", [&](const std::string& f) { Sign(f, "stranger"); }},
      {"model", "altered",
       [](const std::string& f) {
         std::string last;  // one more (valid) row after signing
         for (std::ifstream in(f); std::getline(in, last);) {
         }
         std::ofstream(f, std::ios::app) << last << "\n";
       }},
      {"policy", "altered",
       [](const std::string& f) { std::ofstream(f, std::ios::app) << "# edited\n"; }},
  };
  const std::string cfg = Config("enforce");
  const std::string original = ReadAll(training_);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.kind + " " + c.outcome);
    Config("enforce");
    std::ofstream(training_, std::ios::trunc) << original;
    Sign(cfg, "keys");
    Sign(training_, "keys");
    const std::string file = c.kind == "policy" ? cfg : training_;
    c.spoil(file);
    const Served s = Serve(cfg);
    EXPECT_EQ(s.exception, 0x0B) << s.err;  // passed on to the (absent) PLC
    EXPECT_THAT(s.err, HasSubstr("ALERT enforce mode refused, running in monitor mode: " +
                                 c.kind + " " + c.outcome + ": " + file));
    ASSERT_TRUE(s.summary.is_object()) << s.err;
    EXPECT_EQ(s.summary["mode"], "monitor");
    EXPECT_EQ(s.summary["writes"]["denied"], 0);
    EXPECT_EQ(s.summary["writes"]["would_have_denied"], 1);
    EXPECT_THAT(s.summary.value("enforce_refused", ""), HasSubstr(c.kind + " " + c.outcome));
  }
  // Both signed by the trusted key: enforce mode, the write is denied by the gateway itself.
  Config("enforce");
  std::ofstream(training_, std::ios::trunc) << original;
  Sign(cfg, "keys");
  Sign(training_, "keys");
  const Served s = Serve(cfg);
  EXPECT_EQ(s.exception, 0x03) << s.err;  // ILLEGAL DATA VALUE: denied, never sent on
  EXPECT_THAT(s.err, ::testing::Not(HasSubstr("ALERT")));
  ASSERT_TRUE(s.summary.is_object()) << s.err;
  EXPECT_EQ(s.summary["mode"], "enforce");
  EXPECT_EQ(s.summary["writes"]["denied"], 1);
  EXPECT_FALSE(s.summary.contains("enforce_refused"));

  // The audit log: one run per case, then the signed run.
  const auto runs = AuditRuns();
  ASSERT_EQ(runs.size(), cases.size() + 1);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.kind + " " + c.outcome);
    const nlohmann::json* refused =
        Find(runs[i], c.kind == "policy" ? "policy-change" : "model-change", "refused");
    ASSERT_NE(refused, nullptr);
    if (c.kind == "policy") {
      EXPECT_EQ((*refused)["files"], nlohmann::json::array({cfg}));
    } else {
      EXPECT_EQ((*refused)["path"], training_);
      EXPECT_EQ((*refused)["name"], "actuator-state");
    }
    EXPECT_THAT((*refused)["reason"].get<std::string>(), ::testing::StartsWith(c.outcome + ": "));
    const nlohmann::json start = Start(runs[i]);
    EXPECT_EQ(start["to"], "monitor");
    EXPECT_THAT(start["reason"].get<std::string>(),
                HasSubstr("enforce mode refused: " + c.kind + " " + c.outcome));
  }
  EXPECT_EQ(Find(runs.back(), "policy-change", "refused"), nullptr);
  EXPECT_EQ(Find(runs.back(), "model-change", "refused"), nullptr);
  EXPECT_NE(Find(runs.back(), "policy-change", "loaded"), nullptr);
  const nlohmann::json* model = Find(runs.back(), "model-change", "loaded");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ((*model)["reason"], "learned at start-up from training data signed by a trusted key");
  const nlohmann::json* unverified = Find(runs[0], "model-change", "loaded");
  ASSERT_NE(unverified, nullptr);
  EXPECT_EQ((*unverified)["reason"], "learned at start-up");
  EXPECT_EQ(Start(runs.back())["to"], "enforce");
}

// An asset's own `mode: enforce` on a monitor gateway needs the same signatures; refused, the
// asset falls back to monitor mode too.
// The rules files of policy.rules are policy like the config: enforce mode needs them signed.
TEST_F(GatewayTrustTest, EnforceModeNeedsThePolicyRulesFilesSignedToo) {
  const std::string rules =
      Write("gw-rules.yaml", "- rule: pu1_never\n  desc: d\n  condition: modbus.asset = PU1\n"
                             "  output: \"PU1 := %modbus.value\"\n  priority: ERROR\n"
                             "  action: {type: deny}\n");
  const std::string cfg = Config("enforce");
  std::ofstream(cfg, std::ios::app) << "policy: {rules: [\"" << rules << "\"]}\n";
  Sign(cfg, "keys");
  Sign(training_, "keys");
  {
    const Served s = Serve(cfg);
    EXPECT_EQ(s.exception, 0x0B) << s.err;  // monitor mode: passed on to the (absent) PLC
    EXPECT_THAT(s.err, HasSubstr("ALERT enforce mode refused, running in monitor mode: policy "
                                 "unsigned: " + rules));
    EXPECT_EQ(s.summary["mode"], "monitor");
  }
  Sign(rules, "keys");
  const Served s = Serve(cfg);
  EXPECT_THAT(s.err, ::testing::Not(HasSubstr("ALERT")));
  EXPECT_EQ(s.exception, 0x03) << s.err;
  ASSERT_TRUE(s.summary.is_object()) << s.err;
  EXPECT_EQ(s.summary["policy"]["files"].back(), rules);
  const auto runs = AuditRuns();
  ASSERT_FALSE(runs.empty());
  const nlohmann::json* loaded = Find(runs.back(), "policy-change", "loaded");
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ((*loaded)["files"].back(), rules);
  EXPECT_THAT((*loaded)["version"].get<std::string>(), ::testing::StartsWith("sha256:"));
}

TEST_F(GatewayTrustTest, AnAssetsEnforceModeNeedsTheSignaturesToo) {
  const std::string cfg = Config("monitor", "enforce");
  Sign(training_, "keys");
  Served s = Serve(cfg);
  EXPECT_EQ(s.exception, 0x0B) << s.err;
  EXPECT_THAT(s.err, HasSubstr("ALERT enforce mode refused, running in monitor mode: policy "
                               "unsigned: " + cfg));
  EXPECT_EQ(s.summary["writes"]["would_have_denied"], 1) << s.summary.dump();

  Sign(cfg, "keys");
  s = Serve(cfg);
  EXPECT_EQ(s.exception, 0x03) << s.err;
  EXPECT_EQ(s.summary["writes"]["denied"], 1) << s.summary.dump();
}

// --check says whether enforce mode would hold, without serving: exit 1 with the reason when not.
TEST_F(GatewayTrustTest, CheckReportsWhetherEnforceModeWouldBeRefused) {
  const std::string cfg = Config("enforce");
  Sign(cfg, "keys");
  CmdResult r = RunVigil(dir_, "gateway --check --json --config " + cfg + Trust());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("ALERT enforce mode refused, it would run in monitor mode: model "
                               "unsigned: " + training_ + " is not signed"));
  EXPECT_EQ(nlohmann::json::parse(r.out)["enforce"], "refused");

  Sign(training_, "keys");
  r = RunVigil(dir_, "gateway --check --json --config " + cfg + Trust());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["enforce"], "verified");
  // A trusted key that does not load refuses enforce mode, naming it.
  r = RunVigil(dir_, "gateway --check --config " + cfg + " --trusted-key " +
                         (dir_ / "none.pub").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr((dir_ / "none.pub").string()));
}

// The gateway's findings go to the hub as the agent's do (`sinks: [hub:URL]`): a write the
// gateway would deny (monitor mode) becomes an incident at a real `vigil hub`, delivered before
// the gateway exits.
TEST_F(GatewayTrustTest, FindingsReachTheHub) {
  const fs::path state = dir_ / "hub";
  auto token = [&](const std::string& role, const std::string& subject) {
    return HubToken(state, role, subject);
  };
  const std::string admin = token("admin", "root");
  const std::string agent_token = Write("agent.token", token("agent", "plant-gw") + "\n");
  Background hub = StartVigil(
      {"hub", "--state-dir", state.string(), "--listen", "127.0.0.1:0", "--json"},
      dir_ / "hub.out", dir_ / "hub.err", std::chrono::seconds(20));
  ASSERT_GT(hub.pid, 0) << hub.error;
  const int port = nlohmann::json::parse(hub.ready_line)["port"];
  const std::string url = "http://127.0.0.1:" + std::to_string(port);

  // Without the token file the sink is refused before the gateway serves.
  CmdResult no_token = RunVigil(dir_, "gateway --config " +
                                          Config("monitor", "", "[\"hub:" + url + "\"]") +
                                          " --audit " + (dir_ / "audit0").string());
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_THAT(no_token.err, HasSubstr("needs --hub-token-file"));

  Served s = Serve(Config("monitor", "", "[\"hub:" + url + "\"]"),
                   {"--hub-token-file", agent_token, "--hub-spool", (dir_ / "spool").string()});
  EXPECT_EQ(s.exception, 0x0B);  // passed (monitor mode) to the PLC that is not there
  EXPECT_THAT(s.err, HasSubstr("0 messages stay spooled"));

  httplib::Client http("127.0.0.1", port);
  auto r = http.Get("/v1/incidents?host=plant-gw", {{"Authorization", "Bearer " + admin}});
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  const nlohmann::json incidents = nlohmann::json::parse(r->body)["incidents"];
  ASSERT_EQ(incidents.size(), 1u) << r->body;
  const int64_t id = incidents[0]["id"];
  auto detail = http.Get("/v1/incidents/" + std::to_string(id),
                         {{"Authorization", "Bearer " + admin}});
  ASSERT_TRUE(detail);
  EXPECT_THAT(detail->body, HasSubstr("Actuator command would have been denied")) << detail->body;
  // The audit log's signed checkpoints went to the same hub (issue 8): at least the final one,
  // verified by the audit key the gateway registered over its token-authenticated link (it runs
  // no fleet link), none contradicting another.
  EXPECT_THAT(s.err, HasSubstr("audit checkpoints to hub")) << s.err;
  EXPECT_THAT(s.err, HasSubstr("0 not delivered")) << s.err;
  auto checkpoints = http.Get("/v1/agents/plant-gw/checkpoints",
                              {{"Authorization", "Bearer " + admin}});
  ASSERT_TRUE(checkpoints);
  ASSERT_EQ(checkpoints->status, 200) << checkpoints->body;
  const nlohmann::json body = nlohmann::json::parse(checkpoints->body);
  const nlohmann::json cps = body["checkpoints"];
  ASSERT_GE(cps.size(), 1u) << checkpoints->body;
  ASSERT_TRUE(body["audit_key"].is_object()) << checkpoints->body;
  for (const nlohmann::json& c : cps) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
    EXPECT_EQ(c["key_id"], body["audit_key"]["key_id"]) << c.dump();
    EXPECT_EQ(c["problem"], "") << c.dump();
  }
  EXPECT_EQ(StopVigil(hub.pid), 0);
}

// The gateway's checkpoints survive a hub outage and a restart: a run while the hub is down
// leaves them spooled (exit 1); the next run, with the hub up, sends them first, in order, and the
// hub keeps each once, verified.
TEST_F(GatewayTrustTest, CheckpointsSpooledDuringAHubOutageArriveAtTheNextStart) {
  const fs::path state = dir_ / "hub";
  auto token = [&](const std::string& role, const std::string& subject) {
    return HubToken(state, role, subject);
  };
  const std::string admin = token("admin", "root");
  const std::string agent_token = Write("agent.token", token("agent", "plant-gw") + "\n");
  // A port nothing listens on: the hub is down.
  const int down_port = [] {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return static_cast<int>(ntohs(a.sin_port));
  }();
  const std::vector<std::string> link = {"--hub-token-file", agent_token, "--hub-spool",
                                         (dir_ / "spool").string(), "--hub-drain", "1s"};
  Served down = Serve(Config("monitor", "", "[\"hub:http://127.0.0.1:" +
                                               std::to_string(down_port) + "\"]"),
                      link, 1);
  const std::regex left_re(R"(audit checkpoints to hub \S+: 0 sent .*; (\d+) not delivered)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(down.err, m, left_re)) << down.err;
  const int spooled = std::stoi(m[1].str());
  ASSERT_GE(spooled, 1) << down.err;

  Background hub = StartVigil(
      {"hub", "--state-dir", state.string(), "--listen", "127.0.0.1:0", "--json"},
      dir_ / "hub.out", dir_ / "hub.err", std::chrono::seconds(20));
  ASSERT_GT(hub.pid, 0) << hub.error;
  const int port = nlohmann::json::parse(hub.ready_line)["port"];
  Served up = Serve(
      Config("monitor", "", "[\"hub:http://127.0.0.1:" + std::to_string(port) + "\"]"), link);
  EXPECT_THAT(up.err, HasSubstr("hub checkpoint spool: " + std::to_string(spooled) +
                                " messages of an earlier run"))
      << up.err;
  EXPECT_THAT(up.err, HasSubstr("0 not delivered")) << up.err;
  httplib::Client http("127.0.0.1", port);
  auto checkpoints = http.Get("/v1/agents/plant-gw/checkpoints?limit=1000",
                              {{"Authorization", "Bearer " + admin}});
  ASSERT_TRUE(checkpoints);
  ASSERT_EQ(checkpoints->status, 200) << checkpoints->body;
  const nlohmann::json cps = nlohmann::json::parse(checkpoints->body)["checkpoints"];
  // Both runs' checkpoints, each once (a checkpoint's seq is unique in one log), all verified.
  ASSERT_GT(cps.size(), static_cast<size_t>(spooled)) << checkpoints->body;
  std::set<int64_t> seqs;
  for (const nlohmann::json& c : cps) {
    EXPECT_TRUE(seqs.insert(c["seq"].get<int64_t>()).second) << c.dump();
    EXPECT_EQ(c["verification"], "verified") << c.dump();
    EXPECT_EQ(c["problem"], "") << c.dump();
  }
  EXPECT_EQ(StopVigil(hub.pid), 0);
}

}  // namespace
}  // namespace vigil::e2e
