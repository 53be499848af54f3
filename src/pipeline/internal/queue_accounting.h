#pragma once

// Private to pipeline/: the non-template half of BoundedQueue<T> (source registry and drop
// counters), kept out of the template so that it is compiled once. Include queue.h instead.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"
#include "pipeline/queue_types.h"

namespace vigil::pipeline::internal {

// A counter that only the holder of the queue mutex writes and that any thread may read. Writers
// are serialised by that mutex, so a plain load+store is enough (no locked read-modify-write on
// the hot path); readers see some recent value.
class GuardedCounter {
 public:
  void Add(uint64_t n = 1) { v_.store(v_.load(kRelaxed) + n, kRelaxed); }
  void Sub(uint64_t n = 1) { v_.store(v_.load(kRelaxed) - n, kRelaxed); }
  uint64_t Get() const { return v_.load(kRelaxed); }

 private:
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
  std::atomic<uint64_t> v_{0};
};

struct SourceState {
  // Written once by Register() before the id is published; read-only afterwards.
  std::string name;
  SourceOptions options;
  size_t sample_threshold = 0;  // depth at or above which kSample applies

  // Guarded by the queue mutex.
  uint64_t sample_tick = 0;

  GuardedCounter accepted;
  GuardedCounter dropped_full;
  GuardedCounter evicted;
  GuardedCounter sampled_out;
  GuardedCounter rejected_closed;
  GuardedCounter popped;
  GuardedCounter queued;
};

class QueueAccounting {
 public:
  explicit QueueAccounting(size_t capacity);
  QueueAccounting(const QueueAccounting&) = delete;
  QueueAccounting& operator=(const QueueAccounting&) = delete;

  // See BoundedQueue::RegisterSource.
  core::Result<SourceId> Register(std::string_view name, const SourceOptions& options);

  // The state of `id`, or nullptr when no source has that id. Lock-free.
  SourceState* Find(SourceId id) {
    return id < published_.load(std::memory_order_acquire) ? &sources_[id] : nullptr;
  }

  void CountUnknownSource() { unknown_source_.fetch_add(1, std::memory_order_relaxed); }

  QueueStats Snapshot(size_t depth, bool closed) const;

 private:
  const size_t capacity_;
  mutable std::mutex register_mu_;  // serialises Register() and name reads in Snapshot()
  std::atomic<size_t> published_{0};
  std::atomic<uint64_t> unknown_source_{0};
  std::unique_ptr<SourceState[]> sources_;  // kMaxQueueSources entries; stable addresses
};

}  // namespace vigil::pipeline::internal
