#include "model/verdict_cache.h"

#include <sodium.h>

#include <bit>
#include <cstring>

namespace vigil::model {
namespace {

static_assert(kFeatureDigestKeyBytes == crypto_shorthash_siphashx24_KEYBYTES);
static_assert(sizeof(FeatureDigest) == crypto_shorthash_siphashx24_BYTES);

// SipHash-2-4 with a 128-bit output (libsodium's crypto_shorthash_siphashx24, the same function
// bit for bit: FeatureDigestTest.MatchesLibsodiumOverTheLaidOutFields), fed in pieces, so that
// the fields need not be copied into one buffer first. Written from the SipHash paper
// (Aumasson and Bernstein, 2012): four 64-bit words of state; every 8-byte little-endian word m
// of the message goes in as v3 ^= m, two rounds, v0 ^= m; the last word carries the leftover
// bytes and the message length mod 256 in its top byte; then the 128-bit finalisation.
class SipHash128 {
 public:
  explicit SipHash128(const unsigned char* key) {
    const uint64_t k0 = Load(key), k1 = Load(key + 8);
    v0_ = k0 ^ 0x736f6d6570736575ULL;
    v1_ = k1 ^ 0x646f72616e646f6dULL ^ 0xee;  // 0xee: the 128-bit variant
    v2_ = k0 ^ 0x6c7967656e657261ULL;
    v3_ = k1 ^ 0x7465646279746573ULL;
  }

  void Update(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    length_ += n;
    if (pending_ > 0) {  // complete the word begun by an earlier piece
      while (pending_ < 8 && n > 0) {
        tail_ |= static_cast<uint64_t>(*p++) << (8 * pending_++);
        --n;
      }
      if (pending_ < 8) return;
      Absorb(tail_);
      tail_ = 0;
      pending_ = 0;
    }
    for (; n >= 8; p += 8, n -= 8) Absorb(Load(p));
    for (; n > 0; --n) tail_ |= static_cast<uint64_t>(*p++) << (8 * pending_++);
  }

  FeatureDigest Finish() {
    Absorb(tail_ | (static_cast<uint64_t>(length_) << 56));
    FeatureDigest d;
    v2_ ^= 0xee;
    for (int i = 0; i < 4; ++i) Round();
    d.words[0] = v0_ ^ v1_ ^ v2_ ^ v3_;
    v1_ ^= 0xdd;
    for (int i = 0; i < 4; ++i) Round();
    d.words[1] = v0_ ^ v1_ ^ v2_ ^ v3_;
    if constexpr (std::endian::native == std::endian::big) {
      // libsodium stores each word little-endian; FeatureDigest holds those bytes.
      for (uint64_t& w : d.words) w = __builtin_bswap64(w);
    }
    return d;
  }

 private:
  static uint64_t Load(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, sizeof(w));
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    return w;
  }
  void Absorb(uint64_t m) {
    v3_ ^= m;
    Round();
    Round();
    v0_ ^= m;
  }
  void Round() {
    v0_ += v1_;
    v1_ = std::rotl(v1_, 13);
    v1_ ^= v0_;
    v0_ = std::rotl(v0_, 32);
    v2_ += v3_;
    v3_ = std::rotl(v3_, 16);
    v3_ ^= v2_;
    v0_ += v3_;
    v3_ = std::rotl(v3_, 21);
    v3_ ^= v0_;
    v2_ += v1_;
    v1_ = std::rotl(v1_, 17);
    v1_ ^= v2_;
    v2_ = std::rotl(v2_, 32);
  }

  uint64_t v0_, v1_, v2_, v3_;
  uint64_t tail_ = 0;     // the bytes of the word not yet complete, little-endian
  unsigned pending_ = 0;  // how many (0..7)
  size_t length_ = 0;
};

// Feeds len (8 bytes, host order) then the bytes.
void Field(SipHash128& h, const void* data, uint64_t len) {
  h.Update(&len, sizeof(len));
  if (len > 0) h.Update(data, len);
}

}  // namespace

const unsigned char* FeatureDigestKey() {
  // sodium_init() is idempotent and thread-safe; it only fails when the system has no entropy
  // source, and then randombytes would abort anyway.
  static const auto* key = [] {
    static unsigned char k[kFeatureDigestKeyBytes];
    if (sodium_init() < 0) std::memset(k, 0x5a, sizeof(k));
    else randombytes_buf(k, sizeof(k));
    return k;
  }();
  return key;
}

FeatureDigest DigestFeatures(const FeatureView& request) {
  SipHash128 h(FeatureDigestKey());
  Field(h, request.subject.data(), request.subject.size());
  const auto arch = static_cast<uint8_t>(request.arch);
  Field(h, &arch, 1);
  Field(h, request.syscalls.data(), request.syscalls.size_bytes());
  Field(h, request.values.data(), request.values.size_bytes());
  return h.Finish();
}

VerdictCache::VerdictCache(const VerdictCacheOptions& options, const core::Clock& clock)
    : options_(options), clock_(clock) {
  index_.reserve(options_.capacity);
}

std::optional<core::Verdict> VerdictCache::Find(const FeatureDigest& key, uint64_t generation,
                                                bool* hit) {
  *hit = false;
  const int64_t now = clock_.MonotonicNanos();
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  const Entry& e = *it->second;
  if (e.generation != generation || now - e.stored_ns >= options_.ttl_ns) {
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  *hit = true;
  return e.verdict;
}

std::optional<core::Verdict> VerdictCache::Lookup(const FeatureDigest& key, uint64_t generation) {
  if (options_.capacity == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  bool hit = false;
  std::optional<core::Verdict> v = Find(key, generation, &hit);
  ++(hit ? hits_ : misses_);
  return v;
}

std::optional<core::Verdict> VerdictCache::LookupAgain(const FeatureDigest& key,
                                                       uint64_t generation) {
  if (options_.capacity == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  bool hit = false;
  std::optional<core::Verdict> v = Find(key, generation, &hit);
  if (hit) {
    ++hits_;
    if (misses_ > 0) --misses_;
  }
  return v;
}

void VerdictCache::Insert(const FeatureDigest& key, uint64_t generation,
                          const core::Verdict& verdict) {
  if (options_.capacity == 0) return;
  const int64_t now = clock_.MonotonicNanos();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    Store(it->second, key, generation, now, verdict);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() < options_.capacity) {
    lru_.push_front(Entry{key, generation, now, verdict});
    index_.emplace(key, lru_.begin());
    return;
  }
  // Full: the least recently used entry becomes the new one in place. Its list node and index
  // node are reused and its verdict is assigned over (strings and explanation keep their
  // storage), so that once the cache is full an insert allocates nothing for a verdict no
  // larger than the one it replaces.
  const List::iterator last = std::prev(lru_.end());
  auto node = index_.extract(last->key);
  Store(last, key, generation, now, verdict);  // on failure the entry is gone from both
  node.key() = key;
  index_.insert(std::move(node));
  lru_.splice(lru_.begin(), lru_, last);
  ++evictions_;
}

void VerdictCache::Store(List::iterator at, const FeatureDigest& key, uint64_t generation,
                         int64_t now, const core::Verdict& verdict) {
  try {
    at->verdict = verdict;
  } catch (...) {
    // Half assigned: not a verdict to serve. The entry leaves the list (and the index, where
    // the caller has not already taken it out).
    index_.erase(at->key);
    lru_.erase(at);
    throw;
  }
  at->key = key;
  at->generation = generation;
  at->stored_ns = now;
}

void VerdictCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lru_.clear();
  index_.clear();
}

size_t VerdictCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t VerdictCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

uint64_t VerdictCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

uint64_t VerdictCache::evictions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evictions_;
}

double VerdictCache::HitRate() const {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t total = hits_ + misses_;
  return total == 0 ? 0.0 : static_cast<double>(hits_) / static_cast<double>(total);
}

}  // namespace vigil::model
