// Signed distribution end to end, as root: a `vigil hub` that trusts two keys and two live
// `vigil agent`s (groups canary and default) that trust only one. An admin pushes a signed policy
// with `vigil hub push` and rolls it out to the canary group: the canary agent verifies and
// applies it, the other does not get it; after `vigil hub rollout promote` both run it. A policy
// signed by the key the agents do not trust is refused by the canary agent, which keeps the
// policy it runs, and the refusal is visible at the hub. Tokens of the wrong role are refused.
// The hub requires attestation for enforce mode: the enforce-mode agent, which has no TPM here,
// stays in monitor mode and records why. A gate model is rolled out the same way, reloaded and
// measured into the TPM (swtpm), and a tampered one refused.

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../unit/govern/swtpm.h"
#include "vigil_cli.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::ReadAll;
using vigil::e2e::RunVigil;
using vigil::e2e::Spawn;
using vigil::e2e::WaitFor;

constexpr char kPolicyV1[] =
    "- rule: Etc passwd read\n  desc: d\n  condition: evt.type in (open, openat) and fd.name = "
    "/etc/passwd\n  output: passwd read by %proc.name\n  priority: NOTICE\n";
constexpr char kPolicyV2[] =
    "- rule: Etc shadow read\n  desc: d\n  condition: evt.type in (open, openat) and fd.name = "
    "/etc/shadow\n  output: shadow read by %proc.name\n  priority: WARNING\n";
constexpr char kPolicyV3[] =
    "- rule: Etc group read\n  desc: d\n  condition: evt.type in (open, openat) and fd.name = "
    "/etc/group\n  output: group read by %proc.name\n  priority: WARNING\n";

// The SHA-256 (hex) of a file, as sha256sum prints it ("" when it cannot be read).
std::string Sha256OfFile(const fs::path& p) {
  FILE* f = popen(("sha256sum '" + p.string() + "' 2>/dev/null").c_str(), "r");
  if (f == nullptr) return "";
  char hex[65] = {};
  const size_t n = fread(hex, 1, 64, f);
  pclose(f);
  return n == 64 ? std::string(hex, 64) : "";
}

class FleetE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the eBPF agent needs root";
    if (!fs::exists("/sys/kernel/btf/vmlinux")) GTEST_SKIP() << "the kernel has no BTF";
    dir_ = fs::temp_directory_path() / ("vigil-fleet-e2e-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cli");
  }
  void TearDown() override {
    for (pid_t& p : agents_) {
      if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
    }
    if (hub_ > 0) vigil::e2e::StopVigil(hub_);
    if (gated_mounted_) umount2((dir_ / "gated").c_str(), MNT_DETACH);
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  vigil::e2e::CmdResult Vigil(const std::string& args) { return RunVigil(dir_ / "cli", args); }
  std::string Token(const std::string& role, const std::string& subject) {
    vigil::e2e::CmdResult r = Vigil("hub token --state-dir " + (dir_ / "hub").string() +
                                    " --role " + role + " --subject " + subject + " --ttl 1h");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }
  // A policy file signed with the key in `keys`.
  fs::path Signed(const std::string& name, const std::string& text, const fs::path& keys) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    vigil::e2e::CmdResult r =
        Vigil("policy sign " + p.string() + " --key-dir " + keys.string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return p;
  }
  // The agent's token is made before the hub starts (`vigil hub token` needs the hub stopped).
  void MakeAgentToken(const std::string& host) {
    fs::create_directories(dir_ / host);
    std::ofstream(dir_ / host / "agent.token") << Token("agent", host) << "\n";
  }
  // `enforce`: --mode enforce with enforce_requires_hub (its first policy signed, as enforce
  // mode needs).
  pid_t StartAgent(const std::string& host, const std::string& group, int port, bool enforce) {
    const fs::path home = dir_ / host;
    const fs::path policy = home / "policy.yaml";
    std::ofstream(policy) << kPolicyV1;
    if (enforce) {
      vigil::e2e::CmdResult r = Vigil("policy sign " + policy.string() + " --key-dir " +
                                      (dir_ / "keys").string());
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    std::ofstream(home / "vigil.yaml")
        << "host: " << host << "\nagent:\n  learn: 2s\n  events: [open]\n"
        << "metrics:\n  enabled: false\n"
        << "trusted_keys: [" << (dir_ / "keys" / "vigil.pub").string() << "]\n"
        << "policy:\n  files: [" << policy.string() << "]\n"
        << "sinks:\n  - type: hub\n    url: http://127.0.0.1:" << port << "\n"
        << "    token_file: " << (home / "agent.token").string() << "\n"
        << "    group: " << group << "\n    heartbeat: 1s\n    drain: 1s\n"
        << "    policy_file: " << policy.string() << "\n"
        << "    enforce_requires_hub: " << (enforce ? "true" : "false") << "\n";
    return Spawn({VIGIL_BINARY, "agent", "--config", (home / "vigil.yaml").string(),
                  "--state-dir", home.string(), "--relearn", "--duration", "120s", "--quiet",
                  "--mode", enforce ? "enforce" : "monitor"},
                 home / "agent.out", home / "agent.err");
  }
  // Starts `vigil hub --config CONFIG` with its state in dir_/hub; its port (-1 when it did not
  // start, with a test failure).
  int StartHub(const fs::path& config) {
    vigil::e2e::Background hub = vigil::e2e::StartVigil(
        {"hub", "--config", config.string(), "--state-dir", (dir_ / "hub").string(), "--listen",
         "127.0.0.1:0", "--json"},
        dir_ / "hub.out", dir_ / "hub.err");
    EXPECT_EQ(hub.error, "");
    if (!hub.error.empty()) return -1;
    hub_ = hub.pid;
    return json::parse(hub.ready_line)["port"];
  }
  // The admin token of dir_/admin.token as request headers.
  httplib::Headers AdminHeaders() {
    const std::string token = ReadAll(dir_ / "admin.token");
    return {{"Authorization", "Bearer " + token.substr(0, token.size() - 1)}};
  }
  json AgentAtHub(httplib::Client& http, const httplib::Headers& admin, const std::string& host) {
    auto r = http.Get("/v1/agents", admin);
    if (!r || r->status != 200) {
      last_error_ = r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error());
      return nullptr;
    }
    const json body = json::parse(r->body);
    for (const json& a : body["agents"]) {
      if (a["host"] == host) return a;
    }
    last_error_ = "not among " + r->body;
    return nullptr;
  }
  std::string AppliedDigest(httplib::Client& http, const httplib::Headers& admin,
                            const std::string& host) {
    const json a = AgentAtHub(http, admin, host);
    if (!a.is_object() || !a.contains("policy") || !a["policy"].is_object()) return "";
    return a["policy"].value("digest", "");
  }

  // A tmpfs at dir_/gated for an agent's gate to watch (unmounted at TearDown); "" on failure.
  fs::path MountGated() {
    const fs::path gated = dir_ / "gated";
    fs::create_directories(gated);
    if (mount("tmpfs", gated.c_str(), "tmpfs", 0, "size=4m") != 0) {
      ADD_FAILURE() << "mounting a tmpfs on " << gated << ": " << std::strerror(errno);
      return "";
    }
    gated_mounted_ = true;
    return gated;
  }
  // Starts `vigil agent` as host web-1 (group canary, home/vigil.yaml, stderr home/agent.err)
  // whose fanotify gate watches `gated` (`gate`: more lines of agent.gate, indented by four
  // spaces) and whose hub sink (the hub on `port`) installs gate models as `model`; `extra`: more
  // top-level config.
  pid_t StartGateAgent(const fs::path& home, const fs::path& gated, const std::string& gate,
                       const fs::path& model, int port, const std::string& extra = "") {
    const fs::path config = home / "vigil.yaml";
    std::ofstream(config) << "host: web-1\nstate_dir: " << home.string() << "\n"
                          << "agent:\n  learn: 2s\n  events: [open]\n  gate:\n    watch: ["
                          << gated.string() << "]\n"
                          << gate << "metrics:\n  enabled: false\n"
                          << "trusted_keys: [" << (dir_ / "keys" / "vigil.pub").string() << "]\n"
                          << extra << "sinks:\n  - type: hub\n    url: http://127.0.0.1:" << port
                          << "\n    token_file: " << (home / "agent.token").string() << "\n"
                          << "    group: canary\n    heartbeat: 1s\n    drain: 1s\n"
                          << "    model_file: " << model.string() << "\n";
    return Spawn({VIGIL_BINARY, "agent", "--config", config.string(), "--relearn", "--duration",
                  "120s", "--quiet"},
                 home / "agent.out", home / "agent.err");
  }
  // Stops agents_[0] (home: its state) with SIGTERM, which must end it with status 0, and checks
  // that its audit log's model-change records hold each of `wants`.
  void StopAgentExpectingModelChanges(const fs::path& home, const std::vector<std::string>& wants) {
    kill(agents_[0], SIGTERM);
    int status = 0;
    ASSERT_EQ(waitpid(agents_[0], &status, 0), agents_[0]);
    agents_[0] = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadAll(home / "agent.err");
    vigil::e2e::CmdResult changes =
        Vigil("audit show " + (home / "audit").string() + " --type model-change --json");
    ASSERT_EQ(changes.exit_code, 0) << changes.err;
    for (const std::string& want : wants) {
      EXPECT_NE(changes.out.find(want), std::string::npos) << want << "\n" << changes.out;
    }
  }
  // A gate model of version `version` (name "gate") trained on gated calls of a program "tool"
  // (execve 59, then openats 257), signed with the key in `keys`.
  fs::path TrainGateModel(const std::string& version, const fs::path& keys) {
    const fs::path calls = dir_ / "calls.jsonl";
    if (!fs::exists(calls)) {
      vigil::e2e::WriteSyscallStreams(calls, "tool", 12, {59, 257, 257, 257}, 1);
    }
    const fs::path out = dir_ / ("gate-v" + version + ".vgm");
    vigil::e2e::CmdResult r = Vigil("train --model-type sequence --dataset jsonl --data " +
                                    calls.string() + " --order 3 --name gate --model-version " +
                                    version + " --out " + out.string());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = Vigil("model sign " + out.string() + " --key-dir " + keys.string());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return out;
  }

  fs::path dir_;
  bool gated_mounted_ = false;
  std::string last_error_;  // of the last GET /v1/agents that failed
  pid_t hub_ = -1;
  pid_t agents_[2] = {-1, -1};
};

TEST_F(FleetE2eTest, CanaryFirstThenAllAndAnUntrustedPolicyIsRefusedAtTheAgent) {
  // Two keys: the agents trust "keys" only; the hub trusts both.
  ASSERT_EQ(Vigil("keys init --dir " + (dir_ / "keys").string()).exit_code, 0);
  ASSERT_EQ(Vigil("keys init --dir " + (dir_ / "other-keys").string()).exit_code, 0);
  const fs::path hub_config = dir_ / "hub.yaml";
  std::ofstream(hub_config) << "fleet:\n  require_attestation: true\n  trusted_keys:\n    - "
                            << (dir_ / "keys" / "vigil.pub").string() << "\n    - "
                            << (dir_ / "other-keys" / "vigil.pub").string() << "\n";
  const std::string hub_state = (dir_ / "hub").string();
  std::ofstream(dir_ / "admin.token") << Token("admin", "root") << "\n";
  const std::string viewer = Token("viewer", "web-1");
  MakeAgentToken("web-1");
  MakeAgentToken("db-1");
  const int port = StartHub(hub_config);
  ASSERT_GT(port, 0);
  const std::string server = "http://127.0.0.1:" + std::to_string(port);
  httplib::Client http("127.0.0.1", port);
  const httplib::Headers admin = AdminHeaders();

  // A token of the wrong role cannot register an agent.
  auto wrong = http.Post("/v1/agents/register", {{"Authorization", "Bearer " + viewer}},
                         json{{"host", "web-1"}, {"mode", "monitor"}, {"vigil_version", "x"}}.dump(),
                         "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 403) << wrong->body;

  agents_[0] = StartAgent("web-1", "canary", port, false);
  agents_[1] = StartAgent("db-1", "default", port, true);
  for (const char* host : {"web-1", "db-1"}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          const json a = AgentAtHub(http, admin, host);
          return a.is_object() && a.value("registered", false) &&
                 a["health"].is_object();  // registered, and a heartbeat came
        },
        std::chrono::seconds(30)))
        << host << ": " << AgentAtHub(http, admin, host).dump() << " " << last_error_ << "\n"
        << ReadAll(dir_ / host / "agent.err");
  }
  EXPECT_EQ(AgentAtHub(http, admin, "web-1")["group"], "canary");
  const std::string v1_digest = AppliedDigest(http, admin, "db-1");
  ASSERT_EQ(v1_digest.size(), 64u);

  // Push and roll out to the canary group.
  const fs::path v2 = Signed("v2.yaml", kPolicyV2, dir_ / "keys");
  const std::string client = " --server " + server + " --token-file " +
                             (dir_ / "admin.token").string() + " --json";
  vigil::e2e::CmdResult pushed = Vigil("hub push " + v2.string() + " --kind policy" + client);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  const std::string digest = json::parse(pushed.out)["artifact"]["digest"];
  vigil::e2e::CmdResult started =
      Vigil("hub rollout start --digest sha256:" + digest + " --group canary" + client);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const int64_t rollout = json::parse(started.out)["rollout"]["id"];
  ASSERT_TRUE(WaitFor([&] { return AppliedDigest(http, admin, "web-1") == digest; },
                      std::chrono::seconds(20)))
      << ReadAll(dir_ / "web-1" / "agent.err");
  // The other group's agent has heartbeated since and still runs its own policy.
  const int64_t since = AgentAtHub(http, admin, "web-1")["last_heartbeat_ms"];
  ASSERT_TRUE(WaitFor(
      [&] { return AgentAtHub(http, admin, "db-1")["last_heartbeat_ms"].get<int64_t>() > since; },
      std::chrono::seconds(10)));
  EXPECT_EQ(AppliedDigest(http, admin, "db-1"), v1_digest);
  EXPECT_EQ(ReadAll(dir_ / "db-1" / "policy.yaml"), kPolicyV1);
  EXPECT_EQ(ReadAll(dir_ / "web-1" / "policy.yaml"), kPolicyV2);

  // Signed by a key the hub trusts but the agents do not: refused at the canary agent.
  const fs::path v3 = Signed("v3.yaml", kPolicyV3, dir_ / "other-keys");
  vigil::e2e::CmdResult pushed3 = Vigil("hub push " + v3.string() + " --kind policy" + client);
  ASSERT_EQ(pushed3.exit_code, 0) << pushed3.err;
  const std::string digest3 = json::parse(pushed3.out)["artifact"]["digest"];
  ASSERT_EQ(Vigil("hub rollout start --digest " + digest3 + " --group canary" + client).exit_code,
            0);
  json refusal;
  ASSERT_TRUE(WaitFor(
      [&] {
        refusal = AgentAtHub(http, admin, "web-1")["refusal"];
        return refusal.is_object() && refusal["digest"] == digest3;
      },
      std::chrono::seconds(20)))
      << ReadAll(dir_ / "web-1" / "agent.err");
  EXPECT_NE(refusal["reason"].get<std::string>().find("unknown-key"), std::string::npos)
      << refusal.dump();
  EXPECT_EQ(AppliedDigest(http, admin, "web-1"), digest);  // keeps v2
  EXPECT_EQ(ReadAll(dir_ / "web-1" / "policy.yaml"), kPolicyV2);

  // Promote the first rollout: every agent runs v2.
  vigil::e2e::CmdResult promoted =
      Vigil("hub rollout promote " + std::to_string(rollout) + client);
  ASSERT_EQ(promoted.exit_code, 0) << promoted.err;
  ASSERT_TRUE(WaitFor([&] { return AppliedDigest(http, admin, "db-1") == digest; },
                      std::chrono::seconds(20)))
      << ReadAll(dir_ / "db-1" / "agent.err");
  vigil::e2e::CmdResult list = Vigil("hub rollout list" + client);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(json::parse(list.out)["rollouts"].size(), 2u);

  for (pid_t& p : agents_) {
    kill(p, SIGTERM);
    int status = 0;
    ASSERT_EQ(waitpid(p, &status, 0), p);
    p = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // Both agents audited what they applied; the canary also what it refused.
  vigil::e2e::CmdResult a1 = Vigil("audit show " + (dir_ / "web-1" / "audit").string() +
                                   " --type policy-change --json");
  ASSERT_EQ(a1.exit_code, 0) << a1.err;
  EXPECT_NE(a1.out.find("hub-applied"), std::string::npos) << a1.out;
  EXPECT_NE(a1.out.find("hub-refused"), std::string::npos) << a1.out;
  EXPECT_NE(a1.out.find(digest3), std::string::npos) << a1.out;
  vigil::e2e::CmdResult a2 = Vigil("audit show " + (dir_ / "db-1" / "audit").string() +
                                   " --type policy-change --json");
  ASSERT_EQ(a2.exit_code, 0) << a2.err;
  EXPECT_NE(a2.out.find("hub-applied"), std::string::npos) << a2.out;
  // db-1 wants enforce mode but needs the hub's leave, which requires a verified quote: it
  // registered without one (no TPM), so it stayed in monitor mode and recorded why.
  vigil::e2e::CmdResult m2 = Vigil("audit show " + (dir_ / "db-1" / "audit").string() +
                                   " --type mode-change --json");
  ASSERT_EQ(m2.exit_code, 0) << m2.err;
  EXPECT_NE(m2.out.find("enforce mode waits for the hub"), std::string::npos) << m2.out;
  EXPECT_NE(m2.out.find("without a quote"), std::string::npos) << m2.out;
  EXPECT_EQ(m2.out.find(R"("to":"enforce")"), std::string::npos) << m2.out;
  // The hub audited the uploads, rollouts and promotion; its log verifies.
  EXPECT_EQ(vigil::e2e::StopVigil(hub_), 0);
  vigil::e2e::CmdResult h = Vigil("audit show " + hub_state + "/audit --json");
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.out.find("rollout-promoted"), std::string::npos) << h.out;
  EXPECT_EQ(Vigil("audit verify " + hub_state + "/audit").exit_code, 0);
}

// A gate model rolled out by the hub. The agent's fanotify gate serves a signed system-call
// sequence model (agent.gate.model, which is the hub sink's model_file) and the agent measures
// what it loads into the TPM (swtpm, when it runs here). An admin pushes a newer signed gate model
// and rolls it out to the agent's group: the agent verifies, installs and reloads it, and its
// heartbeat reports the new model. A model signed by a key the agent does not trust is refused,
// and the refusal is at the hub; a SIGHUP with a file that does not load keeps the model in force
// and names the file. `vigil attest verify` accepts the agent's measurements with the binary, the
// baseline and both models allowed, and refuses them without the rolled-out model.
TEST_F(FleetE2eTest, AGateModelIsRolledOutReloadedAndMeasuredAndAnUntrustedOneRefused) {
  ASSERT_EQ(Vigil("keys init --dir " + (dir_ / "keys").string()).exit_code, 0);
  ASSERT_EQ(Vigil("keys init --dir " + (dir_ / "other-keys").string()).exit_code, 0);
  const fs::path home = dir_ / "web-1";
  const fs::path gated = MountGated();
  ASSERT_FALSE(gated.empty());
  vigil::govern::testing::Swtpm tpm;
  if (!tpm.ok()) std::fprintf(stderr, "note: TPM part skipped: %s\n", tpm.why().c_str());

  // Gate models trained on gated calls, versions 1, 2 and 3.
  const fs::path v1 = TrainGateModel("1", dir_ / "keys"), v2 = TrainGateModel("2", dir_ / "keys");
  const fs::path v3 = TrainGateModel("3", dir_ / "other-keys");
  const fs::path model = home / "gate.vgm";
  fs::create_directories(home);
  fs::copy_file(v1, model);
  fs::copy_file(v1.string() + ".minisig", model.string() + ".minisig");

  const fs::path hub_config = dir_ / "hub.yaml";
  std::ofstream(hub_config) << "fleet:\n  trusted_keys:\n    - "
                            << (dir_ / "keys" / "vigil.pub").string() << "\n    - "
                            << (dir_ / "other-keys" / "vigil.pub").string() << "\n";
  std::ofstream(dir_ / "admin.token") << Token("admin", "root") << "\n";
  MakeAgentToken("web-1");
  const int port = StartHub(hub_config);
  ASSERT_GT(port, 0);
  const std::string client = " --server http://127.0.0.1:" + std::to_string(port) +
                             " --token-file " + (dir_ / "admin.token").string() + " --json";
  httplib::Client http("127.0.0.1", port);
  const httplib::Headers admin = AdminHeaders();

  const fs::path config = home / "vigil.yaml";
  const fs::path err = home / "agent.err";
  agents_[0] =
      StartGateAgent(home, gated, "    model: " + model.string() + "\n", model, port,
                     tpm.ok() ? "attestation:\n  tcti: " + tpm.tcti() + "\n" : std::string());
  auto model_at_hub = [&] {
    const json a = AgentAtHub(http, admin, "web-1");
    return a.is_object() && a["model"].is_object() ? a["model"] : json::object();
  };
  const std::string d1 = Sha256OfFile(v1), d2 = Sha256OfFile(v2);
  ASSERT_TRUE(WaitFor([&] { return model_at_hub().value("digest", "") == d1; },
                      std::chrono::seconds(30)))
      << model_at_hub().dump() << " " << last_error_ << "\n" << ReadAll(err);
  EXPECT_EQ(model_at_hub()["version"], "gate 1");

  // Rolled out to the agent's group: installed, reloaded, reported.
  vigil::e2e::CmdResult pushed = Vigil("hub push " + v2.string() + " --kind model" + client);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  ASSERT_EQ(json::parse(pushed.out)["artifact"]["digest"], d2);
  ASSERT_EQ(Vigil("hub rollout start --digest " + d2 + " --group canary" + client).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return model_at_hub().value("digest", "") == d2; },
                      std::chrono::seconds(20)))
      << model_at_hub().dump() << "\n" << ReadAll(err);
  EXPECT_EQ(model_at_hub()["version"], "gate 2");
  EXPECT_EQ(ReadAll(model), ReadAll(v2));
  EXPECT_NE(ReadAll(err).find("model rolled out by the hub: gate model gate 2 in force"),
            std::string::npos)
      << ReadAll(err);

  // Signed by a key the hub trusts but the agent does not: refused, version 2 stays.
  vigil::e2e::CmdResult pushed3 = Vigil("hub push " + v3.string() + " --kind model" + client);
  ASSERT_EQ(pushed3.exit_code, 0) << pushed3.err;
  const std::string d3 = json::parse(pushed3.out)["artifact"]["digest"];
  ASSERT_EQ(Vigil("hub rollout start --digest " + d3 + " --group canary" + client).exit_code, 0);
  json refusal;
  ASSERT_TRUE(WaitFor(
      [&] {
        const json a = AgentAtHub(http, admin, "web-1");
        refusal = a.is_object() ? a["refusal"] : json();
        return refusal.is_object() && refusal["digest"] == d3;
      },
      std::chrono::seconds(20)))
      << ReadAll(err);
  EXPECT_EQ(refusal["kind"], "model");
  EXPECT_NE(refusal["reason"].get<std::string>().find("unknown-key"), std::string::npos)
      << refusal.dump();
  EXPECT_EQ(model_at_hub()["digest"], d2);
  EXPECT_EQ(ReadAll(model), ReadAll(v2));

  // A SIGHUP with a file that does not load: the error names it; version 2 stays in force.
  ASSERT_TRUE(WaitFor([&] { return ReadAll(err).find("detection started") != std::string::npos; },
                      std::chrono::seconds(30)))
      << ReadAll(err);
  std::ofstream(model, std::ios::trunc) << "not a model\n";
  kill(agents_[0], SIGHUP);
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll(err).find("SIGHUP: gate model not reloaded, gate 2 stays in force: "
                                 "agent.gate.model " + model.string()) != std::string::npos;
      },
      std::chrono::seconds(10)))
      << ReadAll(err);
  fs::copy_file(v2, model, fs::copy_options::overwrite_existing);
  StopAgentExpectingModelChanges(home, {R"("action":"loaded")", R"("action":"reloaded")",
                                        R"("action":"hub-applied")", R"("action":"hub-refused")",
                                        R"("action":"refused")", d2, d3});

  if (!tpm.ok()) return;
  // Measured: the binary at start, the baseline learned, model v1 at start and v2 as it came in
  // force (the file that did not load was not). Verified with exactly those digests allowed.
  const std::string events = ReadAll(home / "attest" / "events.json");
  EXPECT_NE(events.find(d1), std::string::npos) << events;
  EXPECT_NE(events.find(d2), std::string::npos) << events;
  const fs::path quote = dir_ / "quote.json", allow = dir_ / "allow.txt";
  const std::string nonce = "a11ce5eeda11ce5eed";
  vigil::e2e::CmdResult quoted = Vigil("attest quote --nonce " + nonce + " --out " +
                                       quote.string() + " --config " + config.string());
  ASSERT_EQ(quoted.exit_code, 0) << quoted.out << quoted.err;
  auto verify = [&](const std::vector<fs::path>& allowed) {
    std::ofstream list(allow, std::ios::trunc);
    for (const fs::path& f : allowed) list << Sha256OfFile(f) << "  " << f << "\n";
    list.close();
    return Vigil("attest verify " + quote.string() + " --nonce " + nonce + " --allow " +
                 allow.string());
  };
  const fs::path baseline = home / "models" / "baseline.vgm";
  vigil::e2e::CmdResult ok = verify({VIGIL_BINARY, baseline, v1, v2});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err << events;
  vigil::e2e::CmdResult without = verify({VIGIL_BINARY, baseline, v1});
  EXPECT_EQ(without.exit_code, 1) << without.out << without.err;
  EXPECT_NE((without.out + without.err).find(d2), std::string::npos) << without.out << without.err;
}

// A gate that starts without a model takes the first one the hub rolls out. The agent's fanotify
// gate has no model (agent.gate.model left out; the hub sink's model_file is not there yet), and
// its rule needs one (ml.score): an exec of the gated program is decided without a match. An
// admin pushes a signed gate model to the agent's group: the agent verifies and installs it, the
// gate starts serving it (model-change "added"), the hub sees the model in force, and the same
// exec is now scored: a decision record of the gate's rule carrying the model's verdict.
TEST_F(FleetE2eTest, AGateStartedWithoutAModelServesTheFirstOneTheHubRollsOut) {
  ASSERT_EQ(Vigil("keys init --dir " + (dir_ / "keys").string()).exit_code, 0);
  const fs::path home = dir_ / "web-1";
  const fs::path gated = MountGated();
  ASSERT_FALSE(gated.empty());
  const fs::path tool = gated / "tool";
  fs::copy_file("/bin/true", tool);
  fs::permissions(tool, fs::perms::owner_all);
  const fs::path v1 = TrainGateModel("1", dir_ / "keys");

  std::ofstream(dir_ / "hub.yaml") << "fleet:\n  trusted_keys: ["
                                   << (dir_ / "keys" / "vigil.pub").string() << "]\n";
  std::ofstream(dir_ / "admin.token") << Token("admin", "root") << "\n";
  MakeAgentToken("web-1");
  const int port = StartHub(dir_ / "hub.yaml");
  ASSERT_GT(port, 0);
  const std::string client = " --server http://127.0.0.1:" + std::to_string(port) +
                             " --token-file " + (dir_ / "admin.token").string() + " --json";
  httplib::Client http("127.0.0.1", port);
  const httplib::Headers admin = AdminHeaders();

  const fs::path rules = home / "gate-rules.yaml";
  std::ofstream(rules) << "- rule: Scored tool\n  desc: an exec the gate model scored\n"
                          "  condition: evt.type = execve and proc.exepath = "
                       << tool.string()
                       << " and ml.score >= 0\n  output: scored %proc.name %ml.score\n"
                          "  priority: WARNING\n  action: {type: deny, mode: enforce, "
                          "fallback: allow}\n";
  const fs::path model = home / "gate.vgm";
  const fs::path err = home / "agent.err";
  agents_[0] = StartGateAgent(
      home, gated, "    policy: [" + rules.string() + "]\n    deadline: 2s\n", model, port);
  ASSERT_TRUE(WaitFor([&] { return AgentAtHub(http, admin, "web-1").is_object(); },
                      std::chrono::seconds(30)))
      << last_error_ << "\n" << ReadAll(err);
  EXPECT_NE(ReadAll(err).find("is not there yet: the gate runs without a model"),
            std::string::npos)
      << ReadAll(err);
  const json before = AgentAtHub(http, admin, "web-1")["model"];
  EXPECT_TRUE(before.is_null() || before.value("digest", "x").empty()) << before.dump();
  // Without a model the rule cannot match: allowed, nothing recorded.
  ASSERT_EQ(std::system(tool.c_str()), 0);

  vigil::e2e::CmdResult pushed = Vigil("hub push " + v1.string() + " --kind model" + client);
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  const std::string d1 = json::parse(pushed.out)["artifact"]["digest"];
  ASSERT_EQ(d1, Sha256OfFile(v1));
  ASSERT_EQ(Vigil("hub rollout start --digest " + d1 + " --group canary" + client).exit_code, 0);
  json at_hub;
  ASSERT_TRUE(WaitFor(
      [&] {
        at_hub = AgentAtHub(http, admin, "web-1");
        return at_hub.is_object() && at_hub["model"].is_object() &&
               at_hub["model"].value("digest", "") == d1;
      },
      std::chrono::seconds(30)))
      << at_hub.dump() << "\n" << ReadAll(err);
  EXPECT_EQ(at_hub["model"]["version"], "gate 1");
  EXPECT_EQ(ReadAll(model), ReadAll(v1));
  EXPECT_NE(ReadAll(err).find("model rolled out by the hub: gate model gate 1 in force"),
            std::string::npos)
      << ReadAll(err);
  // Now scored: the rule matches (monitor mode: allowed, recorded as would-deny).
  ASSERT_EQ(std::system(tool.c_str()), 0);

  StopAgentExpectingModelChanges(
      home, {R"("action":"awaited")", R"("action":"added")", R"("action":"hub-applied")", d1});
  vigil::e2e::CmdResult decisions =
      Vigil("audit show " + (home / "audit").string() + " --type decision --json");
  ASSERT_EQ(decisions.exit_code, 0) << decisions.err;
  // Exactly one: the exec after the model came (the one before it matched nothing).
  size_t scored = 0;
  for (size_t at = decisions.out.find("Scored tool"); at != std::string::npos;
       at = decisions.out.find("Scored tool", at + 1)) {
    ++scored;
  }
  EXPECT_EQ(scored, 1u) << decisions.out;
  EXPECT_NE(decisions.out.find(R"("gate":"fanotify")"), std::string::npos) << decisions.out;
  EXPECT_NE(decisions.out.find(R"("name":"gate")"), std::string::npos) << decisions.out;
}

}  // namespace
