// Audit checkpoints over NATS against a private nats-server: the agent's audit log hands each
// checkpoint to a checkpoint sink that publishes it on "<prefix>.<host>.checkpoints"; the hub's
// checkpoint consumer (its own durable: nats-server 2.9 takes one filter per consumer) verifies
// each by the host's registered key and stores it once; a second log signed by the same key that
// rewrites the chain (a fork) is flagged and audited at the hub; a malformed message is
// terminated; the findings consumer never sees checkpoints.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../hub/test_hub_state.h"
#include "../pipeline/nats_server.h"
#include "agent/checkpoint_sink.h"
#include "agent/nats_sink.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "core/clock.h"
#include "hub/checkpoints.h"
#include "hub/nats_streams.h"
#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

using nats_testing::NatsServer;
using testing::WaitUntil;

constexpr const char* kGatewayHost = "plc-gw.example";

class CheckpointNatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(nats_.Start()) << nats_.why();
    ASSERT_TRUE(hub::testing::OpenTestHubState("checkpoint_nats_", clock_, &hub_));
    book_ = std::make_unique<hub::CheckpointBook>(*hub_.store, *hub_.log, clock_, hub_registry_);
  }
  void TearDown() override {
    if (consumer_) consumer_->Stop();
    std::filesystem::remove_all(hub_.dir);
  }
  pipeline::JetStreamOptions Js() const {
    pipeline::JetStreamOptions o;
    o.url = nats_.url();
    o.timeout = std::chrono::milliseconds(1000);
    return o;
  }
  void StartConsumer() {
    hub::NatsCheckpointOptions o;
    o.nats = Js();
    o.consumer.durable = "vigil-hub-checkpoints";
    o.fetch_wait = std::chrono::milliseconds(100);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(100);
    consumer_ = std::make_unique<hub::NatsCheckpointConsumer>(o, *book_, hub_registry_);
    ASSERT_TRUE(consumer_->Start().ok());
  }
  std::unique_ptr<CheckpointSink> OpenSink() {
    CheckpointSinkOptions o;
    o.kind = "nats";
    o.host = kGatewayHost;
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(100);
    o.spool_dir =
        (std::filesystem::path(hub_.dir) / ("checkpoint-spool-" + std::to_string(++sinks_opened_)))
            .string();
    o.spool.sync = pipeline::SyncMode::kNever;
    auto s = CheckpointSink::Open(
        o, MakeNatsTransport(Js(), pipeline::HostSubject("vigil", kGatewayHost, "checkpoints")),
        sink_registry_, nullptr);
    EXPECT_TRUE(s.has_value()) << s.error().ToString();
    return s.has_value() ? std::move(s).value() : nullptr;
  }
  // An agent's audit log in `name` signed by `signer`, with a checkpoint every 3 records, each
  // offered to `sink`; `records` decisions appended, then closed (a final checkpoint). Returns
  // the checkpoints it wrote.
  uint64_t WriteLog(const std::string& name, const audit::Signer& signer, CheckpointSink* sink,
                    int records) {
    audit::AuditOptions ao;
    ao.fsync = audit::FsyncMode::kNever;
    ao.checkpoint_every = 3;
    ao.on_checkpoint = [sink](const audit::CheckpointNotice& n) { sink->Offer(n); };
    auto log = audit::AuditLog::Open((hub_.dir / name).string(), ao, signer, clock_);
    EXPECT_TRUE(log.has_value()) << log.error().ToString();
    if (!log.has_value()) return 0;
    for (int i = 0; i < records; ++i) {
      EXPECT_TRUE((*log)->Append(audit::RecordType::kDecision, {{"n", i}}).ok());
    }
    EXPECT_TRUE((*log)->Close().ok());
    return (*log)->Stats().checkpoints;
  }
  std::vector<hub::CheckpointRow> Stored() {
    auto rows = hub_.store->Checkpoints(kGatewayHost, 1000);
    EXPECT_TRUE(rows.has_value());
    return rows.value_or(std::vector<hub::CheckpointRow>{});
  }

  NatsServer nats_;
  const core::Clock& clock_ = core::SystemClock::Get();
  hub::testing::TestHubState hub_;
  core::Registry hub_registry_, sink_registry_;
  int sinks_opened_ = 0;
  std::unique_ptr<hub::CheckpointBook> book_;
  std::unique_ptr<hub::NatsCheckpointConsumer> consumer_;
};

TEST_F(CheckpointNatsTest, EachCheckpointReachesTheHubOnceVerifiedByTheRegisteredKey) {
  auto signer = audit::Ed25519Signer::Generate();
  const audit::PublicKey& pub = signer->public_key();
  std::string pub_hex;
  for (uint8_t b : pub.key) {
    static constexpr char kDigits[] = "0123456789abcdef";
    pub_hex += kDigits[b >> 4];
    pub_hex += kDigits[b & 15];
  }
  ASSERT_TRUE(hub_.store->PutAuditKey({kGatewayHost, audit::KeyIdString(pub.id), pub_hex, 1}).ok());
  StartConsumer();
  auto sink = OpenSink();
  ASSERT_NE(sink, nullptr);
  const uint64_t written = WriteLog("agent-audit", *signer, sink.get(), 7);
  ASSERT_GE(written, 3u);  // after records 3 and 6 (with log-open), and at the close
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(sink->Counts().sent, written);
  ASSERT_TRUE(WaitUntil([&] { return Stored().size() == written; })) << Stored().size();
  for (const hub::CheckpointRow& c : Stored()) {
    EXPECT_EQ(c.verification, "verified") << c.reason;
    EXPECT_EQ(c.problem, "") << c.problem_detail;
    EXPECT_EQ(c.covers + 1, c.seq);
  }
  EXPECT_EQ(consumer_->Counts().stored, written);

  // Published again (a resend after a lost PubAck): the stream drops it by its message id; past
  // the duplicate window the hub would store nothing new either.
  auto conn = pipeline::JetStreamConnection::Connect(Js());
  ASSERT_TRUE(conn.has_value());
  hub::CheckpointReport again;
  const hub::CheckpointRow first = Stored().back();
  again.host = kGatewayHost;
  again.seq = static_cast<uint64_t>(first.seq);
  again.covers = static_cast<uint64_t>(first.covers);
  again.chain_hash = first.chain_hash;
  again.time_ns = first.time_ns;
  again.key_id = first.key_id;
  again.public_key = first.public_key;
  again.signature = first.signature;
  const std::string subject = pipeline::HostSubject("vigil", kGatewayHost, "checkpoints");
  auto dup = (*conn)->Publish(subject, hub::CheckpointBody(again), hub::CheckpointMessageId(again));
  ASSERT_TRUE(dup.has_value());
  EXPECT_TRUE(dup->duplicate);
  auto resent = (*conn)->Publish(subject, hub::CheckpointBody(again), "another-id");
  ASSERT_TRUE(resent.has_value());
  ASSERT_TRUE(WaitUntil([&] { return consumer_->Counts().duplicate == 1; }));
  EXPECT_EQ(Stored().size(), written);

  // Malformed: terminated, counted, the consumer goes on.
  ASSERT_TRUE((*conn)->Publish(subject, "{not json", "bad-1").has_value());
  ASSERT_TRUE((*conn)
                  ->Publish("vigil.other-host.checkpoints", hub::CheckpointBody(again), "bad-2")
                  .has_value());
  ASSERT_TRUE(WaitUntil([&] { return consumer_->Counts().malformed == 2; }));
  auto state = (*conn)->Consumer("vigil-hub-checkpoints");
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(WaitUntil([&] {
    auto s = (*conn)->Consumer("vigil-hub-checkpoints");
    return s.has_value() && s->pending == 0 && s->ack_pending == 0;
  }));
  // The findings consumer's filter does not take checkpoints.
  pipeline::ConsumerOptions findings;
  findings.durable = "vigil-hub";
  ASSERT_TRUE((*conn)->BindConsumer(findings).ok());
  auto none = (*conn)->Fetch(10, std::chrono::milliseconds(200));
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST_F(CheckpointNatsTest, ARewrittenLogIsAForkAndAnUnknownKeyIsUnverified) {
  StartConsumer();
  auto signer = audit::Ed25519Signer::Generate();
  auto sink = OpenSink();
  ASSERT_NE(sink, nullptr);
  const uint64_t first = WriteLog("agent-audit", *signer, sink.get(), 4);
  ASSERT_TRUE(WaitUntil([&] { return Stored().size() == first; }));
  for (const hub::CheckpointRow& c : Stored()) {
    EXPECT_EQ(c.verification, "unverified");
    EXPECT_NE(c.reason.find("registered no audit key"), std::string::npos) << c.reason;
  }
  // The same key signs a log that was replaced (deleted and written anew): its first checkpoint
  // covers the same record as the first log's, with another chain hash.
  const uint64_t second = WriteLog("agent-audit-rewritten", *signer, sink.get(), 4);
  ASSERT_TRUE(WaitUntil([&] { return Stored().size() == first + second; }));
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  int forks = 0;
  for (const hub::CheckpointRow& c : Stored()) forks += c.problem == "fork" ? 1 : 0;
  EXPECT_GE(forks, 1);
  ASSERT_TRUE(hub_.log->Flush().ok());
  int audited = 0;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(hub_.dir / "audit")) {
    if (payload.value("action", "") == "audit-checkpoint-fork") {
      ++audited;
      EXPECT_EQ(payload["host"], kGatewayHost);
    }
  }
  EXPECT_EQ(audited, forks);
  EXPECT_NE(
      hub_registry_.ExpositionText().find(R"(vigil_hub_checkpoint_problems_total{problem="fork"})"),
      std::string::npos);
}

}  // namespace
}  // namespace vigil::agent

namespace vigil::agent {
namespace {

// A host whose only link to the hub is NATS registers its audit key over a hub link given for
// that (--nats-audit-key-hub with its agent token): its checkpoints, published on NATS, are then
// "verified" at a real hub; without that link they stay "unverified" (a NATS subject does not
// authenticate the host).
class NatsOnlyKeyTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    ASSERT_TRUE(nats_.Start()) << nats_.why();
    StartHub();
    hub::NatsCheckpointOptions o;
    o.nats.url = nats_.url();
    o.nats.timeout = std::chrono::milliseconds(1000);
    o.consumer.durable = "vigil-hub-checkpoints";
    o.fetch_wait = std::chrono::milliseconds(100);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(100);
    consumer_ = std::make_unique<hub::NatsCheckpointConsumer>(o, server_->checkpoints(),
                                                              consumer_registry_);
    ASSERT_TRUE(consumer_->Start().ok());
  }
  void TearDown() override {
    if (consumer_) consumer_->Stop();
    HubLinkTest::TearDown();
  }
  // Writes an audit log signed by `signer` whose checkpoints go over NATS for `host` (with the
  // key registered over `key_link` when it is given); returns how many it wrote.
  uint64_t Publish(const std::string& host, const audit::Signer& signer,
                   const HubLinkOptions* key_link) {
    pipeline::JetStreamOptions js;
    js.url = nats_.url();
    js.timeout = std::chrono::milliseconds(1000);
    std::unique_ptr<FindingTransport> t =
        MakeNatsTransport(js, pipeline::HostSubject("vigil", host, "checkpoints"));
    if (key_link != nullptr) {
      auto client = HubClient::Create(*key_link);
      EXPECT_TRUE(client.has_value()) << client.error().ToString();
      t = MakeAuditKeyRegistering(std::move(t), std::move(client).value());
    }
    CheckpointSinkOptions so;
    so.kind = "nats";
    so.host = host;
    so.spool_dir = (dir_ / ("spool-" + host)).string();
    so.spool.sync = pipeline::SyncMode::kNever;
    so.retry_initial = std::chrono::milliseconds(10);
    core::Registry registry;
    auto sink = CheckpointSink::Open(so, std::move(t), registry, nullptr);
    EXPECT_TRUE(sink.has_value()) << sink.error().ToString();
    const uint64_t written =
        WriteAuditLog("audit-" + host, signer, 3, [&](const audit::CheckpointNotice& n) {
          (*sink)->Offer(n);
        }).size();
    EXPECT_EQ((*sink)->Close(std::chrono::seconds(10)), 0u);
    return written;
  }
  std::vector<hub::CheckpointRow> Stored(const std::string& host) {
    auto rows = store_->Checkpoints(host, 1000);
    return rows.value_or(std::vector<hub::CheckpointRow>{});
  }

  nats_testing::NatsServer nats_;
  core::Registry consumer_registry_;
  std::unique_ptr<hub::NatsCheckpointConsumer> consumer_;
};

TEST_F(NatsOnlyKeyTest, TheKeyRegisteredOverTheHubLinkVerifiesTheNatsCheckpoints) {
  auto signer = audit::Ed25519Signer::Generate();
  HubLinkOptions link;
  link.url = Url();
  link.token_file = TokenFile();
  link.host = kHost;
  link.timeout = std::chrono::milliseconds(3000);
  const uint64_t written = Publish(kHost, *signer, &link);
  ASSERT_GE(written, 2u);
  ASSERT_TRUE(WaitUntil([&] { return Stored(kHost).size() == written; }));
  for (const hub::CheckpointRow& c : Stored(kHost)) {
    EXPECT_EQ(c.verification, "verified") << c.reason;
  }
  // Another host without the link: its checkpoints arrive, unverified; no key is taken from NATS.
  auto other = audit::Ed25519Signer::Generate();
  const uint64_t other_written = Publish("db-1", *other, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return Stored("db-1").size() == other_written; }));
  for (const hub::CheckpointRow& c : Stored("db-1")) {
    EXPECT_EQ(c.verification, "unverified") << c.reason;
  }
  auto key = store_->AuditKey("db-1");
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code(), core::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil::agent
