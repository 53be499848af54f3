#pragma once

// The recurrent system-call language model ("syscall-rnn"): a token embedding, one or more
// LSTM or GRU layers and a softmax over the system-call vocabulary, trained by
// model/train/rnn_train.h (libtorch) and evaluated here with Eigen, one step per system call.
//
// A stream's per-call surprisal is -log2 P(call | every earlier call of the stream). Its raw
// score aggregates those surprisals (RnnAggregate); the threshold is calibrated on normal traces
// the model did not train on, and the score in [0,1] is the logistic map the n-gram family uses
// (threshold at 0.5, median normal trace at 0.05). The explanation names the calls that
// surprised the model most, with the calls before them. Payload: docs/model-file-format.md.
//
// This header does not include libtorch: inference needs only Eigen.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "core/event.h"
#include "core/status.h"
#include "core/syscall_table.h"
#include "model/held_out_calibration.h"
#include "model/model.h"
#include "model/model_file.h"

namespace vigil::model {

inline constexpr std::string_view kRnnFamily = "syscall-rnn";

enum class RnnCell : uint32_t { kLstm = 1, kGru = 2 };

// How a stream's per-call surprisals become its raw score (bits per system call).
enum class RnnAggregate : uint32_t {
  kMean = 1,       // mean surprisal of every call
  kWindowMax = 2,  // highest mean surprisal over any `window` consecutive calls
  kTopMean = 3,    // mean of the `window` highest surprisals
};
// "mean", "window-max", "top-mean"; the parse returns false for anything else.
std::string_view RnnAggregateName(RnnAggregate a);
bool ParseRnnAggregate(std::string_view name, RnnAggregate* out);
std::string_view RnnCellName(RnnCell c);
bool ParseRnnCell(std::string_view name, RnnCell* out);

// Weights in PyTorch's layout (torch::nn::LSTM/GRU/Embedding/Linear), row-major semantics kept
// by Eigen's column-major storage of the same shapes. Tokens: 0 = a call outside the vocabulary,
// 1..V = vocabulary entries, V+1 = begin-of-stream (input only). Gate order: LSTM i,f,g,o;
// GRU r,z,n.
struct RnnLayer {
  Eigen::MatrixXf w_ih;  // (gates*H) x input
  Eigen::MatrixXf w_hh;  // (gates*H) x H
  Eigen::VectorXf b_ih;  // gates*H
  Eigen::VectorXf b_hh;  // gates*H
};

struct RnnWeights {
  RnnCell cell = RnnCell::kLstm;
  int embed = 0;   // E
  int hidden = 0;  // H
  Eigen::MatrixXf embedding;  // (V+2) x E
  std::vector<RnnLayer> layers;
  Eigen::MatrixXf out_w;  // (V+1) x H
  Eigen::VectorXf out_b;  // V+1
};


struct RnnScoring {
  RnnAggregate aggregate = RnnAggregate::kMean;
  uint32_t window = 1;    // calls in a window (kWindowMax) or surprisals averaged (kTopMean)
  int explain_top = 3;    // calls named in an explanation, 0..64
  int explain_context = 3;  // earlier calls shown with each, 0..16
};

class RnnModel final : public Model {
 public:
  // A model from trained weights. `vocab` holds the names of tokens 1..V. Fails with
  // kInvalidArgument when a shape disagrees with V, E, H or the cell, or a weight is not finite.
  static core::Result<std::unique_ptr<RnnModel>> Create(std::string name, std::string version,
                                                        std::vector<std::string> vocab,
                                                        RnnWeights weights, RnnScoring scoring,
                                                        HeldOutCalibration calibration);
  // Rebuilds a model from a decoded model file of family "syscall-rnn". Every length, shape and
  // weight in the payload is checked; `source` names the file in errors, which are
  // kInvalidArgument for another family and kDataLoss for a malformed payload.
  static core::Result<std::unique_ptr<RnnModel>> FromFile(const ModelFile& file,
                                                          std::string_view source);
  // The model as a file; `extra_header` (training digest, metrics, ...) is merged in.
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;

  // Per-call surprisal (bits) of a whole trace, in order; the same numbers a stream computes.
  std::vector<float> Surprisals(core::Arch arch, std::span<const int32_t> syscalls) const;
  // The raw score of a whole trace under the model's aggregate.
  double RawScore(core::Arch arch, std::span<const int32_t> syscalls) const;
  double ScoreFromRaw(double raw) const;
  // Replaces the calibration (used by training once the held-out traces are scored).
  void SetCalibration(const HeldOutCalibration& c) { calibration_ = c; }

  const HeldOutCalibration& calibration() const { return calibration_; }
  const RnnScoring& scoring() const { return scoring_; }
  const RnnWeights& weights() const { return weights_; }
  const std::vector<std::string>& vocab() const { return vocab_; }
  int vocab_size() const { return static_cast<int>(vocab_.size()) + 1; }  // with token 0
  int begin_token() const { return vocab_size(); }

  // Token of syscall `nr` on `arch`; 0 (unknown) when its name is not in the vocabulary.
  int TokenOf(core::Arch arch, int32_t nr) const {
    const auto a = static_cast<size_t>(arch);
    if (a >= lut_.size() || nr < 0 || nr >= core::kMaxSyscallNr) return 0;
    return lut_[a][static_cast<size_t>(nr)];
  }

  // Inference internals shared with the stream: the recurrent state of every layer and the
  // log-probabilities of the next token.
  struct State {
    std::vector<Eigen::VectorXf> h, c;  // per layer (c unused for GRU)
    Eigen::VectorXf log_probs;          // natural log, size V+1
  };
  void InitState(State* s) const;
  // Advances `s` by token `t` and refreshes its log_probs. `scratch` holds gates*H floats.
  void Step(int t, State* s, Eigen::VectorXf* scratch, Eigen::VectorXf* scratch2) const;

 private:
  RnnModel() = default;
  core::Status Prepare();  // checks shapes, builds the lookup table and the input tables

  std::string family_{kRnnFamily};
  std::string name_;
  std::string version_;
  std::vector<std::string> vocab_;
  RnnWeights weights_;
  RnnScoring scoring_;
  HeldOutCalibration calibration_;
  // First layer: w_ih * embedding(t) + b_ih for every token t, one column each (gates*H x V+2).
  Eigen::MatrixXf input_table_;
  State initial_;  // the state after the begin-of-stream token
  std::vector<std::vector<uint16_t>> lut_;  // per core::Arch, syscall nr -> token
};

// Reads and rebuilds a "syscall-rnn" model file; errors name `path`.
core::Result<std::unique_ptr<RnnModel>> LoadRnnModel(const std::string& path);

}  // namespace vigil::model
