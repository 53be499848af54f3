#include "audit/audit_log.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "audit/internal/format.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace vigil::audit {
namespace {

struct Seen {
  uint64_t seq;
  RecordType type;
  nlohmann::json payload;
};

std::vector<Seen> ReadAll(const std::string& dir) {
  std::vector<Seen> out;
  auto r = VerifyLog(dir, {}, [&](const RecordView& v) {
    out.push_back({v.seq, v.type, nlohmann::json::parse(v.payload)});
    return true;
  });
  EXPECT_TRUE(r.has_value());
  if (r.has_value()) {
    EXPECT_TRUE(r->ok()) << r->problem->detail;
  }
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  AuditOptions Options() const {
    AuditOptions o;
    o.fsync = FsyncMode::kNever;
    return o;
  }
  testing::TempDir tmp_;
  std::string dir_ = tmp_.Join("audit");
  core::FakeClock clock_;
  std::unique_ptr<Ed25519Signer> signer_ = Ed25519Signer::Generate();
};

TEST_F(AuditLogTest, WritesOpenRecordsCloseAndFinalCheckpoint) {
  OpenReport report;
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_, &report);
  ASSERT_TRUE(log.has_value()) << log.error().ToString();
  EXPECT_TRUE(report.created);
  ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"n", 1}}).ok());
  ASSERT_TRUE((*log)->Append(RecordType::kModelChange, {{"n", 2}}).ok());
  ASSERT_TRUE((*log)->Close().ok());
  const auto seen = ReadAll(dir_);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].type, RecordType::kLogOpen);
  EXPECT_EQ(seen[0].payload["previous"], "none");
  EXPECT_EQ(seen[1].type, RecordType::kDecision);
  EXPECT_EQ(seen[1].payload["n"], 1);
  EXPECT_EQ(seen[2].type, RecordType::kModelChange);
  EXPECT_EQ(seen[3].type, RecordType::kLogClose);
  EXPECT_EQ(seen[4].type, RecordType::kCheckpoint);
  EXPECT_EQ(seen[4].payload["covers"], 4);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].seq, i + 1);
}

TEST_F(AuditLogTest, RefusesInternalTypesAndAppendsAfterClose) {
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ((*log)->Append(RecordType::kCheckpoint, {}).code(),
            core::StatusCode::kInvalidArgument);
  EXPECT_EQ((*log)->Append(RecordType::kLogOpen, {}).code(), core::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*log)->Close().ok());
  EXPECT_EQ((*log)->Append(RecordType::kDecision, {}).code(),
            core::StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*log)->Close().ok());
}

TEST_F(AuditLogTest, CheckpointsEveryNRecords) {
  AuditOptions o = Options();
  o.checkpoint_every = 5;
  testing::WriteLog(dir_, 23, o, *signer_, clock_);
  const auto seen = ReadAll(dir_);
  uint64_t since = 0;
  int checkpoints = 0;
  for (const Seen& s : seen) {
    if (s.type == RecordType::kCheckpoint) {
      EXPECT_EQ(s.payload["covers"], s.seq - 1);
      EXPECT_TRUE(since == 5 || s.seq == seen.back().seq) << "checkpoint after " << since;
      since = 0;
      ++checkpoints;
    } else {
      ++since;
    }
  }
  EXPECT_EQ(checkpoints, 5);  // 26 records before the final checkpoint: 5 by count + 1 final
}

// on_checkpoint hands each checkpoint's fields over once written, in order, the same as the log
// holds them; VerifyCheckpointNotice accepts them and refuses any altered field.
TEST_F(AuditLogTest, AnnouncesEachCheckpointWithTheFieldsItWrote) {
  AuditOptions o = Options();
  o.checkpoint_every = 4;
  std::vector<CheckpointNotice> notices;  // the writer thread's until Close() returns
  o.on_checkpoint = [&](const CheckpointNotice& n) { notices.push_back(n); };
  testing::WriteLog(dir_, 9, o, *signer_, clock_);
  std::vector<Seen> checkpoints;
  for (const Seen& s : ReadAll(dir_)) {
    if (s.type == RecordType::kCheckpoint) checkpoints.push_back(s);
  }
  ASSERT_EQ(notices.size(), checkpoints.size());
  ASSERT_GE(notices.size(), 3u);
  for (size_t i = 0; i < notices.size(); ++i) {
    const CheckpointNotice& n = notices[i];
    EXPECT_EQ(n.seq, checkpoints[i].seq);
    EXPECT_EQ(n.covers, n.seq - 1);
    EXPECT_EQ(n.chain_hash, checkpoints[i].payload["chain_hash"]);
    EXPECT_EQ(n.signature, checkpoints[i].payload["signature"]);
    EXPECT_EQ(n.key_id, KeyIdString(signer_->public_key().id));
    EXPECT_TRUE(VerifyCheckpointNotice(n).ok()) << VerifyCheckpointNotice(n).ToString();
  }
  CheckpointNotice bad = notices[0];
  bad.time_ns += 1;  // the time is signed
  EXPECT_EQ(VerifyCheckpointNotice(bad).code(), core::StatusCode::kInvalidArgument);
  bad = notices[0];
  bad.chain_hash[0] = bad.chain_hash[0] == 'a' ? 'b' : 'a';
  EXPECT_NE(VerifyCheckpointNotice(bad).message().find("does not verify"), std::string::npos);
  bad = notices[0];
  bad.signature = "zz";
  EXPECT_NE(VerifyCheckpointNotice(bad).message().find("not hex"), std::string::npos);
}

TEST_F(AuditLogTest, CheckpointsWhenRecordsGetOld) {
  AuditOptions o = Options();
  o.checkpoint_every = 1000;
  o.checkpoint_seconds = 10;
  auto log = AuditLog::Open(dir_, o, *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"n", 1}}).ok());
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->Stats().checkpoints, 0u);
  clock_.Advance(int64_t{11} * 1'000'000'000);
  ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"n", 2}}).ok());
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->Stats().checkpoints, 1u);
  ASSERT_TRUE((*log)->Close().ok());
  const auto seen = ReadAll(dir_);
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[3].type, RecordType::kCheckpoint);
  EXPECT_EQ(seen[3].payload["covers"], 3);
}

TEST_F(AuditLogTest, ReopenContinuesTheChain) {
  testing::WriteLog(dir_, 3, Options(), *signer_, clock_);
  OpenReport report;
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_, &report);
  ASSERT_TRUE(log.has_value()) << log.error().ToString();
  EXPECT_FALSE(report.created);
  EXPECT_TRUE(report.previous_clean);
  EXPECT_EQ(report.last_seq, 6u);
  ASSERT_TRUE((*log)->Append(RecordType::kModeChange, {{"to", "monitor"}}).ok());
  ASSERT_TRUE((*log)->Close().ok());
  const auto seen = ReadAll(dir_);
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen[6].type, RecordType::kLogOpen);
  EXPECT_EQ(seen[6].payload["previous"], "clean");
  EXPECT_EQ(seen[6].payload["after_seq"], 6);
  EXPECT_EQ(seen[7].type, RecordType::kModeChange);
}

TEST_F(AuditLogTest, TornTailIsCutAndTheChainContinues) {
  testing::WriteLog(dir_, 4, Options(), *signer_, clock_);
  auto segs = ListSegments(dir_);
  ASSERT_TRUE(segs.has_value());
  const std::string last = dir_ + "/" + segs->back();
  // The first 70 bytes of a real record, as a write cut short by a crash leaves them.
  std::string frame;
  internal::RecordFields f;
  f.seq = 8;
  f.type = 1;
  internal::AppendRecord(f, R"({"n":8})", &frame);
  testing::WriteFile(last, testing::ReadFile(last) + frame.substr(0, 70));
  const VerifyReport before = testing::Verify(dir_);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(before.torn_tail.has_value());
  EXPECT_EQ(before.torn_tail->seq, 8u);

  OpenReport report;
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_, &report);
  ASSERT_TRUE(log.has_value()) << log.error().ToString();
  EXPECT_EQ(report.torn_bytes, 70u);
  EXPECT_FALSE(report.previous_clean);
  EXPECT_EQ(report.last_seq, 7u);
  ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"n", 9}}).ok());
  ASSERT_TRUE((*log)->Close().ok());
  const VerifyReport after = testing::Verify(dir_);
  ASSERT_TRUE(after.ok()) << after.problem->detail;
  EXPECT_FALSE(after.torn_tail.has_value());
  const auto seen = ReadAll(dir_);
  EXPECT_EQ(seen[7].type, RecordType::kLogOpen);
  EXPECT_EQ(seen[7].payload["previous"], "unclean");
  EXPECT_EQ(seen[7].payload["torn_bytes"], 70);
}

TEST_F(AuditLogTest, DamagedLastSegmentIsNotWrittenTo) {
  testing::WriteLog(dir_, 4, Options(), *signer_, clock_);
  const auto at = testing::LocateRecords(dir_).at(3);
  const std::string path = dir_ + "/" + at.segment;
  std::string bytes = testing::ReadFile(path);
  bytes[at.offset + internal::kRecordHeaderSize + 1] ^= 1;
  testing::WriteFile(path, bytes);
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code(), core::StatusCode::kDataLoss);
  EXPECT_NE(log.error().message().find("record 3"), std::string::npos) << log.error().message();
  EXPECT_EQ(testing::ReadFile(path), bytes) << "recovery must not touch a damaged log";
}

TEST_F(AuditLogTest, SecondWriterIsRefused) {
  auto first = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_TRUE(first.has_value());
  auto second = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), core::StatusCode::kFailedPrecondition);
}

TEST_F(AuditLogTest, RollsSegmentsAndEveryFsyncModeVerifies) {
  for (FsyncMode mode : {FsyncMode::kBatch, FsyncMode::kInterval, FsyncMode::kNever}) {
    const std::string dir = tmp_.Join(std::string(FsyncModeName(mode)));
    AuditOptions o;
    o.fsync = mode;
    o.fsync_interval_ms = 5;
    o.segment_bytes = 4096;
    o.checkpoint_every = 16;
    auto log = AuditLog::Open(dir, o, *signer_, core::SystemClock::Get());
    ASSERT_TRUE(log.has_value());
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"i", i}, {"pad", std::string(40, 'x')}})
                      .ok());
      if (i % 50 == 0) {
        ASSERT_TRUE((*log)->Flush().ok());
      }
    }
    ASSERT_TRUE((*log)->Flush().ok());
    const AuditStats s = (*log)->Stats();
    EXPECT_EQ(s.appended, 200u);
    EXPECT_GE(s.written, 201u);
    if (mode == FsyncMode::kNever) {
      EXPECT_EQ(s.syncs, 0u);
    } else {
      EXPECT_GT(s.syncs, 0u);
    }
    ASSERT_TRUE((*log)->Close().ok());
    const VerifyReport r = testing::Verify(dir);
    ASSERT_TRUE(r.ok()) << FsyncModeName(mode) << ": " << r.problem->detail;
    EXPECT_GT(r.segments, 3u) << FsyncModeName(mode);
  }
}

TEST_F(AuditLogTest, FlushedRecordsAreReadableWhileOpen) {
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  ASSERT_TRUE((*log)->Append(RecordType::kEscalation, {{"to", "hub"}}).ok());
  ASSERT_TRUE((*log)->Flush().ok());
  const auto seen = ReadAll(dir_);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].type, RecordType::kEscalation);
}

TEST_F(AuditLogTest, ConcurrentAppendersThroughATinyQueueLoseNothing) {
  AuditOptions o = Options();
  o.queue_capacity = 2;
  o.max_batch = 3;
  o.checkpoint_every = 50;
  auto log = AuditLog::Open(dir_, o, *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        EXPECT_TRUE((*log)->Append(RecordType::kDecision, {{"t", t}, {"i", i}}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE((*log)->Close().ok());
  std::vector<int> next(4, 0);
  int decisions = 0;
  for (const Seen& s : ReadAll(dir_)) {
    if (s.type != RecordType::kDecision) continue;
    const int t = s.payload["t"];
    EXPECT_EQ(s.payload["i"], next[static_cast<size_t>(t)]++) << "thread " << t << " in order";
    ++decisions;
  }
  EXPECT_EQ(decisions, 1200);
}

// Records go through several queue blocks (max_batch 7) and batches larger than the writer's
// 64 KiB write() pieces; payloads given already canonical (AppendCanonical) and as values
// interleave in order, and the log verifies.
TEST_F(AuditLogTest, CanonicalAndValuePayloadsAcrossBlocksAndWritePieces) {
  AuditOptions o = Options();
  o.max_batch = 7;
  o.queue_capacity = 100000;
  auto log = AuditLog::Open(dir_, o, *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  const std::string pad(30000, 'x');  // a few of these fill a 64 KiB piece
  for (int i = 0; i < 200; ++i) {
    const nlohmann::json value = {{"i", i}, {"pad", i % 10 == 0 ? pad : std::string()}};
    if (i % 2 == 0) {
      ASSERT_TRUE((*log)->AppendCanonical(RecordType::kDecision, CanonicalJson(value)).ok());
    } else {
      ASSERT_TRUE((*log)->Append(RecordType::kEnforcement, value).ok());
    }
  }
  EXPECT_EQ((*log)->AppendCanonical(RecordType::kCheckpoint, "{}").code(),
            core::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*log)->Flush().ok());
  const AuditStats stats = (*log)->Stats();
  EXPECT_EQ(stats.appended, 200u);
  EXPECT_GE(stats.batches, 200u / 7);
  ASSERT_TRUE((*log)->Close().ok());
  int next = 0;
  for (const Seen& s : ReadAll(dir_)) {
    if (s.type != RecordType::kDecision && s.type != RecordType::kEnforcement) continue;
    EXPECT_EQ(s.payload["i"], next);
    EXPECT_EQ(s.type, next % 2 == 0 ? RecordType::kDecision : RecordType::kEnforcement);
    EXPECT_EQ(s.payload["pad"].get<std::string>().size(), next % 10 == 0 ? pad.size() : 0u);
    ++next;
  }
  EXPECT_EQ(next, 200);
}

TEST_F(AuditLogTest, OversizedPayloadIsReplacedByItsDigest) {
  auto log = AuditLog::Open(dir_, Options(), *signer_, clock_);
  ASSERT_TRUE(log.has_value());
  ASSERT_TRUE(
      (*log)->Append(RecordType::kDecision, {{"big", std::string(internal::kMaxPayloadBytes, 'a')}})
          .ok());
  ASSERT_TRUE((*log)->Close().ok());
  const auto seen = ReadAll(dir_);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_TRUE(seen[1].payload.contains("oversized_payload_bytes"));
  EXPECT_EQ(seen[1].payload["sha256"].get<std::string>().size(), 64u);
}

TEST(AuditNamesTest, RecordTypesAndModesRoundTrip) {
  for (uint16_t i = 1; i <= kMaxRecordType; ++i) {
    RecordType t{};
    ASSERT_TRUE(ParseRecordType(RecordTypeName(static_cast<RecordType>(i)), &t));
    EXPECT_EQ(static_cast<uint16_t>(t), i);
  }
  RecordType t{};
  EXPECT_FALSE(ParseRecordType("decisions", &t));
  FsyncMode m{};
  EXPECT_TRUE(ParseFsyncMode("interval", &m));
  EXPECT_EQ(m, FsyncMode::kInterval);
  EXPECT_FALSE(ParseFsyncMode("always", &m));
}

}  // namespace
}  // namespace vigil::audit
