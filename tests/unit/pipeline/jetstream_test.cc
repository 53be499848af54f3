// The JetStream adapter against a real nats-server (tests/unit/pipeline/nats_server.h): subject
// names, option checks, the stream created or refused, publishing with a message id that the
// stream's duplicate window recognises, a durable consumer's ack and term, token auth.

#include "pipeline/jetstream.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "nats_server.h"

namespace vigil::pipeline {
namespace {

using nats_testing::NatsServer;

JetStreamOptions Options(const NatsServer& server) {
  JetStreamOptions o;
  o.url = server.url();
  o.timeout = std::chrono::milliseconds(2000);
  return o;
}

std::unique_ptr<JetStreamConnection> Connect(const JetStreamOptions& o) {
  auto c = JetStreamConnection::Connect(o);
  EXPECT_TRUE(c.has_value()) << c.error().ToString();
  return c.has_value() ? std::move(c).value() : nullptr;
}

// Waits (at most 5 s) until the consumer "test-hub" has nothing unacknowledged.
bool WaitForNoAckPending(JetStreamConnection& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = c.Consumer("test-hub");
    if (st.has_value() && st->ack_pending == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(JetStreamSubjectTest, HostsAreOneTokenAndMapBack) {
  EXPECT_EQ(FindingsSubject("vigil", "web-1"), "vigil.web-1.findings");
  EXPECT_EQ(FindingsSubject("acme.vigil", "db.example.com"), "acme.vigil.db_example_com.findings");
  EXPECT_EQ(HostOfFindingsSubject("acme.vigil", "acme.vigil.db_example_com.findings"),
            "db.example.com");
  EXPECT_EQ(HostOfFindingsSubject("vigil", "vigil.a:b.findings"), "a:b");
  EXPECT_FALSE(HostOfFindingsSubject("vigil", "vigil.a.b.findings").has_value());
  EXPECT_FALSE(HostOfFindingsSubject("vigil", "vigil..findings").has_value());
  EXPECT_EQ(HostSubject("vigil", "db.example.com", "checkpoints"),
            "vigil.db_example_com.checkpoints");
  EXPECT_EQ(HostOfSubject("vigil", "vigil.db_example_com.checkpoints", "checkpoints"),
            "db.example.com");
  EXPECT_FALSE(HostOfSubject("vigil", "vigil.web-1.findings", "checkpoints").has_value());
  EXPECT_FALSE(HostOfSubject("vigil", "vigil.web-1.checkpoints", "findings").has_value());
  EXPECT_FALSE(HostOfSubject("vigil", "vigil.web-1xcheckpoints", "checkpoints").has_value());
  EXPECT_FALSE(HostOfFindingsSubject("vigil", "vigil.web-1.events").has_value());
  EXPECT_FALSE(HostOfFindingsSubject("vigil", "other.web-1.findings").has_value());
  EXPECT_FALSE(HostOfFindingsSubject("vigil", "vigilx.web-1.findings").has_value());
}

TEST(JetStreamOptionsTest, RefusesBadOptionsNamingTheField) {
  JetStreamOptions o;
  o.url = "nats://127.0.0.1:4222";
  EXPECT_TRUE(ValidateJetStreamOptions(o).ok());
  o.url = "tls://nats.example:4443";
  EXPECT_TRUE(ValidateJetStreamOptions(o).ok());
  for (const char* url : {"http://127.0.0.1:4222", "nats://", "nats://h:0", "nats://h:99999",
                          "nats://u:p@h:4222", "nats://h:4222/x", "nats://a:1,nats://b:2"}) {
    o.url = url;
    const core::Status st = ValidateJetStreamOptions(o);
    EXPECT_EQ(st.code(), core::StatusCode::kInvalidArgument) << url;
    EXPECT_NE(st.message().find("nats url"), std::string::npos) << st.message();
  }
  o.url = "nats://127.0.0.1:4222";
  o.stream = "A.B";
  EXPECT_NE(ValidateJetStreamOptions(o).message().find("nats stream"), std::string::npos);
  o.stream = "VIGIL";
  for (const char* prefix : {"", "a..b", "a.*", "a.>", "a b", ".a", "a."}) {
    o.subject_prefix = prefix;
    EXPECT_NE(ValidateJetStreamOptions(o).message().find("subject prefix"), std::string::npos)
        << prefix;
  }
  o.subject_prefix = "acme.vigil";
  o.token_file = "t";
  o.creds_file = "c";
  EXPECT_FALSE(ValidateJetStreamOptions(o).ok());
}

TEST(JetStreamTest, UnreachableServerIsUnavailable) {
  NatsServer server;  // never started: nothing listens on its port
  auto c = JetStreamConnection::Connect(Options(server));
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), core::StatusCode::kUnavailable);
  EXPECT_NE(c.error().message().find(server.url()), std::string::npos) << c.error().ToString();
}

TEST(JetStreamTest, PublishesWithAMessageIdThatTheStreamDeduplicates) {
  NatsServer server;
  ASSERT_TRUE(server.Start()) << server.why();
  auto c = Connect(Options(server));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->EnsureStream().ok());
  ASSERT_TRUE(c->EnsureStream().ok());  // exists now: checked, not created again
  auto a = c->Publish("vigil.web-1.findings", "one", "id-1");
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_FALSE(a->duplicate);
  auto b = c->Publish("vigil.web-1.findings", "one again", "id-1");
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->duplicate);
  EXPECT_EQ(b->stream_seq, a->stream_seq);
  auto d = c->Publish("vigil.web-2.findings", "two", "id-2");
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->duplicate);
  EXPECT_EQ(d->stream_seq, a->stream_seq + 1);
  // Outside the stream's subjects nobody acknowledges.
  auto e = c->Publish("other.web-1.findings", "x", "id-3");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code(), core::StatusCode::kUnavailable);
}

TEST(JetStreamTest, AStreamThatDoesNotTakeThePrefixIsRefused) {
  NatsServer server;
  ASSERT_TRUE(server.Start()) << server.why();
  JetStreamOptions o = Options(server);
  o.subject_prefix = "acme";
  auto c = Connect(o);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->EnsureStream().ok());  // VIGIL with subjects acme.>
  o.subject_prefix = "vigil";
  auto d = Connect(o);
  ASSERT_NE(d, nullptr);
  const core::Status st = d->EnsureStream();
  EXPECT_EQ(st.code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("acme.>"), std::string::npos) << st.message();
}

TEST(JetStreamTest, ADurableConsumerHandsOutAcksAndTerminates) {
  NatsServer server;
  ASSERT_TRUE(server.Start()) << server.why();
  auto c = Connect(Options(server));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->EnsureStream().ok());
  ASSERT_EQ(c->Fetch(1, std::chrono::milliseconds(10)).error().code(),
            core::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c->Publish("vigil.web-1.findings", "a", "1").has_value());
  ASSERT_TRUE(c->Publish("vigil.web-1.events", "not for the consumer", "2").has_value());
  ASSERT_TRUE(c->Publish("vigil.web_2.findings", "b", "3").has_value());
  ConsumerOptions co;
  co.durable = "test-hub";
  co.ack_wait = std::chrono::seconds(30);
  ASSERT_TRUE(c->BindConsumer(co).ok());
  auto got = c->Fetch(10, std::chrono::milliseconds(2000));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].subject(), "vigil.web-1.findings");
  EXPECT_EQ((*got)[0].data(), "a");
  EXPECT_EQ((*got)[0].stream_seq(), 1u);
  EXPECT_EQ((*got)[0].deliveries(), 1u);
  EXPECT_EQ((*got)[1].data(), "b");
  EXPECT_EQ((*got)[1].stream_seq(), 3u);
  EXPECT_TRUE((*got)[0].Ack(std::chrono::milliseconds(2000)).ok());
  EXPECT_TRUE((*got)[1].Term().ok());
  auto state = c->Consumer("test-hub");
  ASSERT_TRUE(state.has_value()) << state.error().ToString();
  EXPECT_EQ(state->pending, 0u);
  EXPECT_TRUE(WaitForNoAckPending(*c));
  EXPECT_EQ(c->Consumer("nobody").error().code(), core::StatusCode::kNotFound);
  auto none = c->Fetch(10, std::chrono::milliseconds(200));
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST(JetStreamTest, TokenAuthentication) {
  NatsServer server("s3cret-token");
  ASSERT_TRUE(server.Start()) << server.why();
  JetStreamOptions o = Options(server);
  auto refused = JetStreamConnection::Connect(o);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), core::StatusCode::kUnavailable);
  o.token_file = server.dir() + "/token";
  EXPECT_EQ(JetStreamConnection::Connect(o).error().code(), core::StatusCode::kNotFound);
  std::ofstream(o.token_file) << "s3cret-token\n";
  auto c = Connect(o);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->EnsureStream().ok());
}

}  // namespace
}  // namespace vigil::pipeline
