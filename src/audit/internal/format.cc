#include "audit/internal/format.h"

#include <openssl/evp.h>

#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vigil::audit::internal {
namespace {

static_assert(std::endian::native == std::endian::little, "the format is little-endian");

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
template <typename T>
T Get(std::string_view bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(v));
  return v;
}

uint32_t HeaderCheck(std::string_view header56) {
  const Hash h = Sha256(header56.substr(0, 56));
  uint32_t v;
  std::memcpy(&v, h.data(), 4);
  return v;
}

}  // namespace

Hash Sha256(std::string_view bytes) {
  // The one-shot SHA256() looks the algorithm up on every call in OpenSSL 3, which costs more
  // than hashing a record: fetch it once and keep a context per thread.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx c;
  Hash h{};
  unsigned int len = 0;
  if (md == nullptr || c.ctx == nullptr || EVP_DigestInit_ex2(c.ctx, md, nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(c.ctx, h.data(), &len) != 1) {
    // Only when OpenSSL itself is broken (no default provider): fail loudly, never mis-hash.
    std::abort();
  }
  return h;
}

std::string Hex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[data[i] >> 4];
    s[2 * i + 1] = kDigits[data[i] & 15];
  }
  return s;
}

bool ParseHex(std::string_view hex, uint8_t* out, size_t out_len) {
  if (hex.size() != out_len * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out_len; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string SegmentFileName(uint64_t first_seq) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64 "%s", first_seq, kSegmentSuffix.data());
  return buf;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* first_seq) {
  if (name.size() != 20 + kSegmentSuffix.size() || name.substr(20) != kSegmentSuffix) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *first_seq = v;
  return true;
}

std::string EncodeSegmentHeader(const SegmentHeader& h) {
  std::string out(kSegmentMagic, sizeof(kSegmentMagic));
  Put<uint32_t>(&out, h.version);
  Put<uint32_t>(&out, static_cast<uint32_t>(kSegmentHeaderSize));
  Put<uint64_t>(&out, h.first_seq);
  Put<int64_t>(&out, h.created_ns);
  const Hash sum = Sha256(out);
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

HeaderError DecodeSegmentHeader(std::string_view bytes, SegmentHeader* out) {
  if (bytes.size() < kSegmentHeaderSize) return HeaderError::kShort;
  if (std::memcmp(bytes.data(), kSegmentMagic, sizeof(kSegmentMagic)) != 0) {
    return HeaderError::kMagic;
  }
  const Hash sum = Sha256(bytes.substr(0, 32));
  if (std::memcmp(sum.data(), bytes.data() + 32, sum.size()) != 0) return HeaderError::kChecksum;
  out->version = Get<uint32_t>(bytes, 8);
  if (out->version != kFormatVersion) return HeaderError::kVersion;
  if (Get<uint32_t>(bytes, 12) != kSegmentHeaderSize) return HeaderError::kSize;
  out->first_seq = Get<uint64_t>(bytes, 16);
  out->created_ns = Get<int64_t>(bytes, 24);
  return HeaderError::kOk;
}

Hash AppendRecord(const RecordFields& f, std::string_view payload, std::string* out) {
  const size_t start = out->size();
  Put<uint32_t>(out, static_cast<uint32_t>(payload.size()));
  Put<uint64_t>(out, f.seq);
  Put<int64_t>(out, f.time_ns);
  Put<uint16_t>(out, f.type);
  Put<uint16_t>(out, f.flags);
  out->append(reinterpret_cast<const char*>(f.prev_hash.data()), f.prev_hash.size());
  Put<uint32_t>(out, HeaderCheck(std::string_view(*out).substr(start)));
  out->append(payload);
  const Hash h = Sha256(std::string_view(*out).substr(start));
  out->append(reinterpret_cast<const char*>(h.data()), h.size());
  return h;
}

bool DecodeRecordHeader(std::string_view bytes, RecordFields* out) {
  if (bytes.size() < kRecordHeaderSize) return false;
  if (HeaderCheck(bytes) != Get<uint32_t>(bytes, 56)) return false;
  out->payload_len = Get<uint32_t>(bytes, 0);
  out->seq = Get<uint64_t>(bytes, 4);
  out->time_ns = Get<int64_t>(bytes, 12);
  out->type = Get<uint16_t>(bytes, 20);
  out->flags = Get<uint16_t>(bytes, 22);
  std::memcpy(out->prev_hash.data(), bytes.data() + 24, 32);
  return true;
}

std::string CheckpointMessage(uint64_t covers, const Hash& chain_hash, int64_t time_ns) {
  std::string m(kCheckpointDomain);
  Put<uint64_t>(&m, covers);
  m.append(reinterpret_cast<const char*>(chain_hash.data()), chain_hash.size());
  Put<int64_t>(&m, time_ns);
  return m;
}

int JsonDepth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace vigil::audit::internal
