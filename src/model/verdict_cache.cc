#include "model/verdict_cache.h"

#include <sodium.h>

#include <cstring>
#include <vector>

namespace vigil::model {
namespace {

// The per-process digest key. sodium_init() is idempotent and thread-safe; it only fails when
// the system has no entropy source, and then randombytes would abort anyway.
const unsigned char* DigestKey() {
  static const auto* key = [] {
    static unsigned char k[crypto_shorthash_siphashx24_KEYBYTES];
    if (sodium_init() < 0) std::memset(k, 0x5a, sizeof(k));
    else randombytes_buf(k, sizeof(k));
    return k;
  }();
  return key;
}

// Appends len (8 bytes) then the bytes.
void Append(std::vector<unsigned char>& out, const void* data, uint64_t len) {
  const size_t at = out.size();
  out.resize(at + sizeof(len) + len);
  std::memcpy(out.data() + at, &len, sizeof(len));
  if (len > 0) std::memcpy(out.data() + at + sizeof(len), data, len);
}

}  // namespace

FeatureDigest DigestFeatures(const FeatureView& request) {
  // SipHash is one-shot: the length-prefixed fields are laid out in a per-thread buffer that
  // keeps its capacity, so a request costs no allocation once the largest size has been seen.
  thread_local std::vector<unsigned char> buf;
  buf.clear();
  Append(buf, request.subject.data(), request.subject.size());
  const auto arch = static_cast<uint8_t>(request.arch);
  Append(buf, &arch, 1);
  Append(buf, request.syscalls.data(), request.syscalls.size_bytes());
  Append(buf, request.values.data(), request.values.size_bytes());
  static_assert(sizeof(FeatureDigest) == crypto_shorthash_siphashx24_BYTES);
  FeatureDigest d;
  crypto_shorthash_siphashx24(reinterpret_cast<unsigned char*>(d.words.data()), buf.data(),
                              buf.size(), DigestKey());
  return d;
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
