// Tampering tests: flip bytes, drop, reorder, re-hash and truncate records, checkpoints and
// segments of a real log, and check that the verifier names the exact record and the reason.

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>

#include "audit/internal/format.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace vigil::audit {
namespace {

using testing::Located;

class AuditVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuditOptions o;
    o.checkpoint_every = 7;
    o.segment_bytes = 4096;  // several segments
    o.fsync = FsyncMode::kNever;
    testing::WriteLog(dir_, 60, o, *signer_, clock_);
    records_ = testing::LocateRecords(dir_);
    ASSERT_GT(records_.size(), 60u);
    auto segs = ListSegments(dir_);
    ASSERT_TRUE(segs.has_value());
    for (const std::string& s : *segs) original_[s] = testing::ReadFile(dir_ + "/" + s);
    ASSERT_GE(original_.size(), 3u) << "the fixture wants at least three segments";
  }

  // Puts every segment back as it was written.
  void Restore() {
    for (const auto& [name, bytes] : original_) {
      if (testing::ReadFile(dir_ + "/" + name) != bytes) {
        testing::WriteFile(dir_ + "/" + name, bytes);
      }
    }
  }
  std::string Path(const Located& at) const { return dir_ + "/" + at.segment; }
  // Applies `edit` to the bytes of the segment holding `at`.
  template <typename Edit>
  void EditSegment(const Located& at, Edit edit) {
    std::string bytes = testing::ReadFile(Path(at));
    edit(bytes);
    testing::WriteFile(Path(at), bytes);
  }
  void ExpectProblem(Finding finding, uint64_t seq, const std::string& what) {
    const VerifyReport r = testing::Verify(dir_);
    ASSERT_FALSE(r.ok()) << what << ": verify passed";
    EXPECT_EQ(FindingName(r.problem->finding), FindingName(finding)) << what << ": "
                                                                     << r.problem->detail;
    EXPECT_EQ(r.problem->seq, seq) << what << ": " << r.problem->detail;
  }
  uint64_t LastSeq() const { return records_.rbegin()->first; }

  testing::TempDir tmp_;
  std::string dir_ = tmp_.Join("audit");
  core::FakeClock clock_;
  std::unique_ptr<Ed25519Signer> signer_ = Ed25519Signer::Generate();
  std::map<uint64_t, Located> records_;
  std::map<std::string, std::string> original_;
};

TEST_F(AuditVerifyTest, IntactLogVerifies) {
  const VerifyReport r = testing::Verify(dir_);
  ASSERT_TRUE(r.ok()) << r.problem->detail;
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, LastSeq());
  EXPECT_EQ(r.records, records_.size());
  EXPECT_GE(r.checkpoints, 9u);
  EXPECT_TRUE(r.clean_close);
  EXPECT_FALSE(r.torn_tail.has_value());
  EXPECT_EQ(r.signed_through, LastSeq() - 1);  // the final checkpoint covers all before it
  ASSERT_EQ(r.key_ids.size(), 1u);
  EXPECT_EQ(r.key_ids[0], KeyIdString(signer_->public_key().id));
  const PublicKey trusted = signer_->public_key();
  EXPECT_TRUE(testing::Verify(dir_, &trusted).ok());
}

TEST_F(AuditVerifyTest, FlippedByteAnywhereNamesTheRecord) {
  for (const auto& [seq, at] : records_) {
    // Length, sequence number, type, previous hash, header check, payload, own hash.
    for (uint64_t pos : {uint64_t{0}, uint64_t{5}, uint64_t{20}, uint64_t{30}, uint64_t{57},
                         uint64_t{internal::kRecordHeaderSize + 2}, at.size - 1}) {
      Restore();
      EditSegment(at, [&](std::string& b) { b[at.offset + pos] ^= 0x10; });
      ExpectProblem(Finding::kAltered, seq,
                    "byte " + std::to_string(pos) + " of record " + std::to_string(seq));
    }
  }
}

TEST_F(AuditVerifyTest, DroppedRecordOrCheckpointIsMissing) {
  int checkpoints = 0;
  for (const auto& [seq, at] : records_) {
    if (seq == LastSeq()) continue;  // a cut at the end of the log is not visible (see verify.h)
    Restore();
    EditSegment(at, [&](std::string& b) { b.erase(at.offset, at.size); });
    ExpectProblem(Finding::kMissing, seq, "dropped record " + std::to_string(seq));
    checkpoints += at.type == RecordType::kCheckpoint;
  }
  EXPECT_GE(checkpoints, 8);
}

TEST_F(AuditVerifyTest, SwappedNeighboursAreReordered) {
  int swaps = 0;
  for (const auto& [seq, at] : records_) {
    auto next = records_.find(seq + 1);
    if (next == records_.end() || next->second.segment != at.segment) continue;
    Restore();
    EditSegment(at, [&](std::string& b) {
      const std::string first = b.substr(at.offset, at.size);
      const std::string second = b.substr(next->second.offset, next->second.size);
      b.replace(at.offset, at.size + next->second.size, second + first);
    });
    ExpectProblem(Finding::kReordered, seq, "swapped " + std::to_string(seq) + " and next");
    ++swaps;
  }
  EXPECT_GT(swaps, 40);
}

TEST_F(AuditVerifyTest, RecordMovedLaterIsReordered) {
  const Located& a = records_.at(10);
  const Located& c = records_.at(13);
  ASSERT_EQ(a.segment, c.segment);
  EditSegment(a, [&](std::string& b) {
    const std::string moved = b.substr(a.offset, a.size);
    b.insert(c.offset + c.size, moved);
    b.erase(a.offset, a.size);
  });
  ExpectProblem(Finding::kReordered, 10, "record 10 moved after 13");
}

TEST_F(AuditVerifyTest, RehashedRecordIsNamedByTheChain) {
  for (const auto& [seq, at] : records_) {
    if (seq == LastSeq() || at.type != RecordType::kDecision) continue;
    Restore();
    testing::RewriteRecord(dir_, at, R"({"action":"allow","i":0})");
    ExpectProblem(Finding::kAltered, seq, "re-hashed record " + std::to_string(seq));
  }
}

TEST_F(AuditVerifyTest, ForgedCheckpointSignatureIsNamed) {
  const Located* cp = nullptr;
  uint64_t cp_seq = 0;
  for (const auto& [seq, at] : records_) {
    if (at.type == RecordType::kCheckpoint && seq > 20) {
      cp = &at;
      cp_seq = seq;
      break;
    }
  }
  ASSERT_NE(cp, nullptr);
  const std::string seg = testing::ReadFile(Path(*cp));
  const std::string payload(seg.substr(cp->offset + internal::kRecordHeaderSize,
                                       cp->size - internal::kRecordOverhead));
  nlohmann::json j = nlohmann::json::parse(payload);
  std::string sig = j["signature"];
  sig[10] = sig[10] == 'a' ? 'b' : 'a';
  j["signature"] = sig;
  testing::RewriteRecord(dir_, *cp, CanonicalJson(j));
  ExpectProblem(Finding::kBadSignature, cp_seq, "forged signature");

  // A checkpoint re-signed with another key passes only without a trusted key.
  Restore();
  auto other = Ed25519Signer::Generate();
  internal::Hash chain{};
  ASSERT_TRUE(internal::ParseHex(j["chain_hash"].get<std::string>(), chain.data(), 32));
  internal::RecordFields f;
  ASSERT_TRUE(internal::DecodeRecordHeader(std::string_view(seg).substr(cp->offset), &f));
  const Signature resigned =
      other->Sign(internal::CheckpointMessage(j["covers"].get<uint64_t>(), chain, f.time_ns));
  j["signature"] = internal::Hex(resigned);
  j["key_id"] = KeyIdString(other->public_key().id);
  j["public_key"] = internal::Hex(other->public_key().key);
  testing::RewriteRecord(dir_, *cp, CanonicalJson(j));
  // Without a trusted key the re-signed checkpoint is self-consistent; re-hashing it changed its
  // hash, so the record after it names the edit.
  const VerifyReport without_key = testing::Verify(dir_);
  ASSERT_FALSE(without_key.ok());
  EXPECT_EQ(without_key.problem->finding, Finding::kAltered);
  EXPECT_EQ(without_key.problem->seq, cp_seq);
  const PublicKey trusted = signer_->public_key();
  const VerifyReport with_key = testing::Verify(dir_, &trusted);
  ASSERT_FALSE(with_key.ok());
  // Every earlier checkpoint is by the trusted key, so the first failure is the re-signed one.
  EXPECT_EQ(FindingName(with_key.problem->finding), "bad-signature");
  EXPECT_EQ(with_key.problem->seq, cp_seq) << with_key.problem->detail;
}

TEST_F(AuditVerifyTest, UntrustedKeyIsRefused) {
  auto other = Ed25519Signer::Generate();
  const PublicKey wrong = other->public_key();
  const VerifyReport r = testing::Verify(dir_, &wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.problem->finding, Finding::kBadSignature);
  uint64_t first_cp = 0;
  for (const auto& [seq, at] : records_) {
    if (at.type == RecordType::kCheckpoint) {
      first_cp = seq;
      break;
    }
  }
  EXPECT_EQ(r.problem->seq, first_cp);
}

TEST_F(AuditVerifyTest, TruncatedLastSegmentIsATornTail) {
  const Located& last = records_.at(LastSeq());
  for (uint64_t keep : {uint64_t{1}, uint64_t{20}, uint64_t{59}, uint64_t{60}, last.size - 1}) {
    Restore();
    ASSERT_EQ(truncate(Path(last).c_str(), static_cast<off_t>(last.offset + keep)), 0);
    const VerifyReport r = testing::Verify(dir_);
    ASSERT_TRUE(r.ok()) << "kept " << keep << ": " << r.problem->detail;
    ASSERT_TRUE(r.torn_tail.has_value()) << "kept " << keep;
    EXPECT_EQ(r.torn_tail->seq, LastSeq()) << "kept " << keep;
    EXPECT_EQ(r.torn_tail->offset, last.offset);
    EXPECT_EQ(r.torn_tail->bytes, keep);
    EXPECT_EQ(r.last_seq, LastSeq() - 1);
  }
  // A zero-filled tail (a file extended without its data reaching the disk) is the same.
  Restore();
  EditSegment(last, [](std::string& b) { b.append(300, '\0'); });
  const VerifyReport z = testing::Verify(dir_);
  ASSERT_TRUE(z.ok());
  ASSERT_TRUE(z.torn_tail.has_value());
  EXPECT_EQ(z.torn_tail->seq, LastSeq() + 1);
}

TEST_F(AuditVerifyTest, TruncatedEarlierSegmentIsNamed) {
  const std::string first_segment = original_.begin()->first;
  uint64_t last_in_first = 0;
  for (const auto& [seq, at] : records_) {
    if (at.segment == first_segment) last_in_first = seq;
  }
  const Located& at = records_.at(last_in_first);
  ASSERT_EQ(truncate(Path(at).c_str(), static_cast<off_t>(at.offset + at.size - 5)), 0);
  ExpectProblem(Finding::kTruncated, last_in_first, "cut inside the first segment's last record");

  // Cut at a record boundary: the next segment shows what is missing.
  Restore();
  ASSERT_EQ(truncate(Path(at).c_str(), static_cast<off_t>(at.offset)), 0);
  ExpectProblem(Finding::kMissing, last_in_first, "first segment's last record cut off");

  // A header cut short.
  Restore();
  ASSERT_EQ(truncate(Path(at).c_str(), 30), 0);
  ExpectProblem(Finding::kTruncated, 1, "first segment's header cut short");
}

TEST_F(AuditVerifyTest, DeletedSegmentIsMissing) {
  auto it = std::next(original_.begin());
  uint64_t first = 0;
  ASSERT_TRUE(internal::ParseSegmentFileName(it->first, &first));
  ASSERT_EQ(unlink((dir_ + "/" + it->first).c_str()), 0);
  ExpectProblem(Finding::kMissing, first, "deleted second segment");
}

TEST_F(AuditVerifyTest, NonCanonicalPayloadIsMalformed) {
  const Located& at = records_.at(5);
  testing::RewriteRecord(dir_, at, R"({"i": 4, "action": "alert"})");
  // The chain also breaks at record 6, but record 5 fails first.
  ExpectProblem(Finding::kMalformed, 5, "payload with spaces");
}

TEST(AuditVerifyEmptyTest, DirectoryWithoutSegmentsIsNotFound) {
  testing::TempDir tmp;
  auto r = VerifyLog(tmp.path(), {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), core::StatusCode::kNotFound);
  auto missing = VerifyLog(tmp.Join("absent"), {});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), core::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vigil::audit
