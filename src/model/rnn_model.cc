#include "model/rnn_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <map>

#include "model/internal/bytes.h"
#include "model/internal/calibrated_stream.h"
#include "model/internal/call_names.h"
#include "model/internal/top_calls.h"

namespace vigil::model {
namespace {

constexpr int kMaxRnnVocab = 1023;
constexpr int kMaxDim = 1024;
constexpr int kMaxLayers = 4;
constexpr uint32_t kMaxWindow = 1u << 20;
constexpr double kLn2 = 0.69314718055994530942;

int Gates(RnnCell c) { return c == RnnCell::kLstm ? 4 : 3; }

bool AllFinite(const Eigen::MatrixXf& m) { return m.allFinite(); }

bool Shape(const Eigen::MatrixXf& m, Eigen::Index rows, Eigen::Index cols) {
  return m.rows() == rows && m.cols() == cols;
}

// The surprisal given to a call the network cannot score finitely (2^-64 probability).
constexpr float kMaxSurprisalBits = 64.0f;

// Folds per-call surprisals into a raw score as a stream goes, without allocating per call.
class Aggregator {
 public:
  explicit Aggregator(const RnnScoring& s) : kind_(s.aggregate), window_(std::max(s.window, 1u)) {
    if (kind_ == RnnAggregate::kWindowMax) ring_.assign(window_, 0.0f);
    if (kind_ == RnnAggregate::kTopMean) heap_.reserve(window_);
  }
  void Add(float bits) {
    // Weights that are finite may still overflow on a long stream: a call whose probability
    // underflows or whose step overflowed counts as maximally surprising, never as NaN.
    if (!std::isfinite(bits)) bits = kMaxSurprisalBits;
    ++count_;
    sum_ += bits;
    if (kind_ == RnnAggregate::kWindowMax) {
      const size_t slot = (count_ - 1) % window_;
      window_sum_ += static_cast<double>(bits) - ring_[slot];
      ring_[slot] = bits;
      if (count_ >= window_) best_ = std::max(best_, window_sum_);
    } else if (kind_ == RnnAggregate::kTopMean) {
      if (heap_.size() < window_) {
        heap_.push_back(bits);
        std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
        top_sum_ += bits;
      } else if (bits > heap_.front()) {
        top_sum_ += static_cast<double>(bits) - heap_.front();
        std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
        heap_.back() = bits;
        std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
      }
    }
  }
  // The raw score; a stream shorter than the window scores its mean.
  double Raw() const {
    if (count_ == 0) return 0.0;
    const double mean = sum_ / static_cast<double>(count_);
    switch (kind_) {
      case RnnAggregate::kMean:
        return mean;
      case RnnAggregate::kWindowMax:
        return count_ < window_ ? mean : best_ / static_cast<double>(window_);
      case RnnAggregate::kTopMean:
        return top_sum_ / static_cast<double>(heap_.size());
    }
    return mean;
  }
  uint64_t count() const { return count_; }

 private:
  RnnAggregate kind_;
  uint64_t window_;
  uint64_t count_ = 0;
  double sum_ = 0;
  std::vector<float> ring_;
  double window_sum_ = 0;
  double best_ = -1.0;
  std::vector<float> heap_;  // min-heap of the highest surprisals
  double top_sum_ = 0;
};

class RnnStream final : public internal::CalibratedSyscallStream<RnnStream> {
 public:
  explicit RnnStream(const RnnModel& m)
      : model_(m), agg_(m.scoring()), top_(m.scoring().explain_top) {
    m.InitState(&state_);
    const int gates_h = static_cast<int>(m.weights().layers[0].w_hh.rows());
    scratch_.resize(gates_h);
    scratch2_.resize(gates_h);
    context_.assign(static_cast<size_t>(std::max(m.scoring().explain_context, 0)), 0);
  }

  core::Verdict Current() const override {
    return Verdict(model_, agg_.count(), [&] { return agg_.Raw(); }, top_);
  }

  uint64_t observed() const override { return agg_.count(); }

 private:
  friend class internal::CalibratedSyscallStream<RnnStream>;

  void Push(core::Arch arch, int32_t nr) {
    const int t = model_.TokenOf(arch, nr);
    const auto bits = static_cast<float>(-state_.log_probs[t] / kLn2);
    agg_.Add(bits);
    const uint32_t raw = internal::CallId(arch, nr);
    if (top_.Qualifies(bits)) RecordTop(bits, raw);
    if (!context_.empty()) {
      context_[ctx_next_] = raw;
      ctx_next_ = (ctx_next_ + 1) % context_.size();
      ctx_len_ = std::min(ctx_len_ + 1, context_.size());
    }
    model_.Step(t, &state_, &scratch_, &scratch2_);
  }

  void RecordTop(float bits, uint32_t raw) {
    // The context ring holds the calls before this one, oldest at ctx_next_ - ctx_len_.
    uint32_t ids[internal::TopCalls::kMaxCalls];
    for (size_t i = 0; i < ctx_len_; ++i) {
      ids[i] = context_[(ctx_next_ + context_.size() - ctx_len_ + i) % context_.size()];
    }
    ids[ctx_len_] = raw;
    top_.Record(bits, ids, static_cast<int>(ctx_len_) + 1);
  }

  const RnnModel& model_;
  RnnModel::State state_;
  Eigen::VectorXf scratch_, scratch2_;
  Aggregator agg_;
  internal::TopCalls top_;
  std::vector<uint32_t> context_;
  size_t ctx_next_ = 0;
  size_t ctx_len_ = 0;
};

void PutF32(internal::ByteWriter* w, float f) { w->U32(std::bit_cast<uint32_t>(f)); }

// Row-major, as torch stores a contiguous tensor.
void PutMatrix(internal::ByteWriter* w, const Eigen::MatrixXf& m) {
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    for (Eigen::Index c = 0; c < m.cols(); ++c) PutF32(w, m(r, c));
  }
}

bool GetMatrix(internal::ByteReader* r, Eigen::Index rows, Eigen::Index cols,
               Eigen::MatrixXf* m) {
  const auto n = static_cast<size_t>(rows * cols);
  if (r->remaining() / 4 < n) return false;
  m->resize(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i) {
    for (Eigen::Index j = 0; j < cols; ++j) {
      uint32_t u = 0;
      (void)r->U32(&u);
      (*m)(i, j) = std::bit_cast<float>(u);
    }
  }
  return true;
}

bool GetVector(internal::ByteReader* r, Eigen::Index n, Eigen::VectorXf* v) {
  Eigen::MatrixXf m;
  if (!GetMatrix(r, n, 1, &m)) return false;
  *v = m.col(0);
  return true;
}

}  // namespace

std::string_view RnnAggregateName(RnnAggregate a) {
  switch (a) {
    case RnnAggregate::kMean: return "mean";
    case RnnAggregate::kWindowMax: return "window-max";
    case RnnAggregate::kTopMean: return "top-mean";
  }
  return "?";
}

bool ParseRnnAggregate(std::string_view name, RnnAggregate* out) {
  for (RnnAggregate a : {RnnAggregate::kMean, RnnAggregate::kWindowMax, RnnAggregate::kTopMean}) {
    if (RnnAggregateName(a) == name) {
      *out = a;
      return true;
    }
  }
  return false;
}

std::string_view RnnCellName(RnnCell c) { return c == RnnCell::kLstm ? "lstm" : "gru"; }

bool ParseRnnCell(std::string_view name, RnnCell* out) {
  if (name == "lstm") *out = RnnCell::kLstm;
  else if (name == "gru") *out = RnnCell::kGru;
  else return false;
  return true;
}

core::Result<std::unique_ptr<RnnModel>> RnnModel::Create(std::string name, std::string version,
                                                         std::vector<std::string> vocab,
                                                         RnnWeights weights, RnnScoring scoring,
                                                         HeldOutCalibration calibration) {
  std::unique_ptr<RnnModel> m(new RnnModel());
  m->name_ = std::move(name);
  m->version_ = std::move(version);
  m->vocab_ = std::move(vocab);
  m->weights_ = std::move(weights);
  m->scoring_ = scoring;
  m->calibration_ = calibration;
  VIGIL_RETURN_IF_ERROR(m->Prepare());
  return m;
}

core::Status RnnModel::Prepare() {
  auto bad = [](const std::string& why) { return core::InvalidArgument("rnn model: " + why); };
  const RnnWeights& w = weights_;
  if (w.cell != RnnCell::kLstm && w.cell != RnnCell::kGru) return bad("unknown cell type");
  if (vocab_.size() > static_cast<size_t>(kMaxRnnVocab)) return bad("vocabulary too large");
  if (w.embed < 1 || w.embed > kMaxDim || w.hidden < 1 || w.hidden > kMaxDim) {
    return bad("embedding and hidden sizes must be in 1.." + std::to_string(kMaxDim));
  }
  if (w.layers.empty() || w.layers.size() > static_cast<size_t>(kMaxLayers)) {
    return bad("layer count must be in 1.." + std::to_string(kMaxLayers));
  }
  if (scoring_.window < 1 || scoring_.window > kMaxWindow) return bad("window out of range");
  if (scoring_.explain_top < 0 || scoring_.explain_top > kMaxExplainTop ||
      scoring_.explain_context < 0 || scoring_.explain_context > 16) {
    return bad("explanation sizes out of range");
  }
  if (scoring_.aggregate != RnnAggregate::kMean && scoring_.aggregate != RnnAggregate::kWindowMax &&
      scoring_.aggregate != RnnAggregate::kTopMean) {
    return bad("unknown aggregate");
  }
  if (!IsValid(calibration_)) return bad("calibration is not finite/positive");
  const Eigen::Index v = vocab_size(), h = w.hidden, g = Gates(w.cell) * w.hidden;
  if (!Shape(w.embedding, v + 1, w.embed) || !AllFinite(w.embedding)) {
    return bad("embedding must be finite and (V+2) x E");
  }
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const RnnLayer& l = w.layers[i];
    const Eigen::Index in = i == 0 ? w.embed : h;
    if (!Shape(l.w_ih, g, in) || !Shape(l.w_hh, g, h) || l.b_ih.size() != g ||
        l.b_hh.size() != g || !AllFinite(l.w_ih) || !AllFinite(l.w_hh) || !l.b_ih.allFinite() ||
        !l.b_hh.allFinite()) {
      return bad("layer " + std::to_string(i) + " weights have the wrong shape or are not finite");
    }
  }
  if (!Shape(w.out_w, v, h) || w.out_b.size() != v || !AllFinite(w.out_w) ||
      !w.out_b.allFinite()) {
    return bad("output layer must be finite and (V+1) x H");
  }
  // Vocabulary names must be distinct; the lookup maps each arch's number to its token.
  lut_.assign(3, std::vector<uint16_t>(core::kMaxSyscallNr, 0));
  std::map<std::string_view, int> seen;
  for (size_t i = 0; i < vocab_.size(); ++i) {
    if (vocab_[i].empty() || !seen.emplace(vocab_[i], static_cast<int>(i)).second) {
      return bad("vocabulary entry " + std::to_string(i) + " is empty or repeated");
    }
    for (core::Arch arch : {core::Arch::kI386, core::Arch::kX86_64}) {
      const int nr = core::SyscallNumber(arch, vocab_[i]);
      if (nr >= 0 && nr < core::kMaxSyscallNr) {
        lut_[static_cast<size_t>(arch)][static_cast<size_t>(nr)] = static_cast<uint16_t>(i + 1);
      }
    }
  }
  const RnnLayer& first = w.layers[0];
  input_table_ = (first.w_ih * w.embedding.transpose()).colwise() + first.b_ih;
  initial_.h.assign(w.layers.size(), Eigen::VectorXf::Zero(h));
  initial_.c.assign(w.layers.size(), Eigen::VectorXf::Zero(h));
  initial_.log_probs.resize(v);
  Eigen::VectorXf s1(g), s2(g);
  Step(begin_token(), &initial_, &s1, &s2);
  if (!initial_.log_probs.allFinite()) return bad("weights overflow at the first step");
  return core::Status::Ok();
}

void RnnModel::InitState(State* s) const { *s = initial_; }

void RnnModel::Step(int t, State* s, Eigen::VectorXf* gi, Eigen::VectorXf* gh) const {
  const RnnWeights& w = weights_;
  const Eigen::Index h = w.hidden;
  for (size_t li = 0; li < w.layers.size(); ++li) {
    const RnnLayer& l = w.layers[li];
    if (li == 0) {
      gi->noalias() = input_table_.col(t);
    } else {
      gi->noalias() = l.w_ih * s->h[li - 1];
      *gi += l.b_ih;
    }
    gh->noalias() = l.w_hh * s->h[li];
    *gh += l.b_hh;
    Eigen::VectorXf& hs = s->h[li];
    if (w.cell == RnnCell::kLstm) {
      *gi += *gh;
      auto a = gi->array();
      auto i = (1.0f + (-a.segment(0, h)).exp()).inverse();
      auto f = (1.0f + (-a.segment(h, h)).exp()).inverse();
      auto o = (1.0f + (-a.segment(3 * h, h)).exp()).inverse();
      Eigen::VectorXf& c = s->c[li];
      c.array() = f * c.array() + i * a.segment(2 * h, h).tanh();
      hs.array() = o * c.array().tanh();
    } else {
      auto a = gi->array();
      auto b = gh->array();
      auto r = (1.0f + (-(a.segment(0, h) + b.segment(0, h))).exp()).inverse();
      auto z = (1.0f + (-(a.segment(h, h) + b.segment(h, h))).exp()).inverse();
      // n is computed into the spare first third of gi before h changes.
      a.segment(2 * h, h) = (a.segment(2 * h, h) + r * b.segment(2 * h, h)).tanh();
      hs.array() = (1.0f - z) * a.segment(2 * h, h) + z * hs.array();
    }
  }
  Eigen::VectorXf& lp = s->log_probs;
  lp.noalias() = w.out_w * s->h.back();
  lp += w.out_b;
  const float mx = lp.maxCoeff();
  const float lse = mx + std::log((lp.array() - mx).exp().sum());
  lp.array() -= lse;
}

std::unique_ptr<StreamScorer> RnnModel::NewStream(std::string_view) const {
  return std::make_unique<RnnStream>(*this);
}

std::vector<float> RnnModel::Surprisals(core::Arch arch, std::span<const int32_t> syscalls) const {
  std::vector<float> out;
  out.reserve(syscalls.size());
  State s;
  InitState(&s);
  Eigen::VectorXf gi(weights_.layers[0].w_hh.rows()), gh(gi.size());
  for (int32_t nr : syscalls) {
    const int t = TokenOf(arch, nr);
    out.push_back(static_cast<float>(-s.log_probs[t] / kLn2));
    Step(t, &s, &gi, &gh);
  }
  return out;
}

double RnnModel::RawScore(core::Arch arch, std::span<const int32_t> syscalls) const {
  Aggregator agg(scoring_);
  for (float bits : Surprisals(arch, syscalls)) agg.Add(bits);
  return agg.Raw();
}

double RnnModel::ScoreFromRaw(double raw) const {
  return LogisticScore(calibration_, raw);
}

ModelFile RnnModel::ToFile(const nlohmann::json& extra_header) const {
  const RnnWeights& w = weights_;
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = family_;
  f.header["name"] = name_;
  f.header["version"] = version_;
  nlohmann::json params = f.header.value("params", nlohmann::json::object());
  if (!params.is_object()) params = nlohmann::json::object();
  params["cell"] = RnnCellName(w.cell);
  params["embed"] = w.embed;
  params["hidden"] = w.hidden;
  params["layers"] = w.layers.size();
  params["aggregate"] = RnnAggregateName(scoring_.aggregate);
  params["window"] = scoring_.window;
  params["vocab_size"] = vocab_size();
  f.header["params"] = params;
  f.header["calibration"] = ToJson(calibration_);

  internal::ByteWriter out;
  out.U32(static_cast<uint32_t>(w.cell));
  out.U32(static_cast<uint32_t>(w.embed));
  out.U32(static_cast<uint32_t>(w.hidden));
  out.U32(static_cast<uint32_t>(w.layers.size()));
  out.U32(static_cast<uint32_t>(scoring_.aggregate));
  out.U32(scoring_.window);
  out.U32(static_cast<uint32_t>(scoring_.explain_top));
  out.U32(static_cast<uint32_t>(scoring_.explain_context));
  PutCalibration(&out, calibration_);
  out.U32(static_cast<uint32_t>(vocab_.size()));
  for (const std::string& name : vocab_) out.Str16(name);
  PutMatrix(&out, w.embedding);
  for (const RnnLayer& l : w.layers) {
    PutMatrix(&out, l.w_ih);
    PutMatrix(&out, l.w_hh);
    PutMatrix(&out, l.b_ih);
    PutMatrix(&out, l.b_hh);
  }
  PutMatrix(&out, w.out_w);
  PutMatrix(&out, w.out_b);
  f.payload = std::move(out.str());
  return f;
}

core::Result<std::unique_ptr<RnnModel>> RnnModel::FromFile(const ModelFile& file,
                                                           std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kRnnFamily, source));
  internal::ByteReader r(file.payload);
  uint32_t cell = 0, embed = 0, hidden = 0, layers = 0, aggregate = 0, window = 0, top = 0,
           context = 0, nvocab = 0;
  HeldOutCalibration cal;
  if (!r.U32(&cell) || !r.U32(&embed) || !r.U32(&hidden) || !r.U32(&layers) ||
      !r.U32(&aggregate) || !r.U32(&window) || !r.U32(&top) || !r.U32(&context)) {
    return bad("truncated in the parameters");
  }
  if (!GetCalibration(&r, &cal)) return bad("truncated in the calibration");
  if (cell != static_cast<uint32_t>(RnnCell::kLstm) && cell != static_cast<uint32_t>(RnnCell::kGru)) {
    return bad("cell type " + std::to_string(cell) + " is neither 1 (LSTM) nor 2 (GRU)");
  }
  if (embed < 1 || embed > static_cast<uint32_t>(kMaxDim) || hidden < 1 ||
      hidden > static_cast<uint32_t>(kMaxDim)) {
    return bad("embedding " + std::to_string(embed) + " or hidden size " +
               std::to_string(hidden) + " outside 1.." + std::to_string(kMaxDim));
  }
  if (layers < 1 || layers > static_cast<uint32_t>(kMaxLayers)) {
    return bad("layer count " + std::to_string(layers) + " outside 1.." +
               std::to_string(kMaxLayers));
  }
  if (aggregate < 1 || aggregate > 3) return bad("aggregate " + std::to_string(aggregate) + " unknown");
  if (window < 1 || window > kMaxWindow) return bad("window " + std::to_string(window) + " out of range");
  if (top > 64 || context > 16) return bad("explanation sizes out of range");
  if (!r.U32(&nvocab)) return bad("truncated before the vocabulary");
  if (nvocab > static_cast<uint32_t>(kMaxRnnVocab)) {
    return bad("vocabulary of " + std::to_string(nvocab) + " tokens");
  }
  std::vector<std::string> vocab(nvocab);
  for (uint32_t i = 0; i < nvocab; ++i) {
    if (!r.Str16(&vocab[i])) return bad("truncated in vocabulary entry " + std::to_string(i));
  }
  RnnWeights w;
  w.cell = static_cast<RnnCell>(cell);
  w.embed = static_cast<int>(embed);
  w.hidden = static_cast<int>(hidden);
  const Eigen::Index v = nvocab + 1, h = hidden, g = Gates(w.cell) * h;
  if (!GetMatrix(&r, v + 1, embed, &w.embedding)) return bad("truncated in the embedding");
  w.layers.resize(layers);
  for (uint32_t i = 0; i < layers; ++i) {
    RnnLayer& l = w.layers[i];
    const Eigen::Index in = i == 0 ? embed : h;
    if (!GetMatrix(&r, g, in, &l.w_ih) || !GetMatrix(&r, g, h, &l.w_hh) ||
        !GetVector(&r, g, &l.b_ih) || !GetVector(&r, g, &l.b_hh)) {
      return bad("truncated in layer " + std::to_string(i));
    }
  }
  if (!GetMatrix(&r, v, h, &w.out_w) || !GetVector(&r, v, &w.out_b)) {
    return bad("truncated in the output layer");
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  RnnScoring scoring;
  scoring.aggregate = static_cast<RnnAggregate>(aggregate);
  scoring.window = window;
  scoring.explain_top = static_cast<int>(top);
  scoring.explain_context = static_cast<int>(context);
  auto m = Create(HeaderString(file, "name"), HeaderString(file, "version"), std::move(vocab),
                  std::move(w), scoring, cal);
  if (!m.has_value()) return bad(m.error().message());
  return m;
}

core::Result<std::unique_ptr<RnnModel>> LoadRnnModel(const std::string& path) {
  auto file = ReadModelFile(path);
  if (!file.has_value()) return file.error();
  return RnnModel::FromFile(*file, path);
}

}  // namespace vigil::model
