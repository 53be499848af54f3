// vigil hub end to end: tokens from the CLI, the hub on a free loopback port, an agent's findings
// file posted twice with `vigil hub ingest` (the second time changes nothing), incidents read and
// adjudicated over HTTP, the labelled export trained on by `vigil train --model-type triage`,
// and the audit log verified after a clean SIGTERM stop.

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;

namespace {

class HubCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hub_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    state_ = dir_ / "state";
  }
  void TearDown() override {
    StopHub();
    fs::remove_all(dir_);
  }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }

  std::string Token(const std::string& role, const std::string& subject) {
    CmdResult r = Vigil("hub token --state-dir " + state_.string() + " --role " + role +
                        " --subject " + subject + " --ttl 10m");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  // Starts `vigil hub` on a free port and waits (10 s at most) for its ready line.
  void StartHub() {
    const fs::path out = dir_ / "hub.out", err = dir_ / "hub.err";
    hub_ = fork();
    ASSERT_GE(hub_, 0);
    if (hub_ == 0) {
      if (freopen(out.c_str(), "w", stdout) == nullptr) _exit(126);
      if (freopen(err.c_str(), "w", stderr) == nullptr) _exit(126);
      execl(VIGIL_BINARY, VIGIL_BINARY, "hub", "--state-dir", state_.c_str(), "--listen",
            "127.0.0.1:0", "--json", static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = ReadAll(out);
      if (text.find('\n') != std::string::npos) {
        const json ready = json::parse(text.substr(0, text.find('\n')), nullptr, false);
        ASSERT_TRUE(ready.is_object()) << text;
        port_ = ready["port"];
        return;
      }
      int status = 0;
      if (waitpid(hub_, &status, WNOHANG) == hub_) {
        hub_ = -1;
        FAIL() << "vigil hub exited: " << ReadAll(err);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "vigil hub did not get ready: " << ReadAll(err);
  }
  int StopHub() {
    if (hub_ <= 0) return -1;
    kill(hub_, SIGTERM);
    int status = 0;
    waitpid(hub_, &status, 0);
    hub_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  fs::path dir_, state_;
  pid_t hub_ = -1;
  int port_ = 0;
};

// An agent's sink output: verdicts and decisions (OCSF 2004) and an event line to skip.
std::string FindingsFile(int processes) {
  std::string text;
  const int64_t base = 1'700'000'000'000;
  for (int p = 0; p < processes; ++p) {
    const int pid = 100 + p;
    json verdict = {{"class_uid", 2004},
                    {"time", base + p * 1000},
                    {"severity_id", 4},
                    {"device", {{"hostname", "web-1"}}},
                    {"process", {{"pid", pid}, {"name", "worker"}}},
                    {"finding_info",
                     {{"title", "Anomalous system-call sequence"},
                      {"uid", "worker:" + std::to_string(pid)},
                      {"analytic", {{"name", "ngram"}, {"version", "1"}, {"type_id", 4}}}}},
                    {"risk_score", 90},
                    {"vigil",
                     {{"score", 0.5 + 0.05 * p},
                      {"anomalous", true},
                      {"stream", "s"},
                      {"events", 30},
                      {"explanation", {{{"what", "open>mmap"}, {"weight", 0.4}}}}}}};
    json decision = {{"class_uid", 2004},
                     {"time", base + p * 1000 + 5},
                     {"severity_id", 3},
                     {"message", "worker spawned a shell"},
                     {"process", {{"pid", pid}, {"name", "worker"}}},
                     {"finding_info", {{"title", "shell"}, {"uid", "p:" + std::to_string(p)}}},
                     {"vigil",
                      {{"rule", p % 2 == 0 ? "shell" : "odd_write"},
                       {"action", "alert"},
                       {"reason", "worker spawned a shell"},
                       {"ml", {{"score", 0.5 + 0.05 * p}, {"model", "ngram"}}}}}};
    text += verdict.dump() + "\n" + decision.dump() + "\n";
    text += R"({"class_uid":1007,"activity_id":1,"time":1,"process":{"pid":7}})"
            "\n";
  }
  return text;
}

TEST_F(HubCliTest, ServesIngestsIdempotentlyAdjudicatesAndAuditsEveryChange) {
  const std::string admin = Token("admin", "root");
  StartHub();
  ASSERT_GT(port_, 0);
  httplib::Client http("127.0.0.1", port_);
  // The other tokens come from the running hub (the CLI cannot: the hub holds the audit log).
  auto issue = [&](const std::string& role, const std::string& subject) {
    auto r = http.Post("/v1/tokens", {{"Authorization", "Bearer " + admin}},
                       json{{"role", role}, {"subject", subject}, {"ttl_s", 600}}.dump(),
                       "application/json");
    EXPECT_TRUE(r && r->status == 200);
    return r ? json::parse(r->body)["token"].get<std::string>() : std::string();
  };
  const std::string analyst = issue("analyst", "ana");
  const std::string viewer = issue("viewer", "vic");
  std::ofstream(dir_ / "agent.token") << issue("agent", "web-1") << "\n";
  const fs::path findings = dir_ / "findings.jsonl";
  std::ofstream(findings) << FindingsFile(8);

  const std::string ingest = "hub ingest " + findings.string() + " --server " + Url() +
                             " --token-file " + (dir_ / "agent.token").string() +
                             " --host web-1 --batch 5 --json";
  CmdResult first = Vigil(ingest);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  json counts = json::parse(first.out);
  EXPECT_EQ(counts["findings_read"], 16);
  EXPECT_EQ(counts["messages"], 4);
  EXPECT_EQ(counts["findings_stored"], 16);
  EXPECT_EQ(counts["new_incidents"], 8);
  EXPECT_EQ(counts["lines_skipped"], 8);
  CmdResult again = Vigil(ingest);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  counts = json::parse(again.out);
  EXPECT_EQ(counts["duplicate_messages"], 4);
  EXPECT_EQ(counts["findings_stored"], 0);
  // Another host's findings with this agent's token are refused.
  CmdResult other = Vigil("hub ingest " + findings.string() + " --server " + Url() +
                          " --token-file " + (dir_ / "agent.token").string() + " --host web-2");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("HTTP 403"), std::string::npos) << other.err;

  auto none = http.Get("/v1/incidents");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "UNAUTHENTICATED");
  auto list = http.Get("/v1/incidents?limit=100", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200);
  const json incidents = json::parse(list->body)["incidents"];
  ASSERT_EQ(incidents.size(), 8u);
  for (const json& i : incidents) {
    EXPECT_EQ(i["alerts"], 2);
    const int64_t pid = i["pid"];
    const std::string label = pid % 2 == 0 ? "true_positive" : "false_positive";
    auto r = http.Post("/v1/incidents/" + std::to_string(i["id"].get<int64_t>()) + "/adjudication",
                       {{"Authorization", "Bearer " + analyst}}, json{{"label", label}}.dump(),
                       "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  auto viewer_label =
      http.Post("/v1/incidents/1/adjudication", {{"Authorization", "Bearer " + viewer}},
                R"({"label":"benign"})", "application/json");
  EXPECT_EQ(viewer_label->status, 403);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(R"(vigil_hub_precision{kind="rule",name="shell"} 1)"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(R"(vigil_hub_precision{kind="rule",name="odd_write"} 0)"),
            std::string::npos);
  auto labels = http.Get("/v1/labels", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(labels);
  ASSERT_EQ(labels->status, 200);
  const fs::path labels_file = dir_ / "labels.jsonl";
  std::ofstream(labels_file) << labels->body;
  CmdResult busy = Vigil("hub token --state-dir " + state_.string() + " --role viewer --subject x");
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("POST /v1/tokens"), std::string::npos) << busy.err;

  EXPECT_EQ(StopHub(), 0);

  // The export is what `vigil train --model-type triage` reads.
  CmdResult train =
      Vigil("train --model-type triage --dataset jsonl --labels " + labels_file.string() +
            " --out " + (dir_ / "triage.vgm").string() + " --rounds 5");
  EXPECT_EQ(train.exit_code, 0) << train.out << train.err;

  const std::string audit_dir = (state_ / "audit").string();
  CmdResult verify = Vigil("audit verify " + audit_dir);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  CmdResult show = Vigil("audit show " + audit_dir + " --type adjudication,access-grant --json");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  int adjudications = 0, grants = 0;
  std::istringstream lines(show.out);
  for (std::string line; std::getline(lines, line);) {
    const json r = json::parse(line);
    (r["type"] == "adjudication" ? adjudications : grants) += 1;
  }
  EXPECT_EQ(adjudications, 8);
  EXPECT_EQ(grants, 4);  // one from the CLI, three through the API
}

TEST_F(HubCliTest, BadFlagsAndConfigsExitTwoNamingTheInput) {
  CmdResult role = Vigil("hub token --state-dir " + state_.string() + " --role root --subject x");
  EXPECT_EQ(role.exit_code, 2);
  EXPECT_NE(role.err.find("--role"), std::string::npos);
  CmdResult ttl =
      Vigil("hub token --state-dir " + state_.string() + " --role viewer --subject x --ttl 90d");
  EXPECT_EQ(ttl.exit_code, 2);
  EXPECT_NE(ttl.err.find("--ttl"), std::string::npos);
  const fs::path config = dir_ / "hub.yaml";
  std::ofstream(config) << "listen: 127.0.0.1:0\nincidents:\n  window: soon\n";
  CmdResult bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("hub.yaml:3:11: incidents.window"), std::string::npos) << bad.err;
  std::ofstream(config) << "listen: 127.0.0.1:0\ncolour: blue\n";
  bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("colour: unknown key"), std::string::npos) << bad.err;
  // A trusted EK CA bundle without a certificate, and a renewal period that is not a duration.
  std::ofstream(dir_ / "ek-ca.pem") << "not a certificate\n";
  std::ofstream(config) << "listen: 127.0.0.1:0\nstate_dir: " << state_.string()
                        << "\nfleet:\n  attestation_ek_ca: ek-ca.pem\n";
  bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find((dir_ / "ek-ca.pem").string() + ": no PEM certificate in the EK CA bundle"),
            std::string::npos)
      << bad.err;
  // EK CRLs: they need the EK CA bundle, and a file without a CRL is refused naming it.
  std::ofstream(config) << "listen: 127.0.0.1:0\nstate_dir: " << state_.string()
                        << "\nfleet:\n  attestation_ek_crl: ek-ca.pem\n";
  bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("fleet.attestation_ek_crl needs fleet.attestation_ek_ca"),
            std::string::npos)
      << bad.err;
  const std::string ca_pem = (dir_ / "real-ca.pem").string();
  ASSERT_EQ(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                         "-subj /CN=ek-ca -days 1 -keyout " + (dir_ / "ca.key").string() +
                         " -out " + ca_pem + " >/dev/null 2>&1").c_str()),
            0);
  std::ofstream(config) << "listen: 127.0.0.1:0\nstate_dir: " << state_.string()
                        << "\nfleet:\n  attestation_ek_ca: real-ca.pem\n  attestation_ek_crl: "
                           "ek-ca.pem\n";
  bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find((dir_ / "ek-ca.pem").string() + ": not a PEM or DER CRL"),
            std::string::npos)
      << bad.err;
  std::ofstream(config) << "listen: 127.0.0.1:0\nfleet:\n  requote: often\n";
  bad = Vigil("hub --config " + config.string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("fleet.requote"), std::string::npos) << bad.err;
  CmdResult help = Vigil("hub --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("ingest"), std::string::npos);
  EXPECT_NE(help.out.find("token"), std::string::npos);
}

}  // namespace
