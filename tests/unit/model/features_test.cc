#include "model/features.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace vigil::model {
namespace {

constexpr int32_t kRead = 3, kWrite = 4, kOpen = 5, kExecve = 11;  // i386

SyscallVocabulary Vocab(std::vector<std::string> names) {
  auto v = SyscallVocabulary::Create(std::move(names));
  EXPECT_TRUE(v.has_value()) << v.error().ToString();
  return std::move(v).value();
}

TEST(SyscallVocabularyTest, RefusesEmptyDuplicateAndReservedNames) {
  EXPECT_FALSE(SyscallVocabulary::Create({"read", ""}).has_value());
  EXPECT_FALSE(SyscallVocabulary::Create({"read", "read"}).has_value());
  EXPECT_FALSE(SyscallVocabulary::Create({std::string(kOtherSyscallFeature)}).has_value());
  EXPECT_TRUE(SyscallVocabulary::Create({}).has_value());
}

TEST(SyscallVocabularyTest, MapsBothArchitecturesAndSendsTheRestToOther) {
  const SyscallVocabulary v = Vocab({"read", "execve"});
  EXPECT_EQ(v.dims(), 3u);
  EXPECT_EQ(v.IndexOf(core::Arch::kI386, kRead), 0u);
  EXPECT_EQ(v.IndexOf(core::Arch::kI386, kExecve), 1u);
  EXPECT_EQ(v.IndexOf(core::Arch::kX86_64, 0), 0u);   // read on x86-64
  EXPECT_EQ(v.IndexOf(core::Arch::kX86_64, 59), 1u);  // execve on x86-64
  EXPECT_EQ(v.IndexOf(core::Arch::kI386, kWrite), v.other());
  EXPECT_EQ(v.IndexOf(core::Arch::kI386, -1), v.other());
  EXPECT_EQ(v.IndexOf(core::Arch::kI386, 100000), v.other());
  EXPECT_EQ(v.IndexOf(core::Arch::kUnknown, kRead), v.other());
  EXPECT_EQ(v.FeatureNames(), (std::vector<std::string>{"read", "execve", "<other>"}));
}

TEST(SyscallVocabularyTest, CollectsNamesInOrderOfFirstAppearance) {
  const std::vector<std::vector<int32_t>> traces = {{kOpen, kRead, kRead, 9999}, {kWrite, kOpen}};
  EXPECT_EQ(SyscallVocabulary::CollectNames(core::Arch::kI386, traces),
            (std::vector<std::string>{"open", "read", "write"}));
}

TEST(SyscallBagTest, FrequenciesSumToOne) {
  const SyscallVocabulary v = Vocab({"read", "write"});
  const std::vector<int32_t> trace = {kRead, kRead, kRead, kWrite, kOpen, kOpen, kRead, kWrite};
  const std::vector<float> f = BagOfSyscalls(v, core::Arch::kI386, trace);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_FLOAT_EQ(f[0], 0.5f);
  EXPECT_FLOAT_EQ(f[1], 0.25f);
  EXPECT_FLOAT_EQ(f[2], 0.25f);
  EXPECT_FLOAT_EQ(std::accumulate(f.begin(), f.end(), 0.0f), 1.0f);
  const std::vector<float> empty = BagOfSyscalls(v, core::Arch::kI386, {});
  EXPECT_EQ(empty, std::vector<float>(3, 0.0f));
}

TEST(SlidingWindowCounterTest, CountsOnlyTheLastWindowItems) {
  SlidingWindowCounter w(3, 4);
  for (uint32_t i : {0u, 0u, 1u, 2u}) w.Add(i);
  EXPECT_EQ(w.counts(), (std::vector<uint32_t>{2, 1, 1}));
  w.Add(2);  // drops the first 0
  w.Add(2);  // drops the second 0
  EXPECT_EQ(w.counts(), (std::vector<uint32_t>{0, 1, 3}));
  EXPECT_EQ(w.size(), 4u);
  w.Add(7);  // out of range: ignored
  EXPECT_EQ(w.counts(), (std::vector<uint32_t>{0, 1, 3}));
  std::vector<float> f(3);
  w.Frequencies(f);
  EXPECT_FLOAT_EQ(f[2], 0.75f);
  w.Clear();
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.counts(), (std::vector<uint32_t>{0, 0, 0}));
}

}  // namespace
}  // namespace vigil::model
