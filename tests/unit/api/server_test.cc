// Round trips through the HTTP and gRPC transports on loopback with real TLS: certificates are
// made at test time with the openssl CLI. The model behind the service counts its calls, so
// each refusal test also shows that the request never reached it.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../abseil_deadlock.h"
#include "../test_pki.h"
#include "api/codec.h"
#include "api/frontend.h"
#include "api/grpc_api.h"
#include "api/http_api.h"
#include "api/orders.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "model/model.h"
#include "policy/rules.h"
#include "service/decision_service.h"
#include "vigil/v1/api.grpc.pb.h"

namespace vigil::api {
namespace {

namespace fs = std::filesystem;

// Scores a window by its share of calls numbered 59 (execve): 1.0 for a window of execves.
class CountingModel final : public model::Model {
 public:
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view subject) const override {
    calls.fetch_add(1);
    const int delay = delay_ms.load();
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    {
      std::unique_lock<std::mutex> lock(gate_mu_);
      ++entered_;
      gate_cv_.notify_all();
      gate_cv_.wait(lock, [this] { return !held_; });
    }
    return std::make_unique<Scorer>(std::string(subject), this);
  }
  // While held, every NewStream waits for Release(): a model late by construction, whatever the
  // machine's load. TearDown releases it.
  void Hold() {
    std::lock_guard<std::mutex> lock(gate_mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(gate_mu_);
      held_ = false;
    }
    gate_cv_.notify_all();
  }
  // Waits (up to `limit`) until NewStream has been entered `n` times in all.
  bool WaitEntered(int n, std::chrono::milliseconds limit) const {
    std::unique_lock<std::mutex> lock(gate_mu_);
    return gate_cv_.wait_for(lock, limit, [&] { return entered_ >= n; });
  }
  mutable std::atomic<int> calls{0};
  std::atomic<int> delay_ms{0};

 private:
  class Scorer final : public model::StreamScorer {
   public:
    Scorer(std::string subject, const CountingModel* m) : subject_(std::move(subject)), m_(m) {}
    void Observe(const core::Event& e) override {
      ++n_;
      if (e.syscall.nr == 59) ++hits_;
    }
    core::Verdict Current() const override {
      core::Verdict v;
      v.score = n_ == 0 ? 0 : double(hits_) / double(n_);
      v.anomalous = v.score >= 0.5;
      v.model_name = m_->name();
      v.model_version = m_->version();
      v.subject = subject_;
      v.explanation.push_back({"execve share", v.score});
      return v;
    }
    uint64_t observed() const override { return n_; }

   private:
    std::string subject_;
    const CountingModel* m_;
    uint64_t n_ = 0, hits_ = 0;
  };
  std::string family_ = "test-count", name_ = "counting", version_ = "7";
  mutable std::mutex gate_mu_;
  mutable std::condition_variable gate_cv_;
  bool held_ = false;
  mutable int entered_ = 0;
};

constexpr const char* kRules = R"Y(
- rule: Anomalous program
  desc: the model flags it
  condition: evt.type=execve and ml.anomalous=true
  output: "anomalous %proc.name score %ml.score"
  priority: error
  action: {type: kill, mode: enforce, fallback: alert}
)Y";

const std::string kKey(48, 's');

v1::ScoreRequest ScoreOf(std::initializer_list<int> calls, uint32_t deadline_ms = 0);

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!pki_.ok) GTEST_SKIP() << "openssl CLI could not make test certificates";
    model_ = std::make_shared<CountingModel>();
    auto rules = policy::RuleSet::LoadString(kRules, "rules.yaml");
    ASSERT_TRUE(rules.has_value()) << rules.error().message();
    service::ScoringConfig scoring;
    scoring.fallback_score = 1.0;
    svc_ = std::make_unique<service::ModelDecisionService>(scoring, registry_, clock_);
    auto installed =
        svc_->Install(model_, std::make_shared<const policy::RuleSet>(std::move(*rules)), "p1");
    ASSERT_TRUE(installed.ok()) << installed.message();
    AuthConfig auth;
    auth.jwt = {kKey, "vigil-test", "vigil-api", 30};
    auth.client_scopes["ci-runner"] = kScopeScore | kScopeDecide;
    auth_ = std::make_unique<Authenticator>(auth);
  }
  void Start(FrontendOptions fo = {}) {
    fo.default_deadline_ms = fo.default_deadline_ms == 50 ? 2000 : fo.default_deadline_ms;
    frontend_ = std::make_unique<Frontend>(fo, *auth_, *svc_, orders_, registry_, clock_);
    ASSERT_TRUE(frontend_->Init().ok());
    TlsFiles tls{pki_("server.pem"), pki_("server.key"), pki_("ca.pem"), false};
    HttpApiOptions ho;
    ho.tls = tls;
    http_ = std::make_unique<HttpApi>(ho, *frontend_, registry_);
    ASSERT_TRUE(http_->Start().ok());
    GrpcApiOptions go;
    go.tls = tls;
    go.max_threads = grpc_threads_;
    go.poll_threads = grpc_pollers_;
    grpc_ = std::make_unique<GrpcApi>(go, *frontend_);
    auto s = grpc_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  void TearDown() override {
    if (model_) model_->Release();
    orders_.Shutdown();
    if (grpc_) grpc_->Stop();
    if (http_) http_->Stop();
  }
  std::string Token(uint32_t scopes, int64_t ttl = 600) {
    TokenClaims c{"tester", "vigil-test", "vigil-api", scopes, 0, 0};
    const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
    c.expires = now + ttl;
    return IssueJwt(c, kKey, now);
  }
  std::unique_ptr<httplib::SSLClient> Https(const std::string& cert = "",
                                            const std::string& key = "") {
    auto c = cert.empty() ? std::make_unique<httplib::SSLClient>("localhost", http_->port())
                          : std::make_unique<httplib::SSLClient>("localhost", http_->port(),
                                                                 pki_(cert), pki_(key));
    c->set_ca_cert_path(pki_("ca.pem").c_str());
    c->enable_server_certificate_verification(true);
    return c;
  }
  httplib::Result Post(httplib::SSLClient& c, const std::string& path, const std::string& body,
                       const std::string& token = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return c.Post(path.c_str(), h, body, "application/json");
  }
  std::shared_ptr<grpc::Channel> Channel(bool client_cert, const std::string& prefix = "client") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = pki_.Read("ca.pem");
    if (client_cert) {
      o.pem_private_key = pki_.Read(prefix + ".key");
      o.pem_cert_chain = pki_.Read(prefix + ".pem");
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(grpc_->port()),
                                     grpc::SslCredentials(o), args);
  }

  // An agent's Watch stream for `host` (agent scope), on `ctx`.
  std::unique_ptr<grpc::ClientReader<v1::Order>> Watch(v1::Control::Stub& control,
                                                       grpc::ClientContext& ctx,
                                                       const std::string& host) {
    ctx.AddMetadata("authorization", "Bearer " + Token(kScopeAgent));
    v1::WatchRequest w;
    w.set_schema_version("vigil.api/v1");
    w.set_host(host);
    return control.Watch(&ctx, w);
  }
  // The agent's acknowledgement of `order_id`, done with `detail`.
  grpc::Status Acknowledge(v1::Control::Stub& control, const std::string& order_id,
                           const std::string& detail) {
    grpc::ClientContext actx;
    actx.AddMetadata("authorization", "Bearer " + Token(kScopeAgent));
    v1::Ack ack;
    ack.set_schema_version("vigil.api/v1");
    ack.set_order_id(order_id);
    ack.set_ok(true);
    ack.set_detail(detail);
    v1::OrderStatus st;
    return control.Acknowledge(&actx, ack, &st);
  }

  // Teaches the service the model's time (the first score goes to the engine's worker; later
  // ones are answered on the polling thread), then opens a Watch stream for `host` and reads
  // an order with `pid` from it: the stream then holds a handler thread (its context lives in
  // the fixture; Stop ends it). A thread ends its task just after its call's answer is sent,
  // so a stream opened at once may find the one thread not yet free and be refused: it is
  // opened again then (the order stays queued for the host). Null, with a failure recorded,
  // when a step fails.
  std::unique_ptr<grpc::ClientReader<v1::Order>> HoldAHandlerThread(v1::Inference::Stub& inference,
                                                                    v1::Control::Stub& control,
                                                                    const std::string& host,
                                                                    uint32_t pid) {
    grpc::ClientContext sctx;
    v1::ScoreResponse sr;
    if (auto s = inference.Score(&sctx, ScoreOf({59, 59}), &sr); !s.ok()) {
      ADD_FAILURE() << "first score: " << s.error_message();
      return nullptr;
    }
    v1::OrderStatus st;
    if (auto s = Enforce(control, host, "kill", pid, 0, &st); !s.ok()) {
      ADD_FAILURE() << "enforce: " << s.error_message();
      return nullptr;
    }
    grpc::Status last;
    for (int attempt = 0; attempt < 100; ++attempt) {
      held_.push_back(std::make_unique<grpc::ClientContext>());
      auto stream = Watch(control, *held_.back(), host);
      v1::Order order;
      if (stream->Read(&order)) {
        if (order.pid() == pid) return stream;
        ADD_FAILURE() << "order for pid " << order.pid() << ", not " << pid;
        return nullptr;
      }
      last = stream->Finish();
      if (last.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no order on a Watch stream: " << last.error_message();
    return nullptr;
  }

  // An operator's order over gRPC (enforce scope), waiting up to `wait_ms` for its end.
  grpc::Status Enforce(v1::Control::Stub& control, const std::string& host,
                       const std::string& action, uint32_t pid, uint32_t wait_ms,
                       v1::OrderStatus* st) {
    grpc::ClientContext ectx;
    ectx.AddMetadata("authorization", "Bearer " + Token(kScopeEnforce));
    v1::EnforceRequest e;
    e.set_schema_version("vigil.api/v1");
    e.set_host(host);
    e.set_action(action);
    e.set_pid(pid);
    e.set_wait_ms(wait_ms);
    return control.Enforce(&ectx, e, st);
  }

  static inline vigil::testing::TestPki pki_;
  core::SystemClock& clock_ = core::SystemClock::Get();
  core::Registry registry_;
  std::shared_ptr<CountingModel> model_;
  std::unique_ptr<service::ModelDecisionService> svc_;
  std::unique_ptr<Authenticator> auth_;
  OrderBook orders_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<HttpApi> http_;
  std::unique_ptr<GrpcApi> grpc_;
  int grpc_threads_ = 16;
  std::vector<std::unique_ptr<grpc::ClientContext>> held_;  // HoldAHandlerThread's streams
  int grpc_pollers_ = 1;
};

v1::ScoreRequest ScoreOf(std::initializer_list<int> calls, uint32_t deadline_ms) {
  v1::ScoreRequest r;
  r.set_schema_version("vigil.api/v1");
  r.set_subject("sh");
  r.set_arch("x86_64");
  for (int n : calls) r.add_syscalls(n);
  r.set_deadline_ms(deadline_ms);
  return r;
}

constexpr const char* kScore =
    R"({"schema_version":"vigil.api/v1","subject":"sh","arch":"x86_64","syscalls":[59,59,1,59]})";

TEST_F(ServerTest, HttpScoreWithTokenCarriesVersionsExplanationAndFlags) {
  Start();
  auto c = Https();
  const std::string token = Token(kScopeScore);
  auto res = Post(*c, "/v1/score", kScore, token);
  ASSERT_TRUE(res) << httplib::to_string(res.error()) << " verify " << c->get_openssl_verify_result();
  ASSERT_EQ(res->status, 200) << res->body;
  v1::ScoreResponse r;
  ASSERT_TRUE(ParseJson(res->body, &r).ok()) << res->body;
  EXPECT_EQ(r.schema_version(), "vigil.api/v1");
  EXPECT_DOUBLE_EQ(r.result().score(), 0.75);
  EXPECT_EQ(r.result().model_name(), "counting");
  EXPECT_EQ(r.result().model_version(), "7");
  EXPECT_EQ(r.policy_version(), "p1");
  EXPECT_EQ(r.result().explanation(0).what(), "execve share");
  EXPECT_FALSE(r.result().cached());
  EXPECT_FALSE(r.result().fallback());
  EXPECT_NE(res->body.find("\"cached\":false"), std::string::npos);
  // The same request again comes from the cache, without a model call.
  auto again = Post(*c, "/v1/score", kScore, token);
  ASSERT_TRUE(ParseJson(again->body, &r).ok());
  EXPECT_TRUE(r.result().cached());
  EXPECT_EQ(model_->calls.load(), 1);
  auto metrics = c->Get("/metrics");
  // The token was verified once and remembered for the second request.
  EXPECT_NE(metrics->body.find("vigil_api_bearer_tokens_total{check=\"verified\"} 1\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("vigil_api_bearer_tokens_total{check=\"cached\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("vigil_api_cache_hit_ratio 0.5"), std::string::npos);
  // The engine's own count of the same.
  EXPECT_NE(metrics->body.find("vigil_engine_cache_hit_ratio{engine=\"serve\"} 0.5"),
            std::string::npos);
}

TEST_F(ServerTest, HttpRefusalsNeverReachTheModel) {
  Start();
  auto c = Https();
  EXPECT_EQ(Post(*c, "/v1/score", kScore)->status, 401);                         // no token
  EXPECT_EQ(Post(*c, "/v1/score", kScore, Token(kScopeScore, -120))->status, 401);  // expired
  EXPECT_EQ(Post(*c, "/v1/score", kScore, Token(kScopeDecide))->status, 403);    // wrong scope
  EXPECT_EQ(Post(*c, "/v1/score", kScore, "not.a.jwt")->status, 401);
  auto bad = Post(*c, "/v1/score", R"({"subject":"sh","syscalls":[1]})", Token(kScopeScore));
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("schema_version: missing"), std::string::npos);
  auto v2 = Post(*c, "/v1/score", R"({"schema_version":"vigil.api/v2","syscalls":[1]})",
                 Token(kScopeScore));
  EXPECT_EQ(v2->status, 400);
  EXPECT_NE(v2->body.find("not supported"), std::string::npos);
  EXPECT_EQ(Post(*c, "/v1/score", "{not json", Token(kScopeScore))->status, 400);
  // A certificate from another CA never gets a TLS session.
  auto rogue = Https("rogue.pem", "rogue.key");
  EXPECT_FALSE(Post(*rogue, "/v1/score", kScore));
  EXPECT_EQ(model_->calls.load(), 0);
  // A client certificate from the configured CA is a credential of its own.
  auto mtls = Https("client.pem", "client.key");
  auto ok = Post(*mtls, "/v1/score", kScore);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(model_->calls.load(), 1);
}

TEST_F(ServerTest, ReadyzHealthzAndDecide) {
  Start();
  auto c = Https();
  EXPECT_EQ(c->Get("/healthz")->status, 200);
  EXPECT_EQ(c->Get("/readyz")->status, 200);
  auto res = Post(*c, "/v1/decide",
                  R"({"schema_version":"vigil.api/v1",
                      "event":{"kind":"process_exec","comm":"sh","exe":"/bin/sh","pid":7},
                      "features":{"subject":"sh","arch":"x86_64","syscalls":[59,59]}})",
                  Token(kScopeDecide));
  ASSERT_EQ(res->status, 200) << res->body;
  v1::DecideResponse d;
  ASSERT_TRUE(ParseJson(res->body, &d).ok());
  EXPECT_EQ(d.action(), "kill");
  EXPECT_EQ(d.rule(), "Anomalous program");
  EXPECT_TRUE(d.enforce());
  EXPECT_EQ(d.score().model_version(), "7");
  EXPECT_EQ(d.policy_version(), "p1");
  auto calm = Post(*c, "/v1/decide",
                   R"({"schema_version":"vigil.api/v1","event":{"kind":"process_exec","comm":"ls"},
                       "score":{"score":0.1}})",
                   Token(kScopeDecide));
  ASSERT_TRUE(ParseJson(calm->body, &d).ok());
  EXPECT_EQ(d.action(), "allow");
}

TEST_F(ServerTest, NotReadyUntilLoaded) {
  service::ModelDecisionService empty({}, registry_, clock_);
  Frontend fe({}, *auth_, empty, orders_, registry_, clock_);
  ASSERT_TRUE(fe.Init().ok());
  HttpApi http({}, fe, registry_);
  ASSERT_TRUE(http.Start().ok());
  httplib::Client c("127.0.0.1", http.port());
  auto ready = c.Get("/readyz");
  EXPECT_EQ(ready->status, 503);
  httplib::Headers h{{"Authorization", "Bearer " + Token(kScopeScore)}};
  EXPECT_EQ(c.Post("/v1/score", h, kScore, "application/json")->status, 503);
  http.Stop();
}

TEST_F(ServerTest, LateModelGivesTheFallbackMarkedAsSuch) {
  Start();
  model_->delay_ms = 300;
  auto c = Https();
  auto res = Post(*c, "/v1/score",
                  R"({"schema_version":"vigil.api/v1","syscalls":[1,2],"deadline_ms":20})",
                  Token(kScopeScore));
  ASSERT_EQ(res->status, 200) << res->body;
  v1::ScoreResponse r;
  ASSERT_TRUE(ParseJson(res->body, &r).ok());
  EXPECT_TRUE(r.result().fallback());
  EXPECT_EQ(r.result().fallback_reason(), "deadline exceeded");
  EXPECT_DOUBLE_EQ(r.result().score(), 1.0);
  EXPECT_EQ(r.result().model_name(), "counting");
}

TEST_F(ServerTest, RateLimitAnswers429AndResourceExhausted) {
  FrontendOptions fo;
  fo.rate = {0.001, 2};
  Start(fo);
  auto c = Https();
  const std::string t = Token(kScopeScore);
  EXPECT_EQ(Post(*c, "/v1/score", kScore, t)->status, 200);
  EXPECT_EQ(Post(*c, "/v1/score", kScore, t)->status, 200);
  auto limited = Post(*c, "/v1/score", kScore, t);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "1");
  auto stub = v1::Inference::NewStub(Channel(false));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + t);
  v1::ScoreRequest req;
  ASSERT_TRUE(ParseJson(kScore, &req).ok());
  v1::ScoreResponse resp;
  EXPECT_EQ(stub->Score(&ctx, req, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServerTest, GrpcRoundTripsBatchAndRefusals) {
  Start();
  auto stub = v1::Inference::NewStub(Channel(true));
  v1::ScoreBatchRequest batch;
  batch.set_schema_version("vigil.api/v1");
  for (const auto& calls : {std::vector<int>{59, 1}, std::vector<int>{1, 2, 3}}) {
    auto* item = batch.add_items();
    item->set_subject("sh");
    item->set_arch("x86_64");
    for (int n : calls) item->add_syscalls(n);
  }
  grpc::ClientContext ctx;
  v1::ScoreBatchResponse out;
  auto s = stub->ScoreBatch(&ctx, batch, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(out.results_size(), 2);
  // Batched answers equal single answers.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext one;
    v1::ScoreRequest single = batch.items(i);
    single.set_schema_version("vigil.api/v1");
    v1::ScoreResponse r;
    ASSERT_TRUE(stub->Score(&one, single, &r).ok());
    EXPECT_DOUBLE_EQ(r.result().score(), out.results(i).score());
  }
  EXPECT_DOUBLE_EQ(out.results(0).score(), 0.5);
  grpc::ClientContext bad;
  v1::ScoreRequest nov;
  nov.add_syscalls(1);
  v1::ScoreResponse r;
  auto refused = stub->Score(&bad, nov, &r);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("schema_version"), std::string::npos);
  const int before = model_->calls.load();
  auto anon = v1::Inference::NewStub(Channel(false));
  grpc::ClientContext none;
  EXPECT_EQ(anon->Score(&none, batch.items(0), &r).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto rogue = v1::Inference::NewStub(Channel(true, "rogue"));
  grpc::ClientContext rc;
  rc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ScoreRequest good = batch.items(0);
  good.set_schema_version("vigil.api/v1");
  EXPECT_FALSE(rogue->Score(&rc, good, &r).ok());
  EXPECT_EQ(model_->calls.load(), before);
}

TEST_F(ServerTest, ControlEnforceWatchAcknowledgeRollback) {
  Start();
  auto control = v1::Control::NewStub(Channel(false));
  // The agent watches host h1.
  grpc::ClientContext wctx;
  auto reader = Watch(*control, wctx, "h1");
  // An operator orders a kill over HTTP and waits for the acknowledgement.
  auto c = Https();
  std::thread agent([&] {
    v1::Order order;
    ASSERT_TRUE(reader->Read(&order));
    EXPECT_EQ(order.action(), "kill");
    EXPECT_EQ(order.pid(), 4242u);
    EXPECT_TRUE(Acknowledge(*control, order.id(), "sent SIGKILL").ok());
  });
  auto res = Post(*c, "/v1/enforce",
                  R"({"schema_version":"vigil.api/v1","host":"h1","action":"kill","pid":4242,
                      "wait_ms":5000})",
                  Token(kScopeEnforce));
  agent.join();
  ASSERT_EQ(res->status, 200) << res->body;
  v1::OrderStatus st;
  ASSERT_TRUE(ParseJson(res->body, &st).ok());
  EXPECT_EQ(st.state(), "done");
  EXPECT_EQ(st.detail(), "sent SIGKILL");
  auto rb = Post(*c, "/v1/rollback",
                 R"({"schema_version":"vigil.api/v1","order_id":")" + st.order().id() + R"("})",
                 Token(kScopeEnforce));
  ASSERT_EQ(rb->status, 200) << rb->body;
  EXPECT_NE(rb->body.find("\"rollback_of\":\"" + st.order().id() + "\""), std::string::npos);
  EXPECT_EQ(Post(*c, "/v1/rollback", R"({"schema_version":"vigil.api/v1","order_id":"ord-77"})",
                 Token(kScopeEnforce))
                ->status,
            404);
  EXPECT_EQ(Post(*c, "/v1/enforce",
                 R"({"schema_version":"vigil.api/v1","host":"h1","action":"kill","pid":1})",
                 Token(kScopeScore))
                ->status,
            403);
  v1::Order next;
  ASSERT_TRUE(reader->Read(&next));  // the rollback reaches the watching agent too
  EXPECT_EQ(next.action(), "rollback");
  wctx.TryCancel();
}

// An order that awaits its acknowledgement runs on a gRPC handler thread, not on the thread
// that polls: the agent's acknowledgement and other calls are served while it waits.
TEST_F(ServerTest, GrpcEnforceAwaitsAnAcknowledgementSentOverGrpc) {
  Start();
  auto control = v1::Control::NewStub(Channel(false));
  grpc::ClientContext wctx;
  auto reader = Watch(*control, wctx, "h2");
  std::thread agent([&] {
    v1::Order order;
    ASSERT_TRUE(reader->Read(&order));
    // While Enforce waits: a score is answered.
    auto inference = v1::Inference::NewStub(Channel(true));
    grpc::ClientContext sctx;
    v1::ScoreResponse sr;
    EXPECT_TRUE(inference->Score(&sctx, ScoreOf({59, 59}), &sr).ok());
    EXPECT_DOUBLE_EQ(sr.result().score(), 1.0);
    EXPECT_TRUE(Acknowledge(*control, order.id(), "frozen").ok());
  });
  v1::OrderStatus st;
  const auto t0 = std::chrono::steady_clock::now();
  auto s = Enforce(*control, "h2", "freeze", 77, 10'000, &st);
  agent.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(st.state(), "done");
  EXPECT_EQ(st.detail(), "frozen");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  wctx.TryCancel();
}

// Calls that may wait hold a handler thread; with all of them held, the next such call is
// refused at once (UNAVAILABLE) while calls answered on the polling thread still are.
TEST_F(ServerTest, GrpcRefusesAWaitingCallWhenEveryHandlerThreadIsHeld) {
  grpc_threads_ = 1;
  Start();
  auto inference = v1::Inference::NewStub(Channel(true));
  auto control = v1::Control::NewStub(Channel(false));
  auto stream = HoldAHandlerThread(*inference, *control, "h3", 5);
  ASSERT_NE(stream, nullptr);

  grpc::ClientContext second;
  second.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto refused = Watch(*control, second, "h4");
  v1::Order none;
  EXPECT_FALSE(refused->Read(&none));
  grpc::Status s = refused->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("handler thread"), std::string::npos) << s.error_message();

  grpc::ClientContext sctx;
  v1::ScoreResponse sr;
  auto scored = inference->Score(&sctx, ScoreOf({59, 1}), &sr);
  EXPECT_TRUE(scored.ok()) << scored.error_message();
  EXPECT_DOUBLE_EQ(sr.result().score(), 0.5);
  // Stop() ends the open stream (TearDown) without the client cancelling it.
}

// Batches of more than 4 items that the model scores inline are CPU work: they queue for the
// cores' threads, so with the one handler thread held by a Watch stream, 8 concurrent batches
// of 16 items are all answered with the model's scores (before, each needed a handler thread
// and was refused).
TEST_F(ServerTest, GrpcLargeBatchesQueueForTheCoresWhileHandlerThreadsAreHeld) {
  grpc_threads_ = 1;
  Start();
  auto inference = v1::Inference::NewStub(Channel(true));
  auto control = v1::Control::NewStub(Channel(false));
  auto stream = HoldAHandlerThread(*inference, *control, "h7", 8);
  ASSERT_NE(stream, nullptr);

  v1::ScoreBatchRequest batch;
  batch.set_schema_version("vigil.api/v1");
  for (int i = 0; i < 16; ++i) {
    v1::ScoreRequest* item = batch.add_items();
    item->set_subject("item" + std::to_string(i));
    item->set_arch("x86_64");
    for (int k = 0; k < 4; ++k) item->add_syscalls(k <= i % 4 ? 59 : 1);
  }
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::ScoreBatchResponse out;
      auto s = inference->ScoreBatch(&ctx, batch, &out);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok() || out.results_size() != 16) return;
      for (int i = 0; i < 16; ++i) {
        EXPECT_DOUBLE_EQ(out.results(i).score(), (i % 4 + 1) / 4.0) << i;
        EXPECT_FALSE(out.results(i).fallback()) << i;
      }
      answered.fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), 8);
}

// The gRPC server turns Abseil's mutex deadlock detection off (grpc_api.cc;
// ../abseil_deadlock.h).
TEST_F(ServerTest, GrpcServerTurnsAbseilDeadlockDetectionOff) {
  // The child runs this test again from the start in a new process (no fork of gRPC's threads).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Start();
  // The child removes its own copy of the test certificates (its pki_) before it ends.
  EXPECT_EXIT(testing::LockTwoMutexesBothWays(pki_.dir()), ::testing::ExitedWithCode(0), "");
}

// Once the order book shuts down (the server is stopping), an open Watch stream ends at once
// with UNAVAILABLE, before Stop: its handler thread neither waits for Stop nor asks the shut
// book for orders in a loop, and it is free again for another call.
TEST_F(ServerTest, WatchStreamEndsWhenTheOrderBookShutsDown) {
  grpc_threads_ = 1;
  Start();
  auto control = v1::Control::NewStub(Channel(false));
  grpc::ClientContext wctx;
  wctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = Watch(*control, wctx, "h6");
  v1::OrderStatus st;
  ASSERT_TRUE(Enforce(*control, "h6", "kill", 6, 0, &st).ok());
  v1::Order order;
  ASSERT_TRUE(reader->Read(&order));  // the stream holds the one handler thread
  const auto t0 = std::chrono::steady_clock::now();
  orders_.Shutdown();
  EXPECT_FALSE(reader->Read(&order));
  grpc::Status s = reader->Finish();
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("server stopping"), std::string::npos) << s.error_message();
  // Ended by the shutdown, not by the stream's 30 s deadline (the bound is loose for a loaded
  // machine; the status above already tells the shutdown's end from the deadline's).
  EXPECT_LT(waited, std::chrono::seconds(10));
  // The handler thread is free again (it ends its task just after the stream's last status
  // is sent, so allow it a moment, 10 s at most on a loaded machine): a call that needs it, an
  // order awaiting its acknowledgement, is served, not refused for want of a thread.
  grpc::Status late;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    late = Enforce(*control, "h6", "kill", 7, 1, &st);
    if (late.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < until);
  EXPECT_TRUE(late.ok()) << late.error_message();
}

// A model too slow for the budget: the gRPC call gets the deadline fallback, on time. The model
// is held until the answers are in, so it is late by construction and no answer can have waited
// for it; the time bound is only a generous upper bound for a loaded machine.
TEST_F(ServerTest, GrpcLateModelGivesTheFallbackMarkedAsSuch) {
  Start();
  model_->delay_ms = 300;  // its time once it answers: no deadline of 20 ms lets it score inline
  model_->Hold();
  auto inference = v1::Inference::NewStub(Channel(true));
  auto late_call = [&](int i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ScoreResponse r;
    const auto t0 = std::chrono::steady_clock::now();
    auto s = inference->Score(&ctx, ScoreOf({1, 2, i}, 20), &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_TRUE(r.result().fallback());
    EXPECT_EQ(r.result().fallback_reason(), "deadline exceeded");
  };
  // Before the model's time is known. On a loaded machine the engine may find a call's deadline
  // passed before it asks the model at all: calls are made until one has asked it.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int i = 0;
  do {
    ASSERT_NO_FATAL_FAILURE(late_call(i++));
  } while (!model_->WaitEntered(1, std::chrono::milliseconds(500)) &&
           std::chrono::steady_clock::now() < until);
  ASSERT_TRUE(model_->WaitEntered(1, std::chrono::milliseconds(0))) << i << " calls";
  // The model was asked and is still held: the answers above did not wait for it. Let it answer
  // (after its 300 ms), and wait for its time to be known, so that the next call sees a slow
  // model.
  model_->Release();
  while (svc_->engine()->RecentModelNanos() < 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(svc_->engine()->RecentModelNanos(), 300'000'000);
  model_->Hold();
  ASSERT_NO_FATAL_FAILURE(late_call(i));
}

// With several threads polling the completion queue, calls from several connections
// at once are all answered, blocking or not.
TEST_F(ServerTest, GrpcServesConcurrentCallsOnSeveralPollingThreads) {
  grpc_pollers_ = 3;
  Start();
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      auto inference = v1::Inference::NewStub(Channel(true));
      for (int i = 0; i < 20; ++i) {
        grpc::ClientContext ctx;
        v1::ScoreResponse r;
        auto s = inference->Score(&ctx, ScoreOf({59, c, i}), &r);
        EXPECT_TRUE(s.ok()) << s.error_message();
        if (s.ok()) answered.fetch_add(1);
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), 120);
  auto control = v1::Control::NewStub(Channel(false));
  grpc::ClientContext wctx;
  auto reader = Watch(*control, wctx, "h5");
  std::thread agent([&] {
    v1::Order order;
    ASSERT_TRUE(reader->Read(&order));
    EXPECT_TRUE(Acknowledge(*control, order.id(), "ok").ok());
  });
  v1::OrderStatus st;
  auto s = Enforce(*control, "h5", "kill", 9, 10'000, &st);
  agent.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(st.state(), "done");
  wctx.TryCancel();
}

}  // namespace
}  // namespace vigil::api
