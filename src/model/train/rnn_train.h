#pragma once

// Training of the recurrent system-call language model (model/rnn_model.h) with libtorch.
// Only rnn_train.cc includes libtorch; this header and its callers do not.
//
// The training traces are split (seeded) into a fitting part and a held-out calibration part.
// The network learns next-call prediction on the fitting part (Adam, truncated backpropagation
// through time, gradient clipping, optional dropout); after each epoch the held-out traces'
// mean loss is measured and the weights of the best epoch are kept. The threshold is then
// calibrated on the held-out traces' raw scores, which the model never trained on.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/rnn_model.h"
#include "model/sequence_model.h"

namespace vigil::model {

struct RnnTrainOptions {
  std::string name = "syscall-rnn";
  std::string version = "1";
  RnnCell cell = RnnCell::kLstm;
  int embed = 32;
  int hidden = 128;
  int layers = 1;
  int epochs = 10;
  int batch = 32;           // traces per batch (batches hold traces of similar length)
  int bptt = 100;           // calls per truncated-backpropagation segment
  double learning_rate = 3e-3;
  double dropout = 0.0;     // on embeddings and RNN outputs, training only
  double clip = 1.0;        // gradient norm clip
  uint64_t seed = 1;
  int threads = 1;          // libtorch intra-op threads
  RnnScoring scoring;
  double target_fpr = 0.05;            // false-alarm rate the threshold is calibrated to
  double calibration_fraction = 0.2;   // traces held out for calibration and model selection
  double min_margin_bits = 0.0;        // threshold at least this far above the median
};

struct RnnEpoch {
  int epoch = 0;  // 1-based
  int epochs = 0;
  double train_loss = 0;     // mean bits per call on the fitting traces
  double heldout_loss = 0;   // mean bits per call on the calibration traces (0 when none)
  double seconds = 0;        // since training began
};
using RnnProgressFn = std::function<void(const RnnEpoch&)>;

struct RnnTrainResult {
  std::unique_ptr<RnnModel> model;
  std::vector<RnnEpoch> epochs;
  int best_epoch = 0;
  size_t fit_traces = 0;
  size_t calibration_traces = 0;
  // Raw scores of the held-out calibration traces (in `calibration_ids` order); ensembles
  // normalise their members with them.
  std::vector<size_t> calibration_ids;  // indices into the training traces
  std::vector<double> calibration_raw;
};

// Splits `traces` into fitting and held-out calibration indices the way TrainRnn does
// (seeded shuffle; at least one trace on each side when fraction > 0 and there are >= 2 traces).
void SplitForCalibration(size_t n, double fraction, uint64_t seed, std::vector<size_t>* fit,
                         std::vector<size_t>* calibration);

// Trains on normal traces only. Fails with kInvalidArgument for options out of range or
// fewer than 2 traces, kInternal when libtorch fails. `progress` is called after each epoch.
core::Result<RnnTrainResult> TrainRnn(std::span<const TrainingTrace> traces,
                                      const RnnTrainOptions& options,
                                      const RnnProgressFn& progress = {});

// Like TrainRnn with explicit fitting and calibration sets (indices into `traces`); ensembles
// use it to train every member on the same split.
core::Result<RnnTrainResult> TrainRnnOnSplit(std::span<const TrainingTrace> traces,
                                             std::span<const size_t> fit,
                                             std::span<const size_t> calibration,
                                             const RnnTrainOptions& options,
                                             const RnnProgressFn& progress = {});

// The per-call surprisals (bits) of `syscalls` computed by libtorch's own LSTM/GRU modules
// loaded with `model`'s weights: the reference the Eigen stream is checked against.
core::Result<std::vector<float>> TorchSurprisals(const RnnModel& model, core::Arch arch,
                                                 std::span<const int32_t> syscalls);

}  // namespace vigil::model
