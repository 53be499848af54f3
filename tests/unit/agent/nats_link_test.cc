// The agent's nats sink and the hub's NATS consumer against a private nats-server: the sink
// publishes each message once with its message id (a resend is a JetStream duplicate); hub
// consumers store each message exactly once, also when one is redelivered or two hubs share the
// durable consumer; a malformed message is counted and terminated; a nats-server stopped
// mid-stream and started again loses nothing (the sink's spool).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../hub/hub_fixtures.h"
#include "../hub/postgres_fixture.h"
#include "../pipeline/nats_server.h"
#include "agent/nats_sink.h"
#include "core/clock.h"
#include "hub/config.h"
#include "hub/correlate.h"
#include "hub/nats_consumer.h"
#include "hub/store.h"
#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

using hub::testing::IngestBody;
using nats_testing::NatsServer;
using testing::WaitUntil;

constexpr const char* kHost = "web-1.example";

class NatsLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(nats_.Start()) << nats_.why();
    dir_ = std::filesystem::path(nats_.dir()) / "test";
    std::filesystem::create_directories(dir_);
  }

  pipeline::JetStreamOptions Js() const {
    pipeline::JetStreamOptions o;
    o.url = nats_.url();
    o.timeout = std::chrono::milliseconds(1000);
    return o;
  }
  NatsSinkOptions SinkOptions() const {
    NatsSinkOptions o;
    o.nats = Js();
    o.host = kHost;
    o.spool_dir = (dir_ / "spool").string();
    o.spool.sync = pipeline::SyncMode::kNever;
    o.batch_findings = 4;
    o.batch_delay = std::chrono::milliseconds(50);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(100);
    return o;
  }
  std::unique_ptr<FindingSink> OpenSink(const NatsSinkOptions& o) {
    auto sink = OpenNatsSink(o, sink_registry_, nullptr);
    EXPECT_TRUE(sink.has_value()) << sink.error().ToString();
    return sink.has_value() ? std::move(sink).value() : nullptr;
  }
  // A hub's store and consumer (hub `n`: its own SQLite file and registry).
  struct Hub {
    std::unique_ptr<hub::Store> store;
    core::Registry registry;
    std::unique_ptr<hub::NatsConsumer> consumer;
  };
  // `store`: where the hub keeps what it takes ("": its own SQLite file). `ack_wait`: that of
  // the durable consumer when this hub creates it.
  std::unique_ptr<Hub> StartHub(int n, const std::string& location = "",
                                std::chrono::milliseconds ack_wait = std::chrono::seconds(30)) {
    auto h = std::make_unique<Hub>();
    auto store = hub::Store::Open(
        location.empty() ? (dir_ / ("hub" + std::to_string(n) + ".db")).string() : location, {});
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    if (!store.has_value()) return nullptr;
    h->store = std::move(store).value();
    hub::NatsConsumerOptions o;
    o.nats = Js();
    o.nats.name = "test-hub-" + std::to_string(n);
    o.batch = 3;
    o.consumer.ack_wait = ack_wait;
    o.fetch_wait = std::chrono::milliseconds(100);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(100);
    h->consumer =
        std::make_unique<hub::NatsConsumer>(o, *h->store, core::SystemClock::Get(), h->registry);
    const core::Status st = h->consumer->Start();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return h;
  }
  static int64_t Stored(hub::Store& store) {
    auto agents = store.Agents();
    if (!agents.has_value()) return -1;
    int64_t n = 0;
    for (const hub::AgentRow& a : *agents) n += a.findings;
    return n;
  }
  static std::vector<std::string> Findings(int first, int n) {
    return hub::testing::FindingLines(kHost, first, n);
  }
  // The consumer "vigil-hub" has nothing left to deliver and nothing unacknowledged.
  bool Drained() {
    auto c = pipeline::JetStreamConnection::Connect(Js());
    if (!c.has_value()) return false;
    auto st = (*c)->Consumer("vigil-hub");
    return st.has_value() && st->pending == 0 && st->ack_pending == 0;
  }

  // Where the messages are when a wait fails: not yet delivered (pending), delivered and not
  // acknowledged (ack_pending), or settled; and what each hub counted (a store that failed
  // retries, a fetch or connect that failed reconnects).
  std::string Diagnose(const std::vector<const Hub*>& hubs) {
    std::string out;
    auto c = pipeline::JetStreamConnection::Connect(Js());
    if (!c.has_value()) {
      out = "consumer vigil-hub: " + c.error().ToString();
    } else if (auto st = (*c)->Consumer("vigil-hub"); !st.has_value()) {
      out = "consumer vigil-hub: " + st.error().ToString();
    } else {
      out = "consumer vigil-hub: pending " + std::to_string(st->pending) + ", ack_pending " +
            std::to_string(st->ack_pending) + ", redelivered " + std::to_string(st->redelivered);
    }
    for (size_t i = 0; i < hubs.size(); ++i) {
      const hub::NatsConsumerCounts n = hubs[i]->consumer->Counts();
      out += "; hub " + std::to_string(i + 1) +
             (hubs[i]->consumer->connected() ? "" : " (not connected)") + ": stored " +
             std::to_string(n.stored) + ", duplicate " + std::to_string(n.duplicate) +
             ", retried " + std::to_string(n.retried) + ", malformed " +
             std::to_string(n.malformed) + ", errors connect/fetch/ack " +
             std::to_string(n.connect_errors) + "/" + std::to_string(n.fetch_errors) + "/" +
             std::to_string(n.ack_errors) + ", findings in its store " +
             std::to_string(Stored(*hubs[i]->store));
    }
    return out;
  }

  NatsServer nats_;
  std::filesystem::path dir_;
  core::Registry sink_registry_;
};

TEST_F(NatsLinkTest, TheSinkPublishesEachMessageOnceWithItsIdAndAHubStoresItOnce) {
  auto sink = OpenSink(SinkOptions());
  ASSERT_NE(sink, nullptr);
  for (const std::string& f : Findings(0, 6)) ASSERT_TRUE(sink->Write(f).ok());
  ASSERT_TRUE(sink->Write(R"({"class_uid":1007,"time":1})").ok());  // not a finding: skipped
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  const FindingSinkCounts c = sink->Counts();
  EXPECT_EQ(c.messages_sent, 3u);  // 12 findings, 4 a message
  EXPECT_EQ(c.findings_sent, 12u);
  EXPECT_EQ(c.skipped_not_finding, 1u);
  EXPECT_NE(
      sink_registry_.ExpositionText().find(R"(vigil_nats_sink_findings_total{result="sent"} 12)"),
      std::string::npos);

  // The three messages are on the host's subject; resending the first with its id is dropped by
  // the stream as a duplicate: the sink set Nats-Msg-Id to the message id.
  auto conn = pipeline::JetStreamConnection::Connect(Js());
  ASSERT_TRUE(conn.has_value());
  pipeline::ConsumerOptions peek;
  peek.durable = "peek";
  ASSERT_TRUE((*conn)->BindConsumer(peek).ok());
  auto msgs = (*conn)->Fetch(10, std::chrono::milliseconds(2000));
  ASSERT_TRUE(msgs.has_value());
  ASSERT_EQ(msgs->size(), 3u);
  EXPECT_EQ((*msgs)[0].subject(), "vigil.web-1_example.findings");
  auto parsed = hub::ParseIngestRequest((*msgs)[0].data());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->host, kHost);
  EXPECT_EQ(parsed->findings.size(), 4u);
  auto again = (*conn)->Publish("vigil.web-1_example.findings", std::string((*msgs)[0].data()),
                                parsed->message_id);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->stream_seq, (*msgs)[0].stream_seq());

  // The same message under another id gets past the stream; the hub stores it once.
  ASSERT_TRUE(
      (*conn)
          ->Publish("vigil.web-1_example.findings", std::string((*msgs)[0].data()), "another-id")
          .has_value());
  auto hub = StartHub(1);
  ASSERT_NE(hub, nullptr);
  ASSERT_TRUE(WaitUntil([&] {
    const hub::NatsConsumerCounts n = hub->consumer->Counts();
    return n.stored + n.duplicate == 4;
  }));
  EXPECT_EQ(hub->consumer->Counts().stored, 3u);
  EXPECT_EQ(hub->consumer->Counts().duplicate, 1u);
  EXPECT_EQ(Stored(*hub->store), 12);
  EXPECT_TRUE(WaitUntil([&] { return Drained(); }));
  const std::string text = hub->registry.ExpositionText();
  EXPECT_NE(text.find(R"(vigil_hub_nats_messages_total{result="stored"} 3)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_hub_findings_total 12"), std::string::npos) << text;
  EXPECT_NE(text.find("vigil_hub_nats_connected 1"), std::string::npos) << text;
}

// A store whose IngestBatch waits until the test opens its gate; counts the calls that came in.
class GatedStore final : public hub::CorrelatingStore {
 public:
  explicit GatedStore(hub::Store& inner) : CorrelatingStore(inner) {}
  core::Result<std::vector<hub::IngestResult>> IngestBatch(
      const std::vector<hub::IngestMessage>& ms, int64_t now_ms) override {
    {
      std::unique_lock lock(mu_);
      ++entered_;
      cv_.wait(lock, [this] { return open_; });
    }
    return CorrelatingStore::IngestBatch(ms, now_ms);
  }
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  int entered() {
    std::lock_guard lock(mu_);
    return entered_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int entered_ = 0;
};

// Six messages of four findings on the stream, and a consumer fetching two at a time into a
// gated SQLite store, stuck in its first IngestBatch with the next batch fetched and parsed.
class NatsPipelineTest : public NatsLinkTest {
 protected:
  void SetUp() override {
    NatsLinkTest::SetUp();
    if (HasFatalFailure()) return;
    auto sink = OpenSink(SinkOptions());
    ASSERT_NE(sink, nullptr);
    for (const std::string& f : Findings(0, 12)) ASSERT_TRUE(sink->Write(f).ok());
    ASSERT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
    ASSERT_EQ(sink->Counts().messages_sent, 6u);
    auto store = hub::Store::Open((dir_ / "hub.db").string(), {});
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    inner_ = std::move(store).value();
    gated_ = std::make_unique<GatedStore>(*inner_);
    hub::NatsConsumerOptions o;
    o.nats = Js();
    o.batch = 2;
    o.fetch_wait = std::chrono::milliseconds(100);
    consumer_ =
        std::make_unique<hub::NatsConsumer>(o, *gated_, core::SystemClock::Get(), registry_);
    ASSERT_TRUE(consumer_->Start().ok());
    ASSERT_TRUE(WaitUntil([&] { return gated_->entered() == 1; }));
    ASSERT_TRUE(WaitUntil([&] { return Consumer().ack_pending == 4; })) << Consumer().ack_pending;
  }
  void TearDown() override {
    if (gated_ != nullptr) gated_->Open();
    if (consumer_ != nullptr) consumer_->Stop();
  }
  pipeline::ConsumerState Consumer() {
    auto c = pipeline::JetStreamConnection::Connect(Js());
    if (!c.has_value()) return {};
    auto st = (*c)->Consumer("vigil-hub");
    return st.has_value() ? *st : pipeline::ConsumerState{};
  }

  std::unique_ptr<hub::Store> inner_;
  std::unique_ptr<GatedStore> gated_;
  core::Registry registry_;
  std::unique_ptr<hub::NatsConsumer> consumer_;
};

// The consumer fetched and parsed the second batch while the first is in its transaction (four
// messages delivered), fetches no third before the store takes the second, and acknowledges
// nothing before its commit.
TEST_F(NatsPipelineTest, FetchesTheNextBatchWhileOneIsStoredAndAcknowledgesOnlyCommittedOnes) {
  EXPECT_EQ(Stored(*inner_), 0);
  EXPECT_EQ(consumer_->Counts().stored, 0u);
  EXPECT_FALSE(
      WaitUntil([&] { return Consumer().ack_pending > 4; }, std::chrono::milliseconds(300)));
  EXPECT_EQ(Consumer().pending, 2u);
  gated_->Open();
  ASSERT_TRUE(WaitUntil([&] { return Stored(*inner_) == 24; })) << Stored(*inner_);
  EXPECT_TRUE(WaitUntil([&] { return Drained(); }));
  EXPECT_EQ(consumer_->Counts().stored, 6u);
  EXPECT_EQ(consumer_->Counts().duplicate, 0u);
  EXPECT_GE(gated_->entered(), 3);  // three fetches of two, unless one came back short
}

// Stop() stores and acknowledges what the consumer had fetched: nothing is left waiting for an
// acknowledgement (to come again after ack_wait), and what it did not fetch is still pending.
TEST_F(NatsPipelineTest, StoppingStoresAndAcknowledgesWhatWasFetched) {
  std::thread stopper([&] { consumer_->Stop(); });
  gated_->Open();
  stopper.join();
  const uint64_t stored = consumer_->Counts().stored;
  EXPECT_GE(stored, 4u);
  EXPECT_EQ(Stored(*inner_), static_cast<int64_t>(4 * stored));
  const pipeline::ConsumerState st = Consumer();
  EXPECT_EQ(st.ack_pending, 0u);
  EXPECT_EQ(st.pending, 6 - stored);
}

TEST_F(NatsLinkTest, MalformedMessagesAreCountedAndTerminatedNotRedelivered) {
  auto conn = pipeline::JetStreamConnection::Connect(Js());
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE((*conn)->EnsureStream().ok());
  const std::string good = IngestBody(kHost, "m-1", Findings(0, 1));
  ASSERT_TRUE((*conn)->Publish("vigil.web-1_example.findings", "{not json", "bad-1").has_value());
  ASSERT_TRUE((*conn)
                  ->Publish("vigil.web-1_example.findings",
                            R"({"schema_version":"vigil.hub/v1","host":"web-1.example",)"
                            R"("message_id":"x","findings":[{"class_uid":2004}]})",
                            "bad-2")
                  .has_value());
  // Another host's body on this host's subject.
  ASSERT_TRUE(
      (*conn)
          ->Publish("vigil.web-2.findings", IngestBody(kHost, "m-0", Findings(5, 1)), "bad-3")
          .has_value());
  ASSERT_TRUE((*conn)->Publish("vigil.web-1_example.findings", good, "good-1").has_value());
  auto hub = StartHub(1);
  ASSERT_NE(hub, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return hub->consumer->Counts().malformed == 3; }));
  ASSERT_TRUE(WaitUntil([&] { return hub->consumer->Counts().stored == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return Drained(); }));  // terminated: nothing waits for an ack
  EXPECT_EQ(Stored(*hub->store), 2);
  const std::string text = hub->registry.ExpositionText();
  EXPECT_NE(text.find(R"(vigil_hub_nats_messages_total{result="malformed"} 3)"), std::string::npos)
      << text;
}

TEST_F(NatsLinkTest, AServerStoppedMidStreamAndRestartedLosesNothing) {
  // An acknowledgement in flight when the server stops is lost: that message (stored) comes
  // again after ack_wait and is a duplicate.
  auto hub = StartHub(1, "", std::chrono::seconds(2));
  ASSERT_NE(hub, nullptr);
  auto sink = OpenSink(SinkOptions());
  ASSERT_NE(sink, nullptr);
  for (const std::string& f : Findings(0, 4)) ASSERT_TRUE(sink->Write(f).ok());
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(WaitUntil([&] { return Stored(*hub->store) == 8; }));

  nats_.Stop();
  for (const std::string& f : Findings(10, 6)) ASSERT_TRUE(sink->Write(f).ok());
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(WaitUntil([&] { return sink->Counts().retries >= 2; }));
  EXPECT_EQ(sink->Counts().pending_messages, 3u);  // spooled while the server is down
  EXPECT_FALSE(hub->consumer->connected());

  ASSERT_TRUE(nats_.Start()) << nats_.why();
  EXPECT_EQ(sink->Close(std::chrono::seconds(15)), 0u);
  ASSERT_TRUE(WaitUntil([&] { return Stored(*hub->store) == 20; }, std::chrono::seconds(15)))
      << Stored(*hub->store);
  EXPECT_TRUE(WaitUntil([&] { return Drained(); }));
  EXPECT_EQ(Stored(*hub->store), 20);
  EXPECT_GE(hub->consumer->Counts().connect_errors + hub->consumer->Counts().fetch_errors, 1u);
}

TEST_F(NatsLinkTest, TwoHubsShareTheDurableConsumerAndStoreEachMessageOnceBetweenThem) {
  auto a = StartHub(1);
  auto b = StartHub(2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Both bound before anything is published: else the first one bound can take every message
  // before the other binds (seen under load: hub 1 bound 150 ms after hub 2 had stored all 40).
  ASSERT_TRUE(WaitUntil([&] { return a->consumer->connected() && b->consumer->connected(); }));
  NatsSinkOptions o = SinkOptions();
  o.batch_findings = 2;
  // A message is sealed at 2 findings, never by its age (50 ms could seal one of 1 on a loaded
  // machine: 41 messages, seen), so the message count below is exact.
  o.batch_delay = std::chrono::seconds(60);
  auto sink = OpenSink(o);
  ASSERT_NE(sink, nullptr);
  constexpr int kProcesses = 40;  // 80 findings in 40 messages
  for (const std::string& f : Findings(0, kProcesses)) ASSERT_TRUE(sink->Write(f).ok());
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  ASSERT_TRUE(WaitUntil([&] { return Stored(*a->store) + Stored(*b->store) == 2 * kProcesses; }))
      << Diagnose({a.get(), b.get()});
  EXPECT_TRUE(WaitUntil([&] { return Drained(); })) << Diagnose({a.get(), b.get()});
  EXPECT_EQ(Stored(*a->store) + Stored(*b->store), 2 * kProcesses);
  EXPECT_EQ(a->consumer->Counts().stored + b->consumer->Counts().stored,
            static_cast<uint64_t>(kProcesses));
  EXPECT_EQ(a->consumer->Counts().duplicate + b->consumer->Counts().duplicate, 0u);
  EXPECT_GT(a->consumer->Counts().stored, 0u) << "hub 1 got nothing";
  EXPECT_GT(b->consumer->Counts().stored, 0u) << "hub 2 got nothing";
}

// The issue's scale-out shape: two agents publish, two hubs share the stream and one PostgreSQL
// database; every finding is stored once, each process's findings make one incident.
TEST_F(NatsLinkTest, TwoAgentsAndTwoHubsOverJetStreamAndPostgresqlStoreEachFindingOnce) {
  std::string why;
  hub::testing::PostgresServer& pg = hub::testing::PostgresServer::Shared();
  const std::string db = pg.NewDatabase(&why);
  ASSERT_FALSE(db.empty()) << why;
  auto a = StartHub(1, pg.Uri(db));
  auto b = StartHub(2, pg.Uri(db));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return a->consumer->connected() && b->consumer->connected(); }));
  constexpr int kProcesses = 20;  // per agent: 40 findings in 20 messages
  for (const std::string host : {"web-1", "db.example"}) {
    NatsSinkOptions o = SinkOptions();
    o.host = host;
    o.spool_dir = (dir_ / ("spool-" + host)).string();
    o.batch_findings = 2;
    auto sink = OpenSink(o);
    ASSERT_NE(sink, nullptr);
    for (const std::string& f : hub::testing::FindingLines(host, 0, kProcesses)) {
      ASSERT_TRUE(sink->Write(f).ok());
    }
    EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  }
  ASSERT_TRUE(WaitUntil([&] { return Stored(*a->store) == 4 * kProcesses; }))
      << Diagnose({a.get(), b.get()});
  EXPECT_TRUE(WaitUntil([&] { return Drained(); })) << Diagnose({a.get(), b.get()});
  EXPECT_EQ(Stored(*b->store), 4 * kProcesses);  // one database: both hubs see it all
  const hub::NatsConsumerCounts ca = a->consumer->Counts(), cb = b->consumer->Counts();
  EXPECT_EQ(ca.stored + cb.stored, static_cast<uint64_t>(2 * kProcesses));
  EXPECT_EQ(ca.duplicate + cb.duplicate, 0u);
  EXPECT_GT(ca.stored, 0u);
  EXPECT_GT(cb.stored, 0u);
  hub::IncidentFilter all;
  all.limit = 1000;
  auto incidents = a->store->Incidents(all);
  ASSERT_TRUE(incidents.has_value()) << incidents.error().ToString();
  EXPECT_EQ(incidents->size(), static_cast<size_t>(2 * kProcesses));
  for (const hub::IncidentRow& i : *incidents) EXPECT_EQ(i.alerts, 2) << i.host << " " << i.pid;
}

TEST_F(NatsLinkTest, RefusesBadOptions) {
  NatsSinkOptions o = SinkOptions();
  o.nats.url = "http://127.0.0.1:4222";
  auto bad = OpenNatsSink(o, sink_registry_, nullptr);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
  o = SinkOptions();
  o.host = "bad host";
  EXPECT_FALSE(OpenNatsSink(o, sink_registry_, nullptr).has_value());
  auto store = hub::Store::Open((dir_ / "x.db").string(), {});
  ASSERT_TRUE(store.has_value());
  core::Registry registry;
  hub::NatsConsumerOptions co;
  co.nats = Js();
  co.consumer.durable = "has.dot";
  hub::NatsConsumer consumer(co, **store, core::SystemClock::Get(), registry);
  EXPECT_EQ(consumer.Start().code(), core::StatusCode::kInvalidArgument);
}

TEST(HubNatsConfigTest, TheNatsSectionIsReadAndCheckedNamingLineAndKey) {
  auto none = hub::ParseHubConfig("listen: 127.0.0.1:0\n", "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->nats.enabled);
  auto c = hub::ParseHubConfig(
      "nats:\n  url: nats://10.0.0.5:4222\n  stream: FLEET\n  subject_prefix: acme.vigil\n"
      "  consumer: hubs\n  ack_wait: 1m\n  token_file: nats.token\n  batch: 5\n",
      "hub.yaml", "/etc/vigil");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_TRUE(c->nats.enabled);
  EXPECT_EQ(c->nats.url, "nats://10.0.0.5:4222");
  EXPECT_EQ(c->nats.stream, "FLEET");
  EXPECT_EQ(c->nats.subject_prefix, "acme.vigil");
  EXPECT_EQ(c->nats.consumer, "hubs");
  EXPECT_EQ(c->nats.ack_wait_s, 60u);
  EXPECT_EQ(c->nats.batch, 5u);
  EXPECT_EQ(c->nats.token_file, "/etc/vigil/nats.token");
  auto error = [](const std::string& yaml) {
    auto r = hub::ParseHubConfig(yaml, "hub.yaml", "/etc/vigil");
    return r.has_value() ? std::string("(accepted)") : r.error().message();
  };
  EXPECT_EQ(error("nats:\n  stream: V\n"), "hub.yaml:2:3: nats: needs a url (nats://HOST:PORT)");
  EXPECT_EQ(error("nats:\n  url: http://h:1\n"),
            "hub.yaml:2:8: nats.url: expected nats://HOST:PORT or tls://HOST:PORT (one server, no "
            "path)");
  EXPECT_EQ(error("nats:\n  url: nats://h:1\n  consumer: a.b\n"),
            "hub.yaml:3:13: nats.consumer: expected 1..64 characters of [A-Za-z0-9_-]");
  EXPECT_EQ(error("nats:\n  url: nats://h:1\n  queue: q\n"),
            "hub.yaml:3:3: nats.queue: unknown key");
  EXPECT_EQ(error("nats:\n  url: nats://h:1\n  ack_wait: 0s\n"),
            "hub.yaml:3:13: nats.ack_wait: expected a duration of 1s..3600s (90, 90s, 5m, 2h, 1d), "
            "got \"0s\"");
  EXPECT_EQ(error("nats:\n  url: nats://h:1\n  batch: 0\n"),
            "hub.yaml:3:10: nats.batch: expected an integer in 1..1000");
  EXPECT_THAT(error("nats:\n  url: nats://h:1\n  token_file: t\n  creds: c\n"),
              ::testing::HasSubstr("not both"));
}

}  // namespace
}  // namespace vigil::agent
