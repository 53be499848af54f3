// People and logins (hub/users.h, hub/web.h): the users file's parser and its atomic writes,
// argon2id hashing, POST /v1/login on a loopback hub (tokens for the user's role, one answer for
// a wrong password and an unknown user, the failure limit, the audit records), and
// GET /v1/precision.

#include "test_hub_state.h"
#include "hub/web.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "audit/verify.h"
#include "hub/server.h"
#include "hub/users.h"
#include "hub_fixtures.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr char kPassword[] = "correct horse battery";

// A valid-looking argon2id string for parser tests (never verified).
const std::string kHash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo";

TEST(UsersFile, ParsesUsersAndNamesTheLineOfEachError) {
  auto users = ParseUsersFile("# comment\n\nana analyst " + kHash + "\r\n  bob\tadmin " + kHash +
                                  "\neve viewer " + kHash,
                              "users");
  ASSERT_TRUE(users.has_value()) << users.error().ToString();
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ((*users)[0].name, "ana");
  EXPECT_EQ((*users)[0].role, Role::kAnalyst);
  EXPECT_EQ((*users)[1].role, Role::kAdmin);
  EXPECT_EQ((*users)[2].hash, kHash);
  const std::pair<std::string, std::string> bad[] = {
      {"ana analyst\n", "users:1: expected NAME ROLE HASH (3 fields), got 2"},
      {"\nana root " + kHash, "users:2: role: expected viewer, analyst or admin, got \"root\""},
      {"ana agent " + kHash, "users:1: role: expected viewer, analyst or admin, got \"agent\""},
      {"ana analyst $2b$10$bcrypt", "users:1: hash: expected an argon2id string"},
      {"a/b analyst " + kHash, "users:1: name: expected 1..64 bytes of [A-Za-z0-9._@-]"},
      {"ana analyst " + kHash + "\nana admin " + kHash, "users:2: name \"ana\" appears twice"},
      {"ana analyst " + kHash + " extra", "users:1: expected NAME ROLE HASH (3 fields), got 4"},
  };
  for (const auto& [text, message] : bad) {
    auto r = ParseUsersFile(text, "users");
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().message().substr(0, message.size()), message) << r.error().message();
  }
  EXPECT_FALSE(ParseUsersFile(std::string(kMaxUsersFileBytes + 1, '#'), "users").has_value());
}

TEST(Passwords, HashesWithArgon2idAndRefusesShortOnes) {
  EXPECT_FALSE(HashPassword("").has_value());
  EXPECT_FALSE(HashPassword("short").has_value());
  EXPECT_FALSE(HashPassword("            ").has_value());
  EXPECT_FALSE(HashPassword(std::string(kMaxPasswordBytes + 1, 'x')).has_value());
  auto h = HashPassword(kPassword);
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  EXPECT_EQ(h->substr(0, 10), "$argon2id$");
  EXPECT_TRUE(VerifyPassword(*h, kPassword));
  EXPECT_FALSE(VerifyPassword(*h, "correct horse battery!"));
  EXPECT_FALSE(VerifyPassword("$argon2id$garbage", kPassword));
  auto again = HashPassword(kPassword);
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(*again, *h);  // salted
}

TEST(UsersFile, AddAndRemoveWriteTheFileAtomicallyWithMode0600) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("hub_users_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string path = (dir / "state" / "users").string();
  ASSERT_TRUE(AddUser(path, {"ana", Role::kAnalyst, kHash}).ok());
  ASSERT_TRUE(AddUser(path, {"bob", Role::kAdmin, kHash}).ok());
  auto dup = AddUser(path, {"ana", Role::kViewer, kHash});
  EXPECT_EQ(dup.code(), core::StatusCode::kAlreadyExists);
  EXPECT_EQ(AddUser(path, {"x y", Role::kViewer, kHash}).code(),
            core::StatusCode::kInvalidArgument);
  EXPECT_EQ(AddUser(path, {"agent1", Role::kAgent, kHash}).code(),
            core::StatusCode::kInvalidArgument);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto users = LoadUsers(path);
  ASSERT_TRUE(users.has_value());
  ASSERT_EQ(users->size(), 2u);
  EXPECT_EQ((*users)[1].name, "bob");
  ASSERT_TRUE(RemoveUser(path, "ana").ok());
  EXPECT_EQ(RemoveUser(path, "ana").code(), core::StatusCode::kNotFound);
  users = LoadUsers(path);
  ASSERT_TRUE(users.has_value());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ((*users)[0].name, "bob");
  // A file someone broke by hand is refused with its line, and not overwritten.
  std::ofstream(path, std::ios::app) << "carol superuser " << kHash << "\n";
  auto broken = AddUser(path, {"dave", Role::kViewer, kHash});
  EXPECT_EQ(broken.message(), path + ":3: role: expected viewer, analyst or admin, got \"superuser\"");
  std::filesystem::remove_all(dir);
}

class HubLoginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hub::testing::TestHubState state;
    ASSERT_TRUE(hub::testing::OpenTestHubState("hub_login_", clock_, &state));
    dir_ = state.dir;
    store_ = std::move(state.store);
    signer_ = std::move(state.signer);
    log_ = std::move(state.log);
    auto hash = HashPassword(kPassword);
    ASSERT_TRUE(hash.has_value());
    users_ = (dir_ / "users").string();
    ASSERT_TRUE(AddUser(users_, {"ana", Role::kAnalyst, *hash}).ok());
    ASSERT_TRUE(AddUser(users_, {"vic", Role::kViewer, *hash}).ok());
    ServerOptions o;
    o.listen = {"127.0.0.1", 0};
    o.threads = 2;
    o.users_file = users_;
    o.login_ttl_s = 600;
    server_ = std::make_unique<Server>(o, *store_, auth_, *log_, clock_, registry_);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  httplib::Result Login(const std::string& user, const std::string& password) {
    return client_->Post("/v1/login", json{{"user", user}, {"password", password}}.dump(),
                         "application/json");
  }
  int Get(const std::string& path, const std::string& token) {
    auto r = client_->Get(path, {{"Authorization", "Bearer " + token}});
    return r ? r->status : -1;
  }
  // The access-grant records whose action is `action` ("": all).
  std::vector<json> LoginRecords(const std::string& action = "login") {
    EXPECT_TRUE(log_->Close().ok());
    std::vector<json> out;
    for (auto& [type, p] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
      if (type == audit::RecordType::kAccessGrant && (action.empty() || p["action"] == action)) {
        out.push_back(std::move(p));
      }
    }
    return out;
  }

  std::filesystem::path dir_;
  std::string users_;
  core::FakeClock clock_;
  core::Registry registry_;
  HubAuth auth_{[] {
    api::JwtConfig j;
    j.hs256_key = "0123456789abcdef0123456789abcdef-web-test";
    j.issuer = "vigil-hub";
    j.audience = "vigil-hub";
    return j;
  }()};
  std::unique_ptr<Store> store_;
  std::unique_ptr<audit::Signer> signer_;
  std::unique_ptr<audit::AuditLog> log_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HubLoginTest, IssuesATokenForTheUsersRoleAndOneAnswerForEveryFailure) {
  auto ok = Login("ana", kPassword);
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  const json j = json::parse(ok->body);
  EXPECT_EQ(j["user"], "ana");
  EXPECT_EQ(j["role"], "analyst");
  EXPECT_EQ(j["expires"], clock_.NowUnixNanos() / 1'000'000'000 + 600);
  const std::string token = j["token"];
  EXPECT_EQ(Get("/v1/incidents", token), 200);
  EXPECT_EQ(Get("/v1/agents", token), 403);  // analyst, not admin
  auto check = auth_.Check("Bearer " + token, Role::kAnalyst, clock_.NowUnixNanos() / 1'000'000'000);
  EXPECT_EQ(check.failure, AuthFailure::kNone);
  EXPECT_EQ(check.caller.subject, "ana");
  // The token is short-lived: 10 minutes later (+ the 30 s leeway) it is refused.
  clock_.Advance(int64_t{631} * 1'000'000'000);
  EXPECT_EQ(Get("/v1/incidents", token), 401);

  auto wrong = Login("ana", "not the password");
  auto unknown = Login("nobody", kPassword);
  ASSERT_TRUE(wrong && unknown);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(unknown->status, 401);
  EXPECT_EQ(wrong->body, unknown->body);
  EXPECT_EQ(json::parse(wrong->body)["error"]["message"], "wrong user name or password");
  auto malformed = client_->Post("/v1/login", R"({"user":"ana"})", "application/json");
  EXPECT_EQ(malformed->status, 400);
  // A user removed while the hub runs can no longer log in; one added can.
  ASSERT_TRUE(RemoveUser(users_, "vic").ok());
  EXPECT_EQ(Login("vic", kPassword)->status, 401);
  auto hash = HashPassword("another long password");
  ASSERT_TRUE(AddUser(users_, {"root", Role::kAdmin, *hash}).ok());
  auto admin = Login("root", "another long password");
  ASSERT_EQ(admin->status, 200);
  EXPECT_EQ(Get("/v1/agents", json::parse(admin->body)["token"]), 200);
  // The answers carry the web UI's security headers.
  EXPECT_EQ(admin->get_header_value("X-Content-Type-Options"), "nosniff");

  const auto records = LoginRecords();
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0]["action"], "login");
  EXPECT_EQ(records[0]["subject"], "ana");
  EXPECT_EQ(records[0]["result"], "ok");
  EXPECT_EQ(records[0]["role"], "analyst");
  EXPECT_EQ(records[1]["result"], "failed");
  EXPECT_EQ(records[1]["reason"], "wrong password");
  EXPECT_EQ(records[2]["subject"], "nobody");
  EXPECT_EQ(records[2]["reason"], "unknown user");
  EXPECT_EQ(records[3]["subject"], "vic");
  EXPECT_EQ(records[4]["subject"], "root");
  EXPECT_EQ(records[4]["result"], "ok");
  EXPECT_EQ(records[4]["client"], "127.0.0.1");
}

TEST_F(HubLoginTest, LimitsFailedLoginsPerClient) {
  for (int i = 0; i < kMaxLoginFailures; ++i) {
    EXPECT_EQ(Login("ana", "guess number " + std::to_string(i))->status, 401);
  }
  // Locked out, even with the right password, until the window ends.
  auto refused = Login("ana", kPassword);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->get_header_value("Retry-After"), std::to_string(kLoginWindowS));
  clock_.Advance((kLoginWindowS - 1) * 1'000'000'000);
  EXPECT_EQ(Login("ana", kPassword)->status, 429);
  clock_.Advance(int64_t{1'000'000'000});
  EXPECT_EQ(Login("ana", kPassword)->status, 200);
  const auto records = LoginRecords();
  ASSERT_EQ(records.size(), static_cast<size_t>(kMaxLoginFailures) + 3);
  EXPECT_EQ(records[kMaxLoginFailures]["result"], "refused");
  EXPECT_EQ(records.back()["result"], "ok");
}

TEST_F(HubLoginTest, AuditsEveryChangeToTheUsersFileBeforeALoginCanUseIt) {
  // At start the hub audited the users it had never audited (ana and vic).
  ASSERT_TRUE(RemoveUser(users_, "vic").ok());
  ASSERT_TRUE(RemoveUser(users_, "ana").ok());
  auto hash = HashPassword("a new password for ana");
  ASSERT_TRUE(AddUser(users_, {"ana", Role::kAdmin, *hash}).ok());
  EXPECT_EQ(Login("nobody", "whatever it is")->status, 401);
  EXPECT_EQ(Login("ana", "a new password for ana")->status, 200);  // no change: no record
  // Changed while no hub runs: audited by the next hub at start.
  server_->Stop();
  ASSERT_TRUE(AddUser(users_, {"carol", Role::kViewer, *hash}).ok());
  ServerOptions o;
  o.listen = {"127.0.0.1", 0};
  o.users_file = users_;
  server_ = std::make_unique<Server>(o, *store_, auth_, *log_, clock_, registry_);
  ASSERT_TRUE(server_->Start().ok());
  struct stat st {};
  ASSERT_EQ(::stat((users_ + ".audited").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const auto records = LoginRecords("");
  std::vector<std::string> seen;
  for (const json& r : records) {
    seen.push_back(r["action"].get<std::string>() + " " + r["subject"].get<std::string>());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"user-added ana", "user-added vic", "user-changed ana",
                                            "user-removed vic", "login nobody", "login ana",
                                            "user-added carol"}));
  EXPECT_EQ(records[2]["role"], "admin");
  EXPECT_EQ(records[2]["previous_role"], "analyst");
  EXPECT_EQ(records[2]["password_changed"], true);
  EXPECT_EQ(records[2]["by"], "users-file");
}

TEST_F(HubLoginTest, ABrokenUsersFileRefusesLoginsWithoutSayingWhy) {
  std::ofstream(users_, std::ios::app) << "broken line\n";
  auto r = Login("ana", kPassword);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body.find(users_), std::string::npos);
}

TEST_F(HubLoginTest, PrecisionListsEachRuleAndModelsAdjudicationRates) {
  const std::string agent = auth_.Issue("web-1", Role::kAgent, 900, clock_.NowUnixNanos() / 1'000'000'000);
  const std::string body = testing::IngestBody(
      "web-1", "m1",
      {testing::DecisionLine("web-1", 1, "sh", 0, "shell"),
       testing::VerdictLine("web-1", 1, "sh", 1, 0.9),
       testing::DecisionLine("web-1", 2, "nc", 0, "shell")});
  httplib::Headers a{{"Authorization", "Bearer " + agent}};
  ASSERT_EQ(client_->Post("/v1/ingest", a, body, "application/json")->status, 200);
  const std::string ana = json::parse(Login("ana", kPassword)->body)["token"];
  httplib::Headers h{{"Authorization", "Bearer " + ana}};
  ASSERT_EQ(client_->Post("/v1/incidents/1/adjudication", h, R"({"label":"true_positive"})",
                          "application/json")->status, 200);
  ASSERT_EQ(client_->Post("/v1/incidents/2/adjudication", h, R"({"label":"benign"})",
                          "application/json")->status, 200);
  EXPECT_EQ(client_->Get("/v1/precision")->status, 401);
  auto r = client_->Get("/v1/precision", h);
  ASSERT_EQ(r->status, 200);
  const json d = json::parse(r->body)["detectors"];
  ASSERT_EQ(d.size(), 2u) << d;
  for (const json& e : d) {
    if (e["kind"] == "rule") {
      EXPECT_EQ(e["name"], "shell");
      EXPECT_EQ(e["adjudicated"], 2);
      EXPECT_EQ(e["true_positive"], 1);
      EXPECT_EQ(e["benign"], 1);
      EXPECT_DOUBLE_EQ(e["precision"].get<double>(), 0.5);
      EXPECT_DOUBLE_EQ(e["false_positive_ratio"].get<double>(), 0.5);
    } else {
      // The decisions carry the model's score too (vigil.ml.model): ngram fired in both.
      EXPECT_EQ(e["name"], "ngram");
      EXPECT_EQ(e["adjudicated"], 2);
      EXPECT_EQ(e["false_positive"], 0);
    }
  }
}

}  // namespace
}  // namespace vigil::hub

namespace vigil::hub {
namespace {

TEST_F(HubLoginTest, ServesTheEmbeddedWebUiWithItsSecurityHeaders) {
  const std::pair<std::string, std::string> files[] = {
      {"/", "text/html; charset=utf-8"},
      {"/ui/index.html", "text/html; charset=utf-8"},
      {"/ui/app.js", "text/javascript; charset=utf-8"},
      {"/ui/app.css", "text/css; charset=utf-8"},
      {"/ui/icon.svg", "image/svg+xml"}};
  for (const auto& [path, type] : files) {
    auto r = client_->Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), type) << path;
    const std::string csp = r->get_header_value("Content-Security-Policy");
    EXPECT_EQ(csp, kWebCsp);
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY");
  }
  // The files are those of src/hub/web/, byte for byte.
  for (const char* name : {"index.html", "app.js", "app.css", "icon.svg"}) {
    std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/src/hub/web/" + name, std::ios::binary);
    const std::string want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_NE(FindWebAsset(name), nullptr) << name;
    EXPECT_EQ(FindWebAsset(name)->body, want) << name;
  }
  auto missing = client_->Get("/ui/nothing.js");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(client_->Get("/ui/../users")->status, 404);
  EXPECT_EQ(client_->Get("/ui")->status, 302);
}

// What the CSP needs of the files, and that data never goes into the page as HTML.
TEST(WebUiFiles, HaveNoInlineScriptOrStyleAndNoHtmlInjection) {
  const std::string html(FindWebAsset("index.html")->body);
  for (const char* banned : {"<script>", "style=", "onclick=", "onload=", "javascript:", "http://",
                             "https://"}) {
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  }
  std::string js(FindWebAsset("app.js")->body);
  // The SVG namespace names no resource (nothing is fetched from it): the one allowed URL.
  const std::string svg_ns = "'http://www.w3.org/2000/svg'";
  for (size_t at; (at = js.find(svg_ns)) != std::string::npos;) js.erase(at, svg_ns.size());
  for (const char* banned : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                             "eval(", "new Function", "http://", "https://", "localStorage"}) {
    EXPECT_EQ(js.find(banned), std::string::npos) << banned;
  }
  EXPECT_NE(js.find("sessionStorage"), std::string::npos);
}

}  // namespace
}  // namespace vigil::hub
