#include "pipeline/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/files.h"
#include "pipeline/internal/crc32c.h"

namespace vigil::pipeline {
namespace {

static_assert(std::endian::native == std::endian::little, "the format is little-endian");

using core::Status;

constexpr char kSegmentMagic[8] = {'V', 'G', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr char kAckMagic[8] = {'V', 'G', 'S', 'P', 'A', 'C', 'K', '1'};
constexpr size_t kSegmentHeaderSize = 20;  // magic, first_seq, crc
constexpr size_t kRecordHeaderSize = 16;   // crc, length, seq
constexpr size_t kAckFileSize = 20;        // magic, acked_seq, crc
constexpr uint32_t kFormatMaxRecord = 1u << 30;
// A record's sequence number is more than the previous one's and, while resynchronising after
// damage, believed only within this distance of it: a filter that random bytes pass with odds
// of 2^-32 before the CRC is even computed.
constexpr uint64_t kMaxSeqJump = 1ull << 32;
// A segment holds segment_bytes plus at most one record that crossed it; segments written under
// an earlier, larger segment_bytes must still be read back, so the limit is the format's.
constexpr uint64_t kMaxSegmentReadBytes = uint64_t{4} << 30;

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  return core::ErrnoError(err, "spool: " + std::string(what) + " '" + path + "'");
}

std::string SegmentName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64 ".seg", first_seq);
  return buf;
}

bool ParseSegmentName(std::string_view name, uint64_t* first_seq) {
  if (name.size() != 24 || name.substr(20) != ".seg") return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0) return false;
  *first_seq = v;
  return true;
}

Status WriteAll(int fd, iovec* iov, int iovcnt, const std::string& path) {
  while (iovcnt > 0) {
    ssize_t n = writev(fd, iov, iovcnt);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write", path, errno);
    auto left = static_cast<size_t>(n);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::Ok();
}

enum class Parse { kOk, kIncomplete, kBad };

// Decodes the record at buf[off]. `last_seq` is the sequence of the previous valid record.
Parse ParseRecord(std::string_view buf, size_t off, uint64_t last_seq, uint64_t* seq,
                  std::string_view* payload) {
  const size_t left = buf.size() - off;
  if (left < kRecordHeaderSize) return Parse::kIncomplete;
  const char* p = buf.data() + off;
  const uint32_t len = GetU32(p + 4);
  const uint64_t s = GetU64(p + 8);
  if (len > kFormatMaxRecord || s <= last_seq || s - last_seq > kMaxSeqJump) return Parse::kBad;
  if (left - kRecordHeaderSize < len) return Parse::kIncomplete;
  if (internal::Crc32c(p + 4, kRecordHeaderSize - 4 + len) != GetU32(p)) return Parse::kBad;
  *seq = s;
  *payload = std::string_view(p + kRecordHeaderSize, len);
  return Parse::kOk;
}

Status TruncateFile(const std::string& path, uint64_t size, bool sync) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open for truncation", path, errno);
  Status s;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    s = ErrnoStatus("truncate", path, errno);
  } else if (sync && fdatasync(fd) != 0) {
    s = ErrnoStatus("sync", path, errno);
  }
  close(fd);
  return s;
}

}  // namespace

std::string_view SpoolDamageKindName(SpoolDamageKind k) {
  switch (k) {
    case SpoolDamageKind::kTornTail:
      return "torn_tail";
    case SpoolDamageKind::kCorruptRecords:
      return "corrupt_records";
    case SpoolDamageKind::kBadHeader:
      return "bad_header";
  }
  return "unknown";
}

Spool::Spool(std::string dir, const SpoolOptions& options, int lock_fd)
    : dir_(std::move(dir)), options_(options), lock_fd_(lock_fd) {}

Spool::~Spool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_fd_ >= 0 && unsynced_ > 0 && options_.sync != SyncMode::kNever) {
      (void)fdatasync(active_fd_);
    }
    CloseActive();
  }
  close(lock_fd_);  // releases the flock
}

core::Result<std::unique_ptr<Spool>> Spool::Open(const std::string& dir,
                                                 const SpoolOptions& options,
                                                 const ReplayFn& replay, RecoveryReport* report) {
  if (options.segment_bytes < 64) {
    return core::InvalidArgument("spool '" + dir + "': segment_bytes must be >= 64, got " +
                                 std::to_string(options.segment_bytes));
  }
  if (options.max_record_bytes > kFormatMaxRecord) {
    return core::InvalidArgument("spool '" + dir + "': max_record_bytes must be <= 1 GiB");
  }
  if (options.sync == SyncMode::kEveryN && options.sync_every == 0) {
    return core::InvalidArgument("spool '" + dir + "': sync_every must be >= 1");
  }
  if (dir.empty()) return core::InvalidArgument("spool: empty directory name");
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return ErrnoStatus("create directory", dir, errno);
  }
  const std::string lock_path = dir + "/LOCK";
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd < 0) return ErrnoStatus("open", lock_path, errno);
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return core::FailedPrecondition("spool '" + dir + "' is already open (" + lock_path +
                                      " is locked)");
    }
    return ErrnoStatus("lock", lock_path, err);
  }
  std::unique_ptr<Spool> spool(new Spool(dir, options, lock_fd));
  RecoveryReport local;
  RecoveryReport* r = report != nullptr ? report : &local;
  *r = RecoveryReport();
  {
    std::lock_guard<std::mutex> lock(spool->mu_);
    VIGIL_RETURN_IF_ERROR(spool->Recover(replay, r));
  }
  return spool;
}

Status Spool::Recover(const ReplayFn& replay, RecoveryReport* report) {
  const std::string ack_path = dir_ + "/ACK";
  auto ack = core::ReadFile(ack_path, 1 << 20);
  if (ack.has_value()) {
    const std::string& a = *ack;
    if (a.size() == kAckFileSize && std::memcmp(a.data(), kAckMagic, 8) == 0 &&
        internal::Crc32c(a.data(), 16) == GetU32(a.data() + 16)) {
      acked_seq_ = GetU64(a.data() + 8);
    } else {
      report->ack_file_corrupt = true;
    }
  } else if (ack.error().code() != core::StatusCode::kNotFound) {
    return ack.error();
  }
  report->acked_seq = acked_seq_;

  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return ErrnoStatus("list", dir_, errno);
  std::vector<Segment> found;
  while (dirent* e = readdir(d)) {
    uint64_t first = 0;
    if (ParseSegmentName(e->d_name, &first)) found.push_back({first, dir_ + "/" + e->d_name});
  }
  closedir(d);
  std::sort(found.begin(), found.end(),
            [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });

  uint64_t last_seq = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    bool remove = false;
    VIGIL_RETURN_IF_ERROR(
        ScanSegment(found[i], i + 1 == found.size(), &last_seq, replay, report, &remove));
    if (remove) {
      if (unlink(found[i].path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoStatus("remove", found[i].path, errno);
      }
    } else {
      segments_.push_back(found[i]);
    }
  }
  next_seq_ = std::max(acked_seq_, last_seq) + 1;
  if (!segments_.empty()) next_seq_ = std::max(next_seq_, segments_.back().first_seq);

  uint64_t deleted = 0;
  VIGIL_RETURN_IF_ERROR(DeleteAckedSegments(&deleted));
  report->segments_deleted = deleted;
  if (!segments_.empty()) VIGIL_RETURN_IF_ERROR(OpenActive(segments_.back()));
  report->next_seq = next_seq_;
  return Status::Ok();
}

Status Spool::ScanSegment(const Segment& seg, bool last, uint64_t* last_seq, const ReplayFn& replay,
                          RecoveryReport* report, bool* remove) {
  VIGIL_ASSIGN_OR_RETURN(const std::string data, core::ReadFile(seg.path, kMaxSegmentReadBytes));
  const std::string_view buf(data);
  ++report->segments_scanned;
  auto add_damage = [&](SpoolDamageKind kind, uint64_t off, uint64_t bytes, bool truncated,
                        uint64_t lost) {
    report->damage.push_back({kind, seg.path, off, bytes, truncated, lost});
    if (kind == SpoolDamageKind::kTornTail) {
      report->torn_tail_bytes += bytes;
    } else {
      report->corrupt_bytes += bytes;
      report->corrupt_records += lost;
    }
  };

  if (buf.size() < kSegmentHeaderSize) {
    // Creation was cut short: no record can be in it.
    if (!buf.empty()) {
      add_damage(last ? SpoolDamageKind::kTornTail : SpoolDamageKind::kBadHeader, 0, buf.size(),
                 true, 0);
    }
    *remove = true;
    return Status::Ok();
  }
  if (std::memcmp(buf.data(), kSegmentMagic, 8) != 0 || GetU64(buf.data() + 8) != seg.first_seq ||
      internal::Crc32c(buf.data(), 16) != GetU32(buf.data() + 16)) {
    add_damage(SpoolDamageKind::kBadHeader, 0, kSegmentHeaderSize, false, 0);
  }

  uint64_t prev = std::max(*last_seq, seg.first_seq - 1);
  size_t off = kSegmentHeaderSize;
  uint64_t seq = 0;
  std::string_view payload;
  while (off < buf.size()) {
    const Parse at = ParseRecord(buf, off, prev, &seq, &payload);
    if (at != Parse::kOk) {
      size_t next = off + 1;
      for (; next + kRecordHeaderSize <= buf.size(); ++next) {
        if (ParseRecord(buf, next, prev, &seq, &payload) == Parse::kOk) break;
      }
      if (next + kRecordHeaderSize > buf.size()) {
        // Nothing valid follows: cut the tail so that appends continue on a clean end.
        const bool torn = at == Parse::kIncomplete;
        VIGIL_RETURN_IF_ERROR(TruncateFile(seg.path, off, options_.sync != SyncMode::kNever));
        add_damage(torn ? SpoolDamageKind::kTornTail : SpoolDamageKind::kCorruptRecords, off,
                   buf.size() - off, true, torn ? 0 : 1);
        break;
      }
      add_damage(SpoolDamageKind::kCorruptRecords, off, next - off, false, seq - prev - 1);
      off = next;
    }
    if (seq > acked_seq_) {
      if (replay) {
        Status s = replay(seq, payload);
        if (!s.ok()) {
          return s.WithContext("spool '" + dir_ + "': replaying seq " + std::to_string(seq));
        }
      }
      ++report->records_replayed;
    } else {
      ++report->records_skipped_acked;
    }
    prev = seq;
    off += kRecordHeaderSize + payload.size();
  }
  *last_seq = prev;
  return Status::Ok();
}

Status Spool::OpenActive(const Segment& seg) {
  const int fd = open(seg.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", seg.path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus("stat", seg.path, err);
  }
  active_fd_ = fd;
  active_size_ = static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

Status Spool::StartSegment() {
  Segment seg{next_seq_, dir_ + "/" + SegmentName(next_seq_)};
  const int fd = open(seg.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus("create", seg.path, errno);
  char header[kSegmentHeaderSize];
  std::memcpy(header, kSegmentMagic, 8);
  PutU64(header + 8, seg.first_seq);
  PutU32(header + 16, internal::Crc32c(header, 16));
  iovec iov{header, sizeof(header)};
  Status s = WriteAll(fd, &iov, 1, seg.path);
  if (s.ok() && options_.sync != SyncMode::kNever && fdatasync(fd) != 0) {
    s = ErrnoStatus("sync", seg.path, errno);
  }
  if (s.ok() && options_.sync != SyncMode::kNever) s = SyncDir();
  if (!s.ok()) {
    close(fd);
    unlink(seg.path.c_str());
    return s;
  }
  active_fd_ = fd;
  active_size_ = kSegmentHeaderSize;
  segments_.push_back(std::move(seg));
  ++stats_.segments_created;
  return Status::Ok();
}

void Spool::CloseActive() {
  if (active_fd_ >= 0) close(active_fd_);
  active_fd_ = -1;
  active_size_ = 0;
  unsynced_ = 0;
}

Status Spool::SyncActive() {
  if (active_fd_ < 0) return Status::Ok();
  if (fdatasync(active_fd_) != 0) {
    // After a failed fsync the kernel may have dropped the dirty pages; what is on disk is
    // unknown, so stop appending until a reopen rescans the segment.
    broken_ = ErrnoStatus("sync", segments_.back().path, errno);
    return broken_;
  }
  unsynced_ = 0;
  ++stats_.syncs;
  return Status::Ok();
}

Status Spool::SyncDir() {
  const int fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir_, errno);
  Status s;
  if (fsync(fd) != 0) s = ErrnoStatus("sync", dir_, errno);
  close(fd);
  return s;
}

core::Result<uint64_t> Spool::Append(std::string_view record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.ok()) {
    return core::FailedPrecondition("spool '" + dir_ + "' is broken by an earlier error (" +
                                    broken_.message() + "); reopen it");
  }
  if (record.size() > options_.max_record_bytes) {
    return core::InvalidArgument(
        "spool '" + dir_ + "': record of " + std::to_string(record.size()) +
        " bytes exceeds max_record_bytes " + std::to_string(options_.max_record_bytes));
  }
  const uint64_t frame_size = kRecordHeaderSize + record.size();
  if (active_fd_ >= 0 && active_size_ > kSegmentHeaderSize &&
      active_size_ + frame_size > options_.segment_bytes) {
    if (options_.sync != SyncMode::kNever && unsynced_ > 0) VIGIL_RETURN_IF_ERROR(SyncActive());
    CloseActive();
  }
  if (active_fd_ < 0) VIGIL_RETURN_IF_ERROR(StartSegment());

  const uint64_t seq = next_seq_;
  char header[kRecordHeaderSize];
  PutU32(header + 4, static_cast<uint32_t>(record.size()));
  PutU64(header + 8, seq);
  uint32_t crc = internal::Crc32cExtend(0, header + 4, kRecordHeaderSize - 4);
  crc = internal::Crc32cExtend(crc, record.data(), record.size());
  PutU32(header, crc);
  iovec iov[2] = {{header, sizeof(header)}, {const_cast<char*>(record.data()), record.size()}};
  const std::string& path = segments_.back().path;
  Status s = WriteAll(active_fd_, iov, record.empty() ? 1 : 2, path);
  if (!s.ok()) {
    if (ftruncate(active_fd_, static_cast<off_t>(active_size_)) != 0) {
      broken_ = s;
    }
    return s;
  }
  active_size_ += frame_size;
  ++next_seq_;
  ++stats_.records_appended;
  stats_.bytes_appended += frame_size;
  ++unsynced_;
  if (options_.sync == SyncMode::kAlways ||
      (options_.sync == SyncMode::kEveryN && unsynced_ >= options_.sync_every)) {
    VIGIL_RETURN_IF_ERROR(SyncActive());
  }
  return seq;
}

Status Spool::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.ok()) return broken_;
  return SyncActive();
}

Status Spool::Ack(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (seq >= next_seq_) {
    return core::OutOfRange("spool '" + dir_ + "': ack of seq " + std::to_string(seq) +
                            " but the last appended is " + std::to_string(next_seq_ - 1));
  }
  if (seq <= acked_seq_) return Status::Ok();
  VIGIL_RETURN_IF_ERROR(WriteAckFile(seq));
  acked_seq_ = seq;
  uint64_t deleted = 0;
  Status s = DeleteAckedSegments(&deleted);
  stats_.segments_deleted += deleted;
  return s;
}

Status Spool::WriteAckFile(uint64_t seq) {
  const std::string tmp = dir_ + "/ACK.tmp";
  const std::string final_path = dir_ + "/ACK";
  char buf[kAckFileSize];
  std::memcpy(buf, kAckMagic, 8);
  PutU64(buf + 8, seq);
  PutU32(buf + 16, internal::Crc32c(buf, 16));
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus("create", tmp, errno);
  iovec iov{buf, sizeof(buf)};
  Status s = WriteAll(fd, &iov, 1, tmp);
  const bool sync = options_.sync != SyncMode::kNever;
  if (s.ok() && sync && fdatasync(fd) != 0) s = ErrnoStatus("sync", tmp, errno);
  close(fd);
  VIGIL_RETURN_IF_ERROR(s);
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus("rename to ACK", tmp, errno);
  }
  return sync ? SyncDir() : Status::Ok();
}

// A segment is fully acknowledged when the next one starts at or below watermark + 1. The last
// (active) segment is never deleted: its name keeps the sequence numbering going.
Status Spool::DeleteAckedSegments(uint64_t* deleted) {
  while (segments_.size() >= 2 && segments_[1].first_seq - 1 <= acked_seq_) {
    if (unlink(segments_.front().path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus("remove", segments_.front().path, errno);
    }
    segments_.erase(segments_.begin());
    ++*deleted;
  }
  return Status::Ok();
}

uint64_t Spool::next_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_;
}

uint64_t Spool::acked_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_seq_;
}

SpoolStats Spool::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SpoolStats s = stats_;
  s.live_segments = segments_.size();
  s.acked_seq = acked_seq_;
  s.next_seq = next_seq_;
  return s;
}

}  // namespace vigil::pipeline
