// vigil serve end to end: certificates made with the openssl CLI at test time (a CA, the
// server's, a client's, and a client certificate from another CA), a model trained by
// `vigil train`, tokens from `vigil token issue`, the real binary on free loopback ports, then
// round trips over HTTPS (JSON) and gRPC with TLS and mTLS, the refusals (schema version,
// missing / expired / wrong-scope tokens, a certificate from another CA), the thin clients
// `vigil score` and `vigil decide`, and a clean stop on SIGTERM.

#include <grpcpp/grpcpp.h>
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
#include <thread>

#include "api/auth.h"
#include "vigil/v1/api.grpc.pb.h"
#include "../unit/test_pki.h"
#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;

namespace {

constexpr const char* kIssuer = "vigil-e2e";
constexpr const char* kAudience = "vigil-api";

constexpr const char* kServeRules = R"Y(
- rule: Anomalous program
  desc: the model flags a program that runs
  condition: evt.type=execve and ml.anomalous=true
  output: "anomalous %proc.name score %ml.score"
  priority: error
  action: {type: kill, mode: enforce, fallback: alert}
)Y";

class ServeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A TLS peer that hangs up (the server refusing a certificate) must not kill the test.
    signal(SIGPIPE, SIG_IGN);
    dir_ = fs::temp_directory_path() /
           ("serve_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    if (!MakeCertificates()) GTEST_SKIP() << "the openssl CLI could not make test certificates";
    std::ofstream(dir_ / "jwt.key") << std::string(48, 'k') << "\n";
    std::ofstream(dir_ / "rules.yaml") << kServeRules;
    std::ofstream(dir_ / "serve.yaml") << R"(http:
  listen: "127.0.0.1:0"
  tls: {cert: server.pem, key: server.key, client_ca: ca.pem}
grpc:
  listen: "127.0.0.1:0"
  tls: {cert: server.pem, key: server.key, client_ca: ca.pem}
auth:
  jwt: {hs256_key_file: jwt.key, issuer: vigil-e2e, audience: vigil-api}
  clients: {ci-runner: [score, decide]}
limits: {default_deadline_ms: 2000}
model: model.vmod
rules: [rules.yaml]
policy_version: e2e-1
)";
  }
  void TearDown() override {
    Stop();
    fs::remove_all(dir_);
  }

  // model.vmod: `vigil train` on ten streams of program "svc", each a repetition of calls
  // 0 1 2 3 (the model's normal).
  void Train() {
    std::ofstream f(dir_ / "train.jsonl");
    for (int s = 0; s < 10; ++s) {
      for (int r = 0; r < 10; ++r) {
        for (int nr : {0, 1, 2, 3}) {
          f << R"({"kind":"syscall","stream":"svc-)" << s << R"(","proc":{"pid":)" << 100 + s
            << R"(,"comm":"svc"},"syscall":{"arch":"x86_64","nr":)" << nr << "}}\n";
        }
      }
    }
    f.close();
    CmdResult trained = Vigil("train --dataset jsonl --data " + Path("train.jsonl") + " --out " +
                              Path("model.vmod"));
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  std::string Path(const std::string& f) const { return (dir_ / f).string(); }
  std::string Read(const std::string& f) const { return ReadAll(dir_ / f); }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }

  // The test certificates (tests/unit/test_pki.h), copied into dir_.
  bool MakeCertificates() {
    const vigil::testing::TestPki pki;
    if (!pki.ok) return false;
    for (const char* name : {"ca", "otherca", "server", "client", "rogue"}) {
      for (const char* ext : {".pem", ".key"}) {
        const std::string f = std::string(name) + ext;
        fs::copy_file(pki(f), dir_ / f, fs::copy_options::overwrite_existing);
      }
    }
    return true;
  }

  // `vigil token issue` with the service's key.
  std::string CliToken(const std::string& scope) {
    CmdResult r =
        Vigil("token issue --key-file " + Path("jwt.key") + " --issuer " + kIssuer +
              " --audience " + kAudience + " --subject tester --scope '" + scope + "' --ttl 10m");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }
  // A token signed with the service's key, made in process (each vigil run costs about a
  // second here); `ttl_s` < 0 gives one that has expired.
  static std::string Token(uint32_t scopes, int64_t ttl_s = 600) {
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    vigil::api::TokenClaims c;
    c.subject = "tester";
    c.issuer = kIssuer;
    c.audience = kAudience;
    c.scopes = scopes;
    c.expires = now + ttl_s;
    return vigil::api::IssueJwt(c, std::string(48, 'k'), now - 720);
  }
  static std::string ExpiredToken() { return Token(vigil::api::kScopeScore, -120); }

  // Starts `vigil serve` and waits (10 s at most) for its ready line.
  void Start() {
    vigil::e2e::Background b =
        vigil::e2e::StartVigil({"serve", "--config", Path("serve.yaml"), "--json"},
                               dir_ / "serve.out", dir_ / "serve.err");
    server_ = b.pid;
    ASSERT_GT(server_, 0) << b.error;
    const json ready = json::parse(b.ready_line, nullptr, false);
    ASSERT_TRUE(ready.is_object()) << b.ready_line;
    EXPECT_EQ(ready["status"], "ready");
    http_port_ = ready["http_port"];
    grpc_port_ = ready["grpc_port"];
  }
  // SIGTERM; the exit code, or -1 when it did not stop by itself within 10 s.
  int Stop() { return vigil::e2e::StopVigil(server_); }

  std::unique_ptr<httplib::SSLClient> Https(const std::string& cert = "") {
    auto c = cert.empty() ? std::make_unique<httplib::SSLClient>("localhost", http_port_)
                          : std::make_unique<httplib::SSLClient>(
                                "localhost", http_port_, Path(cert + ".pem"), Path(cert + ".key"));
    c->set_ca_cert_path(Path("ca.pem").c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5);
    c->set_read_timeout(5);
    return c;
  }
  static httplib::Result Post(httplib::SSLClient& c, const std::string& route,
                              const std::string& body, const std::string& token = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return c.Post(route.c_str(), h, body, "application/json");
  }
  std::shared_ptr<grpc::Channel> Channel(const std::string& cert = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Read("ca.pem");
    if (!cert.empty()) {
      o.pem_private_key = Read(cert + ".key");
      o.pem_cert_chain = Read(cert + ".pem");
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(grpc_port_),
                                     grpc::SslCredentials(o), args);
  }
  // A client context with a 5 s deadline and, when given, a bearer token.
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
    return c;
  }

  fs::path dir_;
  pid_t server_ = -1;
  int http_port_ = 0, grpc_port_ = 0;
};

constexpr const char* kNormal =
    R"({"schema_version":"vigil.api/v1","subject":"svc","arch":"x86_64",)"
    R"("syscalls":[0,1,2,3,0,1,2,3,0,1,2,3]})";
constexpr const char* kOdd = R"({"schema_version":"vigil.api/v1","subject":"svc","arch":"x86_64",)"
                             R"("syscalls":[59,59,59,41,42,59,59,59,41,42,59,59]})";

TEST_F(ServeCliTest, ServesHttpsAndGrpcWithTlsRefusesBadCredentialsAndStopsOnSigterm) {
  const std::string score_token = CliToken("score");
  const std::string decide_token = Token(vigil::api::kScopeDecide);
  const std::string enforce_token = Token(vigil::api::kScopeEnforce);
  const std::string agent_token = Token(vigil::api::kScopeAgent);
  ASSERT_FALSE(score_token.empty());
  Train();
  Start();
  ASSERT_GT(http_port_, 0);
  ASSERT_GT(grpc_port_, 0);
  auto https = Https();
  auto ready = https->Get("/readyz");
  ASSERT_TRUE(ready) << httplib::to_string(ready.error());
  EXPECT_EQ(ready->status, 200);

  // Score over HTTPS with a bearer token: versions, flags, explanation; then from the cache.
  auto first = Post(*https, "/v1/score", kOdd, score_token);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  json a = json::parse(first->body);
  EXPECT_EQ(a["schema_version"], "vigil.api/v1");
  EXPECT_EQ(a["policy_version"], "e2e-1");
  EXPECT_FALSE(a["result"]["model_name"].get<std::string>().empty());
  EXPECT_FALSE(a["result"]["cached"].get<bool>());
  EXPECT_FALSE(a["result"]["fallback"].get<bool>());
  EXPECT_FALSE(a["result"]["explanation"].empty());
  auto again = Post(*https, "/v1/score", kOdd, score_token);
  ASSERT_TRUE(again);
  json b = json::parse(again->body);
  EXPECT_TRUE(b["result"]["cached"].get<bool>());
  EXPECT_EQ(b["result"]["score"], a["result"]["score"]);

  // score:batch gives the single answers, in order.
  auto normal = Post(*https, "/v1/score", kNormal, score_token);
  ASSERT_TRUE(normal);
  const json n = json::parse(normal->body);
  const json items = {json::parse(kOdd), json::parse(kNormal)};
  auto batch = Post(*https, "/v1/score:batch",
                    json{{"schema_version", "vigil.api/v1"}, {"items", items}}.dump(), score_token);
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->status, 200) << batch->body;
  const json results = json::parse(batch->body)["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["score"], a["result"]["score"]);
  EXPECT_EQ(results[1]["score"], n["result"]["score"]);

  // Decide: with a caller's score, and with features the model scores.
  auto decide = Post(*https, "/v1/decide",
                     R"({"schema_version":"vigil.api/v1",
                         "event":{"kind":"process_exec","comm":"svc","exe":"/usr/bin/svc","pid":9},
                         "score":{"score":0.99,"anomalous":true}})",
                     decide_token);
  ASSERT_TRUE(decide);
  ASSERT_EQ(decide->status, 200) << decide->body;
  json d = json::parse(decide->body);
  EXPECT_EQ(d["action"], "kill");
  EXPECT_EQ(d["rule"], "Anomalous program");
  EXPECT_TRUE(d["enforce"].get<bool>());
  auto decide_features =
      Post(*https, "/v1/decide",
           std::string(R"({"schema_version":"vigil.api/v1","event":{"kind":"process_exec",)") +
               R"("comm":"svc"},"features":)" + kOdd + "}",
           decide_token);
  ASSERT_TRUE(decide_features);
  ASSERT_EQ(decide_features->status, 200) << decide_features->body;
  d = json::parse(decide_features->body);
  EXPECT_EQ(d["score"]["score"], a["result"]["score"]);
  EXPECT_EQ(d["action"], a["result"]["anomalous"].get<bool>() ? "kill" : "allow");

  // Refusals: schema version missing or unknown (400), no token / expired (401), wrong scope
  // (403), a client certificate from another CA (no TLS session).
  auto missing = Post(*https, "/v1/score", R"({"subject":"svc","syscalls":[1]})", score_token);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  EXPECT_NE(missing->body.find("schema_version: missing"), std::string::npos) << missing->body;
  auto v2 =
      Post(*https, "/v1/score", R"({"schema_version":"vigil.api/v2","syscalls":[1]})", score_token);
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->status, 400);
  EXPECT_NE(v2->body.find("not supported"), std::string::npos) << v2->body;
  auto anonymous = Post(*https, "/v1/score", kNormal);
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(json::parse(anonymous->body)["error"]["code"], "UNAUTHENTICATED");
  auto expired = Post(*https, "/v1/score", kNormal, ExpiredToken());
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->status, 401);
  auto wrong_scope = Post(*https, "/v1/score", kNormal, decide_token);
  ASSERT_TRUE(wrong_scope);
  EXPECT_EQ(wrong_scope->status, 403);
  EXPECT_EQ(json::parse(wrong_scope->body)["error"]["code"], "PERMISSION_DENIED");
  auto mtls = Https("client");
  auto by_cert = Post(*mtls, "/v1/score", kNormal);
  ASSERT_TRUE(by_cert) << httplib::to_string(by_cert.error());
  EXPECT_EQ(by_cert->status, 200) << by_cert->body;
  auto rogue = Https("rogue");
  EXPECT_FALSE(Post(*rogue, "/v1/score", kNormal));

  // gRPC with TLS: a token, or the client certificate (mTLS).
  const json odd_calls = json::parse(kOdd)["syscalls"];
  const json normal_calls = json::parse(kNormal)["syscalls"];
  {
    auto stub = vigil::v1::Inference::NewStub(Channel());
    vigil::v1::ScoreRequest req;
    req.set_schema_version("vigil.api/v1");
    req.set_subject("svc");
    req.set_arch("x86_64");
    for (int nr : odd_calls) req.add_syscalls(nr);
    vigil::v1::ScoreResponse resp;
    auto s = stub->Score(Ctx(score_token).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_DOUBLE_EQ(resp.result().score(), a["result"]["score"].get<double>());
    EXPECT_TRUE(resp.result().cached());
    EXPECT_EQ(stub->Score(Ctx().get(), req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(stub->Score(Ctx(ExpiredToken()).get(), req, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(stub->Score(Ctx(decide_token).get(), req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    vigil::v1::ScoreRequest unversioned = req;
    unversioned.clear_schema_version();
    auto refused = stub->Score(Ctx(score_token).get(), unversioned, &resp);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(refused.error_message().find("schema_version"), std::string::npos);

    auto by_client_cert = vigil::v1::Inference::NewStub(Channel("client"));
    vigil::v1::ScoreBatchRequest many;
    many.set_schema_version("vigil.api/v1");
    *many.add_items() = req;
    many.mutable_items(0)->clear_schema_version();
    vigil::v1::ScoreRequest calm = req;
    calm.clear_syscalls();
    for (int nr : normal_calls) calm.add_syscalls(nr);
    *many.add_items() = calm;
    vigil::v1::ScoreBatchResponse out;
    s = by_client_cert->ScoreBatch(Ctx().get(), many, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(out.results_size(), 2);
    EXPECT_DOUBLE_EQ(out.results(0).score(), a["result"]["score"].get<double>());
    EXPECT_DOUBLE_EQ(out.results(1).score(), n["result"]["score"].get<double>());

    auto rogue_stub = vigil::v1::Inference::NewStub(Channel("rogue"));
    EXPECT_FALSE(rogue_stub->Score(Ctx().get(), req, &resp).ok());

    auto policy = vigil::v1::Policy::NewStub(Channel());
    vigil::v1::DecideRequest dr;
    dr.set_schema_version("vigil.api/v1");
    dr.mutable_event()->set_kind("process_exec");
    dr.mutable_event()->set_comm("svc");
    dr.mutable_score()->set_score(0.99);
    dr.mutable_score()->set_anomalous(true);
    vigil::v1::DecideResponse dresp;
    s = policy->Decide(Ctx(decide_token).get(), dr, &dresp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(dresp.action(), "kill");
    EXPECT_EQ(dresp.policy_version(), "e2e-1");
  }

  // Control: an agent watches host h1 over gRPC; an operator's enforce over HTTPS waits for its
  // acknowledgement; the rollback reaches the agent too.
  {
    auto control = vigil::v1::Control::NewStub(Channel());
    auto watch_ctx = Ctx(agent_token);
    watch_ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    vigil::v1::WatchRequest w;
    w.set_schema_version("vigil.api/v1");
    w.set_host("h1");
    auto reader = control->Watch(watch_ctx.get(), w);
    std::thread agent([&] {
      vigil::v1::Order order;
      ASSERT_TRUE(reader->Read(&order));
      EXPECT_EQ(order.action(), "kill");
      EXPECT_EQ(order.pid(), 4242u);
      vigil::v1::Ack ack;
      ack.set_schema_version("vigil.api/v1");
      ack.set_order_id(order.id());
      ack.set_ok(true);
      ack.set_detail("sent SIGKILL");
      vigil::v1::OrderStatus st;
      EXPECT_TRUE(control->Acknowledge(Ctx(agent_token).get(), ack, &st).ok());
    });
    auto enforce = Post(*https, "/v1/enforce",
                        R"({"schema_version":"vigil.api/v1","host":"h1","action":"kill",)"
                        R"("pid":4242,"wait_ms":5000})",
                        enforce_token);
    agent.join();
    ASSERT_TRUE(enforce);
    ASSERT_EQ(enforce->status, 200) << enforce->body;
    const json st = json::parse(enforce->body);
    EXPECT_EQ(st["state"], "done");
    EXPECT_EQ(st["detail"], "sent SIGKILL");
    vigil::v1::RollbackRequest rb;
    rb.set_schema_version("vigil.api/v1");
    rb.set_order_id(st["order"]["id"].get<std::string>());
    vigil::v1::OrderStatus rolled;
    auto s = control->Rollback(Ctx(enforce_token).get(), rb, &rolled);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(rolled.order().rollback_of(), rb.order_id());
    vigil::v1::Order next;
    ASSERT_TRUE(reader->Read(&next));
    EXPECT_EQ(next.action(), "rollback");
    watch_ctx->TryCancel();
    EXPECT_EQ(control->Rollback(Ctx(score_token).get(), rb, &rolled).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }

  // The thin clients, against the same server.
  std::ofstream(dir_ / "score.token") << score_token << "\n";
  std::ofstream(dir_ / "decide.token") << decide_token << "\n";
  std::ofstream(dir_ / "odd.json") << kOdd;
  std::ofstream(dir_ / "unversioned.json") << R"({"subject":"svc","syscalls":[1]})";
  std::ofstream(dir_ / "decide.json")
      << R"({"schema_version":"vigil.api/v1","event":{"kind":"process_exec","comm":"svc"},)"
         R"("score":{"score":0.99,"anomalous":true}})";
  const std::string server =
      " --server https://127.0.0.1:" + std::to_string(http_port_) + " --ca " + Path("ca.pem");
  CmdResult score = Vigil("score" + server + " --event " + Path("odd.json") + " --cert " +
                          Path("client.pem") + " --key " + Path("client.key") + " --json");
  const json scored = json::parse(score.out, nullptr, false);
  ASSERT_TRUE(scored.is_object()) << score.out << score.err;
  EXPECT_EQ(scored["result"]["score"], a["result"]["score"]);
  EXPECT_EQ(score.exit_code, scored["result"]["anomalous"].get<bool>() ? 1 : 0);
  CmdResult kill = Vigil("decide" + server + " --event " + Path("decide.json") + " --token-file " +
                         Path("decide.token"));
  EXPECT_EQ(kill.exit_code, 1) << kill.err;
  EXPECT_NE(kill.out.find("kill  rule: Anomalous program  policy e2e-1"), std::string::npos)
      << kill.out;
  CmdResult bad = Vigil("score" + server + " --event " + Path("unversioned.json") +
                        " --token-file " + Path("score.token"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("HTTP 400"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("schema_version"), std::string::npos) << bad.err;

  // The engine's cache hit ratio and the start-up time are on /metrics.
  auto metrics = https->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("vigil_engine_cache_hit_ratio{engine=\"serve\"}"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("vigil_api_ready_seconds"), std::string::npos);

  // SIGHUP reloads the model and rules and swaps them in: a model served anew (not from the
  // cache), and the first score after it timed on /metrics. A reload that fails (the model file
  // gone) keeps the loaded model serving and says so on stderr.
  auto wait_for_err = [&](const std::string& text) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Read("serve.err").find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  };
  ASSERT_EQ(::kill(server_, SIGHUP), 0);
  ASSERT_TRUE(wait_for_err("vigil serve: reloaded")) << Read("serve.err");
  auto reloaded = Post(*https, "/v1/score", kOdd, score_token);
  ASSERT_TRUE(reloaded);
  ASSERT_EQ(reloaded->status, 200) << reloaded->body;
  EXPECT_FALSE(json::parse(reloaded->body)["result"]["cached"].get<bool>());
  metrics = https->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("vigil_engine_swaps_total{engine=\"serve\"} 1"), std::string::npos);
  const size_t at = metrics->body.find("\nvigil_api_first_score_seconds ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stod(metrics->body.substr(at + 31)), 0.0);
  fs::rename(dir_ / "model.vmod", dir_ / "model.away");
  ASSERT_EQ(::kill(server_, SIGHUP), 0);
  ASSERT_TRUE(wait_for_err("vigil serve: reload failed, still serving")) << Read("serve.err");
  auto still = Post(*https, "/v1/score", kOdd, score_token);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, 200) << still->body;

  // SIGTERM: a clean stop with exit code 0.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Stop(), 0) << Read("serve.err");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(ServeCliTest, BadConfigIsExitCode2NamingTheFileAndKey) {
  std::ofstream(dir_ / "queue.yaml") << "http: {listen: \"127.0.0.1:0\"}\nmodel: model.vmod\n"
                                        "rules: [rules.yaml]\nlimits: {queue: 0}\n";
  CmdResult r = Vigil("serve --config " + Path("queue.yaml"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("queue.yaml:4:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("limits.queue"), std::string::npos) << r.err;
  std::ofstream(dir_ / "other.yaml") << "http: {listen: \"127.0.0.1:0\"}\nmodel: nowhere.vmod\n"
                                        "rules: [rules.yaml]\n";
  r = Vigil("serve --config " + Path("other.yaml"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nowhere.vmod"), std::string::npos) << r.err;
}

}  // namespace
