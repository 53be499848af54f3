#pragma once

// The trace featurizer of the triage family: turns one system-call trace into a fixed, named
// feature vector built from an unsupervised n-gram model ("syscall-ngram", trained on normal
// traces only) and a bag of system calls. Features, in order:
//
//   trace.length_log2            log2(1 + calls)
//   ngram.mean_bits              the n-gram model's raw score: mean surprisal (bits per call)
//   ngram.max_bits               the most surprising call
//   ngram.p50_bits .. p99_bits   surprisal quantiles (p50, p90, p99; 1/8-bit histogram bins)
//   ngram.over_{4,8,12,16}_bits  share of calls more surprising than that
//   ngram.window{16,64}_max_bits highest mean surprisal over any 16 / 64 consecutive calls
//   ngram.unseen_{2..N}          share of the trace's k-grams never seen in training (novelty)
//   ngram.unseen_distinct_log2   log2(1 + distinct order-N n-grams never seen in training)
//   ngram.unseen_longest_run     longest run of consecutive unseen order-N n-grams
//   ngram.unknown_calls          share of calls outside the model's vocabulary
//   syscall.distinct             distinct system calls in the trace
//   syscall.<name>, syscall.<other>  bag-of-syscalls frequencies over a fixed vocabulary
//
// The same streaming code computes features for training (whole traces) and for a live stream,
// so both see identical values. The n-gram model only ever saw normal traces; when the triage
// model is trained, its training rows get these features from n-gram models that did not see
// them (out-of-fold, see triage.h).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "model/features.h"
#include "model/flat_map.h"
#include "model/sequence_model.h"

namespace vigil::model {

class TraceFeaturizer;

// Features of one stream, updated per call without allocation (apart from the set of distinct
// unseen n-grams, which stops growing at 65536 entries).
class TraceFeatureStream {
 public:
  explicit TraceFeatureStream(const TraceFeaturizer& featurizer);
  void Push(core::Arch arch, int32_t nr);
  void PushAll(core::Arch arch, std::span<const int32_t> nrs) {
    for (int32_t nr : nrs) Push(arch, nr);
  }
  uint64_t calls() const { return calls_; }
  // Writes featurizer.dims() values into `out` (all 0 before any call).
  void Features(std::span<float> out) const;

 private:
  static constexpr int kBinsPerBit = 8;
  static constexpr int kBins = 64 * kBinsPerBit;
  static constexpr size_t kMaxDistinct = 65536;

  const TraceFeaturizer& f_;
  const NgramLm& lm_;
  int order_;
  Token history_[kMaxOrder] = {};
  int hlen_ = 0;
  uint64_t calls_ = 0;
  uint64_t unknown_ = 0;
  double sum_bits_ = 0;
  float max_bits_ = 0;
  uint64_t over_[4] = {};
  std::vector<uint32_t> hist_;
  std::vector<float> ring_;  // the last 64 surprisals
  double win_sum_[2] = {};
  float win_max_[2] = {};
  uint64_t kgrams_[kMaxOrder + 1] = {};
  uint64_t unseen_[kMaxOrder + 1] = {};
  uint64_t run_ = 0;
  uint64_t longest_run_ = 0;
  FlatMap<uint8_t> distinct_unseen_;
  SyscallBag bag_;
};

class TraceFeaturizer {
 public:
  // `vocabulary` fixes the bag's columns; `ngram` is a model trained on normal traces.
  TraceFeaturizer(SyscallVocabulary vocabulary, std::shared_ptr<const SequenceModel> ngram);

  size_t dims() const { return names_.size(); }
  const std::vector<std::string>& feature_names() const { return names_; }
  const SyscallVocabulary& vocabulary() const { return vocab_; }
  const SequenceModel& ngram() const { return *ngram_; }
  std::shared_ptr<const SequenceModel> ngram_ptr() const { return ngram_; }
  const NgramLm& lm() const { return *lm_; }

  TraceFeatureStream NewStream() const { return TraceFeatureStream(*this); }
  // Features of a whole trace (the same as a stream fed `nrs`).
  std::vector<float> Featurize(core::Arch arch, std::span<const int32_t> nrs) const;
  // The feature names a featurizer over `vocabulary` with an order-`order` model produces.
  static std::vector<std::string> FeatureNames(const SyscallVocabulary& vocabulary, int order);

 private:
  SyscallVocabulary vocab_;
  std::shared_ptr<const SequenceModel> ngram_;
  const NgramLm* lm_;
  std::vector<std::string> names_;
};

}  // namespace vigil::model
