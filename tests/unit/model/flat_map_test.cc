#include "model/flat_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>

namespace vigil::model {
namespace {

TEST(FlatMapTest, FindsWhatWasInsertedAcrossRehashes) {
  FlatMap<uint32_t> m;
  std::map<uint64_t, uint32_t> want;
  for (uint64_t i = 1; i <= 5000; ++i) {
    const uint64_t key = i * 0x9e3779b97f4a7c15ULL | 1;  // spread keys, never 0
    m[key] += static_cast<uint32_t>(i);
    want[key] += static_cast<uint32_t>(i);
  }
  EXPECT_EQ(m.size(), want.size());
  for (const auto& [k, v] : want) {
    const uint32_t* got = m.Find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(*got, v);
  }
  EXPECT_EQ(m.Find(2), nullptr);
}

TEST(FlatMapTest, ForEachVisitsEveryEntryOnce) {
  FlatMap<int> m;
  m.Reserve(100);
  for (uint64_t k = 1; k <= 100; ++k) m[k] = static_cast<int>(k);
  size_t visits = 0;
  int64_t sum = 0;
  m.ForEach([&](uint64_t k, int v) {
    ++visits;
    sum += v;
    EXPECT_EQ(static_cast<uint64_t>(v), k);
  });
  EXPECT_EQ(visits, 100u);
  EXPECT_EQ(sum, 5050);
}

TEST(FlatMapTest, OperatorBracketValueInitialisesNewEntries) {
  FlatMap<double> m;
  EXPECT_EQ(m[42], 0.0);
  m[42] = 1.5;
  EXPECT_EQ(m[42], 1.5);
  EXPECT_EQ(m.size(), 1u);
}

}  // namespace
}  // namespace vigil::model
