// The hub sink against a real hub on a loopback port: what it sends and skips, spooling while the
// hub is down and draining when it returns, redelivery that never stores a finding twice, the
// memory bound, and refusals of bad options and findings.

#include "agent/hub_sink.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../hub/hub_fixtures.h"
#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

using hub::testing::VerdictLine;
using testing::WaitUntil;

class HubSinkTest : public testing::HubLinkTest {
 protected:
  HubSinkOptions Options(const std::string& spool = "spool") const {
    HubSinkOptions o;
    o.link.url = Url();
    o.link.token_file = TokenFile();
    o.link.host = kHost;
    o.link.timeout = std::chrono::milliseconds(2000);
    o.spool_dir = (dir_ / spool).string();
    o.spool.sync = pipeline::SyncMode::kNever;
    o.batch_findings = 4;
    o.batch_delay = std::chrono::milliseconds(50);
    o.retry_initial = std::chrono::milliseconds(10);
    o.retry_max = std::chrono::milliseconds(50);
    return o;
  }
  std::unique_ptr<FindingSink> Open(const HubSinkOptions& o,
                                pipeline::RecoveryReport* report = nullptr) {
    auto sink = OpenHubSink(o, registry_, report);
    EXPECT_TRUE(sink.has_value()) << sink.error().ToString();
    return sink.has_value() ? std::move(sink).value() : nullptr;
  }
  static std::vector<std::string> Findings(int first, int n) {
    return hub::testing::FindingLines(kHost, first, n);
  }

  core::Registry registry_;
};

TEST_F(HubSinkTest, SendsFindingsOnceAndSkipsWhatIsNotAFinding) {
  StartHub();
  auto sink = Open(Options());
  ASSERT_NE(sink, nullptr);
  for (const std::string& f : Findings(0, 5)) {
    ASSERT_TRUE(sink->Write(f).ok());
  }
  ASSERT_TRUE(sink->Write(VerdictLine(kHost, 7, "calm", 1, 0.1)).ok());  // not anomalous
  ASSERT_TRUE(sink->Write(R"({"class_uid":1007,"time":1})").ok());       // an event
  ASSERT_TRUE(sink->Write("not json").ok());
  ASSERT_TRUE(sink->Flush().ok());
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 10);
  const FindingSinkCounts c = sink->Counts();
  EXPECT_EQ(c.findings_spooled, 10u);
  EXPECT_EQ(c.findings_sent, 10u);
  EXPECT_EQ(c.messages_sent, 3u);  // 4 + 4 + 2
  EXPECT_EQ(c.messages_duplicate, 0u);
  EXPECT_EQ(c.skipped_not_anomalous, 1u);
  EXPECT_EQ(c.skipped_not_finding, 2u);
  EXPECT_EQ(c.pending_messages, 0u);
  const std::string text = registry_.ExpositionText();
  EXPECT_NE(text.find(R"(vigil_hub_sink_findings_total{result="sent"} 10)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_hub_sink_spooled_messages 0"), std::string::npos) << text;
  // Writes after Close are refused, not lost silently.
  EXPECT_FALSE(sink->Write(Findings(9, 1)[0]).ok());
}

TEST_F(HubSinkTest, AnOpenMessageIsSentAfterTheBatchDelayWithoutAFlush) {
  StartHub();
  auto sink = Open(Options());
  ASSERT_NE(sink, nullptr);
  ASSERT_TRUE(sink->Write(Findings(0, 1)[0]).ok());
  EXPECT_TRUE(WaitUntil([&] { return StoredFindings() == 1; }));
}

TEST_F(HubSinkTest, SpoolsWhileTheHubIsDownAndDeliversEverythingOnceWhenItReturns) {
  StartHub();
  StopHub();  // the port is known; nobody listens on it
  auto sink = Open(Options());
  ASSERT_NE(sink, nullptr);
  const std::vector<std::string> findings = Findings(0, 20);
  for (size_t i = 0; i < findings.size(); ++i) {
    ASSERT_TRUE(sink->Write(findings[i]).ok());
    if (i % 5 == 4) {
      ASSERT_TRUE(sink->Flush().ok());
    }
  }
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(WaitUntil([&] { return sink->Counts().retries >= 3; }));
  EXPECT_EQ(sink->Counts().findings_sent, 0u);
  EXPECT_GT(sink->Counts().pending_messages, 0u);
  StartHub();
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 40);
  EXPECT_EQ(sink->Counts().findings_sent, 40u);
}

TEST_F(HubSinkTest, WhatARunLeftSpooledGoesFirstAndARedeliveryStoresNothingTwice) {
  StartHub();
  StopHub();
  {
    auto sink = Open(Options());
    ASSERT_NE(sink, nullptr);
    for (const std::string& f : Findings(0, 6)) {
      ASSERT_TRUE(sink->Write(f).ok());
    }
    EXPECT_EQ(sink->Close(std::chrono::milliseconds(0)), 3u);  // 12 findings, 4 per message
  }
  // A copy of the spool stands for a crash after the hub stored the messages but before the
  // spool recorded it: the copy still holds them as not delivered.
  std::filesystem::copy(dir_ / "spool", dir_ / "copy");
  std::filesystem::remove(dir_ / "copy" / "LOCK");
  StartHub();
  pipeline::RecoveryReport report;
  auto sink = Open(Options(), &report);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(report.records_replayed, 3u);
  for (const std::string& f : Findings(6, 1)) {
    ASSERT_TRUE(sink->Write(f).ok());
  }
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 14);
  sink.reset();

  auto again = Open(Options("copy"), &report);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(report.records_replayed, 3u);
  EXPECT_EQ(again->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 14) << "a redelivered message must not be stored again";
  EXPECT_EQ(again->Counts().messages_duplicate, 3u);
}

TEST_F(HubSinkTest, BeyondTheMemoryBoundMessagesAreReadBackFromTheSpoolInOrder) {
  StartHub();
  StopHub();
  HubSinkOptions o = Options();
  o.memory_bytes = 1;  // one message in memory at a time; the rest only on disk
  o.batch_findings = 2;
  auto sink = Open(o);
  ASSERT_NE(sink, nullptr);
  for (const std::string& f : Findings(0, 15)) {
    ASSERT_TRUE(sink->Write(f).ok());
  }
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(WaitUntil([&] { return sink->Counts().retries >= 1; }));
  StartHub();
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 30);
  EXPECT_EQ(sink->Counts().messages_sent, 15u);
  EXPECT_EQ(sink->Counts().messages_duplicate, 0u);
}

TEST_F(HubSinkTest, AnotherHostsTokenIsRetriedNotDroppedUntilTheTokenFileIsFixed) {
  StartHub();
  std::ofstream(TokenFile(), std::ios::trunc) << Token(hub::Role::kAgent, "web-2") << "\n";
  auto sink = Open(Options());
  ASSERT_NE(sink, nullptr);
  for (const std::string& f : Findings(0, 2)) {
    ASSERT_TRUE(sink->Write(f).ok());
  }
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(WaitUntil([&] { return sink->Counts().retries >= 2; }));
  EXPECT_EQ(StoredFindings(), 0);
  std::ofstream(TokenFile(), std::ios::trunc) << Token(hub::Role::kAgent, kHost) << "\n";
  EXPECT_EQ(sink->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ(StoredFindings(), 4);
}

TEST_F(HubSinkTest, RefusesBadOptionsAndFindingsTheHubWouldRefuse) {
  HubSinkOptions o = Options();
  o.link.url = "ftp://127.0.0.1:1";
  auto bad = OpenHubSink(o, registry_, nullptr);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("ftp://"), std::string::npos);
  o = Options();
  o.link.host = "bad host";
  EXPECT_FALSE(OpenHubSink(o, registry_, nullptr).has_value());
  o = Options();
  o.link.url = "http://127.0.0.1:1/v1";
  EXPECT_FALSE(OpenHubSink(o, registry_, nullptr).has_value());
  o = Options();
  o.batch_findings = 10001;
  EXPECT_FALSE(OpenHubSink(o, registry_, nullptr).has_value());

  auto sink = Open(Options());
  ASSERT_NE(sink, nullptr);
  const std::string bad_score =
      R"({"class_uid":2004,"time":1,"process":{"pid":1},"vigil":{"score":2,"anomalous":true}})";
  core::Status st = sink->Write(bad_score);
  EXPECT_EQ(st.code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("vigil.score"), std::string::npos) << st.ToString();
  EXPECT_EQ(sink->Write("{\"a\":1}\n{}").code(), core::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil::agent
