#include "model/ngram.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace vigil::model {

NgramLm::NgramLm(int order, size_t vocab_size)
    : order_(std::clamp(order, 1, kMaxOrder)), vocab_size_(std::max<size_t>(vocab_size, 1)) {}

void NgramLm::KeyTokens(uint64_t key, Token* out) {
  const int n = KeyOrder(key);
  for (int i = 0; i < n; ++i) {
    out[i] = static_cast<Token>((key >> (kTokenBits * i)) & ((1u << kTokenBits) - 1));
  }
}

void NgramLm::AddSequence(std::span<const Token> seq) {
  assert(!finalized_);
  for (size_t i = 0; i < seq.size(); ++i) {
    for (int n = 1; n <= order_ && static_cast<size_t>(n) <= i + 1; ++n) {
      raw_[Key(&seq[i + 1 - n], n)] += 1;
    }
  }
}

void NgramLm::Finalize() {
  // Counts used by Kneser-Ney: the highest order keeps raw counts; each lower-order n-gram g
  // counts the distinct tokens seen before it (N1+(. g)).
  FlatMap<uint32_t> num;
  num.Reserve(raw_.size());
  Token t[kMaxOrder];
  raw_.ForEach([&](uint64_t key, uint32_t count) {
    const int n = KeyOrder(key);
    if (n < 1 || n > order_) return;
    if (n == order_) num[key] += count;
    if (n >= 2) {
      KeyTokens(key, t);
      num[Key(t + 1, n - 1)] += 1;
    }
  });
  // Orders below N that were never preceded by anything (seen only at sequence starts) still
  // need mass: give them their raw count.
  raw_.ForEach([&](uint64_t key, uint32_t count) {
    const int n = KeyOrder(key);
    if (n >= 1 && n < order_ && num.Find(key) == nullptr) num[key] = count;
  });
  // Count-of-counts per order give Ney's discount D = n1 / (n1 + 2 n2); each n-gram's count
  // goes to its entry and into its context's statistics.
  table_ = FlatMap<Entry>();
  table_.Reserve(num.size());
  root_ = ContextStats{};
  double n1[kMaxOrder + 1] = {}, n2[kMaxOrder + 1] = {};
  num.ForEach([&](uint64_t key, uint32_t c) {
    const int n = KeyOrder(key);
    if (c == 1) n1[n] += 1;
    if (c == 2) n2[n] += 1;
    table_[key].count = c;
    KeyTokens(key, t);
    ContextStats& s = n == 1 ? root_ : table_[Key(t, n - 1)].ctx;
    s.total += c;
    s.types += 1;
  });
  for (int n = 1; n <= order_; ++n) {
    const double d = (n1[n] + 2 * n2[n]) > 0 ? n1[n] / (n1[n] + 2 * n2[n]) : 0.5;
    discount_[n] = std::clamp(d, 0.1, 0.95);
  }
  finalized_ = true;
  unigram_.clear();
  std::vector<double> unigram(vocab_size_);
  for (size_t w = 0; w < vocab_size_; ++w) unigram[w] = Prob(nullptr, 0, static_cast<Token>(w));
  unigram_ = std::move(unigram);
  // Every entry's surprisal, the one Prob gives (for a context that is no n-gram as well: it is
  // what scoring that sequence would compute).
  table_.ForEachValue([&](uint64_t key, Entry& e) {
    const int n = KeyOrder(key);
    KeyTokens(key, t);
    e.surprisal = static_cast<float>(-std::log2(Prob(t, n - 1, t[n - 1])));
  });
}

double NgramLm::Prob(const Token* h, int hlen, Token w) const {
  double p = 1.0 / static_cast<double>(vocab_size_);  // uniform
  int k = 0;
  if (w < unigram_.size()) {
    p = unigram_[w];  // the loop's first step, done in Finalize
    k = 1;
  }
  // Interpolate from the unigram level up to the full context.
  for (; k <= hlen; ++k) {
    const Token* ctx = h + (hlen - k);
    const ContextStats* s = &root_;
    if (k > 0) {
      const Entry* e = table_.Find(Key(ctx, k));
      s = e != nullptr ? &e->ctx : nullptr;
    }
    // Context unseen: keep the lower order. Finalize's contexts are closed under suffixes (a
    // context of length k + 1 is the prefix of a counted (k + 2)-gram, whose last k + 1 tokens
    // are counted too, with this context's last k tokens as their context), so no longer
    // context of this history was seen either: the rest of the loop would change nothing.
    if (s == nullptr || s->total == 0) break;
    // Key(ctx[0..k) w): the context's tokens with w above them, tagged with order k + 1.
    const uint64_t key = PackTokens(ctx, k, k + 1) |
                         static_cast<uint64_t>(w) << (kTokenBits * k);
    const Entry* c = table_.Find(key);
    const double d = discount_[k + 1];
    // An entry that is only a context has count 0: max(0 - d, 0) / total is 0, as for none.
    const double seen = c ? std::max(c->count - d, 0.0) / s->total : 0.0;
    p = seen + d * s->types / s->total * p;
  }
  return std::max(p, 1e-12);
}

float NgramLm::Surprisal(const Token* history, int history_len, Token w) const {
  assert(finalized_);
  const int hlen = std::min(history_len, order_ - 1);
  const Token* h = history + (history_len - hlen);
  const uint64_t key = PackTokens(h, hlen, hlen + 1) |
                       static_cast<uint64_t>(w) << (kTokenBits * hlen);
  if (const Entry* e = table_.Find(key)) return e->surprisal;
  return static_cast<float>(-std::log2(Prob(h, hlen, w)));
}

void NgramLm::SurprisalRun(const Token* seq, int hist, int n, float* out) const {
  assert(finalized_ && n <= kRunMax && hist >= 0);
  // 1. The key of every position's n-gram (history capped at order - 1), prefetched.
  uint64_t keys[kRunMax];
  for (int i = 0; i < n; ++i) {
    const int p = hist + i;
    const int hlen = std::min(p, order_ - 1);
    keys[i] = Key(seq + (p - hlen), hlen + 1);
    table_.Prefetch(keys[i]);
  }
  // 2. The n-grams seen in training are answered; the others wait for their back-off walk,
  // whose probes (each level's context and n-gram, as Prob reads them) are prefetched now.
  int pending[kRunMax];
  int npending = 0;
  for (int i = 0; i < n; ++i) {
    if (const Entry* e = table_.Find(keys[i])) {
      out[i] = e->surprisal;
      continue;
    }
    pending[npending++] = i;
    const int p = hist + i;
    const int hlen = std::min(p, order_ - 1);
    const Token* h = seq + (p - hlen);
    for (int k = 1; k <= hlen; ++k) {
      const Token* ctx = h + (hlen - k);
      table_.Prefetch(Key(ctx, k));
      table_.Prefetch(Key(ctx, k + 1));
    }
  }
  // 3. The walks, on lines now in flight or cached: Surprisal itself, so the floats are its own.
  for (int j = 0; j < npending; ++j) {
    const int p = hist + pending[j];
    out[pending[j]] = Surprisal(seq, p, seq[p]);
  }
}

}  // namespace vigil::model
