#pragma once

// The index behind sequence covering (Marteau, "Sequence Covering for Efficient Host-Based
// Intrusion Detection", IEEE TIFS 14(4), 2019): a suffix automaton over the token sequences of
// normal traces, so that any run of tokens that occurs contiguously inside one training trace is
// one walk from the root. A stream is covered greedily, left to right, by the longest such runs
// ("segments"); the fewer segments per call, the more of the stream normal behaviour explains.
// A stream that splices together pieces of normal traces in a new order costs one segment per
// splice, however long the pieces: generalising over recombined normal behaviour is what an
// n-gram model of fixed order cannot do.

#include <cstdint>
#include <span>
#include <vector>

#include "model/flat_map.h"

namespace vigil::model {

class CoverIndex {
 public:
  using State = uint32_t;
  static constexpr State kRoot = 0;
  static constexpr State kDead = UINT32_MAX;  // no run ends here: the next token starts a segment
  static constexpr uint32_t kMaxTokens =
      8190;  // token values 0..kMaxTokens-1 fit the key's 13 bits

  CoverIndex() { Reset(); }

  // Starts a new training sequence: runs never span two sequences.
  void BeginSequence() { last_ = kRoot; }
  // Appends one token (< kMaxTokens) to the current sequence.
  void Append(uint32_t token);

  // The state after `token` from `s`; kDead when no training run continues that way (always for
  // s == kDead).
  State Step(State s, uint32_t token) const {
    if (s == kRoot) return token < root_.size() ? root_[token] : kDead;
    if (s == kDead || token >= kMaxTokens) return kDead;
    const uint32_t* t = next_.Find(Key(s, token));
    return t ? *t : kDead;
  }
  size_t states() const { return len_.size(); }
  size_t transitions() const { return next_.size(); }
  // Every token value appended so far is below this.
  uint32_t token_limit() const { return token_limit_; }

 private:
  static uint64_t Key(State s, uint32_t token) {
    return (static_cast<uint64_t>(s) + 1) << 13 | token;
  }
  void Reset();
  void Extend(uint32_t token);  // Append without the root_ refresh
  State NewState(uint32_t len, State link);

  std::vector<uint32_t> len_;  // longest run ending in each state
  std::vector<State> link_;    // suffix link (kDead for the root)
  FlatMap<State> next_;        // (state, token) -> state
  // The root's transitions again, indexed by token (kDead: none): every segment of a covering
  // starts here, so a stream that breaks often would otherwise pay a probe of next_ (a cache
  // miss in a table of millions of slots) twice per break. Kept equal to next_ by Append.
  std::vector<State> root_;
  State last_ = kRoot;
  uint32_t token_limit_ = 0;
};

// The greedy covering of one stream, one token at a time (no allocation): `segments()` runs of
// training tokens cover the tokens seen so far; a token the index cannot continue ends the
// current segment and starts the next one, and a token the index never saw is a segment alone.
class CoverWalk {
 public:
  explicit CoverWalk(const CoverIndex& index) : index_(&index) {}
  // Feeds one token; returns the length of the segment it ended (0 when it extended the current
  // one, or for the first token).
  uint64_t Push(uint32_t token) {
    ++tokens_;
    CoverIndex::State next = index_->Step(state_, token);
    uint64_t ended = 0;
    if (tokens_ == 1 || next == CoverIndex::kDead) {
      ended = tokens_ == 1 ? 0 : run_;
      ++segments_;
      run_ = 0;
      next = index_->Step(CoverIndex::kRoot, token);
    }
    state_ = next;
    ++run_;
    return ended;
  }
  uint64_t tokens() const { return tokens_; }
  uint64_t segments() const { return segments_; }
  // Segments per token (0 before any token): the raw anomaly score.
  double SegmentsPerToken() const {
    return tokens_ == 0 ? 0.0 : static_cast<double>(segments_) / static_cast<double>(tokens_);
  }

 private:
  const CoverIndex* index_;
  CoverIndex::State state_ = CoverIndex::kRoot;
  uint64_t tokens_ = 0;
  uint64_t segments_ = 0;
  uint64_t run_ = 0;  // tokens in the current segment
};

// Segments per token of a whole sequence.
double CoverScore(const CoverIndex& index, std::span<const uint32_t> tokens);

}  // namespace vigil::model
