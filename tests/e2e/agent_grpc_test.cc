// A live `vigil agent` talking to `vigil hub` over gRPC with mTLS only, as root: the agent is
// enrolled with a one-time token and the CA pinned by fingerprint (a wrong pin is refused), runs
// with a grpcs:// hub sink and no token, registers and heartbeats, hands an escalation to the
// hub that an analyst approves over REST (the agent freezes the process), sends its findings
// (incidents at the hub), and applies a signed policy the hub rolls out.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::ReadAll;
using vigil::e2e::SpawnOpener;
using vigil::e2e::WaitFor;

class AgentGrpcE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
    if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
    dir_ = fs::temp_directory_path() / ("vigil-agent-grpc-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cli");
  }
  void TearDown() override {
    for (pid_t p : {agent_, opener_}) {
      if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
    }
    if (hub_ > 0) vigil::e2e::StopVigil(hub_);
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  vigil::e2e::CmdResult Vigil(const std::string& args) {
    return vigil::e2e::RunVigil(dir_ / "cli", args);
  }
  std::string Token(const std::string& role, const std::string& subject) {
    vigil::e2e::CmdResult r = Vigil("hub token --state-dir " + (dir_ / "hub").string() +
                                    " --role " + role + " --subject " + subject + " --ttl 1h");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  fs::path dir_;
  pid_t hub_ = -1, agent_ = -1, opener_ = -1;
};

TEST_F(AgentGrpcE2eTest, AnEnrolledAgentRegistersEscalatesReportsAndTakesARolloutOverGrpc) {
  const fs::path keys = dir_ / "keys", trigger = dir_ / "escalate-me";
  std::ofstream(trigger) << "x";
  ASSERT_EQ(Vigil("keys init --dir " + keys.string()).exit_code, 0);
  const fs::path rules = dir_ / "rules.yaml";
  std::ofstream(rules) << "- rule: Escalate trigger\n  desc: d\n  condition: evt.type in (open, "
                          "openat) and fd.name = "
                       << trigger.string()
                       << "\n  output: trigger opened by %proc.name\n  priority: WARNING\n"
                          "  action: {type: escalate, mode: enforce, proposed: freeze, timeout: "
                          "120s, fallback: alert}\n";
  ASSERT_EQ(Vigil("policy sign " + rules.string() + " --key-dir " + keys.string()).exit_code, 0);

  const std::string hub_state = (dir_ / "hub").string();
  std::ofstream(dir_ / "admin.token") << Token("admin", "root") << "\n";
  const std::string analyst = Token("analyst", "ana");
  // Agents' certificates live 60 s (+ 5 min backdated): the agent renews 15 s after each issue.
  std::ofstream(dir_ / "hub.yaml") << "agents:\n  listen: 127.0.0.1:0\n  cert_ttl: 60s\n"
                                      "fleet:\n  trusted_keys: ["
                                   << (keys / "vigil.pub").string() << "]\n";
  vigil::e2e::Background hub =
      vigil::e2e::StartVigil({"hub", "--config", (dir_ / "hub.yaml").string(), "--state-dir",
                              hub_state, "--listen", "127.0.0.1:0", "--json"},
                             dir_ / "hub.out", dir_ / "hub.err");
  ASSERT_EQ(hub.error, "");
  hub_ = hub.pid;
  const json ready = json::parse(hub.ready_line);
  const int port = ready["port"];
  const std::string agents = "127.0.0.1:" + std::to_string(ready["agents"]["port"].get<int>());
  httplib::Client http("127.0.0.1", port);
  const httplib::Headers as_analyst{{"Authorization", "Bearer " + analyst}};
  std::string admin = ReadAll(dir_ / "admin.token");
  admin.pop_back();
  const httplib::Headers as_admin{{"Authorization", "Bearer " + admin}};

  // Enrolment with the CA pinned by fingerprint: a wrong pin stops before the token is sent.
  vigil::e2e::CmdResult t = Vigil("hub enrol-token create --state-dir " + hub_state + " --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const json issued = json::parse(t.out);
  const std::string token = issued["token"], pin = issued["ca_sha256"];
  ASSERT_EQ(pin.size(), 64u);
  const std::string wrong = std::string(pin[0] == '0' ? "1" : "0") + pin.substr(1);
  vigil::e2e::CmdResult bad =
      Vigil("agent enrol --hub " + agents + " --token " + token + " --ca-sha256 " + wrong +
            " --dir " + (dir_ / "bad-cert").string() + " --host web-1");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("no certificate it presented has SHA-256"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad-cert" / "agent.key"));
  const fs::path cert = dir_ / "cert";
  vigil::e2e::CmdResult e =
      Vigil("agent enrol --hub " + agents + " --token " + token + " --ca-sha256 " + pin +
            " --dir " + cert.string() + " --host web-1 --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(ReadAll(cert / "ca.pem"), ReadAll(fs::path(hub_state) / "ca" / "ca.pem"));

  // The agent: a grpcs:// hub sink with the enrolled certificate, no token.
  std::ofstream(dir_ / "vigil.yaml")
      << "host: web-1\nagent:\n  learn: 2s\n  events: [open]\nmetrics:\n  enabled: false\n"
      << "trusted_keys: [" << (keys / "vigil.pub").string() << "]\n"
      << "policy:\n  mode: enforce\n  stage: enforce-all\n  files: [" << rules.string() << "]\n"
      << "sinks:\n  - type: hub\n    url: grpcs://" << agents << "\n"
      << "    cert: " << (cert / "agent.pem").string() << "\n"
      << "    key: " << (cert / "agent.key").string() << "\n"
      << "    ca: " << (cert / "ca.pem").string() << "\n"
      << "    heartbeat: 1s\n    drain: 5s\n    renew_at: 0.875\n    policy_file: "
      << rules.string() << "\n";
  const std::string enrolled_cert = ReadAll(cert / "agent.pem");
  const fs::path err = dir_ / "agent.err";
  agent_ = vigil::e2e::Spawn(
      {VIGIL_BINARY, "agent", "--config", (dir_ / "vigil.yaml").string(), "--state-dir",
       dir_.string(), "--mode", "enforce", "--relearn", "--duration", "90s"},
      dir_ / "agent.out", err);
  std::string last_answer;  // of GET /v1/agents, for failure messages
  auto agent_at_hub = [&]() -> json {
    auto r = http.Get("/v1/agents", as_admin);
    last_answer = r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error());
    if (!r || r->status != 200) return nullptr;
    const json body = json::parse(r->body);
    for (const json& a : body["agents"]) {
      if (a["host"] == "web-1") return a;
    }
    return nullptr;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        const json a = agent_at_hub();
        return a.is_object() && a.value("registered", false) && a["health"].is_object();
      },
      std::chrono::seconds(40)))
      << agent_at_hub().dump() << " " << last_answer << "\n"
      << ReadAll(err);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(40)))
      << ReadAll(err);

  // An escalation: the agent asks over gRPC, an analyst approves over REST, the agent freezes.
  opener_ = SpawnOpener(trigger);
  json pending;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = http.Get("/v1/escalations?host=web-1", as_analyst);
        if (!r || r->status != 200) return false;
        pending = json::parse(r->body)["escalations"];
        return pending.size() == 1;
      },
      std::chrono::seconds(30)))
      << ReadAll(err);
  EXPECT_EQ(pending[0]["pid"], opener_);
  auto decided =
      http.Post("/v1/escalations/" + std::to_string(pending[0]["id"].get<int64_t>()) + "/decision",
                as_analyst, json{{"decision", "approve"}}.dump(), "application/json");
  ASSERT_TRUE(decided);
  EXPECT_EQ(decided->status, 200) << decided->body;
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("approved (hub:ana)") != std::string::npos; },
                      std::chrono::seconds(20)))
      << ReadAll(err);
  EXPECT_NE(ReadAll("/proc/" + std::to_string(opener_) + "/cgroup").find("/vigil/"),
            std::string::npos)
      << "the approved freeze was not carried out\n"
      << ReadAll(err);
  // The findings travelled over Ingest: the hub has an incident for web-1.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = http.Get("/v1/incidents?host=web-1", as_analyst);
        return r && r->status == 200 && !json::parse(r->body)["incidents"].empty();
      },
      std::chrono::seconds(30)))
      << ReadAll(err);

  // A signed policy rolled out to the agent's group arrives over FetchArtifact and is applied.
  const fs::path v2 = dir_ / "v2.yaml";
  std::ofstream(v2) << "- rule: Etc shadow read\n  desc: d\n  condition: evt.type in (open, "
                       "openat) and fd.name = /etc/shadow\n  output: shadow read by "
                       "%proc.name\n  priority: WARNING\n";
  ASSERT_EQ(Vigil("policy sign " + v2.string() + " --key-dir " + keys.string()).exit_code, 0);
  const std::string client = " --server http://127.0.0.1:" + std::to_string(port) +
                             " --token-file " + (dir_ / "admin.token").string() + " --json";
  vigil::e2e::CmdResult pushed = Vigil("hub push " + v2.string() + " --kind policy" + client);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  const std::string digest = json::parse(pushed.out)["artifact"]["digest"];
  vigil::e2e::CmdResult started =
      Vigil("hub rollout start --digest " + digest + " --group default" + client);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(WaitFor(
      [&] {
        const json a = agent_at_hub();
        return a.is_object() && a["policy"].is_object() &&
               a["policy"].value("digest", "") == digest;
      },
      std::chrono::seconds(20)))
      << agent_at_hub().dump() << " " << last_answer << "\n"
      << ReadAll(err);
  EXPECT_EQ(ReadAll(rules), ReadAll(v2));

  // The certificate was renewed by the running agent (a new key and certificate on disk), and
  // the agent went on with the new one without a restart: the hub saw it used, which retired
  // the enrolled one, and the agent still heartbeats.
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("hub certificate renewed") !=
                                   std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  EXPECT_NE(ReadAll(cert / "agent.pem"), enrolled_cert);
  auto last_heartbeat = [&]() -> int64_t {
    const json a = agent_at_hub();
    return a.is_object() ? a.value("last_heartbeat_ms", int64_t{0}) : 0;
  };
  const int64_t renewed_heartbeat = last_heartbeat();
  EXPECT_TRUE(WaitFor([&] { return last_heartbeat() > renewed_heartbeat + 1000; },
                      std::chrono::seconds(10)))
      << agent_at_hub().dump() << "\n" << ReadAll(err);
  EXPECT_EQ(ReadAll(err).find("renewal failed"), std::string::npos) << ReadAll(err);

  kill(agent_, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(agent_, &status, 0), agent_);
  agent_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadAll(err);
  // The audit log's checkpoints travelled over the Checkpoint call, each verified by the audit
  // key the agent registered with Register.
  EXPECT_NE(ReadAll(err).find("0 not delivered"), std::string::npos) << ReadAll(err);
  auto checkpoints = http.Get("/v1/agents/web-1/checkpoints", as_admin);
  ASSERT_TRUE(checkpoints);
  ASSERT_EQ(checkpoints->status, 200) << checkpoints->body;
  const json cps = json::parse(checkpoints->body);
  EXPECT_TRUE(cps["audit_key"].is_object()) << checkpoints->body;
  ASSERT_FALSE(cps["checkpoints"].empty()) << checkpoints->body;
  for (const json& c : cps["checkpoints"]) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
  }
  EXPECT_EQ(vigil::e2e::StopVigil(hub_), 0);
  hub_ = -1;
  vigil::e2e::CmdResult show = Vigil("audit show " + hub_state + "/audit");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("agent-enrolled"), std::string::npos);
  EXPECT_NE(show.out.find("agent-cert-renewed"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("agent-cert-superseded"), std::string::npos) << show.out;
  vigil::e2e::CmdResult local = Vigil("audit show " + (dir_ / "audit").string() +
                                      " --type access-grant --json");
  EXPECT_NE(local.out.find("hub-cert-renewed"), std::string::npos) << local.out << local.err;
}

}  // namespace
