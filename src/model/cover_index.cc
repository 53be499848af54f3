#include "model/cover_index.h"

#include <algorithm>
#include <cassert>

namespace vigil::model {

void CoverIndex::Reset() {
  len_.clear();
  link_.clear();
  next_ = FlatMap<State>();
  root_.clear();
  NewState(0, kDead);
  last_ = kRoot;
}

CoverIndex::State CoverIndex::NewState(uint32_t len, State link) {
  len_.push_back(len);
  link_.push_back(link);
  return static_cast<State>(len_.size() - 1);
}

void CoverIndex::Append(uint32_t c) {
  Extend(c);
  // Extend changes only transitions on c (added from the states on the suffix path, or
  // redirected to a clone), so the root's other entries stay right.
  if (root_.size() <= c) root_.resize(c + 1, kDead);
  const State* to = next_.Find(Key(kRoot, c));
  root_[c] = to != nullptr ? *to : kDead;
}

void CoverIndex::Extend(uint32_t c) {
  assert(c < kMaxTokens);
  token_limit_ = std::max(token_limit_, c + 1);
  // A generalised suffix automaton: when the run last+c already exists (the same prefix seen in
  // an earlier sequence), it is reused or split instead of adding a state.
  if (const State* q0 = next_.Find(Key(last_, c))) {
    const State q = *q0;
    if (len_[q] == len_[last_] + 1) {
      last_ = q;
      return;
    }
    const State clone = NewState(len_[last_] + 1, link_[q]);
    for (uint32_t t = 0; t < token_limit_; ++t) {
      if (const State* to = next_.Find(Key(q, t))) {
        const State target = *to;  // operator[] may rehash
        next_[Key(clone, t)] = target;
      }
    }
    for (State p = last_; p != kDead; p = link_[p]) {
      State* to = next_.Find(Key(p, c));
      if (to == nullptr || *to != q) break;
      *to = clone;
    }
    link_[q] = clone;
    last_ = clone;
    return;
  }
  const State cur = NewState(len_[last_] + 1, kRoot);
  State p = last_;
  while (p != kDead && next_.Find(Key(p, c)) == nullptr) {
    next_[Key(p, c)] = cur;
    p = link_[p];
  }
  if (p != kDead) {
    const State q = *next_.Find(Key(p, c));
    if (len_[p] + 1 == len_[q]) {
      link_[cur] = q;
    } else {
      const State clone = NewState(len_[p] + 1, link_[q]);
      for (uint32_t t = 0; t < token_limit_; ++t) {
        if (const State* to = next_.Find(Key(q, t))) {
          const State target = *to;  // operator[] may rehash
          next_[Key(clone, t)] = target;
        }
      }
      for (; p != kDead; p = link_[p]) {
        State* to = next_.Find(Key(p, c));
        if (to == nullptr || *to != q) break;
        *to = clone;
      }
      link_[q] = clone;
      link_[cur] = clone;
    }
  }
  last_ = cur;
}

double CoverScore(const CoverIndex& index, std::span<const uint32_t> tokens) {
  CoverWalk walk(index);
  for (uint32_t t : tokens) walk.Push(t);
  return walk.SegmentsPerToken();
}

}  // namespace vigil::model
