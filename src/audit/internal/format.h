#pragma once

// The audit log's on-disk encoding (docs/audit-log-format.md), shared by the writer, the verifier
// and the fuzz target. Everything is little-endian. Internal: other rooms use audit_log.h and
// verify.h.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace vigil::audit::internal {

using Hash = std::array<uint8_t, 32>;  // SHA-256

inline constexpr char kSegmentMagic[8] = {'V', 'G', 'L', 'A', 'U', 'D', 'I', 'T'};
inline constexpr uint32_t kFormatVersion = 1;
// magic(8) version(4) header_size(4) first_seq(8) created_ns(8) sha256(bytes 0..32)(32)
inline constexpr size_t kSegmentHeaderSize = 64;
// length(4) seq(8) time_ns(8) type(2) flags(2) prev_hash(32) header_check(4)
inline constexpr size_t kRecordHeaderSize = 60;
inline constexpr size_t kRecordTrailerSize = 32;  // the record's hash
inline constexpr size_t kRecordOverhead = kRecordHeaderSize + kRecordTrailerSize;
inline constexpr uint32_t kMaxPayloadBytes = 1u << 20;
// Segments larger than this are refused by the reader (the writer rolls far earlier).
inline constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 30;
inline constexpr std::string_view kSegmentSuffix = ".vlog";
// Prefix of the message a checkpoint signs.
inline constexpr std::string_view kCheckpointDomain = "vigil-audit-checkpoint/v1\n";

Hash Sha256(std::string_view bytes);
std::string Hex(const uint8_t* data, size_t n);
template <size_t N>
std::string Hex(const std::array<uint8_t, N>& a) {
  return Hex(a.data(), N);
}
// Decodes exactly out_len bytes of lowercase or uppercase hex; false otherwise.
bool ParseHex(std::string_view hex, uint8_t* out, size_t out_len);

// "<first_seq, 20 digits>.vlog"; the inverse is false for any other name.
std::string SegmentFileName(uint64_t first_seq);
bool ParseSegmentFileName(std::string_view name, uint64_t* first_seq);

struct SegmentHeader {
  uint32_t version = kFormatVersion;
  uint64_t first_seq = 1;
  int64_t created_ns = 0;
};
std::string EncodeSegmentHeader(const SegmentHeader& h);
// kOk, or why the 64 bytes at the start of `bytes` are not a valid header.
enum class HeaderError { kOk, kShort, kMagic, kChecksum, kVersion, kSize };
HeaderError DecodeSegmentHeader(std::string_view bytes, SegmentHeader* out);

struct RecordFields {
  uint64_t seq = 0;
  int64_t time_ns = 0;
  uint16_t type = 0;
  uint16_t flags = 0;
  Hash prev_hash{};
  uint32_t payload_len = 0;
};
// Appends one framed record to *out and returns its hash (the next record's prev_hash).
// payload.size() must be <= kMaxPayloadBytes.
Hash AppendRecord(const RecordFields& f, std::string_view payload, std::string* out);
// Reads the fixed header at the start of `bytes` (>= kRecordHeaderSize bytes); false when its
// header check does not match.
bool DecodeRecordHeader(std::string_view bytes, RecordFields* out);

// The bytes a checkpoint's Ed25519 signature covers: domain || covers (u64) || chain_hash ||
// checkpoint time_ns (i64).
std::string CheckpointMessage(uint64_t covers, const Hash& chain_hash, int64_t time_ns);

// Deepest nesting of arrays/objects in a JSON text (strings are skipped); stops counting at
// `limit` + 1. Used to refuse payloads that would recurse too deeply before parsing them.
int JsonDepth(std::string_view text, int limit);

}  // namespace vigil::audit::internal
