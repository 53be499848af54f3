#include "model/ngram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

namespace vigil::model {
namespace {

using Seq = std::vector<Token>;

// Vocabulary: 0 (unknown) and 1..5.
constexpr size_t kVocab = 6;

NgramLm TrainSmall(int order) {
  NgramLm lm(order, kVocab);
  const std::vector<std::vector<Token>> corpus = {
      {1, 2, 3, 1, 2, 3, 4},
      {2, 3, 1, 2, 4},
      {1, 2, 3, 4, 4, 5},
      {5, 1, 2, 3},
  };
  for (const auto& s : corpus) lm.AddSequence(s);
  lm.Finalize();
  return lm;
}

double MassOver(const NgramLm& lm, const std::vector<Token>& history) {
  double sum = 0;
  for (Token w = 0; w < lm.vocab_size(); ++w) {
    sum += std::exp2(
        -static_cast<double>(lm.Surprisal(history.data(), static_cast<int>(history.size()), w)));
  }
  return sum;
}

TEST(NgramLmTest, DistributionSumsToOneForEveryContext) {
  for (int order : {1, 2, 3, 6}) {
    const NgramLm lm = TrainSmall(order);
    const std::vector<std::vector<Token>> histories = {
        {},                     // no history
        {1},                    // seen context
        {1, 2},                 // seen, continued by 3 and 4
        {2, 3},                 // seen, continued by 1 and 4
        {4, 4},                 // seen once
        {5, 5},                 // never seen
        {0, 1},                 // unknown token in the history
        {3, 1, 2, 3, 4, 1, 2},  // longer than any order: only the tail counts
    };
    for (const auto& h : histories) {
      EXPECT_NEAR(MassOver(lm, h), 1.0, 1e-3) << "order " << order << " history size " << h.size();
    }
  }
}

TEST(NgramLmTest, SeenNgramIsLessSurprising) {
  const NgramLm lm = TrainSmall(3);
  const Token h[] = {1, 2};
  const float seen = lm.Surprisal(h, 2, 3);    // "1 2 3" occurs three times
  const float unseen = lm.Surprisal(h, 2, 5);  // "1 2 5" never occurs
  EXPECT_LT(seen, unseen);
  EXPECT_GT(seen, 0.0f);
  EXPECT_LT(seen, 1.0f);  // P(3 | 1 2) is high
}

TEST(NgramLmTest, UnknownTokenIsScoredAndSurprising) {
  const NgramLm lm = TrainSmall(3);
  const Token h[] = {1, 2};
  const float unknown = lm.Surprisal(h, 2, 0);
  EXPECT_TRUE(std::isfinite(unknown));
  EXPECT_GT(unknown, lm.Surprisal(h, 2, 3));
  EXPECT_GE(unknown, std::log2(static_cast<float>(kVocab)));  // no better than uniform
  const Token unknown_history[] = {0, 0};
  EXPECT_TRUE(std::isfinite(lm.Surprisal(unknown_history, 2, 1)));
}

TEST(NgramLmTest, HistoryLongerThanOrderUsesOnlyTheTail) {
  const NgramLm lm = TrainSmall(3);
  const Token long_h[] = {5, 4, 4, 1, 2};
  const Token short_h[] = {1, 2};
  EXPECT_EQ(lm.Surprisal(long_h, 5, 3), lm.Surprisal(short_h, 2, 3));
  EXPECT_EQ(lm.Surprisal(long_h, 5, 5), lm.Surprisal(short_h, 2, 5));
}

TEST(NgramLmTest, EmptyModelIsUniform) {
  NgramLm lm(4, kVocab);
  lm.Finalize();
  const Token h[] = {1, 2, 3};
  EXPECT_NEAR(lm.Surprisal(h, 3, 2), std::log2(static_cast<double>(kVocab)), 1e-5);
  EXPECT_NEAR(lm.Surprisal(nullptr, 0, 0), std::log2(static_cast<double>(kVocab)), 1e-5);
}

TEST(NgramLmTest, OrderIsClampedToSupportedRange) {
  EXPECT_EQ(NgramLm(0, kVocab).order(), 1);
  EXPECT_EQ(NgramLm(kMaxOrder + 3, kVocab).order(), kMaxOrder);
}

TEST(NgramLmTest, CountsAllOrdersOfEachSequence) {
  NgramLm lm(3, kVocab);
  const std::vector<Token> s = {1, 2, 3};
  lm.AddSequence(s);
  // 3 unigrams, 2 bigrams, 1 trigram.
  EXPECT_EQ(lm.distinct_ngrams(), 6u);
  const Token tri[] = {1, 2, 3};
  const uint32_t* c = lm.raw_counts().Find(NgramLm::Key(tri, 3));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c, 1u);
}

TEST(NgramLmTest, RebuildingFromRawCountsGivesTheSameModel) {
  const NgramLm lm = TrainSmall(3);
  NgramLm copy(3, kVocab);
  lm.raw_counts().ForEach([&](uint64_t key, uint32_t count) { copy.AddCount(key, count); });
  copy.Finalize();
  const std::vector<Token> seq = {5, 1, 2, 3, 4, 0, 2, 5, 5};
  for (size_t i = 0; i < seq.size(); ++i) {
    EXPECT_EQ(lm.Surprisal(seq.data(), static_cast<int>(i), seq[i]),
              copy.Surprisal(seq.data(), static_cast<int>(i), seq[i]))
        << "position " << i;
  }
}

TEST(NgramLmTest, KeyTokensRoundTripsEveryOrder) {
  const Token tokens[kMaxOrder] = {1023, 0, 7, 512, 1, 1022};
  for (int n = 1; n <= kMaxOrder; ++n) {
    const uint64_t key = NgramLm::Key(tokens, n);
    EXPECT_NE(key, 0u);
    EXPECT_EQ(NgramLm::KeyOrder(key), n);
    Token out[kMaxOrder] = {};
    NgramLm::KeyTokens(key, out);
    for (int i = 0; i < n; ++i) EXPECT_EQ(out[i], tokens[i]) << "n " << n << " i " << i;
    EXPECT_EQ(NgramLm::Key(out, n), key);
  }
}

TEST(NgramLmTest, KeysOfDifferentNgramsDiffer) {
  const Token a[] = {0};
  const Token b[] = {0, 0};
  const Token c[] = {1, 2};
  const Token d[] = {2, 1};
  EXPECT_NE(NgramLm::Key(a, 1), NgramLm::Key(b, 2));  // the order tag separates them
  EXPECT_NE(NgramLm::Key(c, 2), NgramLm::Key(d, 2));
}

// A corpus with structure (a few recurring phrases, mutated) over a vocabulary of `vocab`, so
// that a model trained on it has seen n-grams of every order and test sequences drawn the same
// way hit both seen n-grams and back-off walks of every depth.
std::vector<std::vector<Token>> PhraseCorpus(std::mt19937& rng, size_t vocab, int sequences) {
  std::uniform_int_distribution<int> tok(1, static_cast<int>(vocab) - 1);
  std::vector<std::vector<Token>> phrases(12);
  for (auto& p : phrases) {
    p.resize(3 + rng() % 8);
    for (Token& t : p) t = static_cast<Token>(tok(rng));
  }
  std::vector<std::vector<Token>> out(static_cast<size_t>(sequences));
  for (auto& s : out) {
    const size_t len = 1 + rng() % 200;
    while (s.size() < len) {
      const auto& p = phrases[rng() % phrases.size()];
      for (Token t : p) s.push_back(rng() % 10 == 0 ? static_cast<Token>(tok(rng)) : t);
    }
  }
  return out;
}

// A model of `order` trained on `sequences` phrase sequences.
NgramLm PhraseModel(std::mt19937& rng, int order, size_t vocab, int sequences) {
  NgramLm lm(order, vocab);
  for (const auto& s : PhraseCorpus(rng, vocab, sequences)) lm.AddSequence(s);
  lm.Finalize();
  return lm;
}

// Phrase sequences to score, with unknown tokens (0) mixed in, and with `outside`, tokens
// outside the vocabulary too.
std::vector<std::vector<Token>> TestSequences(std::mt19937& rng, size_t vocab, int n,
                                              bool outside) {
  auto out = PhraseCorpus(rng, vocab, n);
  for (auto& s : out) {
    for (Token& t : s) {
      if (rng() % 50 == 0) t = 0;
      if (outside && rng() % 97 == 0) t = static_cast<Token>(vocab);
    }
  }
  return out;
}

// The prefetching run scorer gives Surprisal's floats exactly, whatever the order, the history
// before the run, the run's length (1..kRunMax) and unknown or out-of-vocabulary tokens.
TEST(NgramLmTest, SurprisalRunEqualsSurprisalAtEveryPosition) {
  std::mt19937 rng(7);
  constexpr size_t kV = 40;
  for (int order = 1; order <= kMaxOrder; ++order) {
    const NgramLm lm = PhraseModel(rng, order, kV, 60);
    for (const auto& s : TestSequences(rng, kV, 40, true)) {
      const int hist = static_cast<int>(rng() % std::min<size_t>(s.size(), 8));
      const int n = std::min(static_cast<int>(s.size()) - hist, NgramLm::kRunMax);
      if (n <= 0) continue;
      float got[NgramLm::kRunMax];
      lm.SurprisalRun(s.data(), hist, n, got);
      for (int i = 0; i < n; ++i) {
        const int p = hist + i;
        ASSERT_EQ(got[i], lm.Surprisal(s.data(), p, s[static_cast<size_t>(p)]))
            << "order " << order << " position " << p << " hist " << hist;
      }
    }
  }
}

// Interpolated Kneser-Ney written out level by level over ordered maps of token vectors: the
// definition the model's tables must reproduce to the last bit (same operations, same order).
class ReferenceKn {
 public:
  explicit ReferenceKn(const NgramLm& lm) : order_(lm.order()), vocab_(lm.vocab_size()) {
    std::map<Seq, uint32_t> raw;
    lm.raw_counts().ForEach([&](uint64_t key, uint32_t c) {
      Token t[kMaxOrder];
      NgramLm::KeyTokens(key, t);
      raw[Seq(t, t + NgramLm::KeyOrder(key))] = c;
    });
    for (const auto& [g, c] : raw) {
      const int n = static_cast<int>(g.size());
      if (n == order_) num_[g] += c;
      if (n >= 2) num_[Seq(g.begin() + 1, g.end())] += 1;
    }
    for (const auto& [g, c] : raw) {
      if (static_cast<int>(g.size()) < order_ && num_.count(g) == 0) num_[g] = c;
    }
    double n1[kMaxOrder + 1] = {}, n2[kMaxOrder + 1] = {};
    for (const auto& [g, c] : num_) {
      if (c == 1) n1[g.size()] += 1;
      if (c == 2) n2[g.size()] += 1;
      Stats& s = ctx_[Seq(g.begin(), g.end() - 1)];
      s.total += c;
      s.types += 1;
    }
    for (int n = 1; n <= order_; ++n) {
      const double d = (n1[n] + 2 * n2[n]) > 0 ? n1[n] / (n1[n] + 2 * n2[n]) : 0.5;
      discount_[n] = std::clamp(d, 0.1, 0.95);
    }
  }

  // -log2 P(w | the last order-1 tokens of history), as a float.
  float Surprisal(const Seq& history, Token w) const {
    const size_t hlen = std::min(history.size(), static_cast<size_t>(order_ - 1));
    const Seq h(history.end() - static_cast<ptrdiff_t>(hlen), history.end());
    double p = 1.0 / static_cast<double>(vocab_);
    size_t k = 0;
    if (w < vocab_) {
      p = std::max(Level(Seq(), w, p), 1e-12);  // the model keeps this level clamped
      k = 1;
    }
    for (; k <= hlen; ++k) {
      if (!Seen(Seq(h.end() - static_cast<ptrdiff_t>(k), h.end()))) break;
      p = Level(Seq(h.end() - static_cast<ptrdiff_t>(k), h.end()), w, p);
    }
    return static_cast<float>(-std::log2(std::max(p, 1e-12)));
  }

 private:
  struct Stats {
    uint32_t total = 0, types = 0;
  };
  bool Seen(const Seq& ctx) const {
    auto it = ctx_.find(ctx);
    return it != ctx_.end() && it->second.total > 0;
  }
  // One interpolation step: P at context ctx from P below it.
  double Level(const Seq& ctx, Token w, double below) const {
    if (!Seen(ctx)) return below;
    const Stats& s = ctx_.at(ctx);
    Seq g = ctx;
    g.push_back(w);
    auto it = num_.find(g);
    const double d = discount_[ctx.size() + 1];
    const double seen = it != num_.end() ? std::max(it->second - d, 0.0) / s.total : 0.0;
    return seen + d * s.types / s.total * below;
  }

  int order_;
  size_t vocab_;
  std::map<Seq, uint32_t> num_;
  std::map<Seq, Stats> ctx_;
  double discount_[kMaxOrder + 1] = {};
};

// The model's precomputed and walked surprisals are the definition's, bit for bit, for seen and
// unseen n-grams of every order, unknown tokens and tokens outside the vocabulary.
TEST(NgramLmTest, SurprisalEqualsTheLevelByLevelDefinition) {
  std::mt19937 rng(11);
  constexpr size_t kV = 30;
  for (int order = 1; order <= kMaxOrder; ++order) {
    const NgramLm lm = PhraseModel(rng, order, kV, 50);
    const ReferenceKn ref(lm);
    size_t checked = 0;
    for (const auto& s : TestSequences(rng, kV, 30, true)) {
      for (size_t p = 0; p < s.size(); ++p, ++checked) {
        ASSERT_EQ(lm.Surprisal(s.data(), static_cast<int>(p), s[p]),
                  ref.Surprisal(Seq(s.begin(), s.begin() + static_cast<ptrdiff_t>(p)), s[p]))
            << "order " << order << " position " << p;
      }
    }
    EXPECT_GT(checked, 1000u);
  }
}

}  // namespace
}  // namespace vigil::model
