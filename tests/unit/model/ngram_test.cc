#include "model/ngram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace vigil::model {
namespace {

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

// The prefetching run scorer gives Surprisal's floats exactly, whatever the order, the history
// before the run, the run's length (1..kRunMax) and unknown or out-of-vocabulary tokens.
TEST(NgramLmTest, SurprisalRunEqualsSurprisalAtEveryPosition) {
  std::mt19937 rng(7);
  constexpr size_t kV = 40;
  for (int order = 1; order <= kMaxOrder; ++order) {
    NgramLm lm(order, kV);
    for (const auto& s : PhraseCorpus(rng, kV, 60)) lm.AddSequence(s);
    lm.Finalize();
    for (const auto& seq : PhraseCorpus(rng, kV, 40)) {
      std::vector<Token> s = seq;
      for (Token& t : s) {
        if (rng() % 50 == 0) t = 0;  // unknown token
      }
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

}  // namespace
}  // namespace vigil::model
