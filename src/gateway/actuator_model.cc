#include "gateway/actuator_model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace vigil::gateway {
namespace {

std::vector<std::string> ColumnsWithPrefix(const sensor::BatadalTable& t, std::string_view p) {
  std::vector<std::string> out;
  for (const std::string& s : t.signals) {
    if (s.rfind(p, 0) == 0) out.push_back(s);
  }
  return out;
}

}  // namespace

core::Result<std::unique_ptr<ActuatorStateModel>> ActuatorStateModel::Learn(
    const sensor::BatadalTable& table, const ActuatorModelOptions& options) {
  const std::string& src = table.source;
  if (options.bins < 2 || options.bins > 1000 || options.min_support < 1 ||
      !(options.max_share >= 0 && options.max_share < 0.5) || options.max_age_ns <= 0) {
    return core::InvalidArgument(src + ": actuator model options out of range");
  }
  std::unique_ptr<ActuatorStateModel> m(new ActuatorStateModel());
  m->options_ = options;
  m->source_ = src;
  m->rows_ = table.rows();
  m->actuators_ = options.actuators.empty() ? ColumnsWithPrefix(table, "S_") : options.actuators;
  m->context_ = options.context.empty() ? ColumnsWithPrefix(table, "L_") : options.context;
  if (m->actuators_.empty()) return core::InvalidArgument(src + ": no actuator (S_*) column");
  if (m->context_.empty()) return core::InvalidArgument(src + ": no context (L_*) column");

  std::vector<int> ctx_col;
  for (const std::string& c : m->context_) {
    const int col = table.IndexOf(c);
    if (col < 0) return core::InvalidArgument(fmt::format("{}: no column \"{}\"", src, c));
    ctx_col.push_back(col);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t r = 0; r < table.rows(); ++r) {
      lo = std::min(lo, table.row(r)[col]);
      hi = std::max(hi, table.row(r)[col]);
    }
    m->lo_.push_back(lo);
    m->hi_.push_back(hi);
  }
  const size_t bins = options.bins;
  const size_t nctx = ctx_col.size();
  // Bin of every context value, computed once.
  std::vector<uint32_t> bin_of(table.rows() * nctx);
  for (size_t r = 0; r < table.rows(); ++r) {
    for (size_t c = 0; c < nctx; ++c) {
      const double span = m->hi_[c] - m->lo_[c];
      const double x = table.row(r)[ctx_col[c]];
      const size_t b = span > 0 ? static_cast<size_t>((x - m->lo_[c]) / span * bins) : 0;
      bin_of[r * nctx + c] = static_cast<uint32_t>(std::min(b, bins - 1));
    }
  }
  for (const std::string& a : m->actuators_) {
    const int col = table.IndexOf(a);
    if (col < 0) return core::InvalidArgument(fmt::format("{}: no column \"{}\"", src, a));
    Counts k;
    std::vector<uint32_t> state_of(table.rows());
    for (size_t r = 0; r < table.rows(); ++r) {
      const double v = table.row(r)[col];
      if (!(v >= 0 && v <= 65535) || v != std::floor(v)) {
        return core::InvalidArgument(fmt::format(
            "{}: row {}: actuator {} = {} is not a state (an integer in 0..65535)", src, r + 1, a,
            v));
      }
      state_of[r] = static_cast<uint32_t>(v);
      k.states.push_back(state_of[r]);
    }
    std::sort(k.states.begin(), k.states.end());
    k.states.erase(std::unique(k.states.begin(), k.states.end()), k.states.end());
    const size_t ns = k.states.size();
    k.bin_rows.assign(nctx * bins, 0);
    k.state_rows.assign(nctx * bins * ns, 0);
    for (size_t r = 0; r < table.rows(); ++r) {
      const size_t s = static_cast<size_t>(
          std::lower_bound(k.states.begin(), k.states.end(), state_of[r]) - k.states.begin());
      for (size_t c = 0; c < nctx; ++c) {
        const size_t cell = c * bins + bin_of[r * nctx + c];
        ++k.bin_rows[cell];
        ++k.state_rows[cell * ns + s];
      }
    }
    m->counts_.push_back(std::move(k));
  }
  return m;
}

int ActuatorStateModel::IndexOf(std::string_view actuator) const {
  for (size_t i = 0; i < actuators_.size(); ++i) {
    if (actuators_[i] == actuator) return static_cast<int>(i);
  }
  return -1;
}

Judgement ActuatorStateModel::Judge(std::string_view actuator, uint32_t state,
                                    const PlantState& plant, int64_t now_mono_ns) const {
  Judgement j;
  const int a = IndexOf(actuator);
  if (a < 0) return j;
  const Counts& k = counts_[static_cast<size_t>(a)];
  const auto it = std::lower_bound(k.states.begin(), k.states.end(), state);
  const bool seen = it != k.states.end() && *it == state;
  const size_t s = static_cast<size_t>(it - k.states.begin());
  const size_t ns = k.states.size();
  const size_t bins = options_.bins;
  const auto readings = plant.GetAll(context_);
  bool judged = false;
  double min_share = 1.0;
  for (size_t c = 0; c < context_.size(); ++c) {
    const auto& r = readings[c];
    if (!r.has_value() || now_mono_ns - r->mono_ns > options_.max_age_ns) continue;
    judged = true;
    const double x = r->value;
    if (!(x >= lo_[c] && x <= hi_[c])) continue;
    const double span = hi_[c] - lo_[c];
    const size_t b = std::min(bins - 1, span > 0 ? static_cast<size_t>((x - lo_[c]) / span * bins)
                                                 : size_t{0});
    const size_t cell = c * bins + b;
    const uint32_t n = k.bin_rows[cell];
    const uint32_t hits = seen ? k.state_rows[cell * ns + s] : 0;
    if (n < options_.min_support) continue;
    const double share = static_cast<double>(hits) / n;
    if (share > options_.max_share) continue;
    min_share = std::min(min_share, share);
    const double bin_lo = lo_[c] + span * static_cast<double>(b) / bins;
    const double bin_hi = lo_[c] + span * static_cast<double>(b + 1) / bins;
    j.why.push_back({fmt::format("{}={} in {} of {} training rows with {} in [{:.3g}, {:.3g}{} "
                                 "(now {:.3g})",
                                 actuator, state, hits, n, context_[c], bin_lo, bin_hi,
                                 b + 1 == bins ? "]" : ")", x),
                     1.0 - share});
  }
  if (!judged) return j;
  if (j.why.empty()) {
    j.outcome = Judgement::Outcome::kConsistent;
    return j;
  }
  std::sort(j.why.begin(), j.why.end(),
            [](const core::Evidence& x, const core::Evidence& y) { return x.weight > y.weight; });
  j.outcome = Judgement::Outcome::kInconsistent;
  j.score = 1.0 - min_share;
  return j;
}

}  // namespace vigil::gateway
