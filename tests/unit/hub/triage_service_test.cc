// The hub's triage model in service (hub/triage.h): trained from the store's adjudications through
// POST /v1/triage/train (admin only), signed and audited with the data digest, parameters and
// metrics; loaded only when signed by a trusted key over exactly its bytes (an unsigned, altered
// or foreign-signed file is refused and audited, the model in force stays); every incident an
// ingestion touches is scored, and those below the threshold for the configured recall are marked
// suppressed — kept, listed, filterable and counted in /metrics.

#include "hub/triage.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/files.h"
#include "core/metrics.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/trust.h"
#include "hub/auth.h"
#include "hub/config.h"
#include "hub/correlate.h"
#include "hub/server.h"
#include "hub/store.h"
#include "hub/triage_note.h"
#include "hub_fixtures.h"
#include "test_hub_state.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

class TriageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::OpenTestHubState("hub_triage_service_", clock_, &state_));
    keys_ = (state_.dir / "keys").string();
    ASSERT_TRUE(govern::InitKeys(keys_, false).has_value());
    HubTriageOptions o;
    o.signing_key = govern::SecretKeyPath(keys_);
    o.model_dir = (state_.dir / "triage").string();
    o.recall = 0.9;
    triage_ = std::make_unique<Triage>(o, *state_.store, *state_.log, clock_, registry_);
    // As `vigil hub` wires it: every ingestion scores the incidents it touched.
    ingest_ = std::make_unique<CorrelatingStore>(*state_.store);
    ingest_->SetAfterIngest([this](const std::vector<IngestResult>& results) {
      std::vector<int64_t> ids;
      for (const IngestResult& r : results) ids.insert(ids.end(), r.incidents.begin(), r.incidents.end());
      ASSERT_TRUE(triage_->Score(ids).ok());
    });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(state_.dir);
  }

  // 80 adjudicated incidents, one verdict each: attacks (1 in 4) score high with overlap.
  void LabelSet() {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 80; ++i) {
      const bool attack = i % 4 == 0;
      const double score = attack ? 0.55 + 0.45 * u(rng) : 0.7 * u(rng);
      const int64_t id = IngestVerdict("lab", 1000 + static_cast<uint32_t>(i), i * 1000, score);
      ASSERT_TRUE(state_.store
                      ->Adjudicate(id, attack ? Label::kTruePositive : Label::kFalsePositive,
                                   "ana", "", 2 + i)
                      .has_value());
    }
  }
  // Ingests one verdict through the scoring store; returns its incident.
  int64_t IngestVerdict(const std::string& host, uint32_t pid, int seconds, double score) {
    auto m = ParseIngestRequest(testing::IngestBody(
        host, "m" + std::to_string(pid) + "-" + std::to_string(seconds),
        {testing::VerdictLine(host, pid, "p", seconds, score)}));
    EXPECT_TRUE(m.has_value());
    if (!m.has_value()) return 0;
    auto r = ingest_->Ingest(*m, 1);
    EXPECT_TRUE(r.has_value() && r->incidents.size() == 1);
    return r.has_value() && !r->incidents.empty() ? r->incidents[0] : 0;
  }
  std::vector<json> ModelChanges() {
    EXPECT_TRUE(state_.log->Close().ok());
    std::vector<json> out;
    for (const auto& [type, p] : testing::ReadAuditRecords(state_.dir / "audit")) {
      if (type == audit::RecordType::kModelChange) out.push_back(p);
    }
    return out;
  }
  void StartServer() {
    ServerOptions o;
    o.listen = {"127.0.0.1", 0};
    o.threads = 2;
    server_ = std::make_unique<Server>(o, *ingest_, auth_, *state_.log, clock_, registry_);
    server_->SetTriage(triage_.get());
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(60);
  }
  std::pair<int, json> Call(const std::string& method, const std::string& path, Role role,
                            const std::string& body = "") {
    httplib::Headers h{{"Authorization",
                        "Bearer " + auth_.Issue("someone", role, 900,
                                                clock_.NowUnixNanos() / 1'000'000'000)}};
    auto res =
        method == "GET" ? client_->Get(path, h) : client_->Post(path, h, body, "application/json");
    if (!res) return {-1, nullptr};
    last_body_ = res->body;
    return {res->status, json::parse(res->body, nullptr, false)};
  }

  core::FakeClock clock_;
  core::Registry registry_;
  testing::TestHubState state_;
  std::string keys_;
  std::unique_ptr<Triage> triage_;
  std::unique_ptr<CorrelatingStore> ingest_;
  HubAuth auth_{[] {
    api::JwtConfig j;
    j.hs256_key = "0123456789abcdef0123456789abcdef-triage";
    j.issuer = "vigil-hub";
    j.audience = "vigil-hub";
    return j;
  }()};
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string last_body_;
};

TEST_F(TriageServiceTest, TrainsThroughTheApiThenMarksIncidentsBelowTheRecallThreshold) {
  StartServer();
  // Nothing labelled yet: nothing to learn from.
  EXPECT_EQ(Call("POST", "/v1/triage/train", Role::kAdmin, R"({"rounds":30})").first, 409)
      << last_body_;
  LabelSet();
  // Admins only; a bad parameter is named.
  EXPECT_EQ(Call("POST", "/v1/triage/train", Role::kAnalyst, "{}").first, 403);
  auto [bad, bad_reply] = Call("POST", "/v1/triage/train", Role::kAdmin, R"({"rounds":0})");
  EXPECT_EQ(bad, 400);
  EXPECT_NE(last_body_.find("rounds"), std::string::npos) << last_body_;
  auto [status, reply] =
      Call("POST", "/v1/triage/train", Role::kAdmin, R"({"rounds":30,"max_depth":3})");
  ASSERT_EQ(status, 200) << last_body_;
  const json& t = reply["trained"];
  EXPECT_TRUE(t["activated"].get<bool>());
  EXPECT_EQ(t["rows"], 80);
  EXPECT_EQ(t["true_positives"], 20);
  EXPECT_EQ(t["parameters"]["rounds"], 30);
  EXPECT_EQ(t["data_digest"].get<std::string>().rfind("sha256:", 0), 0u);
  EXPECT_TRUE(std::filesystem::exists(t["path"].get<std::string>() + ".minisig"));

  auto [s, st] = Call("GET", "/v1/triage", Role::kViewer);
  ASSERT_EQ(s, 200) << last_body_;
  // Chosen on out-of-fold scores at training, carried in the signed file.
  EXPECT_EQ(st["threshold_source"], "held-out");
  const double threshold = st["threshold"].get<double>();
  EXPECT_EQ(threshold, t["metrics"]["threshold"].get<double>());
  EXPECT_EQ(t["metrics"]["folds"], 5);
  EXPECT_GE(t["metrics"]["out_of_fold"]["recall"].get<double>(), 0.9);
  EXPECT_EQ(t["metrics"]["held_out"]["alerts_before"], 80);
  EXPECT_TRUE(t["metrics"]["held_out"]["recall"].is_number());
  EXPECT_EQ(st["volume"], t["metrics"]);

  // New alerts: a strong one and a weak one, each its own incident, scored as they arrive.
  const int64_t strong = IngestVerdict("web", 7, 500'000, 0.97);
  const int64_t weak = IngestVerdict("web", 8, 500'000, 0.03);
  auto a = state_.store->Incident(strong);
  auto b = state_.store->Incident(weak);
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(a->triage_score && b->triage_score);
  EXPECT_GT(*a->triage_score, *b->triage_score);
  EXPECT_EQ(a->triage_suppressed, *a->triage_score < threshold);
  EXPECT_EQ(b->triage_suppressed, *b->triage_score < threshold);
  EXPECT_FALSE(a->triage_suppressed);
  EXPECT_TRUE(b->triage_suppressed);

  // Kept and listed; filterable both ways.
  auto [l1, suppressed] = Call("GET", "/v1/incidents?suppressed=true&adjudicated=false",
                               Role::kViewer);
  ASSERT_EQ(l1, 200) << last_body_;
  ASSERT_EQ(suppressed["incidents"].size(), 1u) << last_body_;
  EXPECT_EQ(suppressed["incidents"][0]["id"], weak);
  EXPECT_EQ(suppressed["incidents"][0]["triage"], "suppressed");
  auto [l2, kept] = Call("GET", "/v1/incidents?suppressed=false&adjudicated=false", Role::kViewer);
  ASSERT_EQ(l2, 200);
  ASSERT_EQ(kept["incidents"].size(), 1u);
  EXPECT_EQ(kept["incidents"][0]["triage"], "kept");
  EXPECT_EQ(Call("GET", "/v1/incidents?suppressed=maybe", Role::kViewer).first, 400);
  EXPECT_EQ(state_.store->Count("incidents").value_or(0), 82);

  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("vigil_hub_triage_suppressed_incidents "), std::string::npos);
  EXPECT_NE(metrics->body.find("vigil_hub_triage_scored_total "), std::string::npos);
  server_->Stop();

  // The training and the load are audit records: data digest, parameters, metrics, who.
  bool trained = false, loaded = false;
  for (const json& p : ModelChanges()) {
    if (p["action"] == "trained") {
      trained = true;
      EXPECT_EQ(p["data_digest"], t["data_digest"]);
      EXPECT_EQ(p["parameters"]["max_depth"], 3);
      EXPECT_TRUE(p["metrics"]["held_out"].contains("removed_fraction"));
      EXPECT_TRUE(p["metrics"]["held_out"].contains("recall"));
      EXPECT_EQ(p["by"], "someone");
    }
    if (p["action"] == "loaded") {
      loaded = true;
      EXPECT_EQ(p["threshold"].get<double>(), threshold);
      EXPECT_EQ(p["source"], "api");
    }
  }
  EXPECT_TRUE(trained);
  EXPECT_TRUE(loaded);
}

TEST_F(TriageServiceTest, RefusesUnsignedAlteredOrForeignModelsAndAuditsTheRefusal) {
  LabelSet();
  TriageTrainRequest r;
  r.rounds = 20;
  auto trained = triage_->Train(r, "admin");
  ASSERT_TRUE(trained.has_value()) << trained.error().ToString();
  const std::string good = (*trained)["path"];
  auto bytes = core::ReadFile(good, 1 << 26);
  auto sig = core::ReadFile(good + ".minisig", 1 << 20);
  ASSERT_TRUE(bytes.has_value() && sig.has_value());
  const std::string dir = (state_.dir / "try").string();
  std::filesystem::create_directories(dir);
  // Unsigned.
  const std::string unsigned_path = dir + "/unsigned.vmodel";
  ASSERT_TRUE(govern::internal::WriteFileAtomic(unsigned_path, *bytes, 0644).ok());
  // Altered after signing: one byte of the payload flipped.
  std::string altered = *bytes;
  altered[altered.size() - 10] ^= 0x01;
  const std::string altered_path = dir + "/altered.vmodel";
  ASSERT_TRUE(govern::internal::WriteFileAtomic(altered_path, altered, 0644).ok());
  ASSERT_TRUE(govern::internal::WriteFileAtomic(altered_path + ".minisig", *sig, 0644).ok());
  // Signed by a key the hub does not trust.
  const std::string other_keys = (state_.dir / "other").string();
  ASSERT_TRUE(govern::InitKeys(other_keys, false).has_value());
  auto other = govern::LoadSecretKey(govern::SecretKeyPath(other_keys));
  ASSERT_TRUE(other.has_value());
  const std::string foreign_path = dir + "/foreign.vmodel";
  ASSERT_TRUE(govern::internal::WriteFileAtomic(foreign_path, *bytes, 0644).ok());
  ASSERT_TRUE(govern::SignArtifact(foreign_path, *bytes, *other, "", 1).has_value());

  for (const std::string& p : {unsigned_path, altered_path, foreign_path}) {
    core::Status st = triage_->Load(p, "admin");
    EXPECT_EQ(st.code(), core::StatusCode::kPermissionDenied) << p << ": " << st.ToString();
  }
  // The trained model is still the one in force.
  EXPECT_EQ(triage_->Status()["model"]["path"], good);
  std::vector<std::string> outcomes;
  for (const json& p : ModelChanges()) {
    if (p["action"] == "refused") outcomes.push_back(p["outcome"]);
  }
  EXPECT_EQ(outcomes, (std::vector<std::string>{"unsigned", "altered", "unknown-key"}));
}

// A model trained through the API stays in force across a restart (the signed note
// in-force.json); a tampered model or note is refused at start, audited, and triage.model is used
// instead (here: none, so the hub runs without a model and Start returns the refusal); a changed
// triage.model wins over the note.
TEST_F(TriageServiceTest, ARestartedHubLoadsTheTrainedModelAndRefusesATamperedOne) {
  LabelSet();
  TriageTrainRequest r;
  r.rounds = 20;
  auto trained = triage_->Train(r, "admin");
  ASSERT_TRUE(trained.has_value()) << trained.error().ToString();
  const std::string path = (*trained)["path"];
  const json before = triage_->Status();
  const std::string note = (state_.dir / "triage" / "in-force.json").string();
  ASSERT_TRUE(std::filesystem::exists(note + ".minisig"));

  HubTriageOptions o;
  o.signing_key = govern::SecretKeyPath(keys_);
  o.model_dir = (state_.dir / "triage").string();
  o.recall = 0.9;
  auto restart = [&](const HubTriageOptions& opts) {
    core::Registry registry;
    Triage t(opts, *state_.store, *state_.log, clock_, registry);
    core::Status st = t.Start();
    return std::make_pair(st, t.Status());
  };
  // Restarted: the same file, the same threshold.
  auto [st1, after] = restart(o);
  EXPECT_TRUE(st1.ok()) << st1.ToString();
  EXPECT_EQ(after["model"]["sha256"], before["model"]["sha256"]);
  EXPECT_EQ(after["threshold"], before["threshold"]);
  EXPECT_EQ(after["threshold_source"], "held-out");

  // triage.model changed since the note was written: the configuration wins.
  r.activate = false;
  r.seed = 4;
  auto second = triage_->Train(r, "admin");
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  HubTriageOptions configured = o;
  configured.model = (*second)["path"];
  auto [st2, chosen] = restart(configured);
  EXPECT_TRUE(st2.ok()) << st2.ToString();
  EXPECT_EQ(chosen["model"]["path"], (*second)["path"]);

  // Another signed model copied over the one in force: not the SHA-256 the note names.
  auto good = core::ReadFile(path, 1 << 26);
  auto good_sig = core::ReadFile(path + ".minisig", 1 << 20);
  auto other = core::ReadFile((*second)["path"].get<std::string>(), 1 << 26);
  auto other_sig = core::ReadFile((*second)["path"].get<std::string>() + ".minisig", 1 << 20);
  ASSERT_TRUE(good.has_value() && good_sig.has_value() && other.has_value() &&
              other_sig.has_value());
  ASSERT_TRUE(govern::internal::WriteFileAtomic(path, *other, 0644).ok());
  ASSERT_TRUE(govern::internal::WriteFileAtomic(path + ".minisig", *other_sig, 0644).ok());
  auto [st3, swapped] = restart(o);
  EXPECT_EQ(st3.code(), core::StatusCode::kPermissionDenied) << st3.ToString();
  EXPECT_TRUE(swapped["model"].is_null()) << swapped;

  // The model's bytes altered after signing.
  std::string altered = *good;
  altered[altered.size() - 10] ^= 0x01;
  ASSERT_TRUE(govern::internal::WriteFileAtomic(path, altered, 0644).ok());
  ASSERT_TRUE(govern::internal::WriteFileAtomic(path + ".minisig", *good_sig, 0644).ok());
  auto [st4, tampered] = restart(o);
  EXPECT_EQ(st4.code(), core::StatusCode::kPermissionDenied) << st4.ToString();
  EXPECT_TRUE(tampered["model"].is_null()) << tampered;

  // The note altered (pointing at the second model): refused by its signature.
  ASSERT_TRUE(govern::internal::WriteFileAtomic(path, *good, 0644).ok());
  auto text = core::ReadFile(note, 1 << 16);
  ASSERT_TRUE(text.has_value());
  json n = json::parse(*text);
  n["path"] = (*second)["path"];
  n["sha256"] = (*second)["sha256"];
  ASSERT_TRUE(govern::internal::WriteFileAtomic(note, n.dump() + "\n", 0644).ok());
  auto [st5, forged] = restart(o);
  EXPECT_EQ(st5.code(), core::StatusCode::kPermissionDenied) << st5.ToString();
  EXPECT_TRUE(forged["model"].is_null()) << forged;

  std::vector<std::string> seen;  // "action source/outcome"
  for (const json& p : ModelChanges()) {
    seen.push_back(p["action"].get<std::string>() + " " +
                   p.value("source", p.value("outcome", std::string())));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"trained ", "loaded api", "loaded restored",
                                            "trained ", "loaded configured", "refused altered",
                                            "refused altered", "refused altered"}));
}

// The note is versioned (format_version 1). A note written before the version existed (the same
// fields, no format_version) is still read: the hub restarts with the model it names. A note of
// another version, signed by the hub's own key, is refused with a clear error and audited
// ("unsupported-version"), and triage.model is used instead.
TEST_F(TriageServiceTest, TheInForceNoteIsVersionedAndAnUnknownVersionIsRefused) {
  LabelSet();
  TriageTrainRequest r;
  r.rounds = 20;
  auto trained = triage_->Train(r, "admin");
  ASSERT_TRUE(trained.has_value()) << trained.error().ToString();
  const std::string note = (state_.dir / "triage" / "in-force.json").string();
  auto text = core::ReadFile(note, 1 << 16);
  ASSERT_TRUE(text.has_value());
  const json written = json::parse(*text);
  EXPECT_EQ(written["format_version"], 1) << *text;
  EXPECT_EQ(written["path"], (*trained)["path"]);
  EXPECT_EQ(written["by"], "admin");

  auto key = govern::LoadSecretKey(govern::SecretKeyPath(keys_));
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  auto rewrite = [&](const json& n) {
    const std::string bytes = n.dump() + "\n";
    ASSERT_TRUE(govern::SignArtifact(note, bytes, *key, "test", 1).has_value());
    ASSERT_TRUE(govern::internal::WriteFileAtomic(note, bytes, 0644).ok());
  };
  HubTriageOptions o;
  o.signing_key = govern::SecretKeyPath(keys_);
  o.model_dir = (state_.dir / "triage").string();
  o.recall = 0.9;
  auto restart = [&] {
    core::Registry registry;
    Triage t(o, *state_.store, *state_.log, clock_, registry);
    core::Status st = t.Start();
    return std::make_pair(st, t.Status());
  };

  // As a hub before versions wrote it: read as version 1.
  json legacy = written;
  legacy.erase("format_version");
  rewrite(legacy);
  auto [st1, restored] = restart();
  EXPECT_TRUE(st1.ok()) << st1.ToString();
  EXPECT_EQ(restored["model"]["path"], (*trained)["path"]);

  // A version this hub does not read (signed by its own key): refused, audited, no model.
  json future = written;
  future["format_version"] = 2;
  rewrite(future);
  auto [st2, refused] = restart();
  EXPECT_EQ(st2.code(), core::StatusCode::kFailedPrecondition) << st2.ToString();
  EXPECT_NE(st2.message().find("format_version 2 is not one this hub reads (1)"),
            std::string::npos)
      << st2.message();
  EXPECT_TRUE(refused["model"].is_null()) << refused;
  json bad = written;
  bad["format_version"] = "1";
  rewrite(bad);
  auto [st3, unusable] = restart();
  EXPECT_EQ(st3.code(), core::StatusCode::kInvalidArgument) << st3.ToString();
  EXPECT_NE(st3.message().find("format_version: expected an integer"), std::string::npos)
      << st3.message();

  std::vector<std::string> outcomes;
  for (const json& p : ModelChanges()) {
    if (p["action"] == "refused") outcomes.push_back(p["outcome"]);
  }
  EXPECT_EQ(outcomes, (std::vector<std::string>{"unsupported-version", "unusable"}));
}

TEST(TriageNoteTest, ReadsVersionOneAndUnversionedNotesAndNamesWhatIsWrong) {
  TriageInForceNote n;
  n.path = "/m/triage-1.vmodel";
  n.sha256 = std::string(64, 'a');
  n.config_model = "";
  n.activated_ms = 1234;
  n.by = "root";
  const std::string bytes = TriageInForceNoteBytes(n);
  auto back = ParseTriageInForceNote(bytes, "note");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->format_version, 1);
  EXPECT_FALSE(back->unversioned);
  EXPECT_EQ(back->path, n.path);
  EXPECT_EQ(back->sha256, n.sha256);
  EXPECT_EQ(back->activated_ms, 1234);
  // What hubs wrote before the version existed.
  auto old = ParseTriageInForceNote(
      R"({"path":"/m/t.vmodel","sha256":"ab","config_model":"c","activated_ms":5,"by":"x"})",
      "note");
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_TRUE(old->unversioned);
  EXPECT_EQ(old->config_model, "c");
  struct Bad {
    std::string text, error;
  };
  for (const Bad& b : std::vector<Bad>{
           {"[]", "note: not a JSON object"},
           {R"({"format_version":3,"path":"p","sha256":"s","config_model":""})",
            "note: format_version 3 is not one this hub reads"},
           {R"({"format_version":1.5,"path":"p","sha256":"s","config_model":""})",
            "format_version: expected an integer"},
           {R"({"format_version":1,"sha256":"s","config_model":""})", "path: missing"},
           {R"({"format_version":1,"path":"p","sha256":2,"config_model":""})",
            "sha256: expected a string"},
           {R"({"format_version":1,"path":"p","sha256":"s"})", "config_model: missing"},
           {R"({"format_version":1,"path":"p","sha256":"s","config_model":"","activated_ms":"x"})",
            "activated_ms: expected an integer"},
       }) {
    auto r = ParseTriageInForceNote(b.text, "note");
    ASSERT_FALSE(r.has_value()) << b.text;
    EXPECT_NE(r.error().message().find(b.error), std::string::npos) << r.error().message();
  }
}

TEST(TriageConfigTest, TheTriageSectionIsReadAndBadValuesAreNamed) {
  auto c = ParseHubConfig(
      "state_dir: /s\ntriage:\n  model: m/triage.vmodel\n  trusted_keys: [ops.pub]\n"
      "  recall: 0.9\n  threshold: 0.25\n",
      "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->triage.model, "/etc/vigil/m/triage.vmodel");
  EXPECT_EQ(c->triage.trusted_keys, std::vector<std::string>{"/etc/vigil/ops.pub"});
  EXPECT_EQ(c->triage.recall, 0.9);
  EXPECT_EQ(c->triage.threshold, 0.25);
  c->ResolvePaths();
  EXPECT_EQ(c->triage.model_dir, "/s/triage");
  auto bad = ParseHubConfig("triage:\n  recall: 0\n", "hub.yaml", "/");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("hub.yaml:2:11: triage.recall: expected a number in (0, 1]"),
            std::string::npos)
      << bad.error().message();
  EXPECT_FALSE(ParseHubConfig("triage:\n  nope: 1\n", "hub.yaml", "/").has_value());
}

TEST(TriageTrainRequestTest, ParsesKnownKeysAndNamesTheBadOne) {
  auto d = ParseTriageTrainRequest("");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->rounds, 300);
  EXPECT_TRUE(d->activate);
  auto r = ParseTriageTrainRequest(
      R"({"rounds":12,"eta":0.5,"seed":3,"folds":3,"activate":false})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->folds, 3);
  EXPECT_EQ(r->rounds, 12);
  EXPECT_EQ(r->eta, 0.5);
  EXPECT_FALSE(r->activate);
  for (const char* bad : {"[]", "{", R"({"rounds":"x"})", R"({"eta":0})", R"({"max_depth":99})",
                          R"({"activate":1})", R"({"nope":1})", R"({"folds":1})", R"({"folds":21})"}) {
    auto e = ParseTriageTrainRequest(bad);
    EXPECT_FALSE(e.has_value()) << bad;
  }
  EXPECT_NE(ParseTriageTrainRequest(R"({"nope":1})").error().message().find("nope"),
            std::string::npos);
}

}  // namespace
}  // namespace vigil::hub
