#pragma once

// The value types of BoundedQueue<T> (queue.h): backpressure policies, push and pop outcomes,
// per-source options and the counter snapshot. Kept apart from the template so that code which
// only reports on queues (metrics, status) need not include it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::pipeline {

// Index of a producer registered with BoundedQueue::RegisterSource (0, 1, 2, ...).
using SourceId = uint16_t;
inline constexpr size_t kMaxQueueSources = 64;

// What a source's Push does when the queue cannot take its item. Chosen per source, so that a
// lossless source (a recorded file being replayed) and a lossy one (a live kernel stream that
// must never stall the kernel side) can share one queue.
enum class BackpressurePolicy : uint8_t {
  kBlock,       // the producer waits for room; nothing is lost (only Close() ends the wait)
  kDropNewest,  // the new item is refused
  kDropOldest,  // the oldest queued item *of the same source* is evicted to make room
  kSample,      // at or above the high-water mark admit 1 in N pushes; refuse when full
};

enum class PushOutcome : uint8_t {
  kAccepted,              // queued
  kDroppedFull,           // refused: queue full (kDropNewest, kSample, or kDropOldest with
                          // nothing of its own to evict)
  kDroppedOldestEvicted,  // queued, and this source's oldest queued item was dropped for it
  kSampledOut,            // refused by sampling (kSample above the high-water mark)
  kClosed,                // refused: the queue is closed
  kUnknownSource,         // refused: the id was never registered (a caller bug)
};

enum class PopOutcome : uint8_t {
  kItem,     // *out holds the item
  kEmpty,    // TryPop only: nothing queued right now
  kTimeout,  // PopFor only: nothing arrived within the timeout
  kClosed,   // closed and drained: nothing will ever arrive
};

std::string_view BackpressurePolicyName(BackpressurePolicy p);  // "block", "drop_newest", ...
std::string_view PushOutcomeName(PushOutcome o);                // "accepted", "dropped_full", ...
std::string_view PopOutcomeName(PopOutcome o);

struct SourceOptions {
  BackpressurePolicy policy = BackpressurePolicy::kBlock;
  // kSample only: admit the first of every `sample_one_in` pushes made while the queue depth is
  // at or above floor(capacity * sample_high_water). Must be >= 1; fraction in [0, 1].
  uint32_t sample_one_in = 10;
  double sample_high_water = 0.5;
};

// Counters of one source. For every source, at any quiescent point:
//   pushed == accepted + dropped_full + sampled_out + rejected_closed
//   accepted == popped + evicted + queued
// An item refused with kUnknownSource is counted queue-wide only (QueueStats::unknown_source).
struct SourceStats {
  std::string name;
  BackpressurePolicy policy = BackpressurePolicy::kBlock;
  uint64_t pushed = 0;
  uint64_t accepted = 0;
  uint64_t dropped_full = 0;
  uint64_t evicted = 0;  // accepted earlier, then dropped by this source's kDropOldest
  uint64_t sampled_out = 0;
  uint64_t rejected_closed = 0;
  uint64_t popped = 0;
  uint64_t queued = 0;
};

// A snapshot of a queue's counters. Each counter is exact, but while producers and consumers run
// the set is not one atomic cut; after Close() and a full drain it is exact and consistent.
// Totals are sums over `sources`.
struct QueueStats {
  size_t capacity = 0;
  size_t depth = 0;
  bool closed = false;
  uint64_t pushed = 0;
  uint64_t accepted = 0;
  uint64_t dropped_full = 0;
  uint64_t evicted = 0;
  uint64_t sampled_out = 0;
  uint64_t rejected_closed = 0;
  uint64_t popped = 0;
  uint64_t unknown_source = 0;
  std::vector<SourceStats> sources;  // indexed by SourceId
};

}  // namespace vigil::pipeline
