#include "model/kitnet.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "model/evaluation.h"
#include "model/internal/bytes.h"
#include "model/internal/random.h"
#include "model/internal/training_rows.h"
#include "model/model.h"

namespace vigil::model {
namespace {

constexpr size_t kMaxKitNetDims = 4096;  // the mapper holds a dims x dims matrix of doubles
constexpr int kMaxEpochs = 10000;
constexpr uint64_t kMaxSteps = uint64_t{1} << 40;
// Largest weight or bias a file may hold: keeps every pre-activation (at most 64 products of a
// weight and a normalised input in [-4, 5]) finite. Trained values stay far below it.
constexpr float kMaxParameter = 1e6f;

size_t HiddenUnits(size_t visible, double ratio) {
  const auto h = static_cast<size_t>(std::ceil(ratio * static_cast<double>(visible) - 1e-9));
  return std::clamp<size_t>(h, 1, visible);
}

core::Status CheckOptions(const KitNetOptions& o) {
  if (o.max_group_size < 1 || o.max_group_size > kKitNetMaxGroupSize) {
    return core::InvalidArgument("max_group_size " + std::to_string(o.max_group_size) +
                                 " is outside 1.." + std::to_string(kKitNetMaxGroupSize));
  }
  if (!(o.hidden_ratio > 0.0 && o.hidden_ratio <= 1.0)) {
    return core::InvalidArgument("hidden_ratio must be in (0, 1]");
  }
  if (!(o.learning_rate > 0.0 && o.learning_rate <= 10.0)) {
    return core::InvalidArgument("learning_rate must be in (0, 10]");
  }
  if (o.epochs < 1 || o.epochs > kMaxEpochs) {
    return core::InvalidArgument("epochs must be in 1.." + std::to_string(kMaxEpochs));
  }
  if (o.fm_grace > kMaxSteps || o.ad_grace > kMaxSteps) {
    return core::InvalidArgument("grace periods must be at most 2^40 rows");
  }
  if (!(o.target_fpr > 0.0 && o.target_fpr < 1.0)) {
    return core::InvalidArgument("target_fpr must be in (0, 1)");
  }
  if (!(o.calibration_fraction >= 0.0 && o.calibration_fraction <= 0.9)) {
    return core::InvalidArgument("calibration_fraction must be in [0, 0.9]");
  }
  if (o.explain_top < 0 || o.explain_top > kMaxExplainTop) {
    return core::InvalidArgument("explain_top must be in 0.." + std::to_string(kMaxExplainTop));
  }
  return core::Status::Ok();
}

void Gather(std::span<const float> row, const std::vector<uint32_t>& idx, std::vector<float>& out) {
  out.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) out[i] = idx[i] < row.size() ? row[idx[i]] : 0.0f;
}

}  // namespace

std::vector<std::vector<uint32_t>> ClusterFeatures(const Eigen::MatrixXd& distance,
                                                   size_t max_group) {
  const auto n = static_cast<size_t>(distance.rows());
  if (n == 0) return {};
  max_group = std::max<size_t>(max_group, 1);
  // Single linkage = the minimum spanning tree (Prim, O(n^2)), merged in order of its edges.
  struct Edge {
    double w;
    uint32_t a, b;
  };
  std::vector<Edge> edges;
  edges.reserve(n - 1);
  std::vector<double> best(n, std::numeric_limits<double>::infinity());
  std::vector<uint32_t> from(n, 0);
  std::vector<uint8_t> in(n, 0);
  size_t cur = 0;
  in[0] = 1;
  for (size_t step = 1; step < n; ++step) {
    size_t next = n;
    for (size_t j = 0; j < n; ++j) {
      if (in[j]) continue;
      const double d = distance(static_cast<Eigen::Index>(cur), static_cast<Eigen::Index>(j));
      if (d < best[j]) best[j] = d, from[j] = static_cast<uint32_t>(cur);
      if (next == n || best[j] < best[next]) next = j;
    }
    in[next] = 1;
    edges.push_back({best[next], from[next], static_cast<uint32_t>(next)});
    cur = next;
  }
  std::stable_sort(edges.begin(), edges.end(),
                   [](const Edge& x, const Edge& y) { return x.w < y.w; });
  // Dendrogram: leaves 0..n-1, merges n..2n-2; union-find maps a feature to its cluster node.
  std::vector<uint32_t> parent(n), node_of(n);
  std::iota(parent.begin(), parent.end(), 0u);
  std::iota(node_of.begin(), node_of.end(), 0u);
  std::vector<std::pair<uint32_t, uint32_t>> children(2 * n - 1, {0, 0});
  std::vector<uint32_t> size(2 * n - 1, 1);
  auto find = [&](uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  auto next_node = static_cast<uint32_t>(n);
  for (const Edge& e : edges) {
    const uint32_t ra = find(e.a), rb = find(e.b);
    const uint32_t node = next_node++;
    children[node] = {node_of[ra], node_of[rb]};
    size[node] = size[node_of[ra]] + size[node_of[rb]];
    parent[rb] = ra;
    node_of[ra] = node;
  }
  // Cut top-down, left child first; explicit stacks (a chained dendrogram is n deep).
  std::vector<std::vector<uint32_t>> groups;
  std::vector<uint32_t> todo{next_node - 1}, leaves;
  while (!todo.empty()) {
    const uint32_t c = todo.back();
    todo.pop_back();
    if (size[c] > max_group) {
      todo.push_back(children[c].second);
      todo.push_back(children[c].first);
      continue;
    }
    std::vector<uint32_t> group;
    leaves.assign(1, c);
    while (!leaves.empty()) {
      const uint32_t l = leaves.back();
      leaves.pop_back();
      if (l < n) {
        group.push_back(l);
      } else {
        leaves.push_back(children[l].first);
        leaves.push_back(children[l].second);
      }
    }
    std::sort(group.begin(), group.end());
    groups.push_back(std::move(group));
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------
// Online training.

core::Result<KitNetTrainer> KitNetTrainer::Create(size_t dims, const KitNetOptions& options) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  if (dims < 1 || dims > kMaxKitNetDims) {
    return core::InvalidArgument("rows must have 1.." + std::to_string(kMaxKitNetDims) +
                                 " features, not " + std::to_string(dims));
  }
  if (options.fm_grace < 1 || options.ad_grace < 1) {
    return core::InvalidArgument("the online trainer needs fm_grace >= 1 and ad_grace >= 1");
  }
  if (!options.feature_names.empty() && options.feature_names.size() != dims) {
    return core::InvalidArgument(std::to_string(options.feature_names.size()) +
                                 " feature names for " + std::to_string(dims) + " features");
  }
  KitNetTrainer t;
  t.options_ = options;
  t.dims_ = dims;
  const auto d = static_cast<Eigen::Index>(dims);
  t.mean_ = Eigen::VectorXd::Zero(d);
  t.m2_ = Eigen::MatrixXd::Zero(d, d);
  return t;
}

core::Status KitNetTrainer::Observe(std::span<const float> row) {
  if (row.size() != dims_) {
    return core::InvalidArgument("row has " + std::to_string(row.size()) + " features, not " +
                                 std::to_string(dims_));
  }
  for (float v : row) {
    if (!std::isfinite(v)) return core::InvalidArgument("row holds a value that is not finite");
  }
  if (phase_ == Phase::kMapping) {
    const auto d = static_cast<Eigen::Index>(dims_);
    Eigen::VectorXd x(d);
    for (Eigen::Index i = 0; i < d; ++i) x(i) = row[static_cast<size_t>(i)];
    ++mapped_;
    const Eigen::VectorXd delta = x - mean_;
    mean_ += delta / static_cast<double>(mapped_);
    m2_.noalias() += delta * (x - mean_).transpose();
    if (mapped_ >= options_.fm_grace) BuildEnsemble();
    return core::Status::Ok();
  }
  if (phase_ == Phase::kDone) return core::Status::Ok();
  rmses_.resize(groups_.size());
  const auto lr = static_cast<float>(options_.learning_rate);
  for (size_t g = 0; g < groups_.size(); ++g) {
    Gather(row, groups_[g], gather_);
    rmses_[g] = static_cast<float>(ensemble_[g].Train(gather_, lr, scratch_));
  }
  (void)output_.Train(rmses_, lr, scratch_);
  if (++trained_ >= options_.ad_grace) phase_ = Phase::kDone;
  return core::Status::Ok();
}

void KitNetTrainer::BuildEnsemble() {
  const auto d = static_cast<Eigen::Index>(dims_);
  Eigen::MatrixXd dist(d, d);
  for (Eigen::Index i = 0; i < d; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) {
      const double vi = m2_(i, i), vj = m2_(j, j);
      double dij = 1.0;
      if (i == j) {
        dij = 0.0;
      } else if (vi > 1e-12 && vj > 1e-12) {
        const double r = m2_(i, j) / std::sqrt(vi * vj);
        dij = 1.0 - std::min(std::abs(r), 1.0);
      }
      dist(i, j) = dij;
    }
  }
  groups_ = ClusterFeatures(dist, static_cast<size_t>(options_.max_group_size));
  std::mt19937_64 rng(options_.seed ^ 0x6b69746e6574ULL);
  ensemble_.clear();
  for (const std::vector<uint32_t>& g : groups_) {
    ensemble_.emplace_back(g.size(), HiddenUnits(g.size(), options_.hidden_ratio), rng);
  }
  output_ = Autoencoder(groups_.size(), HiddenUnits(groups_.size(), options_.hidden_ratio), rng);
  m2_.resize(0, 0);  // no longer needed
  phase_ = Phase::kTraining;
}

core::Result<KitNet> KitNetTrainer::Finish() const {
  if (phase_ == Phase::kMapping) {
    return core::FailedPrecondition("the feature mapping is not complete: " +
                                    std::to_string(mapped_) + " of " +
                                    std::to_string(options_.fm_grace) + " rows seen");
  }
  KitNet k;
  k.options_ = options_;
  k.dims_ = dims_;
  k.trained_steps_ = trained_;
  k.groups_ = groups_;
  k.ensemble_ = ensemble_;
  k.output_ = output_;
  k.calibration_.threshold = std::numeric_limits<double>::infinity();
  return k;
}

// ---------------------------------------------------------------------------------------------
// Batch training, calibration, scoring.

core::Result<KitNet> KitNet::Train(const std::vector<std::vector<float>>& rows,
                                   const KitNetOptions& options, const ProgressFn& progress) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  VIGIL_RETURN_IF_ERROR(internal::CheckTrainingRows(rows, kMaxKitNetDims));
  const size_t dims = rows[0].size();
  std::mt19937_64 rng(options.seed);
  auto split = internal::SplitHoldOut(rows.size(), options.calibration_fraction, rng);
  if (!split.has_value()) return split.error();
  std::vector<uint32_t>& train = split->train;
  const std::vector<uint32_t>& held = split->held;
  KitNetOptions o = options;
  if (o.fm_grace == 0) o.fm_grace = train.size();
  if (o.ad_grace == 0) o.ad_grace = static_cast<uint64_t>(o.epochs) * train.size();
  auto trainer = KitNetTrainer::Create(dims, o);
  if (!trainer.has_value()) return trainer.error();
  const uint64_t total = o.fm_grace + o.ad_grace;
  const uint64_t every = std::max<uint64_t>(1, total / 100);
  uint64_t done = 0;
  auto feed = [&](uint32_t i) {
    (void)trainer->Observe(rows[i]);  // rows were checked above
    if (progress && (++done % every == 0 || done == total)) progress(done, total);
  };
  for (uint64_t i = 0; i < o.fm_grace; ++i) feed(train[i % train.size()]);
  while (trainer->phase() != KitNetTrainer::Phase::kDone) {
    for (size_t i = train.size(); i > 1; --i) {
      std::swap(train[i - 1], train[internal::UniformIndex(rng, i)]);
    }
    for (size_t i = 0; i < train.size() && trainer->phase() != KitNetTrainer::Phase::kDone; ++i) {
      feed(train[i]);
    }
  }
  auto net = trainer->Finish();
  if (!net.has_value()) return net.error();
  std::vector<std::vector<float>> calib;
  for (uint32_t i : held.empty() ? train : held) calib.push_back(rows[i]);
  net->Calibrate(calib);
  return net;
}

void KitNet::Calibrate(std::span<const std::vector<float>> normal_rows) {
  Workspace ws;
  std::vector<double> scores;
  scores.reserve(normal_rows.size());
  for (const std::vector<float>& r : normal_rows) scores.push_back(Score(r, ws));
  KitNetCalibration& c = calibration_;
  c.rows = scores.size();
  if (scores.empty()) {
    c.threshold = std::numeric_limits<double>::infinity();
    c.achieved_fpr = 0.0;
    return;
  }
  c.threshold = std::max(ThresholdForFpr(scores, options_.target_fpr), 1e-12);
  size_t over = 0;
  for (double s : scores) over += s >= c.threshold ? 1 : 0;
  c.achieved_fpr = static_cast<double>(over) / static_cast<double>(scores.size());
}

void KitNet::QuantizeInt8() {
  if (precision_ == KitNetPrecision::kInt8) return;
  for (Autoencoder& a : ensemble_) a.Quantize();
  output_.Quantize();
  pack_ = Int8GroupPack::Build(ensemble_, groups_);
  precision_ = KitNetPrecision::kInt8;
}

void KitNet::EnsembleRmses(std::span<const float> row, Workspace& ws, bool with_error) const {
  ws.rmses.resize(groups_.size());
  if (with_error) ws.error.assign(dims_, 0.0f);
  std::vector<float> group_error;
  for (size_t g = 0; g < groups_.size(); ++g) {
    Gather(row, groups_[g], ws.gather);
    if (with_error) {
      group_error.resize(groups_[g].size());
      ws.rmses[g] = static_cast<float>(ensemble_[g].Score(ws.gather, ws.ae, group_error));
      for (size_t i = 0; i < group_error.size(); ++i) ws.error[groups_[g][i]] = group_error[i];
    } else {
      ws.rmses[g] = static_cast<float>(ensemble_[g].Score(ws.gather, ws.ae));
    }
  }
}

double KitNet::Score(std::span<const float> row, Workspace& ws) const {
  if (groups_.empty()) return 0.0;
  if (!pack_.empty()) {
    ws.rmses.resize(groups_.size());
    if (row.size() < pack_.row_size()) {  // a short row: the missing entries read as 0
      ws.gather.assign(pack_.row_size(), 0.0f);
      std::copy(row.begin(), row.end(), ws.gather.begin());
      row = ws.gather;
    }
    pack_.Rmses(row, ws.rmses);
    return output_.Score(ws.rmses, ws.ae);
  }
  EnsembleRmses(row, ws, false);
  return output_.Score(ws.rmses, ws.ae);
}

double KitNet::Score(std::span<const float> row) const {
  Workspace ws;
  return Score(row, ws);
}

double KitNet::UnitScore(double raw) const {
  const double t = calibration_.threshold;
  if (!std::isfinite(t) || !(raw > 0.0)) return 0.0;
  return raw / (raw + t);
}

std::vector<FeatureWeight> KitNet::Explain(std::span<const float> row, size_t k,
                                           Workspace& ws) const {
  std::vector<FeatureWeight> out;
  if (groups_.empty() || k == 0) return out;
  EnsembleRmses(row, ws, true);
  double total = 0.0;
  for (float e : ws.error) total += e;
  if (!(total > 0.0)) return out;
  for (size_t f = 0; f < dims_; ++f) {
    if (ws.error[f] > 0.0f) out.push_back({static_cast<uint32_t>(f), ws.error[f] / total});
  }
  const size_t keep = std::min(k, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(keep), out.end(),
                    [](const FeatureWeight& a, const FeatureWeight& b) {
                      return a.weight != b.weight ? a.weight > b.weight : a.feature < b.feature;
                    });
  out.resize(keep);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The model file.

namespace {

void WriteFloats(internal::ByteWriter& w, const float* p, size_t n) {
  for (size_t i = 0; i < n; ++i) w.U32(std::bit_cast<uint32_t>(p[i]));
}

// Reads n floats, each finite and at most `bound` in magnitude.
bool ReadFloats(internal::ByteReader& r, float* p, size_t n,
                float bound = std::numeric_limits<float>::max()) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = 0;
    if (!r.U32(&bits)) return false;
    p[i] = std::bit_cast<float>(bits);
    if (!std::isfinite(p[i]) || std::abs(p[i]) > bound) return false;
  }
  return true;
}

void WriteAutoencoder(internal::ByteWriter& w, const Autoencoder& a) {
  const size_t n = a.visible(), h = a.hidden();
  w.U32(static_cast<uint32_t>(n));
  w.U32(static_cast<uint32_t>(h));
  WriteFloats(w, a.min().data(), n);
  WriteFloats(w, a.max().data(), n);
  // W row by row (visible unit i: its h weights).
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < h; ++j) {
      const float v = a.weights()(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
      w.U32(std::bit_cast<uint32_t>(v));
    }
  }
  WriteFloats(w, a.hidden_bias().data(), h);
  WriteFloats(w, a.visible_bias().data(), n);
}

// Reads one autoencoder whose visible size must be `n`; "" on success, else the reason.
std::string ReadAutoencoder(internal::ByteReader& r, size_t n, Autoencoder* out) {
  uint32_t vn = 0, h = 0;
  if (!r.U32(&vn) || !r.U32(&h)) return "truncated in the layer sizes";
  if (vn != n) return "visible size " + std::to_string(vn) + " is not " + std::to_string(n);
  if (h < 1 || h > vn) return "hidden size " + std::to_string(h) + " is outside 1.." +
                              std::to_string(vn);
  const uint64_t floats = 3ull * vn + uint64_t{vn} * h + h;
  if (floats > r.remaining() / 4) return "parameters run past the end";
  const auto ni = static_cast<Eigen::Index>(vn);
  const auto hi = static_cast<Eigen::Index>(h);
  Eigen::VectorXf mn(ni), mx(ni), hb(hi), vb(ni);
  Eigen::MatrixXf w(ni, hi);
  if (!ReadFloats(r, mn.data(), vn) || !ReadFloats(r, mx.data(), vn)) {
    return "a normalisation bound is not finite";
  }
  for (Eigen::Index i = 0; i < ni; ++i) {
    if (mx(i) < mn(i)) return "unit " + std::to_string(i) + " has max below min";
  }
  std::vector<float> row(h);
  for (Eigen::Index i = 0; i < ni; ++i) {
    if (!ReadFloats(r, row.data(), h, kMaxParameter)) return "a weight is not finite or too large";
    for (Eigen::Index j = 0; j < hi; ++j) w(i, j) = row[static_cast<size_t>(j)];
  }
  if (!ReadFloats(r, hb.data(), h, kMaxParameter) || !ReadFloats(r, vb.data(), vn, kMaxParameter)) {
    return "a bias is not finite or too large";
  }
  *out = Autoencoder::FromParameters(std::move(w), std::move(hb), std::move(vb), std::move(mn),
                                     std::move(mx));
  return "";
}

}  // namespace

ModelFile KitNet::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = std::string(kKitNetFamily);
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  f.header["params"] = {{"dims", dims_},
                        {"groups", groups_.size()},
                        {"max_group_size", options_.max_group_size},
                        {"hidden_ratio", options_.hidden_ratio},
                        {"learning_rate", options_.learning_rate},
                        {"fm_grace", options_.fm_grace},
                        {"ad_grace", options_.ad_grace},
                        {"epochs", options_.epochs},
                        {"seed", options_.seed},
                        {"target_fpr", options_.target_fpr},
                        {"calibration_fraction", options_.calibration_fraction},
                        {"explain_top", options_.explain_top},
                        {"trained_steps", trained_steps_}};
  f.header["calibration"] = {{"method", "held-out"},
                             {"threshold", calibration_.threshold},
                             {"achieved_fpr", calibration_.achieved_fpr},
                             {"rows", calibration_.rows}};
  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(dims_));
  w.U32(static_cast<uint32_t>(options_.max_group_size));
  w.F64(options_.hidden_ratio);
  w.F64(options_.learning_rate);
  w.F64(options_.target_fpr);
  w.F64(calibration_.threshold);
  w.F64(calibration_.achieved_fpr);
  w.U64(calibration_.rows);
  w.U64(trained_steps_);
  w.U32(static_cast<uint32_t>(options_.explain_top));
  w.U32(static_cast<uint32_t>(options_.feature_names.size()));
  for (const std::string& n : options_.feature_names) w.Str16(n);
  w.U32(static_cast<uint32_t>(groups_.size()));
  for (size_t g = 0; g < groups_.size(); ++g) {
    w.U32(static_cast<uint32_t>(groups_[g].size()));
    for (uint32_t i : groups_[g]) w.U32(i);
    WriteAutoencoder(w, ensemble_[g]);
  }
  WriteAutoencoder(w, output_);
  f.payload = std::move(w.str());
  return f;
}

core::Result<KitNet> KitNet::FromFile(const ModelFile& file, std::string_view source,
                                      KitNetPrecision precision) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kKitNetFamily, source));
  KitNet k;
  KitNetOptions& o = k.options_;
  o.name = HeaderString(file, "name");
  o.version = HeaderString(file, "version");
  internal::ByteReader r(file.payload);
  uint32_t dims = 0, group_size = 0, explain = 0, nnames = 0, ngroups = 0;
  KitNetCalibration& c = k.calibration_;
  if (!r.U32(&dims) || !r.U32(&group_size) || !r.F64(&o.hidden_ratio) ||
      !r.F64(&o.learning_rate) || !r.F64(&o.target_fpr) || !r.F64(&c.threshold) ||
      !r.F64(&c.achieved_fpr) || !r.U64(&c.rows) || !r.U64(&k.trained_steps_) ||
      !r.U32(&explain) || !r.U32(&nnames)) {
    return bad("truncated in the parameters");
  }
  if (dims < 1 || dims > kMaxKitNetDims)
    return bad("dims " + std::to_string(dims) + " out of range");
  if (group_size < 1 || group_size > static_cast<uint32_t>(kKitNetMaxGroupSize)) {
    return bad("max group size " + std::to_string(group_size) + " outside 1.." +
               std::to_string(kKitNetMaxGroupSize));
  }
  o.max_group_size = static_cast<int>(group_size);
  if (!(o.hidden_ratio > 0.0 && o.hidden_ratio <= 1.0)) return bad("hidden_ratio not in (0, 1]");
  if (!(o.learning_rate > 0.0 && o.learning_rate <= 10.0)) {
    return bad("learning_rate not in (0, 10]");
  }
  if (!(o.target_fpr > 0.0 && o.target_fpr < 1.0)) return bad("target_fpr is not in (0, 1)");
  if (!(c.threshold > 0.0) || std::isnan(c.threshold)) {
    return bad("threshold is not a positive score");
  }
  if (!(c.achieved_fpr >= 0.0 && c.achieved_fpr <= 1.0)) return bad("achieved_fpr not in [0, 1]");
  if (explain > static_cast<uint32_t>(kMaxExplainTop)) {
    return bad("explain_top " + std::to_string(explain) + " is too large");
  }
  o.explain_top = static_cast<int>(explain);
  if (nnames != 0 && nnames != dims) {
    return bad(std::to_string(nnames) + " feature names for " + std::to_string(dims) + " features");
  }
  o.feature_names.resize(nnames);
  for (uint32_t i = 0; i < nnames; ++i) {
    if (!r.Str16(&o.feature_names[i])) return bad("truncated in feature name " + std::to_string(i));
  }
  if (!r.U32(&ngroups)) return bad("truncated before the group count");
  if (ngroups < 1 || ngroups > dims) {
    return bad("group count " + std::to_string(ngroups) + " outside 1.." + std::to_string(dims));
  }
  k.dims_ = dims;
  std::vector<uint8_t> covered(dims, 0);
  for (uint32_t g = 0; g < ngroups; ++g) {
    const std::string group = "group " + std::to_string(g);
    uint32_t n = 0;
    if (!r.U32(&n)) return bad("truncated before the size of " + group);
    if (n < 1 || n > group_size) {
      return bad(group + ": size " + std::to_string(n) + " outside 1.." +
                 std::to_string(group_size));
    }
    std::vector<uint32_t> idx(n);
    for (uint32_t i = 0; i < n; ++i) {
      if (!r.U32(&idx[i])) return bad("truncated in the features of " + group);
      if (idx[i] >= dims) {
        return bad(group + ": feature index " + std::to_string(idx[i]) + " is not below dims " +
                   std::to_string(dims));
      }
      if (i > 0 && idx[i] <= idx[i - 1]) return bad(group + ": feature indices do not ascend");
      if (covered[idx[i]]++) {
        return bad(group + ": feature " + std::to_string(idx[i]) + " is in two groups");
      }
    }
    Autoencoder a;
    if (std::string why = ReadAutoencoder(r, n, &a); !why.empty()) return bad(group + ": " + why);
    k.groups_.push_back(std::move(idx));
    k.ensemble_.push_back(std::move(a));
  }
  for (uint32_t f = 0; f < dims; ++f) {
    if (!covered[f]) return bad("feature " + std::to_string(f) + " is in no group");
  }
  if (std::string why = ReadAutoencoder(r, ngroups, &k.output_); !why.empty()) {
    return bad("output layer: " + why);
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  if (precision == KitNetPrecision::kInt8) k.QuantizeInt8();
  return k;
}

}  // namespace vigil::model
