#include "pipeline/spool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/internal/crc32c.h"
#include "test_util.h"

namespace vigil::pipeline {
namespace {

using testing::ListDir;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr size_t kSegmentHeader = 20;
constexpr size_t kRecordHeader = 16;

struct Replayed {
  std::vector<std::pair<uint64_t, std::string>> records;
  std::vector<uint64_t> seqs() const {
    std::vector<uint64_t> s;
    for (const auto& r : records) s.push_back(r.first);
    return s;
  }
};

std::unique_ptr<Spool> MustOpen(const std::string& dir, const SpoolOptions& o, Replayed* out,
                                RecoveryReport* report) {
  auto replay = [out](uint64_t seq, std::string_view rec) {
    if (out != nullptr) out->records.emplace_back(seq, std::string(rec));
    return core::Status::Ok();
  };
  auto spool = Spool::Open(dir, o, replay, report);
  EXPECT_TRUE(spool.has_value()) << spool.error().ToString();
  return spool.has_value() ? std::move(spool).value() : nullptr;
}

std::string Payload(uint64_t i, size_t size) {
  std::string p = "record-" + std::to_string(i) + "-";
  p.resize(size, static_cast<char>('a' + i % 26));
  return p;
}

SpoolOptions Fast() {
  SpoolOptions o;
  o.sync = SyncMode::kNever;  // these tests exercise format and recovery, not the disk
  return o;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t i = from; i <= to; ++i) v.push_back(i);
  return v;
}

TEST(Crc32cTest, MatchesKnownVectors) {
  EXPECT_EQ(internal::Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(internal::Crc32c("", 0), 0u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(internal::Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  const std::string s = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(internal::Crc32cExtend(internal::Crc32c(s.data(), 10), s.data() + 10, s.size() - 10),
            internal::Crc32c(s.data(), s.size()));
}

TEST(SpoolTest, FreshDirectoryStartsAtOne) {
  TempDir tmp;
  RecoveryReport report;
  auto spool = MustOpen(tmp.Join("spool"), Fast(), nullptr, &report);
  ASSERT_NE(spool, nullptr);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.next_seq, 1u);
  auto seq = spool->Append("first");
  ASSERT_TRUE(seq.has_value()) << seq.error().ToString();
  EXPECT_EQ(*seq, 1u);
}

TEST(SpoolTest, ReopenReplaysOnlyUnacknowledged) {
  TempDir tmp;
  const std::string dir = tmp.Join("spool");
  {
    auto spool = MustOpen(dir, Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 10; ++i) {
      auto seq = spool->Append(Payload(i, 40));
      ASSERT_TRUE(seq.has_value());
      ASSERT_EQ(*seq, i);
    }
    ASSERT_TRUE(spool->Ack(6).ok());
    ASSERT_TRUE(spool->Ack(3).ok()) << "a lower ack is a no-op";
    EXPECT_EQ(spool->acked_seq(), 6u);
  }
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(dir, Fast(), &got, &report);
  ASSERT_NE(spool, nullptr);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.acked_seq, 6u);
  EXPECT_EQ(report.records_skipped_acked, 6u);
  EXPECT_EQ(report.records_replayed, 4u);
  EXPECT_EQ(got.seqs(), Range(7, 10));
  for (const auto& [seq, rec] : got.records) EXPECT_EQ(rec, Payload(seq, 40));
  EXPECT_EQ(report.next_seq, 11u);
  EXPECT_EQ(*spool->Append("next"), 11u);
}

TEST(SpoolTest, EmptyRecordsRoundTrip) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    ASSERT_TRUE(spool->Append("").has_value());
    ASSERT_TRUE(spool->Append("x").has_value());
  }
  Replayed got;
  auto spool = MustOpen(tmp.path(), Fast(), &got, nullptr);
  ASSERT_EQ(got.records.size(), 2u);
  EXPECT_EQ(got.records[0].second, "");
  EXPECT_EQ(got.records[1].second, "x");
}

TEST(SpoolTest, ByteFlipInMiddleRecordIsReportedAndSkipped) {
  TempDir tmp;
  const size_t payload = 100;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(spool->Append(Payload(i, payload)).has_value());
  }
  const auto segs = ListDir(tmp.path(), ".seg");
  ASSERT_EQ(segs.size(), 1u);
  const std::string seg = tmp.Join(segs[0]);
  std::string bytes = ReadFile(seg);
  const size_t frame = kRecordHeader + payload;
  const size_t rec3 = kSegmentHeader + 2 * frame;
  bytes[rec3 + kRecordHeader + 50] ^= 0x01;
  WriteFile(seg, bytes);

  for (int pass = 0; pass < 2; ++pass) {
    Replayed got;
    RecoveryReport report;
    auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
    ASSERT_NE(spool, nullptr);
    ASSERT_EQ(report.damage.size(), 1u);
    const SpoolDamage& d = report.damage[0];
    EXPECT_EQ(d.kind, SpoolDamageKind::kCorruptRecords);
    EXPECT_EQ(d.segment, seg);
    EXPECT_EQ(d.offset, rec3);
    EXPECT_EQ(d.bytes, frame);
    EXPECT_EQ(d.records_lost, 1u);
    EXPECT_FALSE(d.truncated);
    EXPECT_EQ(report.corrupt_records, 1u);
    EXPECT_EQ(report.torn_tail_bytes, 0u);
    if (pass == 0) {
      EXPECT_EQ(got.seqs(), (std::vector<uint64_t>{1, 2, 4, 5}));
      EXPECT_EQ(*spool->Append("six"), 6u);
    } else {
      EXPECT_EQ(got.seqs(), (std::vector<uint64_t>{1, 2, 4, 5, 6}));
      EXPECT_EQ(got.records.back().second, "six");
    }
  }
}

TEST(SpoolTest, ByteFlipInLengthOfLastRecordIsCutOff) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(spool->Append(Payload(i, 30)).has_value());
  }
  const std::string seg = tmp.Join(ListDir(tmp.path(), ".seg").at(0));
  std::string bytes = ReadFile(seg);
  const size_t rec3 = kSegmentHeader + 2 * (kRecordHeader + 30);
  bytes[rec3 + 4] ^= 0x10;  // length field
  WriteFile(seg, bytes);
  {
    Replayed got;
    RecoveryReport report;
    auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
    ASSERT_EQ(report.damage.size(), 1u);
    EXPECT_TRUE(report.damage[0].truncated);
    EXPECT_EQ(report.damage[0].offset, rec3);
    EXPECT_EQ(report.damage[0].bytes, kRecordHeader + 30);
    EXPECT_EQ(got.seqs(), (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(ReadFile(seg).size(), rec3) << "the damaged tail is cut off";
    EXPECT_EQ(*spool->Append("again"), 3u);
  }
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(got.seqs(), Range(1, 3));
}

TEST(SpoolTest, TruncationMidRecordIsATornTailAndAppendsContinue) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(spool->Append(Payload(i, 64)).has_value());
  }
  const std::string seg = tmp.Join(ListDir(tmp.path(), ".seg").at(0));
  const size_t full = ReadFile(seg).size();
  ASSERT_EQ(truncate(seg.c_str(), static_cast<off_t>(full - 30)), 0);
  const size_t rec5 = kSegmentHeader + 4 * (kRecordHeader + 64);
  {
    Replayed got;
    RecoveryReport report;
    auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
    ASSERT_EQ(report.damage.size(), 1u);
    EXPECT_EQ(report.damage[0].kind, SpoolDamageKind::kTornTail);
    EXPECT_EQ(report.damage[0].offset, rec5);
    EXPECT_EQ(report.damage[0].bytes, kRecordHeader + 64 - 30);
    EXPECT_TRUE(report.damage[0].truncated);
    EXPECT_EQ(report.torn_tail_bytes, kRecordHeader + 64 - 30);
    EXPECT_EQ(report.corrupt_records, 0u);
    EXPECT_EQ(got.seqs(), Range(1, 4));
    EXPECT_EQ(*spool->Append("fresh"), 5u);
  }
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(got.seqs(), Range(1, 5));
  EXPECT_EQ(got.records.back().second, "fresh");
}

TEST(SpoolTest, TruncationInsideRecordHeaderIsATornTail) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 2; ++i) ASSERT_TRUE(spool->Append(Payload(i, 10)).has_value());
  }
  const std::string seg = tmp.Join(ListDir(tmp.path(), ".seg").at(0));
  const size_t rec2 = kSegmentHeader + kRecordHeader + 10;
  ASSERT_EQ(truncate(seg.c_str(), static_cast<off_t>(rec2 + 7)), 0);
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  ASSERT_EQ(report.damage.size(), 1u);
  EXPECT_EQ(report.damage[0].kind, SpoolDamageKind::kTornTail);
  EXPECT_EQ(report.torn_tail_bytes, 7u);
  EXPECT_EQ(got.seqs(), Range(1, 1));
}

TEST(SpoolTest, SegmentCutShortAtCreationIsRemoved) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    ASSERT_TRUE(spool->Append("one").has_value());
  }
  // A crash between creating the next segment and writing its header.
  WriteFile(tmp.Join("00000000000000000002.seg"), "VGSP");
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  ASSERT_EQ(report.damage.size(), 1u);
  EXPECT_EQ(report.damage[0].kind, SpoolDamageKind::kTornTail);
  EXPECT_EQ(report.damage[0].bytes, 4u);
  EXPECT_EQ(ListDir(tmp.path(), ".seg").size(), 1u);
  EXPECT_EQ(got.seqs(), Range(1, 1));
  EXPECT_EQ(*spool->Append("two"), 2u);
}

TEST(SpoolTest, BadSegmentHeaderIsReportedButRecordsSurvive) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(spool->Append(Payload(i, 10)).has_value());
  }
  const std::string seg = tmp.Join(ListDir(tmp.path(), ".seg").at(0));
  std::string bytes = ReadFile(seg);
  bytes[0] = 'X';
  WriteFile(seg, bytes);
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  ASSERT_EQ(report.damage.size(), 1u);
  EXPECT_EQ(report.damage[0].kind, SpoolDamageKind::kBadHeader);
  EXPECT_EQ(got.seqs(), Range(1, 3));
}

TEST(SpoolTest, SegmentsRollAndFullyAckedOnesAreDeleted) {
  TempDir tmp;
  SpoolOptions o = Fast();
  o.segment_bytes = kSegmentHeader + 3 * (kRecordHeader + 10);  // three 10-byte records each
  {
    auto spool = MustOpen(tmp.path(), o, nullptr, nullptr);
    for (uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(spool->Append(Payload(i, 10)).has_value());
    EXPECT_EQ(ListDir(tmp.path(), ".seg"),
              (std::vector<std::string>{"00000000000000000001.seg", "00000000000000000004.seg",
                                        "00000000000000000007.seg", "00000000000000000010.seg"}));
    EXPECT_EQ(spool->Stats().segments_created, 4u);
    ASSERT_TRUE(spool->Ack(5).ok());
    EXPECT_EQ(ListDir(tmp.path(), ".seg").size(), 3u) << "4..6 still holds 6";
    ASSERT_TRUE(spool->Ack(6).ok());
    EXPECT_EQ(ListDir(tmp.path(), ".seg").front(), "00000000000000000007.seg");
    ASSERT_TRUE(spool->Ack(10).ok());
    EXPECT_EQ(ListDir(tmp.path(), ".seg"), (std::vector<std::string>{"00000000000000000010.seg"}))
        << "the active segment stays";
    EXPECT_EQ(spool->Stats().segments_deleted, 3u);
  }
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), o, &got, &report);
  EXPECT_TRUE(report.clean());
  EXPECT_TRUE(got.records.empty());
  EXPECT_EQ(report.next_seq, 11u);
  for (uint64_t i = 11; i <= 13; ++i) EXPECT_EQ(*spool->Append(Payload(i, 10)), i);
  EXPECT_EQ(ListDir(tmp.path(), ".seg"),
            (std::vector<std::string>{"00000000000000000010.seg", "00000000000000000013.seg"}))
      << "appends continue in the reopened active segment until it is full";
}

TEST(SpoolTest, RecordLargerThanASegmentGetsItsOwn) {
  TempDir tmp;
  SpoolOptions o = Fast();
  o.segment_bytes = 64;
  {
    auto spool = MustOpen(tmp.path(), o, nullptr, nullptr);
    ASSERT_TRUE(spool->Append(std::string(200, 'x')).has_value());
    ASSERT_TRUE(spool->Append(std::string(200, 'y')).has_value());
  }
  EXPECT_EQ(ListDir(tmp.path(), ".seg").size(), 2u);
  Replayed got;
  auto spool = MustOpen(tmp.path(), o, &got, nullptr);
  ASSERT_EQ(got.records.size(), 2u);
  EXPECT_EQ(got.records[1].second, std::string(200, 'y'));
}

TEST(SpoolTest, RejectsBadCalls) {
  TempDir tmp;
  SpoolOptions o = Fast();
  o.max_record_bytes = 8;
  auto spool = MustOpen(tmp.path(), o, nullptr, nullptr);
  auto big = spool->Append("123456789");
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(big.error().message().find(tmp.path()), std::string::npos);
  EXPECT_EQ(spool->Ack(1).code(), core::StatusCode::kOutOfRange);
  ASSERT_TRUE(spool->Append("1").has_value());
  EXPECT_TRUE(spool->Ack(1).ok());
  EXPECT_EQ(spool->Ack(2).code(), core::StatusCode::kOutOfRange);

  SpoolOptions bad = Fast();
  bad.segment_bytes = 10;
  EXPECT_EQ(Spool::Open(tmp.Join("other"), bad, nullptr, nullptr).error().code(),
            core::StatusCode::kInvalidArgument);
}

TEST(SpoolTest, SecondOpenOfTheSameDirectoryFails) {
  TempDir tmp;
  auto first = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
  auto second = Spool::Open(tmp.path(), Fast(), nullptr, nullptr);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), core::StatusCode::kFailedPrecondition);
  first.reset();
  EXPECT_TRUE(Spool::Open(tmp.path(), Fast(), nullptr, nullptr).has_value());
}

TEST(SpoolTest, MissingParentIsNotFound) {
  TempDir tmp;
  auto s = Spool::Open(tmp.Join("no/such/dir"), Fast(), nullptr, nullptr);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), core::StatusCode::kNotFound);
  EXPECT_NE(s.error().message().find("no/such/dir"), std::string::npos) << s.error().message();
}

TEST(SpoolTest, ReplayErrorFailsOpen) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(spool->Append("r").has_value());
  }
  auto s = Spool::Open(
      tmp.path(), Fast(),
      [](uint64_t seq, std::string_view) {
        return seq == 2 ? core::Unavailable("sink down") : core::Status::Ok();
      },
      nullptr);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), core::StatusCode::kUnavailable);
  EXPECT_NE(s.error().message().find("replaying seq 2"), std::string::npos) << s.error().message();
}

TEST(SpoolTest, CorruptAckFileReplaysEverything) {
  TempDir tmp;
  {
    auto spool = MustOpen(tmp.path(), Fast(), nullptr, nullptr);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(spool->Append("r").has_value());
    ASSERT_TRUE(spool->Ack(3).ok());
  }
  std::string ack = ReadFile(tmp.Join("ACK"));
  ASSERT_EQ(ack.size(), 20u);
  ack[9] ^= 0x40;
  WriteFile(tmp.Join("ACK"), ack);
  Replayed got;
  RecoveryReport report;
  auto spool = MustOpen(tmp.path(), Fast(), &got, &report);
  EXPECT_TRUE(report.ack_file_corrupt);
  EXPECT_FALSE(report.clean());
  EXPECT_EQ(got.seqs(), Range(1, 4)) << "at-least-once: replay rather than lose";
}

TEST(SpoolTest, EverySyncModeRoundTrips) {
  for (SyncMode mode : {SyncMode::kAlways, SyncMode::kEveryN, SyncMode::kNever}) {
    TempDir tmp;
    SpoolOptions o;
    o.sync = mode;
    o.sync_every = 3;
    {
      auto spool = MustOpen(tmp.path(), o, nullptr, nullptr);
      for (uint64_t i = 1; i <= 7; ++i) ASSERT_TRUE(spool->Append(Payload(i, 8)).has_value());
      ASSERT_TRUE(spool->Sync().ok());
      const SpoolStats st = spool->Stats();
      EXPECT_EQ(st.records_appended, 7u);
      if (mode == SyncMode::kAlways) {
        EXPECT_GE(st.syncs, 7u);
      } else if (mode == SyncMode::kEveryN) {
        EXPECT_EQ(st.syncs, 3u);  // after 3, 6, and Sync()
      }
    }
    Replayed got;
    auto spool = MustOpen(tmp.path(), o, &got, nullptr);
    EXPECT_EQ(got.seqs(), Range(1, 7));
  }
}

}  // namespace
}  // namespace vigil::pipeline
