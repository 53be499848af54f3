#pragma once

// The audit log: an append-only, hash-chained sequence of records in a directory, with
// checkpoints signed by the host's Ed25519 key. Every record holds its sequence number, time,
// type, a canonical JSON payload and the SHA-256 hash of the record before it; every checkpoint
// signs the hash of the record before it and so vouches for the whole chain up to there. Byte
// layout, chain rules and what a verifier concludes: docs/audit-log-format.md.
//
//   DIR/LOCK                        flock()ed by the one AuditLog that has DIR open
//   DIR/<first seq, 20 digits>.vlog segments; records never span two segments
//
// Writing is group commit: Append() renders the payload as canonical JSON (AppendCanonical takes
// it already rendered), copies the bytes into the current block of a bounded in-memory queue and
// returns; one writer thread takes a block at a time (up to max_batch records), assigns sequence
// numbers, frames and hashes the records into a buffer that it hands to write() every 64 KiB
// (pieces that stay in the CPU cache cost the kernel far less to copy than one large write) and
// syncs once per batch per FsyncMode. Blocks are reused, so a record costs no allocation once the
// log runs. (Rendering on the appending threads and freeing a nlohmann::json payload on the writer
// thread splits the per-record work between them.) Flush() waits until everything appended before
// it is written (and synced unless kNever); Close() (or the destructor) drains the queue, appends a
// log-close record and a final checkpoint, syncs and stops the thread: a record whose Append()
// returned OK is never lost by a clean shutdown.
//
// Crash consistency: a SIGKILL at any point leaves a prefix of the records (and possibly an
// incomplete last record, a "torn tail"). Open() cuts a torn tail off, then appends a log-open
// record that says how the previous writer ended, and continues the chain.
//
// Thread-safety: Append(), Flush() and Stats() may be called from any thread concurrently.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/internal/format.h"
#include "audit/signer.h"
#include "core/clock.h"
#include "core/pi_mutex.h"
#include "core/status.h"

namespace vigil::audit {

// Stored as a 16-bit code; the codes are part of the format and never reused.
enum class RecordType : uint16_t {
  kDecision = 1,      // a policy decision about a verdict (alert, deny, kill, ...)
  kEnforcement = 2,   // an action carried out
  kRollback = 3,      // an action undone
  kFallback = 4,      // a gate applied its fallback (late verdict, model down)
  kEscalation = 5,    // handed to a person or to the hub
  kPolicyChange = 6,  // a policy loaded, replaced or refused
  kModelChange = 7,   // a model loaded, trained, replaced or refused
  kModeChange = 8,    // monitor/enforce/learning/stopped
  kCheckpoint = 9,    // written by the log itself: a signature over the chain so far
  kLogOpen = 10,      // written by the log itself when a writer opens the directory
  kLogClose = 11,     // written by the log itself on a clean close
  kAdjudication = 12, // an analyst labelled an incident (hub)
  kAccessGrant = 13,  // a credential was issued (hub tokens)
};
inline constexpr uint16_t kMaxRecordType = 13;
// "decision", "enforcement", "rollback", "fallback", "escalation", "policy-change",
// "model-change", "mode-change", "checkpoint", "log-open", "log-close", "adjudication",
// "access-grant".
std::string_view RecordTypeName(RecordType t);
bool ParseRecordType(std::string_view name, RecordType* out);

// Vigil's canonical JSON: nlohmann::json::dump() without indentation (object keys sorted
// bytewise, no whitespace, shortest round-trip numbers, UTF-8 kept, invalid UTF-8 replaced by
// U+FFFD). The verifier refuses payloads that are not in this form.
std::string CanonicalJson(const nlohmann::json& value);

enum class FsyncMode : uint8_t {
  kBatch,     // fdatasync after every batch: Flush() returning means durable
  kInterval,  // fdatasync at most every fsync_interval_ms (and on Flush/Close)
  kNever,     // leave it to the OS: survives a process crash, not a power loss
};
std::string_view FsyncModeName(FsyncMode m);  // "batch", "interval", "never"
bool ParseFsyncMode(std::string_view name, FsyncMode* out);

// A checkpoint the writer wrote (the fields of its payload, docs/audit-log-format.md), for
// keeping a copy off the host (the agent sends it to the hub: agent/checkpoint_sink.h).
struct CheckpointNotice {
  uint64_t seq = 0;        // the checkpoint record's sequence number
  uint64_t covers = 0;     // the record it signs the chain up to (seq - 1)
  std::string chain_hash;  // that record's hash, 64 lowercase hex digits
  int64_t time_ns = 0;     // the checkpoint record's time (part of the signed message)
  std::string key_id;      // 16 uppercase hex digits (KeyIdString)
  std::string public_key;  // 64 lowercase hex digits
  std::string signature;   // 128 lowercase hex digits
};

struct AuditOptions {
  FsyncMode fsync = FsyncMode::kBatch;
  uint32_t fsync_interval_ms = 1000;     // kInterval; >= 1
  uint32_t checkpoint_every = 1000;      // records between checkpoints; >= 1
  uint32_t checkpoint_seconds = 60;      // a checkpoint when records are this old; 0: never by time
  size_t queue_capacity = 65536;         // records Append() may queue before it blocks; >= 1
  size_t max_batch = 4096;               // records one write takes at most; >= 1
  uint64_t segment_bytes = 64ull << 20;  // a new segment starts past this size; >= 4096
  std::string writer = "vigil";          // named in log-open records (program and version)
  // Called on the writer thread with each checkpoint once the batch that holds it was handed to
  // the file (synced as FsyncMode says), in sequence order; not after a failed write. Must not
  // block: it holds up the log. Empty: none.
  std::function<void(const CheckpointNotice&)> on_checkpoint;
};

struct AuditStats {
  uint64_t appended = 0;        // records accepted by Append() since Open
  uint64_t written = 0;         // records (all types) written since Open
  uint64_t checkpoints = 0;     // written since Open
  uint64_t batches = 0;         // batches of appended records taken by the writer
  uint64_t writes = 0;          // write() calls (a batch is written in pieces of ~64 KiB)
  uint64_t syncs = 0;
  uint64_t append_waits = 0;    // Append() calls that waited for queue space
  uint64_t bytes = 0;           // bytes written since Open
  uint64_t segments_created = 0;
  uint64_t next_seq = 0;        // the sequence number the next record gets
  uint64_t writer_cpu_ns = 0;   // CPU time the writer thread has used (for benchmarks)
};

// What Open() found in the directory.
struct OpenReport {
  bool created = false;         // the directory held no log
  bool previous_clean = true;   // the last writer closed the log (a log-close + checkpoint)
  uint64_t torn_bytes = 0;      // incomplete record bytes cut off the last segment
  uint64_t last_seq = 0;        // the last intact record before this writer (0: none)
};

class AuditLog {
 public:
  // Opens (creating it and missing parents when absent) the log in `dir`, recovers the tail of
  // the last segment, starts the writer thread and appends a log-open record. `signer` signs the
  // checkpoints and must outlive the log; `clock` gives record times and checkpoint deadlines.
  // Fails with kInvalidArgument for bad options, kFailedPrecondition when another AuditLog (in
  // any process) holds `dir`, kDataLoss when the last segment is damaged other than by a torn
  // tail (naming the segment, the record and why; run `vigil audit verify`), or an I/O status
  // naming the path.
  static core::Result<std::unique_ptr<AuditLog>> Open(const std::string& dir,
                                                      const AuditOptions& options,
                                                      const Signer& signer,
                                                      const core::Clock& clock,
                                                      OpenReport* report = nullptr);
  ~AuditLog();  // Close(), ignoring its status
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues one record of `type` (not kCheckpoint, kLogOpen or kLogClose: kInvalidArgument),
  // timestamped now. Blocks while the queue is full. Fails with kFailedPrecondition once the
  // log is closed or broken (a write or sync failed: the status says which and where; records
  // queued at that moment are lost and counted in the error).
  core::Status Append(RecordType type, nlohmann::json payload);

  // The same for a payload already in canonical form (CanonicalJson of some value, e.g. written
  // with canonical_json.h's CanonicalWriter); the bytes are copied. A payload that is not
  // canonical makes `vigil audit verify` report that record, so only pass what a canonical
  // writer produced.
  core::Status AppendCanonical(RecordType type, std::string_view payload);

  // Waits until every record appended before the call is written and, unless kNever, synced.
  // Returns the writer's error if it broke.
  core::Status Flush();

  // Drains the queue, writes log-close and a final checkpoint, syncs, stops the writer thread.
  // Later calls return the first call's status.
  core::Status Close();

  AuditStats Stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    RecordType type;
    int64_t time_ns;
    uint32_t offset;  // of the canonical payload in Block::bytes
    uint32_t size;
  };
  // Up to max_batch queued records: what one write() takes.
  struct Block {
    std::vector<Entry> entries;
    std::string bytes;                    // the payloads, back to back
    std::vector<nlohmann::json> release;  // payload values, freed on the writer thread
    void Clear() {
      entries.clear();
      bytes.clear();
      release.clear();
    }
  };

  AuditLog(std::string dir, const AuditOptions& options, const Signer& signer,
           const core::Clock& clock, int lock_fd);

  core::Status Recover(OpenReport* report);
  // Appends under mu_ (held by `lock`), waiting for queue space; `release` (may be null) is moved
  // into the block to be freed on the writer thread.
  core::Status Enqueue(std::unique_lock<core::PiMutex>& lock, RecordType type, int64_t time_ns,
                       std::string_view payload, nlohmann::json* release);
  // The block the next record goes into (mu_ held).
  Block& TailBlock();
  void WriterLoop();
  // Writer thread only (no lock needed for the file state).
  void Encode(RecordType type, int64_t time_ns, std::string_view payload);
  void EncodeCheckpoint();
  core::Status WriteOut(bool sync);
  core::Status StartSegment();
  core::Status SyncActive();

  const std::string dir_;
  const AuditOptions options_;
  const Signer& signer_;
  const core::Clock& clock_;
  const int lock_fd_;

  // Writer-thread state.
  int active_fd_ = -1;
  std::string active_path_;
  uint64_t active_size_ = 0;
  bool active_has_records_ = false;
  uint64_t next_seq_ = 1;
  internal::Hash last_hash_{};
  uint64_t since_checkpoint_ = 0;
  int64_t oldest_unsigned_mono_ = 0;  // monotonic time of the first record after a checkpoint
  int64_t last_sync_mono_ = 0;
  bool unsynced_ = false;
  std::string buf_;
  uint64_t buf_records_ = 0;
  uint64_t buf_checkpoints_ = 0;
  std::vector<CheckpointNotice> notices_;  // encoded, not yet handed to on_checkpoint

  // Priority-inheriting: a gate's or the gateway's real-time thread appends under it, and the
  // writer thread that also takes it runs at normal priority (core/pi_mutex.h).
  mutable core::PiMutex mu_;
  core::PiCondition work_cv_;   // the writer waits for records, flushes, close
  core::PiCondition space_cv_;  // Append waits for queue space
  core::PiCondition done_cv_;   // Flush waits for progress
  std::deque<std::unique_ptr<Block>> queue_;  // front: the oldest records
  size_t queued_ = 0;                          // records in queue_
  std::vector<std::unique_ptr<Block>> spare_;  // emptied blocks for reuse
  uint64_t accepted_ = 0;   // records ever accepted (Append OK)
  uint64_t written_ = 0;    // of those, written to the file
  uint64_t durable_ = 0;    // of those, synced (kNever: written)
  uint64_t flush_target_ = 0;
  bool closing_ = false;
  bool stopped_ = false;
  core::Status broken_;
  core::Status close_status_;
  bool closed_ = false;
  AuditStats stats_;   // guarded by mu_; the writer copies wstats_ in after each batch
  AuditStats wstats_;  // writer thread only
  std::thread writer_;
};

}  // namespace vigil::audit
