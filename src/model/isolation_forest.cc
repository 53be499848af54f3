#include "model/isolation_forest.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "model/calibration.h"
#include "model/evaluation.h"
#include "model/internal/bytes.h"
#include "model/internal/random.h"
#include "model/internal/training_rows.h"

namespace vigil::model {
namespace {

constexpr int kMaxForestTrees = 10000;
constexpr size_t kMaxSampleSize = 65536;
constexpr uint32_t kMaxForestDims = 1u << 20;

using Node = IsolationForest::Node;

// Uniform draws built on the raw engine output, so a seed gives the same forest everywhere.
double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
// Grows one iTree over rows[idx[begin..end)] into `out` (positions relative to the tree).
class TreeBuilder {
 public:
  TreeBuilder(const std::vector<std::vector<float>>& rows, size_t dims, int height_limit,
              std::mt19937_64& rng, std::vector<Node>& out)
      : rows_(rows), dims_(dims), limit_(height_limit), rng_(rng), out_(out) {
    lo_.resize(dims);
    hi_.resize(dims);
    candidates_.reserve(dims);
  }

  uint32_t Build(std::vector<uint32_t>& idx, size_t begin, size_t end, int depth) {
    const auto at = static_cast<uint32_t>(out_.size());
    out_.push_back(Node{-1, 0.0f, 0, 0, static_cast<uint32_t>(end - begin)});
    if (end - begin <= 1 || depth >= limit_) return at;
    std::fill(lo_.begin(), lo_.end(), std::numeric_limits<float>::infinity());
    std::fill(hi_.begin(), hi_.end(), -std::numeric_limits<float>::infinity());
    for (size_t i = begin; i < end; ++i) {
      const std::vector<float>& r = rows_[idx[i]];
      for (size_t f = 0; f < dims_; ++f) {
        lo_[f] = std::min(lo_[f], r[f]);
        hi_[f] = std::max(hi_[f], r[f]);
      }
    }
    candidates_.clear();
    for (size_t f = 0; f < dims_; ++f) {
      if (lo_[f] < hi_[f]) candidates_.push_back(static_cast<uint32_t>(f));
    }
    if (candidates_.empty()) return at;
    const uint32_t f = candidates_[internal::UniformIndex(rng_, candidates_.size())];
    float t = static_cast<float>(lo_[f] + Uniform01(rng_) * (static_cast<double>(hi_[f]) - lo_[f]));
    // Rounding to float may land on min; the split must leave a row on each side.
    if (!(t > lo_[f])) t = std::nextafter(lo_[f], hi_[f]);
    size_t mid = begin;
    for (size_t i = begin; i < end; ++i) {
      if (rows_[idx[i]][f] < t) std::swap(idx[i], idx[mid++]);
    }
    const uint32_t left = Build(idx, begin, mid, depth + 1);
    const uint32_t right = Build(idx, mid, end, depth + 1);
    Node& n = out_[at];
    n.feature = static_cast<int32_t>(f);
    n.threshold = t;
    n.left = left;
    n.right = right;
    return at;
  }

 private:
  const std::vector<std::vector<float>>& rows_;
  const size_t dims_;
  const int limit_;
  std::mt19937_64& rng_;
  std::vector<Node>& out_;
  std::vector<float> lo_, hi_;
  std::vector<uint32_t> candidates_;
};

float At(std::span<const float> row, int32_t f) {
  const auto i = static_cast<size_t>(f);
  return i < row.size() ? row[i] : 0.0f;
}

}  // namespace

// The reference distributions for drift monitoring: the calibration rows' scores, and the
// values of the (at most kDriftFeatures) features the trees split on most often.
DriftReference IsolationForest::DriftReferenceOf(const IsolationForest& forest,
                                                 const std::vector<std::vector<float>>& rows,
                                                 const std::vector<uint32_t>& subset,
                                                 const std::vector<double>& scores) {
  constexpr size_t kDriftFeatures = 5;
  DriftReference ref;
  if (auto h = ReferenceHistogram::FromSamples(scores); h.has_value()) ref.score = *h;
  std::vector<std::pair<uint64_t, uint32_t>> splits(forest.dims_);
  for (uint32_t f = 0; f < forest.dims_; ++f) splits[f] = {0, f};
  for (const Node& n : forest.nodes_) {
    if (n.feature >= 0) ++splits[static_cast<size_t>(n.feature)].first;
  }
  std::stable_sort(splits.begin(), splits.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> values;
  for (size_t k = 0; k < std::min(kDriftFeatures, splits.size()) && splits[k].first > 0; ++k) {
    const uint32_t f = splits[k].second;
    values.clear();
    for (uint32_t i : subset) values.push_back(rows[i][f]);
    auto h = ReferenceHistogram::FromSamples(values);
    if (!h.has_value()) continue;
    const auto& names = forest.options_.feature_names;
    ref.features.push_back(
        {f < names.size() ? names[f] : "#" + std::to_string(f), f, std::move(h).value()});
  }
  return ref;
}

double IsolationForest::AveragePathLength(double n) {
  if (n <= 1.0) return 0.0;
  if (n <= 2.0) return 1.0;
  constexpr double kEulerGamma = 0.5772156649015329;
  return 2.0 * (std::log(n - 1.0) + kEulerGamma) - 2.0 * (n - 1.0) / n;
}

core::Result<IsolationForest> IsolationForest::Train(const std::vector<std::vector<float>>& rows,
                                                     const IsolationForestOptions& options) {
  if (options.trees < 1 || options.trees > kMaxForestTrees) {
    return core::InvalidArgument("trees " + std::to_string(options.trees) + " is outside 1.." +
                                 std::to_string(kMaxForestTrees));
  }
  if (options.sample_size < 2 || options.sample_size > kMaxSampleSize) {
    return core::InvalidArgument("sample_size " + std::to_string(options.sample_size) +
                                 " is outside 2.." + std::to_string(kMaxSampleSize));
  }
  if (!(options.target_fpr > 0.0 && options.target_fpr < 1.0)) {
    return core::InvalidArgument("target_fpr must be in (0, 1)");
  }
  if (!(options.calibration_fraction >= 0.0 && options.calibration_fraction <= 0.9)) {
    return core::InvalidArgument("calibration_fraction must be in [0, 0.9]");
  }
  if (options.explain_top < 0 || options.explain_top > kMaxExplainTop) {
    return core::InvalidArgument("explain_top must be in 0.." + std::to_string(kMaxExplainTop));
  }
  VIGIL_RETURN_IF_ERROR(internal::CheckTrainingRows(rows, kMaxForestDims));
  const size_t dims = rows[0].size();
  if (!options.feature_names.empty() && options.feature_names.size() != dims) {
    return core::InvalidArgument(std::to_string(options.feature_names.size()) +
                                 " feature names for " + std::to_string(dims) + " features");
  }
  std::mt19937_64 rng(options.seed);
  auto split = internal::SplitHoldOut(rows.size(), options.calibration_fraction, rng);
  if (!split.has_value()) return split.error();
  std::vector<uint32_t>& train = split->train;
  const std::vector<uint32_t>& held = split->held;

  IsolationForest forest;
  forest.options_ = options;
  forest.dims_ = dims;
  forest.psi_ = std::min(options.sample_size, train.size());
  forest.c_psi_ = AveragePathLength(static_cast<double>(forest.psi_));
  const int limit = static_cast<int>(std::ceil(std::log2(static_cast<double>(forest.psi_))));
  std::vector<Node> tree;
  for (int t = 0; t < options.trees; ++t) {
    // Partial Fisher-Yates: the first psi entries of `train` become the sample.
    for (size_t i = 0; i < forest.psi_; ++i) {
      std::swap(train[i], train[i + internal::UniformIndex(rng, train.size() - i)]);
    }
    std::vector<uint32_t> sample(train.begin(),
                                 train.begin() + static_cast<ptrdiff_t>(forest.psi_));
    tree.clear();
    TreeBuilder(rows, dims, limit, rng, tree).Build(sample, 0, sample.size(), 0);
    forest.roots_.push_back(static_cast<uint32_t>(forest.nodes_.size()));
    forest.nodes_.insert(forest.nodes_.end(), tree.begin(), tree.end());
  }

  forest.IndexLeaves();
  // The calibration set: the held-out rows, or the training rows when nothing is held out.
  const std::vector<uint32_t>& calibration_rows = held.empty() ? train : held;
  std::vector<double> scores;
  DatasetDigest digest;
  for (uint32_t i : calibration_rows) {
    scores.push_back(forest.Score(rows[i]));
    digest.Add(std::span<const float>(rows[i]));
  }
  auto record = CalibrateThreshold(scores, options.target_fpr,
                                   held.empty() ? "training" : "held-out",
                                   digest.Final());
  if (!record.has_value()) return record.error();
  IForestCalibration& c = forest.calibration_;
  c.rows = scores.size();
  c.threshold = std::min(record->threshold, 1.0);
  c.achieved_fpr = FalseAlarmRate(scores, c.threshold);
  record->threshold = c.threshold;
  record->achieved_fpr = c.achieved_fpr;
  forest.record_.calibration = std::move(record).value();
  forest.record_.drift = DriftReferenceOf(forest, rows, calibration_rows, scores);
  return forest;
}

double IsolationForest::PathLength(size_t tree, std::span<const float> row) const {
  const Step* steps = steps_.data();
  uint32_t i = roots_[tree];
  int depth = 0;
  while (steps[i].feature >= 0) {
    i = steps[i].Next(At(row, steps[i].feature));
    ++depth;
  }
  return depth + leaf_c_[i];
}

void IsolationForest::IndexLeaves() {
  leaf_c_.resize(nodes_.size());
  leaf_path_.resize(nodes_.size());
  edge_credit_.assign(nodes_.size(), 0.0);
  steps_.resize(nodes_.size());
  tree_height_.assign(roots_.size(), 0);
  std::vector<int> depth(nodes_.size(), 0);
  for (size_t t = 0; t < roots_.size(); ++t) {
    const size_t end = t + 1 < roots_.size() ? roots_[t + 1] : nodes_.size();
    for (size_t i = roots_[t]; i < end; ++i) {
      const Node& n = nodes_[i];
      leaf_c_[i] = AveragePathLength(static_cast<double>(n.size));
      leaf_path_[i] = depth[i] + leaf_c_[i];
      if (n.feature >= 0) {
        for (uint32_t c : {n.left, n.right}) {
          const Node& child = nodes_[roots_[t] + c];
          edge_credit_[roots_[t] + c] = std::log2(static_cast<double>(n.size) /
                                                  std::max(child.size, 1u));
        }
      }
      if (n.feature < 0) {
        const auto self = static_cast<uint32_t>(i);
        steps_[i] = {n.feature, n.threshold, {self, self}};
        tree_height_[t] = std::max(tree_height_[t], depth[i]);
        continue;
      }
      steps_[i] = {n.feature, n.threshold, {roots_[t] + n.left, roots_[t] + n.right}};
      // Children come after their parent (FromFile checks it), so their depth is set in time.
      depth[steps_[i].child[0]] = depth[steps_[i].child[1]] = depth[i] + 1;
    }
  }
}

void IsolationForest::ScoreBatch(std::span<const std::vector<float>> rows,
                                 std::span<double> out) const {
  constexpr size_t kBlock = 256;
  const size_t count = std::min(rows.size(), out.size());
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t end = std::min(count, begin + kBlock);
    std::fill(out.begin() + static_cast<ptrdiff_t>(begin),
              out.begin() + static_cast<ptrdiff_t>(end), 0.0);
    // Rows of full length are read without the bounds check of At (the rest take PathLength).
    bool full = true;
    for (size_t i = begin; i < end; ++i) full = full && rows[i].size() >= dims_;
    const Step* steps = steps_.data();
    for (size_t t = 0; t < roots_.size(); ++t) {
      size_t i = begin;
      // kLanes rows walk the tree together, each exactly the tree's height: a leaf leads back to
      // itself, so no lane tests whether it has arrived. The lanes' node loads are independent
      // and overlap instead of waiting for one another (each path is a chain of dependent
      // loads), and the only branch left is the loop's own.
      constexpr size_t kLanes = 8;
      const int height = tree_height_[t];
      for (; full && i + kLanes <= end; i += kLanes) {
        uint32_t at[kLanes];
        const float* x[kLanes];
        for (size_t k = 0; k < kLanes; ++k) {
          at[k] = roots_[t];
          x[k] = rows[i + k].data();
        }
        for (int d = 0; d < height; ++d) {
          for (size_t k = 0; k < kLanes; ++k) {
            const Step& s = steps[at[k]];
            at[k] = s.Next(x[k][s.feature < 0 ? 0 : s.feature]);
          }
        }
        for (size_t k = 0; k < kLanes; ++k) out[i + k] += leaf_path_[at[k]];
      }
      for (; i < end; ++i) out[i] += PathLength(t, rows[i]);
    }
    for (size_t i = begin; i < end; ++i) {
      out[i] = roots_.empty()
                   ? 0.0
                   : std::exp2(-(out[i] / static_cast<double>(roots_.size())) / c_psi_);
    }
  }
}

double IsolationForest::Score(std::span<const float> row) const {
  if (roots_.empty()) return 0.0;
  const double mean = WalkRow<false>(row, nullptr, nullptr) / static_cast<double>(roots_.size());
  return std::exp2(-mean / c_psi_);
}

std::vector<FeatureWeight> IsolationForest::Explain(std::span<const float> row, size_t k) const {
  std::vector<FeatureWeight> top;
  (void)ScoreExplained(row, k, &top);
  return top;
}

template <bool kCredit>
double IsolationForest::WalkRow(std::span<const float> row, std::vector<double>* credit,
                                double* total) const {
  const auto add = [&](size_t f, double w) {
    if constexpr (kCredit) {
      (*credit)[f] += w;
      *total += w;
    }
  };
  double sum = 0.0;
  const Step* steps = steps_.data();
  size_t t = 0;
  if (row.size() >= dims_) {
    // kLanes trees walk the row together for the height of the tallest, as the rows of
    // ScoreBatch do (the same sums, in the same order): the walks' loads are independent and
    // overlap. A lane that stands on a leaf stays there and credits 0.0 to feature 0, which
    // changes nothing.
    constexpr size_t kLanes = 8;
    const float* x = row.data();
    for (; t + kLanes <= roots_.size(); t += kLanes) {
      uint32_t at[kLanes];
      int height = 0;
      for (size_t l = 0; l < kLanes; ++l) {
        at[l] = roots_[t + l];
        height = std::max(height, tree_height_[t + l]);
      }
      for (int d = 0; d < height; ++d) {
        for (size_t l = 0; l < kLanes; ++l) {
          const Step& s = steps[at[l]];
          const bool split = s.feature >= 0;
          const auto f = static_cast<size_t>(split ? s.feature : 0);
          at[l] = s.Next(x[f]);
          add(f, split ? edge_credit_[at[l]] : 0.0);
        }
      }
      for (size_t l = 0; l < kLanes; ++l) sum += leaf_path_[at[l]];
    }
  }
  for (; t < roots_.size(); ++t) {
    uint32_t at = roots_[t];
    while (steps[at].feature >= 0) {
      const Step& s = steps[at];
      at = s.Next(At(row, s.feature));
      add(static_cast<size_t>(s.feature), edge_credit_[at]);
    }
    sum += leaf_path_[at];
  }
  return sum;
}

double IsolationForest::ScoreExplained(std::span<const float> row, size_t k,
                                       std::vector<FeatureWeight>* top) const {
  std::vector<double> credit(dims_, 0.0);
  double total = 0.0;
  const double sum = WalkRow<true>(row, &credit, &total);
  top->clear();
  for (size_t f = 0; f < dims_; ++f) {
    if (credit[f] > 0.0) top->push_back({static_cast<uint32_t>(f), credit[f] / total});
  }
  const size_t keep = std::min(k, top->size());
  std::partial_sort(top->begin(), top->begin() + static_cast<ptrdiff_t>(keep), top->end(),
                    [](const FeatureWeight& a, const FeatureWeight& b) {
                      return a.weight != b.weight ? a.weight > b.weight : a.feature < b.feature;
                    });
  top->resize(keep);
  if (roots_.empty()) return 0.0;
  return std::exp2(-(sum / static_cast<double>(roots_.size())) / c_psi_);
}

ModelFile IsolationForest::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = std::string(kIsolationForestFamily);
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  f.header["params"] = {{"trees", roots_.size()},
                        {"sample_size", options_.sample_size},
                        {"psi", psi_},
                        {"seed", options_.seed},
                        {"target_fpr", options_.target_fpr},
                        {"calibration_fraction", options_.calibration_fraction},
                        {"explain_top", options_.explain_top},
                        {"dims", dims_}};
  f.header["calibration"] = {{"method", "held-out"},
                             {"threshold", calibration_.threshold},
                             {"achieved_fpr", calibration_.achieved_fpr},
                             {"rows", calibration_.rows}};
  record_.WriteTo(f.header);
  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(dims_));
  w.U32(static_cast<uint32_t>(psi_));
  w.F64(options_.target_fpr);
  w.F64(calibration_.threshold);
  w.F64(calibration_.achieved_fpr);
  w.U64(calibration_.rows);
  w.U32(static_cast<uint32_t>(options_.explain_top));
  w.U32(static_cast<uint32_t>(options_.feature_names.size()));
  for (const std::string& n : options_.feature_names) w.Str16(n);
  w.U32(static_cast<uint32_t>(roots_.size()));
  for (size_t t = 0; t < roots_.size(); ++t) {
    const size_t end = t + 1 < roots_.size() ? roots_[t + 1] : nodes_.size();
    w.U32(static_cast<uint32_t>(end - roots_[t]));
    for (size_t i = roots_[t]; i < end; ++i) {
      const Node& n = nodes_[i];
      w.U32(static_cast<uint32_t>(n.feature));
      w.U32(std::bit_cast<uint32_t>(n.threshold));
      w.U32(n.left);
      w.U32(n.right);
      w.U32(n.size);
    }
  }
  f.payload = std::move(w.str());
  return f;
}

core::Result<IsolationForest> IsolationForest::FromFile(const ModelFile& file,
                                                        std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kIsolationForestFamily, source));
  IsolationForest m;
  m.options_.name = HeaderString(file, "name");
  m.options_.version = HeaderString(file, "version");
  internal::ByteReader r(file.payload);
  uint32_t dims = 0, psi = 0, explain = 0, nnames = 0, ntrees = 0;
  uint64_t rows = 0;
  IForestCalibration& c = m.calibration_;
  if (!r.U32(&dims) || !r.U32(&psi) || !r.F64(&m.options_.target_fpr) || !r.F64(&c.threshold) ||
      !r.F64(&c.achieved_fpr) || !r.U64(&rows) || !r.U32(&explain) || !r.U32(&nnames)) {
    return bad("truncated in the parameters");
  }
  c.rows = rows;
  if (dims < 1 || dims > kMaxForestDims)
    return bad("dims " + std::to_string(dims) + " out of range");
  if (psi < 2 || psi > kMaxSampleSize) {
    return bad("sample size " + std::to_string(psi) + " outside 2.." +
               std::to_string(kMaxSampleSize));
  }
  if (!(m.options_.target_fpr > 0.0 && m.options_.target_fpr < 1.0)) {
    return bad("target_fpr is not in (0, 1)");
  }
  if (!std::isfinite(c.threshold) || c.threshold < 0.0 || c.threshold > 1.0) {
    return bad("threshold is not a finite score in [0, 1]");
  }
  if (!(c.achieved_fpr >= 0.0 && c.achieved_fpr <= 1.0)) return bad("achieved_fpr not in [0, 1]");
  if (explain > static_cast<uint32_t>(kMaxExplainTop)) {
    return bad("explain_top " + std::to_string(explain) + " is too large");
  }
  if (nnames != 0 && nnames != dims) {
    return bad(std::to_string(nnames) + " feature names for " + std::to_string(dims) + " features");
  }
  m.options_.explain_top = static_cast<int>(explain);
  m.options_.sample_size = psi;
  m.options_.feature_names.resize(nnames);
  for (uint32_t i = 0; i < nnames; ++i) {
    if (!r.Str16(&m.options_.feature_names[i])) {
      return bad("truncated in feature name " + std::to_string(i));
    }
  }
  if (!r.U32(&ntrees)) return bad("truncated before the tree count");
  if (ntrees < 1 || ntrees > static_cast<uint32_t>(kMaxForestTrees)) {
    return bad("tree count " + std::to_string(ntrees) + " outside 1.." +
               std::to_string(kMaxForestTrees));
  }
  m.options_.trees = static_cast<int>(ntrees);
  m.dims_ = dims;
  m.psi_ = psi;
  m.c_psi_ = AveragePathLength(psi);
  const uint32_t max_nodes = 2 * psi - 1;
  std::vector<uint8_t> referenced;
  for (uint32_t t = 0; t < ntrees; ++t) {
    const std::string tree = "tree " + std::to_string(t);
    uint32_t count = 0;
    if (!r.U32(&count)) return bad("truncated before the node count of " + tree);
    if (count < 1 || count > max_nodes) {
      return bad(tree + ": node count " + std::to_string(count) + " outside 1.." +
                 std::to_string(max_nodes));
    }
    if (count > r.remaining() / 20) return bad(tree + ": nodes run past the end");
    const auto base = static_cast<uint32_t>(m.nodes_.size());
    m.roots_.push_back(base);
    referenced.assign(count, 0);
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t feature = 0, bits = 0;
      Node n;
      (void)r.U32(&feature);
      (void)r.U32(&bits);
      (void)r.U32(&n.left);
      (void)r.U32(&n.right);
      (void)r.U32(&n.size);
      n.feature = static_cast<int32_t>(feature);
      n.threshold = std::bit_cast<float>(bits);
      const std::string node = tree + " node " + std::to_string(i);
      if (n.feature == -1) {
        if (n.left != 0 || n.right != 0 || bits != 0) return bad(node + ": leaf with children");
        if (n.size < 1 || n.size > psi) {
          return bad(node + ": leaf size " + std::to_string(n.size) + " outside 1.." +
                     std::to_string(psi));
        }
      } else {
        if (feature >= dims) {
          return bad(node + ": feature index " + std::to_string(feature) + " is not below dims " +
                     std::to_string(dims));
        }
        if (!std::isfinite(n.threshold)) return bad(node + ": threshold is not finite");
        if (n.left <= i || n.left >= count || n.right <= i || n.right >= count ||
            n.left == n.right) {
          return bad(node +
                     ": child index out of range (children must follow the node inside "
                     "the tree)");
        }
        if (referenced[n.left]++ || referenced[n.right]++) {
          return bad(node + ": a child is shared by two nodes");
        }
      }
      m.nodes_.push_back(n);
    }
    for (uint32_t i = 1; i < count; ++i) {
      if (!referenced[i]) return bad(tree + ": node " + std::to_string(i) + " is unreachable");
    }
    // Children follow parents, so a backward pass sees both children of a node first.
    for (uint32_t i = count; i-- > 0;) {
      const Node& n = m.nodes_[base + i];
      if (n.feature < 0) continue;
      const uint64_t sum = uint64_t{m.nodes_[base + n.left].size} + m.nodes_[base + n.right].size;
      if (n.size != sum) {
        return bad(tree + " node " + std::to_string(i) + ": size " + std::to_string(n.size) +
                   " is not the sum of its children's");
      }
    }
    if (m.nodes_[base].size > psi) {
      return bad(tree + ": root size " + std::to_string(m.nodes_[base].size) +
                 " is larger than the sample size");
    }
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  m.IndexLeaves();
  VIGIL_ASSIGN_OR_RETURN(m.record_, TrainingRecord::ReadFrom(file.header, source));
  return m;
}

// ---------------------------------------------------------------------------------------------
// The stream adapter.

namespace {

class IForestStream final : public StreamScorer {
 public:
  IForestStream(const IsolationForestModel& model, std::string_view subject)
      : model_(model),
        subject_(subject),
        bag_(model.vocabulary()),
        row_(model.vocabulary().dims()) {}

  void Observe(const core::Event& e) override {
    if (e.kind == core::EventKind::kSyscall) bag_.Add(e.syscall.arch, e.syscall.nr);
  }
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    bag_.AddAll(arch, nrs);
  }

  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = model_.name();
    v.model_version = model_.version();
    v.subject = subject_;
    v.events = bag_.total();
    if (bag_.total() == 0) return v;
    bag_.Frequencies(row_);
    const IsolationForest& f = model_.forest();
    v.score = f.Score(row_);
    v.anomalous = f.IsAnomalous(v.score);
    const auto k = static_cast<size_t>(f.options().explain_top);
    if (k > 0) {
      for (const FeatureWeight& w : f.Explain(row_, k)) {
        v.explanation.push_back({f.feature_names()[w.feature], w.weight});
      }
    }
    return v;
  }

  uint64_t observed() const override { return bag_.total(); }

 private:
  const IsolationForestModel& model_;
  std::string subject_;
  SyscallBag bag_;
  mutable std::vector<float> row_;  // scratch for Current()
};

}  // namespace

core::Result<std::unique_ptr<IsolationForestModel>> IsolationForestModel::Train(
    std::span<const TrainingTrace> traces, const IsolationForestOptions& options) {
  if (traces.empty()) return core::InvalidArgument("no training traces");
  auto vocab = SyscallVocabulary::FromTraces(traces);
  if (!vocab.has_value()) return vocab.error();
  std::vector<std::vector<float>> rows;
  rows.reserve(traces.size());
  for (const TrainingTrace& t : traces) rows.push_back(BagOfSyscalls(*vocab, t.arch, t.syscalls));
  IsolationForestOptions o = options;
  o.feature_names = vocab->FeatureNames();
  auto forest = IsolationForest::Train(rows, o);
  if (!forest.has_value()) return forest.error();
  return std::unique_ptr<IsolationForestModel>(
      new IsolationForestModel(std::move(forest).value(), std::move(vocab).value()));
}

core::Result<std::unique_ptr<IsolationForestModel>> IsolationForestModel::FromFile(
    const ModelFile& file, std::string_view source) {
  auto forest = IsolationForest::FromFile(file, source);
  if (!forest.has_value()) return forest.error();
  const std::vector<std::string>& names = forest->feature_names();
  const std::string src(source);
  if (names.empty() || names.back() != kOtherSyscallFeature) {
    return core::DataLoss(src +
                          ": payload: the feature names are not a syscall vocabulary "
                          "ending in \"<other>\"");
  }
  auto vocab = SyscallVocabulary::Create({names.begin(), names.end() - 1});
  if (!vocab.has_value()) return core::DataLoss(src + ": payload: " + vocab.error().message());
  return std::unique_ptr<IsolationForestModel>(
      new IsolationForestModel(std::move(forest).value(), std::move(vocab).value()));
}

std::unique_ptr<StreamScorer> IsolationForestModel::NewStream(std::string_view subject) const {
  return std::make_unique<IForestStream>(*this, subject);
}

core::Result<core::Verdict> IsolationForestModel::Score(const FeatureView& request) const {
  if (request.values.empty()) return Model::Score(request);
  if (request.values.size() != forest_.dims()) {
    return core::InvalidArgument("iforest " + name() + ": feature vector of " +
                                 std::to_string(request.values.size()) + " values, model has " +
                                 std::to_string(forest_.dims()));
  }
  core::Verdict v;
  v.model_name = name();
  v.model_version = version();
  v.subject = std::string(request.subject);
  v.events = request.values.size();
  const auto k = static_cast<size_t>(forest_.options().explain_top);
  std::vector<FeatureWeight> top;
  v.score = k > 0 ? forest_.ScoreExplained(request.values, k, &top) : forest_.Score(request.values);
  v.anomalous = forest_.IsAnomalous(v.score);
  for (const FeatureWeight& w : top) {
    v.explanation.push_back({forest_.feature_names()[w.feature], w.weight});
  }
  return v;
}

double IsolationForestModel::ScoreTrace(core::Arch arch, std::span<const int32_t> nrs) const {
  return forest_.Score(BagOfSyscalls(vocab_, arch, nrs));
}

}  // namespace vigil::model
