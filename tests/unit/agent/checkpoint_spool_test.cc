// The checkpoint sink's durable spool (agent/checkpoint_sink.h) with a scripted transport:
// checkpoints not delivered before Close are sent first, in order, by the next Open; the bound
// drops the oldest and counts it; refusals and damaged spool records are counted by cause; the
// spool is acknowledged so that a delivered checkpoint is not sent again after a restart.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/checkpoint_sink.h"
#include "hub/checkpoint_requests.h"

namespace vigil::agent {
namespace {

// Delivers (records) or not, as the test says.
class ScriptedTransport final : public FindingTransport {
 public:
  struct Script {
    std::mutex mu;
    DeliveryOutcome next = DeliveryOutcome::kStored;
    std::vector<std::string> delivered;  // message ids, in order
    int calls = 0;
  };
  explicit ScriptedTransport(Script* s) : s_(s) {}
  DeliveryOutcome Deliver(const FindingMessage& m) override {
    std::lock_guard lock(s_->mu);
    ++s_->calls;
    if (s_->next == DeliveryOutcome::kStored || s_->next == DeliveryOutcome::kDuplicate) {
      s_->delivered.push_back(m.id);
    }
    return s_->next;
  }
  std::string Endpoint() const override { return "scripted"; }

 private:
  Script* s_;
};

audit::CheckpointNotice Notice(uint64_t seq) {
  audit::CheckpointNotice n;
  n.seq = seq;
  n.covers = seq - 1;
  char hash[65];
  std::snprintf(hash, sizeof hash, "%064llx", static_cast<unsigned long long>(seq));
  n.chain_hash = hash;
  n.time_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(seq);
  n.key_id = "0123456789ABCDEF";
  n.public_key = std::string(64, 'a');
  n.signature = std::string(128, 'b');
  return n;
}

std::string IdOf(uint64_t seq) {
  hub::CheckpointReport c;
  static_cast<audit::CheckpointNotice&>(c) = Notice(seq);
  c.host = "gw-1";
  return hub::CheckpointMessageId(c);
}

class CheckpointSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("checkpoint_spool_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<CheckpointSink> Open(ScriptedTransport::Script* script, size_t capacity = 1024,
                                       pipeline::RecoveryReport* report = nullptr) {
    return OpenWith(std::make_unique<ScriptedTransport>(script), capacity, report);
  }
  std::unique_ptr<CheckpointSink> OpenWith(std::unique_ptr<FindingTransport> transport,
                                           size_t capacity,
                                           pipeline::RecoveryReport* report = nullptr) {
    CheckpointSinkOptions o;
    o.kind = "hub";
    o.host = "gw-1";
    o.spool_dir = (dir_ / "spool").string();
    o.capacity = capacity;
    o.retry_initial = std::chrono::milliseconds(1);
    o.retry_max = std::chrono::milliseconds(5);
    registry_ = std::make_unique<core::Registry>();
    auto s = CheckpointSink::Open(o, std::move(transport), *registry_, report);
    EXPECT_TRUE(s.has_value()) << s.error().ToString();
    return s.has_value() ? std::move(s).value() : nullptr;
  }

  std::filesystem::path dir_;
  std::unique_ptr<core::Registry> registry_;
};

TEST_F(CheckpointSpoolTest, UndeliveredCheckpointsAreSentInOrderAfterARestart) {
  ScriptedTransport::Script down;
  down.next = DeliveryOutcome::kRetry;  // the hub is unreachable
  {
    auto sink = Open(&down);
    ASSERT_NE(sink, nullptr);
    for (uint64_t seq = 2; seq <= 6; ++seq) sink->Offer(Notice(seq));
    // The sender tries (and is told to retry) before the close; on a loaded machine it may not
    // have run within Close's 20 ms.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sink->Counts().retries == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_GT(sink->Counts().retries, 0u);
    EXPECT_EQ(sink->Close(std::chrono::milliseconds(20)), 5u);
  }
  ScriptedTransport::Script up;
  pipeline::RecoveryReport report;
  {
    auto sink = Open(&up, 1024, &report);
    ASSERT_NE(sink, nullptr);
    EXPECT_EQ(report.records_replayed, 5u);
    sink->Offer(Notice(7));
    EXPECT_EQ(sink->Close(std::chrono::seconds(5)), 0u);
    EXPECT_EQ(sink->Counts().sent, 6u);
  }
  std::vector<std::string> want;
  for (uint64_t seq = 2; seq <= 7; ++seq) want.push_back(IdOf(seq));
  EXPECT_EQ(up.delivered, want);
  // All acknowledged: a third run sends nothing again.
  ScriptedTransport::Script third;
  auto sink = Open(&third, 1024, &report);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(report.records_replayed, 0u);
  EXPECT_EQ(sink->Close(std::chrono::seconds(1)), 0u);
  EXPECT_EQ(third.calls, 0);
}

TEST_F(CheckpointSpoolTest, TheOldestIsDroppedBeyondCapacityAndRefusalsAreCounted) {
  ScriptedTransport::Script down;
  down.next = DeliveryOutcome::kRetry;
  {
    auto sink = Open(&down, 3);
    ASSERT_NE(sink, nullptr);
    for (uint64_t seq = 2; seq <= 9; ++seq) sink->Offer(Notice(seq));
    EXPECT_EQ(sink->Close(std::chrono::milliseconds(20)), 3u);
    EXPECT_EQ(sink->Counts().dropped, 5u);  // 2..6 went for room
  }
  // The bound holds across the restart, and the dropped ones are not resent.
  ScriptedTransport::Script refusing;
  refusing.next = DeliveryOutcome::kRefused;
  {
    auto sink = Open(&refusing, 3);
    ASSERT_NE(sink, nullptr);
    EXPECT_EQ(sink->Close(std::chrono::seconds(5)), 0u);
    EXPECT_EQ(sink->Counts().failed, 3u);
    EXPECT_EQ(sink->Counts().dropped, 0u);
    EXPECT_EQ(refusing.calls, 3);
  }
  // A smaller bound at the next start drops the oldest of what was spooled.
  {
    ScriptedTransport::Script stuck;
    stuck.next = DeliveryOutcome::kRetry;
    auto sink = Open(&stuck, 10);
    for (uint64_t seq = 10; seq <= 14; ++seq) sink->Offer(Notice(seq));
    EXPECT_EQ(sink->Close(std::chrono::milliseconds(20)), 5u);
  }
  ScriptedTransport::Script up;
  auto sink = Open(&up, 2);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(sink->Close(std::chrono::seconds(5)), 0u);
  EXPECT_EQ(sink->Counts().dropped, 3u);
  EXPECT_EQ(up.delivered, (std::vector<std::string>{IdOf(13), IdOf(14)}));
}

// Holds every delivery until the test releases them; then says "retry" (the hub is down).
class HeldTransport final : public FindingTransport {
 public:
  struct Hold {
    std::mutex mu;
    std::condition_variable cv;
    int entered = 0;
    bool released = false;
  };
  explicit HeldTransport(Hold* h) : h_(h) {}
  DeliveryOutcome Deliver(const FindingMessage&) override {
    std::unique_lock lock(h_->mu);
    ++h_->entered;
    h_->cv.notify_all();
    h_->cv.wait(lock, [&] { return h_->released; });
    return DeliveryOutcome::kRetry;
  }
  std::string Endpoint() const override { return "held"; }

 private:
  Hold* h_;
};

// The sender holds the oldest checkpoint in a delivery that does not return while three more
// arrive beyond capacity: the one in flight and the two after it are dropped, each counted once
// (on a loaded machine a delivery can take as long as a burst of checkpoints).
TEST_F(CheckpointSpoolTest, EveryCheckpointDroppedDuringOneDeliveryIsCounted) {
  HeldTransport::Hold hold;
  auto sink = OpenWith(std::make_unique<HeldTransport>(&hold), 2);
  ASSERT_NE(sink, nullptr);
  sink->Offer(Notice(2));
  {
    std::unique_lock lock(hold.mu);
    ASSERT_TRUE(hold.cv.wait_for(lock, std::chrono::seconds(10), [&] { return hold.entered == 1; }));
  }
  for (uint64_t seq = 3; seq <= 6; ++seq) sink->Offer(Notice(seq));  // 4, 5, 6 drop 2, 3, 4
  // 3 and 4 are counted at once; 2, in flight, once its delivery ends.
  EXPECT_EQ(sink->Counts().dropped, 2u);
  EXPECT_EQ(sink->Counts().pending, 2u);
  {
    std::lock_guard lock(hold.mu);
    hold.released = true;
  }
  hold.cv.notify_all();
  EXPECT_EQ(sink->Close(std::chrono::milliseconds(20)), 2u);  // 5 and 6 wait for the next run
  EXPECT_EQ(sink->Counts().dropped, 3u);
  EXPECT_EQ(sink->Counts().sent, 0u);
}

TEST_F(CheckpointSpoolTest, DamagedSpoolRecordsAreCountedAndTheRestStillSent) {
  ScriptedTransport::Script down;
  down.next = DeliveryOutcome::kRetry;
  {
    auto sink = Open(&down);
    for (uint64_t seq = 2; seq <= 4; ++seq) sink->Offer(Notice(seq));
    EXPECT_EQ(sink->Close(std::chrono::milliseconds(20)), 3u);
  }
  // Flip a byte inside the second record's payload: its checksum fails.
  std::filesystem::path segment;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "spool")) {
    if (e.path().extension() == ".seg") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  std::string bytes;
  {
    std::ifstream in(segment, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t second = bytes.find("\"seq\":3");
  ASSERT_NE(second, std::string::npos);
  bytes[second + 1] ^= 0x20;
  {
    std::ofstream out(segment, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  ScriptedTransport::Script up;
  pipeline::RecoveryReport report;
  auto sink = Open(&up, 1024, &report);
  ASSERT_NE(sink, nullptr);
  EXPECT_FALSE(report.clean());
  EXPECT_EQ(sink->Close(std::chrono::seconds(5)), 0u);
  EXPECT_EQ(sink->Counts().damaged, 1u);
  EXPECT_EQ(up.delivered, (std::vector<std::string>{IdOf(2), IdOf(4)}));
}

TEST_F(CheckpointSpoolTest, BadOptionsAreRefused) {
  ScriptedTransport::Script s;
  core::Registry r;
  CheckpointSinkOptions o;
  o.host = "gw-1";
  auto no_dir = CheckpointSink::Open(o, std::make_unique<ScriptedTransport>(&s), r, nullptr);
  ASSERT_FALSE(no_dir.has_value());
  EXPECT_NE(no_dir.error().message().find("spool_dir"), std::string::npos);
  o.spool_dir = (dir_ / "spool").string();
  o.capacity = 0;
  EXPECT_FALSE(
      CheckpointSink::Open(o, std::make_unique<ScriptedTransport>(&s), r, nullptr).has_value());
  o.capacity = 4;
  auto first = CheckpointSink::Open(o, std::make_unique<ScriptedTransport>(&s), r, nullptr);
  ASSERT_TRUE(first.has_value());
  // The spool is held by the first sink.
  core::Registry r2;
  auto second = CheckpointSink::Open(o, std::make_unique<ScriptedTransport>(&s), r2, nullptr);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), core::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace vigil::agent
