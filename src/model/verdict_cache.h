#pragma once

// The inference engine's verdict cache: least-recently-used entries that expire after a time to
// live, keyed by a 128-bit keyed SipHash digest of a request's features (FeatureDigest).
//
// The digest key is drawn at random per process (libsodium), so a program cannot craft features
// whose digest collides with a benign request's and be served that request's verdict. Entries
// carry the generation of the model that produced them: a lookup for another generation misses,
// so a hot-swapped model never serves its predecessor's verdicts.
//
// Thread-safe (one mutex; a lookup or insert is a hash probe and a list splice). Once the cache
// is full, an insert reuses the evicted entry's storage (no allocation for a verdict no larger
// than the one it replaces).

#include <array>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "core/clock.h"
#include "core/event.h"
#include "model/model.h"

namespace vigil::model {

struct FeatureDigest {
  std::array<uint64_t, 2> words{};
  bool operator==(const FeatureDigest& o) const = default;
};

// The digest of every field of `request` (subject, arch, system calls, values), each
// length-prefixed (8 bytes, host order) so that different splits of the same bytes differ:
// SipHash-2-4, 128-bit output (libsodium's crypto_shorthash_siphashx24) of those fields laid
// end to end, computed as they are read (no copy, no allocation).
FeatureDigest DigestFeatures(const FeatureView& request);

// The per-process digest key (random, from libsodium), kFeatureDigestKeyBytes long. Exposed for
// tests that check DigestFeatures against libsodium.
inline constexpr size_t kFeatureDigestKeyBytes = 16;
const unsigned char* FeatureDigestKey();

struct VerdictCacheOptions {
  size_t capacity = 4096;  // entries; 0 disables the cache
  int64_t ttl_ns = 60'000'000'000;  // an entry older than this is a miss (and is dropped)
};

class VerdictCache {
 public:
  // `clock` (monotonic time) must outlive the cache.
  VerdictCache(const VerdictCacheOptions& options, const core::Clock& clock);
  VerdictCache(const VerdictCache&) = delete;
  VerdictCache& operator=(const VerdictCache&) = delete;

  // The verdict stored for `key` by model generation `generation` if it is younger than the
  // TTL; the entry becomes the most recently used. Counts a hit or a miss.
  std::optional<core::Verdict> Lookup(const FeatureDigest& key, uint64_t generation);
  // Lookup again for a request whose Lookup missed (e.g. when its turn comes in a queue): a hit
  // turns that miss into a hit; a miss is not counted twice.
  std::optional<core::Verdict> LookupAgain(const FeatureDigest& key, uint64_t generation);
  // Stores (or replaces) the verdict for `key`; evicts the least recently used entry when full.
  void Insert(const FeatureDigest& key, uint64_t generation, const core::Verdict& verdict);
  // Drops every entry.
  void Clear();

  size_t size() const;
  size_t capacity() const { return options_.capacity; }
  uint64_t hits() const;
  uint64_t misses() const;
  uint64_t evictions() const;
  // hits / (hits + misses); 0 before any lookup.
  double HitRate() const;

 private:
  struct KeyHash {
    size_t operator()(const FeatureDigest& d) const { return static_cast<size_t>(d.words[0]); }
  };
  struct Entry {
    FeatureDigest key;
    uint64_t generation = 0;
    int64_t stored_ns = 0;
    core::Verdict verdict;
  };
  using List = std::list<Entry>;  // most recently used first

  // Overwrites the entry at `at` with a new key and verdict (mu_ held). If copying the verdict
  // throws, the entry is removed (from the index too, if it is there under its old key) and
  // the exception goes on.
  void Store(List::iterator at, const FeatureDigest& key, uint64_t generation, int64_t now,
             const core::Verdict& verdict);
  // Lookup without counting: whether it hit goes to *hit.
  std::optional<core::Verdict> Find(const FeatureDigest& key, uint64_t generation, bool* hit);

  const VerdictCacheOptions options_;
  const core::Clock& clock_;
  mutable std::mutex mu_;
  List lru_;
  std::unordered_map<FeatureDigest, List::iterator, KeyHash> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace vigil::model
