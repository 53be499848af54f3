// `vigil agent --nats-audit-key-hub` end to end, as root: a host whose only sink is NATS (no hub
// sink, no fleet link) registers its audit key over a hub link given for that alone, with its
// agent token; its audit checkpoints travel over NATS, and the hub, consuming the stream, verifies
// them by that key. Bad values of the flag stop the agent before it starts, naming the flag.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../unit/pipeline/nats_server.h"
#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;
using vigil::e2e::WaitFor;

class NatsAuditKeyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
    if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
    ASSERT_TRUE(nats_.Start()) << nats_.why();
    dir_ = fs::path(nats_.dir()) / "e2e";
    fs::create_directories(dir_ / "run");
  }
  void TearDown() override {
    if (hub_ > 0) vigil::e2e::StopVigil(hub_);
  }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }
  std::string Token(const std::string& role, const std::string& subject) {
    CmdResult t = Vigil("hub token --state-dir " + (dir_ / "hub").string() + " --role " + role +
                        " --subject " + subject + " --ttl 1h");
    EXPECT_EQ(t.exit_code, 0) << t.err;
    return t.out.substr(0, t.out.find('\n'));
  }

  vigil::nats_testing::NatsServer nats_;
  fs::path dir_;
  pid_t hub_ = -1;
};

TEST_F(NatsAuditKeyE2eTest, ANatsOnlyAgentRegistersItsAuditKeyOverTheHubLinkItIsGiven) {
  // Tokens first (`vigil hub token` reads the hub's key while the hub is stopped).
  fs::create_directories(dir_ / "hub");
  const std::string admin = Token("admin", "root");
  const fs::path home = dir_ / "nats-1";
  fs::create_directories(home);
  const fs::path agent_token = home / "agent.token";
  std::ofstream(agent_token) << Token("agent", "nats-1") << "\n";

  const fs::path hub_config = dir_ / "hub.yaml";
  std::ofstream(hub_config) << "audit:\n  fsync: never\nnats:\n  url: " << nats_.url()
                            << "\n  ack_wait: 5s\n";
  vigil::e2e::Background hub = vigil::e2e::StartVigil(
      {"hub", "--config", hub_config.string(), "--state-dir", (dir_ / "hub").string(),
       "--listen", "127.0.0.1:0", "--json"},
      dir_ / "hub.out", dir_ / "hub.err");
  ASSERT_EQ(hub.error, "");
  hub_ = hub.pid;
  const int port = json::parse(hub.ready_line)["port"];
  const std::string hub_url = "http://127.0.0.1:" + std::to_string(port);

  const fs::path config = home / "vigil.yaml";
  std::ofstream(config) << "host: nats-1\nagent:\n  events: [open]\nmetrics:\n  enabled: false\n";
  auto agent = [&](const std::string& key_hub, const std::string& token_file) {
    std::string args = "agent --config " + config.string() + " --state-dir " + home.string() +
                       " --relearn --learn 1s --duration 4s --quiet --sink nats:" + nats_.url() +
                       " --nats-spool " + (home / "nats-spool").string() +
                       " --nats-drain 10s --nats-audit-key-hub " + key_hub;
    if (!token_file.empty()) args += " --hub-token-file " + token_file;
    return Vigil(args);
  };

  // Bad values: stopped before anything starts, naming the flag.
  CmdResult bad_url = agent("nats://127.0.0.1:4222", agent_token.string());
  EXPECT_EQ(bad_url.exit_code, 2) << bad_url.err;
  EXPECT_NE(bad_url.err.find("--nats-audit-key-hub"), std::string::npos) << bad_url.err;
  CmdResult no_token = agent(hub_url, "");
  EXPECT_EQ(no_token.exit_code, 2) << no_token.err;
  EXPECT_NE(no_token.err.find("--nats-audit-key-hub"), std::string::npos) << no_token.err;

  // The real run: the key goes to the hub over REST, the checkpoints over NATS.
  CmdResult run = agent(hub_url, agent_token.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;

  httplib::Client http("127.0.0.1", port);
  json seen;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = http.Get("/v1/agents/nats-1/checkpoints",
                          {{"Authorization", "Bearer " + admin}});
        if (!r || r->status != 200) return false;
        seen = json::parse(r->body, nullptr, false);
        return seen.is_object() && seen["audit_key"].is_object() &&
               !seen["checkpoints"].empty();
      },
      std::chrono::seconds(20)))
      << seen.dump() << "\n" << run.err << "\n" << ReadAll(dir_ / "hub.err");
  const std::string key_id = seen["audit_key"]["key_id"];
  for (const json& c : seen["checkpoints"]) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
    EXPECT_EQ(c["key_id"], key_id) << c.dump();
  }
  // The agent's log verifies by its host key, the key it signed those checkpoints with.
  CmdResult verify = Vigil("audit verify " + (home / "audit").string() + " --key " +
                           (home / "keys" / "vigil.pub").string());
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // At the hub: the registration is an audit record naming the host.
  EXPECT_EQ(vigil::e2e::StopVigil(hub_), 0);
  hub_ = -1;
  CmdResult grants = Vigil("audit show " + (dir_ / "hub" / "audit").string() +
                           " --type access-grant --json");
  ASSERT_EQ(grants.exit_code, 0) << grants.err;
  EXPECT_NE(grants.out.find(R"("action":"audit-key-registered")"), std::string::npos)
      << grants.out;
  EXPECT_NE(grants.out.find(R"("host":"nats-1")"), std::string::npos) << grants.out;
}

}  // namespace
