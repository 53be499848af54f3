#include "pipeline/queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace vigil::pipeline {
namespace {

// Items carry (producer, index) so that loss, duplication and reordering are all visible.
uint64_t Item(uint64_t producer, uint64_t index) { return (producer << 32) | index; }
uint64_t ProducerOf(uint64_t item) { return item >> 32; }
uint64_t IndexOf(uint64_t item) { return item & 0xffffffffu; }

template <typename T>
SourceId MustRegister(BoundedQueue<T>& q, const std::string& name, SourceOptions o = {}) {
  auto id = q.RegisterSource(name, o);
  EXPECT_TRUE(id.has_value()) << id.error().ToString();
  return id.value_or(0);
}

// Drains with PopBatch until closed; records what each consumer saw, in order.
void Consume(BoundedQueue<uint64_t>* q, size_t max_batch, std::vector<uint64_t>* seen) {
  std::vector<uint64_t> batch;
  while (true) {
    batch.clear();
    if (q->PopBatch(&batch, max_batch) == 0) return;
    seen->insert(seen->end(), batch.begin(), batch.end());
  }
}

TEST(BoundedQueueTest, NoLossUnderBlock) {
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 6; ++round) {
    const size_t capacity = 1 + rng() % 64;
    const size_t producers = 2 + rng() % 3;
    const size_t consumers = 1 + rng() % 3;
    BoundedQueue<uint64_t> q(capacity);
    std::vector<SourceId> ids;
    std::vector<uint64_t> counts;
    for (size_t p = 0; p < producers; ++p) {
      ids.push_back(MustRegister(q, "p" + std::to_string(p)));
      counts.push_back(2000 + rng() % 8000);
    }
    std::vector<std::vector<uint64_t>> seen(consumers);
    std::vector<std::thread> threads;
    for (size_t c = 0; c < consumers; ++c) {
      const size_t batch = 1 + rng() % 128;
      threads.emplace_back(Consume, &q, batch, &seen[c]);
    }
    std::vector<std::thread> pushers;
    for (size_t p = 0; p < producers; ++p) {
      pushers.emplace_back([&q, &ids, &counts, p] {
        for (uint64_t i = 0; i < counts[p]; ++i) {
          uint64_t item = Item(p, i);
          ASSERT_EQ(q.Push(ids[p], std::move(item)), PushOutcome::kAccepted);
        }
      });
    }
    for (auto& t : pushers) t.join();
    q.Close();
    for (auto& t : threads) t.join();

    std::vector<std::vector<bool>> got(producers);
    for (size_t p = 0; p < producers; ++p) got[p].assign(counts[p], false);
    for (const auto& s : seen) {
      std::vector<int64_t> last(producers, -1);
      for (uint64_t item : s) {
        const uint64_t p = ProducerOf(item);
        const uint64_t i = IndexOf(item);
        ASSERT_LT(p, producers);
        ASSERT_LT(i, counts[p]);
        ASSERT_FALSE(got[p][i]) << "duplicate " << p << ":" << i;
        got[p][i] = true;
        // One consumer sees each producer's items in push order.
        ASSERT_GT(static_cast<int64_t>(i), last[p]);
        last[p] = static_cast<int64_t>(i);
      }
    }
    for (size_t p = 0; p < producers; ++p) {
      EXPECT_EQ(std::count(got[p].begin(), got[p].end(), false), 0) << "lost items of " << p;
    }
    const QueueStats st = q.Stats();
    ASSERT_EQ(st.sources.size(), producers);
    for (size_t p = 0; p < producers; ++p) {
      EXPECT_EQ(st.sources[p].pushed, counts[p]);
      EXPECT_EQ(st.sources[p].accepted, counts[p]);
      EXPECT_EQ(st.sources[p].popped, counts[p]);
      EXPECT_EQ(st.sources[p].dropped_full + st.sources[p].evicted + st.sources[p].sampled_out, 0u);
    }
    EXPECT_EQ(st.depth, 0u);
    EXPECT_TRUE(st.closed);
  }
}

// PushBatch with bursts longer than the queue: each burst waits for room several times, and a
// consumer asleep on an empty queue must hear of the items queued before each wait (otherwise
// producer and consumer both wait for ever).
TEST(BoundedQueueTest, PushBatchLosesNothingWithBurstsLargerThanTheQueue) {
  std::mt19937_64 rng(20261127);
  for (int round = 0; round < 6; ++round) {
    const size_t capacity = 1 + rng() % 8;
    const size_t producers = 1 + rng() % 3;
    const size_t consumers = 1 + rng() % 2;
    BoundedQueue<uint64_t> q(capacity);
    std::vector<SourceId> ids;
    for (size_t p = 0; p < producers; ++p) ids.push_back(MustRegister(q, "p" + std::to_string(p)));
    const uint64_t count = 3000;
    std::vector<std::vector<uint64_t>> seen(consumers);
    std::vector<std::thread> threads;
    for (size_t c = 0; c < consumers; ++c) {
      threads.emplace_back(Consume, &q, 1 + rng() % 16, &seen[c]);
    }
    std::vector<std::thread> pushers;
    for (size_t p = 0; p < producers; ++p) {
      const uint64_t seed = rng();
      pushers.emplace_back([&q, &ids, p, seed, count] {
        std::mt19937_64 r(seed);
        std::vector<uint64_t> burst;
        uint64_t i = 0;
        while (i < count) {
          const uint64_t n = std::min<uint64_t>(1 + r() % 50, count - i);
          for (uint64_t k = 0; k < n; ++k) burst.push_back(Item(p, i++));
          ASSERT_EQ(q.PushBatch(ids[p], &burst), n);
          ASSERT_TRUE(burst.empty());
        }
      });
    }
    for (auto& t : pushers) t.join();
    q.Close();
    for (auto& t : threads) t.join();
    std::vector<std::vector<bool>> got(producers, std::vector<bool>(count, false));
    for (const auto& s : seen) {
      std::vector<int64_t> last(producers, -1);
      for (uint64_t item : s) {
        const uint64_t p = ProducerOf(item), i = IndexOf(item);
        ASSERT_LT(p, producers);
        ASSERT_FALSE(got[p][i]) << "duplicate " << p << ":" << i;
        got[p][i] = true;
        ASSERT_GT(static_cast<int64_t>(i), last[p]) << "out of order";
        last[p] = static_cast<int64_t>(i);
      }
    }
    for (size_t p = 0; p < producers; ++p) {
      EXPECT_EQ(std::count(got[p].begin(), got[p].end(), false), 0) << "lost items of " << p;
      EXPECT_EQ(q.Stats().sources[p].accepted, count);
    }
  }
}

TEST(BoundedQueueTest, PopBatchOverOverwritesTheFirstElementsAndLeavesTheRest) {
  BoundedQueue<uint64_t> q(8);
  const SourceId src = MustRegister(q, "src");
  std::vector<uint64_t> burst = {1, 2, 3};
  ASSERT_EQ(q.PushBatch(src, &burst), 3u);
  std::vector<uint64_t> out = {90, 91};  // shorter than the batch: it grows
  ASSERT_EQ(q.PopBatchOver(&out, 10), 3u);
  EXPECT_EQ(out, (std::vector<uint64_t>{1, 2, 3}));
  burst = {4};
  ASSERT_EQ(q.PushBatch(src, &burst), 1u);
  ASSERT_EQ(q.PopBatchOver(&out, 10), 1u);
  EXPECT_EQ(out, (std::vector<uint64_t>{4, 2, 3}));  // only the first is taken over
  burst = {5, 6, 7};
  ASSERT_EQ(q.PushBatch(src, &burst), 3u);
  ASSERT_EQ(q.PopBatchOver(&out, 2), 2u);  // at most max
  EXPECT_EQ(out, (std::vector<uint64_t>{5, 6, 3}));
  q.Close();
  ASSERT_EQ(q.PopBatchOver(&out, 10), 1u);  // drained after Close, then 0
  EXPECT_EQ(out[0], 7u);
  EXPECT_EQ(q.PopBatchOver(&out, 10), 0u);
  EXPECT_EQ(q.Stats().sources[0].popped, 7u);
}

// Counts how many are alive, to see which of a queue's slots were ever constructed.
struct Tracked {
  static inline int alive = 0;
  Tracked() { ++alive; }
  explicit Tracked(uint64_t v) : value(v) { ++alive; }
  Tracked(Tracked&& o) noexcept : value(o.value) { ++alive; }
  Tracked& operator=(Tracked&& o) noexcept {
    value = o.value;
    return *this;
  }
  ~Tracked() { --alive; }
  uint64_t value = 0;
};

// A queue's memory follows the most items it held at once, not its capacity: the agent's
// per-worker queues (thousands of ~400-byte events) must not be resident while nearly empty.
TEST(BoundedQueueTest, SlotsAreConstructedOnlyAsDeepAsTheQueueGets) {
  Tracked::alive = 0;
  {
    BoundedQueue<Tracked> q(4096);
    EXPECT_EQ(Tracked::alive, 0);
    EXPECT_EQ(q.slots_used(), 0u);
    const SourceId src = MustRegister(q, "src");
    std::vector<Tracked> burst;
    std::vector<Tracked> out;
    uint64_t next = 0, expect = 0;
    // Many rounds of at most 3 queued items: the ring would have gone round its 4,096 slots
    // several times over if it did not restart at the first slot when empty.
    for (int round = 0; round < 5000; ++round) {
      for (int i = 0; i < 1 + round % 3; ++i) burst.emplace_back(next++);
      ASSERT_EQ(q.PushBatch(src, &burst), static_cast<size_t>(1 + round % 3));
      const size_t n = q.PopBatchOver(&out, 2);  // may leave one behind for the next round
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i].value, expect++);
    }
    while (q.size() > 0) {
      const size_t n = q.TryPopBatch(&out, 8);
      for (size_t i = out.size() - n; i < out.size(); ++i) ASSERT_EQ(out[i].value, expect++);
    }
    EXPECT_EQ(expect, next);
    EXPECT_LE(q.slots_used(), 5u);
    EXPECT_EQ(q.capacity(), 4096u);
    // A burst as deep as the capacity still fits: the slots are built as it needs them.
    for (uint64_t i = 0; i < 4096; ++i) burst.emplace_back(i);
    ASSERT_EQ(q.PushBatch(src, &burst), 4096u);
    EXPECT_EQ(q.slots_used(), 4096u);
    Tracked extra(1);
    EXPECT_EQ(q.TryPop(&extra), PopOutcome::kItem);
    EXPECT_EQ(extra.value, 0u);
    EXPECT_EQ(q.Push(src, Tracked(7)), PushOutcome::kAccepted);  // wraps round to slot 0
    out.clear();
    ASSERT_EQ(q.TryPopBatch(&out, 5000), 4096u);
    EXPECT_EQ(out.front().value, 1u);
    EXPECT_EQ(out.back().value, 7u);
  }
  EXPECT_EQ(Tracked::alive, 0);  // every constructed slot was destroyed with the queue
}

// The point of PopBatchOver: a consumer's old strings go back to the producer through the slots.
TEST(BoundedQueueTest, PopBatchOverHandsTheConsumersBuffersBackToTheProducer) {
  BoundedQueue<std::string> q(1);
  const SourceId src = MustRegister(q, "src");
  std::string first(100, 'a');
  ASSERT_EQ(q.Push(src, std::move(first)), PushOutcome::kAccepted);
  std::vector<std::string> out = {std::string(200, 'b')};
  const char* consumers_buffer = out[0].data();
  ASSERT_EQ(q.PopBatchOver(&out, 1), 1u);
  EXPECT_EQ(out[0], std::string(100, 'a'));
  std::string second(100, 'c');
  ASSERT_EQ(q.Push(src, std::move(second)), PushOutcome::kAccepted);
  // The moved-from string now owns the consumer's old buffer (empty), not a fresh one.
  EXPECT_TRUE(second.empty());
  EXPECT_EQ(second.data(), consumers_buffer);
  ASSERT_EQ(q.PopBatchOver(&out, 1), 1u);
  EXPECT_EQ(out[0], std::string(100, 'c'));
}

TEST(BoundedQueueTest, PushBatchCountsEachItemAsPushWould) {
  BoundedQueue<uint64_t> q(3);
  const SourceId newest = MustRegister(q, "newest", {BackpressurePolicy::kDropNewest});
  const SourceId oldest = MustRegister(q, "oldest", {BackpressurePolicy::kDropOldest});
  std::vector<uint64_t> burst = {1, 2, 3, 4, 5};
  EXPECT_EQ(q.PushBatch(newest, &burst), 3u);  // 4 and 5 find the queue full
  EXPECT_TRUE(burst.empty());
  std::vector<uint64_t> out;
  ASSERT_EQ(q.TryPopBatch(&out, 10), 3u);
  EXPECT_EQ(out, (std::vector<uint64_t>{1, 2, 3}));

  burst = {10, 11, 12, 13, 14};
  EXPECT_EQ(q.PushBatch(oldest, &burst), 5u);  // 13 and 14 each evict the oldest of its own
  out.clear();
  ASSERT_EQ(q.TryPopBatch(&out, 10), 3u);
  EXPECT_EQ(out, (std::vector<uint64_t>{12, 13, 14}));

  QueueStats st = q.Stats();
  EXPECT_EQ(st.sources[0].accepted, 3u);
  EXPECT_EQ(st.sources[0].dropped_full, 2u);
  EXPECT_EQ(st.sources[1].accepted, 5u);
  EXPECT_EQ(st.sources[1].evicted, 2u);

  q.Close();
  burst = {20, 21};
  EXPECT_EQ(q.PushBatch(newest, &burst), 0u);
  EXPECT_TRUE(burst.empty());
  st = q.Stats();
  EXPECT_EQ(st.sources[0].rejected_closed, 2u);
}

// Lossy policies under contention: every outcome a producer saw is counted exactly, per source,
// and what the consumers received is exactly what was accepted and not evicted.
TEST(BoundedQueueTest, DropCountsAreExactPerSource) {
  std::mt19937_64 rng(77);
  for (int round = 0; round < 4; ++round) {
    const size_t capacity = 1 + rng() % 32;
    BoundedQueue<uint64_t> q(capacity);
    const std::vector<SourceOptions> opts = {
        {BackpressurePolicy::kDropNewest},
        {BackpressurePolicy::kDropOldest},
        {BackpressurePolicy::kSample, static_cast<uint32_t>(1 + rng() % 5), 0.5},
        {BackpressurePolicy::kBlock},
    };
    const size_t producers = opts.size();
    std::vector<SourceId> ids;
    for (size_t p = 0; p < producers; ++p) {
      ids.push_back(MustRegister(q, "src" + std::to_string(p), opts[p]));
    }
    const uint64_t per_producer = 3000 + rng() % 3000;
    struct Tally {
      uint64_t accepted = 0, evicting = 0, full = 0, sampled = 0, other = 0;
    };
    std::vector<Tally> tally(producers);
    std::vector<std::vector<uint64_t>> seen(2);
    std::thread c0(Consume, &q, 1, &seen[0]);
    std::thread c1(Consume, &q, 16, &seen[1]);
    std::vector<std::thread> pushers;
    for (size_t p = 0; p < producers; ++p) {
      pushers.emplace_back([&, p] {
        for (uint64_t i = 0; i < per_producer; ++i) {
          uint64_t item = Item(p, i);
          switch (q.Push(ids[p], std::move(item))) {
            case PushOutcome::kAccepted:
              ++tally[p].accepted;
              break;
            case PushOutcome::kDroppedOldestEvicted:
              ++tally[p].evicting;
              break;
            case PushOutcome::kDroppedFull:
              ++tally[p].full;
              break;
            case PushOutcome::kSampledOut:
              ++tally[p].sampled;
              break;
            default:
              ++tally[p].other;
              break;
          }
        }
      });
    }
    for (auto& t : pushers) t.join();
    q.Close();
    c0.join();
    c1.join();

    std::vector<uint64_t> received(producers, 0);
    std::vector<std::vector<bool>> got(producers, std::vector<bool>(per_producer, false));
    for (const auto& s : seen) {
      for (uint64_t item : s) {
        const uint64_t p = ProducerOf(item);
        ASSERT_LT(p, producers);
        ASSERT_FALSE(got[p][IndexOf(item)]) << "duplicate";
        got[p][IndexOf(item)] = true;
        ++received[p];
      }
    }
    const QueueStats st = q.Stats();
    for (size_t p = 0; p < producers; ++p) {
      const SourceStats& s = st.sources[p];
      const Tally& t = tally[p];
      SCOPED_TRACE(s.name + " policy " + std::string(BackpressurePolicyName(s.policy)));
      EXPECT_EQ(t.other, 0u);
      EXPECT_EQ(s.pushed, per_producer);
      EXPECT_EQ(s.accepted, t.accepted + t.evicting);
      EXPECT_EQ(s.dropped_full, t.full);
      EXPECT_EQ(s.sampled_out, t.sampled);
      EXPECT_EQ(s.accepted + s.dropped_full + s.sampled_out + s.rejected_closed, s.pushed);
      EXPECT_EQ(s.evicted, t.evicting);  // each evicting push dropped exactly one of its own
      EXPECT_EQ(s.popped, received[p]);
      EXPECT_EQ(s.accepted, s.popped + s.evicted);
      EXPECT_EQ(s.queued, 0u);
    }
    // The lossless source shared the queue with lossy ones and still lost nothing.
    EXPECT_EQ(received[3], per_producer);
  }
}

TEST(BoundedQueueTest, SampleAdmitsExactFractionAboveHighWater) {
  BoundedQueue<uint64_t> q(1000);
  const SourceId s = MustRegister(q, "sampled", {BackpressurePolicy::kSample, 10, 0.5});
  for (uint64_t i = 0; i < 500; ++i) {
    uint64_t v = i;
    ASSERT_EQ(q.Push(s, std::move(v)), PushOutcome::kAccepted) << i;
  }
  uint64_t admitted = 0;
  for (uint64_t i = 0; i < 4000; ++i) {
    uint64_t v = i;
    const PushOutcome o = q.Push(s, std::move(v));
    ASSERT_TRUE(o == PushOutcome::kAccepted || o == PushOutcome::kSampledOut);
    if (o == PushOutcome::kAccepted) {
      EXPECT_EQ(i % 10, 0u) << "the first of every 10 is admitted";
      ++admitted;
    }
  }
  EXPECT_EQ(admitted, 400u);
  const QueueStats st = q.Stats();
  EXPECT_EQ(st.sources[0].accepted, 900u);
  EXPECT_EQ(st.sources[0].sampled_out, 3600u);
  EXPECT_EQ(st.depth, 900u);
}

TEST(BoundedQueueTest, SampleRefusesWhenFullAndStopsBelowHighWater) {
  BoundedQueue<uint64_t> q(8);
  const SourceId s = MustRegister(q, "s", {BackpressurePolicy::kSample, 3, 0.5});
  std::vector<PushOutcome> outcomes;
  for (uint64_t i = 0; i < 22; ++i) {
    uint64_t v = i;
    outcomes.push_back(q.Push(s, std::move(v)));
  }
  using O = PushOutcome;
  const std::vector<PushOutcome> want = {
      O::kAccepted,    O::kAccepted,   O::kAccepted,   O::kAccepted,     // below threshold 4
      O::kAccepted,    O::kSampledOut, O::kSampledOut, O::kAccepted,     // ticks 0..3
      O::kSampledOut,  O::kSampledOut, O::kAccepted,   O::kSampledOut,   // ticks 4..7
      O::kSampledOut,  O::kAccepted,   O::kSampledOut, O::kSampledOut,   // 9: depth 8, full
      O::kDroppedFull, O::kSampledOut, O::kSampledOut, O::kDroppedFull,  // admitted but full
      O::kSampledOut,  O::kSampledOut};
  EXPECT_EQ(outcomes, want);
  std::vector<uint64_t> out;
  ASSERT_EQ(q.TryPopBatch(&out, 6), 6u);
  uint64_t v = 99;
  EXPECT_EQ(q.Push(s, std::move(v)), PushOutcome::kAccepted) << "depth 2 is below high water";
  const QueueStats st = q.Stats();
  EXPECT_EQ(st.sources[0].dropped_full, 2u);
  EXPECT_EQ(st.sources[0].sampled_out, 12u);
}

TEST(BoundedQueueTest, DropOldestEvictsOnlyItsOwnOldest) {
  BoundedQueue<std::string> q(4);
  const SourceId a = q.RegisterSource("a", {BackpressurePolicy::kBlock}).value();
  const SourceId b = q.RegisterSource("b", {BackpressurePolicy::kDropOldest}).value();
  for (const char* s : {"a1", "b1", "a2", "b2"}) {
    std::string v = s;
    ASSERT_EQ(q.Push(v[0] == 'a' ? a : b, std::move(v)), PushOutcome::kAccepted);
  }
  std::string b3 = "b3";
  EXPECT_EQ(q.Push(b, std::move(b3)), PushOutcome::kDroppedOldestEvicted);
  std::vector<std::string> out;
  ASSERT_EQ(q.TryPopBatch(&out, 10), 4u);
  EXPECT_EQ(out, (std::vector<std::string>{"a1", "a2", "b2", "b3"}));

  // Full of another source's items: nothing of its own to evict, so the new item is refused.
  for (const char* s : {"a3", "a4", "a5", "a6"}) {
    std::string v = s;
    ASSERT_EQ(q.Push(a, std::move(v)), PushOutcome::kAccepted);
  }
  std::string b4 = "b4";
  EXPECT_EQ(q.Push(b, std::move(b4)), PushOutcome::kDroppedFull);
  EXPECT_EQ(b4, "b4") << "a refused item stays with the caller";
  const QueueStats st = q.Stats();
  EXPECT_EQ(st.sources[1].evicted, 1u);
  EXPECT_EQ(st.sources[1].dropped_full, 1u);
  EXPECT_EQ(st.sources[0].evicted, 0u);
}

TEST(BoundedQueueTest, DropNewestRefusesWhenFull) {
  BoundedQueue<uint64_t> q(2);
  const SourceId s = MustRegister(q, "s", {BackpressurePolicy::kDropNewest});
  uint64_t v1 = 1, v2 = 2, v3 = 3;
  EXPECT_EQ(q.Push(s, std::move(v1)), PushOutcome::kAccepted);
  EXPECT_EQ(q.Push(s, std::move(v2)), PushOutcome::kAccepted);
  EXPECT_EQ(q.Push(s, std::move(v3)), PushOutcome::kDroppedFull);
  uint64_t out = 0;
  EXPECT_EQ(q.TryPop(&out), PopOutcome::kItem);
  EXPECT_EQ(out, 1u);
}

TEST(BoundedQueueTest, CloseWakesBlockedProducerAndConsumer) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  const SourceId s = q.RegisterSource("s").value();
  ASSERT_EQ(q.Push(s, std::make_unique<int>(1)), PushOutcome::kAccepted);
  PushOutcome blocked = PushOutcome::kAccepted;
  auto second = std::make_unique<int>(2);
  std::thread producer([&] { blocked = q.Push(s, std::move(second)); });
  q.Close();
  producer.join();
  EXPECT_EQ(blocked, PushOutcome::kClosed);
  ASSERT_NE(second, nullptr) << "a refused item stays with the caller";

  // What was queued before Close still drains, then consumers learn the queue is done.
  std::unique_ptr<int> out;
  EXPECT_EQ(q.Pop(&out), PopOutcome::kItem);
  EXPECT_EQ(*out, 1);
  EXPECT_EQ(q.Pop(&out), PopOutcome::kClosed);
  EXPECT_EQ(q.TryPop(&out), PopOutcome::kClosed);
  std::vector<std::unique_ptr<int>> batch;
  EXPECT_EQ(q.PopBatch(&batch, 8), 0u);
  EXPECT_EQ(q.Stats().sources[0].rejected_closed, 1u);
}

TEST(BoundedQueueTest, CloseWakesWaitingConsumer) {
  BoundedQueue<uint64_t> q(4);
  PopOutcome got = PopOutcome::kItem;
  size_t batch_got = 1;
  std::thread consumer([&] {
    uint64_t v;
    got = q.Pop(&v);
  });
  std::thread batcher([&] {
    std::vector<uint64_t> b;
    batch_got = q.PopBatch(&b, 4);
  });
  q.Close();
  consumer.join();
  batcher.join();
  EXPECT_EQ(got, PopOutcome::kClosed);
  EXPECT_EQ(batch_got, 0u);
}

TEST(BoundedQueueTest, PopForTimesOutAndTryPopReportsEmpty) {
  BoundedQueue<uint64_t> q(4);
  const SourceId s = MustRegister(q, "s");
  uint64_t v = 0;
  EXPECT_EQ(q.PopFor(&v, std::chrono::milliseconds(1)), PopOutcome::kTimeout);
  EXPECT_EQ(q.TryPop(&v), PopOutcome::kEmpty);
  std::vector<uint64_t> b;
  EXPECT_EQ(q.TryPopBatch(&b, 4), 0u);
  uint64_t x = 7;
  ASSERT_EQ(q.Push(s, std::move(x)), PushOutcome::kAccepted);
  EXPECT_EQ(q.PopFor(&v, std::chrono::seconds(10)), PopOutcome::kItem);
  EXPECT_EQ(v, 7u);
}

TEST(BoundedQueueTest, PushAfterCloseIsRefusedAndCounted) {
  BoundedQueue<std::string> q(4);
  const SourceId s = q.RegisterSource("s").value();
  q.Close();
  std::string item = "kept";
  EXPECT_EQ(q.Push(s, std::move(item)), PushOutcome::kClosed);
  EXPECT_EQ(item, "kept");
  EXPECT_EQ(q.Stats().rejected_closed, 1u);
}

TEST(BoundedQueueTest, RegisterSourceRejectsBadInput) {
  BoundedQueue<uint64_t> q(4);
  EXPECT_EQ(q.RegisterSource("").error().code(), core::StatusCode::kInvalidArgument);
  ASSERT_TRUE(q.RegisterSource("x").has_value());
  auto dup = q.RegisterSource("x");
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message().find("'x'"), std::string::npos) << dup.error().message();
  EXPECT_FALSE(q.RegisterSource("y", {BackpressurePolicy::kSample, 0, 0.5}).has_value());
  EXPECT_FALSE(q.RegisterSource("z", {BackpressurePolicy::kSample, 2, 1.5}).has_value());
  for (size_t i = 1; i < kMaxQueueSources; ++i) {
    ASSERT_TRUE(q.RegisterSource("s" + std::to_string(i)).has_value()) << i;
  }
  EXPECT_EQ(q.RegisterSource("one-too-many").error().code(), core::StatusCode::kResourceExhausted);
  EXPECT_EQ(q.Stats().sources.size(), kMaxQueueSources);
}

TEST(BoundedQueueTest, NamesAreStable) {
  EXPECT_EQ(BackpressurePolicyName(BackpressurePolicy::kDropOldest), "drop_oldest");
  EXPECT_EQ(PushOutcomeName(PushOutcome::kDroppedOldestEvicted), "dropped_oldest_evicted");
  EXPECT_EQ(PushOutcomeName(PushOutcome::kSampledOut), "sampled_out");
  EXPECT_EQ(PopOutcomeName(PopOutcome::kClosed), "closed");
}

}  // namespace
}  // namespace vigil::pipeline
