// The NATS JetStream transport end to end with the real binaries and a private nats-server:
// `vigil replay --sink nats:URL` publishes while no hub runs; then `vigil hub` with a `nats:`
// section consumes every finding exactly once, two hubs with their own stores sharing the
// durable consumer store every message exactly once between them, and two hubs sharing one
// PostgreSQL database lose and duplicate nothing when one is killed mid-stream and restarted.

#include <gtest/gtest.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../unit/hub/postgres_fixture.h"
#include "../unit/pipeline/nats_server.h"
#include "pipeline/jetstream.h"
#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;
using vigil::e2e::ReadAll;
using vigil::e2e::Spawn;
using vigil::e2e::WaitFor;
using vigil::e2e::WriteSyscallStreams;
using vigil::nats_testing::NatsServer;

namespace {

class NatsLinkE2eTest : public ::testing::Test {
 protected:
  struct Hub {
    fs::path state;
    pid_t pid = -1;
    int port = 0;
    std::string admin;  // an admin token
  };

  void SetUp() override {
    ASSERT_TRUE(nats_.Start()) << nats_.why();
    dir_ = fs::path(nats_.dir()) / "e2e";
    fs::create_directories(dir_ / "run");
  }
  void TearDown() override {
    for (Hub& h : hubs_) StopHub(h);
  }
  CmdResult Vigil(const std::string& args) { return vigil::e2e::RunVigil(dir_ / "run", args); }

  // Trains a model, writes `streams` event streams (each `repeats` times a pattern) whose
  // verdicts are findings, and replays them to the NATS server as host web-1 (no hub needed):
  // at most 500 findings a message. The findings' uids (from the replay's file sink) go to
  // *written.
  void ReplayToNats(int streams, int repeats, std::set<std::string>* written) {
    const fs::path train = dir_ / "train.jsonl", model = dir_ / "m.vgm";
    WriteSyscallStreams(train, "svc", 10, {0, 1, 2, 3}, 10);
    CmdResult t =
        Vigil("train --dataset jsonl --data " + train.string() + " --out " + model.string());
    ASSERT_EQ(t.exit_code, 0) << t.err;
    const fs::path events = dir_ / "events.jsonl", copy = dir_ / "findings.jsonl";
    WriteSyscallStreams(events, "run", streams, {0, 1, 59, 3}, repeats);
    CmdResult r = Vigil("replay --source jsonl --data " + events.string() + " --model " +
                        model.string() + " --host web-1 --sink nats:" + nats_.url() +
                        " --sink file:" + copy.string() + " --nats-spool " +
                        (dir_ / "spool").string() + " --nats-all-verdicts --nats-drain 20s");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(std::regex_search(
        r.err, std::regex(R"(nats nats://127\.0\.0\.1:\d+ stream VIGIL subject )"
                          R"(vigil\.web-1\.findings: )" +
                          std::to_string(streams) + R"( findings sent in \d+ messages)")))
        << r.err;
    EXPECT_NE(r.err.find(" 0 messages stay spooled"), std::string::npos) << r.err;
    std::ifstream in(copy);
    for (std::string line; std::getline(in, line);) {
      written->insert(json::parse(line)["finding_info"]["uid"].get<std::string>());
    }
    ASSERT_EQ(written->size(), static_cast<size_t>(streams));
  }
  // The value of the counter line `series` ("name{labels}") in a hub's /metrics (-1: none).
  static int64_t Counter(const Hub& h, const std::string& series) {
    const std::string text = Metrics(h);
    const size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stoll(text.substr(at + series.size() + 2));
  }
  // The durable consumer "vigil-hub" has nothing left to deliver and nothing unacknowledged.
  bool ConsumerDrained() {
    vigil::pipeline::JetStreamOptions o;
    o.url = nats_.url();
    auto c = vigil::pipeline::JetStreamConnection::Connect(o);
    if (!c.has_value()) return false;
    auto st = (*c)->Consumer("vigil-hub");
    return st.has_value() && st->pending == 0 && st->ack_pending == 0;
  }

  // What to look at when a hub did not store in time: each running hub's log and NATS counters,
  // and the durable consumer's state at the server.
  std::string Diagnose() {
    std::string out;
    for (size_t n = 0; n < hubs_.size(); ++n) {
      const Hub& h = hubs_[n];
      if (h.state.empty()) continue;
      out += "hub " + std::to_string(n + 1) + " (pid " + std::to_string(h.pid) + ") stderr:\n" +
             ReadAll(h.state / "hub.err") + "hub " + std::to_string(n + 1) + " nats metrics:\n";
      std::istringstream lines(h.pid > 0 && h.port > 0 ? Metrics(h) : "");
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("vigil_hub_nats", 0) == 0) out += "  " + line + "\n";
      }
    }
    vigil::pipeline::JetStreamOptions o;
    o.url = nats_.url();
    auto c = vigil::pipeline::JetStreamConnection::Connect(o);
    if (!c.has_value()) return out + "nats: " + c.error().ToString() + "\n";
    auto st = (*c)->Consumer("vigil-hub");
    out += st.has_value() ? "consumer vigil-hub: pending " + std::to_string(st->pending) +
                                ", ack pending " + std::to_string(st->ack_pending) +
                                ", redelivered " + std::to_string(st->redelivered) + "\n"
                          : "consumer vigil-hub: " + st.error().ToString() + "\n";
    return out;
  }

  // Starts `vigil hub` number `n` with its own state dir and a `nats:` section (and `extra`
  // lines in it); WaitReady reads its ready line. With `admin`, first issues an admin token.
  void StartHub(Hub& h, int n, bool admin, const std::string& extra = "",
                const std::string& ack_wait = "5s") {
    h.state = dir_ / ("hub" + std::to_string(n));
    fs::create_directories(h.state);
    if (admin) {
      CmdResult t = Vigil("hub token --state-dir " + h.state.string() +
                          " --role admin --subject root --ttl 1h");
      ASSERT_EQ(t.exit_code, 0) << t.err;
      h.admin = t.out.substr(0, t.out.find('\n'));
    }
    const fs::path config = h.state / "hub.yaml";
    std::ofstream(config) << "state_dir: " << h.state.string() << "\nlisten: 127.0.0.1:0\n"
                          << "audit:\n  fsync: never\nnats:\n  url: " << nats_.url()
                          << "\n  ack_wait: " << ack_wait << "\n"
                          << extra;
    // A restarted hub writes to the same files: the old ready line goes first, or WaitReady could
    // read it before the new process has truncated the file (and a SIGTERM then finds a hub that
    // has not yet set up its signal handling).
    fs::remove(h.state / "hub.out");
    fs::remove(h.state / "hub.err");
    h.pid = Spawn({VIGIL_BINARY, "hub", "--config", config.string(), "--json"}, h.state / "hub.out",
                  h.state / "hub.err");
  }
  void WaitReady(Hub& h) {
    const fs::path out = h.state / "hub.out";
    ASSERT_TRUE(WaitFor([&] { return ReadAll(out).find('\n') != std::string::npos; },
                        std::chrono::seconds(15)))
        << ReadAll(h.state / "hub.err");
    const std::string text = ReadAll(out);
    const json ready = json::parse(text.substr(0, text.find('\n')), nullptr, false);
    ASSERT_TRUE(ready.is_object()) << text;
    h.port = ready["port"];
    EXPECT_EQ(ready["nats"]["url"], nats_.url()) << text;
    EXPECT_EQ(ready["nats"]["consumer"], "vigil-hub") << text;
  }
  static int StopHub(Hub& h) {
    if (h.pid <= 0) return -1;
    kill(h.pid, SIGTERM);
    int status = 0;
    const pid_t got = waitpid(h.pid, &status, 0);
    h.pid = -1;
    return got > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static json Get(const Hub& h, const std::string& path) {
    httplib::Client http("127.0.0.1", h.port);
    auto r = http.Get(path, {{"Authorization", "Bearer " + h.admin}});
    if (!r || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }
  static std::string Metrics(const Hub& h) {
    httplib::Client http("127.0.0.1", h.port);
    auto r = http.Get("/metrics");
    return r && r->status == 200 ? r->body : "";
  }
  // Findings the hub stored for web-1 (-1 when it does not answer).
  static int64_t Stored(const Hub& h) {
    const json a = Get(h, "/v1/agents");
    if (!a.is_object()) return -1;
    for (const json& row : a["agents"]) {
      if (row["host"] == "web-1") return row["findings"];
    }
    return 0;
  }
  // The uids of every alert the hub stored, with repeats.
  static void StoredUids(const Hub& h, std::multiset<std::string>* uids) {
    const json list = Get(h, "/v1/incidents?limit=1000");
    ASSERT_TRUE(list.is_object());
    for (const json& i : list["incidents"]) {
      const json d = Get(h, "/v1/incidents/" + std::to_string(i["id"].get<int64_t>()));
      ASSERT_TRUE(d.is_object());
      for (const json& a : d["incident"]["alerts"]) uids->insert(a["uid"].get<std::string>());
    }
  }

  NatsServer nats_;
  fs::path dir_;
  std::vector<Hub> hubs_{2};
};

TEST_F(NatsLinkE2eTest, ReplayPublishesWithoutAHubAndTheHubThenStoresEachFindingOnce) {
  constexpr int kStreams = 60;
  std::set<std::string> written;
  ASSERT_NO_FATAL_FAILURE(ReplayToNats(kStreams, 7, &written));
  Hub& hub = hubs_[0];
  ASSERT_NO_FATAL_FAILURE(StartHub(hub, 1, /*admin=*/true));
  ASSERT_NO_FATAL_FAILURE(WaitReady(hub));
  ASSERT_TRUE(WaitFor([&] { return Stored(hub) == kStreams; }, std::chrono::seconds(20)))
      << Stored(hub) << "\n"
      << ReadAll(hub.state / "hub.err");
  std::multiset<std::string> stored;
  ASSERT_NO_FATAL_FAILURE(StoredUids(hub, &stored));
  EXPECT_EQ(stored.size(), written.size());
  for (const std::string& uid : written) EXPECT_EQ(stored.count(uid), 1u) << uid;
  const std::string metrics = Metrics(hub);
  EXPECT_NE(metrics.find("vigil_hub_nats_connected 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find(R"(vigil_hub_nats_messages_total{result="malformed"} 0)"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(StopHub(hub), 0);
}

TEST_F(NatsLinkE2eTest, TwoHubsSharingTheDurableConsumerStoreEachMessageOnceBetweenThem) {
  // Both hubs are bound before anything is published, so they share the stream as it arrives;
  // one message per fetch, so neither takes a burst for itself.
  ASSERT_NO_FATAL_FAILURE(StartHub(hubs_[0], 1, /*admin=*/false, "  batch: 1\n"));
  ASSERT_NO_FATAL_FAILURE(StartHub(hubs_[1], 2, /*admin=*/false, "  batch: 1\n"));
  ASSERT_NO_FATAL_FAILURE(WaitReady(hubs_[0]));
  ASSERT_NO_FATAL_FAILURE(WaitReady(hubs_[1]));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metrics(hubs_[0]).find("vigil_hub_nats_connected 1") != std::string::npos &&
               Metrics(hubs_[1]).find("vigil_hub_nats_connected 1") != std::string::npos;
      },
      std::chrono::seconds(15)));
  // 3000 findings: 6 messages of 500.
  constexpr int kStreams = 3000;
  std::set<std::string> written;
  ASSERT_NO_FATAL_FAILURE(ReplayToNats(kStreams, 2, &written));
  const std::string findings = "vigil_hub_findings_total";
  auto stored_findings = [&] { return Counter(hubs_[0], findings) + Counter(hubs_[1], findings); };
  ASSERT_TRUE(WaitFor([&] { return stored_findings() == kStreams; }, std::chrono::seconds(20)))
      << stored_findings() << "\n"
      << Diagnose();
  // Nothing is left to deliver or unacknowledged, so the counts are final: each message was
  // stored by exactly one of the hubs, and neither saw a redelivery.
  ASSERT_TRUE(WaitFor([&] { return ConsumerDrained(); }, std::chrono::seconds(10))) << Diagnose();
  EXPECT_EQ(stored_findings(), kStreams);
  const std::string stored = R"(vigil_hub_nats_messages_total{result="stored"})";
  const std::string duplicate = R"(vigil_hub_nats_messages_total{result="duplicate"})";
  EXPECT_EQ(Counter(hubs_[0], stored) + Counter(hubs_[1], stored), kStreams / 500);
  EXPECT_EQ(Counter(hubs_[0], duplicate) + Counter(hubs_[1], duplicate), 0);
  EXPECT_GT(Counter(hubs_[0], stored), 0) << "hub 1 stored nothing";
  EXPECT_GT(Counter(hubs_[1], stored), 0) << "hub 2 stored nothing";
  EXPECT_EQ(StopHub(hubs_[0]), 0);
  EXPECT_EQ(StopHub(hubs_[1]), 0);
}

// Two hubs share the durable consumer and one PostgreSQL database, each storing fetched batches
// of up to 16 messages in one transaction; hub 1 is killed (SIGKILL: whatever it fetched and had
// not committed and acknowledged is redelivered after ack_wait) while messages still arrive, and
// started again. Every finding is stored exactly once.
TEST_F(NatsLinkE2eTest, AHubKilledMidStreamAndRestartedLosesAndDuplicatesNothing) {
  auto& pg = vigil::hub::testing::PostgresServer::Shared();
  std::string why;
  const std::string db = pg.NewDatabase(&why);
  ASSERT_FALSE(db.empty()) << why;
  const std::string extra = "  batch: 16\nstore: " + pg.Uri(db) + "\n";
  for (int n : {0, 1}) ASSERT_NO_FATAL_FAILURE(StartHub(hubs_[n], n + 1, false, extra, "1s"));
  for (Hub& h : hubs_) ASSERT_NO_FATAL_FAILURE(WaitReady(h));
  const std::string stored = R"(vigil_hub_nats_messages_total{result="stored"})";
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metrics(hubs_[0]).find("vigil_hub_nats_connected 1") != std::string::npos &&
               Metrics(hubs_[1]).find("vigil_hub_nats_connected 1") != std::string::npos;
      },
      std::chrono::seconds(15)));

  // 300 messages of 4 findings (distinct uids), 2 ms apart, on two hosts' subjects.
  constexpr int kMessages = 300, kFindings = 4;
  vigil::pipeline::JetStreamOptions o;
  o.url = nats_.url();
  auto conn = vigil::pipeline::JetStreamConnection::Connect(o);
  ASSERT_TRUE(conn.has_value()) << conn.error().ToString();
  ASSERT_TRUE((*conn)->EnsureStream().ok());
  std::atomic<int> published{0};
  int retried = 0;          // the publisher's, read after it is joined
  std::string first_error;  // likewise
  std::thread publisher([&] {
    for (int m = 0; m < kMessages; ++m) {
      const std::string host = m % 2 ? "web-1" : "db-2";
      std::string body = R"({"schema_version":"vigil.hub/v1","host":")" + host +
                         R"(","message_id":"k)" + std::to_string(m) + R"(","findings":[)";
      for (int i = 0; i < kFindings; ++i) {
        const int n = m * kFindings + i;
        body += (i ? "," : "") + std::string(R"({"class_uid":2004,"time":)") +
                std::to_string(1'700'000'000'000 + n) +
                R"(,"severity_id":3,"finding_info":{"uid":"u)" + std::to_string(n) +
                R"(","title":"t"},"process":{"pid":)" + std::to_string(100 + n % 50) +
                R"(,"name":"p"},"vigil":{"score":0.9}})";
      }
      body += "]}";
      // A publish that got no acknowledgement is sent again with the same message id, as the
      // agent's sink does (the stream keeps one copy within its duplicate window).
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      for (;;) {
        auto ack = (*conn)->Publish(vigil::pipeline::FindingsSubject("vigil", host), body,
                                    "k" + std::to_string(m));
        if (ack.has_value()) {
          published.fetch_add(1);
          break;
        }
        if (first_error.empty()) first_error = ack.error().ToString();
        if (std::chrono::steady_clock::now() > give_up) break;
        ++retried;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  // Killed once it has stored something, while the stream still flows.
  const bool hub1_stored =
      WaitFor([&] { return Counter(hubs_[0], stored) > 0; }, std::chrono::seconds(15));
  const std::string before_kill = hub1_stored ? "" : Diagnose();
  const bool mid_stream = published.load() < kMessages;
  kill(hubs_[0].pid, SIGKILL);
  waitpid(hubs_[0].pid, nullptr, 0);
  hubs_[0].pid = -1;
  publisher.join();
  ASSERT_TRUE(hub1_stored) << before_kill;
  EXPECT_TRUE(mid_stream) << "the publisher finished before hub 1 stored anything";
  ASSERT_EQ(published.load(), kMessages) << first_error;
  if (retried > 0) {
    std::cout << retried << " publishes sent again; the first: " << first_error << "\n";
  }
  ASSERT_NO_FATAL_FAILURE(StartHub(hubs_[0], 1, false, extra, "1s"));
  ASSERT_NO_FATAL_FAILURE(WaitReady(hubs_[0]));

  // Counted in the database: all findings, each uid once, each message once.
  PGconn* c = PQconnectdb(pg.Uri(db).c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  auto count = [&](const char* sql) -> int64_t {
    PGresult* r = PQexec(c, sql);
    const int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? std::stoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return ConsumerDrained(); }, std::chrono::seconds(20))) << Diagnose();
  EXPECT_EQ(count("SELECT count(*) FROM alerts"), kMessages * kFindings);
  EXPECT_EQ(count("SELECT count(DISTINCT uid) FROM alerts"), kMessages * kFindings);
  EXPECT_EQ(count("SELECT count(*) FROM messages"), kMessages);
  EXPECT_EQ(count("SELECT sum(findings) FROM agents"), kMessages * kFindings);
  PQfinish(c);
  EXPECT_EQ(StopHub(hubs_[0]), 0) << ReadAll(hubs_[0].state / "hub.err");
  EXPECT_EQ(StopHub(hubs_[1]), 0) << ReadAll(hubs_[1].state / "hub.err");
  EXPECT_TRUE(pg.DropDatabase(db, &why)) << why;
}

}  // namespace
