// The hub's global model (hub/correlate.h): the correlator alone (K distinct hosts, window
// expiry, chains A -> B, bounded memory), wired to a SQLite store (idempotent raising, rebuild at
// start, addresses from registrations), and through the HTTP API (a fleet incident from
// POST /v1/ingest; missed detections in GET /v1/precision and /metrics); the models page's
// score-distribution and drift data (hub/model_plots.h, GET /v1/models/scores).

#include "hub/correlate.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "hub/config.h"
#include "hub/model_plots.h"
#include "hub/server.h"
#include "hub_fixtures.h"
#include "sqlite_exec.h"
#include "test_hub_state.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

constexpr int64_t kT0 = 1'700'000'000'000;  // ms
constexpr int64_t kMinute = 60'000;

Finding Rule(const std::string& rule, const std::string& process, int64_t t,
             const std::string& dst = "") {
  Finding f;
  f.kind = FindingKind::kDecision;
  f.time_ms = t;
  f.rule = rule;
  f.process = process;
  f.dst_ip = dst;
  return f;
}

Finding Model(const std::string& model, const std::string& process, double score, int64_t t,
              const std::string& why = "open>read>write") {
  Finding f;
  f.kind = FindingKind::kVerdict;
  f.time_ms = t;
  f.model = model;
  f.process = process;
  f.score = score;
  f.explanation = {{"execve", 0.1}, {why, 0.8}};
  return f;
}

CorrelatorOptions Opts(int k = 3, int64_t window_ms = 10 * kMinute) {
  CorrelatorOptions o;
  o.min_hosts = k;
  o.window_ms = window_ms;
  return o;
}

TEST(CorrelatorTest, TheHubConfigSetsWindowHostsAndScore) {
  auto c = ParseHubConfig("", "hub.yaml", "/");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->correlation.enabled);
  EXPECT_EQ(c->correlation.window_s, 600u);
  EXPECT_EQ(c->correlation.min_hosts, 3u);
  c = ParseHubConfig("correlation:\n  window: 2m\n  min_hosts: 5\n  min_score: 0.8\n"
                     "  enabled: false\n",
                     "hub.yaml", "/");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_FALSE(c->correlation.enabled);
  EXPECT_EQ(c->correlation.window_s, 120u);
  EXPECT_EQ(c->correlation.min_hosts, 5u);
  EXPECT_DOUBLE_EQ(c->correlation.min_score, 0.8);
  for (const char* bad : {"correlation:\n  min_hosts: 1\n", "correlation:\n  min_score: 2\n",
                          "correlation:\n  window: soon\n", "correlation:\n  k: 3\n"}) {
    auto e = ParseHubConfig(bad, "hub.yaml", "/");
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_NE(e.error().message().find("hub.yaml:2:"), std::string::npos) << e.error().message();
  }
}

TEST(CorrelatorTest, FindingsCarryTheirNetworkDestination) {
  json j = json::parse(testing::DecisionLine("web", 1, "curl", 0, "egress"));
  j["dst_endpoint"] = {{"ip", "10.0.0.2"}, {"port", 5432}};
  auto f = ParseFindingJson(j.dump());
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->dst_ip, "10.0.0.2");
  j["dst_endpoint"]["ip"] = "2001:db8::1";
  EXPECT_EQ(ParseFindingJson(j.dump())->dst_ip, "2001:db8::1");
  j["dst_endpoint"]["ip"] = "db.internal";
  auto bad = ParseFindingJson(j.dump());
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "dst_endpoint.ip: expected an IPv4 or IPv6 address");
  j["dst_endpoint"] = 7;
  EXPECT_FALSE(ParseFindingJson(j.dump()).has_value());
}

TEST(CorrelatorTest, RaisesASpreadOnceKDistinctHostsShowTheSameBehaviour) {
  Correlator c(Opts(3));
  EXPECT_TRUE(c.Observe("h1", {Rule("shell", "nginx", kT0)}).empty());
  // The same host again does not count twice; another rule or process is another behaviour.
  EXPECT_TRUE(c.Observe("h1", {Rule("shell", "nginx", kT0 + 1000)}).empty());
  EXPECT_TRUE(c.Observe("h2", {Rule("shell", "apache", kT0 + 2000)}).empty());
  EXPECT_TRUE(c.Observe("h3", {Rule("other", "nginx", kT0 + 2000)}).empty());
  EXPECT_TRUE(c.Observe("h2", {Rule("shell", "nginx", kT0 + 3000)}).empty());
  auto d = c.Observe("h3", {Rule("shell", "nginx", kT0 + 4000)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, FleetIncidentKind::kSpread);
  EXPECT_EQ(d[0].key, "rule:shell|process:nginx");
  EXPECT_EQ(d[0].hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
  EXPECT_EQ(d[0].first_ms, kT0 + 1000);  // h1's latest
  EXPECT_EQ(d[0].last_ms, kT0 + 4000);
  EXPECT_NE(d[0].summary.find("3 hosts"), std::string::npos);
  // Nothing new: not raised again; a fourth host grows it.
  EXPECT_TRUE(c.Observe("h2", {Rule("shell", "nginx", kT0 + 5000)}).empty());
  d = c.Observe("h4", {Rule("shell", "nginx", kT0 + 6000)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].hosts.size(), 4u);
}

TEST(CorrelatorTest, HostsOutsideTheWindowDoNotCount) {
  Correlator c(Opts(3, 10 * kMinute));
  EXPECT_TRUE(c.Observe("h1", {Rule("shell", "bash", kT0)}).empty());
  EXPECT_TRUE(c.Observe("h2", {Rule("shell", "bash", kT0 + 5 * kMinute)}).empty());
  // h1 is 11 minutes before: out of the window.
  EXPECT_TRUE(c.Observe("h3", {Rule("shell", "bash", kT0 + 11 * kMinute)}).empty());
  // h4 at 14 min: h2 (9 min before), h3 and h4 are within 10 minutes.
  auto d = c.Observe("h4", {Rule("shell", "bash", kT0 + 14 * kMinute)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].hosts, (std::vector<std::string>{"h2", "h3", "h4"}));
  // A late-delivered finding is placed by its own time: h1 again at 0 sees only h2 within 10 min.
  EXPECT_TRUE(c.Observe("h1", {Rule("shell", "bash", kT0 + 1)}).empty());
  // Long after, the same behaviour on three hosts is a new spread (a new draft).
  const int64_t later = kT0 + 120 * kMinute;
  EXPECT_TRUE(c.Observe("h5", {Rule("shell", "bash", later)}).empty());
  EXPECT_TRUE(c.Observe("h6", {Rule("shell", "bash", later + 1)}).empty());
  d = c.Observe("h7", {Rule("shell", "bash", later + 2)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].hosts, (std::vector<std::string>{"h5", "h6", "h7"}));
}

TEST(CorrelatorTest, VerdictsCountByModelProcessAndStrongestEvidenceAboveMinScore) {
  Correlator c(Opts(2));
  EXPECT_TRUE(c.Observe("h1", {Model("ngram", "sshd", 0.9, kT0)}).empty());
  // Below min_score (0.5): not rare enough.
  EXPECT_TRUE(c.Observe("h2", {Model("ngram", "sshd", 0.3, kT0)}).empty());
  // Another strongest n-gram: another behaviour.
  EXPECT_TRUE(c.Observe("h3", {Model("ngram", "sshd", 0.9, kT0, "mmap>mprotect")}).empty());
  auto d = c.Observe("h4", {Model("ngram", "sshd", 0.8, kT0 + 10)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].key, "model:ngram|process:sshd|why:open>read>write");
  EXPECT_EQ(d[0].hosts, (std::vector<std::string>{"h1", "h4"}));
}

TEST(CorrelatorTest, RaisesAChainWhenAHostsConnectionIsFollowedByAFindingOnTheTarget) {
  Correlator c(Opts(100));
  c.SetAddresses({{"10.0.0.2", "db"}, {"10.0.0.3", "cache"}});
  // web connects to db's address, then db has a finding 2 minutes later.
  EXPECT_TRUE(c.Observe("web", {Rule("curl-out", "curl", kT0, "10.0.0.2")}).empty());
  auto d = c.Observe("db", {Rule("shell", "postgres", kT0 + 2 * kMinute)});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, FleetIncidentKind::kChain);
  EXPECT_EQ(d[0].key, "web->db");
  EXPECT_EQ(d[0].hosts, (std::vector<std::string>{"web", "db"}));
  EXPECT_EQ(d[0].first_ms, kT0);
  EXPECT_EQ(d[0].last_ms, kT0 + 2 * kMinute);
  // More findings on db in the same window: not raised again.
  EXPECT_TRUE(c.Observe("db", {Rule("shell", "postgres", kT0 + 3 * kMinute)}).empty());
  // A finding on cache before the connection to it, or after the window, is no chain.
  EXPECT_TRUE(c.Observe("cache", {Rule("shell", "redis", kT0 + 10)}).empty());
  EXPECT_TRUE(c.Observe("web", {Rule("curl-out", "curl", kT0 + 20, "10.0.0.3")}).empty());
  EXPECT_TRUE(c.Observe("cache", {Rule("shell", "redis", kT0 + 20 + 11 * kMinute)}).empty());
  // An address nobody registered, or the host's own, is no chain either.
  EXPECT_TRUE(c.Observe("web", {Rule("curl-out", "curl", kT0 + 30, "192.0.2.1")}).empty());
}

TEST(CorrelatorTest, RaisesAChainWhenTheTargetsFindingArrivesFirst) {
  Correlator c(Opts(100));
  c.SetAddresses({{"fd00::2", "db"}});
  // db's message was delivered before web's: the order of arrival does not matter, the times do.
  EXPECT_TRUE(c.Observe("db", {Rule("shell", "postgres", kT0 + kMinute)}).empty());
  auto d = c.Observe("web", {Rule("curl-out", "curl", kT0, "fd00::2")});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].key, "web->db");
  EXPECT_EQ(d[0].first_ms, kT0);
  EXPECT_EQ(d[0].last_ms, kT0 + kMinute);
}

TEST(CorrelatorTest, MemoryStaysWithinItsBound) {
  CorrelatorOptions o = Opts(3);
  o.max_keys = 100;
  o.max_hosts = 50;
  o.max_hosts_per_key = 8;
  Correlator c(o);
  for (int i = 0; i < 10'000; ++i) {
    // Distinct behaviours, all within one window (nothing expires), on distinct hosts.
    c.Observe("host" + std::to_string(i), {Rule("r" + std::to_string(i), "p", kT0 + i)});
    ASSERT_LE(c.tracked_keys(), 100u);
    ASSERT_LE(c.tracked_hosts(), 50u);
  }
  EXPECT_GT(c.dropped(), 0u);
  // One behaviour on many hosts keeps at most max_hosts_per_key of them.
  for (int i = 0; i < 100; ++i) {
    c.Observe("w" + std::to_string(i), {Rule("wide", "p", kT0 + 20'000 + i)});
  }
  EXPECT_LE(c.tracked_keys(), 100u);
  // The newest keys survive: a spread still forms on them.
  c.Observe("a", {Rule("fresh", "p", kT0 + 30'000)});
  c.Observe("b", {Rule("fresh", "p", kT0 + 30'001)});
  EXPECT_EQ(c.Observe("c", {Rule("fresh", "p", kT0 + 30'002)}).size(), 1u);
}

// The correlator on a real SQLite store and audit log.
class FleetCorrelationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::OpenTestHubState("hub_correlate_", clock_, &state_));
    Reopen();
  }
  void TearDown() override { std::filesystem::remove_all(state_.dir); }
  void Reopen() {
    correlating_.reset();
    correlation_ = std::make_unique<FleetCorrelation>(Opts(3), *state_.store, *state_.log, clock_,
                                                      registry_);
    correlating_ = std::make_unique<CorrelatingStore>(*state_.store, *correlation_);
  }
  IngestMessage Message(const std::string& host, const std::string& id,
                        std::vector<Finding> findings) {
    IngestMessage m;
    m.host = host;
    m.message_id = id;
    m.findings = std::move(findings);
    for (Finding& f : m.findings) {
      // As received: the raw finding is what a restart reads back.
      json j = {{"class_uid", 2004}, {"time", f.time_ms},
                {"process", {{"pid", 1}, {"name", f.process}}},
                {"vigil", {{"rule", f.rule}, {"action", "alert"}}}};
      if (!f.dst_ip.empty()) j["dst_endpoint"] = {{"ip", f.dst_ip}};
      f.pid = 1;
      f.raw = j.dump();
    }
    return m;
  }
  std::vector<std::pair<audit::RecordType, json>> AuditRecords() {
    EXPECT_TRUE(state_.log->Close().ok());
    return testing::ReadAuditRecords(state_.dir / "audit");
  }
  int64_t FleetRows() { return state_.store->Count("fleet_incidents").value_or(-1); }

  core::FakeClock clock_;
  core::Registry registry_;
  testing::TestHubState state_;
  std::unique_ptr<FleetCorrelation> correlation_;
  std::unique_ptr<CorrelatingStore> correlating_;
};

TEST_F(FleetCorrelationTest, ARedeliveredMessageOrARestartNeverMakesASecondFleetIncident) {
  const int64_t now = clock_.NowUnixNanos() / 1'000'000;
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_TRUE(correlating_->Ingest(Message(h, "m1", {Rule("shell", "bash", now)}), now).has_value());
  }
  EXPECT_EQ(FleetRows(), 1);
  auto rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].kind, "spread");
  EXPECT_EQ((*rows)[0].hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
  // Every message redelivered: duplicates, nothing raised.
  for (const char* h : {"h1", "h2", "h3"}) {
    auto r = correlating_->Ingest(Message(h, "m1", {Rule("shell", "bash", now)}), now);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->duplicate);
  }
  EXPECT_EQ(FleetRows(), 1);
  // A restart: a fresh correlator rebuilt from the store raises the same spread, which the store
  // merges into the row it has: still one, unchanged, not audited again.
  Reopen();
  ASSERT_TRUE(correlation_->Rebuild().ok());
  EXPECT_EQ(FleetRows(), 1);
  EXPECT_GT(correlation_->tracked_keys(), 0u);
  // A fourth host after the restart grows the same fleet incident.
  ASSERT_TRUE(correlating_->Ingest(Message("h4", "m1", {Rule("shell", "bash", now + 5)}), now).has_value());
  EXPECT_EQ(FleetRows(), 1);
  rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ((*rows)[0].hosts.size(), 4u);
  int opened = 0, grown = 0;
  for (const auto& [type, p] : AuditRecords()) {
    if (type != audit::RecordType::kDecision) continue;
    if (p["action"] == "fleet-incident-opened") ++opened;
    if (p["action"] == "fleet-incident-grown") ++grown;
  }
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(grown, 1);
}

TEST_F(FleetCorrelationTest, ChainsUseTheAddressesAgentsRegisteredWith) {
  AgentStatusRow db;
  db.host = "db";
  db.group = "default";
  db.mode = "monitor";
  db.status_json = R"({"addresses":["10.1.0.5"]})";
  ASSERT_TRUE(state_.store->RegisterAgent(db, 0).ok());
  Reopen();  // addresses are read at the first message
  const int64_t now = clock_.NowUnixNanos() / 1'000'000;
  auto web = Message("web", "w1", {Rule("egress", "curl", now, "10.1.0.5")});
  ASSERT_TRUE(correlating_->Ingest(web, now).has_value());
  auto db_msg = Message("db", "d1", {Rule("shell", "pg", now + 1000)});
  ASSERT_TRUE(correlating_->Ingest(db_msg, now).has_value());
  auto rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].kind, "chain");
  EXPECT_EQ((*rows)[0].key, "web->db");
  EXPECT_EQ((*rows)[0].hosts, (std::vector<std::string>{"web", "db"}));
}

// Two hub instances on one store (here two connections to one SQLite file; PostgreSQL in
// store_postgres_test.cc): a spread whose findings are split between them is raised once.
TEST_F(FleetCorrelationTest, TwoInstancesOnOneStoreSeeEachOthersFindings) {
  auto second = Store::Open((state_.dir / "hub.db").string(), StoreOptions{});
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  FleetCorrelation other(Opts(3), **second, *state_.log, clock_, registry_);
  CorrelatingStore other_ingest(**second, other);
  ASSERT_TRUE(other.Rebuild().ok());
  const int64_t now = clock_.NowUnixNanos() / 1'000'000;
  // h1 and h3 through this instance, h2 through the other: neither alone sees three hosts.
  ASSERT_TRUE(correlating_->Ingest(Message("h1", "m1", {Rule("shell", "bash", now)}), now).has_value());
  ASSERT_TRUE(other_ingest.Ingest(Message("h2", "m1", {Rule("shell", "bash", now + 1)}), now).has_value());
  EXPECT_EQ(FleetRows(), 0);
  ASSERT_TRUE(correlating_->Ingest(Message("h3", "m1", {Rule("shell", "bash", now + 2)}), now).has_value());
  auto rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
  // A fourth host through the other instance grows the same fleet incident (it read h1 and h3).
  ASSERT_TRUE(other_ingest.Ingest(Message("h4", "m1", {Rule("shell", "bash", now + 3)}), now).has_value());
  rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].hosts.size(), 4u);
  // A redelivery to either instance is a duplicate: nothing read again, nothing raised.
  auto dup = other_ingest.Ingest(Message("h1", "m1", {Rule("shell", "bash", now)}), now);
  ASSERT_TRUE(dup.has_value());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(FleetRows(), 1);
  EXPECT_EQ(correlation_->open_gaps(), 0u);
  int opened = 0, grown = 0;
  for (const auto& [type, p] : AuditRecords()) {
    if (type != audit::RecordType::kDecision) continue;
    opened += p["action"] == "fleet-incident-opened" ? 1 : 0;
    grown += p["action"] == "fleet-incident-grown" ? 1 : 0;
  }
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(grown, 1);
}

// Alert ids commit out of order under concurrent writers: an id below the highest read that is
// not visible yet (a gap) is read once it appears; one that never appears (a rolled-back
// transaction) is given up after FleetCorrelation::kGapWaitMs.
TEST_F(FleetCorrelationTest, AFindingCommittedLateInsideAGapIsStillCorrelated) {
  const std::string db = (state_.dir / "hub.db").string();
  const int64_t now = clock_.NowUnixNanos() / 1'000'000;
  ASSERT_TRUE(correlating_->Ingest(Message("h1", "m1", {Rule("shell", "bash", now)}), now).has_value());
  // The next id is taken by a writer that has not committed: id 2 is a gap.
  ASSERT_TRUE(testing::SqliteExec(db, "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'alerts'"));
  ASSERT_TRUE(correlating_->Ingest(Message("h3", "m1", {Rule("shell", "bash", now + 2)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), 1u);
  EXPECT_EQ(FleetRows(), 0);
  // That writer commits h2's finding as id 2.
  const std::string raw = Message("h2", "m1", {Rule("shell", "bash", now + 1)}).findings[0].raw;
  ASSERT_TRUE(testing::SqliteExec(
      db, "INSERT INTO incidents (host, pid, process, first_ms, last_ms, alerts, verdicts, "
          "decisions, max_severity) VALUES ('h2', 1, 'bash', 0, 0, 1, 0, 1, 0); "
          "INSERT INTO alerts (id, incident_id, kind, time_ms, severity_id, uid, title, message, "
          "rule, action, model, model_version, explanation, raw) VALUES (2, last_insert_rowid(), "
          "'decision', " + std::to_string(now + 1) + ", 0, '', '', '', 'shell', 'alert', '', '', "
          "'[]', '" + raw + "')"));
  // The next read after a second looks into the gap: three hosts.
  clock_.Advance(1'100'000'000);
  ASSERT_TRUE(correlating_->Ingest(Message("h9", "m1", {Rule("other", "x", now + 3)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), 0u);
  auto rows = state_.store->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
  // A gap that never fills (rolled back) is given up after the wait.
  ASSERT_TRUE(testing::SqliteExec(db, "UPDATE sqlite_sequence SET seq = seq + 3 WHERE name = 'alerts'"));
  ASSERT_TRUE(correlating_->Ingest(Message("h9", "m2", {Rule("other", "x", now + 4)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), 3u);
  clock_.Advance(FleetCorrelation::kGapWaitMs * 1'000'000);
  ASSERT_TRUE(correlating_->Ingest(Message("h9", "m3", {Rule("other", "x", now + 5)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), 0u);
  // A sequence that jumps far: only the last kMaxGaps ids below the new one are waited for.
  ASSERT_TRUE(testing::SqliteExec(db, "UPDATE sqlite_sequence SET seq = seq + 150000 WHERE name = 'alerts'"));
  ASSERT_TRUE(correlating_->Ingest(Message("h9", "m4", {Rule("other", "x", now + 6)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), static_cast<size_t>(FleetCorrelation::kMaxGaps - 1));
  clock_.Advance(FleetCorrelation::kGapWaitMs * 1'000'000);
  ASSERT_TRUE(correlating_->Ingest(Message("h9", "m5", {Rule("other", "x", now + 7)}), now).has_value());
  EXPECT_EQ(correlation_->open_gaps(), 0u);
}

TEST(FleetIncidentStoreTest, MergesRaisesOfOneKindAndKeyWithinTheWindow) {
  core::FakeClock clock;
  testing::TestHubState st;
  ASSERT_TRUE(testing::OpenTestHubState("hub_fleet_store_", clock, &st));
  FleetIncidentRow d{0, "spread", "rule:x|process:y", {"a", "b", "c"}, 1000, 2000, "s", 0, 0};
  auto first = st.store->RaiseFleetIncident(d, 60'000, 5);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->created);
  auto same = st.store->RaiseFleetIncident(d, 60'000, 6);
  ASSERT_TRUE(same.has_value());
  EXPECT_FALSE(same->created);
  EXPECT_FALSE(same->changed);
  EXPECT_EQ(same->row.id, first->row.id);
  d.hosts = {"a", "d"};
  d.last_ms = 3000;
  auto grown = st.store->RaiseFleetIncident(d, 60'000, 7);
  ASSERT_TRUE(grown.has_value());
  EXPECT_TRUE(grown->changed);
  EXPECT_EQ(grown->row.hosts, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(grown->row.last_ms, 3000);
  EXPECT_EQ(grown->row.updated_ms, 7);
  // Beyond the window: a new one; another key: a new one.
  d.first_ms = d.last_ms = 3000 + 61'000;
  EXPECT_TRUE(st.store->RaiseFleetIncident(d, 60'000, 8)->created);
  d.key = "other";
  EXPECT_TRUE(st.store->RaiseFleetIncident(d, 60'000, 9)->created);
  EXPECT_EQ(st.store->Count("fleet_incidents").value_or(0), 3);
  std::filesystem::remove_all(st.dir);
}

// Through the HTTP API, as `vigil hub` wires it.
class CorrelateServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::OpenTestHubState("hub_correlate_server_", clock_, &state_));
    correlation_ = std::make_unique<FleetCorrelation>(Opts(3), *state_.store, *state_.log, clock_,
                                                      registry_);
    correlating_ = std::make_unique<CorrelatingStore>(*state_.store, *correlation_);
    ServerOptions o;
    o.listen = {"127.0.0.1", 0};
    o.threads = 2;
    server_ = std::make_unique<Server>(o, *correlating_, auth_, *state_.log, clock_, registry_);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(state_.dir);
  }
  std::string Token(Role role, const std::string& subject) {
    return auth_.Issue(subject, role, 900, clock_.NowUnixNanos() / 1'000'000'000);
  }
  std::pair<int, json> Call(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body = "") {
    httplib::Headers h{{"Authorization", "Bearer " + token}};
    auto res =
        method == "GET" ? client_->Get(path, h) : client_->Post(path, h, body, "application/json");
    if (!res) return {-1, nullptr};
    last_body_ = res->body;
    return {res->status, json::parse(res->body, nullptr, false)};
  }

  core::FakeClock clock_;
  core::Registry registry_;
  HubAuth auth_{[] {
    api::JwtConfig j;
    j.hs256_key = "0123456789abcdef0123456789abcdef-correlate";
    j.issuer = "vigil-hub";
    j.audience = "vigil-hub";
    return j;
  }()};
  testing::TestHubState state_;
  std::unique_ptr<FleetCorrelation> correlation_;
  std::unique_ptr<CorrelatingStore> correlating_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string last_body_;
};

TEST_F(CorrelateServerTest, AFleetIncidentAppearsThroughRestIngestOnce) {
  const std::string viewer = Token(Role::kViewer, "vic");
  for (const char* host : {"alpha", "beta", "gamma"}) {
    const std::string body = testing::IngestBody(
        host, "m-1", {testing::DecisionLine(host, 4242, "bash", 3, "Reverse shell")});
    for (int delivery = 0; delivery < 2; ++delivery) {  // each message delivered twice
      auto [status, reply] = Call("POST", "/v1/ingest", Token(Role::kAgent, host), body);
      ASSERT_EQ(status, 200) << last_body_;
      EXPECT_EQ(reply["duplicate"], delivery == 1);
    }
  }
  auto [status, list] = Call("GET", "/v1/fleet-incidents", viewer);
  ASSERT_EQ(status, 200) << last_body_;
  ASSERT_EQ(list["fleet_incidents"].size(), 1u) << last_body_;
  const json& fi = list["fleet_incidents"][0];
  EXPECT_EQ(fi["kind"], "spread");
  EXPECT_EQ(fi["key"], "rule:Reverse shell|process:bash");
  EXPECT_EQ(fi["hosts"], json({"alpha", "beta", "gamma"}));
  EXPECT_EQ(Call("GET", "/v1/fleet-incidents?limit=x", viewer).first, 400);
  EXPECT_EQ(Call("GET", "/v1/fleet-incidents", "not-a-token").first, 401);
  // The metric counts it.
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "vigil_hub_fleet_incidents_total{kind=\"spread\",result=\"opened\"} 1"),
            std::string::npos);
}

TEST_F(CorrelateServerTest, AChainAppearsThroughRegistrationAndRestIngest) {
  const std::string db = Token(Role::kAgent, "db");
  auto [bad, e] = Call("POST", "/v1/agents/register", db,
                       R"({"host":"db","mode":"monitor","vigil_version":"1",)"
                       R"("addresses":["db.local"]})");
  EXPECT_EQ(bad, 400);
  EXPECT_NE(last_body_.find("addresses[0]: expected an IPv4 or IPv6 address"), std::string::npos);
  auto [status, reg] = Call("POST", "/v1/agents/register", db,
                            R"({"host":"db","mode":"monitor","vigil_version":"1",)"
                            R"("addresses":["10.9.0.7","fd00::7"]})");
  ASSERT_EQ(status, 200) << last_body_;
  json egress = json::parse(testing::DecisionLine("web", 7, "curl", 10, "egress"));
  egress["dst_endpoint"] = {{"ip", "fd00::7"}, {"port", 5432}};
  ASSERT_EQ(Call("POST", "/v1/ingest", Token(Role::kAgent, "web"),
                 testing::IngestBody("web", "w1", {egress.dump()}))
                .first,
            200);
  ASSERT_EQ(Call("POST", "/v1/ingest", db,
                 testing::IngestBody("db", "d1",
                                     {testing::DecisionLine("db", 9, "postgres", 40, "shell")}))
                .first,
            200);
  auto [ls, list] = Call("GET", "/v1/fleet-incidents", Token(Role::kViewer, "v"));
  ASSERT_EQ(ls, 200);
  ASSERT_EQ(list["fleet_incidents"].size(), 1u) << last_body_;
  EXPECT_EQ(list["fleet_incidents"][0]["kind"], "chain");
  EXPECT_EQ(list["fleet_incidents"][0]["hosts"], json({"web", "db"}));
  EXPECT_EQ(list["fleet_incidents"][0]["last_ms"].get<int64_t>() -
                list["fleet_incidents"][0]["first_ms"].get<int64_t>(),
            30'000);
}

TEST_F(CorrelateServerTest, MissedDetectionsAreFalseNegativesInPrecisionAndMetrics) {
  const std::string analyst = Token(Role::kAnalyst, "ana");
  // Two incidents the rule "shell" fired in, one labelled a true positive.
  for (int i = 0; i < 2; ++i) {
    const std::string host = "h" + std::to_string(i);
    const std::string body = testing::IngestBody(
        host, "m", {testing::DecisionLine(host, 100, "bash", 1, "shell")});
    ASSERT_EQ(Call("POST", "/v1/ingest", Token(Role::kAgent, host), body).first, 200);
  }
  ASSERT_EQ(Call("POST", "/v1/incidents/1/adjudication", analyst,
                 R"({"label":"true_positive"})")
                .first,
            200);
  // Three detections "shell" missed; one the model "ngram" missed (it never fired).
  for (int i = 0; i < 3; ++i) {
    auto [status, reply] = Call("POST", "/v1/missed-detections", analyst,
                                R"({"host":"h0","rule":"shell","time_ms":1700000000000,)"
                                R"("note":"found by a hunt"})");
    ASSERT_EQ(status, 201) << last_body_;
    EXPECT_EQ(reply["missed_detection"]["recorded_by"], "ana");
  }
  ASSERT_EQ(Call("POST", "/v1/missed-detections", analyst,
                 R"({"host":"h1","model":"ngram","time_ms":5})")
                .first,
            201);
  // Bad requests name the field; viewers may not record.
  auto [bad, err] = Call("POST", "/v1/missed-detections", analyst,
                         R"({"host":"h1","rule":"a","model":"b","time_ms":5})");
  EXPECT_EQ(bad, 400);
  EXPECT_NE(last_body_.find("exactly one"), std::string::npos);
  EXPECT_EQ(Call("POST", "/v1/missed-detections", analyst, R"({"host":"h1","rule":"a"})").first,
            400);
  EXPECT_EQ(Call("POST", "/v1/missed-detections", Token(Role::kViewer, "v"),
                 R"({"host":"h1","rule":"a","time_ms":5})")
                .first,
            403);

  auto [status, precision] = Call("GET", "/v1/precision", Token(Role::kViewer, "v"));
  ASSERT_EQ(status, 200) << last_body_;
  bool saw_rule = false, saw_model = false;
  for (const json& d : precision["detectors"]) {
    if (d["kind"] == "rule" && d["name"] == "shell") {
      saw_rule = true;
      EXPECT_EQ(d["true_positive"], 1);
      EXPECT_EQ(d["false_negative"], 3);
      EXPECT_DOUBLE_EQ(d["false_negative_rate"].get<double>(), 0.75);  // 3 / (1 + 3)
    }
    if (d["kind"] == "model" && d["name"] == "ngram" && d["true_positive"] == 1) {
      EXPECT_EQ(d["false_negative"], 1);
      EXPECT_DOUBLE_EQ(d["false_negative_rate"].get<double>(), 0.5);
      saw_model = true;
    }
  }
  EXPECT_TRUE(saw_rule) << last_body_;
  EXPECT_TRUE(saw_model) << last_body_;
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "vigil_hub_false_negative_rate{kind=\"rule\",name=\"shell\"} 0.75"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("vigil_hub_missed_detections{kind=\"rule\",name=\"shell\"} 3"),
            std::string::npos);
  auto [ls, listed] = Call("GET", "/v1/missed-detections", Token(Role::kViewer, "v"));
  ASSERT_EQ(ls, 200);
  EXPECT_EQ(listed["missed_detections"].size(), 4u);
  // Audited as adjudications labelled false_negative.
  server_->Stop();
  ASSERT_TRUE(state_.log->Close().ok());
  int missed = 0;
  for (const auto& [type, p] : testing::ReadAuditRecords(state_.dir / "audit")) {
    if (type == audit::RecordType::kAdjudication && p["action"] == "missed-detection") {
      EXPECT_EQ(p["label"], "false_negative");
      ++missed;
    }
  }
  EXPECT_EQ(missed, 4);
}

TEST(ModelPlotsTest, HistogramAndPsiPerTimeBucketAgainstTheFirst) {
  std::vector<ScoreSample> samples;
  // "a": 100 scores around 0.2 in the first hour, 100 around 0.2 in the second, 100 around 0.8
  // in the third; "b": 5 scores (too few for a PSI).
  for (int hour = 0; hour < 3; ++hour) {
    for (int i = 0; i < 100; ++i) {
      const double base = hour == 2 ? 0.8 : 0.2;
      samples.push_back({"a", kT0 + hour * 3'600'000 + i * 1000, base + (i % 10) * 0.01});
    }
  }
  for (int i = 0; i < 5; ++i) samples.push_back({"b", kT0 + i, 0.99});
  const json j = ModelScorePlots(samples, 3, 20);
  ASSERT_EQ(j["models"].size(), 2u);
  const json& a = j["models"][0];
  EXPECT_EQ(a["model"], "a");
  EXPECT_EQ(a["count"], 300);
  ASSERT_EQ(a["histogram"].size(), 20u);
  const auto bin = [&](int i) { return a["histogram"][i].get<int>(); };
  EXPECT_EQ(bin(4) + bin(5), 200);  // 0.20..0.29
  EXPECT_EQ(bin(16) + bin(17), 100);  // 0.80..0.89
  int total = 0;
  for (int i = 0; i < 20; ++i) total += bin(i);
  EXPECT_EQ(total, 300);
  ASSERT_EQ(a["drift"].size(), 3u);
  EXPECT_EQ(a["reference_start_ms"], kT0);
  EXPECT_LT(a["drift"][0]["psi"].get<double>(), 0.01);  // itself
  EXPECT_LT(a["drift"][1]["psi"].get<double>(), 0.1);   // the same distribution
  EXPECT_GT(a["drift"][2]["psi"].get<double>(), 0.25);  // moved
  const json& b = j["models"][1];
  EXPECT_EQ(b["histogram"][19], 5);
  for (const json& d : b["drift"]) EXPECT_TRUE(d["psi"].is_null());
}

TEST_F(CorrelateServerTest, TheModelsPageGetsScoresPerModel) {
  for (int i = 0; i < 3; ++i) {
    const std::string host = "h" + std::to_string(i);
    ASSERT_EQ(Call("POST", "/v1/ingest", Token(Role::kAgent, host),
                   testing::IngestBody(host, "m",
                                       {testing::VerdictLine(host, 1, "p", i, 0.61 + i * 0.1)}))
                  .first,
              200);
  }
  // The fixture's findings are from 2023; the fake clock is at the same time.
  auto [status, j] = Call("GET", "/v1/models/scores?days=365", Token(Role::kViewer, "v"));
  ASSERT_EQ(status, 200) << last_body_;
  ASSERT_EQ(j["models"].size(), 1u) << last_body_;
  EXPECT_EQ(j["models"][0]["model"], "ngram");
  EXPECT_EQ(j["models"][0]["count"], 3);
  EXPECT_EQ(j["samples"], 3);
  EXPECT_EQ(Call("GET", "/v1/models/scores?days=0", Token(Role::kViewer, "v")).first, 400);
  EXPECT_EQ(Call("GET", "/v1/models/scores", "forged").first, 401);
}

}  // namespace
}  // namespace vigil::hub
