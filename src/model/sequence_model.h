#pragma once

// The per-program system-call sequence model ("syscall-ngram"): one interpolated Kneser-Ney
// n-gram language model per program seen often enough in training, plus a global model for the
// rest. A stream's raw score is its mean surprisal (bits per system call); the threshold is
// calibrated by k-fold cross-fitting on the *training* traces to a target false-alarm rate, and
// the score in [0,1] is a logistic map of the raw score that puts the threshold at 0.5 and the
// median normal trace at 0.05. The explanation names the n-grams of the stream that surprised
// the model most. Payload layout: docs/model-file-format.md.

#include <array>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/event.h"
#include "core/status.h"
#include "core/syscall_table.h"
#include "model/calibration.h"
#include "model/features.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/ngram.h"

namespace vigil::model {

inline constexpr std::string_view kSequenceFamily = "syscall-ngram";
inline constexpr std::string_view kGlobalSubject = "*";

struct SequenceModelOptions {
  std::string name = "syscall-ngram";
  std::string version = "1";
  int order = 6;                    // n-gram order, 1..kMaxOrder
  double target_fpr = 0.05;         // false-alarm rate the threshold is calibrated to
  int folds = 5;                    // cross-fitting folds for calibration (>= 2)
  size_t min_subject_traces = 20;   // programs with fewer traces use the global model
  int explain_top = 3;              // n-grams named in an explanation
  // The threshold sits at least this far (bits/syscall) above the median normal trace, so that
  // a program whose training traces are all alike is not flagged for the smallest deviation.
  double min_margin_bits = 0.5;
};

struct Calibration {
  double threshold = 0.0;     // raw score (bits/syscall) at which a stream is anomalous
  double scale = 1.0;         // logistic scale of the score map
  double median = 0.0;        // median out-of-fold raw score of normal traces
  double achieved_fpr = 0.0;  // out-of-fold false-alarm rate at the threshold
  size_t traces = 0;          // traces behind the calibration
};

class SequenceModel final : public Model {
 public:
  // Trains on normal traces only. Fails with kInvalidArgument when there are fewer traces than
  // folds, or options are out of range.
  static core::Result<std::unique_ptr<SequenceModel>> Train(std::span<const TrainingTrace> traces,
                                                            const SequenceModelOptions& options);
  // Rebuilds a model from a decoded model file of family "syscall-ngram". Every count, token
  // and length in the payload is checked (n-gram keys strictly ascending, tokens inside the
  // vocabulary, counts that fit the 32-bit sums); `source` names the file in errors, which are
  // kInvalidArgument for another family and kDataLoss for a malformed payload.
  static core::Result<std::unique_ptr<SequenceModel>> FromFile(const ModelFile& file,
                                                               std::string_view source);
  // The model as a file; `extra_header` (training digest, metrics, ...) is merged in.
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return options_.name; }
  const std::string& version() const override { return options_.version; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;
  // As Model::Score, with the stream on the stack instead of the heap.
  core::Result<core::Verdict> Score(const FeatureView& request) const override;

  // Mean surprisal of a whole trace under `subject`'s model (bits per system call).
  double RawScore(std::string_view subject, core::Arch arch, std::span<const int32_t> syscalls) const;
  // Maps a raw score of `subject`'s model to [0,1].
  double ScoreFromRaw(std::string_view subject, double raw) const;
  const Calibration& CalibrationFor(std::string_view subject) const;
  // The global model's calibration record (threshold in bits/syscall, calibration set = the
  // training traces, digest over them) and the reference histogram of its out-of-fold scores;
  // written to the header as "calibration" and "drift_reference".
  const TrainingRecord& training_record() const { return record_; }

  const SequenceModelOptions& options() const { return options_; }
  size_t vocab_size() const { return vocab_.size() + 1; }
  std::vector<std::string> subjects() const;

  struct Subject {
    std::string name;
    std::unique_ptr<NgramLm> lm;
    Calibration calibration;
  };
  // The model scoring `subject` (its own, or the global one). Never null.
  const Subject& SubjectFor(std::string_view subject) const;
  // Token of syscall `nr` on `arch`; 0 (unknown) when the number or name is not in the vocabulary.
  Token TokenOf(core::Arch arch, int32_t nr) const {
    const auto a = static_cast<size_t>(arch);
    if (a >= lut_.size() || nr < 0 || nr >= core::kMaxSyscallNr) return 0;
    return lut_[a][static_cast<size_t>(nr)];
  }
  const std::string& TokenName(Token t) const;

 private:
  SequenceModel() = default;
  void BuildLookup();

  std::string family_{kSequenceFamily};
  SequenceModelOptions options_;
  std::vector<std::string> vocab_;  // token t (>= 1) is vocab_[t - 1]
  std::array<std::array<Token, core::kMaxSyscallNr>, 3> lut_{};  // per core::Arch
  std::map<std::string, Subject, std::less<>> subjects_;        // always holds kGlobalSubject
  TrainingRecord record_;
};

// Reads and rebuilds a "syscall-ngram" model file; errors name `path`.
core::Result<std::unique_ptr<SequenceModel>> LoadSequenceModel(const std::string& path);

}  // namespace vigil::model
