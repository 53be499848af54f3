// Agent enrolment and the agents' gRPC service (hub/enrolment.h, hub/agent_grpc.h): the token
// store and CSR checks alone, then a real hub (REST and agent gRPC ports on loopback) that
// enrols an agent with a one-time token and serves it over mTLS.

#include "hub/agent_grpc.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../abseil_deadlock.h"
#include "../test_pki.h"
#include "hub/config.h"
#include "hub/enrolment.h"
#include "hub/server.h"
#include "test_hub_state.h"
#include "vigil/v1/agent.grpc.pb.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1'700'000'000;

std::filesystem::path TempDir(const std::string& tag) {
  auto d = std::filesystem::temp_directory_path() /
           ("hub_enrol_" + tag + "_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// --- the token store ------------------------------------------------------------------------

TEST(EnrolTokensTest, ATokenEnrolsOnceAndIsStoredHashed) {
  const auto dir = TempDir("tokens");
  EnrolTokens tokens((dir / "enrol-tokens.json").string());
  auto issued = tokens.Create("canary", "", 3600, kNow, "cli:root");
  ASSERT_TRUE(issued.has_value()) << issued.error().ToString();
  EXPECT_TRUE(CheckEnrolTokenForm(issued->token, "t").ok());
  std::ifstream in(dir / "enrol-tokens.json");
  const std::string file{std::istreambuf_iterator<char>(in), {}};
  EXPECT_EQ(file.find(issued->token.substr(kEnrolTokenPrefix.size())), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "enrol-tokens.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto used = tokens.Consume(issued->token, "web-1", kNow + 10);
  ASSERT_TRUE(used.has_value()) << used.error().ToString();
  EXPECT_EQ(used->group, "canary");
  auto again = tokens.Consume(issued->token, "web-2", kNow + 20);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), core::StatusCode::kPermissionDenied);
  EXPECT_NE(again.error().message().find("already used (by \"web-1\")"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(EnrolTokensTest, RefusesExpiredUnknownMalformedAndOtherHostTokens) {
  const auto dir = TempDir("tokens");
  EnrolTokens tokens((dir / "enrol-tokens.json").string());
  auto t = tokens.Create("", "", 60, kNow, "cli:root");
  ASSERT_TRUE(t.has_value());
  auto late = tokens.Consume(t->token, "web-1", kNow + 60);
  ASSERT_FALSE(late.has_value());
  EXPECT_NE(late.error().message().find("expired"), std::string::npos);

  auto bound = tokens.Create("", "plc-gw", 60, kNow, "cli:root");
  ASSERT_TRUE(bound.has_value());
  auto other = tokens.Consume(bound->token, "web-1", kNow);
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("is for host \"plc-gw\""), std::string::npos);
  EXPECT_TRUE(tokens.Consume(bound->token, "plc-gw", kNow).has_value());

  const std::string unknown = std::string(kEnrolTokenPrefix) + std::string(64, 'a');
  EXPECT_EQ(tokens.Consume(unknown, "web-1", kNow).error().message(), "unknown enrolment token");
  auto bad = tokens.Consume("vigil-enrol-xyz", "web-1", kNow);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_FALSE(tokens.Create("bad group!", "", 60, kNow, "x").has_value());

  auto fresh = tokens.TakeUnaudited();
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->size(), 2u);
  EXPECT_TRUE(tokens.TakeUnaudited()->empty());
  std::filesystem::remove_all(dir);
}

TEST(EnrolTokensTest, FileErrorsNameTheTokenAndField) {
  auto r = ParseEnrolTokenFile(
      R"({"schema_version":"vigil.enrol-tokens/v1","tokens":[{"id":"x"}]})", "tokens.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(),
            "tokens.json: tokens[0].sha256: expected a string of at most 64 bytes");
  EXPECT_FALSE(ParseEnrolTokenFile("[]", "t").has_value());
  EXPECT_FALSE(ParseEnrolTokenFile(R"({"schema_version":"v0","tokens":[]})", "t").has_value());
  auto ok = ParseEnrolTokenFile(FormatEnrolTokenFile({}), "t");
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->empty());
}

// --- CSRs and the CA ------------------------------------------------------------------------

std::string RsaCsr(int bits) {
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned>(bits));
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_pubkey(req, key);
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(b, req);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return out;
}

TEST(CheckCsrTest, BadRequestsGetPreciseErrors) {
  EXPECT_EQ(CheckCsr("", "csr").error().message(), "csr: empty");
  EXPECT_EQ(CheckCsr("hello", "csr").error().message(),
            "csr: no PEM \"CERTIFICATE REQUEST\" block");
  EXPECT_EQ(CheckCsr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE "
                     "REQUEST-----\n",
                     "csr")
                .error()
                .message(),
            "csr: not a well-formed PKCS#10 request");
  EXPECT_EQ(CheckCsr(RsaCsr(1024), "csr").error().message(),
            "csr: RSA key of 1024 bits; expected at least 2048");
  auto good = MakeAgentKeyAndCsr("web-1");
  ASSERT_TRUE(good.has_value());
  auto info = CheckCsr(good->second, "csr");
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ(info->key_type, "EC P-256");
  // Change one byte of the signed part: the self-signature no longer verifies (or the DER
  // breaks); either way it is refused with a reason, never signed.
  std::string tampered = good->second;
  const size_t at = tampered.find('\n') + 40;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  auto t = CheckCsr(tampered, "csr");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code(), core::StatusCode::kInvalidArgument);
}

TEST(HubCaTest, CreatesOnceWithAPrivateKeyAndSignsAgentCsrs) {
  const auto dir = TempDir("ca");
  auto ca = HubCa::LoadOrCreate((dir / "ca").string(), kNow);
  ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((dir / "ca" / "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = HubCa::LoadOrCreate((dir / "ca").string(), kNow);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->cert_pem(), ca->cert_pem());

  auto kc = MakeAgentKeyAndCsr("whatever-the-agent-says");
  ASSERT_TRUE(kc.has_value());
  auto cert = ca->SignAgentCsr(kc->second, "web-1", "canary", kNow, 3600);
  ASSERT_TRUE(cert.has_value()) << cert.error().ToString();
  auto id = HubCa::PeerIdentity(*cert);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->first, "web-1");  // the hub's name for it, not the CSR's
  EXPECT_EQ(id->second, "canary");
  EXPECT_EQ(ca->SignAgentCsr("junk", "web-1", "", kNow, 3600).error().message(),
            "csr: no PEM \"CERTIFICATE REQUEST\" block");

  std::filesystem::remove(dir / "ca" / "ca.key");
  auto broken = HubCa::LoadOrCreate((dir / "ca").string(), kNow);
  ASSERT_FALSE(broken.has_value());
  EXPECT_NE(broken.error().message().find("ca.key is missing"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// --- the service, end to end ----------------------------------------------------------------

class AgentGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(hub::testing::OpenTestHubState("hub_agent_grpc_", clock_, &state_));
    dir_ = state_.dir;
    store_ = state_.store.get();
    log_ = state_.log.get();
    server_ = std::make_unique<Server>(ServerOptions{.listen = {"127.0.0.1", 0}, .threads = 2},
                                       *store_, auth_, *log_, clock_, registry_);
    ASSERT_TRUE(server_->Start().ok());
    auto ca = HubCa::LoadOrCreate((dir_ / "ca").string(), Now());
    ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
    ca_ = std::make_unique<HubCa>(std::move(ca).value());
    tokens_ = std::make_unique<EnrolTokens>((dir_ / "enrol-tokens.json").string());
    AgentGrpcOptions g;
    g.listen = {"127.0.0.1", 0};
    g.cert_ttl_s = 3600;
    agents_ = std::make_unique<AgentGrpc>(g, *ca_, *tokens_, *server_, *log_, clock_);
    auto st = agents_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    agents_->Stop();
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  // The FakeClock runs at real time here: TLS checks certificate dates against the real clock.
  int64_t Now() const { return clock_.NowUnixNanos() / 1'000'000'000; }

  std::unique_ptr<v1::AgentHub::Stub> Stub(const std::string& key = "",
                                           const std::string& cert = "",
                                           const std::string& root = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = root.empty() ? ca_->cert_pem() : root;
    o.pem_private_key = key;
    o.pem_cert_chain = cert;
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(agents_->port()),
                                  grpc::SslCredentials(o));
    return v1::AgentHub::NewStub(ch);
  }
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return c;
  }
  grpc::Status Enrol(const std::string& token, const std::string& host, v1::EnrolResponse* out,
                     std::string* key = nullptr) {
    auto kc = MakeAgentKeyAndCsr(host);
    EXPECT_TRUE(kc.has_value());
    if (key != nullptr) *key = kc->first;
    v1::EnrolRequest in;
    in.set_schema_version("vigil.hub/v1");
    in.set_token(token);
    in.set_host(host);
    in.set_csr_pem(kc->second);
    return Stub()->Enrol(Ctx().get(), in, out);
  }
  std::string NewToken(const std::string& group = "", int64_t ttl = 3600) {
    auto t = tokens_->Create(group, "", ttl, Now(), "test");
    EXPECT_TRUE(t.has_value());
    return t->token;
  }

  std::filesystem::path dir_;
  core::FakeClock clock_{core::SystemClock::Get().NowUnixNanos()};
  core::Registry registry_;
  HubAuth auth_{
      api::JwtConfig{"0123456789abcdef0123456789abcdef-hub-test", "vigil-hub", "vigil-hub"}};
  hub::testing::TestHubState state_;
  Store* store_ = nullptr;
  audit::AuditLog* log_ = nullptr;
  std::unique_ptr<Server> server_;
  std::unique_ptr<HubCa> ca_;
  std::unique_ptr<EnrolTokens> tokens_;
  std::unique_ptr<AgentGrpc> agents_;
};

// The agent port turns Abseil's mutex deadlock detection off, as vigil serve's gRPC does
// (../abseil_deadlock.h).
TEST_F(AgentGrpcTest, TheAgentPortTurnsAbseilDeadlockDetectionOff) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a new process: no fork of gRPC's threads
  EXPECT_EXIT(vigil::testing::LockTwoMutexesBothWays(dir_), ::testing::ExitedWithCode(0), "");
}

TEST_F(AgentGrpcTest, EnrolsThenRegistersHeartbeatsAndFetchesThePolicyOverMtls) {
  // A policy rolled out to the canary group.
  ArtifactRow a;
  a.content = "rules: []\n";
  a.digest = std::string(64, 'c');
  a.kind = "policy";
  a.name = "fleet.yaml";
  a.size = static_cast<int64_t>(a.content.size());
  a.signature = "untrusted comment: test\nsig\n";
  a.uploaded_by = "admin";
  ASSERT_TRUE(store_->PutArtifact(a).has_value());
  ASSERT_TRUE(store_->StartRollout(a.digest, "canary", "admin", 1).has_value());

  v1::EnrolResponse enrolled;
  std::string key;
  grpc::Status s = Enrol(NewToken("canary"), "web-1", &enrolled, &key);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(enrolled.host(), "web-1");
  EXPECT_EQ(enrolled.group(), "canary");
  EXPECT_EQ(enrolled.ca_pem(), ca_->cert_pem());
  EXPECT_EQ(enrolled.not_after_s(), Now() + 3600);

  auto agent = Stub(key, enrolled.cert_pem());
  v1::RegisterRequest reg;
  reg.set_schema_version("vigil.hub/v1");
  reg.set_mode("monitor");
  reg.set_vigil_version("test");
  reg.set_group("default");  // the certificate's group wins
  v1::FleetAnswer answer;
  s = agent->Register(Ctx().get(), reg, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(answer.host(), "web-1");
  EXPECT_EQ(answer.group(), "canary");
  EXPECT_EQ(answer.attestation_state(), "absent");
  ASSERT_EQ(answer.updates_size(), 1);
  EXPECT_EQ(answer.updates(0).digest(), a.digest);

  v1::HeartbeatRequest hb;
  hb.set_schema_version("vigil.hub/v1");
  hb.set_mode("monitor");
  hb.mutable_health()->set_events_per_s(12.5);
  hb.mutable_health()->set_alerts(3);
  s = agent->Heartbeat(Ctx().get(), hb, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(answer.updates_size(), 1);

  v1::FetchArtifactRequest fetch;
  fetch.set_schema_version("vigil.hub/v1");
  fetch.set_digest(answer.updates(0).digest());
  v1::Artifact got;
  s = agent->FetchArtifact(Ctx().get(), fetch, &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.content(), a.content);
  EXPECT_EQ(got.signature(), a.signature);

  // The hub's store saw it as the REST routes would.
  auto statuses = store_->AgentStatuses();
  ASSERT_TRUE(statuses.has_value());
  ASSERT_EQ(statuses->size(), 1u);
  EXPECT_EQ((*statuses)[0].host, "web-1");
  EXPECT_NE((*statuses)[0].status_json.find("12.5"), std::string::npos);

  // A malformed request gets the REST parser's error.
  hb.set_mode("panic");
  s = agent->Heartbeat(Ctx().get(), hb, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "mode: expected \"monitor\" or \"enforce\"");

  EXPECT_TRUE(log_->Close().ok());
  bool audited_enrol = false, audited_token = false;
  for (const auto& [type, p] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    if (p.value("action", "") == "agent-enrolled" && p["host"] == "web-1") audited_enrol = true;
    if (p.value("action", "") == "enrol-token-created") audited_token = true;
  }
  EXPECT_TRUE(audited_enrol);
  EXPECT_TRUE(audited_token);
}

TEST_F(AgentGrpcTest, RefusesASecondUseAnExpiredTokenAndABadCsr) {
  const std::string token = NewToken();
  v1::EnrolResponse out;
  ASSERT_TRUE(Enrol(token, "web-1", &out).ok());
  grpc::Status s = Enrol(token, "web-2", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("already used"), std::string::npos);

  const std::string short_lived = NewToken("", 60);
  clock_.Advance(int64_t{61} * 1'000'000'000);
  s = Enrol(short_lived, "web-3", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("expired"), std::string::npos);

  v1::EnrolRequest bad;
  bad.set_schema_version("vigil.hub/v1");
  bad.set_token(NewToken());
  bad.set_host("web-4");
  bad.set_csr_pem("not a csr");
  s = Stub()->Enrol(Ctx().get(), bad, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "csr_pem: no PEM \"CERTIFICATE REQUEST\" block");
  // The token survived the bad request.
  EXPECT_TRUE(Enrol(bad.token(), "web-4", &out).ok());
}

TEST_F(AgentGrpcTest, RefusesCallsWithoutACertificateOrWithOneFromAnotherCa) {
  v1::RegisterRequest reg;
  reg.set_schema_version("vigil.hub/v1");
  reg.set_mode("monitor");
  reg.set_vigil_version("test");
  v1::FleetAnswer answer;
  grpc::Status s = Stub()->Register(Ctx().get(), reg, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  vigil::testing::TestPki pki;
  if (!pki.ok) GTEST_SKIP() << "the openssl CLI could not make test certificates";
  s = Stub(pki.Read("rogue.key"), pki.Read("rogue.pem"))->Register(Ctx().get(), reg, &answer);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_code(), grpc::StatusCode::OK);
  EXPECT_TRUE(store_->AgentStatuses()->empty());
}

TEST_F(AgentGrpcTest, AnEscalationAskedOverGrpcGetsTheAnalystsRestDecision) {
  v1::EnrolResponse enrolled;
  std::string key;
  ASSERT_TRUE(Enrol(NewToken(), "plc-gw", &enrolled, &key).ok());
  auto agent = Stub(key, enrolled.cert_pem());
  v1::EscalateRequest e;
  e.set_schema_version("vigil.hub/v1");
  e.set_escalation_id("esc-1");
  e.set_rule("write to setpoint");
  e.set_action("kill");
  e.set_reason("odd write");
  e.set_timeout_s(120);
  v1::Escalation opened;
  grpc::Status s = agent->Escalate(Ctx().get(), e, &opened);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(opened.created());
  EXPECT_EQ(opened.state(), "pending");
  v1::Escalation again;
  ASSERT_TRUE(agent->Escalate(Ctx().get(), e, &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.id(), opened.id());

  httplib::Client http("127.0.0.1", server_->port());
  const std::string analyst = auth_.Issue("ana", Role::kAnalyst, 900, Now());
  auto res = http.Post("/v1/escalations/" + std::to_string(opened.id()) + "/decision",
                       {{"Authorization", "Bearer " + analyst}},
                       R"({"decision":"approve","note":"ok"})", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;

  v1::GetEscalationRequest get;
  get.set_schema_version("vigil.hub/v1");
  get.set_id(opened.id());
  v1::Escalation decided;
  s = agent->GetEscalation(Ctx().get(), get, &decided);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(decided.state(), "approved");
  EXPECT_EQ(decided.outcome(), "approve");
  EXPECT_EQ(decided.decided_by(), "ana");

  // Another enrolled agent may not read it.
  v1::EnrolResponse other;
  std::string other_key;
  ASSERT_TRUE(Enrol(NewToken(), "web-9", &other, &other_key).ok());
  s = Stub(other_key, other.cert_pem())->GetEscalation(Ctx().get(), get, &decided);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace vigil::hub

namespace vigil::hub {
namespace {

TEST(HubAgentsConfigTest, AgentsSectionTurnsTheServiceOnAndNamesErrors) {
  auto c = ParseHubConfig(
      "state_dir: /s\nagents:\n  listen: 0.0.0.0:9000\n  server_names: [hub.example, 10.0.0.5]\n"
      "  cert_ttl: 2d\n  enrol_attempts_per_minute: 3\n",
      "hub.yaml", "/etc");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_TRUE(c->agents.enabled);
  EXPECT_EQ(c->agents.listen.port, 9000);
  EXPECT_EQ(c->agents.server_names, (std::vector<std::string>{"hub.example", "10.0.0.5"}));
  EXPECT_EQ(c->agents.cert_ttl_s, 2u * 86400);
  EXPECT_EQ(c->agents.enrol_attempts_per_minute, 3u);
  EXPECT_EQ(ParseHubConfig("", "hub.yaml", "/etc")->agents.enrol_attempts_per_minute, 10u);
  EXPECT_FALSE(
      ParseHubConfig("agents:\n  enrol_attempts_per_minute: 0\n", "hub.yaml", "/etc").has_value());
  c->ResolvePaths();
  EXPECT_EQ(c->agents.ca_dir, "/s/ca");
  EXPECT_EQ(c->agents.enrol_tokens, "/s/enrol-tokens.json");
  EXPECT_FALSE(ParseHubConfig("", "hub.yaml", "/etc")->agents.enabled);
  auto bad = ParseHubConfig("agents:\n  cert_ttl: forever\n", "hub.yaml", "/etc");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("hub.yaml:2:13: agents.cert_ttl: expected a duration"),
            std::string::npos)
      << bad.error().message();
  auto unknown = ParseHubConfig("agents:\n  port: 1\n", "hub.yaml", "/etc");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message().find("agents.port: unknown key"), std::string::npos);
}

}  // namespace
}  // namespace vigil::hub

namespace vigil::hub {
namespace {

TEST_F(AgentGrpcTest, EnrolAttemptsAreRateLimitedPerPeerAndTheRefusalAudited) {
  // Ten attempts a minute from one address, whatever their outcome; then RESOURCE_EXHAUSTED
  // without a look at the token, until the minute has passed.
  for (int i = 0; i < 10; ++i) {
    v1::EnrolResponse out;
    EXPECT_EQ(Enrol("vigil-enrol-bad", "web-1", &out).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  const std::string token = NewToken();
  for (int i = 0; i < 3; ++i) {
    v1::EnrolResponse out;
    const grpc::Status s = Enrol(token, "web-1", &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("more than 10 enrolment attempts in a minute from 127.0.0.1"),
              std::string::npos)
        << s.error_message();
  }
  clock_.Advance(int64_t{61} * 1'000'000'000);
  v1::EnrolResponse out;
  const grpc::Status s = Enrol(token, "web-1", &out);
  ASSERT_TRUE(s.ok()) << s.error_message();  // the token was never spent by the refusals
  ASSERT_TRUE(log_->Flush().ok());
  int rate_limited = 0;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    if (payload.value("action", "") == "agent-enrol-refused" &&
        payload.value("reason", "").rfind("rate limit: ", 0) == 0) {
      ++rate_limited;
      EXPECT_EQ(payload.value("peer", ""), "127.0.0.1");
    }
  }
  EXPECT_EQ(rate_limited, 1);  // the first refusal of the minute
}

TEST_F(AgentGrpcTest, TheCaIsFetchedFromTheHandshakeOnlyByItsFingerprint) {
  const std::string addr = "127.0.0.1:" + std::to_string(agents_->port());
  auto fp = CertSha256(ca_->cert_pem());
  ASSERT_TRUE(fp.has_value()) << fp.error().ToString();
  auto ca = FetchPinnedCa(addr, *fp, 5000);
  ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
  EXPECT_EQ(*ca, ca_->cert_pem());

  const std::string wrong = std::string(64, 'a');
  auto refused = FetchPinnedCa(addr, wrong, 5000);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), core::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.error().message().find(*fp), std::string::npos)
      << refused.error().message();  // names what the server presented

  // The server's own certificate is presented too, but it is no CA.
  std::string leaf_fp;
  for (size_t at = refused.error().message().rfind("presented ") + 10;
       at < refused.error().message().size(); at += 66) {
    const std::string one = refused.error().message().substr(at, 64);
    if (one != *fp) leaf_fp = one;
  }
  ASSERT_EQ(leaf_fp.size(), 64u) << refused.error().message();
  auto leaf = FetchPinnedCa(addr, leaf_fp, 5000);
  ASSERT_FALSE(leaf.has_value());
  EXPECT_NE(leaf.error().message().find("is not a CA certificate"), std::string::npos)
      << leaf.error().message();

  auto closed = FetchPinnedCa("127.0.0.1:1", *fp, 2000);
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code(), core::StatusCode::kUnavailable);

  std::string parsed;
  std::string colons;
  for (size_t i = 0; i < fp->size(); i += 2) {
    colons += (i == 0 ? "" : ":") + fp->substr(i, 2);
  }
  for (char& c : colons) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_TRUE(ParseCertFingerprint("sha256:" + colons, &parsed));
  EXPECT_EQ(parsed, *fp);
  EXPECT_FALSE(ParseCertFingerprint(fp->substr(2), &parsed));
  EXPECT_FALSE(ParseCertFingerprint(std::string(64, 'g'), &parsed));
  EXPECT_FALSE(ParseCertFingerprint(":" + fp->substr(1), &parsed));
}

}  // namespace
}  // namespace vigil::hub
