// The hub's HTTP API on a loopback port: the authentication matrix, adjudication and its metrics,
// escalations (approve, deny, time-out with a fake clock) and their audit records.

#include "test_hub_state.h"
#include "hub/server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "audit/verify.h"
#include "hub_fixtures.h"

namespace vigil::hub {
namespace {

using nlohmann::json;
using testing::DecisionLine;
using testing::IngestBody;
using testing::VerdictLine;

constexpr char kKey[] = "0123456789abcdef0123456789abcdef-hub-test";

api::JwtConfig Jwt(std::string key = kKey) {
  api::JwtConfig j;
  j.hs256_key = std::move(key);
  j.issuer = "vigil-hub";
  j.audience = "vigil-hub";
  return j;
}

class HubServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hub::testing::TestHubState state;
    ASSERT_TRUE(hub::testing::OpenTestHubState("hub_server_", clock_, &state));
    dir_ = state.dir;
    store_ = std::move(state.store);
    signer_ = std::move(state.signer);
    log_ = std::move(state.log);
    ServerOptions o;
    o.listen = {"127.0.0.1", 0};
    o.threads = 2;
    o.escalation_timeout_s = 30;
    server_ = std::make_unique<Server>(o, *store_, auth_, *log_, clock_, registry_);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }

  int64_t Now() const { return clock_.NowUnixNanos() / 1'000'000'000; }
  std::string Token(Role role, const std::string& subject = "someone") {
    return auth_.Issue(subject, role, 900, Now());
  }
  // {status, body as JSON (null when not JSON)}.
  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    auto res =
        method == "GET" ? client_->Get(path, h) : client_->Post(path, h, body, "application/json");
    if (!res) return {-1, nullptr};
    last_body_ = res->body;
    last_www_authenticate_ = res->get_header_value("WWW-Authenticate");
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::vector<std::pair<audit::RecordType, json>> AuditRecords() {
    EXPECT_TRUE(log_->Close().ok());
    return hub::testing::ReadAuditRecords(dir_ / "audit");
  }

  std::filesystem::path dir_;
  core::FakeClock clock_;
  core::Registry registry_;
  HubAuth auth_{Jwt()};
  std::unique_ptr<Store> store_;
  std::unique_ptr<audit::Signer> signer_;
  std::unique_ptr<audit::AuditLog> log_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string last_body_, last_www_authenticate_;
};

TEST_F(HubServerTest, RefusesMissingExpiredForgedAndWrongRoleTokens) {
  const std::string viewer = Token(Role::kViewer);
  // No credentials.
  auto [status, body] = Call("GET", "/v1/incidents", "");
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body["error"]["code"], "UNAUTHENTICATED");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("no credentials"), std::string::npos);
  EXPECT_EQ(last_www_authenticate_, "Bearer realm=\"vigil-hub\"");
  // Not a bearer token.
  httplib::Headers basic{{"Authorization", "Basic YWRtaW46YWRtaW4="}};
  EXPECT_EQ(client_->Get("/v1/incidents", basic)->status, 401);
  // Expired (issued two hours ago for 15 minutes).
  const std::string expired = auth_.Issue("ana", Role::kAnalyst, 900, Now() - 7200);
  std::tie(status, body) = Call("GET", "/v1/incidents", expired);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body["error"]["message"], "token: expired");
  // Forged: signed with another key; or a viewer token whose role was edited to admin.
  const std::string forged = HubAuth(Jwt("another-key-another-key-another-key!"))
                                 .Issue("mallory", Role::kAdmin, 900, Now());
  std::tie(status, body) = Call("GET", "/v1/agents", forged);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(body["error"]["message"], "token: bad signature");
  const std::string admin_payload = HubAuth(Jwt("another-key-another-key-another-key!"))
                                        .Issue("someone", Role::kAdmin, 900, Now());
  const std::string tampered =
      viewer.substr(0, viewer.find('.')) +
      admin_payload.substr(admin_payload.find('.'),
                           admin_payload.rfind('.') - admin_payload.find('.')) +
      viewer.substr(viewer.rfind('.'));
  EXPECT_EQ(Call("GET", "/v1/agents", tampered).first, 401);
  // A token of the decision service (scopes, no hub role) from the same key.
  api::TokenClaims svc;
  svc.subject = "svc";
  svc.issuer = "vigil-hub";
  svc.audience = "vigil-hub";
  svc.scopes = api::kScopeDecide;
  svc.expires = Now() + 900;
  std::tie(status, body) = Call("GET", "/v1/incidents", api::IssueJwt(svc, kKey, Now()));
  EXPECT_EQ(status, 401);
  EXPECT_NE(last_body_.find("no hub role"), std::string::npos);

  // Wrong roles: 403 with the role named.
  const std::string adjudicate = R"({"label":"benign"})";
  std::tie(status, body) = Call("POST", "/v1/incidents/1/adjudication", viewer, adjudicate);
  EXPECT_EQ(status, 403);
  EXPECT_EQ(body["error"]["code"], "PERMISSION_DENIED");
  EXPECT_NE(last_body_.find("needs analyst"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/agents", Token(Role::kAnalyst)).first, 403);
  EXPECT_EQ(Call("GET", "/v1/incidents", Token(Role::kAgent, "web-1")).first, 403);
  const std::string batch = IngestBody("web-1", "m1", {VerdictLine("web-1", 1, "sh", 0, 0.9)});
  EXPECT_EQ(Call("POST", "/v1/ingest", Token(Role::kAdmin), batch).first, 403);
  // An agent only for its own host.
  std::tie(status, body) = Call("POST", "/v1/ingest", Token(Role::kAgent, "web-2"), batch);
  EXPECT_EQ(status, 403);
  EXPECT_NE(last_body_.find("may not act for host"), std::string::npos);

  // Right roles.
  EXPECT_EQ(Call("POST", "/v1/ingest", Token(Role::kAgent, "web-1"), batch).first, 200);
  EXPECT_EQ(Call("GET", "/v1/incidents", viewer).first, 200);
  EXPECT_EQ(Call("POST", "/v1/incidents/1/adjudication", Token(Role::kAnalyst), adjudicate).first,
            200);
  EXPECT_EQ(Call("GET", "/v1/agents", Token(Role::kAdmin)).first, 200);
  EXPECT_EQ(Call("GET", "/v1/incidents/1", Token(Role::kAdmin)).first, 200);
  // Open routes and unknown ones.
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
  EXPECT_EQ(Call("GET", "/v1/nothing", viewer).first, 404);
  EXPECT_NE(registry_.ExpositionText().find("vigil_hub_requests_refused_total{reason=\"401\"} 6"),
            std::string::npos)
      << registry_.ExpositionText();
}

TEST_F(HubServerTest, IngestsAdjudicatesAndExportsPrecisionMetricsAndLabels) {
  const std::string agent = Token(Role::kAgent, "web-1");
  const std::string body = IngestBody(
      "web-1", "m1",
      {DecisionLine("web-1", 1, "sh", 0, "shell"), VerdictLine("web-1", 1, "sh", 1, 0.9),
       DecisionLine("web-1", 2, "nc", 0, "shell"), DecisionLine("web-1", 3, "py", 0, "shell")});
  auto [status, answer] = Call("POST", "/v1/ingest", agent, body);
  ASSERT_EQ(status, 200) << last_body_;
  EXPECT_EQ(answer["duplicate"], false);
  EXPECT_EQ(answer["new_incidents"], 3);
  std::tie(status, answer) = Call("POST", "/v1/ingest", agent, body);
  EXPECT_EQ(answer["duplicate"], true);
  EXPECT_EQ(answer["findings"], 0);
  std::tie(status, answer) = Call("POST", "/v1/ingest", agent, R"({"host":"web-1"})");
  EXPECT_EQ(status, 400);
  EXPECT_EQ(answer["error"]["message"], "message_id: missing");

  const std::string viewer = Token(Role::kViewer);
  std::tie(status, answer) = Call("GET", "/v1/incidents", viewer);
  ASSERT_EQ(answer["incidents"].size(), 3u);
  const int64_t first = answer["incidents"][2]["id"];  // newest first
  std::tie(status, answer) = Call("GET", "/v1/incidents/" + std::to_string(first), viewer);
  ASSERT_EQ(status, 200);
  const json& incident = answer["incident"];
  EXPECT_EQ(incident["process"], "sh");
  ASSERT_EQ(incident["alerts"].size(), 2u);
  EXPECT_EQ(incident["alerts"][0]["rule"], "shell");
  EXPECT_EQ(incident["alerts"][1]["explanation"][0]["what"], "open>read>write");
  EXPECT_EQ(incident["alerts"][1]["finding"]["class_uid"], 2004);

  const std::string analyst = Token(Role::kAnalyst, "ana");
  const std::string labels[] = {"true_positive", "false_positive", "true_positive"};
  for (int i = 0; i < 3; ++i) {
    std::tie(status, answer) =
        Call("POST", "/v1/incidents/" + std::to_string(first + i) + "/adjudication", analyst,
             json{{"label", labels[i]}, {"note", "checked"}}.dump());
    ASSERT_EQ(status, 200) << last_body_;
    EXPECT_EQ(answer["incident"]["label"], labels[i]);
    EXPECT_EQ(answer["incident"]["labelled_by"], "ana");
  }
  std::tie(status, answer) =
      Call("POST", "/v1/incidents/999/adjudication", analyst, R"({"label":"benign"})");
  EXPECT_EQ(status, 404);
  std::tie(status, answer) =
      Call("POST", "/v1/incidents/1/adjudication", analyst, R"({"label":"maybe"})");
  EXPECT_EQ(status, 400);

  auto metrics = client_->Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  const std::string& text = metrics->body;
  EXPECT_NE(
      text.find(
          R"(vigil_hub_adjudicated_incidents{kind="rule",label="true_positive",name="shell"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_hub_precision{kind="rule",name="shell"} 0.6666)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(vigil_hub_false_positive_ratio{kind="rule",name="shell"} 0.3333)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(vigil_hub_precision{kind="model",name="ngram"})"), std::string::npos);
  EXPECT_NE(text.find(R"(vigil_hub_ingest_messages_total{result="duplicate"} 1)"),
            std::string::npos);

  auto export_res = client_->Get("/v1/labels", {{"Authorization", "Bearer " + viewer}});
  ASSERT_EQ(export_res->status, 200);
  EXPECT_EQ(std::count(export_res->body.begin(), export_res->body.end(), '\n'), 3);
  EXPECT_NE(export_res->body.find(R"("label":"false_positive")"), std::string::npos);

  auto records = AuditRecords();
  int adjudications = 0;
  for (const auto& [type, payload] : records) {
    if (type != audit::RecordType::kAdjudication) continue;
    ++adjudications;
    EXPECT_EQ(payload["by"], "ana");
    EXPECT_TRUE(payload["previous_label"].is_null());
  }
  EXPECT_EQ(adjudications, 3);
}

TEST_F(HubServerTest, EscalationsAreApprovedDeniedOrTimedOutToTheirDefault) {
  const std::string agent = Token(Role::kAgent, "web-1");
  const std::string analyst = Token(Role::kAnalyst, "ana");
  auto open = [&](const std::string& id, const std::string& def) {
    return Call("POST", "/v1/escalations", agent,
                json{{"host", "web-1"},
                     {"escalation_id", id},
                     {"rule", "shell"},
                     {"action", "kill"},
                     {"reason", "reverse shell"},
                     {"pid", 42},
                     {"process", "nc"},
                     {"default", def}}
                    .dump());
  };
  auto [status, answer] = open("e1", "deny");
  ASSERT_EQ(status, 201) << last_body_;
  const int64_t e1 = answer["escalation"]["id"];
  EXPECT_EQ(answer["escalation"]["deadline_ms"].get<int64_t>() -
                answer["escalation"]["created_ms"].get<int64_t>(),
            30'000);
  std::tie(status, answer) = open("e1", "deny");
  EXPECT_EQ(status, 200);  // the agent retried: the same escalation
  EXPECT_EQ(answer["escalation"]["id"], e1);
  const int64_t e2 = open("e2", "deny").second["escalation"]["id"];
  const int64_t e3 = open("e3", "approve").second["escalation"]["id"];

  std::tie(status, answer) = Call("GET", "/v1/escalations", Token(Role::kViewer));
  ASSERT_EQ(status, 200);
  EXPECT_EQ(answer["escalations"].size(), 3u);

  const std::string path1 = "/v1/escalations/" + std::to_string(e1);
  std::tie(status, answer) =
      Call("POST", path1 + "/decision", analyst, R"({"decision":"approve","note":"confirmed"})");
  ASSERT_EQ(status, 200) << last_body_;
  EXPECT_EQ(answer["escalation"]["state"], "approved");
  EXPECT_EQ(answer["escalation"]["outcome"], "approve");
  std::tie(status, answer) = Call("POST", path1 + "/decision", analyst, R"({"decision":"deny"})");
  EXPECT_EQ(status, 409);
  EXPECT_NE(last_body_.find("already approved"), std::string::npos);

  const std::string path2 = "/v1/escalations/" + std::to_string(e2);
  std::tie(status, answer) = Call("POST", path2 + "/decision", analyst, R"({"decision":"deny"})");
  EXPECT_EQ(answer["escalation"]["outcome"], "deny");
  // The agent polls its own escalation; another host's agent may not.
  std::tie(status, answer) = Call("GET", path2, agent);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(answer["escalation"]["state"], "denied");
  EXPECT_EQ(Call("GET", path2, Token(Role::kAgent, "web-9")).first, 403);

  // Nobody decides e3 within 30 s: its default (approve) applies; deciding later is refused.
  const std::string path3 = "/v1/escalations/" + std::to_string(e3);
  clock_.Advance(29'000'000'000);
  EXPECT_EQ(Call("GET", path3, agent).second["escalation"]["state"], "pending");
  clock_.Advance(1'000'000'000);
  std::tie(status, answer) = Call("GET", path3, agent);
  EXPECT_EQ(answer["escalation"]["state"], "timed_out");
  EXPECT_EQ(answer["escalation"]["outcome"], "approve");
  std::tie(status, answer) = Call("POST", path3 + "/decision", analyst, R"({"decision":"deny"})");
  EXPECT_EQ(status, 409);
  EXPECT_EQ(Call("GET", "/v1/escalations", analyst).second["escalations"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/escalations?state=all", analyst).second["escalations"].size(), 3u);
  EXPECT_EQ(Call("POST", "/v1/escalations/77/decision", analyst, R"({"decision":"deny"})").first,
            404);

  std::map<std::string, int> actions;
  for (const auto& [type, payload] : AuditRecords()) {
    if (type == audit::RecordType::kEscalation) ++actions[payload["action"].get<std::string>()];
  }
  EXPECT_EQ(actions["opened"], 3);
  EXPECT_EQ(actions["approved"], 1);
  EXPECT_EQ(actions["denied"], 1);
  EXPECT_EQ(actions["timed_out"], 1);
}

TEST_F(HubServerTest, AnAdminIssuesTokensAndEachIsAudited) {
  const std::string admin = Token(Role::kAdmin, "root");
  auto [status, answer] =
      Call("POST", "/v1/tokens", admin, R"({"role":"analyst","subject":"bob","ttl_s":600})");
  ASSERT_EQ(status, 200) << last_body_;
  const std::string bob = answer["token"];
  EXPECT_EQ(Call("GET", "/v1/incidents", bob).first, 200);
  EXPECT_EQ(Call("POST", "/v1/tokens", admin, R"({"role":"root","subject":"x"})").first, 400);
  EXPECT_EQ(
      Call("POST", "/v1/tokens", admin, R"({"role":"admin","subject":"x","ttl_s":999999})").first,
      400);
  EXPECT_EQ(Call("POST", "/v1/tokens", bob, R"({"role":"admin","subject":"bob"})").first, 403);
  int grants = 0;
  for (const auto& [type, payload] : AuditRecords()) {
    if (type != audit::RecordType::kAccessGrant) continue;
    ++grants;
    EXPECT_EQ(payload["subject"], "bob");
    EXPECT_EQ(payload["role"], "analyst");
    EXPECT_EQ(payload["by"], "root");
  }
  EXPECT_EQ(grants, 1);
}

TEST_F(HubServerTest, ServesHttpsWhenConfiguredAndNamesABadCertificate) {
  const std::string cert = (dir_ / "hub.crt").string(), key = (dir_ / "hub.key").string();
  const std::string make =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(make.c_str()) != 0) GTEST_SKIP() << "openssl CLI could not make a certificate";
  ServerOptions o;
  o.listen = {"127.0.0.1", 0};
  o.tls = HubTls{cert, key};
  Server tls(o, *store_, auth_, *log_, clock_, registry_);
  ASSERT_TRUE(tls.Start().ok());
  httplib::SSLClient client("127.0.0.1", tls.port());
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(true);
  auto res = client.Get("/v1/incidents", {{"Authorization", "Bearer " + Token(Role::kViewer)}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  auto refused = client.Get("/v1/incidents");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  // Plain HTTP to the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", tls.port());
  plain.set_read_timeout(2, 0);
  auto none = plain.Get("/healthz");
  EXPECT_TRUE(!none || none->status != 200);
  tls.Stop();

  o.tls = HubTls{key, cert};  // swapped: not a certificate chain and its key
  Server bad(o, *store_, auth_, *log_, clock_, registry_);
  core::Status st = bad.Start();
  EXPECT_EQ(st.code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(key), std::string::npos) << st.message();
  o.tls = HubTls{(dir_ / "absent.crt").string(), key};
  Server absent(o, *store_, auth_, *log_, clock_, registry_);
  EXPECT_EQ(absent.Start().code(), core::StatusCode::kNotFound);
}

// httplib ignores stop() until its accept loop runs: a Stop() right after Start() (no request
// in between) must still return. Without the fix the loop below hangs; the wait is bounded.
TEST_F(HubServerTest, StopsRightAfterStart) {
  ServerOptions o;
  o.listen = {"127.0.0.1", 0};
  o.threads = 1;
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  std::thread starter([&] {
    for (int i = 0; i < 50; ++i) {
      Server s(o, *store_, auth_, *log_, clock_, registry_);
      EXPECT_TRUE(s.Start().ok());
      s.Stop();
    }
    done.set_value();
  });
  if (finished.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // The thread is stuck inside a hub that references this fixture: end the process.
    std::fprintf(stderr, "hub::Server::Stop() right after Start() hung\n");
    std::_Exit(1);
  }
  starter.join();
}

}  // namespace
}  // namespace vigil::hub
