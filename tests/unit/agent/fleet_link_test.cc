// The agent's fleet link against a real hub::Server on loopback: registration and heartbeats, a
// signed policy rolled out to a canary group first and to every agent once promoted, verified
// and applied by each agent; an artifact signed by a key the agent does not trust, or altered,
// refused at the agent (its previous policy kept) and the refusal visible at the hub; tokens of
// the wrong role or host refused by the hub. A signed model rolled out the same way is judged by
// its header, installed as the agent's model file and reloaded; an altered one, a file that is no
// model, a model of the wrong kind and one that does not load are refused with the previous model
// kept in force, and the hub sees the model each agent runs.

#include "agent/fleet_link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/files.h"
#include "agent/host_addresses.h"
#include "govern/attest.h"
#include "govern/credential.h"
#include "govern/measure.h"
#include "govern/minisign.h"
#include "../govern/ek_ca.h"
#include "../govern/swtpm.h"
#include "hub/fleet_attest.h"
#include "hub_link_fixture.h"
#include "model/loader.h"
#include "model/model_file.h"
#include "model/sequence_model.h"
#include "policy/engine.h"

namespace vigil::agent {
namespace {

using nlohmann::json;

constexpr char kPolicyV1[] = R"(
- rule: Any exec
  desc: d
  condition: evt.type = execve
  output: exec %proc.name
  priority: NOTICE
)";
constexpr char kPolicyV2[] = R"(
- rule: Shell from tmp
  desc: d
  condition: evt.type = execve and proc.exepath startswith /tmp/
  output: shell %proc.name
  priority: WARNING
)";

std::string Sign(const govern::KeyPair& k, const std::string& bytes) {
  return govern::EncodeSignature(govern::Sign(k.secret_key, bytes, "file:policy.yaml", "test"));
}

// A gate-like system-call sequence model named `name`, version `version`, as file bytes.
std::string ModelBytes(const std::string& name, const std::string& version,
                       const std::string& family = "") {
  std::vector<model::TrainingTrace> traces;
  for (int i = 0; i < 12; ++i) {
    model::TrainingTrace t;
    t.subject = "prog";
    t.arch = core::Arch::kX86_64;
    t.syscalls = {59};
    for (int k = 0; k < 3 + i % 4; ++k) t.syscalls.push_back(257);
    traces.push_back(std::move(t));
  }
  model::SequenceModelOptions o;
  o.name = name;
  o.version = version;
  o.order = 2;
  o.min_subject_traces = 100;
  auto m = model::SequenceModel::Train(traces, o);
  EXPECT_TRUE(m.has_value()) << m.error().message();
  if (!m.has_value()) return "";
  model::ModelFile f = (*m)->ToFile(nlohmann::json::object());
  if (!family.empty()) f.header["family"] = family;
  return model::EncodeModelFile(f);
}

// One agent: its policy file and engine, its model, its fleet link, what it audited.
struct Agent {
  std::string host, group, policy_file, model_file;
  std::shared_ptr<const model::Model> model;  // the model in force (model_file as loaded)
  std::unique_ptr<policy::PolicyEngine> engine;
  std::unique_ptr<FleetLink> link;
  std::vector<std::string> audited;  // "policy applied <digest>", "policy refused <digest>: why"
};

// Gives `a` a model file holding `bytes` (loaded as the model in force) and the link options
// that install and reload a distributed one: only models named "gate" are accepted.
void WithModel(Agent* a, const std::string& path, const std::string& bytes, FleetLinkOptions& o) {
  a->model_file = path;
  std::ofstream(path, std::ios::binary) << bytes;
  auto loaded = model::LoadModel(path);
  EXPECT_TRUE(loaded.has_value()) << loaded.error().message();
  if (loaded.has_value()) a->model = std::move(loaded).value();
  o.model_file = path;
  o.check_model = [](const model::ModelFile& file, const std::string& source) {
    if (model::HeaderString(file, "name") != "gate") {
      return core::InvalidArgument(source + ": model " + model::HeaderString(file, "name") +
                                   " is not a gate model");
    }
    return core::Status::Ok();
  };
  o.reload_model = [a]() -> core::Status {
    auto m = model::LoadModel(a->model_file);
    if (!m.has_value()) return m.error();
    a->model = std::move(m).value();
    return core::Status::Ok();
  };
}

class FleetLinkTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    hub_key_ = govern::GenerateKeyPair();
    fleet_options_.trusted_keys = {hub_key_.public_key};
    StartHub();
    admin_ = Token(hub::Role::kAdmin, "root");
  }

  std::unique_ptr<Agent> MakeAgent(const std::string& host, const std::string& group,
                                   const std::vector<govern::PublicKey>& trusted,
                                   const std::function<void(FleetLinkOptions&)>& tweak = {},
                                   const std::string& model_bytes = "") {
    auto a = std::make_unique<Agent>();
    a->host = host;
    a->group = group;
    a->policy_file = (dir_ / (host + "-policy.yaml")).string();
    std::ofstream(a->policy_file) << kPolicyV1;
    policy::PolicyOptions po;
    po.files = {a->policy_file};
    auto engine = policy::PolicyEngine::Create(po);
    EXPECT_TRUE(engine.has_value()) << engine.error().ToString();
    a->engine = std::move(engine).value();
    const std::string token_file = (dir_ / (host + ".token")).string();
    std::ofstream(token_file) << Token(hub::Role::kAgent, host) << "\n";
    FleetLinkOptions o;
    o.link.url = Url();
    o.link.token_file = token_file;
    o.link.host = host;
    o.link.timeout = std::chrono::milliseconds(3000);
    o.group = group;
    o.heartbeat = std::chrono::milliseconds(50);
    o.vigil_version = "test";
    o.policy_file = a->policy_file;
    o.trusted = trusted;
    Agent* raw = a.get();
    o.reload_policy = [raw] { return raw->engine->Reload(); };
    o.health = [raw] {
      FleetHealth h;
      h.policy_version = raw->engine->Current()->version;
      h.events = 100;
      h.drops = 1;
      h.alerts = 2;
      if (raw->model) h.model_version = raw->model->name() + " " + raw->model->version();
      return h;
    };
    o.audit = [raw](const std::string& kind, const std::string& action, const std::string& digest,
                    const std::string& reason) {
      raw->audited.push_back(kind + " " + action + " " + digest + ": " + reason);
    };
    if (!model_bytes.empty()) {
      WithModel(raw, (dir_ / (host + "-gate.vgm")).string(), model_bytes, o);
    }
    if (tweak) tweak(o);
    auto link = FleetLink::Create(std::move(o));
    EXPECT_TRUE(link.has_value()) << link.error().ToString();
    a->link = std::move(link).value();
    return a;
  }

  // POST /v1/artifacts as multipart; {status, body}.
  std::pair<int, json> Upload(const std::string& kind, const std::string& bytes,
                              const std::string& sig, const std::string& token) {
    httplib::Client c("127.0.0.1", port_);
    const httplib::MultipartFormDataItems items = {
        {"kind", kind, "", ""},
        {"file", bytes, "policy.yaml", "application/octet-stream"},
        {"signature", sig, "policy.yaml.minisig", "text/plain"}};
    auto r = c.Post("/v1/artifacts", {{"Authorization", "Bearer " + token}}, items);
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body = "{}") {
    httplib::Client c("127.0.0.1", port_);
    const httplib::Headers h{{"Authorization", "Bearer " + token}};
    auto r = method == "GET" ? c.Get(path, h) : c.Post(path, h, body, "application/json");
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // A measurer on `tpm` whose event list (under dir_/name) starts with the agent's start.
  core::Result<std::unique_ptr<govern::Measurer>> OpenMeasurer(const govern::testing::Swtpm& tpm,
                                                               const std::string& name) {
    govern::MeasureOptions mo;
    mo.tcti = tpm.tcti();
    mo.events_path = (dir_ / name / "events.json").string();
    VIGIL_ASSIGN_OR_RETURN(auto m, govern::Measurer::Open(mo));
    govern::AttestEvent start;
    start.kind = "agent-start";
    start.name = "/usr/bin/vigil";
    start.digest = govern::Sha256Of("vigil binary");
    VIGIL_RETURN_IF_ERROR(m->Restart(start));
    return m;
  }
  // Stores an artifact straight into the hub's store (as a compromised hub or store would, with
  // any signature) and starts rollout `n` of it to the canary group; its digest.
  std::string PutAndRollOut(const std::string& kind, const std::string& bytes,
                            const std::string& sig, int64_t n) {
    hub::ArtifactRow row;
    row.digest = govern::HexOf(govern::Sha256Of(bytes));
    row.kind = kind;
    row.name = kind == "model" ? "gate.vgm" : "policy.yaml";
    row.size = static_cast<int64_t>(bytes.size());
    row.content = bytes;
    row.signature = sig;
    row.uploaded_by = "intruder";
    EXPECT_TRUE(store_->PutArtifact(row).value_or(false));
    EXPECT_TRUE(store_->StartRollout(row.digest, "canary", "intruder", n).has_value());
    return row.digest;
  }
  json AgentAtHub(const std::string& host) {
    auto [status, body] = Call("GET", "/v1/agents", admin_);
    EXPECT_EQ(status, 200) << body.dump();
    for (const json& a : body["agents"]) {
      if (a["host"] == host) return a;
    }
    return nullptr;
  }

  govern::KeyPair hub_key_;
  std::string admin_;
};

TEST_F(FleetLinkTest, ACanaryGroupGetsThePolicyFirstThenEveryAgentAfterPromotion) {
  auto canary = MakeAgent("web-1", "canary", {hub_key_.public_key});
  auto other = MakeAgent("db-1", "default", {hub_key_.public_key});
  const std::string v1 = canary->engine->Current()->version;
  const std::string other_v1 = other->engine->Current()->version;
  ASSERT_TRUE(canary->link->Beat().ok());
  ASSERT_TRUE(other->link->Beat().ok());
  EXPECT_TRUE(canary->link->state().registered);
  json at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["group"], "canary");
  EXPECT_EQ(at_hub["mode"], "monitor");
  EXPECT_EQ(at_hub["vigil_version"], "test");
  EXPECT_EQ(at_hub["attestation"]["state"], "absent");
  EXPECT_EQ(at_hub["policy"]["version"], v1);

  auto [up, art] = Upload("policy", kPolicyV2, Sign(hub_key_, kPolicyV2), admin_);
  ASSERT_EQ(up, 201) << art.dump();
  const std::string digest = art["artifact"]["digest"];
  EXPECT_EQ(digest, govern::HexOf(govern::Sha256Of(kPolicyV2)));
  auto [again, same] = Upload("policy", kPolicyV2, Sign(hub_key_, kPolicyV2), admin_);
  EXPECT_EQ(again, 200) << same.dump();  // stored once, by digest
  EXPECT_FALSE(same["artifact"]["created"].get<bool>());

  auto [started, rollout] =
      Call("POST", "/v1/rollouts", admin_, json{{"digest", digest}, {"group", "canary"}}.dump());
  ASSERT_EQ(started, 201) << rollout.dump();
  ASSERT_TRUE(canary->link->Beat().ok());
  ASSERT_TRUE(other->link->Beat().ok());
  EXPECT_EQ(canary->link->state().policy_digest, digest);
  EXPECT_NE(canary->engine->Current()->version, v1);
  EXPECT_EQ(core::ReadFile(canary->policy_file, 1 << 20).value_or(""), kPolicyV2);
  EXPECT_TRUE(std::filesystem::exists(canary->policy_file + ".minisig"));
  ASSERT_EQ(canary->audited.size(), 1u);
  EXPECT_EQ(canary->audited[0].rfind("policy applied " + digest, 0), 0u) << canary->audited[0];
  EXPECT_EQ(other->engine->Current()->version, other_v1);  // not its group
  EXPECT_EQ(core::ReadFile(other->policy_file, 1 << 20).value_or(""), kPolicyV1);
  EXPECT_TRUE(other->audited.empty());

  // The next heartbeat reports the applied digest; the hub shows it.
  ASSERT_TRUE(canary->link->Beat().ok());
  at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["policy"]["digest"], digest);
  EXPECT_EQ(at_hub["health"]["drops"], 1);
  EXPECT_EQ(at_hub["health"]["alerts"], 2);
  EXPECT_TRUE(at_hub["refusal"].is_null());
  EXPECT_GT(at_hub["last_heartbeat_ms"].get<int64_t>(), 0);

  const int64_t id = rollout["rollout"]["id"];
  auto [promoted, p] = Call("POST", "/v1/rollouts/" + std::to_string(id) + "/promote", admin_);
  ASSERT_EQ(promoted, 200) << p.dump();
  EXPECT_EQ(p["rollout"]["state"], "promoted");
  EXPECT_EQ(Call("POST", "/v1/rollouts/" + std::to_string(id) + "/promote", admin_).first, 409);
  ASSERT_TRUE(other->link->Beat().ok());
  EXPECT_EQ(other->link->state().policy_digest, digest);
  EXPECT_NE(other->engine->Current()->version, other_v1);
  EXPECT_EQ(core::ReadFile(other->policy_file, 1 << 20).value_or(""), kPolicyV2);

  // Every change at the hub is an audit record.
  auto [listed, rollouts] = Call("GET", "/v1/rollouts", admin_);
  ASSERT_EQ(listed, 200);
  ASSERT_EQ(rollouts["rollouts"].size(), 1u);
  ASSERT_TRUE(log_->Close().ok());
}

TEST_F(FleetLinkTest, AnUntrustedOrAlteredPolicyIsRefusedAtTheAgentWhichKeepsItsOwn) {
  const govern::KeyPair agent_key = govern::GenerateKeyPair();  // the agent trusts only this
  auto a = MakeAgent("web-1", "canary", {agent_key.public_key});
  ASSERT_TRUE(a->link->Beat().ok());
  const std::string v1 = a->engine->Current()->version;

  // Signed by the hub's key, which this agent does not trust.
  auto [up, art] = Upload("policy", kPolicyV2, Sign(hub_key_, kPolicyV2), admin_);
  ASSERT_EQ(up, 201) << art.dump();
  const std::string digest = art["artifact"]["digest"];
  ASSERT_EQ(Call("POST", "/v1/rollouts", admin_,
                 json{{"digest", digest}, {"group", "canary"}}.dump())
                .first,
            201);
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_EQ(a->engine->Current()->version, v1);
  EXPECT_EQ(core::ReadFile(a->policy_file, 1 << 20).value_or(""), kPolicyV1);
  ASSERT_TRUE(a->link->state().refusal.has_value());
  EXPECT_NE(a->link->state().refusal->find("unknown-key"), std::string::npos)
      << *a->link->state().refusal;
  ASSERT_EQ(a->audited.size(), 1u);
  EXPECT_EQ(a->audited[0].rfind("policy refused " + digest, 0), 0u) << a->audited[0];
  ASSERT_TRUE(a->link->Beat().ok());  // reports the refusal; does not fetch it again
  EXPECT_EQ(a->audited.size(), 1u);
  json at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["refusal"]["digest"], digest);
  EXPECT_EQ(at_hub["refusal"]["kind"], "policy");
  EXPECT_NE(at_hub["refusal"]["reason"].get<std::string>().find("unknown-key"),
            std::string::npos);

  // Altered after signing (a compromised hub or store): the bytes match the digest the hub names
  // but not the signature, signed by a key the agent trusts.
  const std::string altered = std::string(kPolicyV2) + "# appended\n";
  const std::string altered_digest =
      PutAndRollOut("policy", altered, Sign(agent_key, kPolicyV2), 1);
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_EQ(a->engine->Current()->version, v1);
  EXPECT_EQ(core::ReadFile(a->policy_file, 1 << 20).value_or(""), kPolicyV1);
  ASSERT_EQ(a->audited.size(), 2u);
  EXPECT_NE(a->audited[1].find("altered"), std::string::npos) << a->audited[1];
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_EQ(AgentAtHub("web-1")["refusal"]["digest"], altered_digest);

  // Signed by the agent's key and intact: applied, and the refusal is cleared.
  const std::string good = std::string(kPolicyV2) + "# v3\n";
  const std::string good_digest = PutAndRollOut("policy", good, Sign(agent_key, good), 2);
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_EQ(a->link->state().policy_digest, good_digest);
  EXPECT_FALSE(a->link->state().refusal.has_value());
  EXPECT_NE(a->engine->Current()->version, v1);
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_TRUE(AgentAtHub("web-1")["refusal"].is_null());
}

TEST_F(FleetLinkTest, ASignedModelIsInstalledAndReloadedAndBadOnesAreRefusedKeepingTheOld) {
  const std::string v1 = ModelBytes("gate", "1"), v2 = ModelBytes("gate", "2");
  ASSERT_FALSE(v1.empty());
  const std::string d1 = govern::HexOf(govern::Sha256Of(v1));
  auto a = MakeAgent("web-1", "canary", {hub_key_.public_key}, {}, v1);
  auto plain = MakeAgent("db-1", "canary", {hub_key_.public_key});  // no model file
  ASSERT_TRUE(a->link->Beat().ok());
  ASSERT_TRUE(plain->link->Beat().ok());
  // The hub sees the model each agent runs (the digest of its file as the link read it).
  json at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["model"]["digest"], d1) << at_hub.dump();
  EXPECT_EQ(at_hub["model"]["version"], "gate 1");
  const json none = AgentAtHub("db-1")["model"];  // the hub's empty entry
  EXPECT_TRUE(none.is_null() || none.value("digest", "x").empty()) << none.dump();

  // Rolled out to the canary group: verified, installed with its signature, reloaded.
  auto [up, art] = Upload("model", v2, Sign(hub_key_, v2), admin_);
  ASSERT_EQ(up, 201) << art.dump();
  const std::string d2 = art["artifact"]["digest"];
  EXPECT_EQ(art["artifact"]["kind"], "model");
  ASSERT_EQ(Call("POST", "/v1/rollouts", admin_, json{{"digest", d2}, {"group", "canary"}}.dump())
                .first,
            201);
  ASSERT_TRUE(a->link->Beat().ok());
  ASSERT_TRUE(plain->link->Beat().ok());
  EXPECT_EQ(a->model->version(), "2");
  EXPECT_EQ(core::ReadFile(a->model_file, 1 << 20).value_or(""), v2);
  EXPECT_EQ(core::ReadFile(a->model_file + ".minisig", 1 << 20).value_or(""), Sign(hub_key_, v2));
  EXPECT_EQ(a->link->state().model_digest, d2);
  EXPECT_EQ(a->link->state().policy_digest, govern::HexOf(govern::Sha256Of(kPolicyV1)));
  ASSERT_EQ(a->audited.size(), 1u);
  EXPECT_EQ(a->audited[0].rfind("model applied " + d2 + ": syscall-ngram model gate 2, signed by",
                                0),
            0u)
      << a->audited[0];
  ASSERT_EQ(plain->audited.size(), 1u);
  EXPECT_NE(plain->audited[0].find("model refused " + d2 +
                                   ": no model_file is configured in the agent's hub sink"),
            std::string::npos)
      << plain->audited[0];
  ASSERT_TRUE(a->link->Beat().ok());  // reports it; the hub offers it no more
  EXPECT_EQ(a->audited.size(), 1u);
  at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["model"]["digest"], d2);
  EXPECT_EQ(at_hub["model"]["version"], "gate 2");
  EXPECT_TRUE(at_hub["refusal"].is_null());

  // Each bad one is refused with its reason; the model in force and its file stay.
  struct Bad {
    std::string bytes, sig, reason;
  };
  std::string altered = v2;
  altered[altered.size() / 2] ^= 1;
  const std::string unknown_family = ModelBytes("gate", "3", "no-such-family");
  const std::string v4 = ModelBytes("gate", "4"), baseline = ModelBytes("host-baseline", "1");
  const std::vector<Bad> bad = {
      // Altered after signing (the digest is of the altered bytes).
      {altered, Sign(hub_key_, v2), "altered"},
      // Signed by a key the agent does not trust.
      {v4, Sign(govern::GenerateKeyPair(), v4), "unknown-key"},
      // Signed, but not a model file.
      {kPolicyV2, Sign(hub_key_, kPolicyV2), "not a model file: sha256:"},
      // A model file of the wrong kind, judged from its header before it is installed.
      {baseline, Sign(hub_key_, baseline), "model host-baseline is not a gate model"},
      // Accepted by its header, but it does not load: installed, refused, the old file put back.
      {unknown_family, Sign(hub_key_, unknown_family),
       "the model does not load: " + a->model_file + ": unknown model family"},
  };
  int64_t n = 10;
  for (const Bad& b : bad) {
    const size_t before = a->audited.size();
    const std::string digest = PutAndRollOut("model", b.bytes, b.sig, ++n);
    ASSERT_TRUE(a->link->Beat().ok());
    ASSERT_EQ(a->audited.size(), before + 1) << b.reason;
    EXPECT_EQ(a->audited.back().rfind("model refused " + digest, 0), 0u) << a->audited.back();
    EXPECT_NE(a->audited.back().find(b.reason), std::string::npos) << a->audited.back();
    EXPECT_EQ(a->model->version(), "2") << b.reason;
    EXPECT_EQ(core::ReadFile(a->model_file, 1 << 20).value_or(""), v2) << b.reason;
    EXPECT_EQ(core::ReadFile(a->model_file + ".minisig", 1 << 20).value_or(""),
              Sign(hub_key_, v2));
    EXPECT_EQ(a->link->state().model_digest, d2);
    ASSERT_TRUE(a->link->Beat().ok());  // reports the refusal; does not fetch it again
    EXPECT_EQ(a->audited.size(), before + 1);
    at_hub = AgentAtHub("web-1");
    EXPECT_EQ(at_hub["refusal"]["kind"], "model");
    EXPECT_EQ(at_hub["refusal"]["digest"], digest);
    EXPECT_NE(at_hub["refusal"]["reason"].get<std::string>().find(b.reason), std::string::npos)
        << at_hub["refusal"].dump();
    EXPECT_EQ(at_hub["model"]["digest"], d2);
  }
}

// A gate that waits for its first model (model_file not there yet): the heartbeat reports no
// model; a model that does not load leaves no file behind (the next start would trip on it); the
// next one is installed and reported.
TEST_F(FleetLinkTest, AFirstModelIsInstalledAndOneThatDoesNotLoadLeavesNoFile) {
  const std::string v1 = ModelBytes("gate", "1");
  ASSERT_FALSE(v1.empty());
  const std::string path = (dir_ / "first-gate.vgm").string();
  bool loads = false;
  auto a = MakeAgent("web-1", "canary", {hub_key_.public_key}, [&](FleetLinkOptions& o) {
    o.model_file = path;
    o.reload_model = [&]() -> core::Status {
      if (!loads) return core::InvalidArgument(path + ": the engine refused it");
      return core::Status::Ok();
    };
  });
  ASSERT_TRUE(a->link->Beat().ok());
  const json none = AgentAtHub("web-1")["model"];
  EXPECT_TRUE(none.is_null() || none.value("digest", "x").empty()) << none.dump();

  const std::string d1 = PutAndRollOut("model", v1, Sign(hub_key_, v1), 1);
  ASSERT_TRUE(a->link->Beat().ok());
  ASSERT_EQ(a->audited.size(), 1u);
  EXPECT_NE(a->audited[0].find("model refused " + d1 + ": the model does not load: " + path),
            std::string::npos)
      << a->audited[0];
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".minisig"));
  EXPECT_EQ(a->link->state().model_digest, "");

  loads = true;
  const std::string v2 = ModelBytes("gate", "2");
  const std::string d2 = PutAndRollOut("model", v2, Sign(hub_key_, v2), 2);
  ASSERT_TRUE(a->link->Beat().ok());
  ASSERT_EQ(a->audited.size(), 2u);
  EXPECT_EQ(a->audited[1].rfind("model applied " + d2, 0), 0u) << a->audited[1];
  EXPECT_EQ(core::ReadFile(path, 1 << 20).value_or(""), v2);
  EXPECT_EQ(a->link->state().model_digest, d2);
  ASSERT_TRUE(a->link->Beat().ok());
  EXPECT_EQ(AgentAtHub("web-1")["model"]["digest"], d2);
}

TEST_F(FleetLinkTest, TheHubRefusesWrongRolesHostsAndUntrustedUploads) {
  const std::string body =
      json{{"host", "web-1"}, {"mode", "monitor"}, {"vigil_version", "1"}}.dump();
  EXPECT_EQ(Call("POST", "/v1/agents/register", Token(hub::Role::kAdmin, "web-1"), body).first,
            403);
  EXPECT_EQ(Call("POST", "/v1/agents/register", Token(hub::Role::kAgent, "db-1"), body).first,
            403);
  EXPECT_EQ(Call("POST", "/v1/agents/register", "not-a-token", body).first, 401);
  EXPECT_EQ(Call("POST", "/v1/agents/heartbeat", Token(hub::Role::kAgent, "web-1"),
                 json{{"host", "web-1"}, {"mode", "monitor"}}.dump())
                .first,
            404);  // not registered
  EXPECT_EQ(Call("POST", "/v1/agents/register", Token(hub::Role::kAgent, "web-1"), "{").first,
            400);
  EXPECT_EQ(Call("GET", "/v1/agents", Token(hub::Role::kAgent, "web-1")).first, 403);
  EXPECT_EQ(Call("GET", "/v1/rollouts", Token(hub::Role::kAnalyst, "ana")).first, 403);
  EXPECT_EQ(Upload("policy", kPolicyV2, Sign(hub_key_, kPolicyV2),
                   Token(hub::Role::kAgent, "web-1"))
                .first,
            403);
  const govern::KeyPair stranger = govern::GenerateKeyPair();
  auto [untrusted, why] = Upload("policy", kPolicyV2, Sign(stranger, kPolicyV2), admin_);
  EXPECT_EQ(untrusted, 422) << why.dump();
  EXPECT_NE(why["error"]["message"].get<std::string>().find("unknown-key"), std::string::npos);
  auto [altered, why2] =
      Upload("policy", std::string(kPolicyV2) + " ", Sign(hub_key_, kPolicyV2), admin_);
  EXPECT_EQ(altered, 422) << why2.dump();
  EXPECT_EQ(Upload("binary", kPolicyV2, Sign(hub_key_, kPolicyV2), admin_).first, 400);
  EXPECT_EQ(Upload("policy", kPolicyV2, "not a signature", admin_).first, 400);
  EXPECT_EQ(Call("POST", "/v1/rollouts", admin_,
                 json{{"digest", std::string(64, 'e')}, {"group", "canary"}}.dump())
                .first,
            404);
  EXPECT_EQ(Call("GET", "/v1/artifacts/" + std::string(64, 'e'), Token(hub::Role::kAgent, "h"))
                .first,
            404);
  EXPECT_EQ(store_->Count("artifacts").value_or(-1), 0);
}

TEST_F(FleetLinkTest, AHubThatIsDownNeverBlocksTheLink) {
  StopHub();
  auto a = MakeAgent("web-1", "canary", {hub_key_.public_key});
  core::Status st = a->link->Beat();
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(a->link->state().registered);
  EXPECT_FALSE(a->link->state().last_error.empty());
  a->link->Start();
  StartHub();
  EXPECT_TRUE(testing::WaitUntil([&] { return a->link->state().heartbeats >= 2; }));
  a->link->Stop();
  EXPECT_EQ(AgentAtHub("web-1")["group"], "canary");
}

TEST_F(FleetLinkTest, EnforceModeIsAllowedOnlyForAnAgentWhoseQuoteVerified) {
  govern::testing::Swtpm swtpm;
  if (!swtpm.ok()) GTEST_SKIP() << "no swtpm: " << swtpm.why();
  StopHub();
  fleet_options_.require_attestation = true;
  StartHub();
  auto measurer = OpenMeasurer(swtpm, "attest");
  ASSERT_TRUE(measurer.has_value()) << measurer.error().ToString();

  struct Answer {
    bool allowed = false;
    std::string reason;
    int calls = 0;
  };
  auto run = [&](const std::string& host, bool wrong_nonce, bool with_quote) {
    auto answer = std::make_shared<Answer>();
    auto a = MakeAgent(host, "default", {hub_key_.public_key}, [&](FleetLinkOptions& o) {
      if (with_quote) {
        o.quote = [&, wrong_nonce](const std::string& nonce) -> core::Result<std::string> {
          auto q = (*measurer)->Quote({}, wrong_nonce ? nonce + "x" : nonce);
          if (!q.has_value()) return q.error();
          return govern::EncodeQuoteDocument(*q);
        };
      }
      o.on_enforce = [answer](bool allowed, const std::string& reason) {
        answer->allowed = allowed;
        answer->reason = reason;
        ++answer->calls;
      };
    });
    EXPECT_TRUE(a->link->Beat().ok());
    EXPECT_TRUE(a->link->Beat().ok());  // a heartbeat repeats the answer: no second call
    EXPECT_EQ(answer->calls, 1);
    return *answer;
  };
  const Answer verified = run("web-1", false, true);
  EXPECT_TRUE(verified.allowed) << verified.reason;
  EXPECT_EQ(AgentAtHub("web-1")["attestation"]["state"], "verified");
  const Answer replayed = run("web-2", true, true);
  EXPECT_FALSE(replayed.allowed);
  EXPECT_NE(replayed.reason.find("not issued to this host"), std::string::npos) << replayed.reason;
  EXPECT_EQ(AgentAtHub("web-2")["attestation"]["state"], "failed");
  const Answer absent = run("web-3", false, false);
  EXPECT_FALSE(absent.allowed);
  EXPECT_NE(absent.reason.find("without a quote"), std::string::npos) << absent.reason;
  EXPECT_EQ(AgentAtHub("web-3")["attestation"]["state"], "absent");
  // A quote sent without asking for a nonce is refused.
  const std::string token = Token(hub::Role::kAgent, "web-4");
  auto q = (*measurer)->Quote({}, "made-up nonce");
  ASSERT_TRUE(q.has_value());
  auto [status, body] = Call("POST", "/v1/agents/register", token,
                             json{{"host", "web-4"},
                                  {"mode", "monitor"},
                                  {"vigil_version", "x"},
                                  {"attestation", govern::EncodeQuoteDocument(*q)}}
                                 .dump());
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_FALSE(body["enforce"]["allowed"].get<bool>());
  EXPECT_NE(body["attestation"]["reason"].get<std::string>().find("not issued"), std::string::npos)
      << body.dump();
}

// The hub with an EK CA: an agent's attestation key must be tied to a trusted EK by credential
// activation. Two TPMs manufactured by one test CA, a CA that made neither, two hub instances
// over one store sharing the attestation key.
TEST_F(FleetLinkTest, TheHubTiesTheAttestationKeyToTheTpmsEk) {
  govern::testing::SwtpmCa ca, other_ca;
  govern::testing::Swtpm tpm_a(&ca), tpm_b(&ca);
  if (!tpm_a.ok()) GTEST_SKIP() << "no swtpm: " << tpm_a.why();
  ASSERT_TRUE(tpm_b.ok()) << tpm_b.why();
  { govern::testing::Swtpm warm(&other_ca); }
  StopHub();
  fleet_options_.require_attestation = true;
  fleet_options_.ek_ca_bundle = ca.bundle();
  fleet_options_.ek_ca_source = "ek-ca.pem";
  fleet_options_.attestation_key = "a key the hub instances share";
  fleet_options_.requote_ms = 1;  // every heartbeat answer asks for a fresh quote
  StartHub();
  auto opened_a = OpenMeasurer(tpm_a, "a"), opened_b = OpenMeasurer(tpm_b, "b");
  ASSERT_TRUE(opened_a.has_value()) << opened_a.error().ToString();
  ASSERT_TRUE(opened_b.has_value()) << opened_b.error().ToString();
  auto a = std::move(opened_a).value(), b = std::move(opened_b).value();
  const std::string a_ek = a->Quote({}, "0123456789abcdef", true).value().ek_certificate_pem;

  struct Seen {
    std::optional<bool> allowed;
    std::string reason;
    std::string last_quote;
  };
  // An agent quoting with `quoter` (and A's EK certificate when `forge_ek`), activating with
  // `activator` (a guessed secret when the TPM refuses).
  auto make = [&](const std::string& host, govern::Measurer** quoter, govern::Measurer* activator,
                  bool forge_ek) {
    auto seen = std::make_shared<Seen>();
    auto agent = MakeAgent(host, "default", {hub_key_.public_key}, [&, seen](FleetLinkOptions& o) {
      o.quote = [=, &a_ek](const std::string& nonce) -> core::Result<std::string> {
        auto q = (*quoter)->Quote({}, nonce, true);
        if (!q.has_value()) return q.error();
        if (forge_ek) q->ek_certificate_pem = a_ek;
        seen->last_quote = govern::EncodeQuoteDocument(*q);
        return seen->last_quote;
      };
      o.activate = [=](const govern::CredentialChallenge& c) -> core::Result<std::string> {
        auto secret = activator->tpm().ActivateCredential(c);
        return secret.has_value() ? *secret : std::string(32, 'g');
      };
      o.on_enforce = [seen](bool allowed, const std::string& reason) {
        seen->allowed = allowed;
        seen->reason = reason;
      };
    });
    return std::pair{std::move(agent), seen};
  };

  // The AK of the TPM whose EK certificate it presents: verified, enforce allowed, AK recorded.
  govern::Measurer* web1_quoter = a.get();
  auto [web1, seen1] = make("web-1", &web1_quoter, a.get(), false);
  ASSERT_TRUE(web1->link->Beat().ok());
  ASSERT_TRUE(seen1->allowed.has_value());
  EXPECT_TRUE(*seen1->allowed) << seen1->reason;
  EXPECT_NE(seen1->reason.find("tied to a trusted EK"), std::string::npos) << seen1->reason;
  EXPECT_EQ(AgentAtHub("web-1")["attestation"]["state"], "verified");
  auto key = store_->AttestedKey("web-1");
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_EQ(key->ak_name.size(), 68u);
  EXPECT_EQ(key->ek_sha256.size(), 64u);
  const int64_t first_quote = key->quoted_ms;

  // Heartbeats: the hub hands out a nonce, the next heartbeat's quote is checked against the
  // recorded AK; a quote by another TPM's AK withdraws enforce mode.
  ASSERT_TRUE(web1->link->Beat().ok());  // gets a nonce
  ASSERT_TRUE(web1->link->Beat().ok());  // quotes over it
  EXPECT_TRUE(*seen1->allowed) << seen1->reason;
  EXPECT_GT(store_->AttestedKey("web-1").value().quoted_ms, first_quote - 1);
  web1_quoter = b.get();
  ASSERT_TRUE(web1->link->Beat().ok());
  ASSERT_TRUE(web1->link->Beat().ok());
  EXPECT_FALSE(*seen1->allowed);
  EXPECT_NE(seen1->reason.find("unknown-key"), std::string::npos) << seen1->reason;
  EXPECT_EQ(AgentAtHub("web-1")["attestation"]["state"], "failed");
  // Registered again without a quote: the AK recorded before is not renewed (no nonce handed out).
  const std::string web1_token = Token(hub::Role::kAgent, "web-1");
  const json bare = {{"host", "web-1"}, {"mode", "monitor"}, {"vigil_version", "x"}};
  ASSERT_EQ(Call("POST", "/v1/agents/register", web1_token, bare.dump()).first, 200);
  auto [hs, hb] = Call("POST", "/v1/agents/heartbeat", web1_token, bare.dump());
  ASSERT_EQ(hs, 200) << hb.dump();
  EXPECT_EQ(hb["attestation"]["state"], "absent");
  EXPECT_FALSE(hb["attestation"].contains("quote_nonce")) << hb.dump();

  // TPM B's AK with TPM A's EK certificate: B cannot activate; a guessed secret fails.
  govern::Measurer* web2_quoter = b.get();
  auto [web2, seen2] = make("web-2", &web2_quoter, b.get(), true);
  ASSERT_TRUE(web2->link->Beat().ok());
  EXPECT_FALSE(seen2->allowed.value_or(true));
  EXPECT_NE(seen2->reason.find("activation-failed"), std::string::npos) << seen2->reason;
  EXPECT_EQ(AgentAtHub("web-2")["attestation"]["state"], "failed");
  // Both verdicts on an activation are in the hub's audit log (written by its writer thread:
  // wait for what was appended).
  ASSERT_TRUE(log_->Flush().ok());
  std::vector<std::string> grants;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    if (type == audit::RecordType::kAccessGrant) {
      grants.push_back(payload.value("action", "") + " " + payload.value("host", ""));
    }
  }
  EXPECT_EQ(grants, (std::vector<std::string>{"attestation-key-trusted web-1",
                                              "attestation-key-refused web-2"}));

  // Replaying web-2's registration quote: its nonce was used.
  const std::string web2_token = Token(hub::Role::kAgent, "web-2");
  const json replay = {{"host", "web-2"},
                       {"mode", "monitor"},
                       {"vigil_version", "x"},
                       {"attestation", seen2->last_quote}};
  auto [rs, rb] = Call("POST", "/v1/agents/register", web2_token, replay.dump());
  ASSERT_EQ(rs, 200) << rb.dump();
  EXPECT_NE(rb["attestation"]["reason"].get<std::string>().find("already used"),
            std::string::npos)
      << rb.dump();

  // An expired nonce.
  const std::string expired =
      hub::MintAttestNonce(fleet_options_.attestation_key, "web-2",
                           clock_.NowUnixNanos() / 1'000'000 - 1000);
  json stale = replay;
  stale["attestation"] = govern::EncodeQuoteDocument(b->Quote({}, expired, true).value());
  auto [es, eb] = Call("POST", "/v1/agents/register", web2_token, stale.dump());
  ASSERT_EQ(es, 200) << eb.dump();
  EXPECT_NE(eb["attestation"]["reason"].get<std::string>().find("expired"), std::string::npos)
      << eb.dump();

  // A second hub instance over the same store: a nonce from the first is accepted by the second,
  // and the challenge the second issues is activated at the first, once.
  hub::ServerOptions o2;
  o2.listen = {"127.0.0.1", 0};
  o2.threads = 2;
  o2.fleet = fleet_options_;
  core::Registry registry2;
  hub::Server hub2(o2, *store_, auth_, *log_, clock_, registry2);
  ASSERT_TRUE(hub2.Start().ok());
  const std::string web3_token = Token(hub::Role::kAgent, "web-3");
  auto [ns, nb] = Call("GET", "/v1/agents/nonce", web3_token);
  ASSERT_EQ(ns, 200) << nb.dump();
  const std::string nonce = govern::BytesOfHex(nb["nonce"].get<std::string>()).value();
  const json reg = {{"host", "web-3"},
                    {"mode", "monitor"},
                    {"vigil_version", "x"},
                    {"attestation", govern::EncodeQuoteDocument(a->Quote({}, nonce, true).value())}};
  httplib::Client second("127.0.0.1", hub2.port());
  auto r2 = second.Post("/v1/agents/register", {{"Authorization", "Bearer " + web3_token}},
                        reg.dump(), "application/json");
  ASSERT_TRUE(r2);
  const json answer2 = json::parse(r2->body);
  ASSERT_EQ(answer2["attestation"]["state"], "challenged") << answer2.dump();
  const json& challenge = answer2["attestation"]["challenge"];
  auto parsed = govern::ParseCredentialChallenge(challenge["credential_blob"].get<std::string>(),
                                                 challenge["encrypted_secret"].get<std::string>(),
                                                 "challenge");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  auto secret = a->tpm().ActivateCredential(*parsed);
  ASSERT_TRUE(secret.has_value()) << secret.error().ToString();
  const json activate = {{"host", "web-3"},
                         {"token", challenge["token"]},
                         {"secret", govern::HexOf(*secret)}};
  auto [as, ab] = Call("POST", "/v1/agents/activate", web3_token, activate.dump());
  ASSERT_EQ(as, 200) << ab.dump();
  EXPECT_EQ(ab["attestation"]["state"], "verified");
  EXPECT_TRUE(ab["enforce"]["allowed"].get<bool>());
  auto [again, why] = Call("POST", "/v1/agents/activate", web3_token, activate.dump());
  EXPECT_EQ(again, 422);
  EXPECT_NE(why["attestation"]["reason"].get<std::string>().find("already used"),
            std::string::npos)
      << why.dump();
  // Another host cannot use web-3's challenge.
  json theft = activate;
  theft["host"] = "web-2";
  auto [ts, tb] = Call("POST", "/v1/agents/activate", web2_token, theft.dump());
  EXPECT_EQ(ts, 422) << tb.dump();
  hub2.Stop();

  // An EK certificate from a CA the hub does not trust.
  StopHub();
  fleet_options_.ek_ca_bundle = other_ca.bundle();
  StartHub();
  govern::Measurer* web4_quoter = a.get();
  auto [web4, seen4] = make("web-4", &web4_quoter, a.get(), false);
  ASSERT_TRUE(web4->link->Beat().ok());
  EXPECT_FALSE(seen4->allowed.value_or(true));
  EXPECT_NE(seen4->reason.find("untrusted-ek"), std::string::npos) << seen4->reason;

  // A trusted EK, but the hub's CRL file has no CRL of its issuer: refused (fail closed).
  StopHub();
  fleet_options_.ek_ca_bundle = ca.bundle();
  govern::testing::EkCa crl_ca("a CA with a CRL");
  fleet_options_.ek_crls = crl_ca.IssueCrl({});
  fleet_options_.ek_crl_source = "ek.crl";
  StartHub();
  govern::Measurer* web5_quoter = a.get();
  auto [web5, seen5] = make("web-5", &web5_quoter, a.get(), false);
  ASSERT_TRUE(web5->link->Beat().ok());
  EXPECT_FALSE(seen5->allowed.value_or(true));
  EXPECT_NE(seen5->reason.find("fails the revocation check against ek.crl"), std::string::npos)
      << seen5->reason;
}

// The link sends the host's addresses with the registration and every heartbeat (read anew each
// time), and the hub keeps them with the agent (its chain correlation's map of addresses).
TEST_F(FleetLinkTest, RegistrationAndHeartbeatsCarryTheHostsAddresses) {
  std::vector<std::string> addresses = {"10.9.8.7", "fd00::7"};
  auto a = MakeAgent("web-1", "default", {hub_key_.public_key}, [&](FleetLinkOptions& o) {
    o.addresses = [&] { return addresses; };
  });
  ASSERT_TRUE(a->link->Beat().ok());
  json at_hub = AgentAtHub("web-1");
  ASSERT_TRUE(at_hub["addresses"].is_array()) << at_hub.dump();
  EXPECT_EQ(at_hub["addresses"][0], "10.9.8.7");
  EXPECT_EQ(at_hub["addresses"][1], "fd00::7");
  addresses = {"10.9.8.8"};
  ASSERT_TRUE(a->link->Beat().ok());  // a heartbeat
  at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["addresses"][0], "10.9.8.8") << at_hub.dump();
  for (const json& ip : at_hub["addresses"]) EXPECT_NE(ip, "10.9.8.7");
}

// What the agent sends of its own: addresses that parse, none of them loopback or link-local.
TEST(HostAddressesTest, ListsOnlyRoutableAddressesOfThisHost) {
  const std::vector<std::string> all = HostAddresses();
  EXPECT_LE(all.size(), 16u);
  for (const std::string& ip : all) {
    unsigned char buf[16];
    const bool v4 = inet_pton(AF_INET, ip.c_str(), buf) == 1;
    EXPECT_TRUE(v4 || inet_pton(AF_INET6, ip.c_str(), buf) == 1) << ip;
    EXPECT_FALSE(ip.rfind("127.", 0) == 0 || ip == "::1" || ip.rfind("169.254.", 0) == 0 ||
                 ip.rfind("fe80", 0) == 0)
        << ip;
  }
  EXPECT_LE(HostAddresses(1).size(), 1u);
}

}  // namespace
}  // namespace vigil::agent
