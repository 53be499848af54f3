#pragma once

// Reading and verifying an audit log (format: docs/audit-log-format.md). The verifier walks the
// segments in sequence order and stops at the first record that breaks a rule, naming it and the
// reason:
//   altered        the record's bytes no longer hash to the hash stored with it, or its hash
//                  differs from the previous-record hash the next record holds, or a checkpoint
//                  signs a chain hash the records before it no longer have
//   missing        a sequence number (a record or a checkpoint) is absent
//   reordered      a record appears before one with a lower sequence number, or twice
//   truncated      a segment other than the last ends inside a record, or a header is cut short
//   bad-signature  a checkpoint's Ed25519 signature does not verify, or (with a trusted key) it
//                  was made by another key
//   malformed      hashes match but the content breaks the format (unknown type, non-canonical
//                  JSON payload, a checkpoint that covers the wrong record, bad segment header)
// An incomplete record at the very end of the last segment is what a crash leaves: it is
// reported as a torn tail and is not a problem (every record before it verifies).
//
// What the log alone cannot show: records cut off at a record boundary at the end of the log, or
// a rewritten tail after the last checkpoint by someone who can recompute SHA-256 (checkpoints
// cannot be forged without the key). Keep checkpoints elsewhere (e.g. the hub) to close that.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.h"
#include "audit/internal/format.h"
#include "audit/signer.h"
#include "core/status.h"

namespace vigil::audit {

enum class Finding : uint8_t { kAltered, kMissing, kReordered, kTruncated, kBadSignature, kMalformed };
// "altered", "missing", "reordered", "truncated", "bad-signature", "malformed".
std::string_view FindingName(Finding f);

struct Problem {
  Finding finding = Finding::kAltered;
  uint64_t seq = 0;      // the first bad record's sequence number (where it should have been)
  std::string segment;   // file name of the segment
  uint64_t offset = 0;   // byte offset in the segment
  std::string detail;    // why, in one sentence
};

struct TornTail {
  std::string segment;
  uint64_t offset = 0;   // where the incomplete record starts
  uint64_t bytes = 0;    // bytes from there to the end of the file
  uint64_t seq = 0;      // the sequence number the incomplete record would have had
};

// One record as the verifier saw it; views are valid during the callback only.
struct RecordView {
  uint64_t seq = 0;
  int64_t time_ns = 0;
  RecordType type = RecordType::kDecision;
  std::string_view payload;
  std::string_view segment;
  uint64_t offset = 0;
};

struct VerifyOptions {
  // When set, every checkpoint must be signed by this key (id and key). Otherwise each
  // checkpoint's signature is checked against the public key it names, which catches damage
  // and forgery by someone without a key but not a wholesale re-signing with another key.
  std::optional<PublicKey> key;
  bool check_signatures = true;
  bool check_payloads = true;  // JSON validity and canonical form of every payload
  // Start mid-log: take the first record's sequence number and previous hash as given
  // (crash recovery of the last segment). Otherwise the log must start at record 1.
  bool start_anywhere = false;
};

struct VerifyReport {
  uint64_t segments = 0;
  uint64_t records = 0;        // all types, checkpoints included
  uint64_t checkpoints = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;       // of the last intact record (0: none)
  uint64_t signed_through = 0; // the last record a valid checkpoint vouches for (0: none)
  uint64_t last_checkpoint = 0;  // sequence number of the last valid checkpoint (0: none)
  bool clean_close = false;    // the log ends with log-close and its checkpoint
  std::vector<std::string> key_ids;  // keys that signed checkpoints, in order of appearance
  std::optional<TornTail> torn_tail;
  std::optional<Problem> problem;  // the first one; verification stopped there
  bool ok() const { return !problem.has_value(); }
};

// Feeds segments one at a time (in sequence order), so that a caller can verify bytes held in
// memory (the fuzz target, crash recovery) as well as files.
class LogVerifier {
 public:
  // Called for every intact record, in order; returning false stops the walk (not a problem).
  using OnRecord = std::function<bool(const RecordView&)>;
  explicit LogVerifier(VerifyOptions options, OnRecord on_record = {});

  // Returns false when verification stopped (a problem, or on_record said stop); later segments
  // must not be fed then. `last`: this is the final segment (only it may have a torn tail).
  bool FeedSegment(std::string_view name, std::string_view bytes, bool last);

  const VerifyReport& report() const { return report_; }
  const internal::Hash& last_hash() const { return prev_hash_; }
  RecordType last_type() const { return last_type_; }
  // Byte offset just past the last intact record of the last segment fed.
  uint64_t end_offset() const { return end_offset_; }

 private:
  bool Fail(Finding f, uint64_t seq, std::string_view segment, uint64_t offset,
            std::string detail);
  bool CheckCheckpoint(uint64_t seq, int64_t time_ns, std::string_view payload,
                       std::string_view segment, uint64_t offset);
  // Looks ahead in `bytes` from `offset` for an intact record header with sequence `seq`;
  // returns its offset or 0.
  static uint64_t FindAhead(std::string_view bytes, uint64_t offset, uint64_t seq);

  VerifyOptions options_;
  OnRecord on_record_;
  VerifyReport report_;
  bool started_ = false;
  bool stopped_ = false;
  uint64_t expected_ = 1;
  internal::Hash prev_hash_{};
  RecordType last_type_ = RecordType::kLogOpen;
  RecordType prev_type_ = RecordType::kLogOpen;
  uint64_t end_offset_ = 0;
};

// Verifies the log in `dir` (every "*.vlog" segment, in sequence order). Fails only when `dir`
// cannot be read or holds no segment (kNotFound); what is wrong with the log is in the report.
core::Result<VerifyReport> VerifyLog(const std::string& dir, const VerifyOptions& options,
                                     const LogVerifier::OnRecord& on_record = {});

// A checkpoint held apart from its log (a copy at the hub): OK when its fields parse and its
// Ed25519 signature over (covers, chain_hash, time_ns) verifies by the key it names (whether
// that key is the host's is the caller's to check). Otherwise kInvalidArgument saying which.
core::Status VerifyCheckpointNotice(const CheckpointNotice& c);

// The segment file names of `dir`, sorted by first sequence number.
core::Result<std::vector<std::string>> ListSegments(const std::string& dir);

}  // namespace vigil::audit
