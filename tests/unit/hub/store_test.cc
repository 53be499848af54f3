// The hub's request parsers and the store contract, checked on both backends (SQLite and a real
// PostgreSQL, tests/unit/hub/postgres_fixture.h): idempotent ingestion, incident grouping,
// adjudication counts, the labelled-data export and escalations.

#include "hub/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "hub/checkpoint_requests.h"
#include "hub/fleet.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"
#include "hub_fixtures.h"
#include "postgres_fixture.h"
#include "sqlite_exec.h"
#include "model/triage_labels.h"

namespace vigil::hub {
namespace {

using testing::DecisionLine;
using testing::IngestBody;
using testing::VerdictLine;

TEST(HubRequestsTest, ParsesTheAgentsVerdictAndDecisionFindings) {
  auto m = ParseIngestRequest(IngestBody(
      "web-1", "m1",
      {VerdictLine("web-1", 10, "bash", 0, 0.93), DecisionLine("web-1", 10, "bash", 1, "shell")}));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  ASSERT_EQ(m->findings.size(), 2u);
  const Finding& v = m->findings[0];
  EXPECT_EQ(v.kind, FindingKind::kVerdict);
  EXPECT_EQ(v.time_ms, testing::kBaseNs / 1'000'000);
  EXPECT_EQ(v.pid, 10);
  EXPECT_EQ(v.process, "bash");
  EXPECT_EQ(v.model, "ngram");
  EXPECT_EQ(v.model_version, "1.0");
  ASSERT_TRUE(v.score.has_value());
  EXPECT_NEAR(*v.score, 0.93, 1e-9);
  ASSERT_EQ(v.explanation.size(), 2u);
  EXPECT_EQ(v.explanation[0].what, "open>read>write");
  const Finding& d = m->findings[1];
  EXPECT_EQ(d.kind, FindingKind::kDecision);
  EXPECT_EQ(d.rule, "shell");
  EXPECT_EQ(d.action, "alert");
  EXPECT_EQ(d.model, "ngram");
  EXPECT_EQ(d.message, "shell fired for bash");
}

TEST(HubRequestsTest, BadRequestsNameTheFieldAndTheReason) {
  const std::string good = VerdictLine("h", 1, "p", 0, 0.5);
  struct Case {
    std::string body, expect;
  } cases[] = {
      {"not json", "request: not valid JSON"},
      {"[]", "request: not a JSON object"},
      {R"({"message_id":"m","findings":[]})", "host: missing"},
      {R"({"host":"a b","message_id":"m","findings":[]})", "host: expected"},
      {R"({"host":"h","message_id":"","findings":[]})", "message_id: expected"},
      {R"({"host":"h","message_id":"m"})", "findings: missing or not an array"},
      {R"({"host":"h","message_id":"m","findings":[1]})", "findings[0]: not a JSON object"},
      {R"({"host":"h","message_id":"m","findings":[{"class_uid":1007,"time":1}]})",
       "findings[0].class_uid: expected 2004"},
      {R"({"host":"h","message_id":"m","findings":[{"class_uid":2004,"time":"x"}]})",
       "findings[0].time: expected an integer"},
      {R"({"host":"h","message_id":"m","findings":[{"class_uid":2004,"time":1,"vigil":{}}]})",
       "findings[0].vigil: neither a decision"},
      {R"({"host":"h","message_id":"m","findings":[{"class_uid":2004,"time":1,"vigil":{"score":7}}]})",
       "findings[0].vigil.score: expected a number in [0, 1]"},
      {R"({"schema_version":"v2","host":"h","message_id":"m","findings":[]})", "schema_version"},
  };
  for (const Case& c : cases) {
    auto m = ParseIngestRequest(c.body);
    ASSERT_FALSE(m.has_value()) << c.body;
    EXPECT_EQ(m.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(m.error().message().find(c.expect), std::string::npos)
        << c.body << " -> " << m.error().message();
  }
  EXPECT_FALSE(ParseDecisionRequest(R"({"decision":"maybe"})").has_value());
  EXPECT_FALSE(ParseAdjudicationRequest(R"({"label":"tp"})").has_value());
  auto e =
      ParseEscalationRequest(R"({"host":"h","escalation_id":"7","action":"kill","timeout_s":0})");
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message().find("timeout_s: out of range"), std::string::npos);
}

enum class Backend { kSqlite, kPostgres };

class HubStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // A parameterised test's name is "Case/Backend": one directory level, not two.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::filesystem::temp_directory_path() /
           ("hub_store_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (GetParam() == Backend::kPostgres) {
      std::string why;
      database_ = testing::PostgresServer::Shared().NewDatabase(&why);
      ASSERT_FALSE(database_.empty()) << why;
      location_ = testing::PostgresServer::Shared().Uri(database_);
    } else {
      location_ = (dir_ / "hub.db").string();
    }
    StoreOptions o;
    o.incident_window_ms = 60'000;
    auto s = Store::Open(location_, o);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
    std::string why;
    if (!database_.empty()) {
      EXPECT_TRUE(testing::PostgresServer::Shared().DropDatabase(database_, &why)) << why;
    }
  }
  IngestResult Ingest(const std::string& host, const std::string& id,
                      const std::vector<std::string>& findings) {
    auto m = ParseIngestRequest(IngestBody(host, id, findings));
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    auto r = store_->Ingest(*m, 1000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(IngestResult{});
  }
  int64_t Count(const char* table) { return store_->Count(table).value_or(-1); }

  std::filesystem::path dir_;
  std::string database_;  // PostgreSQL: this test's database
  std::string location_;  // what Store::Open gets
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, HubStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& p) {
                           return p.param == Backend::kSqlite ? "SQLite" : "PostgreSQL";
                         });

TEST_P(HubStoreTest, ARedeliveredMessageIsNotStoredTwice) {
  const std::vector<std::string> batch = {VerdictLine("web-1", 10, "bash", 0, 0.9),
                                          DecisionLine("web-1", 10, "bash", 2, "shell")};
  IngestResult first = Ingest("web-1", "m-1", batch);
  EXPECT_FALSE(first.duplicate);
  EXPECT_EQ(first.findings, 2u);
  EXPECT_EQ(first.new_incidents, 1u);
  IngestResult again = Ingest("web-1", "m-1", batch);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.findings, 0u);
  EXPECT_EQ(Count("alerts"), 2);
  EXPECT_EQ(Count("incidents"), 1);
  EXPECT_EQ(Count("messages"), 1);
  // The same id from another host is another message.
  EXPECT_FALSE(Ingest("web-2", "m-1", {VerdictLine("web-2", 10, "bash", 0, 0.9)}).duplicate);
  EXPECT_EQ(Count("alerts"), 3);
  // The store survives a reopen with its message ids.
  store_.reset();
  auto s = Store::Open(location_, StoreOptions{});
  ASSERT_TRUE(s.has_value());
  store_ = std::move(s).value();
  EXPECT_TRUE(Ingest("web-1", "m-1", batch).duplicate);
  EXPECT_EQ(Count("alerts"), 3);
  auto agents = store_->Agents();
  ASSERT_TRUE(agents.has_value());
  ASSERT_EQ(agents->size(), 2u);
  EXPECT_EQ((*agents)[0].host, "web-1");
  EXPECT_EQ((*agents)[0].messages, 3);
  EXPECT_EQ((*agents)[0].findings, 2);
}

// IngestBatch stores a batch in one transaction with the results Ingest gives message by message:
// a repeated id (in the batch or already stored) is a duplicate, findings join the incidents of
// earlier messages of the same batch and of earlier batches.
TEST_P(HubStoreTest, ABatchIsStoredAsItsMessagesOneByOne) {
  auto msg = [](const std::string& host, const std::string& id,
                const std::vector<std::string>& findings) {
    auto m = ParseIngestRequest(IngestBody(host, id, findings));
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    return m.value_or(IngestMessage{});
  };
  ASSERT_EQ(store_->IngestBatch({}, 1).value_or(std::vector<IngestResult>(1)).size(), 0u);
  const std::vector<IngestMessage> batch = {
      msg("web-1", "m-1",
          {VerdictLine("web-1", 10, "bash", 0, 0.6),
           DecisionLine("web-1", 10, "bash", 50, "shell")}),
      msg("web-2", "m-1", {VerdictLine("web-2", 10, "bash", 0, 0.7)}),
      msg("web-1", "m-1", {VerdictLine("web-1", 99, "x", 0, 0.7)}),  // a repeat: duplicate
      msg("web-1", "m-2",
          {VerdictLine("web-1", 10, "bash", 100, 0.95), VerdictLine("web-1", 11, "bash", 0, 0.5)}),
  };
  auto r = store_->IngestBatch(batch, 1000);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_FALSE((*r)[0].duplicate);
  EXPECT_EQ((*r)[0].findings, 2u);
  EXPECT_EQ((*r)[0].new_incidents, 1u);
  EXPECT_EQ((*r)[1].new_incidents, 1u);
  EXPECT_NE((*r)[1].incidents, (*r)[0].incidents);
  EXPECT_TRUE((*r)[2].duplicate);
  EXPECT_EQ((*r)[2].findings, 0u);
  EXPECT_FALSE((*r)[3].duplicate);
  EXPECT_EQ((*r)[3].new_incidents, 1u);  // pid 11; pid 10 at 100 s joins m-1's incident
  ASSERT_EQ((*r)[3].incidents.size(), 2u);
  EXPECT_EQ((*r)[3].incidents[0], (*r)[0].incidents[0]);
  EXPECT_EQ(Count("alerts"), 5);
  EXPECT_EQ(Count("messages"), 3);
  EXPECT_EQ(Count("incidents"), 3);
  auto joined = store_->Incident((*r)[0].incidents[0]);
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->alerts, 3);
  EXPECT_EQ(joined->decisions, 1);
  EXPECT_NEAR(joined->max_score.value_or(0), 0.95, 1e-9);
  auto agents = store_->Agents();
  ASSERT_TRUE(agents.has_value());
  ASSERT_EQ(agents->size(), 2u);
  EXPECT_EQ((*agents)[0].messages, 3);  // the repeat counts as a message received
  EXPECT_EQ((*agents)[0].findings, 4);
  // A later batch: the stored ids are duplicates, a finding joins an earlier batch's incident.
  auto again = store_->IngestBatch(
      {batch[0], msg("web-2", "m-9", {VerdictLine("web-2", 10, "bash", 30, 0.9)})}, 2000);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_TRUE((*again)[0].duplicate);
  EXPECT_EQ((*again)[1].new_incidents, 0u);
  EXPECT_EQ((*again)[1].incidents, (*r)[1].incidents);
  EXPECT_EQ(Count("alerts"), 6);
}

TEST_P(HubStoreTest, GroupsAlertsByHostProcessAndTimeWindow) {
  // Window 60 s: 0 s and 50 s join; 200 s opens another; another pid, process or host too.
  IngestResult r =
      Ingest("web-1", "m-1",
             {VerdictLine("web-1", 10, "bash", 0, 0.6),
              DecisionLine("web-1", 10, "bash", 50, "shell", 0.8),
              VerdictLine("web-1", 10, "bash", 200, 0.7), VerdictLine("web-1", 11, "bash", 10, 0.7),
              VerdictLine("web-1", 10, "sshd", 10, 0.7)});
  EXPECT_EQ(r.new_incidents, 4u);
  EXPECT_EQ(r.incidents.size(), 4u);
  // The message's host is the grouping host (the same pid and process on another host).
  EXPECT_EQ(Ingest("web-2", "m-1", {VerdictLine("web-2", 10, "bash", 10, 0.7)}).new_incidents, 1u);
  // A late finding (out of order) at 120 s bridges into the first incident's window.
  IngestResult late = Ingest("web-1", "m-2", {VerdictLine("web-1", 10, "bash", 100, 0.95)});
  EXPECT_EQ(late.new_incidents, 0u);
  ASSERT_EQ(late.incidents.size(), 1u);
  EXPECT_EQ(late.incidents[0], r.incidents[0]);
  auto first = store_->Incident(r.incidents[0]);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->alerts, 3);
  EXPECT_EQ(first->verdicts, 2);
  EXPECT_EQ(first->decisions, 1);
  EXPECT_NEAR(first->max_score.value_or(0), 0.95, 1e-9);
  EXPECT_EQ(first->last_ms - first->first_ms, 100'000);
  auto alerts = store_->Alerts(r.incidents[0]);
  ASSERT_TRUE(alerts.has_value());
  ASSERT_EQ(alerts->size(), 3u);
  EXPECT_EQ((*alerts)[1].rule, "shell");
  EXPECT_NE((*alerts)[0].explanation_json.find("open>read>write"), std::string::npos);
  // An adjudicated incident is closed: a later alert of the same process opens a new one.
  ASSERT_TRUE(store_->Adjudicate(r.incidents[0], Label::kTruePositive, "ana", "", 5).has_value());
  EXPECT_EQ(Ingest("web-1", "m-3", {VerdictLine("web-1", 10, "bash", 60, 0.9)}).new_incidents, 1u);
  // Filters.
  IncidentFilter f;
  f.host = "web-2";
  EXPECT_EQ(store_->Incidents(f)->size(), 1u);
  f.host.clear();
  f.adjudicated = true;
  EXPECT_EQ(store_->Incidents(f)->size(), 1u);
  f.adjudicated = false;
  EXPECT_EQ(store_->Incidents(f)->size(), 5u);
  EXPECT_EQ(store_->Incident(9999).error().code(), core::StatusCode::kNotFound);
}

TEST_P(HubStoreTest, StoresTextAsGiven) {
  const std::string odd = "we\"ird\\ {name}, with\nNULL";
  IngestResult r = Ingest("h", "m", {VerdictLine("h", 7, odd, 0, 0.8),
                                     DecisionLine("h", 7, odd, 1, "r,\"{x}\"", 0.5)});
  ASSERT_EQ(r.incidents.size(), 1u);
  auto row = store_->Incident(r.incidents[0]);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->process, odd);
  EXPECT_EQ(row->alerts, 2);
  auto alerts = store_->Alerts(r.incidents[0]);
  ASSERT_TRUE(alerts.has_value());
  ASSERT_EQ(alerts->size(), 2u);
  EXPECT_EQ((*alerts)[1].rule, "r,\"{x}\"");
  EXPECT_NEAR((*alerts)[0].score.value_or(0), 0.8, 1e-12);
  EXPECT_NEAR((*alerts)[1].score.value_or(0), 0.5, 1e-12);
  auto parsed = ParseFindingJson((*alerts)[0].raw);
  ASSERT_TRUE(parsed.has_value()) << (*alerts)[0].raw;
  EXPECT_EQ(parsed->process, odd);
  // Joined by the same odd name in a later message.
  EXPECT_EQ(Ingest("h", "m2", {VerdictLine("h", 7, odd, 2, 0.9)}).new_incidents, 0u);
}

TEST_P(HubStoreTest, CountsAdjudicationsPerRuleAndModelAndExportsTriageLabels) {
  IngestResult r =
      Ingest("h", "m",
             {DecisionLine("h", 1, "a", 0, "shell"), DecisionLine("h", 2, "b", 0, "shell"),
              VerdictLine("h", 3, "c", 0, 0.7, "kitnet"), DecisionLine("h", 4, "d", 0, "shell")});
  ASSERT_EQ(r.incidents.size(), 4u);
  ASSERT_TRUE(store_->Adjudicate(r.incidents[0], Label::kTruePositive, "ana", "", 1).has_value());
  ASSERT_TRUE(store_->Adjudicate(r.incidents[1], Label::kFalsePositive, "ana", "", 2).has_value());
  ASSERT_TRUE(store_->Adjudicate(r.incidents[2], Label::kBenign, "ana", "", 3).has_value());
  auto counts = store_->AdjudicationCounts();
  ASSERT_TRUE(counts.has_value());
  ASSERT_EQ(counts->size(), 3u);  // rule shell, models kitnet and ngram
  EXPECT_EQ((*counts)[0].kind, "rule");
  EXPECT_EQ((*counts)[0].name, "shell");
  EXPECT_EQ((*counts)[0].true_positive, 1);
  EXPECT_EQ((*counts)[0].false_positive, 1);
  EXPECT_EQ((*counts)[0].benign, 0);
  EXPECT_EQ((*counts)[1].name, "kitnet");
  EXPECT_EQ((*counts)[1].benign, 1);
  EXPECT_EQ((*counts)[2].name, "ngram");
  EXPECT_EQ((*counts)[2].true_positive + (*counts)[2].false_positive, 2);

  auto text = store_->ExportLabels();
  ASSERT_TRUE(text.has_value());
  auto records = model::ParseTriageLabels(*text, "export");
  ASSERT_TRUE(records.has_value()) << records.error().ToString() << "\n" << *text;
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].label, model::TriageLabel::kTruePositive);
  EXPECT_EQ((*records)[1].label, model::TriageLabel::kFalsePositive);
  EXPECT_EQ((*records)[2].label, model::TriageLabel::kBenign);
  EXPECT_EQ((*records)[0].features.at("decisions"), 1.0);
  EXPECT_NEAR((*records)[2].features.at("max_score").value_or(0), 0.7, 1e-9);
  auto table = model::LabelTable(*records);
  EXPECT_TRUE(table.has_value());
}

TEST_P(HubStoreTest, EscalationsAreDecidedOnceOrTimeOutToTheirDefault) {
  EscalationRequest e;
  e.host = "h";
  e.escalation_id = "17";
  e.action = "kill";
  e.default_verdict = Verdict::kApprove;
  bool created = false;
  auto a = store_->OpenEscalation(e, 10'000, 1'000, &created);
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(created);
  auto again = store_->OpenEscalation(e, 10'000, 2'000, &created);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(created);
  EXPECT_EQ(again->id, a->id);
  EXPECT_EQ(again->created_ms, 1'000);
  EXPECT_FALSE(a->outcome().has_value());

  e.escalation_id = "18";
  auto b = store_->OpenEscalation(e, 10'000, 1'000, &created);
  ASSERT_TRUE(b.has_value());
  auto denied = store_->Decide(a->id, Verdict::kDeny, "ana", "no", 5'000);
  ASSERT_TRUE(denied.has_value());
  EXPECT_EQ(denied->state, EscalationState::kDenied);
  EXPECT_EQ(denied->outcome(), Verdict::kDeny);
  EXPECT_EQ(store_->Decide(a->id, Verdict::kApprove, "ana", "", 6'000).error().code(),
            core::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->ExpireEscalations(10'999)->size(), 0u);
  auto expired = store_->ExpireEscalations(11'000);
  ASSERT_TRUE(expired.has_value());
  ASSERT_EQ(expired->size(), 1u);
  EXPECT_EQ((*expired)[0].id, b->id);
  EXPECT_EQ((*expired)[0].outcome(), Verdict::kApprove);
  EXPECT_EQ(store_->Decide(b->id, Verdict::kDeny, "ana", "", 12'000).error().code(),
            core::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Escalations(true, "")->size(), 0u);
  EXPECT_EQ(store_->Escalations(false, "")->size(), 2u);
  EXPECT_EQ(store_->Decide(99, Verdict::kDeny, "ana", "", 1).error().code(),
            core::StatusCode::kNotFound);
}

// ---- Fleet (schema version 2) ----

TEST(HubFleetRequestsTest, RegisterAndHeartbeatBodiesAreChecked) {
  auto reg = ParseRegisterRequest(
      R"({"host":"web-1","mode":"monitor","group":"canary","vigil_version":"0.8.0",)"
      R"("policy":{"version":"p1","digest":"sha256:)" + std::string(64, 'a') + R"("}})");
  ASSERT_TRUE(reg.has_value()) << reg.error().ToString();
  EXPECT_EQ(reg->group, "canary");
  EXPECT_EQ(reg->policy.digest, std::string(64, 'a'));
  auto dflt = ParseRegisterRequest(R"({"host":"h","mode":"enforce","vigil_version":"1"})");
  ASSERT_TRUE(dflt.has_value());
  EXPECT_EQ(dflt->group, "default");
  auto beat = ParseHeartbeatRequest(
      R"({"host":"h","mode":"monitor","health":{"events_per_s":12.5,"drops":3,"alerts":1},)"
      R"("refusal":{"kind":"policy","digest":")" + std::string(64, 'b') +
      R"(","reason":"unknown-key","time_ms":5}})");
  ASSERT_TRUE(beat.has_value()) << beat.error().ToString();
  EXPECT_EQ(beat->drops, 3);
  ASSERT_TRUE(beat->refusal.has_value());
  EXPECT_EQ(beat->refusal->reason, "unknown-key");
  struct Case {
    bool heartbeat;
    std::string body, expect;
  } cases[] = {
      {false, "nope", "body: expected a JSON object"},
      {false, R"({"mode":"monitor","vigil_version":"1"})", "host: missing"},
      {false, R"({"host":"h","mode":"learn","vigil_version":"1"})", "mode: expected"},
      {false, R"({"host":"h","mode":"monitor"})", "vigil_version: missing"},
      {false, R"({"host":"h","mode":"monitor","vigil_version":"1","group":"a b"})", "group:"},
      {false, R"({"host":"h","mode":"monitor","vigil_version":"1","policy":{"digest":"xyz"}})",
       "policy.digest: expected 64"},
      {true, R"({"host":"h","mode":"monitor","health":{"drops":-1}})", "health.drops:"},
      {true, R"({"host":"h","mode":"monitor","health":{"events_per_s":"x"}})",
       "health.events_per_s:"},
      {true, R"({"host":"h","mode":"monitor","refusal":{"kind":"binary"}})", "refusal.kind:"},
      {true, R"({"host":"h","mode":"monitor","refusal":{"kind":"model","digest":"1"}})",
       "refusal.digest:"},
  };
  for (const Case& c : cases) {
    auto r = c.heartbeat ? ParseHeartbeatRequest(c.body) : ParseRegisterRequest(c.body);
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.expect), std::string::npos)
        << c.body << " -> " << r.error().message();
  }
  EXPECT_FALSE(ParseRolloutRequest(R"({"digest":"abc","group":"canary"})").has_value());
  EXPECT_FALSE(ParseRolloutRequest(R"({"digest":")" + std::string(64, 'c') + R"("})").has_value());
  EXPECT_TRUE(
      ParseRolloutRequest(R"({"digest":")" + std::string(64, 'c') + R"(","group":"canary"})")
          .has_value());
}

TEST(HubFleetRequestsTest, TheNewestRolloutForTheGroupOrPromotedApplies) {
  std::vector<RolloutRow> rollouts = {
      {1, "d1", "policy", "canary", "promoted", "root", 1, "root", 2},
      {2, "d2", "policy", "canary", "canary", "root", 3, "", 0},
      {3, "d3", "model", "other", "canary", "root", 4, "", 0},
  };
  EXPECT_EQ(RolloutFor(rollouts, "policy", "canary")->digest, "d2");
  EXPECT_EQ(RolloutFor(rollouts, "policy", "default")->digest, "d1");
  EXPECT_EQ(RolloutFor(rollouts, "model", "default"), nullptr);
  EXPECT_EQ(RolloutFor(rollouts, "model", "other")->digest, "d3");
}

TEST_P(HubStoreTest, AgentsRegisterAndHeartbeat) {
  EXPECT_EQ(store_->Heartbeat("web-1", "monitor", "{}", 5).error().code(),
            core::StatusCode::kNotFound);
  AgentStatusRow a;
  a.host = "web-1";
  a.group = "canary";
  a.mode = "monitor";
  a.vigil_version = "0.8.0";
  a.status_json = R"({"policy":{"version":"p1","digest":""}})";
  ASSERT_TRUE(store_->RegisterAgent(a, 1'000).ok());
  auto beat = store_->Heartbeat("web-1", "enforce", R"({"health":{"drops":2}})", 2'000);
  ASSERT_TRUE(beat.has_value()) << beat.error().ToString();
  EXPECT_EQ(beat->group, "canary");
  EXPECT_EQ(beat->mode, "enforce");
  EXPECT_EQ(beat->registered_ms, 1'000);
  EXPECT_EQ(beat->heartbeat_ms, 2'000);
  EXPECT_EQ(beat->status_json, R"({"health":{"drops":2}})");
  a.host = "db-1";
  a.group = "default";
  ASSERT_TRUE(store_->RegisterAgent(a, 3'000).ok());
  auto all = store_->AgentStatuses();
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].host, "db-1");
  EXPECT_EQ((*all)[0].attestation, "absent");
  EXPECT_EQ((*all)[1].host, "web-1");
  EXPECT_EQ((*all)[1].mode, "enforce");
  EXPECT_EQ(Count("agent_status"), 2);
  // Registering again replaces the row (a restarted agent, maybe in another group).
  a.host = "web-1";
  a.group = "default";
  ASSERT_TRUE(store_->RegisterAgent(a, 4'000).ok());
  EXPECT_EQ(store_->Heartbeat("web-1", "monitor", "{}", 5'000)->group, "default");
}

TEST_P(HubStoreTest, ArtifactsAreStoredByDigestAndRolloutsArePromotedOnce) {
  ArtifactRow a;
  a.digest = std::string(64, 'a');
  a.kind = "policy";
  a.name = "rules.yaml";
  a.content = std::string("rules:\0\xff binary-safe\n", 21);
  a.size = static_cast<int64_t>(a.content.size());
  a.signature = "untrusted comment: x\nRWQ...\n";
  a.key_id = "0123456789ABCDEF";
  a.uploaded_by = "root";
  a.uploaded_ms = 10;
  auto created = store_->PutArtifact(a);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_TRUE(*created);
  EXPECT_FALSE(store_->PutArtifact(a).value_or(true));
  auto back = store_->Artifact(a.digest, true);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->content, a.content);
  EXPECT_EQ(back->signature, a.signature);
  EXPECT_EQ(back->size, 21);
  EXPECT_EQ(store_->Artifact(a.digest, false)->content, "");
  EXPECT_EQ(store_->Artifact(std::string(64, 'f'), true).error().code(),
            core::StatusCode::kNotFound);
  EXPECT_EQ(store_->Artifacts()->size(), 1u);

  EXPECT_EQ(store_->StartRollout(std::string(64, 'f'), "canary", "root", 20).error().code(),
            core::StatusCode::kNotFound);
  auto r = store_->StartRollout(a.digest, "canary", "root", 20);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->state, "canary");
  EXPECT_EQ(r->kind, "policy");
  EXPECT_EQ(r->group, "canary");
  auto p = store_->PromoteRollout(r->id, "boss", 30);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->state, "promoted");
  EXPECT_EQ(p->promoted_by, "boss");
  EXPECT_EQ(p->promoted_ms, 30);
  EXPECT_EQ(store_->PromoteRollout(r->id, "boss", 31).error().code(),
            core::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->PromoteRollout(99, "boss", 31).error().code(), core::StatusCode::kNotFound);
  auto r2 = store_->StartRollout(a.digest, "blue", "root", 40);
  ASSERT_TRUE(r2.has_value());
  auto list = store_->Rollouts();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, r2->id);  // newest first
  EXPECT_EQ(Count("rollouts"), 2);
}

AgentStatusRow MonitorAgent(const std::string& host) {
  AgentStatusRow a;
  a.host = host;
  a.group = "g";
  a.mode = "monitor";
  a.vigil_version = "1";
  return a;
}

TEST_P(HubStoreTest, AttestationNoncesAreUsedOnceAndKeysKept) {
  auto used = [&](const std::string& n, int64_t expires, int64_t now) {
    auto r = store_->UseNonce(n, expires, now);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(false);
  };
  EXPECT_TRUE(used("n1", 100, 10));
  EXPECT_FALSE(used("n1", 100, 20));  // a replay
  EXPECT_TRUE(used("n2", 200, 150));  // n1 expired: dropped
  EXPECT_EQ(Count("attestation_nonces"), 1);

  EXPECT_EQ(store_->AttestedKey("web-1").error().code(), core::StatusCode::kNotFound);
  AttestedKeyRow k{"web-1", "000b" + std::string(64, 'a'), "PEM", std::string(64, 'e'), 5, 6};
  ASSERT_TRUE(store_->PutAttestedKey(k).ok());
  k.quoted_ms = 9;
  ASSERT_TRUE(store_->PutAttestedKey(k).ok());
  auto got = store_->AttestedKey("web-1");
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->ak_name, k.ak_name);
  EXPECT_EQ(got->ak_public, "PEM");
  EXPECT_EQ(got->ek_sha256, k.ek_sha256);
  EXPECT_EQ(got->trusted_ms, 5);
  EXPECT_EQ(got->quoted_ms, 9);
  EXPECT_EQ(Count("attested_keys"), 1);

  const AgentStatusRow a = MonitorAgent("web-1");
  ASSERT_TRUE(store_->RegisterAgent(a, 1).ok());
  ASSERT_TRUE(store_->SetAttestation("web-1", "verified", "tied to EK").ok());
  ASSERT_TRUE(store_->SetAttestation("unknown", "failed", "x").ok());
  auto rows = store_->AgentStatuses();
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].attestation, "verified");
  EXPECT_EQ((*rows)[0].attestation_reason, "tied to EK");
}

TEST_P(HubStoreTest, AVersionOneDatabaseIsUpgradedInPlace) {
  Ingest("web-1", "m1", {VerdictLine("web-1", 10, "bash", 0, 0.9)});
  store_.reset();
  // Turn the database back into what a version-1 hub left: no fleet tables (version 2), no
  // attestation tables (version 3), no fleet incidents or missed detections (version 4).
  const std::string drop =
      "DROP TABLE rollouts; DROP TABLE artifacts; DROP TABLE agent_status; "
      "DROP TABLE attestation_nonces; DROP TABLE attested_keys; "
      "DROP TABLE fleet_incidents; DROP TABLE missed_detections;";
  if (GetParam() == Backend::kPostgres) {
    std::string why;
    ASSERT_TRUE(testing::PostgresServer::Shared().Admin(
        drop + " UPDATE hub_schema SET version = 1;", &why, database_))
        << why;
  } else {
    ASSERT_TRUE(testing::SqliteExec(location_, drop + " DROP TABLE hub_schema;"));
  }
  StoreOptions o;
  o.incident_window_ms = 60'000;
  auto s = Store::Open(location_, o);
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  store_ = std::move(s).value();
  EXPECT_EQ(Count("alerts"), 1);  // kept
  EXPECT_EQ(Count("rollouts"), 0);
  EXPECT_EQ(Count("attested_keys"), 0);
  const AgentStatusRow a = MonitorAgent("web-1");
  EXPECT_TRUE(store_->RegisterAgent(a, 1).ok());
  if (GetParam() == Backend::kPostgres) {
    std::string why;
    ASSERT_TRUE(testing::PostgresServer::Shared().Admin(
        "DO $$ BEGIN IF (SELECT MAX(version) FROM hub_schema) <> " +
            std::to_string(kHubSchemaVersionNumber) +
            " THEN RAISE EXCEPTION 'not the current version'; END IF; END $$;",
        &why, database_))
        << why;
  } else {
    EXPECT_EQ(testing::SqliteScalar(location_, "SELECT MAX(version) FROM hub_schema"),
              std::to_string(kHubSchemaVersionNumber));
  }
  EXPECT_EQ(Count("fleet_incidents"), 0);
  EXPECT_EQ(Count("missed_detections"), 0);
  // Opening again changes nothing.
  store_.reset();
  auto again = Store::Open(location_, o);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  store_ = std::move(again).value();
  EXPECT_EQ(Count("agent_status"), 1);
}

TEST_P(HubStoreTest, AVersionTwoDatabaseGetsFleetIncidentsAndMissedDetections) {
  store_.reset();
  const std::string drop = "DROP TABLE fleet_incidents; DROP TABLE missed_detections;";
  std::string why;
  if (GetParam() == Backend::kPostgres) {
    ASSERT_TRUE(testing::PostgresServer::Shared().Admin(
        drop + " UPDATE hub_schema SET version = 2;", &why, database_))
        << why;
  } else {
    ASSERT_TRUE(testing::SqliteExec(location_, drop + " UPDATE hub_schema SET version = 2;"));
  }
  auto s = Store::Open(location_, StoreOptions{});
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  store_ = std::move(s).value();
  EXPECT_EQ(Count("fleet_incidents"), 0);
  EXPECT_EQ(Count("missed_detections"), 0);
}

TEST_P(HubStoreTest, FindingsAfterReadsEveryonesFindingsInIdOrder) {
  Ingest("web-1", "m1", {VerdictLine("web-1", 10, "bash", 5, 0.9), DecisionLine("web-1", 10, "bash", 6, "shell")});
  Ingest("db-1", "m1", {DecisionLine("db-1", 11, "psql", 1, "shell")});  // an older time, a later id
  auto first = store_->FindingsAfter(0, 2);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].host, "web-1");
  EXPECT_LT((*first)[0].id, (*first)[1].id);
  auto rest = store_->FindingsAfter((*first)[1].id, 100);
  ASSERT_TRUE(rest.has_value());
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].host, "db-1");
  EXPECT_NE((*rest)[0].raw.find("psql"), std::string::npos);
  EXPECT_EQ(store_->FindingsAfter((*rest)[0].id, 100)->size(), 0u);
}

TEST_P(HubStoreTest, AVersionFourDatabaseGetsTriageMarks) {
  const int64_t id = Ingest("web-1", "m1", {VerdictLine("web-1", 10, "bash", 0, 0.9)}).incidents[0];
  store_.reset();
  const std::string drop =
      "ALTER TABLE incidents DROP COLUMN triage_score; "
      "ALTER TABLE incidents DROP COLUMN triage_suppressed; UPDATE hub_schema SET version = 4;";
  if (GetParam() == Backend::kPostgres) {
    std::string why;
    ASSERT_TRUE(testing::PostgresServer::Shared().Admin(drop, &why, database_)) << why;
  } else {
    ASSERT_TRUE(testing::SqliteExec(location_, drop));
  }
  auto s = Store::Open(location_, StoreOptions{});
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  store_ = std::move(s).value();
  auto before = store_->Incident(id);
  ASSERT_TRUE(before.has_value());
  EXPECT_FALSE(before->triage_score);  // not scored
  EXPECT_FALSE(before->triage_suppressed);
  // Features as the label export names them; marks stored, filtered and counted.
  auto f = store_->TriageFeatures({id, id + 1000});
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  ASSERT_EQ(f->size(), 1u);
  EXPECT_EQ((*f)[0].features.at("alerts"), 1.0);
  EXPECT_EQ((*f)[0].features.at("max_score"), 0.9);
  EXPECT_EQ((*f)[0].features.size(), 9u);
  ASSERT_TRUE(store_->SetTriage({{id, 0.25, true}, {id + 1000, 0.5, false}}).ok());
  auto after = store_->Incident(id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->triage_score, 0.25);
  EXPECT_TRUE(after->triage_suppressed);
  IncidentFilter kept;
  kept.suppressed = false;
  EXPECT_EQ(store_->Incidents(kept)->size(), 0u);
  kept.suppressed = true;
  EXPECT_EQ(store_->Incidents(kept)->size(), 1u);
  EXPECT_EQ(store_->CountSuppressed().value_or(-1), 1);
}

TEST_P(HubStoreTest, FleetIncidentsMissedDetectionsAndScores) {
  // Fleet incidents merge within the window, per kind and key.
  FleetIncidentRow d{0, "spread", "rule:x|process:y", {"b", "a"}, 1000, 2000, "two", 0, 0};
  auto first = store_->RaiseFleetIncident(d, 60'000, 5);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_TRUE(first->created);
  auto again = store_->RaiseFleetIncident(d, 60'000, 6);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->created || again->changed);
  d.hosts = {"c"};
  d.summary = "three";
  auto grown = store_->RaiseFleetIncident(d, 60'000, 7);
  ASSERT_TRUE(grown.has_value());
  EXPECT_TRUE(grown->changed);
  EXPECT_EQ(grown->row.id, first->row.id);
  EXPECT_EQ(grown->row.hosts, (std::vector<std::string>{"a", "b", "c"}));
  FleetIncidentRow chain{0, "chain", "a->b", {"a", "b"}, 10, 20, "chain", 0, 0};
  ASSERT_TRUE(store_->RaiseFleetIncident(chain, 60'000, 8).has_value());
  auto list = store_->FleetIncidents(10, 0);
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].kind, "chain");  // newest first
  EXPECT_EQ((*list)[0].hosts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*list)[1].summary, "three");
  EXPECT_EQ((*list)[1].updated_ms, 7);
  EXPECT_EQ(store_->FleetIncidents(10, (*list)[0].id)->size(), 1u);

  // Missed detections are the false negatives of the adjudication counts.
  Ingest("web-1", "m1", {DecisionLine("web-1", 10, "bash", 1, "shell")});
  ASSERT_TRUE(store_->Adjudicate(1, Label::kTruePositive, "ana", "", 5).has_value());
  for (const char* kind : {"rule", "rule", "model"}) {
    MissedDetectionRow m{0, "web-1", kind, std::string(kind) == "rule" ? "shell" : "iforest",
                         77, "hunt", "ana", 9};
    auto r = store_->RecordMissedDetection(m);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_GT(r->id, 0);
  }
  auto missed = store_->MissedDetections(10);
  ASSERT_TRUE(missed.has_value());
  ASSERT_EQ(missed->size(), 3u);
  EXPECT_EQ((*missed)[0].name, "iforest");
  EXPECT_EQ((*missed)[0].time_ms, 77);
  auto counts = store_->AdjudicationCounts();
  ASSERT_TRUE(counts.has_value());
  int found = 0;
  for (const AdjudicationCount& c : *counts) {
    if (c.kind == "rule" && c.name == "shell") {
      EXPECT_EQ(c.true_positive, 1);
      EXPECT_EQ(c.false_negative, 2);
      ++found;
    }
    if (c.kind == "model" && c.name == "iforest") {
      EXPECT_EQ(c.true_positive, 0);
      EXPECT_EQ(c.false_negative, 1);
      ++found;
    }
  }
  EXPECT_EQ(found, 2);

  // Recent findings come back with their hosts, oldest first; scores per model.
  Ingest("db-1", "m1", {VerdictLine("db-1", 11, "pg", 5, 0.7, "iforest")});
  const int64_t base = testing::kBaseNs / 1'000'000;
  auto recent = store_->RecentFindings(base, 10);
  ASSERT_TRUE(recent.has_value()) << recent.error().ToString();
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].host, "web-1");
  EXPECT_EQ((*recent)[1].host, "db-1");
  EXPECT_TRUE(ParseFindingJson((*recent)[1].raw).has_value());
  EXPECT_EQ(store_->RecentFindings(base + 2000, 10)->size(), 1u);
  EXPECT_EQ(store_->RecentFindings(base, 1)->front().host, "db-1");  // the newest when cut
  auto scores = store_->ScoreSamples(0, 10);
  ASSERT_TRUE(scores.has_value()) << scores.error().ToString();
  ASSERT_EQ(scores->size(), 2u);
  EXPECT_EQ((*scores)[0].model, "ngram");  // the decision's ML score
  EXPECT_NEAR((*scores)[0].score, 0.9, 1e-9);
  EXPECT_EQ((*scores)[1].model, "iforest");
  EXPECT_EQ((*scores)[1].time_ms, base + 5000);
}

// Audit checkpoints (schema version 6): stored once per (host, covers, chain hash); another
// chain hash for the same record is a fork; a sequence that goes back in time is a rollback.
TEST_P(HubStoreTest, CheckpointsAreStoredOnceAndForksAndRollbacksFlagged) {
  auto row = [](const std::string& host, int64_t covers, char hash, int64_t time_ns) {
    CheckpointRow c;
    c.host = host;
    c.seq = covers + 1;
    c.covers = covers;
    c.chain_hash = std::string(64, hash);
    c.time_ns = time_ns;
    c.key_id = "0123456789ABCDEF";
    c.public_key = std::string(64, 'b');
    c.signature = std::string(128, 'c');
    c.verification = "verified";
    c.received_ms = 7;
    return c;
  };
  auto put = [&](const CheckpointRow& c) {
    auto r = store_->PutCheckpoint(c);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(CheckpointPut{});
  };
  CheckpointPut a = put(row("web-1", 1000, 'a', 100));
  EXPECT_FALSE(a.duplicate);
  EXPECT_GT(a.row.id, 0);
  EXPECT_EQ(a.row.problem, "");
  EXPECT_EQ(put(row("web-1", 2000, 'b', 200)).row.problem, "");
  EXPECT_EQ(put(row("web-1", 1500, 'c', 150)).row.problem, "");  // late, but consistent
  CheckpointPut again = put(row("web-1", 1000, 'a', 100));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.row.id, a.row.id);
  EXPECT_EQ(put(row("web-2", 1000, 'z', 1)).row.problem, "");  // another host: no relation

  CheckpointPut fork = put(row("web-1", 2000, 'f', 200));
  EXPECT_FALSE(fork.duplicate);
  EXPECT_EQ(fork.row.problem, "fork");
  EXPECT_NE(fork.row.problem_detail.find("record 2000"), std::string::npos)
      << fork.row.problem_detail;
  // Covers fewer records than the one at 2000 but is later: the log was cut and written again.
  CheckpointPut back = put(row("web-1", 1800, 'r', 300));
  EXPECT_EQ(back.row.problem, "rollback");
  EXPECT_NE(back.row.problem_detail.find("checkpoint 2001"), std::string::npos)
      << back.row.problem_detail;
  // A forged checkpoint (bad signature) is kept but judged nothing against.
  CheckpointRow forged = row("web-1", 5000, 'x', 1);
  forged.verification = "bad-signature";
  forged.reason = "does not verify";
  EXPECT_EQ(put(forged).row.problem, "rollback");
  EXPECT_EQ(put(row("web-1", 6000, 'g', 400)).row.problem, "");

  auto list = store_->Checkpoints("web-1", 100);
  ASSERT_TRUE(list.has_value()) << list.error().ToString();
  ASSERT_EQ(list->size(), 7u);
  EXPECT_EQ((*list)[0].covers, 6000);  // highest first
  EXPECT_EQ((*list)[1].verification, "bad-signature");
  EXPECT_EQ((*list)[1].reason, "does not verify");
  EXPECT_EQ(store_->Checkpoints("web-1", 2)->size(), 2u);
  EXPECT_EQ(Count("audit_checkpoints"), 8);

  EXPECT_EQ(store_->AuditKey("web-1").error().code(), core::StatusCode::kNotFound);
  ASSERT_TRUE(store_->PutAuditKey({"web-1", "0123456789ABCDEF", std::string(64, 'b'), 5}).ok());
  ASSERT_TRUE(store_->PutAuditKey({"web-1", "FEDCBA9876543210", std::string(64, 'd'), 6}).ok());
  auto key = store_->AuditKey("web-1");
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  EXPECT_EQ(key->key_id, "FEDCBA9876543210");
  EXPECT_EQ(key->public_key, std::string(64, 'd'));
  EXPECT_EQ(key->registered_ms, 6);
  EXPECT_EQ(Count("audit_keys"), 1);

  // An admin's pin: one per host, replaced by the next.
  EXPECT_EQ(store_->AuditKeyPin("web-1").error().code(), core::StatusCode::kNotFound);
  ASSERT_TRUE(store_->PutAuditKeyPin({"web-1", std::string(64, 'e'), "root", "first", 7}).ok());
  ASSERT_TRUE(store_->PutAuditKeyPin({"web-1", std::string(64, 'f'), "eve", "rotated", 8}).ok());
  auto pin = store_->AuditKeyPin("web-1");
  ASSERT_TRUE(pin.has_value()) << pin.error().ToString();
  EXPECT_EQ(pin->host, "web-1");
  EXPECT_EQ(pin->fingerprint, std::string(64, 'f'));
  EXPECT_EQ(pin->pinned_by, "eve");
  EXPECT_EQ(pin->reason, "rotated");
  EXPECT_EQ(pin->pinned_ms, 8);
  EXPECT_EQ(Count("audit_key_pins"), 1);
  EXPECT_EQ(store_->AuditKeyPin("web-2").error().code(), core::StatusCode::kNotFound);
}

TEST(HubRequestsTest, ParsesAuditKeyPinsAndNamesTheBadField) {
  // The fingerprint of an audit key: SHA-256 of its 32 public-key bytes.
  EXPECT_EQ(AuditKeyFingerprint(std::string(64, '0')),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
  EXPECT_EQ(AuditKeyFingerprint("not hex"), "");
  const std::string fp(64, 'a');
  auto pin = ParseAuditKeyPinRequest(R"({"schema_version":"vigil.hub/v1","host":"web-1",)"
                                     R"("fingerprint":")" + std::string(64, 'A') +
                                     R"(","reason":"read off the host"})");
  ASSERT_TRUE(pin.has_value()) << pin.error().ToString();
  EXPECT_EQ(pin->host, "web-1");
  EXPECT_EQ(pin->fingerprint, fp);  // kept lowercase
  EXPECT_EQ(pin->reason, "read off the host");
  auto again = ParseAuditKeyPinRequest(AuditKeyPinBody(*pin));
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(again->fingerprint, fp);
  struct Bad {
    std::string body, error;
  };
  const std::string head = R"({"schema_version":"vigil.hub/v1","host":"web-1")";
  for (const Bad& b : std::vector<Bad>{
           {head + "}", "fingerprint: missing"},
           {head + R"(,"fingerprint":12})", "fingerprint: expected 64 hex digits"},
           {head + R"(,"fingerprint":")" + std::string(63, 'a') + R"("})",
            "fingerprint: expected 64 hex digits"},
           {head + R"(,"fingerprint":")" + fp + R"(","reason":)" + "\"" +
                std::string(1025, 'x') + R"("})",
            "reason: expected a string of at most 1024 bytes"},
           {R"({"schema_version":"vigil.hub/v1","host":"a b","fingerprint":")" + fp + R"("})",
            "host: expected"},
       }) {
    auto r = ParseAuditKeyPinRequest(b.body);
    ASSERT_FALSE(r.has_value()) << b.body;
    EXPECT_NE(r.error().message().find(b.error), std::string::npos) << r.error().message();
  }
}

TEST(HubRequestsTest, ParsesCheckpointsAndNamesTheBadField) {
  CheckpointReport c;
  c.host = "web-1.example";
  c.seq = 1001;
  c.covers = 1000;
  c.chain_hash = std::string(64, 'a');
  c.time_ns = 1'700'000'000'000'000'000;
  c.key_id = "0123456789ABCDEF";
  c.public_key = std::string(64, 'b');
  c.signature = std::string(128, 'c');
  auto back = ParseCheckpointRequest(CheckpointBody(c));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->host, c.host);
  EXPECT_EQ(back->seq, 1001u);
  EXPECT_EQ(back->time_ns, c.time_ns);
  EXPECT_EQ(CheckpointMessageId(c), "checkpoint-1001-aaaaaaaaaaaaaaaa");
  auto bad = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = nlohmann::json::parse(CheckpointBody(c));
    if (value.is_null()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    auto r = ParseCheckpointRequest(j.dump());
    EXPECT_FALSE(r.has_value()) << key;
    return r.has_value() ? std::string() : r.error().message();
  };
  EXPECT_EQ(bad("host", "a b").rfind("host:", 0), 0u);
  EXPECT_EQ(bad("covers", 7).rfind("covers: expected seq - 1", 0), 0u);
  EXPECT_EQ(bad("seq", nullptr).rfind("seq: missing", 0), 0u);
  EXPECT_EQ(bad("chain_hash", std::string(64, 'A')).rfind("chain_hash:", 0), 0u);
  EXPECT_EQ(bad("key_id", "0123456789abcdef").rfind("key_id:", 0), 0u);
  EXPECT_EQ(bad("signature", std::string(127, 'c')).rfind("signature:", 0), 0u);
  EXPECT_EQ(bad("time_ns", -5).rfind("time_ns:", 0), 0u);
  EXPECT_EQ(bad("schema_version", "v2").rfind("schema_version:", 0), 0u);
  EXPECT_FALSE(ParseCheckpointRequest("[").has_value());
}

}  // namespace
}  // namespace vigil::hub
