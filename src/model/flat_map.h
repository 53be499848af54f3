#pragma once

// A flat open-addressing hash map from non-zero uint64 keys to trivially copyable values, for
// the scoring hot path (one probe sequence per lookup, no allocation, no pointer chasing). Each
// key is stored next to its value, so a lookup that finds its key at the first slot touches one
// cache line, not one in a key array and one in a value array (the tables behind the sequence
// models are far larger than the caches, and a scoring request is mostly such misses).

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
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == 0) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  const V* Find(uint64_t key) const { return const_cast<FlatMap*>(this)->Find(key); }

  // Returns the value for key, inserting a value-initialised one if absent.
  V& operator[](uint64_t key) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(slots_.size() * 2);
    size_t i = Slot(key);
    while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == 0) {
      slots_[i].key = key;
      slots_[i].value = V{};
      ++size_;
    }
    return slots_[i].value;
  }

  size_t size() const { return size_; }

  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot_& s : slots_) {
      if (s.key != 0) f(s.key, s.value);
    }
  }

  template <typename F>
  void ForEachMutable(F&& f) {
    for (Slot_& s : slots_) {
      if (s.key != 0) f(s.key, s.value);
    }
  }

  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap * 3 < n * 4 + 4) cap *= 2;
    if (cap > slots_.size()) Rehash(cap);
  }

 private:
  size_t Slot(uint64_t key) const {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return static_cast<size_t>(key) & mask_;
  }
  void Rehash(size_t cap) {
    std::vector<Slot_> old = std::move(slots_);
    slots_.assign(cap, Slot_{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot_& s : old) {
      if (s.key != 0) (*this)[s.key] = s.value;
    }
  }

  struct Slot_ {
    uint64_t key = 0;
    V value{};
  };
  std::vector<Slot_> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace vigil::model
