// Two `vigil hub` processes on one PostgreSQL (started by the test, tests/unit/hub/
// postgres_fixture.h), sharing a token key: findings posted with `vigil hub ingest` to one are
// duplicates at the other, listed and adjudicated through the other, and the store URI's
// password never appears in what the hubs print; findings split between the hubs correlate into
// one fleet incident, and a triage model trained through one hub scores its next incident.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "unit/hub/postgres_fixture.h"
#include "vigil/v1/agent.grpc.pb.h"
#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;

namespace {

constexpr char kSecret[] = "E2eS3cretPassw0rd";

// Verdicts of `processes` processes of web-1, one a second (OCSF 2004, as the agent writes).
std::string Findings(int processes) {
  std::string text;
  for (int p = 0; p < processes; ++p) {
    json v = {{"class_uid", 2004},
              {"time", 1'700'000'000'000 + p * 1000},
              {"severity_id", 4},
              {"process", {{"pid", 100 + p}, {"name", "worker"}}},
              {"finding_info",
               {{"title", "Anomalous system-call sequence"},
                {"uid", "worker:" + std::to_string(100 + p)},
                {"analytic", {{"name", "ngram"}, {"version", "1"}, {"type_id", 4}}}}},
              {"vigil",
               {{"score", 0.9}, {"anomalous", true}, {"stream", "s"}, {"events", 30},
                {"explanation", {{{"what", "open>mmap"}, {"weight", 0.4}}}}}}};
    text += v.dump() + "\n";
  }
  return text;
}

class HubPostgresCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hub_pg_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    auto& pg = vigil::hub::testing::PostgresServer::Shared();
    std::string why;
    database_ = pg.NewDatabase(&why);
    ASSERT_FALSE(database_.empty()) << why;
    // Trust authentication ignores the password: it is there to be kept out of every output.
    const std::string uri = pg.Uri(database_, std::string("postgres:") + kSecret);
    for (int i = 0; i < 2; ++i) {
      std::ofstream(Config(i)) << "state_dir: " << (dir_ / ("state" + std::to_string(i))).string()
                               << "\nstore: " << uri << "\nlisten: 127.0.0.1:0\n"
                               << "auth:\n  token_key: " << (dir_ / "token.key").string() << "\n";
    }
  }
  void TearDown() override {
    for (pid_t& p : hubs_) Stop(p);
    std::string why;
    if (!database_.empty()) {
      EXPECT_TRUE(vigil::hub::testing::PostgresServer::Shared().DropDatabase(database_, &why))
          << why;
    }
    fs::remove_all(dir_);
  }
  fs::path Config(int i) const { return dir_ / ("hub" + std::to_string(i) + ".yaml"); }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }

  // Starts hub i and returns its port (0 on failure, with a test failure recorded).
  int Start(int i) {
    const fs::path out = dir_ / ("hub" + std::to_string(i) + ".out");
    const fs::path err = dir_ / ("hub" + std::to_string(i) + ".err");
    const std::string config = Config(i).string();
    fs::remove(out);  // a restart must not read the previous run's ready line
    hubs_[i] = fork();
    if (hubs_[i] == 0) {
      if (freopen(out.c_str(), "w", stdout) == nullptr) _exit(126);
      if (freopen(err.c_str(), "w", stderr) == nullptr) _exit(126);
      execl(VIGIL_BINARY, VIGIL_BINARY, "hub", "--config", config.c_str(), "--json",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = ReadAll(out);
      if (text.find('\n') != std::string::npos) {
        const json ready = json::parse(text.substr(0, text.find('\n')), nullptr, false);
        EXPECT_TRUE(ready.is_object()) << text;
        EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
        EXPECT_NE(text.find("postgres:***@127.0.0.1"), std::string::npos) << text;
        return ready.value("port", 0);
      }
      int status = 0;
      if (waitpid(hubs_[i], &status, WNOHANG) == hubs_[i]) {
        hubs_[i] = -1;
        ADD_FAILURE() << "vigil hub " << i << " exited: " << ReadAll(err);
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "vigil hub " << i << " did not get ready: " << ReadAll(err);
    return 0;
  }
  static int Stop(pid_t& p) {
    if (p <= 0) return -1;
    kill(p, SIGTERM);
    int status = 0;
    waitpid(p, &status, 0);
    p = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string Token(const std::string& role, const std::string& subject) {
    CmdResult r = Vigil("hub token --config " + Config(0).string() + " --role " + role +
                        " --subject " + subject + " --ttl 10m");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string t = r.out;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }

  fs::path dir_;
  std::string database_;
  std::array<pid_t, 2> hubs_{-1, -1};
};

TEST_F(HubPostgresCliTest, TwoHubsShareOneDatabase) {
  const std::string viewer = Token("viewer", "vic"), analyst = Token("analyst", "ana");
  std::ofstream(dir_ / "agent.token") << Token("agent", "web-1") << "\n";
  std::ofstream(dir_ / "findings.jsonl") << Findings(6);
  std::array<int, 2> port{Start(0), Start(1)};
  ASSERT_NE(port[0], 0);
  ASSERT_NE(port[1], 0);
  auto ingest = [&](int hub) {
    return Vigil("hub ingest " + (dir_ / "findings.jsonl").string() +
                 " --server http://127.0.0.1:" + std::to_string(port[hub]) + " --token-file " +
                 (dir_ / "agent.token").string() + " --host web-1 --batch 2 --json");
  };
  CmdResult first = ingest(0);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(json::parse(first.out)["findings_stored"], 6);
  CmdResult again = ingest(1);  // the same messages through the other hub
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out)["duplicate_messages"], 3);
  EXPECT_EQ(json::parse(again.out)["findings_stored"], 0);

  httplib::Client a("127.0.0.1", port[0]), b("127.0.0.1", port[1]);
  auto list = b.Get("/v1/incidents", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  const json incidents = json::parse(list->body)["incidents"];
  ASSERT_EQ(incidents.size(), 6u);
  const std::string id = std::to_string(incidents[0]["id"].get<int64_t>());
  auto label = b.Post("/v1/incidents/" + id + "/adjudication",
                      {{"Authorization", "Bearer " + analyst}},
                      R"({"label":"false_positive"})", "application/json");
  ASSERT_TRUE(label);
  EXPECT_EQ(label->status, 200) << label->body;
  auto seen = a.Get("/v1/incidents/" + id, {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(seen);
  ASSERT_EQ(seen->status, 200) << seen->body;
  EXPECT_EQ(json::parse(seen->body)["incident"]["label"], "false_positive");
  EXPECT_EQ(Stop(hubs_[0]), 0);
  EXPECT_EQ(Stop(hubs_[1]), 0);
  for (int i = 0; i < 2; ++i) {
    const std::string err = ReadAll(dir_ / ("hub" + std::to_string(i) + ".err"));
    EXPECT_EQ(err.find(kSecret), std::string::npos) << err;
  }
}

// The global model and the triage model across the two hubs: one behaviour's findings on three
// hosts (the default K) posted two to one hub and one to the other raise one fleet incident;
// a triage model trained through one hub (POST /v1/triage/train) scores what it ingests next and
// is in force again after that hub restarts.
TEST_F(HubPostgresCliTest, TwoHubsCorrelateTheirFindingsAndOneTrainsTheTriageModel) {
  const std::string viewer = Token("viewer", "vic"), analyst = Token("analyst", "ana"),
                    admin = Token("admin", "adm");
  std::map<std::string, std::string> agent;  // tokens are issued before the hubs hold the logs
  for (const char* h : {"alpha", "beta", "gamma", "delta", "epsilon"}) agent[h] = Token("agent", h);
  std::array<int, 2> port{Start(0), Start(1)};
  ASSERT_NE(port[0], 0);
  ASSERT_NE(port[1], 0);
  httplib::Client hub[2] = {httplib::Client("127.0.0.1", port[0]),
                            httplib::Client("127.0.0.1", port[1])};
  hub[0].set_read_timeout(60);
  auto post = [&](int h, const std::string& host, const std::string& id, double score, int pid) {
    json v = json::parse(Findings(1));
    v["process"]["pid"] = pid;
    v["vigil"]["score"] = score;
    const json body = {{"schema_version", "vigil.hub/v1"},
                       {"host", host},
                       {"message_id", id},
                       {"findings", json::array({v})}};
    auto r = hub[h].Post("/v1/ingest", {{"Authorization", "Bearer " + agent[host]}},
                         body.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  post(0, "alpha", "m1", 0.9, 100);
  post(1, "beta", "m1", 0.9, 100);
  post(0, "gamma", "m1", 0.9, 100);
  auto fleet = hub[1].Get("/v1/fleet-incidents", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(fleet);
  const json fi = json::parse(fleet->body)["fleet_incidents"];
  ASSERT_EQ(fi.size(), 1u) << fleet->body;
  EXPECT_EQ(fi[0]["hosts"], json({"alpha", "beta", "gamma"}));

  // Label: alpha's and beta's incidents are attacks, gamma's and two weak ones are not.
  post(1, "delta", "m1", 0.1, 200);
  post(1, "delta", "m2", 0.15, 300);
  auto list = hub[0].Get("/v1/incidents", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->status, 200) << list->body;
  const json listed = json::parse(list->body)["incidents"];
  ASSERT_EQ(listed.size(), 5u) << list->body;
  for (const json& i : listed) {
    const bool attack = i["host"] == "alpha" || i["host"] == "beta";
    auto l = hub[1].Post("/v1/incidents/" + std::to_string(i["id"].get<int64_t>()) + "/adjudication",
                         {{"Authorization", "Bearer " + analyst}},
                         json{{"label", attack ? "true_positive" : "false_positive"}}.dump(),
                         "application/json");
    ASSERT_TRUE(l && l->status == 200);
  }
  auto labels = hub[0].Get("/v1/labels", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(labels);
  EXPECT_EQ(std::count(labels->body.begin(), labels->body.end(), '\n'), 5) << labels->body;
  EXPECT_EQ(hub[0].Post("/v1/triage/train", {{"Authorization", "Bearer " + analyst}}, "{}",
                        "application/json")->status,
            403);
  auto trained = hub[0].Post("/v1/triage/train", {{"Authorization", "Bearer " + admin}},
                             R"({"rounds":10,"max_depth":2})", "application/json");
  ASSERT_TRUE(trained);
  ASSERT_EQ(trained->status, 200) << trained->body;
  EXPECT_TRUE(json::parse(trained->body)["trained"]["activated"].get<bool>());
  // The next incident through that hub is scored and marked.
  const json stored = post(0, "epsilon", "m1", 0.05, 400);
  auto one = hub[1].Get("/v1/incidents/" + std::to_string(stored["incidents"][0].get<int64_t>()),
                        {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(one);
  const json inc = json::parse(one->body)["incident"];
  EXPECT_TRUE(inc["triage_score"].is_number()) << one->body;
  EXPECT_TRUE(inc["triage"] == "kept" || inc["triage"] == "suppressed") << one->body;
  // Restarted, that hub puts the model it trained back in force (the signed note in its state
  // folder), with the threshold chosen at training on held-out data.
  const json was = json::parse(trained->body)["trained"];
  EXPECT_EQ(Stop(hubs_[0]), 0);
  port[0] = Start(0);
  ASSERT_NE(port[0], 0);
  httplib::Client restarted("127.0.0.1", port[0]);
  auto status = restarted.Get("/v1/triage", {{"Authorization", "Bearer " + viewer}});
  ASSERT_TRUE(status) << httplib::to_string(status.error());
  ASSERT_EQ(status->status, 200) << status->body;
  const json st = json::parse(status->body);
  EXPECT_EQ(st["model"]["sha256"], was["sha256"]) << status->body;
  EXPECT_EQ(st["threshold_source"], "held-out") << status->body;
  EXPECT_EQ(st["threshold"], was["metrics"]["threshold"]) << status->body;
  EXPECT_EQ(Stop(hubs_[0]), 0);
  EXPECT_EQ(Stop(hubs_[1]), 0);
}

// A Nonce call to the agent port `port` with the agent.pem/agent.key/ca.pem in `cert_dir`: its
// status (the certificate's standing at that hub).
grpc::Status NonceWith(int port, const fs::path& cert_dir) {
  grpc::SslCredentialsOptions o;
  o.pem_cert_chain = ReadAll(cert_dir / "agent.pem");
  o.pem_private_key = ReadAll(cert_dir / "agent.key");
  o.pem_root_certs = ReadAll(cert_dir / "ca.pem");
  auto stub = vigil::v1::AgentHub::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(o)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  vigil::v1::NonceRequest in;
  in.set_schema_version("vigil.hub/v1");
  vigil::v1::NonceResponse out;
  return stub->Nonce(&ctx, in, &out);
}

// Agents' certificates across two hubs on one database (docs/hub.md, "Revoking and renewing
// agent certificates"): enrolled at one hub, a certificate works at both; renewed at the other
// (`vigil agent renew`), the old one keeps working until the new one is used and is refused by
// both hubs from then on; revoked through one hub's REST API (`vigil hub cert revoke`), the
// current one is refused by the other at its next call, and cannot renew. Each step is audited.
TEST_F(HubPostgresCliTest, AgentCertificatesAreRenewedAndRevokedAcrossHubs) {
  for (int i = 0; i < 2; ++i) {
    std::ofstream(Config(i), std::ios::app)
        << "agents:\n  listen: 127.0.0.1:0\n  ca_dir: " << (dir_ / "ca").string() << "\n";
  }
  const fs::path admin = dir_ / "admin.token";  // (`vigil hub token` before the hubs run)
  std::ofstream(admin) << Token("admin", "alice") << "\n";
  std::array<int, 2> agent_port{}, rest_port{};
  for (int i = 0; i < 2; ++i) {
    rest_port[i] = Start(i);
    ASSERT_GT(rest_port[i], 0);
    const std::string ready = ReadAll(dir_ / ("hub" + std::to_string(i) + ".out"));
    agent_port[i] = json::parse(ready.substr(0, ready.find('\n')))["agents"].value("port", 0);
    ASSERT_GT(agent_port[i], 0) << ready;
  }
  CmdResult r = Vigil("hub enrol-token create --config " + Config(0).string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string token = json::parse(r.out)["token"];
  const fs::path certs = dir_ / "agent-cert";
  r = Vigil("agent enrol --hub 127.0.0.1:" + std::to_string(agent_port[0]) + " --token " + token +
            " --ca " + (dir_ / "ca" / "ca.pem").string() + " --dir " + certs.string() +
            " --host web-1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path first = dir_ / "first-cert";
  fs::create_directories(first);
  for (const char* f : {"agent.pem", "agent.key", "ca.pem"}) fs::copy_file(certs / f, first / f);
  for (int i = 0; i < 2; ++i) {
    const grpc::Status st = NonceWith(agent_port[i], first);
    EXPECT_TRUE(st.ok()) << "hub " << i << ": " << st.error_message();
  }

  // Renewed at hub 1: a new key and certificate in place of the old ones.
  r = Vigil("agent renew --hub 127.0.0.1:" + std::to_string(agent_port[1]) + " --dir " +
            certs.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json renewed = json::parse(r.out);
  EXPECT_NE(ReadAll(certs / "agent.key"), ReadAll(first / "agent.key"));
  EXPECT_NE(ReadAll(certs / "agent.pem"), ReadAll(first / "agent.pem"));
  EXPECT_EQ(fs::status(certs / "agent.key").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // Until the new certificate is used, the old one still works (a lost answer locks no one out).
  EXPECT_TRUE(NonceWith(agent_port[0], first).ok());
  EXPECT_TRUE(NonceWith(agent_port[0], certs).ok());
  for (int i = 0; i < 2; ++i) {
    const grpc::Status st = NonceWith(agent_port[i], first);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << "hub " << i;
    EXPECT_NE(st.error_message().find("renewed: replaced by sha256:" +
                                      renewed["sha256"].get<std::string>()),
              std::string::npos)
        << st.error_message();
  }
  EXPECT_TRUE(NonceWith(agent_port[1], certs).ok());

  // Revoked through hub 0's REST API: refused by hub 1 at its next call, and it cannot renew.
  const std::string client = " --server http://127.0.0.1:" + std::to_string(rest_port[0]) +
                             " --token-file " + admin.string();
  r = Vigil("hub cert revoke --host web-1 --reason 'key copied off the host'" + client + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json revoked = json::parse(r.out);
  ASSERT_EQ(revoked["revoked"].size(), 1u) << r.out;  // (the first one was revoked already)
  EXPECT_EQ(revoked["revoked"][0]["sha256"], renewed["sha256"]);
  grpc::Status st = NonceWith(agent_port[1], certs);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("by alice: key copied off the host"), std::string::npos)
      << st.error_message();
  r = Vigil("agent renew --hub 127.0.0.1:" + std::to_string(agent_port[0]) + " --dir " +
            certs.string());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("revoked"), std::string::npos) << r.err;
  r = Vigil("hub cert list --host web-1" + client);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("renewed  until"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("REVOKED by alice: key copied off the host"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("REVOKED by hub: renewed: replaced by"), std::string::npos) << r.out;
  // Bad input names the flag.
  r = Vigil("hub cert revoke --sha256 12:zz --reason x" + client);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--sha256: expected 64 hex digits"), std::string::npos) << r.err;
  r = Vigil("hub cert revoke --host nobody --reason x" + client);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("host nobody: no certificate on record"), std::string::npos) << r.err;

  // The audit logs: the renewal and the supersession at the hubs that saw them, the revocation
  // at hub 0.
  for (pid_t& p : hubs_) Stop(p);
  std::string records;
  for (int i = 0; i < 2; ++i) {
    r = Vigil("audit show " + (dir_ / ("state" + std::to_string(i)) / "audit").string() +
              " --type access-grant --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    records += r.out;
  }
  for (const char* action : {"agent-enrolled", "agent-cert-renewed", "agent-cert-superseded",
                             "agent-cert-revoked"}) {
    EXPECT_NE(records.find(std::string("\"action\":\"") + action + "\""), std::string::npos)
        << action << "\n" << records;
  }
  EXPECT_NE(records.find("\"reason\":\"key copied off the host\""), std::string::npos) << records;
}

}  // namespace
