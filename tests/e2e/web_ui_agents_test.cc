// The web UI's agent views end to end, in a real browser (no root: no agent process). A `vigil
// hub` on a free loopback port with an admin and a viewer added by `vigil hub user add`; host
// gw-1 registers with its audit key and heartbeats with health figures over the REST API (as
// `vigil agent`'s hub sink does), then posts audit checkpoints signed as its log signs them:
// two good ones, a fork, a rollback and one signed by another key. Debian's Chromium, driven by
// playwright-core (tests/e2e/web/agents_flow.js through scripts/playwright.sh), checks that the
// admin sees the heartbeat's figures in the agents list and on the host's page with every
// checkpoint's verdict, and that a viewer sees the checkpoints but not the health. Also the
// models page's triage section: an admin trains the model there and sees the held-out figures
// (tests/e2e/web/triage_flow.js).

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "audit/internal/format.h"
#include "audit/signer.h"
#include "web_e2e.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

// A checkpoint body as the agent posts it: record `seq` signs the chain up to seq - 1, whose
// hash is `chain_byte` repeated, at `time_ns`.
json Checkpoint(const vigil::audit::Signer& signer, uint64_t seq, uint8_t chain_byte,
                int64_t time_ns) {
  vigil::audit::internal::Hash chain;
  chain.fill(chain_byte);
  const auto sig = signer.Sign(vigil::audit::internal::CheckpointMessage(seq - 1, chain, time_ns));
  const vigil::audit::PublicKey& pub = signer.public_key();
  return {{"schema_version", "vigil.hub/v1"},
          {"host", "gw-1"},
          {"seq", seq},
          {"covers", seq - 1},
          {"chain_hash", Hex(chain.data(), chain.size())},
          {"time_ns", time_ns},
          {"key_id", vigil::audit::KeyIdString(pub.id)},
          {"public_key", Hex(pub.key.data(), pub.key.size())},
          {"signature", Hex(sig.data(), sig.size())}};
}

// A work folder (removed afterwards) holding the hub's state; screenshots kept in the build
// folder's web-ui-screenshots/.
class WebHubUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() /
          ("vigil-web-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(shots);
  }
  void TearDown() override { fs::remove_all(dir); }
  // A bearer token from `vigil hub token` (issued before the hub starts).
  httplib::Headers Token(const std::string& role, const std::string& subject) {
    auto r =
        vigil::e2e::RunVigil(dir / "cli", "hub token --role " + role + " --subject " + subject +
                                              " --ttl 1h --state-dir " + hub_state().string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return {{"Authorization", "Bearer " + r.out.substr(0, r.out.find('\n'))}};
  }
  fs::path hub_state() const { return dir / "hub"; }

  fs::path dir;
  const fs::path shots = fs::current_path() / "web-ui-screenshots";
};
using WebUiAgentsE2eTest = WebHubUiTest;
using WebUiTriageE2eTest = WebHubUiTest;

TEST_F(WebUiAgentsE2eTest, ShowsHealthAndEveryCheckpointVerdictByRole) {
  const fs::path hub_state = this->hub_state();
  ASSERT_NO_FATAL_FAILURE(
      vigil::e2e::AddWebUsers(dir, hub_state, {{"adm", "admin"}, {"vic", "viewer"}}));
  const httplib::Headers as_agent = Token("agent", "gw-1");
  vigil::e2e::WebHub hub;
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::StartWebHub(dir, hub_state, &hub));
  httplib::Client http("127.0.0.1", hub.port);

  // Registered with its audit key, then one heartbeat.
  auto signer = vigil::audit::Ed25519Signer::Generate();
  auto other = vigil::audit::Ed25519Signer::Generate();
  const vigil::audit::PublicKey& pub = signer->public_key();
  const json applied_model = {{"version", "gate-model@7"}, {"digest", std::string(64, 'b')}};
  auto reg = http.Post("/v1/agents/register", as_agent,
                       json{{"host", "gw-1"},
                            {"mode", "monitor"},
                            {"vigil_version", "0.11.0"},
                            {"group", "plant"},
                            {"model", applied_model},
                            {"audit_key",
                             {{"key_id", vigil::audit::KeyIdString(pub.id)},
                              {"public_key", Hex(pub.key.data(), pub.key.size())}}}}
                           .dump(),
                       "application/json");
  ASSERT_TRUE(reg);
  ASSERT_EQ(reg->status, 200) << reg->body;
  auto beat = http.Post("/v1/agents/heartbeat", as_agent,
                        json{{"host", "gw-1"},
                             {"mode", "monitor"},
                             {"model", applied_model},
                             {"health", {{"events_per_s", 12.5}, {"drops", 7}, {"alerts", 3}}}}
                            .dump(),
                        "application/json");
  ASSERT_TRUE(beat);
  ASSERT_EQ(beat->status, 200) << beat->body;

  // Checkpoints: 3 and 6 in order; another chain for record 5 (a fork); 9 dated before 6 (a
  // rollback); 12 signed by a key gw-1 did not register.
  const int64_t t0 = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const json sent[] = {Checkpoint(*signer, 3, 0x11, t0 + 1'000'000'000),
                       Checkpoint(*signer, 6, 0x22, t0 + 2'000'000'000),
                       Checkpoint(*signer, 6, 0x33, t0 + 2'000'000'000),
                       Checkpoint(*signer, 9, 0x44, t0 + 500'000'000),
                       Checkpoint(*other, 12, 0x55, t0 + 3'000'000'000)};
  for (const json& c : sent) {
    auto p = http.Post("/v1/agents/checkpoints", as_agent, c.dump(), "application/json");
    ASSERT_TRUE(p);
    ASSERT_EQ(p->status, 200) << p->body;
  }

  vigil::e2e::RunBrowserFlow(
      "agents_flow.js",
      "VIGIL_HUB_URL=" + hub.url +
          " VIGIL_HOST=gw-1 VIGIL_ADMIN=adm:adm-has-a-long-password"
          " VIGIL_VIEWER=vic:vic-has-a-long-password"
          " VIGIL_HEALTH='12.5 events/s, 7 events dropped, 3 alerts'"
          " VIGIL_CHECKPOINTS='5 checkpoints: 4 verified, 0 unverified, 1 bad signature; 1 "
          "forks, 1 rollbacks.'",
      shots, dir, 3);
}

// An OCSF model verdict about process `pid` on web-1 scoring `score` (as the agent writes it).
json Verdict(int pid, double score, int64_t time_ms) {
  return {{"class_uid", 2004},
          {"time", time_ms},
          {"severity_id", 4},
          {"process", {{"pid", pid}, {"name", "worker"}}},
          {"finding_info",
           {{"title", "Anomalous system-call sequence"},
            {"uid", "worker:" + std::to_string(pid)},
            {"analytic", {{"name", "ngram"}, {"version", "1"}, {"type_id", 4}}}}},
          {"vigil", {{"score", score}, {"anomalous", score >= 0.5}}}};
}

// The models page: with seven adjudicated incidents (three attacks), an admin trains the triage
// model with the page's button and sees the threshold chosen on held-out data and its figures.
TEST_F(WebUiTriageE2eTest, AnAdminTrainsTheTriageModelAndSeesTheHeldOutFigures) {
  const fs::path hub_state = this->hub_state();
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::AddWebUsers(dir, hub_state, {{"adm", "admin"}}));
  const httplib::Headers as_agent = Token("agent", "web-1"), as_analyst = Token("analyst", "ana");
  vigil::e2e::WebHub hub;
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::StartWebHub(dir, hub_state, &hub));
  httplib::Client http("127.0.0.1", hub.port);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const double scores[] = {0.92, 0.85, 0.8, 0.3, 0.2, 0.15, 0.1};
  for (int i = 0; i < 7; ++i) {
    const json body = {{"schema_version", "vigil.hub/v1"},
                       {"host", "web-1"},
                       {"message_id", "m" + std::to_string(i)},
                       {"findings", json::array({Verdict(100 + i, scores[i], now_ms + i)})}};
    auto in = http.Post("/v1/ingest", as_agent, body.dump(), "application/json");
    ASSERT_TRUE(in);
    ASSERT_EQ(in->status, 200) << in->body;
    const int64_t id = json::parse(in->body)["incidents"][0];
    auto l = http.Post("/v1/incidents/" + std::to_string(id) + "/adjudication", as_analyst,
                       json{{"label", i < 3 ? "true_positive" : "false_positive"}}.dump(),
                       "application/json");
    ASSERT_TRUE(l);
    ASSERT_EQ(l->status, 200) << l->body;
  }
  ASSERT_NO_FATAL_FAILURE(vigil::e2e::RunBrowserFlow(
      "triage_flow.js", "VIGIL_HUB_URL=" + hub.url + " VIGIL_ADMIN=adm:adm-has-a-long-password",
      shots, dir, 1));
  auto st = http.Get("/v1/triage", as_analyst);
  ASSERT_TRUE(st);
  ASSERT_EQ(st->status, 200) << st->body;
  EXPECT_EQ(json::parse(st->body)["threshold_source"], "held-out") << st->body;
}

}  // namespace
