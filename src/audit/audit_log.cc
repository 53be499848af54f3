#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "audit/canonical_json.h"
#include "audit/internal/files.h"
#include "audit/verify.h"
#include "core/files.h"

namespace vigil::audit {
namespace {

constexpr std::string_view kTypeNames[] = {
    "",           "decision",   "enforcement", "rollback",  "fallback",  "escalation",
    "policy-change", "model-change", "mode-change", "checkpoint", "log-open", "log-close",
    "adjudication", "access-grant"};

// The writer hands the kernel a batch in write()s of about this many bytes.
constexpr size_t kWriteChunk = 64 * 1024;

bool IsInternal(RecordType t) {
  return t == RecordType::kCheckpoint || t == RecordType::kLogOpen || t == RecordType::kLogClose;
}

}  // namespace

std::string_view RecordTypeName(RecordType t) {
  const auto i = static_cast<uint16_t>(t);
  return i >= 1 && i <= kMaxRecordType ? kTypeNames[i] : std::string_view("unknown");
}

bool ParseRecordType(std::string_view name, RecordType* out) {
  for (uint16_t i = 1; i <= kMaxRecordType; ++i) {
    if (kTypeNames[i] == name) {
      *out = static_cast<RecordType>(i);
      return true;
    }
  }
  return false;
}

std::string CanonicalJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string_view FsyncModeName(FsyncMode m) {
  switch (m) {
    case FsyncMode::kBatch: return "batch";
    case FsyncMode::kInterval: return "interval";
    case FsyncMode::kNever: return "never";
  }
  return "?";
}

bool ParseFsyncMode(std::string_view name, FsyncMode* out) {
  for (FsyncMode m : {FsyncMode::kBatch, FsyncMode::kInterval, FsyncMode::kNever}) {
    if (FsyncModeName(m) == name) {
      *out = m;
      return true;
    }
  }
  return false;
}

AuditLog::AuditLog(std::string dir, const AuditOptions& options, const Signer& signer,
                   const core::Clock& clock, int lock_fd)
    : dir_(std::move(dir)), options_(options), signer_(signer), clock_(clock), lock_fd_(lock_fd) {}

core::Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& dir,
                                                       const AuditOptions& options,
                                                       const Signer& signer,
                                                       const core::Clock& clock,
                                                       OpenReport* report) {
  if (options.checkpoint_every < 1 || options.queue_capacity < 1 || options.max_batch < 1 ||
      options.segment_bytes < 4096 || options.segment_bytes > internal::kMaxSegmentBytes ||
      (options.fsync == FsyncMode::kInterval && options.fsync_interval_ms < 1)) {
    return core::InvalidArgument(
        "audit options: checkpoint_every, queue_capacity, max_batch and fsync_interval_ms must "
        "be >= 1, segment_bytes between 4096 and 1 GiB");
  }
  VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir, 0750));
  const std::string lock_path = dir + "/LOCK";
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd < 0) return core::ErrnoError(errno, "audit log: cannot open '" + lock_path + "'");
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return core::FailedPrecondition("audit log '" + dir +
                                      "' is open in another writer (LOCK is held)");
    }
    return core::ErrnoError(err, "audit log: cannot lock '" + lock_path + "'");
  }
  std::unique_ptr<AuditLog> log(new AuditLog(dir, options, signer, clock, lock_fd));
  OpenReport local;
  VIGIL_RETURN_IF_ERROR(log->Recover(&local));
  if (report != nullptr) *report = local;
  nlohmann::json open_payload = {
      {"writer", options.writer},
      {"previous", local.created ? "none" : local.previous_clean ? "clean" : "unclean"},
      {"torn_bytes", local.torn_bytes},
      {"after_seq", local.last_seq},
      {"key_id", KeyIdString(signer.public_key().id)}};
  {
    std::unique_lock<core::PiMutex> lock(log->mu_);
    VIGIL_RETURN_IF_ERROR(log->Enqueue(lock, RecordType::kLogOpen, clock.NowUnixNanos(),
                                       CanonicalJson(open_payload), nullptr));
  }
  log->oldest_unsigned_mono_ = clock.MonotonicNanos();
  log->last_sync_mono_ = log->oldest_unsigned_mono_;
  log->writer_ = std::thread([raw = log.get()] { raw->WriterLoop(); });
  return log;
}

core::Status AuditLog::Recover(OpenReport* report) {
  VIGIL_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDir(dir_));
  for (const std::string& n : names) {
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) unlink((dir_ + "/" + n).c_str());
  }
  VIGIL_ASSIGN_OR_RETURN(std::vector<std::string> segments, ListSegments(dir_));
  if (segments.empty()) {
    report->created = true;
    return core::Status::Ok();
  }
  // The last segment tells where the chain ends; when it holds no record yet, the one before.
  VerifyOptions vo;
  vo.start_anywhere = true;
  vo.check_payloads = false;
  vo.check_signatures = false;
  const size_t from = segments.size() >= 2 ? segments.size() - 2 : 0;
  std::vector<std::string> contents;
  for (size_t i = from; i < segments.size(); ++i) {
    VIGIL_ASSIGN_OR_RETURN(std::string bytes, core::ReadFile(dir_ + "/" + segments[i],
                                                                      internal::kMaxSegmentBytes));
    contents.push_back(std::move(bytes));
  }
  LogVerifier last_only(vo);
  last_only.FeedSegment(segments.back(), contents.back(), true);
  LogVerifier both(vo);
  const LogVerifier* v = &last_only;
  if (last_only.report().ok() && last_only.report().records == 0 && contents.size() == 2) {
    if (both.FeedSegment(segments[from], contents[0], false)) {
      both.FeedSegment(segments.back(), contents.back(), true);
    }
    v = &both;
  }
  const VerifyReport& r = v->report();
  if (!r.ok()) {
    const Problem& p = *r.problem;
    return core::DataLoss("audit log '" + dir_ + "': segment " + p.segment + " offset " +
                          std::to_string(p.offset) + ": " + std::string(FindingName(p.finding)) +
                          ": " + p.detail + "; run 'vigil audit verify " + dir_ +
                          "' and move the damaged log aside");
  }
  const std::string path = dir_ + "/" + segments.back();
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return core::ErrnoError(errno, "audit log: cannot open '" + path + "'");
  const uint64_t end = v->end_offset();
  if (r.torn_tail.has_value()) {
    report->torn_bytes = r.torn_tail->bytes;
    if (ftruncate(fd, static_cast<off_t>(end)) != 0 || fdatasync(fd) != 0) {
      const int err = errno;
      close(fd);
      return core::ErrnoError(err, "audit log: cannot cut the torn tail of '" + path + "'");
    }
  }
  active_fd_ = fd;
  active_path_ = path;
  active_size_ = end;
  active_has_records_ = last_only.report().records > 0;
  if (r.records > 0) {
    next_seq_ = r.last_seq + 1;
    last_hash_ = v->last_hash();
    report->last_seq = r.last_seq;
  } else {
    // Only a header: the chain starts (again) at the segment's first sequence number, which
    // a verifier checks against the segment before it.
    uint64_t first = 1;
    internal::ParseSegmentFileName(segments.back(), &first);
    next_seq_ = first;
    if (first != 1) {
      return core::DataLoss("audit log '" + dir_ + "': segment " + segments.back() +
                            " holds no record and no earlier segment gives the chain's hash");
    }
  }
  report->previous_clean = r.clean_close && !r.torn_tail.has_value();
  stats_.next_seq = next_seq_;
  return core::Status::Ok();
}

AuditLog::~AuditLog() { (void)Close(); }

namespace {

core::Status CheckAppendType(RecordType type) {
  if (IsInternal(type) || static_cast<uint16_t>(type) == 0 ||
      static_cast<uint16_t>(type) > kMaxRecordType) {
    return core::InvalidArgument("audit: record type " + std::string(RecordTypeName(type)) +
                                 " is written by the log itself");
  }
  return core::Status::Ok();
}

}  // namespace

core::Status AuditLog::Append(RecordType type, nlohmann::json payload) {
  VIGIL_RETURN_IF_ERROR(CheckAppendType(type));
  const int64_t now = clock_.NowUnixNanos();
  thread_local std::string text;  // keeps its capacity: no allocation per record
  text.clear();
  AppendCanonicalJson(payload, &text);
  std::unique_lock<core::PiMutex> lock(mu_);
  return Enqueue(lock, type, now, text, &payload);
}

core::Status AuditLog::AppendCanonical(RecordType type, std::string_view payload) {
  VIGIL_RETURN_IF_ERROR(CheckAppendType(type));
  const int64_t now = clock_.NowUnixNanos();
  std::unique_lock<core::PiMutex> lock(mu_);
  return Enqueue(lock, type, now, payload, nullptr);
}

AuditLog::Block& AuditLog::TailBlock() {
  if (queue_.empty() || queue_.back()->entries.size() >= options_.max_batch) {
    if (spare_.empty()) {
      queue_.push_back(std::make_unique<Block>());
    } else {
      queue_.push_back(std::move(spare_.back()));
      spare_.pop_back();
    }
  }
  return *queue_.back();
}

core::Status AuditLog::Enqueue(std::unique_lock<core::PiMutex>& lock, RecordType type,
                               int64_t time_ns, std::string_view payload,
                               nlohmann::json* release) {
  if (queued_ >= options_.queue_capacity && !closing_ && broken_.ok()) {
    ++stats_.append_waits;
    space_cv_.wait(lock, [&] {
      return queued_ < options_.queue_capacity || closing_ || !broken_.ok();
    });
  }
  if (!broken_.ok()) {
    return core::FailedPrecondition("audit log '" + dir_ + "' is broken: " + broken_.message());
  }
  if (closing_) return core::FailedPrecondition("audit log '" + dir_ + "' is closed");
  std::string substitute;
  if (payload.size() > internal::kMaxPayloadBytes) {
    substitute = CanonicalJson({{"oversized_payload_bytes", payload.size()},
                                {"sha256", internal::Hex(internal::Sha256(payload))}});
    payload = substitute;
  }
  Block* b = &TailBlock();
  // Offsets are 32-bit: a block that would pass 4 GiB of payloads (only with a huge max_batch)
  // is closed and the record starts the next one.
  if (b->bytes.size() + payload.size() > UINT32_MAX) {
    queue_.push_back(std::make_unique<Block>());
    b = queue_.back().get();
  }
  b->entries.push_back(Entry{type, time_ns, static_cast<uint32_t>(b->bytes.size()),
                             static_cast<uint32_t>(payload.size())});
  b->bytes.append(payload);
  if (release != nullptr) b->release.push_back(std::move(*release));
  ++queued_;
  ++accepted_;
  if (type != RecordType::kLogOpen) ++stats_.appended;
  if (queued_ == 1) work_cv_.notify_one();
  return core::Status::Ok();
}

core::Status AuditLog::Flush() {
  std::unique_lock<core::PiMutex> lock(mu_);
  const uint64_t target = accepted_;
  flush_target_ = std::max(flush_target_, target);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return durable_ >= target || !broken_.ok() || stopped_; });
  if (!broken_.ok()) return broken_;
  if (durable_ < target) return core::FailedPrecondition("audit log '" + dir_ + "' is closed");
  return core::Status::Ok();
}

core::Status AuditLog::Close() {
  {
    std::lock_guard<core::PiMutex> lock(mu_);
    if (closed_) return close_status_;
    closed_ = true;
    closing_ = true;
  }
  work_cv_.notify_one();
  space_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (active_fd_ >= 0) close(active_fd_);
  active_fd_ = -1;
  close(lock_fd_);
  std::lock_guard<core::PiMutex> lock(mu_);
  close_status_ = broken_;
  return close_status_;
}

AuditStats AuditLog::Stats() const {
  std::lock_guard<core::PiMutex> lock(mu_);
  return stats_;
}

core::Status AuditLog::StartSegment() {
  if (active_fd_ >= 0) {
    close(active_fd_);
    active_fd_ = -1;
  }
  const std::string name = internal::SegmentFileName(next_seq_);
  const std::string path = dir_ + "/" + name;
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return core::ErrnoError(errno, "audit log: cannot create '" + tmp + "'");
  const std::string header =
      internal::EncodeSegmentHeader({internal::kFormatVersion, next_seq_, clock_.NowUnixNanos()});
  core::Status st = internal::WriteAll(fd, header, tmp);
  if (st.ok() && options_.fsync != FsyncMode::kNever && fdatasync(fd) != 0) {
    st = core::ErrnoError(errno, "audit log: cannot sync '" + tmp + "'");
  }
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    st = core::ErrnoError(errno, "audit log: cannot rename '" + tmp + "'");
  }
  if (st.ok() && options_.fsync != FsyncMode::kNever) st = internal::SyncDir(dir_);
  if (!st.ok()) {
    close(fd);
    unlink(tmp.c_str());
    return st;
  }
  active_fd_ = fd;
  active_path_ = path;
  active_size_ = header.size();
  active_has_records_ = false;
  ++wstats_.segments_created;
  return core::Status::Ok();
}

core::Status AuditLog::SyncActive() {
  if (!unsynced_ || active_fd_ < 0) return core::Status::Ok();
  if (fdatasync(active_fd_) != 0) {
    return core::ErrnoError(errno, "audit log: cannot sync '" + active_path_ + "'");
  }
  unsynced_ = false;
  last_sync_mono_ = clock_.MonotonicNanos();
  ++wstats_.syncs;
  return core::Status::Ok();
}

core::Status AuditLog::WriteOut(bool sync) {
  if (!buf_.empty()) {
    if (active_fd_ < 0) VIGIL_RETURN_IF_ERROR(StartSegment());
    core::Status st = internal::WriteAll(active_fd_, buf_, active_path_);
    if (!st.ok()) {
      // Cut whatever part of the batch reached the file, so that the chain on disk stays whole.
      if (ftruncate(active_fd_, static_cast<off_t>(active_size_)) != 0) {
        st = st.WithContext("and cutting the partial batch failed");
      }
      buf_.clear();
      return st;
    }
    active_size_ += buf_.size();
    wstats_.bytes += buf_.size();
    ++wstats_.writes;
    buf_.clear();
    unsynced_ = true;
  }
  return sync ? SyncActive() : core::Status::Ok();
}

void AuditLog::Encode(RecordType type, int64_t time_ns, std::string_view payload) {
  internal::RecordFields f;
  f.seq = next_seq_;
  f.time_ns = time_ns;
  f.type = static_cast<uint16_t>(type);
  f.prev_hash = last_hash_;
  last_hash_ = internal::AppendRecord(f, payload, &buf_);
  ++next_seq_;
  active_has_records_ = true;
  if (type == RecordType::kCheckpoint) {
    ++wstats_.checkpoints;
    since_checkpoint_ = 0;
  } else if (since_checkpoint_++ == 0) {
    oldest_unsigned_mono_ = clock_.MonotonicNanos();
  }
  ++wstats_.written;
}

void AuditLog::EncodeCheckpoint() {
  const uint64_t covers = next_seq_ - 1;
  const int64_t now = clock_.NowUnixNanos();
  const Signature sig = signer_.Sign(internal::CheckpointMessage(covers, last_hash_, now));
  const PublicKey& pub = signer_.public_key();
  const nlohmann::json payload = {{"covers", covers},
                                  {"chain_hash", internal::Hex(last_hash_)},
                                  {"key_id", KeyIdString(pub.id)},
                                  {"public_key", internal::Hex(pub.key)},
                                  {"signature", internal::Hex(sig)}};
  if (options_.on_checkpoint) {
    CheckpointNotice n;
    n.seq = next_seq_;
    n.covers = covers;
    n.chain_hash = payload["chain_hash"].get<std::string>();
    n.time_ns = now;
    n.key_id = payload["key_id"].get<std::string>();
    n.public_key = payload["public_key"].get<std::string>();
    n.signature = payload["signature"].get<std::string>();
    notices_.push_back(std::move(n));
  }
  Encode(RecordType::kCheckpoint, now, CanonicalJson(payload));
}

void AuditLog::WriterLoop() {
  std::unique_ptr<Block> batch;
  std::unique_lock<core::PiMutex> lock(mu_);
  for (;;) {
    auto due = [&]() -> int64_t {  // monotonic deadline of timed work, or INT64_MAX
      int64_t d = INT64_MAX;
      if (since_checkpoint_ > 0 && options_.checkpoint_seconds > 0) {
        d = oldest_unsigned_mono_ + int64_t{options_.checkpoint_seconds} * 1'000'000'000;
      }
      if (unsynced_ && options_.fsync == FsyncMode::kInterval) {
        d = std::min(d, last_sync_mono_ + int64_t{options_.fsync_interval_ms} * 1'000'000);
      }
      return d;
    };
    while (queue_.empty() && !closing_ && flush_target_ <= durable_ &&
           clock_.MonotonicNanos() < due()) {
      const int64_t wait_ns = due() == INT64_MAX
                                  ? int64_t{3600} * 1'000'000'000
                                  : std::max<int64_t>(due() - clock_.MonotonicNanos(), 1'000'000);
      work_cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns));
    }
    size_t take = 0;
    if (!queue_.empty()) {
      batch = std::move(queue_.front());
      queue_.pop_front();
      take = batch->entries.size();
      queued_ -= take;
    }
    const bool closing = closing_ && queue_.empty();
    const bool flush_wanted = flush_target_ > durable_ || closing;
    lock.unlock();
    space_cv_.notify_all();

    core::Status st;
    for (size_t k = 0; k < take; ++k) {
      const Entry& e = batch->entries[k];
      const std::string_view payload(batch->bytes.data() + e.offset, e.size);
      const uint64_t frame = internal::kRecordOverhead + payload.size();
      if (active_fd_ < 0 ||
          (active_has_records_ && active_size_ + buf_.size() + frame > options_.segment_bytes)) {
        st = WriteOut(options_.fsync != FsyncMode::kNever);
        if (st.ok()) st = StartSegment();
        if (!st.ok()) break;
      }
      Encode(e.type, e.time_ns, payload);
      if (since_checkpoint_ >= options_.checkpoint_every) EncodeCheckpoint();
      // Written in pieces that stay in the CPU cache: the kernel's copy of a 2 MiB buffer into
      // the page cache cost ~8x the CPU per byte of 64 KiB pieces here (dd, docs/benchmarks.md).
      if (buf_.size() >= kWriteChunk) {
        st = WriteOut(false);
        if (!st.ok()) break;
      }
    }
    if (take > 0) ++wstats_.batches;
    if (st.ok()) {
      const int64_t now = clock_.MonotonicNanos();
      if (since_checkpoint_ > 0 && options_.checkpoint_seconds > 0 &&
          now >= oldest_unsigned_mono_ + int64_t{options_.checkpoint_seconds} * 1'000'000'000) {
        EncodeCheckpoint();
      }
      if (closing) {
        Encode(RecordType::kLogClose, clock_.NowUnixNanos(),
               CanonicalJson({{"records_written", wstats_.written + 1}}));
        EncodeCheckpoint();
      }
      bool sync = false;
      switch (options_.fsync) {
        case FsyncMode::kBatch: sync = true; break;
        case FsyncMode::kInterval:
          sync = flush_wanted ||
                 now >= last_sync_mono_ + int64_t{options_.fsync_interval_ms} * 1'000'000;
          break;
        case FsyncMode::kNever: break;
      }
      st = WriteOut(sync);
    }
    if (!notices_.empty()) {
      // Only checkpoints that reached the file are announced; after a failed write none are.
      if (st.ok()) {
        for (const CheckpointNotice& n : notices_) options_.on_checkpoint(n);
      }
      notices_.clear();
    }
    if (batch != nullptr) batch->Clear();  // frees the payload values here, not under the lock
    timespec cpu{};
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
      wstats_.writer_cpu_ns = static_cast<uint64_t>(cpu.tv_sec) * 1'000'000'000 +
                              static_cast<uint64_t>(cpu.tv_nsec);
    }
    lock.lock();
    if (batch != nullptr) {
      // Kept with its capacity for reuse (as many as a full queue holds: freeing and
      // reallocating blocks as the queue fills and drains showed up as malloc_consolidate),
      // unless a few huge payloads made it large.
      const size_t keep = options_.queue_capacity / options_.max_batch + 1;
      if (spare_.size() < keep && batch->bytes.capacity() <= (size_t{16} << 20)) {
        spare_.push_back(std::move(batch));
      }
      batch.reset();
    }
    if (!st.ok()) {
      const uint64_t lost = accepted_ - written_;
      broken_ = core::Status(st.code(), st.message() + " (" + std::to_string(lost) +
                                            " accepted records not written)");
    } else {
      written_ += take;
      if (options_.fsync == FsyncMode::kNever || !unsynced_) durable_ = written_;
    }
    wstats_.next_seq = next_seq_;
    const uint64_t appended = stats_.appended, waits = stats_.append_waits;
    stats_ = wstats_;
    stats_.appended = appended;
    stats_.append_waits = waits;
    done_cv_.notify_all();
    if (closing || !broken_.ok()) {
      stopped_ = true;
      done_cv_.notify_all();
      space_cv_.notify_all();
      return;
    }
  }
}

}  // namespace vigil::audit
