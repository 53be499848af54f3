#pragma once

// Spool: a durable FIFO of opaque byte records in a directory, for events accepted by the agent
// but not yet delivered (the sink or hub is down, the process is restarting). Records get
// consecutive sequence numbers; the consumer acknowledges a watermark ("everything up to seq N
// is delivered"); after a crash, Open() replays what was appended after the watermark, exactly
// once per Open, in order. Delivery is therefore at-least-once across crashes: a record
// delivered but not yet acknowledged is replayed.
//
// On disk (byte layout: docs/spool-format.md):
//   DIR/LOCK                        flock()ed by the one Spool that has the directory open
//   DIR/ACK                         the acknowledged watermark, replaced atomically (rename)
//   DIR/<first seq, 20 digits>.seg  append-only segments; each record framed with its length,
//                                   sequence number and CRC-32C
//
// Damage found by Open() is reported (RecoveryReport), never fatal: an incomplete last record
// (a torn write) or undecodable bytes at the end of a segment are cut off so that appends
// continue on a clean tail; undecodable bytes between valid records are skipped (the records
// after them are still replayed) and reported on every Open until their segment is deleted.
//
// Thread-safety: all methods may be called concurrently; they are serialised internally.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::pipeline {

enum class SyncMode : uint8_t {
  kAlways,  // fdatasync after every Append: when Append returns, the record survives power loss
  kEveryN,  // fdatasync after every `sync_every` appends (and on Sync(), segment roll, close)
  kNever,   // leave it to the OS: survives a process crash, not a power loss
};

struct SpoolOptions {
  // A segment is closed and a new one started when the next record would take it past this
  // size. A record larger than this gets a segment to itself. Must be >= 64.
  uint64_t segment_bytes = 64ull << 20;
  // Largest payload Append accepts. At most 1 GiB (the format's limit, which Open() applies).
  uint32_t max_record_bytes = 16u << 20;
  SyncMode sync = SyncMode::kAlways;
  uint32_t sync_every = 64;  // kEveryN only; >= 1
};

enum class SpoolDamageKind : uint8_t {
  kTornTail,        // the last record of a segment is incomplete (a write cut short)
  kCorruptRecords,  // complete but undecodable bytes (checksum, length or sequence wrong)
  kBadHeader,       // the segment header is missing or wrong
};
std::string_view SpoolDamageKindName(SpoolDamageKind k);  // "torn_tail", ...

struct SpoolDamage {
  SpoolDamageKind kind = SpoolDamageKind::kCorruptRecords;
  std::string segment;     // path of the segment file
  uint64_t offset = 0;     // byte offset of the first damaged byte
  uint64_t bytes = 0;      // length of the damaged region
  bool truncated = false;  // the region was at the end and has been cut off the file
  // kCorruptRecords between two valid records: how many sequence numbers the region swallowed
  // (exact). At the end of a segment: 1 (at least one record was lost; how many is unknowable).
  // kTornTail: 0 (the torn record's Append never returned).
  uint64_t records_lost = 0;
};

// What Open() found. Counts refer to the segments on disk when Open() started.
struct RecoveryReport {
  uint64_t acked_seq = 0;         // watermark read from DIR/ACK (0: none)
  bool ack_file_corrupt = false;  // DIR/ACK unreadable: treated as 0, so all is replayed
  uint64_t next_seq = 1;          // the sequence number the next Append gets
  uint64_t segments_scanned = 0;
  uint64_t segments_deleted = 0;       // fully acknowledged (or empty), removed
  uint64_t records_replayed = 0;       // valid records after the watermark, passed to replay
  uint64_t records_skipped_acked = 0;  // valid records at or below the watermark
  uint64_t corrupt_records = 0;        // sum of records_lost over kCorruptRecords damage
  uint64_t corrupt_bytes = 0;          // bytes in kCorruptRecords and kBadHeader damage
  uint64_t torn_tail_bytes = 0;        // bytes cut off as kTornTail
  std::vector<SpoolDamage> damage;     // in file order

  bool clean() const { return damage.empty() && !ack_file_corrupt; }
};

struct SpoolStats {
  uint64_t records_appended = 0;  // since Open
  uint64_t bytes_appended = 0;    // framing included
  uint64_t syncs = 0;
  uint64_t segments_created = 0;
  uint64_t segments_deleted = 0;  // since Open, by Ack
  uint64_t live_segments = 0;
  uint64_t acked_seq = 0;
  uint64_t next_seq = 0;
};

class Spool {
 public:
  // Called by Open() for each unacknowledged record, in sequence order. `record` is valid only
  // during the call. A non-OK return stops the replay and fails Open() with that status.
  using ReplayFn = std::function<core::Status(uint64_t seq, std::string_view record)>;

  // Opens (creating if absent; the parent must exist) the spool in `dir`, repairs segment
  // tails, calls `replay` for every valid record after the acknowledged watermark (an empty
  // function skips delivery but still counts), deletes segments that are fully acknowledged,
  // and fills *report (may be nullptr).
  // Fails with kInvalidArgument for bad options; kFailedPrecondition when another Spool (in
  // this or another process) has `dir` open; kNotFound/kPermissionDenied/kUnavailable for I/O
  // errors (the message names the path and the errno text); or the replay callback's status.
  // Damaged data is not a failure: it is repaired and reported in *report.
  static core::Result<std::unique_ptr<Spool>> Open(const std::string& dir,
                                                   const SpoolOptions& options,
                                                   const ReplayFn& replay, RecoveryReport* report);

  // Syncs unsynced appends (unless kNever) and releases the directory lock.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends one record (may be empty) and returns its sequence number: consecutive, starting
  // at RecoveryReport::next_seq. Durability on return follows SpoolOptions::sync.
  // Fails with kInvalidArgument when record.size() > max_record_bytes, or an I/O status naming
  // the segment (kResourceExhausted for a full disk). A failed write is cut off again and the
  // sequence number is not used. If the cut or an fdatasync fails, the state on disk is unknown:
  // the spool is then broken and every later Append fails with kFailedPrecondition (reopen it
  // to rescan and repair).
  [[nodiscard]] core::Result<uint64_t> Append(std::string_view record);

  // Marks every record with sequence <= seq as delivered: a later Open() does not replay them,
  // and segments holding only such records are deleted. Persists the watermark by writing
  // DIR/ACK.tmp and renaming it over DIR/ACK (fsynced with the directory unless kNever).
  // A seq at or below the current watermark is a no-op. Fails with kOutOfRange when seq has
  // not been appended yet (seq >= next_seq()), or an I/O status naming the file (the watermark
  // in memory is then unchanged).
  core::Status Ack(uint64_t seq);

  // Forces appended records to stable storage, whatever the policy.
  core::Status Sync();

  uint64_t next_seq() const;
  uint64_t acked_seq() const;
  SpoolStats Stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Segment {
    uint64_t first_seq;
    std::string path;
  };

  Spool(std::string dir, const SpoolOptions& options, int lock_fd);

  // All private methods require mu_ held.
  core::Status Recover(const ReplayFn& replay, RecoveryReport* report);
  core::Status ScanSegment(const Segment& seg, bool last, uint64_t* last_seq,
                           const ReplayFn& replay, RecoveryReport* report, bool* remove);
  core::Status OpenActive(const Segment& seg);
  core::Status StartSegment();
  core::Status SyncActive();
  core::Status DeleteAckedSegments(uint64_t* deleted);
  core::Status WriteAckFile(uint64_t seq);
  core::Status SyncDir();
  void CloseActive();

  const std::string dir_;
  const SpoolOptions options_;
  const int lock_fd_;

  mutable std::mutex mu_;
  std::vector<Segment> segments_;  // oldest first; the last is the active one
  int active_fd_ = -1;             // -1: the next Append starts a segment
  uint64_t active_size_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t acked_seq_ = 0;
  uint32_t unsynced_ = 0;
  core::Status broken_;  // non-OK once the state on disk is unknown
  SpoolStats stats_;
};

}  // namespace vigil::pipeline
