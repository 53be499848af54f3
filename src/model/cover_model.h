#pragma once

// The sequence-covering family ("syscall-cover"): a stream is covered greedily, left to right,
// by the longest runs of system calls that occur contiguously in one normal training trace
// (model/cover_index.h); its raw score is the number of such segments per call. Unlike an n-gram
// model of fixed order it has no context length: a stream that repeats long stretches of normal
// traces in a new order costs one segment per junction, a stream made of calls in orders never
// seen costs one per call. The threshold is calibrated by cross-fitting on the training traces
// (each fold covered by an index of the other folds) to a target false-alarm rate, and the score
// in [0, 1] maps it to 0.5 and the median normal trace to 0.05 (model/held_out_calibration.h).
// The explanation names the shortest segments the stream broke into, each with the call that
// could not continue it. Payload layout: docs/model-file-format.md.

#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/calibration.h"
#include "model/cover_index.h"
#include "model/features.h"
#include "model/held_out_calibration.h"
#include "model/model.h"
#include "model/model_file.h"

namespace vigil::model {

inline constexpr std::string_view kCoverFamily = "syscall-cover";

struct CoverModelOptions {
  std::string name = "syscall-cover";
  std::string version = "1";
  double target_fpr = 0.05;  // false-alarm rate the threshold is calibrated to
  int folds = 5;             // cross-fitting folds for calibration (>= 2)
  int explain_top = 3;       // segments named in an explanation
  int explain_context = 3;   // calls of the ended segment named before the breaking call
};

class CoverModel final : public Model {
 public:
  // Trains on normal traces only. kInvalidArgument for fewer traces than folds, options out of
  // range, or more distinct calls than the index holds.
  static core::Result<std::unique_ptr<CoverModel>> Train(std::span<const TrainingTrace> traces,
                                                         const CoverModelOptions& options);
  // Rebuilds a model from a decoded "syscall-cover" file; the index is rebuilt from the training
  // tokens the payload holds, each checked against the vocabulary. kInvalidArgument for another
  // family, kDataLoss (naming `source`) for a malformed payload.
  static core::Result<std::unique_ptr<CoverModel>> FromFile(const ModelFile& file,
                                                            std::string_view source);
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return options_.name; }
  const std::string& version() const override { return options_.version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;
  // As Model::Score, with the stream on the stack instead of the heap.
  core::Result<core::Verdict> Score(const FeatureView& request) const override;

  // Segments per call of a whole trace.
  double RawScore(core::Arch arch, std::span<const int32_t> syscalls) const;
  double ScoreFromRaw(double raw) const { return LogisticScore(calibration_, raw); }
  const HeldOutCalibration& calibration() const { return calibration_; }
  // The calibration record (threshold in segments/call, calibration set = every training trace,
  // digest over them) and the reference histogram of the out-of-fold scores; written to the
  // header as "calibration" and "drift_reference".
  const TrainingRecord& training_record() const { return record_; }
  const CoverModelOptions& options() const { return options_; }
  const SyscallVocabulary& vocabulary() const { return vocab_; }
  const CoverIndex& index() const { return index_; }
  // Training tokens (calls as vocabulary indices), kSequenceStart before each trace.
  static constexpr uint16_t kSequenceStart = 0xFFFF;
  size_t corpus_tokens() const { return corpus_.size(); }

 private:
  CoverModel() = default;
  // Builds index_ from corpus_.
  void BuildIndex();

  std::string family_{kCoverFamily};
  CoverModelOptions options_;
  SyscallVocabulary vocab_;
  std::vector<uint16_t> corpus_;
  CoverIndex index_;
  HeldOutCalibration calibration_;
  TrainingRecord record_;
};

}  // namespace vigil::model
