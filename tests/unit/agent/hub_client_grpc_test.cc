// The agent's hub link over gRPC with mTLS (agent/hub_client_grpc.h) against a real hub: its REST
// port (for the admin and analyst side) and its agent port (hub::AgentGrpc). The fleet link, the
// hub sink and the escalation routes run unchanged over it; the attestation flow (credential
// challenge, activation, requotes) too, with swtpm; bad certificates and options are refused.

#include "agent/hub_client_grpc.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "../govern/swtpm.h"
#include "../hub/hub_fixtures.h"
#include "agent/fleet_link.h"
#include "agent/hub_sink.h"
#include "core/files.h"
#include "govern/attest.h"
#include "govern/measure.h"
#include "govern/minisign.h"
#include "govern/registry.h"
#include "hub_link_fixture.h"
#include "policy/engine.h"

namespace vigil::agent {
namespace {

using nlohmann::json;

constexpr char kFirstPolicy[] = R"(
- rule: Any exec
  desc: d
  condition: evt.type = execve
  output: exec %proc.name
  priority: NOTICE
)";
constexpr char kRolledOutPolicy[] = R"(
- rule: Shell from tmp
  desc: d
  condition: evt.type = execve and proc.exepath startswith /tmp/
  output: shell %proc.name
  priority: WARNING
)";

class GrpcLinkTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    hub_key_ = govern::GenerateKeyPair();
    fleet_options_.trusted_keys = {hub_key_.public_key};
  }
  void Start() {
    StartHub();
    StartAgentPort();
  }
  std::pair<int, json> Rest(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body = "{}") {
    httplib::Client c("127.0.0.1", port_);
    const httplib::Headers h{{"Authorization", "Bearer " + token}};
    auto r = method == "GET" ? c.Get(path, h) : c.Post(path, h, body, "application/json");
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  json AgentAtHub(const std::string& host) {
    auto [status, body] = Rest("GET", "/v1/agents", Token(hub::Role::kAdmin, "root"));
    EXPECT_EQ(status, 200) << body.dump();
    for (const json& a : body["agents"]) {
      if (a["host"] == host) return a;
    }
    return nullptr;
  }
  // A fleet link over gRPC for `host`, whose policy file starts as kFirstPolicy.
  std::unique_ptr<FleetLink> Link(const std::string& host, const std::string& policy_file,
                                  policy::PolicyEngine* engine,
                                  const std::function<void(FleetLinkOptions&)>& tweak = {}) {
    std::ofstream(policy_file) << kFirstPolicy;
    FleetLinkOptions o;
    o.link = GrpcLink(host, "canary");
    o.group = "default";  // the certificate's group wins
    o.heartbeat = std::chrono::milliseconds(50);
    o.vigil_version = "test";
    o.policy_file = policy_file;
    o.trusted = {hub_key_.public_key};
    o.health = [engine] {
      FleetHealth h;
      if (engine != nullptr) h.policy_version = engine->Current()->version;
      h.events = 10;
      h.drops = 3;
      h.alerts = 4;
      return h;
    };
    if (engine != nullptr) o.reload_policy = [engine] { return engine->Reload(); };
    if (tweak) tweak(o);
    auto link = FleetLink::Create(std::move(o));
    EXPECT_TRUE(link.has_value()) << link.error().ToString();
    return link.has_value() ? std::move(link).value() : nullptr;
  }

  govern::KeyPair hub_key_;
};

TEST_F(GrpcLinkTest, TheFleetLinkRegistersHeartbeatsAndAppliesARolledOutPolicy) {
  Start();
  const std::string policy_file = (dir_ / "policy.yaml").string();
  std::ofstream(policy_file) << kFirstPolicy;
  policy::PolicyOptions po;
  po.files = {policy_file};
  auto engine = policy::PolicyEngine::Create(po);
  ASSERT_TRUE(engine.has_value()) << engine.error().ToString();
  auto link = Link("web-1", policy_file, engine->get());
  ASSERT_NE(link, nullptr);
  ASSERT_TRUE(link->Beat().ok()) << link->state().last_error;
  EXPECT_TRUE(link->state().registered);
  json at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["group"], "canary") << at_hub.dump();  // from the certificate
  EXPECT_EQ(at_hub["vigil_version"], "test");
  ASSERT_TRUE(link->Beat().ok()) << link->state().last_error;
  EXPECT_EQ(link->state().heartbeats, 1u);
  at_hub = AgentAtHub("web-1");
  EXPECT_EQ(at_hub["health"]["drops"], 3) << at_hub.dump();
  EXPECT_EQ(at_hub["health"]["alerts"], 4);

  // A signed policy rolled out to the group arrives over FetchArtifact and is applied.
  const std::string sig = govern::EncodeSignature(
      govern::Sign(hub_key_.secret_key, kRolledOutPolicy, "file:policy.yaml", "test"));
  httplib::Client c("127.0.0.1", port_);
  const std::string admin = Token(hub::Role::kAdmin, "root");
  auto up = c.Post("/v1/artifacts", {{"Authorization", "Bearer " + admin}},
                   httplib::MultipartFormDataItems{
                       {"kind", "policy", "", ""},
                       {"file", kRolledOutPolicy, "policy.yaml", "application/octet-stream"},
                       {"signature", sig, "policy.yaml.minisig", "text/plain"}});
  ASSERT_TRUE(up && up->status == 201) << (up ? up->body : "no answer");
  const std::string digest = govern::HexOf(govern::Sha256Of(kRolledOutPolicy));
  auto [started, rollout] =
      Rest("POST", "/v1/rollouts", admin, json{{"digest", digest}, {"group", "canary"}}.dump());
  ASSERT_EQ(started, 201) << rollout.dump();
  ASSERT_TRUE(link->Beat().ok()) << link->state().last_error;
  EXPECT_EQ(link->state().policy_digest, digest);
  EXPECT_FALSE(link->state().refusal.has_value()) << *link->state().refusal;
  EXPECT_EQ(core::ReadFile(policy_file, 1 << 20).value_or(""), kRolledOutPolicy);
  EXPECT_EQ(core::ReadFile(policy_file + ".minisig", 1 << 20).value_or(""), sig);
  ASSERT_TRUE(link->Beat().ok());
  EXPECT_EQ(AgentAtHub("web-1")["policy"]["digest"], digest);
}

TEST_F(GrpcLinkTest, FindingsTravelOverIngestAndAreStoredOnce) {
  Start();
  HubSinkOptions o;
  o.link = GrpcLink(kHost);
  o.spool_dir = (dir_ / "spool").string();
  o.spool.sync = pipeline::SyncMode::kNever;
  o.batch_findings = 4;
  o.batch_delay = std::chrono::milliseconds(50);
  o.retry_initial = std::chrono::milliseconds(10);
  o.retry_max = std::chrono::milliseconds(50);
  core::Registry registry;
  auto sink = OpenHubSink(o, registry, nullptr);
  ASSERT_TRUE(sink.has_value()) << sink.error().ToString();
  for (const std::string& f : hub::testing::FindingLines(kHost, 0, 6)) {
    ASSERT_TRUE((*sink)->Write(f).ok());
  }
  ASSERT_TRUE((*sink)->Flush().ok());
  EXPECT_EQ((*sink)->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 12);
  EXPECT_EQ((*sink)->Counts().messages_sent, 3u);

  // The same message again (a redelivery): the hub stores nothing twice.
  auto client = HubClient::Create(GrpcLink(kHost));
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  const json msg = {{"schema_version", "vigil.hub/v1"},
                    {"host", kHost},
                    {"message_id", "m-1"},
                    {"findings", json::array()}};
  auto first = (*client)->Post("/v1/ingest", msg.dump());
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_EQ(first->status, 200) << first->error;
  EXPECT_FALSE(first->body["duplicate"].get<bool>());
  auto again = (*client)->Post("/v1/ingest", msg.dump());
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->body["duplicate"].get<bool>()) << again->raw;
  // Another host's message is refused with the REST status for PERMISSION_DENIED.
  json other = msg;
  other["host"] = "db-1";
  auto refused = (*client)->Post("/v1/ingest", other.dump());
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 403) << refused->error;
  EXPECT_NE(refused->error.find("may not act for host \"db-1\""), std::string::npos)
      << refused->error;
}

TEST_F(GrpcLinkTest, AnEscalationIsOpenedOnceAndItsAnswerReadBack) {
  Start();
  auto client = HubClient::Create(GrpcLink(kHost));
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  const json ask = {{"schema_version", "vigil.hub/v1"},
                    {"host", kHost},
                    {"escalation_id", "7@123"},
                    {"rule", "Shell in a web server"},
                    {"action", "kill"},
                    {"reason", "nginx spawned sh"},
                    {"pid", 4242},
                    {"timeout_s", 600},
                    {"default", "deny"}};
  auto opened = (*client)->Post("/v1/escalations", ask.dump());
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  ASSERT_EQ(opened->status, 201) << opened->error;
  const int64_t id = opened->body["escalation"]["id"];
  EXPECT_EQ(opened->body["escalation"]["state"], "pending");
  auto repeat = (*client)->Post("/v1/escalations", ask.dump());
  ASSERT_TRUE(repeat.has_value());
  EXPECT_EQ(repeat->status, 200);  // the one it has
  EXPECT_EQ(repeat->body["escalation"]["id"], id);

  const std::string analyst = Token(hub::Role::kAnalyst, "ana");
  auto [listed, list] = Rest("GET", "/v1/escalations?host=web-1", analyst);
  ASSERT_EQ(listed, 200);
  ASSERT_EQ(list["escalations"].size(), 1u) << list.dump();
  EXPECT_EQ(list["escalations"][0]["pid"], 4242);
  auto [decided, d] = Rest("POST", "/v1/escalations/" + std::to_string(id) + "/decision", analyst,
                           json{{"decision", "approve"}}.dump());
  ASSERT_EQ(decided, 200) << d.dump();
  auto answer = (*client)->Get("/v1/escalations/" + std::to_string(id));
  ASSERT_TRUE(answer.has_value()) << answer.error().ToString();
  ASSERT_EQ(answer->status, 200) << answer->error;
  EXPECT_EQ(answer->body["escalation"]["state"], "approved");
  EXPECT_EQ(answer->body["escalation"]["outcome"], "approve");
  EXPECT_EQ(answer->body["escalation"]["decided_by"], "ana");

  // Another host's escalation is not this agent's to read.
  auto other = HubClient::Create(GrpcLink("db-1"));
  ASSERT_TRUE(other.has_value());
  auto theirs = (*other)->Get("/v1/escalations/" + std::to_string(id));
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(theirs->status, 403) << theirs->error;
  auto unknown = (*client)->Get("/v1/escalations/99999");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 404) << unknown->error;
}

TEST_F(GrpcLinkTest, BadCertificatesOptionsAndRoutesAreRefused) {
  Start();
  HubLinkOptions o = GrpcLink(kHost);
  // The certificate names another host than the agent's.
  HubLinkOptions wrong_host = o;
  wrong_host.host = "db-1";
  auto c1 = HubClient::Create(wrong_host);
  ASSERT_FALSE(c1.has_value());
  EXPECT_NE(c1.error().message().find("is for host \"web-1\""), std::string::npos)
      << c1.error().message();
  // A token file is for REST; certificate, key and CA are all needed.
  HubLinkOptions with_token = o;
  with_token.token_file = TokenFile();
  EXPECT_EQ(ValidateHubLink(with_token).code(), core::StatusCode::kInvalidArgument);
  for (std::string HubLinkOptions::*field :
       {&HubLinkOptions::cert_file, &HubLinkOptions::key_file, &HubLinkOptions::ca_file}) {
    HubLinkOptions missing = o;
    missing.*field = "";
    EXPECT_EQ(ValidateHubLink(missing).code(), core::StatusCode::kInvalidArgument);
  }
  HubLinkOptions rest_with_cert = o;
  rest_with_cert.url = Url();
  rest_with_cert.token_file = TokenFile();
  EXPECT_EQ(ValidateHubLink(rest_with_cert).code(), core::StatusCode::kInvalidArgument);
  HubLinkOptions path = o;
  path.url += "/v1";
  EXPECT_EQ(ValidateHubLink(path).code(), core::StatusCode::kInvalidArgument);
  HubLinkOptions not_pem = o;
  not_pem.key_file = TokenFile();
  auto c2 = HubClient::Create(not_pem);
  ASSERT_FALSE(c2.has_value());
  EXPECT_NE(c2.error().message().find("not PEM"), std::string::npos) << c2.error().message();

  // A route the service has no method for.
  auto client = HubClient::Create(o);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto none = (*client)->Get("/v1/incidents");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), core::StatusCode::kInvalidArgument);

  // A certificate from another CA: the handshake fails, no answer (retried later).
  auto other_ca =
      hub::HubCa::LoadOrCreate((dir_ / "other-ca").string(), clock_.NowUnixNanos() / 1'000'000'000);
  ASSERT_TRUE(other_ca.has_value());
  auto kc = hub::MakeAgentKeyAndCsr(kHost);
  ASSERT_TRUE(kc.has_value());
  auto forged =
      other_ca->SignAgentCsr(kc->second, kHost, "", clock_.NowUnixNanos() / 1'000'000'000, 3600);
  ASSERT_TRUE(forged.has_value());
  std::ofstream(dir_ / "forged.pem") << *forged;
  std::ofstream(dir_ / "forged.key") << kc->first;
  HubLinkOptions f = o;
  f.cert_file = (dir_ / "forged.pem").string();
  f.key_file = (dir_ / "forged.key").string();
  auto forged_client = HubClient::Create(f);
  ASSERT_TRUE(forged_client.has_value()) << forged_client.error().ToString();
  auto refused = (*forged_client)->Get("/v1/agents/nonce");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), core::StatusCode::kUnavailable);
  EXPECT_EQ(AgentAtHub(kHost), nullptr);
}

// With the hub's EK CA, over gRPC: the registration quote gets a credential challenge in the
// answer, the agent's TPM activates it (Activate), the hub then allows enforce mode; heartbeat
// answers hand out quote nonces and the next heartbeat's quote is checked against the recorded
// key: another TPM's quote withdraws enforce mode.
TEST_F(GrpcLinkTest, TheAttestationChallengeAndRequotesRunOverGrpc) {
  govern::testing::SwtpmCa ca;
  govern::testing::Swtpm tpm_a(&ca), tpm_b(&ca);
  if (!tpm_a.ok()) GTEST_SKIP() << "no swtpm: " << tpm_a.why();
  ASSERT_TRUE(tpm_b.ok()) << tpm_b.why();
  fleet_options_.require_attestation = true;
  fleet_options_.ek_ca_bundle = ca.bundle();
  fleet_options_.ek_ca_source = "ek-ca.pem";
  fleet_options_.requote_ms = 1;
  Start();
  auto open = [&](const govern::testing::Swtpm& tpm, const std::string& name) {
    govern::MeasureOptions mo;
    mo.tcti = tpm.tcti();
    mo.events_path = (dir_ / name / "events.json").string();
    auto m = govern::Measurer::Open(mo);
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    govern::AttestEvent start;
    start.kind = "agent-start";
    start.name = "/usr/bin/vigil";
    start.digest = govern::Sha256Of("vigil binary");
    EXPECT_TRUE((*m)->Restart(start).ok());
    return std::move(m).value();
  };
  auto a = open(tpm_a, "a"), b = open(tpm_b, "b");
  govern::Measurer* quoter = a.get();
  std::optional<bool> allowed;
  std::string reason;
  auto link = Link(kHost, (dir_ / "policy.yaml").string(), nullptr, [&](FleetLinkOptions& o) {
    o.quote = [&](const std::string& nonce) -> core::Result<std::string> {
      auto q = quoter->Quote({}, nonce, true);
      if (!q.has_value()) return q.error();
      return govern::EncodeQuoteDocument(*q);
    };
    o.activate = [&](const govern::CredentialChallenge& c) {
      return a->tpm().ActivateCredential(c);
    };
    o.on_enforce = [&](bool ok, const std::string& why) {
      allowed = ok;
      reason = why;
    };
  });
  ASSERT_NE(link, nullptr);
  ASSERT_TRUE(link->Beat().ok()) << link->state().last_error;
  ASSERT_TRUE(allowed.has_value());
  EXPECT_TRUE(*allowed) << reason;
  EXPECT_NE(reason.find("tied to a trusted EK"), std::string::npos) << reason;
  EXPECT_EQ(AgentAtHub(kHost)["attestation"]["state"], "verified");
  auto key = store_->AttestedKey(kHost);
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  const int64_t first_quote = key->quoted_ms;

  ASSERT_TRUE(link->Beat().ok());  // gets a nonce
  ASSERT_TRUE(link->Beat().ok());  // quotes over it
  EXPECT_TRUE(*allowed) << reason;
  EXPECT_GE(store_->AttestedKey(kHost).value().quoted_ms, first_quote);
  quoter = b.get();
  ASSERT_TRUE(link->Beat().ok());
  ASSERT_TRUE(link->Beat().ok());
  EXPECT_FALSE(*allowed);
  EXPECT_NE(reason.find("unknown-key"), std::string::npos) << reason;
  EXPECT_EQ(AgentAtHub(kHost)["attestation"]["state"], "failed");
}

}  // namespace
}  // namespace vigil::agent
