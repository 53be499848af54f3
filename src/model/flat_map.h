#pragma once

// A flat open-addressing hash map from non-zero uint64 keys to trivially copyable values, for
// the scoring hot path (one probe sequence per lookup, no allocation, no pointer chasing).

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vigil::model {

template <typename V>
class FlatMap {
 public:
  FlatMap() { Rehash(16); }

  // Key 0 is reserved as the empty marker; callers encode keys so that 0 never occurs.
  V* Find(uint64_t key) {
    size_t i = Slot(key);
    while (true) {
      if (keys_[i] == key) return &vals_[i];
      if (keys_[i] == 0) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  const V* Find(uint64_t key) const { return const_cast<FlatMap*>(this)->Find(key); }

  // Starts loading the cache lines a Find(key) reads first (its slot's key and value), without
  // waiting for them: issued for many keys before their Finds, the misses overlap.
  void Prefetch(uint64_t key) const {
    const size_t i = Slot(key);
    __builtin_prefetch(&keys_[i]);
    __builtin_prefetch(&vals_[i]);
  }

  // Returns the value for key, inserting a value-initialised one if absent.
  V& operator[](uint64_t key) {
    if ((size_ + 1) * 4 > keys_.size() * 3) Rehash(keys_.size() * 2);
    size_t i = Slot(key);
    while (keys_[i] != 0 && keys_[i] != key) i = (i + 1) & mask_;
    if (keys_[i] == 0) {
      keys_[i] = key;
      vals_[i] = V{};
      ++size_;
    }
    return vals_[i];
  }

  size_t size() const { return size_; }

  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != 0) f(keys_[i], vals_[i]);
    }
  }
  // As above, with each value writable (f must not insert).
  template <typename F>
  void ForEachValue(F&& f) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != 0) f(keys_[i], vals_[i]);
    }
  }

  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap * 3 < n * 4 + 4) cap *= 2;
    if (cap > keys_.size()) Rehash(cap);
  }

 private:
  size_t Slot(uint64_t key) const {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return static_cast<size_t>(key) & mask_;
  }
  void Rehash(size_t cap) {
    std::vector<uint64_t> old_keys = std::move(keys_);
    std::vector<V> old_vals = std::move(vals_);
    keys_.assign(cap, 0);
    vals_.assign(cap, V{});
    mask_ = cap - 1;
    size_ = 0;
    for (size_t i = 0; i < old_keys.size(); ++i) {
      if (old_keys[i] != 0) (*this)[old_keys[i]] = old_vals[i];
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<V> vals_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace vigil::model
