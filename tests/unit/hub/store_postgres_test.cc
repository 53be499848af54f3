// Several hub instances on one PostgreSQL (a real server, tests/unit/hub/postgres_fixture.h):
// two Stores (two connections) ingesting at once store each message once and join one
// process's findings into one incident; an escalation decided by one instance is not timed out
// by the other; schema creation by instances starting at once; two hub::Servers sharing the
// database over HTTP. Also the `store:` location: config parsing, redaction, and errors that
// name the store but never its password.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "audit/audit_log.h"
#include "audit/signer.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "hub/config.h"
#include "hub/correlate.h"
#include "hub/requests.h"
#include "hub/server.h"
#include "hub/store.h"
#include "hub/store_location.h"
#include "hub/store_postgres.h"
#include "hub_fixtures.h"
#include "postgres_fixture.h"

namespace vigil::hub {
namespace {

using testing::DecisionLine;
using testing::IngestBody;
using testing::PostgresServer;
using testing::VerdictLine;

IngestMessage Message(const std::string& host, const std::string& id,
                      const std::vector<std::string>& findings) {
  auto m = ParseIngestRequest(IngestBody(host, id, findings));
  EXPECT_TRUE(m.has_value()) << m.error().ToString();
  return m.value_or(IngestMessage{});
}

// Runs fn(i) for i in [0, n) on n threads released at once.
template <typename Fn>
void RunTogether(int n, Fn fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < n) std::this_thread::yield();
      fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

class HubPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    database_ = pg().NewDatabase(&why);
    ASSERT_FALSE(database_.empty()) << why;
    uri_ = pg().Uri(database_);
  }
  void TearDown() override {
    std::string why;
    if (!database_.empty()) {
      EXPECT_TRUE(pg().DropDatabase(database_, &why)) << why;
    }
  }
  static PostgresServer& pg() { return PostgresServer::Shared(); }
  std::unique_ptr<Store> Open(int64_t window_ms = 60'000) {
    StoreOptions o;
    o.incident_window_ms = window_ms;
    auto s = Store::Open(uri_, o);
    EXPECT_TRUE(s.has_value()) << s.error().ToString();
    return s.has_value() ? std::move(s).value() : nullptr;
  }

  std::string database_, uri_;
};

TEST_F(HubPostgresTest, TwoInstancesIngestingTheSameMessagesStoreEachOnce) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kMessages = 40;
  std::vector<IngestMessage> batch;
  for (int i = 0; i < kMessages; ++i) {
    batch.push_back(Message("web-1", "m-" + std::to_string(i),
                            {VerdictLine("web-1", 100 + i, "bash", 0, 0.9),
                             DecisionLine("web-1", 100 + i, "bash", 1, "shell")}));
  }
  // stored[i][instance]: whether that instance stored message i (not a duplicate).
  std::vector<std::array<int, 2>> stored(kMessages, {0, 0});
  std::atomic<int> errors{0};
  RunTogether(2, [&](int who) {
    Store& s = who == 0 ? *a : *b;
    for (int i = 0; i < kMessages; ++i) {
      auto r = s.Ingest(batch[i], 1000);
      if (!r.has_value()) {
        ADD_FAILURE() << r.error().ToString();
        errors.fetch_add(1);
        continue;
      }
      stored[i][who] = r->duplicate ? 0 : 1;
      if (!r->duplicate) {
        EXPECT_EQ(r->findings, 2u);
      }
    }
  });
  ASSERT_EQ(errors.load(), 0);
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(stored[i][0] + stored[i][1], 1) << "message " << i;
  }
  EXPECT_EQ(a->Count("messages").value_or(-1), kMessages);
  EXPECT_EQ(b->Count("alerts").value_or(-1), 2 * kMessages);
  EXPECT_EQ(b->Count("incidents").value_or(-1), kMessages);
  auto agents = a->Agents();
  ASSERT_TRUE(agents.has_value());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].messages, 2 * kMessages);  // every delivery counted
  EXPECT_EQ((*agents)[0].findings, 2 * kMessages);  // every finding stored once
}

TEST_F(HubPostgresTest, ConcurrentFindingsOfOneProcessJoinOneIncident) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kPerInstance = 30;
  std::atomic<int> errors{0};
  RunTogether(2, [&](int who) {
    Store& s = who == 0 ? *a : *b;
    for (int i = 0; i < kPerInstance; ++i) {
      // Distinct messages; each has findings of processes 10/bash and 20/curl, in an order that
      // differs between the instances (the advisory locks are taken in one order: no deadlock).
      const int t = i * 2 + who;
      std::vector<std::string> findings = {VerdictLine("web-1", 10, "bash", t, 0.8),
                                           VerdictLine("web-1", 20, "curl", t, 0.7)};
      if (who == 1) std::swap(findings[0], findings[1]);
      auto r = s.Ingest(
          Message("web-1", "i" + std::to_string(who) + "-" + std::to_string(i), findings), 1000);
      if (!r.has_value()) {
        ADD_FAILURE() << r.error().ToString();
        errors.fetch_add(1);
      }
    }
  });
  ASSERT_EQ(errors.load(), 0);
  EXPECT_EQ(a->Count("incidents").value_or(-1), 2);
  EXPECT_EQ(a->Count("alerts").value_or(-1), 4 * kPerInstance);
  auto rows = b->Incidents(IncidentFilter{});
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 2u);
  for (const IncidentRow& r : *rows) {
    EXPECT_EQ(r.alerts, 2 * kPerInstance) << r.process;
    EXPECT_EQ(r.last_ms - r.first_ms, (2 * kPerInstance - 1) * 1000) << r.process;
  }
  // Alerts have no foreign key (schema version 7): every alert's incident exists all the same,
  // and counts it.
  std::string why;
  EXPECT_TRUE(pg().Admin(
      "DO $$ BEGIN IF EXISTS (SELECT 1 FROM alerts a LEFT JOIN incidents i ON i.id = "
      "a.incident_id WHERE i.id IS NULL) THEN RAISE EXCEPTION 'an alert without its incident'; "
      "END IF; IF EXISTS (SELECT 1 FROM incidents i WHERE i.alerts <> (SELECT COUNT(*) FROM "
      "alerts a WHERE a.incident_id = i.id)) THEN RAISE EXCEPTION 'an incident miscounts its "
      "alerts'; END IF; END $$;",
      &why, database_))
      << why;
}

TEST_F(HubPostgresTest, AnIncidentLabelledWhileItsProcessIngestsTakesNoFindingAfterTheLabel) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kMessages = 60;
  auto first = a->Ingest(Message("web-1", "m0", {VerdictLine("web-1", 10, "bash", 0, 0.9)}), 1);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  const int64_t id = first->incidents.at(0);
  std::optional<IncidentRow> at_label;
  std::atomic<int> stored{0};
  RunTogether(2, [&](int who) {
    if (who == 0) {  // ingests the process's findings, one message each
      for (int i = 1; i <= kMessages; ++i) {
        auto r = a->Ingest(
            Message("web-1", "m" + std::to_string(i), {VerdictLine("web-1", 10, "bash", i, 0.9)}),
            1);
        if (!r.has_value()) ADD_FAILURE() << r.error().ToString();
        stored.fetch_add(1);
      }
      return;
    }
    while (stored.load() < kMessages / 3) std::this_thread::yield();  // labels it mid-stream
    auto r = b->Adjudicate(id, Label::kTruePositive, "ann", "", 2);
    if (r.has_value()) {
      at_label = *r;
    } else {
      ADD_FAILURE() << r.error().ToString();
    }
  });
  ASSERT_TRUE(at_label.has_value());
  // The labelled incident holds exactly what it held when labelled; later findings opened
  // another incident.
  auto after = a->Incident(id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->alerts, at_label->alerts);
  auto alerts = a->Alerts(id);
  ASSERT_TRUE(alerts.has_value());
  EXPECT_EQ(static_cast<int64_t>(alerts->size()), at_label->alerts);
  EXPECT_EQ(a->Count("alerts").value_or(-1), kMessages + 1);
  EXPECT_EQ(a->Count("incidents").value_or(-1), at_label->alerts == kMessages + 1 ? 1 : 2);
}

TEST_F(HubPostgresTest, AVersionSixDatabaseGetsTheLighterIngestSchema) {
  auto s = Open();
  ASSERT_TRUE(s);
  const IngestMessage first = Message("web-1", "m1", {VerdictLine("web-1", 10, "bash", 0, 0.9)});
  ASSERT_TRUE(s->Ingest(first, 1000).has_value());
  s.reset();
  // What version 6 had: last_ms in the open-incident index, full pages, the alerts' foreign key.
  std::string why;
  ASSERT_TRUE(pg().Admin(
      "DROP INDEX incidents_open; CREATE INDEX incidents_open ON incidents (host, pid, process, "
      "last_ms) WHERE label IS NULL; ALTER TABLE incidents RESET (fillfactor); ALTER TABLE alerts "
      "ADD FOREIGN KEY (incident_id) REFERENCES incidents(id); UPDATE hub_schema SET version = 6;",
      &why, database_))
      << why;
  s = Open();
  ASSERT_TRUE(s);
  EXPECT_TRUE(pg().Admin(
      "DO $$ BEGIN "
      "IF pg_get_indexdef('incidents_open'::regclass) LIKE '%last_ms%' THEN "
      "RAISE EXCEPTION 'incidents_open still holds last_ms'; END IF; "
      "IF NOT (SELECT reloptions @> '{fillfactor=50}' FROM pg_class WHERE oid = "
      "'incidents'::regclass) THEN RAISE EXCEPTION 'incidents fillfactor not 50'; END IF; "
      "IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'alerts'::regclass AND contype = "
      "'f') THEN RAISE EXCEPTION 'alerts still have a foreign key'; END IF; "
      "IF (SELECT MAX(version) FROM hub_schema) <> " +
          std::to_string(kHubSchemaVersionNumber) +
          " THEN RAISE EXCEPTION 'not the current version'; END IF; "
          "END $$;",
      &why, database_))
      << why;
  // The stored incident still takes the process's next finding; a labelled one no longer does.
  auto joined = s->Ingest(Message("web-1", "m2", {VerdictLine("web-1", 10, "bash", 5, 0.8)}), 2000);
  ASSERT_TRUE(joined.has_value()) << joined.error().ToString();
  EXPECT_EQ(joined->new_incidents, 0u);
  ASSERT_EQ(joined->incidents.size(), 1u);
  ASSERT_TRUE(s->Adjudicate(joined->incidents[0], Label::kBenign, "ann", "", 3000).has_value());
  auto after = s->Ingest(Message("web-1", "m3", {VerdictLine("web-1", 10, "bash", 6, 0.8)}), 4000);
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_EQ(after->new_incidents, 1u);
  auto alerts = s->Alerts(joined->incidents[0]);
  ASSERT_TRUE(alerts.has_value());
  EXPECT_EQ(alerts->size(), 2u);
}

TEST_F(HubPostgresTest, AnEscalationDecidedByOneInstanceIsNotTimedOutByTheOther) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  EscalationRequest e;
  e.host = "h";
  e.action = "kill";
  e.default_verdict = Verdict::kApprove;
  // One by one: decided on a, then b's time-out pass finds nothing to time out.
  e.escalation_id = "first";
  bool created = false;
  auto first = a->OpenEscalation(e, 10'000, 1'000, &created);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  auto again = b->OpenEscalation(e, 10'000, 2'000, &created);  // the agent asks b again
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(created);
  EXPECT_EQ(again->id, first->id);
  ASSERT_TRUE(a->Decide(first->id, Verdict::kDeny, "ana", "", 5'000).has_value());
  EXPECT_TRUE(b->ExpireEscalations(60'000)->empty());
  EXPECT_EQ(b->Escalation(first->id)->state, EscalationState::kDenied);

  // At once: a decides each of 20 escalations just before their deadline while b times out
  // the due ones at the deadline: each one ends decided or timed out, never both.
  constexpr int kCount = 20;
  std::vector<int64_t> ids;
  for (int i = 0; i < kCount; ++i) {
    e.escalation_id = "race-" + std::to_string(i);
    auto row = a->OpenEscalation(e, 10'000, 100'000, &created);
    ASSERT_TRUE(row.has_value());
    ids.push_back(row->id);
  }
  std::set<int64_t> decided, expired;
  RunTogether(2, [&](int who) {
    if (who == 0) {
      for (const int64_t id : ids) {
        auto d = a->Decide(id, Verdict::kDeny, "ana", "", 109'999);
        if (d.has_value()) {
          decided.insert(id);
        } else {
          EXPECT_EQ(d.error().code(), core::StatusCode::kFailedPrecondition);
        }
      }
    } else {
      for (int pass = 0; pass < kCount; ++pass) {
        auto x = b->ExpireEscalations(110'000);
        ASSERT_TRUE(x.has_value()) << x.error().ToString();
        for (const EscalationRow& r : *x) EXPECT_TRUE(expired.insert(r.id).second) << r.id;
      }
    }
  });
  for (const int64_t id : ids) {
    EXPECT_EQ(decided.count(id) + expired.count(id), 1u) << "escalation " << id;
    auto row = a->Escalation(id);
    ASSERT_TRUE(row.has_value());
    EXPECT_EQ(row->state, decided.count(id) ? EscalationState::kDenied : EscalationState::kTimedOut);
  }
}

TEST_F(HubPostgresTest, InstancesStartingAtOnceCreateTheSchemaOnceAndANewerOneIsRefused) {
  std::vector<std::unique_ptr<Store>> stores(4);
  RunTogether(4, [&](int i) {
    auto s = Store::Open(uri_, StoreOptions{});
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    stores[i] = std::move(s).value();
  });
  for (auto& s : stores) ASSERT_NE(s, nullptr);
  ASSERT_TRUE(stores[0]->Ingest(Message("h", "m", {VerdictLine("h", 1, "p", 0, 0.9)}), 1).has_value());
  EXPECT_EQ(stores[3]->Count("alerts").value_or(-1), 1);
  stores.clear();
  std::string why;
  ASSERT_TRUE(pg().Admin("UPDATE hub_schema SET version = 99", &why, database_)) << why;
  auto newer = Store::Open(uri_, StoreOptions{});
  ASSERT_FALSE(newer.has_value());
  EXPECT_EQ(newer.error().code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(newer.error().message().find("schema version 99"), std::string::npos)
      << newer.error().message();
}

TEST_F(HubPostgresTest, ReconnectsAfterTheConnectionIsLost) {
  auto s = Open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Ingest(Message("h", "m1", {VerdictLine("h", 1, "p", 0, 0.9)}), 1).has_value());
  std::string why;
  ASSERT_TRUE(pg().Admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                             database_ + "' AND pid <> pg_backend_pid()",
                         &why))
      << why;
  // The call that finds the connection broken fails (kUnavailable, nothing thrown); the next
  // one connects again.
  auto lost = s->Count("alerts");
  if (!lost.has_value()) {
    EXPECT_EQ(lost.error().code(), core::StatusCode::kUnavailable);
  }
  auto r = s->Ingest(Message("h", "m2", {VerdictLine("h", 1, "p", 1, 0.9)}), 2);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(s->Count("alerts").value_or(-1), 2);
}

// The pool holds at most pool_size connections: eight threads ingesting at once through a pool
// of two all succeed (they wait for a connection rather than fail), and the database never sees
// more than two connections of the store. A pool size out of range is refused.
TEST_F(HubPostgresTest, ThePoolBoundsItsConnectionsAndCallsWaitForOne) {
  StoreOptions o;
  o.pool_size = 2;
  auto opened = Store::Open(uri_, o);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  std::unique_ptr<Store> s = std::move(opened).value();
  const std::string at_most_two =
      "DO $$ BEGIN IF (SELECT count(*) FROM pg_stat_activity WHERE datname = '" + database_ +
      "') > 2 THEN RAISE EXCEPTION 'more than two connections'; END IF; END $$";
  std::atomic<int> failed{0}, left{8};
  std::atomic<bool> bounded{true};
  std::thread watcher([&] {
    std::string why;
    while (left.load() > 0) {
      if (!pg().Admin(at_most_two, &why)) bounded = false;
    }
  });
  RunTogether(8, [&](int t) {
    for (int i = 0; i < 10; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      auto r = s->Ingest(Message("h", id, {VerdictLine("h", t, "p", i, 0.9)}), 1);
      if (!r.has_value()) failed.fetch_add(1);
    }
    left.fetch_sub(1);
  });
  watcher.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_TRUE(bounded.load());
  std::string why;
  EXPECT_TRUE(pg().Admin(at_most_two, &why)) << why;
  EXPECT_EQ(s->Count("alerts").value_or(-1), 80);
  for (const int size : {0, 65}) {
    o.pool_size = size;
    auto bad = Store::Open(uri_, o);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.error().message().find("pool size"), std::string::npos);
  }
}

TEST_F(HubPostgresTest, ErrorsNameTheStoreButNeverItsPassword) {
  const std::string secret = "Sup3rSecretPw";
  // A database that does not exist (trust authentication ignores the password).
  auto missing = Store::Open(pg().Uri("no_such_db", "postgres:" + secret), StoreOptions{});
  ASSERT_FALSE(missing.has_value());
  const std::string m = missing.error().message();
  EXPECT_EQ(missing.error().code(), core::StatusCode::kUnavailable);
  EXPECT_EQ(m.find(secret), std::string::npos) << m;
  EXPECT_NE(m.find("postgresql://postgres:***@127.0.0.1:"), std::string::npos) << m;
  EXPECT_NE(m.find("no_such_db"), std::string::npos) << m;
  // Nobody listening; the password as a parameter.
  auto refused = Store::Open("postgres://u@127.0.0.1:1/db?password=" + secret +
                                 "&connect_timeout=2",
                             StoreOptions{});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message().find(secret), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("password=***"), std::string::npos)
      << refused.error().message();
  // Not a URI libpq accepts.
  auto bad = Store::Open("postgresql://u:" + secret + "@h/db?nosuchparam=1", StoreOptions{});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message().find(secret), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("nosuchparam"), std::string::npos)
      << bad.error().message();
}

TEST_F(HubPostgresTest, TextWithNulIsStoredNotRefused) {
  auto s = Open();
  ASSERT_TRUE(s);
  IngestMessage m = Message("h", "m1", {VerdictLine("h", 1, "p", 0, 0.9)});
  ASSERT_EQ(m.findings.size(), 1u);
  m.findings[0].title = std::string("a\0b", 3);
  auto r = s->Ingest(m, 1);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  auto alerts = s->Alerts(r->incidents.at(0));
  ASSERT_TRUE(alerts.has_value());
  EXPECT_EQ(alerts->at(0).title, "a\xEF\xBF\xBD" "b");
}

// Two hub processes' worth of hub::Server (own audit logs, one token key) on one database: an
// incident ingested through one is listed and adjudicated through the other.
// The global model across instances: two hubs on one PostgreSQL, each with its own correlator,
// ingesting at once the findings of one behaviour on 6 hosts split between them (3 each, under
// K = 4): the spread is raised — no instance alone saw K hosts — into one fleet incident that
// ends with all 6 hosts. Also the triage columns (schema version 5) on PostgreSQL.
TEST_F(HubPostgresTest, TwoInstancesCorrelateEachOthersFindingsIntoOneFleetIncident) {
  auto a = Open(), b = Open();
  ASSERT_TRUE(a && b);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("hub_pg_correlate_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto signer = audit::Ed25519Signer::Generate();
  core::FakeClock clock;
  audit::AuditOptions ao;
  ao.fsync = audit::FsyncMode::kNever;
  auto log_a = audit::AuditLog::Open((dir / "a").string(), ao, *signer, clock);
  auto log_b = audit::AuditLog::Open((dir / "b").string(), ao, *signer, clock);
  ASSERT_TRUE(log_a.has_value() && log_b.has_value());
  core::Registry registry;
  CorrelatorOptions co;
  co.min_hosts = 4;
  FleetCorrelation corr_a(co, *a, **log_a, clock, registry), corr_b(co, *b, **log_b, clock, registry);
  ASSERT_TRUE(corr_a.Rebuild().ok() && corr_b.Rebuild().ok());
  CorrelatingStore in_a(*a, corr_a), in_b(*b, corr_b);
  RunTogether(2, [&](int who) {
    CorrelatingStore& in = who == 0 ? in_a : in_b;
    for (int i = 0; i < 3; ++i) {
      const std::string host = "host-" + std::to_string(who * 3 + i);
      auto r = in.Ingest(Message(host, "m", {DecisionLine(host, 7, "bash", i, "Reverse shell")}), 1);
      ASSERT_TRUE(r.has_value()) << r.error().ToString();
    }
  });
  // A straggler read (as the next ingestion of either instance does) settles any gap.
  clock.Advance(int64_t{2'000'000'000});
  ASSERT_TRUE(corr_a.Sync().ok() && corr_b.Sync().ok());
  auto rows = a->FleetIncidents(10, 0);
  ASSERT_TRUE(rows.has_value()) << rows.error().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].kind, "spread");
  EXPECT_EQ((*rows)[0].hosts.size(), 6u);

  // Triage marks: stored, read back, filtered, counted.
  auto incidents = b->Incidents(IncidentFilter{});
  ASSERT_TRUE(incidents.has_value());
  ASSERT_EQ(incidents->size(), 6u);
  auto features = a->TriageFeatures({(*incidents)[0].id, 999'999});
  ASSERT_TRUE(features.has_value()) << features.error().ToString();
  ASSERT_EQ(features->size(), 1u);
  EXPECT_EQ((*features)[0].features.at("decisions"), 1.0);
  EXPECT_EQ((*features)[0].features.at("max_score"), 0.9);  // the decision's ML score
  ASSERT_TRUE(a->SetTriage({{(*incidents)[0].id, 0.125, true}, {(*incidents)[1].id, 0.75, false}}).ok());
  IncidentFilter f;
  f.suppressed = true;
  auto suppressed = b->Incidents(f);
  ASSERT_TRUE(suppressed.has_value());
  ASSERT_EQ(suppressed->size(), 1u);
  EXPECT_EQ(suppressed->front().triage_score, 0.125);
  EXPECT_EQ(b->CountSuppressed().value_or(-1), 1);
  std::filesystem::remove_all(dir);
}

TEST_F(HubPostgresTest, TwoHubServersShareIncidentsAndAdjudication) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("hub_pg_servers_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  api::JwtConfig jwt;
  jwt.hs256_key = "0123456789abcdef0123456789abcdef-hub-pg";
  jwt.issuer = "vigil-hub";
  jwt.audience = "vigil-hub";
  const HubAuth auth(jwt);
  core::FakeClock clock;
  const int64_t now_s = clock.NowUnixNanos() / 1'000'000'000;
  struct Hub {
    std::unique_ptr<Store> store;
    std::unique_ptr<audit::Signer> signer;
    std::unique_ptr<audit::AuditLog> log;
    core::Registry registry;
    std::unique_ptr<Server> server;
    std::unique_ptr<httplib::Client> client;
  };
  std::array<Hub, 2> hubs;
  for (int i = 0; i < 2; ++i) {
    Hub& h = hubs[i];
    h.store = Open();
    ASSERT_TRUE(h.store);
    h.signer = audit::Ed25519Signer::Generate();
    audit::AuditOptions ao;
    ao.fsync = audit::FsyncMode::kNever;
    auto log = audit::AuditLog::Open((dir / ("audit" + std::to_string(i))).string(), ao,
                                     *h.signer, clock);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    h.log = std::move(log).value();
    ServerOptions o;
    o.listen = {"127.0.0.1", 0};
    o.threads = 2;
    h.server = std::make_unique<Server>(o, *h.store, auth, *h.log, clock, h.registry);
    ASSERT_TRUE(h.server->Start().ok());
    h.client = std::make_unique<httplib::Client>("127.0.0.1", h.server->port());
  }
  auto call = [&](int hub, const std::string& method, const std::string& path, Role role,
                  const std::string& subject, const std::string& body = "") {
    httplib::Headers headers{{"Authorization", "Bearer " + auth.Issue(subject, role, 900, now_s)}};
    auto res = method == "GET" ? hubs[hub].client->Get(path, headers)
                               : hubs[hub].client->Post(path, headers, body, "application/json");
    if (!res) return std::pair<int, nlohmann::json>{-1, nullptr};
    return std::pair<int, nlohmann::json>{res->status,
                                          nlohmann::json::parse(res->body, nullptr, false)};
  };
  const std::string message = IngestBody(
      "web-1", "m-1",
      {VerdictLine("web-1", 10, "bash", 0, 0.93), DecisionLine("web-1", 10, "bash", 1, "shell")});
  auto [status, body] = call(0, "POST", "/v1/ingest", Role::kAgent, "web-1", message);
  ASSERT_EQ(status, 200) << body.dump();
  ASSERT_EQ(body["incidents"].size(), 1u);
  const int64_t id = body["incidents"][0].get<int64_t>();
  // The agent's redelivery reaches the other hub: a duplicate.
  std::tie(status, body) = call(1, "POST", "/v1/ingest", Role::kAgent, "web-1", message);
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["duplicate"], true);
  std::tie(status, body) = call(1, "GET", "/v1/incidents", Role::kViewer, "vic");
  ASSERT_EQ(status, 200) << body.dump();
  ASSERT_EQ(body["incidents"].size(), 1u);
  EXPECT_EQ(body["incidents"][0]["id"], id);
  EXPECT_EQ(body["incidents"][0]["alerts"], 2);
  std::tie(status, body) = call(1, "POST", "/v1/incidents/" + std::to_string(id) + "/adjudication",
                                Role::kAnalyst, "ana", R"({"label":"true_positive","note":"seen"})");
  ASSERT_EQ(status, 200) << body.dump();
  std::tie(status, body) = call(0, "GET", "/v1/incidents/" + std::to_string(id), Role::kViewer, "vic");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["incident"]["label"], "true_positive");
  EXPECT_EQ(body["incident"]["labelled_by"], "ana");
  EXPECT_EQ(body["incident"]["alerts"].size(), 2u);
  for (Hub& h : hubs) {
    h.server->Stop();
    EXPECT_TRUE(h.log->Close().ok());
  }
  std::filesystem::remove_all(dir);
}

TEST(HubStoreLocationTest, ConfigAcceptsAPathOrAPostgresUriAndNeverEchoesThePassword) {
  auto path = ParseHubConfig("store: data/hub.db\n", "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(path.has_value()) << path.error().ToString();
  EXPECT_EQ(path->store, "/etc/vigil/data/hub.db");
  auto uri = ParseHubConfig("store: postgresql://hub@db1:5432,db2/vigil?passfile=/etc/pgpass\n",
                            "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(uri.has_value()) << uri.error().ToString();
  EXPECT_EQ(uri->store, "postgresql://hub@db1:5432,db2/vigil?passfile=/etc/pgpass");
  struct Case {
    std::string yaml, expect;
  } cases[] = {
      {"store: postgres://hub:hunter2pw%zz@db/vigil\n", "hub.yaml:1:8: store: "},
      {"store: postgres://hub:hunter2pw@db/vigil?bogus=1\n", "bogus"},
      {"store: \"postgres://hub:hunter2pw@db/vi gil\"\n", "space or control character"},
      {"store: mysql://hub:hunter2pw@db/vigil\n", "unknown URI scheme"},
      {"store: [a]\n", "expected a single value"},
  };
  for (const Case& c : cases) {
    auto r = ParseHubConfig(c.yaml, "hub.yaml", "/etc/vigil");
    ASSERT_FALSE(r.has_value()) << c.yaml;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.expect), std::string::npos) << r.error().message();
    EXPECT_EQ(r.error().message().find("hunter2pw"), std::string::npos) << r.error().message();
  }
}

TEST(HubStoreLocationTest, ThePostgresSectionSetsThePoolAndRefusesBadValuesNamingThem) {
  auto c = ParseHubConfig("postgres:\n  pool: 12\n  pool_wait: 2m\n", "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->postgres_pool, 12u);
  EXPECT_EQ(c->postgres_pool_wait_s, 120u);
  auto defaults = ParseHubConfig("", "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->postgres_pool, 4u);
  EXPECT_EQ(defaults->postgres_pool_wait_s, 10u);
  struct Case {
    std::string yaml, expect;
  } cases[] = {
      {"postgres:\n  pool: 0\n", "hub.yaml:2:9: postgres.pool: expected an integer in 1..64"},
      {"postgres:\n  pool: 65\n", "postgres.pool: expected an integer in 1..64"},
      {"postgres:\n  pool: many\n", "postgres.pool: expected an integer in 1..64"},
      {"postgres:\n  pool_wait: forever\n", "postgres.pool_wait: expected a duration"},
      {"postgres:\n  size: 3\n", "postgres.size: unknown key"},
  };
  for (const Case& k : cases) {
    auto r = ParseHubConfig(k.yaml, "hub.yaml", "/etc/vigil");
    ASSERT_FALSE(r.has_value()) << k.yaml;
    EXPECT_NE(r.error().message().find(k.expect), std::string::npos) << r.error().message();
  }
}

TEST(HubStoreLocationTest, RedactsThePasswordWhereverTheUriCarriesIt) {
  EXPECT_EQ(RedactStoreLocation("postgres://hub:pw@db/v"), "postgres://hub:***@db/v");
  EXPECT_EQ(RedactStoreLocation("postgresql://hub@db/v?password=pw&sslmode=require"),
            "postgresql://hub@db/v?password=***&sslmode=require");
  EXPECT_EQ(RedactStoreLocation("postgres://db:5432/v"), "postgres://db:5432/v");
  EXPECT_EQ(RedactStoreLocation("/var/lib/vigil/hub/hub.db"), "/var/lib/vigil/hub/hub.db");
  EXPECT_EQ(PostgresUriPassword("postgres://hub:p%40ss@db/v"), "p@ss");
  EXPECT_EQ(ScrubSecret("user hub password p@ss", "p@ss"), "user hub password ***");
}

}  // namespace
}  // namespace vigil::hub
