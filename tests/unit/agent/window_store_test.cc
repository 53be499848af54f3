#include "agent/window_store.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "agent/live_agent.h"

namespace vigil::agent {
namespace {

TEST(WindowStoreTest, GivesBackEveryWindowExactlyByProgramInOrder) {
  WindowStore store(10);
  constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
  constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
  const std::vector<int32_t> edges = {0, 1, 127, 128, 16383, 16384, 262, 1 << 21, -1, kMax, kMin};
  ASSERT_TRUE(store.Add("/usr/bin/b", core::Arch::kX86_64, edges));
  ASSERT_TRUE(store.Add("/usr/bin/a", core::Arch::kI386, std::vector<int32_t>{3, 4}));
  ASSERT_TRUE(store.Add("/usr/bin/b", core::Arch::kI386, std::vector<int32_t>{}));
  ASSERT_TRUE(store.Add("/usr/bin/b", core::Arch::kX86_64, std::vector<int32_t>{257, 0}));
  EXPECT_EQ(store.windows(), 4u);

  const std::vector<model::TrainingTrace> out = store.Take();
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].subject, "/usr/bin/a");  // programs in name order
  EXPECT_EQ(out[0].arch, core::Arch::kI386);
  EXPECT_EQ(out[0].syscalls, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(out[1].subject, "/usr/bin/b");  // then b's windows as they came
  EXPECT_EQ(out[1].arch, core::Arch::kX86_64);
  EXPECT_EQ(out[1].syscalls, edges);
  EXPECT_EQ(out[2].arch, core::Arch::kI386);
  EXPECT_TRUE(out[2].syscalls.empty());
  EXPECT_EQ(out[3].syscalls, (std::vector<int32_t>{257, 0}));

  EXPECT_EQ(store.windows(), 0u);  // taken: empty, and usable again
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_TRUE(store.Take().empty());
  ASSERT_TRUE(store.Add("/usr/bin/a", core::Arch::kX86_64, std::vector<int32_t>{9}));
  EXPECT_EQ(store.Take().at(0).syscalls, std::vector<int32_t>{9});
}

TEST(WindowStoreTest, RefusesWindowsBeyondEachProgramsBound) {
  WindowStore store(2);
  const std::vector<int32_t> w = {1, 2, 3};
  EXPECT_TRUE(store.Add("a", core::Arch::kX86_64, w));
  EXPECT_TRUE(store.Add("a", core::Arch::kX86_64, w));
  EXPECT_FALSE(store.Add("a", core::Arch::kX86_64, w));
  EXPECT_TRUE(store.Add("b", core::Arch::kX86_64, w));  // the bound is per program
  EXPECT_EQ(store.windows(), 3u);
  WindowStore none(0);
  EXPECT_FALSE(none.Add("a", core::Arch::kX86_64, w));
  EXPECT_EQ(none.windows(), 0u);
}

// The point of the store: a learning agent on a busy host holds tens of thousands of windows.
// x86-64 numbers below 128 take a byte, the rest below 16,384 two, plus 5 bytes a window
// (a TrainingTrace per window took 400 bytes of calls alone, in a block of its own).
TEST(WindowStoreTest, HoldsAHundredCallWindowInAboutOneToTwoBytesACall) {
  WindowStore store(100000);
  std::vector<int32_t> window(100);
  for (size_t i = 0; i < window.size(); ++i) window[i] = i % 2 == 0 ? 0 : 257;  // read, openat
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(store.Add("/usr/bin/x", core::Arch::kX86_64, window));
  EXPECT_EQ(store.bytes(), 10000u * (50 * 1 + 50 * 2 + 5));
}

// ReleaseFreeHeap hands back free memory that glibc keeps: memory freed below a block still in
// use is not returned by free() itself.
TEST(ReleaseFreeHeapTest, ReturnsFreedPagesHeldBelowALiveBlock) {
#ifndef __GLIBC__
  GTEST_SKIP() << "malloc_trim is glibc's";
#else
  auto resident_kb = [] {
    long pages = 0, resident = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return -1L;
    const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
    std::fclose(f);
    return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1L;
  };
  // 32 MB in 1 KB blocks (below the mmap threshold: from the heap), then a block above them.
  std::vector<void*> blocks(32 * 1024);
  for (void*& b : blocks) {
    b = std::malloc(1000);
    ASSERT_NE(b, nullptr);
    static_cast<volatile char*>(b)[0] = 1;
    static_cast<volatile char*>(b)[999] = 1;
  }
  void* pin = std::malloc(1000);
  ASSERT_NE(pin, nullptr);
  for (void* b : blocks) std::free(b);
  const long before = resident_kb();
  ASSERT_GT(before, 0);
  EXPECT_TRUE(ReleaseFreeHeap());
  const long after = resident_kb();
  std::free(pin);
  EXPECT_LT(after, before - 16 * 1024) << "resident " << before << " kB -> " << after << " kB";
#endif
}

// With the threshold fixed, a large block is a mapping of its own every time: glibc's default
// raises the threshold when the first one is freed, and the second would come from the heap.
TEST(KeepLargeBlocksOutOfTheHeapTest, LargeBlocksStayMappingsAfterOneIsFreed) {
#ifndef __GLIBC__
  GTEST_SKIP() << "mallopt and mallinfo2 are glibc's";
#else
  KeepLargeBlocksOutOfTheHeap();
  const size_t mapped_before = mallinfo2().hblkhd;
  void* first = std::malloc(size_t{1} << 20);
  ASSERT_NE(first, nullptr);
  EXPECT_GE(mallinfo2().hblkhd, mapped_before + (size_t{1} << 20));
  std::free(first);
  void* second = std::malloc(size_t{1} << 20);
  ASSERT_NE(second, nullptr);
  EXPECT_GE(mallinfo2().hblkhd, mapped_before + (size_t{1} << 20)) << "came from the heap";
  std::free(second);
  EXPECT_LT(mallinfo2().hblkhd, mapped_before + (size_t{1} << 20));  // unmapped when freed
#endif
}

}  // namespace
}  // namespace vigil::agent
