#pragma once

// BoundedQueue<T>: the bounded hand-off between two pipeline stages. Many producers, one or many
// consumers. Each producer registers as a named source with its own backpressure policy, and
// every item that does not reach a consumer is counted by cause and by source, so that "what
// did we miss, and why" always has an answer (Tetragon-style missed-event counters).
//
// Implementation: one mutex, two condition variables and a ring of `capacity` slots allocated
// once. Consumers should prefer PopBatch: one lock round-trip moves many items. Nothing is
// allocated per item beyond T's own move; no strings are built on Push/Pop.
//
// Memory: the ring's storage is reserved at construction but a slot is constructed (and its
// pages touched) only when an item is first pushed into it, and the ring restarts at its first
// slot whenever it is empty. So a queue that never holds more than n items at once uses n
// slots' memory, whatever its capacity (slots_used()); a burst that fills it keeps its slots for
// the queue's lifetime.
//
// Thread-safety: every method may be called from any thread concurrently, including
// RegisterSource while other sources push.

#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/status.h"
#include "pipeline/internal/queue_accounting.h"
#include "pipeline/queue_types.h"

namespace vigil::pipeline {

// T must be default-constructible and move-assignable; the queue keeps every T it constructed
// (at most `capacity`, moved-from after a pop) alive for its whole lifetime.
template <typename T>
class BoundedQueue {
  static_assert(std::is_default_constructible_v<T> && std::is_move_assignable_v<T>);

 public:
  // Precondition: capacity >= 1 (asserted; 0 is treated as 1 in release builds).
  explicit BoundedQueue(size_t capacity);
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;
  // Precondition: no thread is inside any method (Close() and join first).
  ~BoundedQueue();

  // Registers a producer and returns its id (ids are dense: 0, 1, 2, ...). The name is for
  // reporting only. Fails with kInvalidArgument for an empty or duplicate name or bad options
  // (sample_one_in == 0, sample_high_water outside [0, 1]), and with kResourceExhausted after
  // kMaxQueueSources registrations.
  core::Result<SourceId> RegisterSource(std::string_view name, SourceOptions options = {});

  // Offers `item` on behalf of `source`; the source's policy decides (see BackpressurePolicy).
  // `item` is moved from only when the outcome is kAccepted or kDroppedOldestEvicted; on every
  // other outcome the caller still owns it unchanged. Under kBlock this waits until there is
  // room or the queue is closed (then kClosed). Never fails otherwise.
  PushOutcome Push(SourceId source, T&& item);
  // Offers every item of *items in order, as Push would one by one, under one lock and with one
  // wake-up of a waiting consumer (and one before each wait for room under kBlock), so a
  // producer that reads in bursts hands a burst over for one hand-off instead of one each.
  // Returns how many were accepted (kAccepted or kDroppedOldestEvicted); the others are counted
  // as Push counts them. *items is cleared (its capacity kept).
  size_t PushBatch(SourceId source, std::vector<T>* items);

  // Blocks until an item is available (kItem, *out assigned) or the queue is closed and empty
  // (kClosed, *out untouched). Items are delivered in push order.
  PopOutcome Pop(T* out);
  // As Pop, but gives up after `timeout` with kTimeout.
  PopOutcome PopFor(T* out, std::chrono::nanoseconds timeout);
  // Never blocks: kItem, kEmpty, or kClosed when closed and drained.
  PopOutcome TryPop(T* out);

  // Blocks until at least one item is available, then appends up to `max` items (in order) to
  // *out and returns how many. Returns 0 only when the queue is closed and drained (or max == 0).
  // Reuse *out across calls (clear(), not shrink) so that steady state allocates nothing.
  size_t PopBatch(std::vector<T>* out, size_t max);
  // As PopBatch but never blocks; 0 when nothing is queued (check closed() to tell why).
  size_t TryPopBatch(std::vector<T>* out, size_t max);
  // As PopBatch, but the n items taken are move-assigned over (*out)[0..n) (the vector grows
  // when shorter; elements from n on are left as they were) instead of appended. Keep *out
  // across calls: the heap buffers of the previous batch's items then go back into the slots
  // (a std::string moved onto one that owns a buffer hands that buffer to its source), and from
  // the slots to the items the producer pushes next, which it frees itself. A producer that
  // allocates and a consumer on another thread then stop passing freed memory between threads.
  size_t PopBatchOver(std::vector<T>* out, size_t max);

  // Refuses all further pushes, wakes every waiting producer (they return kClosed) and consumer
  // (they drain what is queued, then get kClosed / 0). Idempotent.
  void Close();

  bool closed() const;
  size_t size() const;
  size_t capacity() const { return capacity_; }
  // Slots constructed so far: the most items the queue has held at once (<= capacity()).
  size_t slots_used() const;

  // Counters; see QueueStats for what is consistent when.
  QueueStats Stats() const;

 private:
  struct Slot {
    T value{};
    SourceId source = 0;
  };
  // Storage for capacity_ slots, of which [0, constructed_) are constructed.
  struct SlotStorage {
    void operator()(Slot* p) const { std::allocator<Slot>().deallocate(p, n); }
    size_t n;
  };

  size_t Index(size_t offset) const {
    size_t i = head_ + offset;
    return i >= capacity_ ? i - capacity_ : i;
  }
  // All *Locked methods require mu_ held.
  void PushLocked(SourceId source, internal::SourceState& state, T&& item);
  // Push's decision for one item with `lock` held (it may wait on it under kBlock, waking a
  // waiting consumer first when `unannounced` items are queued that no consumer was told of).
  PushOutcome OfferLocked(SourceId source, internal::SourceState& state, T&& item,
                          std::unique_lock<std::mutex>& lock, bool* unannounced);
  // Unlinks the head item and returns it for the caller to move from before releasing mu_.
  T&& TakeFrontLocked();
  bool EvictOldestOfLocked(SourceId source, internal::SourceState& state);
  PopOutcome WaitAndPopLocked(T* out, std::unique_lock<std::mutex>& lock,
                              const std::chrono::steady_clock::time_point* deadline);
  // Called after releasing mu_ with the counts captured under it.
  void WakeProducers(size_t popped, size_t waiting);
  // Moves up to `max` items to *out, releases `lock` and wakes waiting producers.
  // PopBatch (over = false) and PopBatchOver (over = true).
  size_t WaitAndTakeBatch(std::vector<T>* out, size_t max, bool over);
  // `over`: move-assign over out's first elements (PopBatchOver) instead of appending.
  size_t TakeBatchLocked(std::unique_lock<std::mutex>& lock, std::vector<T>* out, size_t max,
                         bool over = false);

  const size_t capacity_;
  internal::QueueAccounting accounting_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::unique_ptr<Slot, SlotStorage> slots_;  // the storage; its slots are guarded by mu_
  size_t constructed_ = 0;         // guarded by mu_; the ring's tail is never beyond it
  size_t head_ = 0;                // guarded by mu_; 0 whenever the queue is empty
  size_t size_ = 0;                // guarded by mu_
  bool closed_ = false;            // guarded by mu_
  size_t waiting_consumers_ = 0;   // guarded by mu_
  size_t waiting_producers_ = 0;   // guarded by mu_
};

// ---------------------------------------------------------------------------------------------
// Implementation.

template <typename T>
BoundedQueue<T>::BoundedQueue(size_t capacity)
    : capacity_(capacity == 0 ? 1 : capacity),
      accounting_(capacity_),
      slots_(std::allocator<Slot>().allocate(capacity_), SlotStorage{capacity_}) {
  assert(capacity >= 1);
}

template <typename T>
BoundedQueue<T>::~BoundedQueue() {
  Slot* slots = slots_.get();
  for (size_t i = 0; i < constructed_; ++i) slots[i].~Slot();
}

template <typename T>
size_t BoundedQueue<T>::slots_used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return constructed_;
}

template <typename T>
core::Result<SourceId> BoundedQueue<T>::RegisterSource(std::string_view name,
                                                       SourceOptions options) {
  return accounting_.Register(name, options);
}

template <typename T>
PushOutcome BoundedQueue<T>::OfferLocked(SourceId source, internal::SourceState& state, T&& item,
                                         std::unique_lock<std::mutex>& lock, bool* unannounced) {
  const BackpressurePolicy policy = state.options.policy;
  PushOutcome outcome = PushOutcome::kAccepted;
  if (closed_) {
    state.rejected_closed.Add();
    return PushOutcome::kClosed;
  }
  if (policy == BackpressurePolicy::kSample && size_ >= state.sample_threshold) {
    if (state.sample_tick++ % state.options.sample_one_in != 0) {
      state.sampled_out.Add();
      return PushOutcome::kSampledOut;
    }
  }
  if (size_ == capacity_) {
    switch (policy) {
      case BackpressurePolicy::kBlock:
        // A consumer asleep since before this burst must hear of it, or both would wait.
        if (*unannounced && waiting_consumers_ > 0) not_empty_.notify_one();
        *unannounced = false;
        ++waiting_producers_;
        not_full_.wait(lock, [this] { return closed_ || size_ < capacity_; });
        --waiting_producers_;
        if (closed_) {
          state.rejected_closed.Add();
          return PushOutcome::kClosed;
        }
        break;
      case BackpressurePolicy::kDropOldest:
        if (!EvictOldestOfLocked(source, state)) {
          state.dropped_full.Add();
          return PushOutcome::kDroppedFull;
        }
        outcome = PushOutcome::kDroppedOldestEvicted;
        break;
      case BackpressurePolicy::kDropNewest:
      case BackpressurePolicy::kSample:
        state.dropped_full.Add();
        return PushOutcome::kDroppedFull;
    }
  }
  PushLocked(source, state, std::move(item));
  *unannounced = true;
  return outcome;
}

template <typename T>
PushOutcome BoundedQueue<T>::Push(SourceId source, T&& item) {
  internal::SourceState* state = accounting_.Find(source);
  if (state == nullptr) {
    assert(false && "BoundedQueue::Push: unregistered source");
    accounting_.CountUnknownSource();
    return PushOutcome::kUnknownSource;
  }
  std::unique_lock<std::mutex> lock(mu_);
  bool unannounced = false;
  const PushOutcome outcome = OfferLocked(source, *state, std::move(item), lock, &unannounced);
  const bool wake = unannounced && waiting_consumers_ > 0;
  lock.unlock();
  if (wake) not_empty_.notify_one();
  return outcome;
}

template <typename T>
size_t BoundedQueue<T>::PushBatch(SourceId source, std::vector<T>* items) {
  internal::SourceState* state = accounting_.Find(source);
  if (state == nullptr) {
    assert(false && "BoundedQueue::PushBatch: unregistered source");
    for (size_t i = 0; i < items->size(); ++i) accounting_.CountUnknownSource();
    items->clear();
    return 0;
  }
  size_t accepted = 0;
  std::unique_lock<std::mutex> lock(mu_);
  bool unannounced = false;
  for (T& item : *items) {
    const PushOutcome o = OfferLocked(source, *state, std::move(item), lock, &unannounced);
    if (o == PushOutcome::kAccepted || o == PushOutcome::kDroppedOldestEvicted) ++accepted;
  }
  const bool wake = unannounced && waiting_consumers_ > 0;
  const bool many = waiting_consumers_ > 1;
  lock.unlock();
  items->clear();
  if (wake) many ? not_empty_.notify_all() : not_empty_.notify_one();
  return accepted;
}

template <typename T>
void BoundedQueue<T>::PushLocked(SourceId source, internal::SourceState& state, T&& item) {
  const size_t tail = Index(size_);
  // The tail only ever moves one slot past the constructed ones: slots are used in order from
  // the first, and the ring restarts there when empty (TakeFrontLocked).
  assert(tail <= constructed_);
  if (tail == constructed_) {
    ::new (static_cast<void*>(slots_.get() + tail)) Slot();
    ++constructed_;
  }
  Slot& slot = slots_.get()[tail];
  slot.value = std::move(item);
  slot.source = source;
  ++size_;
  state.accepted.Add();
  state.queued.Add();
}

template <typename T>
T&& BoundedQueue<T>::TakeFrontLocked() {
  Slot& slot = slots_.get()[head_];
  internal::SourceState* state = accounting_.Find(slot.source);
  state->popped.Add();
  state->queued.Sub();
  // Empty: start again at the first slot, so that the slots in use stay the fewest that ever
  // held the queue's items at once.
  head_ = --size_ == 0 ? 0 : Index(1);
  return std::move(slot.value);
}

// Evicts the oldest queued item of `source` (not necessarily the head: another source's items
// are never dropped for this one), shifting the older items of other sources up by one slot.
template <typename T>
bool BoundedQueue<T>::EvictOldestOfLocked(SourceId source, internal::SourceState& state) {
  if (state.queued.Get() == 0) return false;
  size_t k = 0;
  Slot* slots = slots_.get();
  while (slots[Index(k)].source != source) ++k;
  for (; k > 0; --k) slots[Index(k)] = std::move(slots[Index(k - 1)]);
  slots[head_].value = T();  // release what the evicted item held
  head_ = --size_ == 0 ? 0 : Index(1);
  state.evicted.Add();
  state.queued.Sub();
  return true;
}

template <typename T>
void BoundedQueue<T>::WakeProducers(size_t popped, size_t waiting) {
  if (waiting == 0 || popped == 0) return;
  if (popped == 1) {
    not_full_.notify_one();
  } else {
    not_full_.notify_all();
  }
}

template <typename T>
PopOutcome BoundedQueue<T>::WaitAndPopLocked(
    T* out, std::unique_lock<std::mutex>& lock,
    const std::chrono::steady_clock::time_point* deadline) {
  if (size_ == 0 && !closed_) {
    ++waiting_consumers_;
    auto ready = [this] { return size_ > 0 || closed_; };
    bool got = true;
    if (deadline == nullptr) {
      not_empty_.wait(lock, ready);
    } else {
      got = not_empty_.wait_until(lock, *deadline, ready);
    }
    --waiting_consumers_;
    if (!got) return PopOutcome::kTimeout;
  }
  if (size_ == 0) return PopOutcome::kClosed;
  *out = TakeFrontLocked();
  return PopOutcome::kItem;
}

template <typename T>
PopOutcome BoundedQueue<T>::Pop(T* out) {
  std::unique_lock<std::mutex> lock(mu_);
  const PopOutcome outcome = WaitAndPopLocked(out, lock, nullptr);
  const size_t waiting = waiting_producers_;
  lock.unlock();
  WakeProducers(outcome == PopOutcome::kItem ? 1 : 0, waiting);
  return outcome;
}

template <typename T>
PopOutcome BoundedQueue<T>::PopFor(T* out, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  const PopOutcome outcome = WaitAndPopLocked(out, lock, &deadline);
  const size_t waiting = waiting_producers_;
  lock.unlock();
  WakeProducers(outcome == PopOutcome::kItem ? 1 : 0, waiting);
  return outcome;
}

template <typename T>
PopOutcome BoundedQueue<T>::TryPop(T* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (size_ == 0) return closed_ ? PopOutcome::kClosed : PopOutcome::kEmpty;
  *out = TakeFrontLocked();
  const size_t waiting = waiting_producers_;
  lock.unlock();
  WakeProducers(1, waiting);
  return PopOutcome::kItem;
}

template <typename T>
size_t BoundedQueue<T>::PopBatch(std::vector<T>* out, size_t max) {
  return WaitAndTakeBatch(out, max, /*over=*/false);
}

template <typename T>
size_t BoundedQueue<T>::WaitAndTakeBatch(std::vector<T>* out, size_t max, bool over) {
  if (max == 0) return 0;
  std::unique_lock<std::mutex> lock(mu_);
  if (size_ == 0 && !closed_) {
    ++waiting_consumers_;
    not_empty_.wait(lock, [this] { return size_ > 0 || closed_; });
    --waiting_consumers_;
  }
  return TakeBatchLocked(lock, out, max, over);
}

template <typename T>
size_t BoundedQueue<T>::TryPopBatch(std::vector<T>* out, size_t max) {
  std::unique_lock<std::mutex> lock(mu_);
  return TakeBatchLocked(lock, out, max);
}

template <typename T>
size_t BoundedQueue<T>::PopBatchOver(std::vector<T>* out, size_t max) {
  return WaitAndTakeBatch(out, max, /*over=*/true);
}

template <typename T>
size_t BoundedQueue<T>::TakeBatchLocked(std::unique_lock<std::mutex>& lock, std::vector<T>* out,
                                        size_t max, bool over) {
  const size_t n = size_ < max ? size_ : max;
  if (over) {
    if (out->size() < n) out->resize(n);
    for (size_t i = 0; i < n; ++i) (*out)[i] = TakeFrontLocked();
  } else {
    for (size_t i = 0; i < n; ++i) out->push_back(TakeFrontLocked());
  }
  const size_t waiting = waiting_producers_;
  lock.unlock();
  WakeProducers(n, waiting);
  return n;
}

template <typename T>
void BoundedQueue<T>::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

template <typename T>
bool BoundedQueue<T>::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

template <typename T>
size_t BoundedQueue<T>::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

template <typename T>
QueueStats BoundedQueue<T>::Stats() const {
  size_t depth;
  bool closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    depth = size_;
    closed = closed_;
  }
  return accounting_.Snapshot(depth, closed);
}

}  // namespace vigil::pipeline
