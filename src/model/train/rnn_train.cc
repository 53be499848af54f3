// The one file that includes libtorch: training of the recurrent system-call model and the
// libtorch reference scorer used by tests.

#include "model/train/rnn_train.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

namespace vigil::model {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

class Net : public torch::nn::Module {
 public:
  Net(const RnnTrainOptions& o, int vocab_size)
      : cell_(o.cell), dropout_(o.dropout) {
    emb_ = register_module("emb", torch::nn::Embedding(vocab_size + 1, o.embed));
    if (o.cell == RnnCell::kLstm) {
      lstm_ = register_module(
          "rnn", torch::nn::LSTM(torch::nn::LSTMOptions(o.embed, o.hidden)
                                     .num_layers(o.layers)
                                     .batch_first(true)
                                     .dropout(o.layers > 1 ? o.dropout : 0.0)));
    } else {
      gru_ = register_module(
          "rnn", torch::nn::GRU(torch::nn::GRUOptions(o.embed, o.hidden)
                                    .num_layers(o.layers)
                                    .batch_first(true)
                                    .dropout(o.layers > 1 ? o.dropout : 0.0)));
    }
    out_ = register_module("out", torch::nn::Linear(o.hidden, vocab_size));
  }

  // Log-probabilities (batch x time x V+1) of the next token after each input token; `state`
  // carries the recurrent state across truncated-backpropagation segments.
  torch::Tensor Forward(const torch::Tensor& x, std::vector<torch::Tensor>* state) {
    torch::Tensor e = emb_(x);
    if (dropout_ > 0) e = torch::dropout(e, dropout_, is_training());
    torch::Tensor y;
    if (cell_ == RnnCell::kLstm) {
      auto [out, hc] = state->empty()
                           ? lstm_->forward(e)
                           : lstm_->forward(e, std::make_tuple((*state)[0], (*state)[1]));
      y = out;
      *state = {std::get<0>(hc), std::get<1>(hc)};
    } else {
      auto [out, hn] = state->empty() ? gru_->forward(e) : gru_->forward(e, (*state)[0]);
      y = out;
      *state = {hn};
    }
    if (dropout_ > 0) y = torch::dropout(y, dropout_, is_training());
    return torch::log_softmax(out_(y), -1);
  }

  torch::Tensor Param(const std::string& name) {
    return (cell_ == RnnCell::kLstm ? lstm_->named_parameters() : gru_->named_parameters())[name];
  }
  torch::nn::Embedding& emb() { return emb_; }
  torch::nn::Linear& out() { return out_; }

 private:
  RnnCell cell_;
  double dropout_;
  torch::nn::Embedding emb_{nullptr};
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear out_{nullptr};
};

Eigen::MatrixXf ToEigen(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  const int64_t rows = c.size(0), cols = c.dim() > 1 ? c.size(1) : 1;
  Eigen::MatrixXf m(rows, cols);
  const float* p = c.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) m(r, k) = p[r * cols + k];
  }
  return m;
}

void FromEigen(const Eigen::MatrixXf& m, torch::Tensor t) {
  torch::NoGradGuard no_grad;
  torch::Tensor src = torch::empty({m.rows(), m.cols()}, torch::kFloat32);
  float* p = src.data_ptr<float>();
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    for (Eigen::Index k = 0; k < m.cols(); ++k) p[r * m.cols() + k] = m(r, k);
  }
  t.copy_(src.view(t.sizes()));
}

RnnWeights Export(Net& net, const RnnTrainOptions& o) {
  RnnWeights w;
  w.cell = o.cell;
  w.embed = o.embed;
  w.hidden = o.hidden;
  w.embedding = ToEigen(net.emb()->weight);
  for (int l = 0; l < o.layers; ++l) {
    const std::string s = std::to_string(l);
    RnnLayer layer;
    layer.w_ih = ToEigen(net.Param("weight_ih_l" + s));
    layer.w_hh = ToEigen(net.Param("weight_hh_l" + s));
    layer.b_ih = ToEigen(net.Param("bias_ih_l" + s)).col(0);
    layer.b_hh = ToEigen(net.Param("bias_hh_l" + s)).col(0);
    w.layers.push_back(std::move(layer));
  }
  w.out_w = ToEigen(net.out()->weight);
  w.out_b = ToEigen(net.out()->bias).col(0);
  return w;
}

void Import(const RnnWeights& w, Net& net) {
  FromEigen(w.embedding, net.emb()->weight);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const std::string s = std::to_string(l);
    FromEigen(w.layers[l].w_ih, net.Param("weight_ih_l" + s));
    FromEigen(w.layers[l].w_hh, net.Param("weight_hh_l" + s));
    FromEigen(w.layers[l].b_ih, net.Param("bias_ih_l" + s));
    FromEigen(w.layers[l].b_hh, net.Param("bias_hh_l" + s));
  }
  FromEigen(w.out_w, net.out()->weight);
  FromEigen(w.out_b, net.out()->bias);
}

// Tokens of every trace, token 0 for calls outside the vocabulary.
std::vector<std::vector<int64_t>> Tokenize(const RnnModel& m, std::span<const TrainingTrace> tr) {
  std::vector<std::vector<int64_t>> out(tr.size());
  for (size_t i = 0; i < tr.size(); ++i) {
    out[i].reserve(tr[i].syscalls.size());
    for (int32_t nr : tr[i].syscalls) out[i].push_back(m.TokenOf(tr[i].arch, nr));
  }
  return out;
}

// Batches of trace indices of similar length (so padding stays small).
std::vector<std::vector<size_t>> MakeBatches(const std::vector<std::vector<int64_t>>& tokens,
                                             std::span<const size_t> ids, int batch) {
  std::vector<size_t> sorted(ids.begin(), ids.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](size_t a, size_t b) { return tokens[a].size() < tokens[b].size(); });
  std::vector<std::vector<size_t>> out;
  for (size_t i = 0; i < sorted.size(); i += static_cast<size_t>(batch)) {
    const size_t end = std::min(sorted.size(), i + static_cast<size_t>(batch));
    out.emplace_back(sorted.begin() + static_cast<std::ptrdiff_t>(i),
                     sorted.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return out;
}

struct BatchLoss {
  double nats = 0;
  double calls = 0;
};

// Runs one batch through the network in truncated-backpropagation segments; steps the optimizer
// after each segment when `opt` is set. Returns the summed loss.
BatchLoss RunBatch(Net& net, const std::vector<std::vector<int64_t>>& tokens,
                   const std::vector<size_t>& batch, int begin_token, int bptt, double clip,
                   torch::optim::Optimizer* opt) {
  size_t longest = 0;
  for (size_t i : batch) longest = std::max(longest, tokens[i].size());
  const auto b = static_cast<int64_t>(batch.size());
  const auto t_len = static_cast<int64_t>(longest);
  torch::Tensor x = torch::zeros({b, t_len + 1}, torch::kInt64);
  torch::Tensor mask = torch::zeros({b, t_len}, torch::kFloat32);
  auto xa = x.accessor<int64_t, 2>();
  auto ma = mask.accessor<float, 2>();
  for (int64_t j = 0; j < b; ++j) {
    const auto& seq = tokens[batch[static_cast<size_t>(j)]];
    xa[j][0] = begin_token;
    for (size_t k = 0; k < seq.size(); ++k) {
      xa[j][static_cast<int64_t>(k) + 1] = seq[k];
      ma[j][static_cast<int64_t>(k)] = 1.0f;
    }
  }
  BatchLoss total;
  std::vector<torch::Tensor> state;
  for (int64_t s = 0; s < t_len; s += bptt) {
    const int64_t e = std::min(t_len, s + bptt);
    torch::Tensor in = x.slice(1, s, e);
    torch::Tensor target = x.slice(1, s + 1, e + 1);
    torch::Tensor m = mask.slice(1, s, e);
    torch::Tensor lp = net.Forward(in, &state);
    torch::Tensor nll = -lp.gather(2, target.unsqueeze(-1)).squeeze(-1) * m;
    const double calls = m.sum().item<double>();
    torch::Tensor sum = nll.sum();
    if (opt != nullptr && calls > 0) {
      opt->zero_grad();
      (sum / calls).backward();
      torch::nn::utils::clip_grad_norm_(net.parameters(), clip);
      opt->step();
    }
    for (torch::Tensor& t : state) t = t.detach();
    total.nats += sum.item<double>();
    total.calls += calls;
  }
  return total;
}

double MeanBits(const BatchLoss& l) { return l.calls > 0 ? l.nats / l.calls / kLn2 : 0.0; }

core::Status CheckOptions(const RnnTrainOptions& o) {
  auto bad = [](const std::string& what) { return core::InvalidArgument("rnn training: " + what); };
  if (o.embed < 1 || o.embed > 1024) return bad("embedding size must be in 1..1024");
  if (o.hidden < 1 || o.hidden > 1024) return bad("hidden size must be in 1..1024");
  if (o.layers < 1 || o.layers > 4) return bad("layers must be in 1..4");
  if (o.epochs < 1 || o.epochs > 1000) return bad("epochs must be in 1..1000");
  if (o.batch < 1 || o.bptt < 1) return bad("batch and bptt must be positive");
  if (!(o.learning_rate > 0 && o.learning_rate < 1)) return bad("learning rate must be in (0,1)");
  if (!(o.dropout >= 0 && o.dropout < 1)) return bad("dropout must be in [0,1)");
  if (!(o.clip > 0)) return bad("clip must be positive");
  if (o.threads < 1 || o.threads > 64) return bad("threads must be in 1..64");
  if (!(o.target_fpr > 0 && o.target_fpr < 1)) return bad("target_fpr must be in (0,1)");
  if (!(o.calibration_fraction >= 0 && o.calibration_fraction < 1)) {
    return bad("calibration fraction must be in [0,1)");
  }
  if (o.scoring.window < 1) return bad("window must be at least 1");
  return core::Status::Ok();
}

// Vocabulary: every system-call name of the training traces, sorted.
std::vector<std::string> BuildVocab(std::span<const TrainingTrace> traces) {
  std::set<std::string, std::less<>> names;
  for (const TrainingTrace& t : traces) {
    for (int32_t nr : t.syscalls) {
      const std::string_view name = core::SyscallName(t.arch, nr);
      if (!name.empty() && names.find(name) == names.end()) names.emplace(name);
    }
  }
  return {names.begin(), names.end()};
}

core::Result<RnnTrainResult> TrainImpl(std::span<const TrainingTrace> traces,
                                       std::span<const size_t> fit,
                                       std::span<const size_t> calibration,
                                       const RnnTrainOptions& o, const RnnProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> vocab = BuildVocab(traces);
  if (vocab.size() > 1023) return core::InvalidArgument("rnn training: vocabulary too large");
  torch::manual_seed(o.seed);
  torch::set_num_threads(o.threads);
  const int v = static_cast<int>(vocab.size()) + 1;
  Net net(o, v);
  // A model with the untrained weights supplies the tokenizer.
  auto shell = RnnModel::Create(o.name, o.version, vocab, Export(net, o), o.scoring, {});
  if (!shell.has_value()) return shell.error();
  const std::vector<std::vector<int64_t>> tokens = Tokenize(**shell, traces);
  std::vector<std::vector<size_t>> fit_batches = MakeBatches(tokens, fit, o.batch);
  const std::vector<std::vector<size_t>> cal_batches = MakeBatches(tokens, calibration, o.batch);

  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(o.learning_rate));
  std::mt19937_64 rng(o.seed);
  RnnTrainResult result;
  result.fit_traces = fit.size();
  result.calibration_traces = calibration.size();
  RnnWeights best;
  double best_loss = INFINITY;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    net.train();
    std::shuffle(fit_batches.begin(), fit_batches.end(), rng);
    BatchLoss train;
    for (const auto& b : fit_batches) {
      const BatchLoss l = RunBatch(net, tokens, b, v, o.bptt, o.clip, &opt);
      train.nats += l.nats;
      train.calls += l.calls;
    }
    net.eval();
    BatchLoss held;
    {
      torch::NoGradGuard no_grad;
      for (const auto& b : cal_batches) {
        const BatchLoss l = RunBatch(net, tokens, b, v, o.bptt, o.clip, nullptr);
        held.nats += l.nats;
        held.calls += l.calls;
      }
    }
    RnnEpoch e;
    e.epoch = epoch;
    e.epochs = o.epochs;
    e.train_loss = MeanBits(train);
    e.heldout_loss = MeanBits(held);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.epochs.push_back(e);
    if (progress) progress(e);
    // Model selection on held-out loss; without held-out traces the last epoch is kept.
    const double select = calibration.empty() ? -epoch : e.heldout_loss;
    if (select < best_loss || !std::isfinite(best_loss)) {
      best_loss = select;
      best = Export(net, o);
      result.best_epoch = epoch;
    }
  }
  auto model = RnnModel::Create(o.name, o.version, std::move(vocab), std::move(best), o.scoring, {});
  if (!model.has_value()) return model.error();
  // Calibration on the held-out traces; without any, on the fitting traces (optimistic).
  std::span<const size_t> cal_ids = calibration.empty() ? fit : calibration;
  for (size_t i : cal_ids) {
    result.calibration_ids.push_back(i);
    result.calibration_raw.push_back((*model)->RawScore(traces[i].arch, traces[i].syscalls));
  }
  (*model)->SetCalibration(CalibrateHeldOut(result.calibration_raw, o.target_fpr, o.min_margin_bits));
  result.model = std::move(model).value();
  return result;
}

}  // namespace

void SplitForCalibration(size_t n, double fraction, uint64_t seed, std::vector<size_t>* fit,
                         std::vector<size_t>* calibration) {
  std::vector<size_t> ids(n);
  std::iota(ids.begin(), ids.end(), size_t{0});
  std::mt19937_64 rng(seed ^ 0x5eedca1bULL);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t held = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  if (fraction > 0 && n >= 2) held = std::clamp<size_t>(held, 1, n - 1);
  if (fraction <= 0) held = 0;
  calibration->assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(held));
  fit->assign(ids.begin() + static_cast<std::ptrdiff_t>(held), ids.end());
  std::sort(calibration->begin(), calibration->end());
  std::sort(fit->begin(), fit->end());
}

core::Result<RnnTrainResult> TrainRnnOnSplit(std::span<const TrainingTrace> traces,
                                             std::span<const size_t> fit,
                                             std::span<const size_t> calibration,
                                             const RnnTrainOptions& options,
                                             const RnnProgressFn& progress) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  if (fit.empty()) return core::InvalidArgument("rnn training: no traces to fit");
  for (size_t i : fit) {
    if (i >= traces.size()) return core::InvalidArgument("rnn training: trace index out of range");
  }
  for (size_t i : calibration) {
    if (i >= traces.size()) return core::InvalidArgument("rnn training: trace index out of range");
  }
  try {
    return TrainImpl(traces, fit, calibration, options, progress);
  } catch (const std::exception& e) {
    return core::Internal(std::string("rnn training: libtorch failed: ") + e.what());
  }
}

core::Result<RnnTrainResult> TrainRnn(std::span<const TrainingTrace> traces,
                                      const RnnTrainOptions& options,
                                      const RnnProgressFn& progress) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  if (traces.size() < 2) {
    return core::InvalidArgument("rnn training: need at least 2 training traces, got " +
                                 std::to_string(traces.size()));
  }
  std::vector<size_t> fit, calibration;
  SplitForCalibration(traces.size(), options.calibration_fraction, options.seed, &fit,
                      &calibration);
  return TrainRnnOnSplit(traces, fit, calibration, options, progress);
}

core::Result<std::vector<float>> TorchSurprisals(const RnnModel& model, core::Arch arch,
                                                 std::span<const int32_t> syscalls) {
  try {
    const RnnWeights& w = model.weights();
    RnnTrainOptions o;
    o.cell = w.cell;
    o.embed = w.embed;
    o.hidden = w.hidden;
    o.layers = static_cast<int>(w.layers.size());
    o.dropout = 0;
    Net net(o, model.vocab_size());
    Import(w, net);
    net.eval();
    torch::NoGradGuard no_grad;
    const auto n = static_cast<int64_t>(syscalls.size());
    torch::Tensor x = torch::empty({1, n + 1}, torch::kInt64);
    auto xa = x.accessor<int64_t, 2>();
    xa[0][0] = model.begin_token();
    for (int64_t i = 0; i < n; ++i) {
      xa[0][i + 1] = model.TokenOf(arch, syscalls[static_cast<size_t>(i)]);
    }
    std::vector<torch::Tensor> state;
    torch::Tensor lp = net.Forward(x.slice(1, 0, n), &state);
    torch::Tensor nll = -lp.gather(2, x.slice(1, 1, n + 1).unsqueeze(-1)).squeeze(-1);
    std::vector<float> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      out[static_cast<size_t>(i)] = static_cast<float>(nll[0][i].item<double>() / kLn2);
    }
    return out;
  } catch (const std::exception& e) {
    return core::Internal(std::string("rnn reference scoring: libtorch failed: ") + e.what());
  }
}

}  // namespace vigil::model
