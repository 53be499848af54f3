#pragma once

// The pipeline adapter of the "kitnet" family (model/kitnet.h): a stream of system calls is
// scored on its trace features, the frequency of each system call of a vocabulary (as
// model/features.h's SyscallBag) followed by the frequency of each of the `bigrams` call pairs
// most common in training ("read>write": a call of the first name directly followed by one of
// the second). The explanation names the features the autoencoders reconstructed worst.
//
// The features are stored in the model file as feature names (docs/model-file-format.md): the
// vocabulary, "<other>", then one "a>b" per pair, each side a vocabulary name or "<other>".

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "model/features.h"
#include "model/flat_map.h"
#include "model/kitnet.h"
#include "model/model.h"
#include "model/sequence_model.h"

namespace vigil::model {

// The syscall feature space: unigram frequencies over a vocabulary, then chosen pairs.
class TraceFeatureSpace {
 public:
  // `pairs` are feature indices of the vocabulary (each <= vocab.size(), the last being
  // "<other>"), distinct.
  static core::Result<TraceFeatureSpace> Create(SyscallVocabulary vocab,
                                                std::vector<std::pair<uint32_t, uint32_t>> pairs);
  // Rebuilds the space from feature names as FeatureNames() writes them.
  static core::Result<TraceFeatureSpace> FromNames(std::span<const std::string> names);
  // The vocabulary of `traces` and their `bigrams` most frequent pairs (ties by first
  // appearance), 0..1024 pairs.
  static core::Result<TraceFeatureSpace> Learn(std::span<const TrainingTrace> traces,
                                               size_t bigrams);

  size_t dims() const { return vocab_.dims() + pairs_.size(); }
  std::vector<std::string> FeatureNames() const;
  const SyscallVocabulary& vocabulary() const { return vocab_; }
  size_t pairs() const { return pairs_.size(); }

  // Counts of one stream; Add is O(1) and does not allocate.
  class Counter {
   public:
    explicit Counter(const TraceFeatureSpace& space)
        : space_(&space), counts_(space.dims(), 0) {}
    void Add(core::Arch arch, int32_t nr);
    uint64_t total() const { return total_; }
    // The feature row (dims() entries) into `out`: unigram counts / calls, pair counts /
    // (calls - 1); all 0 for an empty stream.
    void Row(std::span<float> out) const;

   private:
    const TraceFeatureSpace* space_;
    std::vector<uint64_t> counts_;
    uint64_t total_ = 0;
    uint32_t last_ = 0;
  };
  std::vector<float> Row(core::Arch arch, std::span<const int32_t> nrs) const;

 private:
  SyscallVocabulary vocab_;
  std::vector<std::pair<uint32_t, uint32_t>> pairs_;
  FlatMap<uint32_t> pair_index_;  // key (a+1) << 32 | (b+1) -> feature index
};

struct KitNetModelOptions {
  KitNetOptions net;  // net.feature_names is ignored (set from the feature space)
  size_t bigrams = 256;  // call pairs among the features, 0..1024
};

class KitNetModel final : public Model {
 public:
  // Trains on normal traces only.
  static core::Result<std::unique_ptr<KitNetModel>> Train(std::span<const TrainingTrace> traces,
                                                          const KitNetModelOptions& options,
                                                          const ProgressFn& progress = nullptr);
  // As KitNet::FromFile, and the feature names must form a TraceFeatureSpace.
  static core::Result<std::unique_ptr<KitNetModel>> FromFile(
      const ModelFile& file, std::string_view source,
      KitNetPrecision precision = KitNetPrecision::kFloat);
  ModelFile ToFile(const nlohmann::json& extra_header) const { return net_.ToFile(extra_header); }

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return net_.options().name; }
  const std::string& version() const override { return net_.options().version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;

  const KitNet& net() const { return net_; }
  const TraceFeatureSpace& space() const { return space_; }
  // Raw score of a whole trace (the same as a stream fed `nrs`).
  double ScoreTrace(core::Arch arch, std::span<const int32_t> nrs) const;

 private:
  KitNetModel(KitNet net, TraceFeatureSpace space)
      : net_(std::move(net)), space_(std::move(space)) {}
  std::string family_{kKitNetFamily};
  KitNet net_;
  TraceFeatureSpace space_;
};

}  // namespace vigil::model
