#include "model/trace_features.h"

#include <algorithm>
#include <cmath>

namespace vigil::model {
namespace {

constexpr float kOverBits[4] = {4, 8, 12, 16};
constexpr size_t kWindows[2] = {16, 64};
constexpr size_t kRing = 64;
constexpr double kQuantiles[3] = {0.5, 0.9, 0.99};

}  // namespace

TraceFeaturizer::TraceFeaturizer(SyscallVocabulary vocabulary,
                                 std::shared_ptr<const SequenceModel> ngram)
    : vocab_(std::move(vocabulary)),
      ngram_(std::move(ngram)),
      lm_(ngram_->SubjectFor(kGlobalSubject).lm.get()),
      names_(FeatureNames(vocab_, lm_->order())) {}

std::vector<std::string> TraceFeaturizer::FeatureNames(const SyscallVocabulary& vocabulary,
                                                       int order) {
  std::vector<std::string> n = {"trace.length_log2", "ngram.mean_bits", "ngram.max_bits",
                                "ngram.p50_bits",    "ngram.p90_bits",  "ngram.p99_bits"};
  for (float b : kOverBits)
    n.push_back("ngram.over_" + std::to_string(static_cast<int>(b)) + "_bits");
  for (size_t w : kWindows) n.push_back("ngram.window" + std::to_string(w) + "_max_bits");
  for (int k = 2; k <= order; ++k) n.push_back("ngram.unseen_" + std::to_string(k));
  n.push_back("ngram.unseen_distinct_log2");
  n.push_back("ngram.unseen_longest_run");
  n.push_back("ngram.unknown_calls");
  n.push_back("syscall.distinct");
  for (const std::string& name : vocabulary.FeatureNames()) n.push_back("syscall." + name);
  return n;
}

std::vector<float> TraceFeaturizer::Featurize(core::Arch arch, std::span<const int32_t> nrs) const {
  TraceFeatureStream s(*this);
  s.PushAll(arch, nrs);
  std::vector<float> out(dims());
  s.Features(out);
  return out;
}

TraceFeatureStream::TraceFeatureStream(const TraceFeaturizer& featurizer)
    : f_(featurizer),
      lm_(featurizer.lm()),
      order_(featurizer.lm().order()),
      hist_(kBins),
      ring_(kRing),
      bag_(featurizer.vocabulary()) {}

void TraceFeatureStream::Push(core::Arch arch, int32_t nr) {
  const Token t = f_.ngram().TokenOf(arch, nr);
  const float s = lm_.Surprisal(history_, hlen_, t);
  const uint64_t pos = calls_++;
  if (t == 0) ++unknown_;
  sum_bits_ += s;
  max_bits_ = std::max(max_bits_, s);
  for (size_t i = 0; i < 4; ++i) over_[i] += s > kOverBits[i] ? 1 : 0;
  ++hist_[static_cast<size_t>(std::clamp(static_cast<int>(s * kBinsPerBit), 0, kBins - 1))];
  for (size_t w = 0; w < 2; ++w) {
    if (pos >= kWindows[w]) win_sum_[w] -= ring_[(pos - kWindows[w]) % kRing];
    win_sum_[w] += s;
    if (pos + 1 >= kWindows[w]) {
      win_max_[w] = std::max(win_max_[w], static_cast<float>(win_sum_[w] / kWindows[w]));
    }
  }
  ring_[pos % kRing] = s;

  // The k-grams ending at this call: history_[hlen_-(k-1) .. hlen_) followed by t.
  Token g[kMaxOrder];
  std::copy(history_, history_ + hlen_, g);
  g[hlen_] = t;
  for (int k = 2; k <= order_; ++k) {
    if (hlen_ < k - 1) break;
    const Token* start = g + (hlen_ - (k - 1));
    const uint64_t key = NgramLm::Key(start, k);
    ++kgrams_[k];
    const bool seen = lm_.raw_counts().Find(key) != nullptr;
    if (!seen) ++unseen_[k];
    if (k == order_) {
      if (seen) {
        run_ = 0;
      } else {
        longest_run_ = std::max(longest_run_, ++run_);
        if (distinct_unseen_.size() < kMaxDistinct) distinct_unseen_[key] = 1;
      }
    }
  }
  if (order_ > 1) {
    if (hlen_ < order_ - 1) {
      history_[hlen_++] = t;
    } else {
      std::copy(history_ + 1, history_ + hlen_, history_);
      history_[hlen_ - 1] = t;
    }
  }
  bag_.Add(arch, nr);
}

void TraceFeatureStream::Features(std::span<float> out) const {
  std::fill(out.begin(), out.end(), 0.0f);
  size_t i = 0;
  auto put = [&](double v) {
    if (i < out.size()) out[i] = static_cast<float>(v);
    ++i;
  };
  const double n = static_cast<double>(calls_);
  put(std::log2(1.0 + n));
  put(calls_ ? sum_bits_ / n : 0.0);
  put(max_bits_);
  for (double q : kQuantiles) {
    double v = 0;
    if (calls_) {
      const double want = q * n;
      uint64_t cum = 0;
      for (int b = 0; b < kBins; ++b) {
        cum += hist_[static_cast<size_t>(b)];
        if (static_cast<double>(cum) >= want) {
          v = (b + 0.5) / kBinsPerBit;
          break;
        }
      }
    }
    put(v);
  }
  for (uint64_t o : over_) put(calls_ ? static_cast<double>(o) / n : 0.0);
  for (size_t w = 0; w < 2; ++w) {
    // A trace shorter than the window counts as one window.
    put(calls_ >= kWindows[w] ? win_max_[w] : (calls_ ? sum_bits_ / n : 0.0));
  }
  for (int k = 2; k <= order_; ++k) {
    put(kgrams_[k] ? static_cast<double>(unseen_[k]) / static_cast<double>(kgrams_[k]) : 0.0);
  }
  put(std::log2(1.0 + static_cast<double>(distinct_unseen_.size())));
  put(static_cast<double>(longest_run_));
  put(calls_ ? static_cast<double>(unknown_) / n : 0.0);
  size_t distinct = 0;
  for (uint64_t c : bag_.counts()) distinct += c ? 1 : 0;
  put(static_cast<double>(distinct));
  for (uint64_t c : bag_.counts()) put(calls_ ? static_cast<double>(c) / n : 0.0);
}

}  // namespace vigil::model
