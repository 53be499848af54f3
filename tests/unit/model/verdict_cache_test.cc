#include "model/verdict_cache.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <optional>
#include <string>
#include <utility>
#include <thread>
#include <vector>

namespace vigil::model {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

FeatureDigest Key(int i) {
  const std::vector<float> v = {static_cast<float>(i)};
  return DigestFeatures({"prog", core::Arch::kX86_64, {}, v});
}

core::Verdict V(double score) {
  core::Verdict v;
  v.score = score;
  v.model_name = "m";
  return v;
}

TEST(FeatureDigestTest, EqualFeaturesGiveEqualDigests) {
  const std::vector<int32_t> s = {1, 2, 3};
  EXPECT_EQ(DigestFeatures({"a", core::Arch::kI386, s, {}}),
            DigestFeatures({"a", core::Arch::kI386, s, {}}));
}

TEST(FeatureDigestTest, EveryFieldChangesTheDigest) {
  const std::vector<int32_t> s = {1, 2, 3};
  const std::vector<int32_t> s2 = {1, 2, 4};
  const std::vector<float> v = {0.5f};
  const FeatureDigest base = DigestFeatures({"a", core::Arch::kI386, s, v});
  EXPECT_NE(base, DigestFeatures({"b", core::Arch::kI386, s, v}));
  EXPECT_NE(base, DigestFeatures({"a", core::Arch::kX86_64, s, v}));
  EXPECT_NE(base, DigestFeatures({"a", core::Arch::kI386, s2, v}));
  EXPECT_NE(base, DigestFeatures({"a", core::Arch::kI386, s, {}}));
}

TEST(FeatureDigestTest, FieldBoundariesAreNotAmbiguous) {
  // The same bytes split differently between the window and the vector must differ.
  const std::vector<int32_t> two = {0, 0};
  const std::vector<int32_t> one = {0};
  const std::vector<float> zero = {0.0f};
  EXPECT_NE(DigestFeatures({"", core::Arch::kI386, two, {}}),
            DigestFeatures({"", core::Arch::kI386, one, zero}));
}

// DigestFeatures hashes the fields as it reads them; it must equal libsodium's SipHash-2-4
// (128-bit) over the same fields laid out end to end, each after its length (8 bytes), for
// every split of the stream into 8-byte words (subjects of every length mod 8, empty fields).
TEST(FeatureDigestTest, MatchesLibsodiumOverTheLaidOutFields) {
  ASSERT_GE(sodium_init(), 0);
  auto append = [](std::vector<unsigned char>& out, const void* data, uint64_t len) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    const auto* l = reinterpret_cast<const unsigned char*>(&len);
    out.insert(out.end(), l, l + sizeof(len));
    if (len > 0) out.insert(out.end(), bytes, bytes + len);
  };
  uint32_t state = 7;
  auto next = [&] { return (state = state * 1664525u + 1013904223u) >> 8; };
  for (int i = 0; i < 400; ++i) {
    std::string subject(static_cast<size_t>(i % 23), 'x');
    for (char& c : subject) c = static_cast<char>('a' + next() % 26);
    std::vector<int32_t> calls(static_cast<size_t>(next() % 40));
    for (int32_t& c : calls) c = static_cast<int32_t>(next() % 400);
    std::vector<float> values(static_cast<size_t>(next() % 9));
    for (float& v : values) v = static_cast<float>(next() % 1000) / 7.0f;
    const auto arch = static_cast<core::Arch>(next() % 3);
    std::vector<unsigned char> laid;
    append(laid, subject.data(), subject.size());
    const auto a = static_cast<uint8_t>(arch);
    append(laid, &a, 1);
    append(laid, calls.data(), calls.size() * sizeof(int32_t));
    append(laid, values.data(), values.size() * sizeof(float));
    FeatureDigest want;
    crypto_shorthash_siphashx24(reinterpret_cast<unsigned char*>(want.words.data()), laid.data(),
                                laid.size(), FeatureDigestKey());
    ASSERT_EQ(DigestFeatures({subject, arch, calls, values}), want)
        << "case " << i << ": " << laid.size() << " bytes";
  }
}

TEST(FeatureDigestTest, DigestDoesNotDependOnEarlierRequests) {
  // A small request digested after a large one (and on another thread) must give the same
  // digest as before: no state carries over from one digest to the next.
  const std::vector<int32_t> small = {5, 6};
  const FeatureDigest first = DigestFeatures({"p", core::Arch::kI386, small, {}});
  const std::vector<int32_t> large(4096, 5);
  const std::vector<float> values(512, 1.5f);
  const FeatureDigest big = DigestFeatures({std::string(300, 'x'), core::Arch::kI386, large, values});
  EXPECT_NE(first, big);
  EXPECT_EQ(first, DigestFeatures({"p", core::Arch::kI386, small, {}}));
  FeatureDigest other;
  std::thread([&] { other = DigestFeatures({"p", core::Arch::kI386, small, {}}); }).join();
  EXPECT_EQ(first, other);
  // Distinct requests spread: 1,000 single-value requests, 1,000 distinct digests.
  std::vector<FeatureDigest> seen;
  for (int i = 0; i < 1000; ++i) {
    const FeatureDigest d = Key(i);
    for (const FeatureDigest& e : seen) ASSERT_NE(d, e) << i;
    seen.push_back(d);
  }
}

TEST(VerdictCacheTest, HitsAfterInsertAndCountsHitRate) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 8, .ttl_ns = 10 * kSecond}, clock);
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
  cache.Insert(Key(1), 1, V(0.25));
  auto hit = cache.Lookup(Key(1), 1);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->score, 0.25);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_DOUBLE_EQ(cache.HitRate(), 0.5);
}

// A request looked up twice (at submission, then when its queued turn comes) counts once.
TEST(VerdictCacheTest, LookingAgainCountsEachRequestOnce) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 8, .ttl_ns = 10 * kSecond}, clock);
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
  EXPECT_FALSE(cache.LookupAgain(Key(1), 1).has_value());
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_FALSE(cache.Lookup(Key(2), 1).has_value());
  cache.Insert(Key(2), 1, V(0.5));
  auto again = cache.LookupAgain(Key(2), 1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->score, 0.5);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);  // Key(2)'s first miss became its hit
  EXPECT_DOUBLE_EQ(cache.HitRate(), 0.5);
}

TEST(VerdictCacheTest, EntriesExpireAfterTheTtl) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 8, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.25));
  clock.Advance(10 * kSecond - 1);
  EXPECT_TRUE(cache.Lookup(Key(1), 1).has_value());
  clock.Advance(1);
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
  EXPECT_EQ(cache.size(), 0u);  // the expired entry is dropped
}

TEST(VerdictCacheTest, ReinsertingRefreshesTheEntry) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 8, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.25));
  clock.Advance(6 * kSecond);
  cache.Insert(Key(1), 1, V(0.75));
  clock.Advance(6 * kSecond);
  auto hit = cache.Lookup(Key(1), 1);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->score, 0.75);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(VerdictCacheTest, AnotherModelGenerationMisses) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 8, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.25));
  EXPECT_FALSE(cache.Lookup(Key(1), 2).has_value());
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());  // stale entries are dropped
}

TEST(VerdictCacheTest, EvictsTheLeastRecentlyUsed) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 2, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.1));
  cache.Insert(Key(2), 1, V(0.2));
  ASSERT_TRUE(cache.Lookup(Key(1), 1).has_value());  // 2 is now the least recently used
  cache.Insert(Key(3), 1, V(0.3));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_TRUE(cache.Lookup(Key(1), 1).has_value());
  EXPECT_FALSE(cache.Lookup(Key(2), 1).has_value());
  EXPECT_TRUE(cache.Lookup(Key(3), 1).has_value());
}

// When full, an insert takes over the evicted entry's storage: the new entry must carry only the
// new verdict, key, generation and time (nothing left over from the old one).
TEST(VerdictCacheTest, AnEvictedEntryIsReusedWhole) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 1, .ttl_ns = 10 * kSecond}, clock);
  core::Verdict big = V(0.9);
  big.model_version = "a version longer than the small-string buffer";
  big.subject = "a subject longer than the small-string buffer";
  big.events = 32;
  big.explanation = {{"the first reason, longer than sixteen bytes", 3.0},
                     {"the second reason, longer than sixteen bytes", 2.0},
                     {"third", 1.0}};
  cache.Insert(Key(1), 1, big);
  clock.Advance(5 * kSecond);
  core::Verdict small = V(0.1);
  small.explanation = {{"only", 0.5}};
  cache.Insert(Key(2), 2, small);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
  auto hit = cache.Lookup(Key(2), 2);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->score, 0.1);
  EXPECT_EQ(hit->model_name, "m");
  EXPECT_EQ(hit->model_version, "");
  EXPECT_EQ(hit->subject, "");
  EXPECT_EQ(hit->events, 0u);
  ASSERT_EQ(hit->explanation.size(), 1u);
  EXPECT_EQ(hit->explanation[0].what, "only");
  // Its age counts from its own insert, not the evicted entry's.
  clock.Advance(10 * kSecond - 1);
  EXPECT_TRUE(cache.Lookup(Key(2), 2).has_value());
  // And the reused entry is evicted in turn like any other.
  cache.Insert(Key(1), 1, big);
  EXPECT_FALSE(cache.Lookup(Key(2), 2).has_value());
  auto back = cache.Lookup(Key(1), 1);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->subject, big.subject);
  EXPECT_EQ(back->explanation.size(), 3u);
}

// The cache against a plain LRU list over random inserts and lookups with a small capacity, so
// that most inserts evict: same hits, same verdicts, same size.
TEST(VerdictCacheTest, AgreesWithAPlainLruUnderChurn) {
  core::FakeClock clock;
  constexpr size_t kCapacity = 4;
  VerdictCache cache({.capacity = kCapacity, .ttl_ns = 10 * kSecond}, clock);
  std::vector<std::pair<int, double>> lru;  // most recently used first
  auto touch = [&](int key) -> std::optional<double> {
    for (size_t i = 0; i < lru.size(); ++i) {
      if (lru[i].first != key) continue;
      const auto e = lru[i];
      lru.erase(lru.begin() + static_cast<ptrdiff_t>(i));
      lru.insert(lru.begin(), e);
      return e.second;
    }
    return std::nullopt;
  };
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int op = 0; op < 5000; ++op) {
    const int key = static_cast<int>((next() >> 16) % 10);
    if ((next() >> 16) % 2 == 0) {
      const double score = static_cast<double>(op);
      core::Verdict v = V(score);
      v.explanation.resize((next() >> 16) % 4, {"reason " + std::to_string(op), 1.0});
      cache.Insert(Key(key), 1, v);
      if (touch(key)) {
        lru.front().second = score;
      } else {
        if (lru.size() == kCapacity) lru.pop_back();
        lru.insert(lru.begin(), {key, score});
      }
    } else {
      const auto want = touch(key);
      const auto got = cache.Lookup(Key(key), 1);
      ASSERT_EQ(got.has_value(), want.has_value()) << "op " << op << " key " << key;
      if (got) {
        ASSERT_EQ(got->score, *want) << "op " << op;
        for (const core::Evidence& e : got->explanation) {
          ASSERT_EQ(e.what, "reason " + std::to_string(static_cast<int>(*want))) << "op " << op;
        }
      }
    }
    ASSERT_EQ(cache.size(), lru.size()) << "op " << op;
  }
}

TEST(VerdictCacheTest, ZeroCapacityDisablesTheCache) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 0, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.1));
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerdictCacheTest, ClearDropsEverything) {
  core::FakeClock clock;
  VerdictCache cache({.capacity = 4, .ttl_ns = 10 * kSecond}, clock);
  cache.Insert(Key(1), 1, V(0.1));
  cache.Insert(Key(2), 1, V(0.2));
  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.Lookup(Key(1), 1).has_value());
}

}  // namespace
}  // namespace vigil::model
