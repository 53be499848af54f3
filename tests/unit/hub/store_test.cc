// The hub's request parsers and the store contract, checked on both backends (SQLite and a real
// PostgreSQL, tests/unit/hub/postgres_fixture.h): idempotent ingestion, incident grouping,
// adjudication counts, the labelled-data export and escalations.

#include "hub/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "hub/requests.h"
#include "hub_fixtures.h"
#include "postgres_fixture.h"
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

}  // namespace
}  // namespace vigil::hub
