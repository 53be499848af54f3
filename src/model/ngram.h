#pragma once

// An interpolated Kneser-Ney n-gram language model over small integer tokens (system calls).
// Training counts every n-gram of orders 1..N; Finalize() derives the smoothed distributions into
// one hash table whose entry for a token sequence holds everything scoring reads about it: its
// precomputed -log2 P as an n-gram, its Kneser-Ney count, and its statistics as a context. Scoring
// a seen n-gram is one probe; an unseen one walks at most N back-off levels, two probes a level,
// and the context probed at one position is the n-gram probed at the one before, in one entry.

#include <cstdint>
#include <span>
#include <vector>

#include "model/flat_map.h"

namespace vigil::model {

using Token = uint16_t;               // 0 is the unknown token
inline constexpr int kTokenBits = 10;  // vocabularies hold fewer than 1024 tokens
inline constexpr int kMaxOrder = 6;    // 6 tokens x 10 bits + a 4-bit order tag fit in 64 bits

class NgramLm {
 public:
  // 1 <= order <= kMaxOrder; vocab_size counts the unknown token too.
  NgramLm(int order, size_t vocab_size);

  int order() const { return order_; }
  size_t vocab_size() const { return vocab_size_; }

  // Training: counts the n-grams of one sequence (tokens < vocab_size).
  void AddSequence(std::span<const Token> seq);
  // Adds `count` occurrences of one n-gram given by its key (used when loading a model file).
  void AddCount(uint64_t key, uint32_t count) { raw_[key] += count; }
  // Derives the smoothed model; call once after the last AddSequence/AddCount and before
  // Surprisal. Calling Add* afterwards is a precondition violation.
  void Finalize();

  // -log2 P(w | history) in bits, where history holds the preceding tokens, oldest first; only
  // the last order-1 of them are used. Requires Finalize().
  float Surprisal(const Token* history, int history_len, Token w) const;
  // Surprisal of each of seq[hist..hist + n) given the tokens before it in seq (seq[0..hist) is
  // history), into out[0..n): the same floats as Surprisal(seq, p, seq[p]) for each position p,
  // but every hash probe of the run is prefetched before the first is read, so that the cache
  // misses of a window overlap instead of following one another. n <= kRunMax.
  static constexpr int kRunMax = 64;
  void SurprisalRun(const Token* seq, int hist, int n, float* out) const;

  // The raw n-gram counts of every order, for serialisation.
  const FlatMap<uint32_t>& raw_counts() const { return raw_; }
  size_t distinct_ngrams() const { return raw_.size(); }

  // Key of the n-gram tokens[0..n) (n >= 1); order n is recorded in the top 4 bits. Inline:
  // scoring computes one per token (a call to it was ~18 % of sequence scoring).
  static uint64_t Key(const Token* tokens, int n) { return PackTokens(tokens, n, n); }
  // Order of a key, and its tokens (out must hold kMaxOrder).
  static int KeyOrder(uint64_t key) { return static_cast<int>(key >> 60); }
  static void KeyTokens(uint64_t key, Token* out);

 private:
  struct ContextStats {
    uint32_t total = 0;  // sum over w of the order's counts of (h, w)
    uint32_t types = 0;  // distinct w seen after h
  };
  double Prob(const Token* h, int hlen, Token w) const;
  // tokens[0..n) packed 10 bits each, lowest first, with `tag` in the top 4 bits.
  static uint64_t PackTokens(const Token* tokens, int n, int tag) {
    uint64_t k = static_cast<uint64_t>(tag) << 60;
    for (int i = 0; i < n; ++i) k |= static_cast<uint64_t>(tokens[i]) << (kTokenBits * i);
    return k;
  }
  // What scoring reads about one token sequence g (16 bytes, four to a cache line).
  struct Entry {
    float surprisal = 0;  // -log2 P(g's last token | the tokens before it), as Surprisal gives it
    uint32_t count = 0;   // g's count used by KN (raw for order N, continuation below; 0 if none)
    ContextStats ctx;     // g as a context (total 0: nothing follows it)
  };

  int order_;
  size_t vocab_size_;
  double discount_[kMaxOrder + 1] = {};
  FlatMap<uint32_t> raw_;  // raw counts, all orders
  // Every n-gram with a KN count and every non-empty context, under Key(tokens, length).
  FlatMap<Entry> table_;
  ContextStats root_;  // the empty context (the unigrams')
  // P after the unigram level for each token < vocab_size: Prob's first step without its two
  // probes (every unseen n-gram goes through it).
  std::vector<double> unigram_;
  bool finalized_ = false;
};

}  // namespace vigil::model
