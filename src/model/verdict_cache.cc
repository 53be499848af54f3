#include "model/verdict_cache.h"

#include <sodium.h>

#include <cstring>

namespace vigil::model {
namespace {

// The per-process digest key. sodium_init() is idempotent and thread-safe; it only fails when
// the system has no entropy source, and then randombytes would abort anyway.
const unsigned char* DigestKey() {
  static const auto* key = [] {
    static unsigned char k[crypto_generichash_KEYBYTES];
    if (sodium_init() < 0) std::memset(k, 0x5a, sizeof(k));
    else randombytes_buf(k, sizeof(k));
    return k;
  }();
  return key;
}

void Update(crypto_generichash_state* st, const void* data, uint64_t len) {
  crypto_generichash_update(st, reinterpret_cast<const unsigned char*>(&len), sizeof(len));
  if (len > 0) crypto_generichash_update(st, static_cast<const unsigned char*>(data), len);
}

}  // namespace

FeatureDigest DigestFeatures(const FeatureView& request) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, DigestKey(), crypto_generichash_KEYBYTES, sizeof(FeatureDigest));
  Update(&st, request.subject.data(), request.subject.size());
  const auto arch = static_cast<uint8_t>(request.arch);
  Update(&st, &arch, 1);
  Update(&st, request.syscalls.data(), request.syscalls.size_bytes());
  Update(&st, request.values.data(), request.values.size_bytes());
  FeatureDigest d;
  crypto_generichash_final(&st, reinterpret_cast<unsigned char*>(d.words.data()), sizeof(d));
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
    Entry& e = *it->second;
    e.generation = generation;
    e.stored_ns = now;
    e.verdict = verdict;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= options_.capacity) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(Entry{key, generation, now, verdict});
  index_.emplace(key, lru_.begin());
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
