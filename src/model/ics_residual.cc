#include "model/ics_residual.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_set>

#include "model/evaluation.h"
#include "model/internal/bytes.h"

namespace vigil::model {
namespace {

constexpr uint32_t kMaxSignals = 4096;
constexpr int kMaxFolds = 20;
constexpr int kMinRowsPerFold = 20;
constexpr double kMinScale = 1e-9;
// The largest contribution of one signal, log(1 + 1e12), reached at 10^6 residual scales and by
// a value that is not a finite number; the cap keeps the sum finite whatever a model file says.
const double kMaxContribution = std::log1p(1e12);

double Contribution(double z) {
  if (!std::isfinite(z) || std::abs(z) >= 1e6) return kMaxContribution;
  return std::log1p(z * z);
}

core::Status CheckOptions(const IcsResidualOptions& o) {
  auto bad = [](const std::string& why) { return core::InvalidArgument(why); };
  if (!(o.ridge >= 1e-6 && o.ridge <= 1e6)) return bad("ridge must be in [1e-6, 1e6]");
  if (!(o.resolution >= 0.0 && o.resolution <= 1e6)) return bad("resolution must be in [0, 1e6]");
  if (!(o.smoothing > 0.0 && o.smoothing <= 1.0)) return bad("smoothing must be in (0, 1]");
  if (!(o.target_fpr > 0.0 && o.target_fpr <= 0.5)) return bad("target_fpr must be in (0, 0.5]");
  if (o.folds < 2 || o.folds > kMaxFolds) return bad("folds must be in 2..20");
  if (o.explain_top < 0 || o.explain_top > kMaxExplainTop) {
    return bad("explain_top must be in 0..64");
  }
  return core::Status::Ok();
}

core::Status CheckNames(const std::vector<std::string>& names) {
  if (names.empty() || names.size() > kMaxSignals) {
    return core::InvalidArgument("the model needs 1.." + std::to_string(kMaxSignals) +
                                 " signals, got " + std::to_string(names.size()));
  }
  std::unordered_set<std::string_view> seen;
  for (const std::string& n : names) {
    if (n.empty() || n.size() > 1024) {
      return core::InvalidArgument("signal names must be 1..1024 bytes long");
    }
    if (!seen.insert(n).second) {
      return core::InvalidArgument("signal \"" + n + "\" appears twice");
    }
  }
  return core::Status::Ok();
}

std::string FormatValue(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// The per-series state: the previous standardised row (for the lag columns) and one EWMA of
// log(1 + z^2) per signal.
class IcsSeriesState {
 public:
  explicit IcsSeriesState(const IcsResidualModel& m)
      : m_(m),
        n_(m.signals().size()),
        z_(static_cast<Eigen::Index>(n_)),
        design_(static_cast<Eigen::Index>(2 * m.live().size())),
        smoothed_(n_, Ewma(m.options().smoothing)),
        last_x_(n_, 0.0),
        last_expected_(n_, 0.0),
        last_z_(n_, 0.0),
        contribution_(n_, 0.0) {}

  void Observe(std::span<const double> row) {
    const SignalScaling& s = m_.scaling();
    const std::vector<uint32_t>& live = m_.live();
    const auto l = static_cast<Eigen::Index>(live.size());
    for (size_t i = 0; i < n_; ++i) {
      const double x = i < row.size() ? row[i] : std::nan("");
      last_x_[i] = x;
      const auto ii = static_cast<Eigen::Index>(i);
      const double z = (x - s.mean(ii)) / s.scale(ii);
      // A value that is not a number is scored below; it must not poison the predictions.
      z_(ii) = std::isfinite(z) ? z : 0.0;
    }
    for (Eigen::Index j = 0; j < l; ++j) {
      const double z = z_(live[static_cast<size_t>(j)]);
      design_(j) = z;
      design_(l + j) = rows_ == 0 ? z : design_(l + j);  // lag column holds last row's value
    }
    std::fill(contribution_.begin(), contribution_.end(), 0.0);
    std::vector<double>& contribution = contribution_;
    const std::vector<IcsResidualModel::Target>& targets = m_.targets();
    for (size_t t = 0; t < targets.size(); ++t) {
      const IcsResidualModel::Target& tg = targets[t];
      const auto c = static_cast<Eigen::Index>(tg.signal);
      const double predicted = tg.fit.Predict(design_, m_.ColumnsOf(t));
      const double z = (z_(c) - predicted) / tg.scale;
      last_expected_[tg.signal] = predicted * s.scale(c) + s.mean(c);
      last_z_[tg.signal] = z;
      contribution[tg.signal] = Contribution(z);
    }
    const double res = m_.options().resolution;
    const double unit = std::max(res, kMinScale);
    for (size_t i = 0; i < n_; ++i) {
      const auto ii = static_cast<Eigen::Index>(i);
      if (!std::isfinite(last_x_[i])) {
        contribution[i] = kMaxContribution;
        last_z_[i] = std::nan("");
        continue;
      }
      if (m_.roles()[i] != SignalRole::kConstant) continue;
      const double dev = std::abs(last_x_[i] - s.mean(ii));
      last_expected_[i] = s.mean(ii);
      last_z_[i] = dev > res / 2.0 ? dev / unit : 0.0;
      contribution[i] = Contribution(last_z_[i]);
    }
    double sum = 0.0;
    for (size_t i = 0; i < n_; ++i) sum += smoothed_[i].Update(contribution[i]);
    raw_ = sum / static_cast<double>(targets.size());
    // The lag columns of the next row are this row's values.
    for (Eigen::Index j = 0; j < l; ++j) design_(l + j) = design_(j);
    ++rows_;
  }

  double raw() const { return raw_; }
  uint64_t rows() const { return rows_; }

  core::Verdict Verdict() const {
    core::Verdict v;
    v.model_name = m_.name();
    v.model_version = m_.version();
    v.events = rows_;
    if (rows_ == 0) return v;
    const double thr = m_.calibration().threshold;
    v.score = raw_ / (raw_ + thr);
    v.anomalous = raw_ >= thr;
    const auto k = std::min<size_t>(static_cast<size_t>(m_.options().explain_top), n_);
    if (k == 0) return v;
    std::vector<size_t> order(n_);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](size_t a, size_t b) {
                        return smoothed_[a].value() > smoothed_[b].value();
                      });
    const double denom = static_cast<double>(m_.targets().size());
    for (size_t j = 0; j < k; ++j) {
      const size_t i = order[j];
      if (!(smoothed_[i].value() > 0.0)) break;
      std::string what = m_.signals()[i] + " read " + FormatValue(last_x_[i]);
      if (std::isfinite(last_x_[i]) && m_.roles()[i] == SignalRole::kConstant) {
        what += ", constant " + FormatValue(last_expected_[i]) + " in training";
      } else if (std::isfinite(last_x_[i])) {
        what += ", expected " + FormatValue(last_expected_[i]) + " (" +
                FormatValue(last_z_[i]) + " sd)";
      }
      v.explanation.push_back({std::move(what), smoothed_[i].value() / denom});
    }
    return v;
  }

 private:
  const IcsResidualModel& m_;
  size_t n_;
  Eigen::VectorXd z_;
  Eigen::RowVectorXd design_;
  std::vector<Ewma> smoothed_;
  std::vector<double> last_x_, last_expected_, last_z_;
  std::vector<double> contribution_;
  double raw_ = 0.0;
  uint64_t rows_ = 0;
};

class IcsSignalStream final : public SignalStreamScorer {
 public:
  explicit IcsSignalStream(const IcsResidualModel& m) : state_(m) {}
  void ObserveRow(std::span<const double> row) override { state_.Observe(row); }
  core::Verdict Current() const override { return state_.Verdict(); }
  double RawScore() const override { return state_.raw(); }
  uint64_t observed() const override { return state_.rows(); }

 private:
  IcsSeriesState state_;
};

// A stream of pipeline events: none of them carries a signal row, so all are ignored.
class IcsEventStream final : public StreamScorer {
 public:
  IcsEventStream(const IcsResidualModel& m, std::string_view subject)
      : m_(m), subject_(subject) {}
  void Observe(const core::Event&) override {}
  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = m_.name();
    v.model_version = m_.version();
    v.subject = subject_;
    return v;
  }
  uint64_t observed() const override { return 0; }

 private:
  const IcsResidualModel& m_;
  std::string subject_;
};

}  // namespace

void IcsResidualModel::BuildColumns() {
  live_ = LiveSignals(roles_);
  columns_.clear();
  for (const Target& t : targets_) columns_.push_back(DesignColumnsFor(live_, t.signal));
}

core::Result<std::unique_ptr<IcsResidualModel>> IcsResidualModel::Train(
    std::vector<std::string> signals, const Eigen::MatrixXd& rows,
    const IcsResidualOptions& options) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  VIGIL_RETURN_IF_ERROR(CheckNames(signals));
  if (static_cast<size_t>(rows.cols()) != signals.size()) {
    return core::InvalidArgument("rows have " + std::to_string(rows.cols()) + " columns for " +
                                 std::to_string(signals.size()) + " signal names");
  }
  const Eigen::Index n = rows.rows();
  if (n < static_cast<Eigen::Index>(options.folds) * kMinRowsPerFold) {
    return core::InvalidArgument("training needs at least " +
                                 std::to_string(options.folds * kMinRowsPerFold) +
                                 " rows (20 per fold), got " + std::to_string(n));
  }
  if (!rows.allFinite()) return core::InvalidArgument("training rows hold a non-finite value");

  std::unique_ptr<IcsResidualModel> m(new IcsResidualModel());
  m->options_ = options;
  m->signals_ = std::move(signals);
  Eigen::MatrixXd x = rows;
  QuantiseInPlace(x, options.resolution);
  m->roles_ = ClassifySignals(x, options.resolution);
  m->scaling_ = SignalScaling::Fit(x);
  for (size_t i = 0; i < m->roles_.size(); ++i) {
    if (m->roles_[i] == SignalRole::kTarget) m->targets_.push_back({static_cast<uint32_t>(i)});
  }
  if (m->targets_.empty()) {
    return core::InvalidArgument("no signal varies beyond 0/1 in training: nothing to predict");
  }
  m->BuildColumns();
  const Eigen::MatrixXd design = LaggedDesign(m->scaling_.Apply(x), m->live_);
  const size_t nt = m->targets_.size();
  // Position of each target's lag-0 column in the design.
  std::vector<uint32_t> response(nt);
  for (size_t t = 0; t < nt; ++t) {
    const auto it = std::find(m->live_.begin(), m->live_.end(), m->targets_[t].signal);
    response[t] = static_cast<uint32_t>(it - m->live_.begin());
  }

  // Cross-fitted residuals over contiguous blocks of time.
  const int k = options.folds;
  Eigen::MatrixXd oof(n, static_cast<Eigen::Index>(nt));
  std::vector<uint8_t> include(static_cast<size_t>(n));
  for (int f = 0; f < k; ++f) {
    auto block = [&](Eigen::Index r) { return static_cast<int>(r * k / n); };
    for (Eigen::Index r = 0; r < n; ++r) include[static_cast<size_t>(r)] = block(r) != f ? 1 : 0;
    const GramSystem g = GramSystem::Of(design, include);
    for (size_t t = 0; t < nt; ++t) {
      const RidgeFit fit = SolveRidge(g, m->columns_[t], response[t], options.ridge);
      for (Eigen::Index r = 0; r < n; ++r) {
        if (include[static_cast<size_t>(r)] != 0) continue;
        oof(r, static_cast<Eigen::Index>(t)) =
            design(r, response[t]) - fit.Predict(design.row(r), m->columns_[t]);
      }
    }
  }
  for (size_t t = 0; t < nt; ++t) {
    const double rms = std::sqrt(oof.col(static_cast<Eigen::Index>(t)).squaredNorm() /
                                 static_cast<double>(n));
    m->targets_[t].scale = std::max(rms, kMinScale);
  }
  // The raw score series the cross-fitted residuals give; constants contribute 0 in training.
  std::vector<double> raw(static_cast<size_t>(n));
  Ewma smooth(options.smoothing);
  for (Eigen::Index r = 0; r < n; ++r) {
    double sum = 0.0;
    for (size_t t = 0; t < nt; ++t) {
      sum += Contribution(oof(r, static_cast<Eigen::Index>(t)) / m->targets_[t].scale);
    }
    raw[static_cast<size_t>(r)] = smooth.Update(sum / static_cast<double>(nt));
  }
  double thr = ThresholdForFpr(raw, options.target_fpr);
  if (!(thr > 0.0) || !std::isfinite(thr)) thr = kMinScale;
  const auto above = std::count_if(raw.begin(), raw.end(), [&](double v) { return v >= thr; });
  m->calibration_ = {thr, static_cast<double>(above) / static_cast<double>(n),
                     static_cast<uint64_t>(n)};

  const GramSystem all = GramSystem::Of(design);
  for (size_t t = 0; t < nt; ++t) {
    m->targets_[t].fit = SolveRidge(all, m->columns_[t], response[t], options.ridge);
  }
  return m;
}

std::unique_ptr<StreamScorer> IcsResidualModel::NewStream(std::string_view subject) const {
  return std::make_unique<IcsEventStream>(*this, subject);
}

std::unique_ptr<SignalStreamScorer> IcsResidualModel::NewSignalStream() const {
  return std::make_unique<IcsSignalStream>(*this);
}

std::vector<double> IcsResidualModel::ScoreSeries(const Eigen::MatrixXd& rows) const {
  IcsSeriesState state(*this);
  std::vector<double> out(static_cast<size_t>(rows.rows()));
  std::vector<double> row(static_cast<size_t>(rows.cols()));
  for (Eigen::Index r = 0; r < rows.rows(); ++r) {
    for (Eigen::Index c = 0; c < rows.cols(); ++c) row[static_cast<size_t>(c)] = rows(r, c);
    state.Observe(row);
    out[static_cast<size_t>(r)] = state.raw();
  }
  return out;
}

ModelFile IcsResidualModel::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = std::string(kIcsResidualFamily);
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  size_t n_roles[3] = {0, 0, 0};
  for (SignalRole r : roles_) ++n_roles[static_cast<size_t>(r)];
  f.header["params"] = {{"ridge", options_.ridge},
                        {"resolution", options_.resolution},
                        {"smoothing", options_.smoothing},
                        {"target_fpr", options_.target_fpr},
                        {"folds", options_.folds},
                        {"explain_top", options_.explain_top},
                        {"signals", signals_.size()},
                        {"targets", n_roles[2]},
                        {"binary_predictors", n_roles[1]},
                        {"constants", n_roles[0]}};
  f.header["calibration"] = {{"method", "cross-fitted"},
                             {"threshold", calibration_.threshold},
                             {"achieved_fpr", calibration_.achieved_fpr},
                             {"rows", calibration_.rows}};
  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(signals_.size()));
  for (const std::string& s : signals_) w.Str16(s);
  w.F64(options_.resolution);
  w.F64(options_.ridge);
  w.F64(options_.smoothing);
  w.F64(options_.target_fpr);
  w.U32(static_cast<uint32_t>(options_.folds));
  w.U32(static_cast<uint32_t>(options_.explain_top));
  for (size_t i = 0; i < signals_.size(); ++i) {
    w.U8(static_cast<uint8_t>(roles_[i]));
    w.F64(scaling_.mean(static_cast<Eigen::Index>(i)));
    w.F64(scaling_.scale(static_cast<Eigen::Index>(i)));
  }
  w.U32(static_cast<uint32_t>(targets_.size()));
  for (const Target& t : targets_) {
    w.U32(t.signal);
    w.F64(t.scale);
    w.F64(t.fit.intercept);
    w.U32(static_cast<uint32_t>(t.fit.weights.size()));
    for (Eigen::Index i = 0; i < t.fit.weights.size(); ++i) w.F64(t.fit.weights(i));
  }
  w.F64(calibration_.threshold);
  w.F64(calibration_.achieved_fpr);
  w.U64(calibration_.rows);
  f.payload = std::move(w.str());
  return f;
}

core::Result<std::unique_ptr<IcsResidualModel>> IcsResidualModel::FromFile(
    const ModelFile& file, std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kIcsResidualFamily, source));
  std::unique_ptr<IcsResidualModel> m(new IcsResidualModel());
  IcsResidualOptions& o = m->options_;
  o.name = HeaderString(file, "name");
  o.version = HeaderString(file, "version");
  internal::ByteReader r(file.payload);
  uint32_t n = 0;
  if (!r.U32(&n)) return bad("truncated in the signal count");
  if (n < 1 || n > kMaxSignals) return bad("signal count " + std::to_string(n) + " out of range");
  // Each signal takes at least 2 (name length) + 17 (role, mean, scale) bytes.
  if (r.remaining() / 19 < n) return bad("signals run past the end");
  m->signals_.resize(n);
  for (std::string& s : m->signals_) {
    if (!r.Str16(&s)) return bad("truncated in the signal names");
  }
  if (auto st = CheckNames(m->signals_); !st.ok()) return bad(st.message());
  uint32_t folds = 0, explain = 0;
  if (!r.F64(&o.resolution) || !r.F64(&o.ridge) || !r.F64(&o.smoothing) ||
      !r.F64(&o.target_fpr) || !r.U32(&folds) || !r.U32(&explain)) {
    return bad("truncated in the parameters");
  }
  if (folds > static_cast<uint32_t>(kMaxFolds) || explain > kMaxExplainTop) {
    return bad("folds or explain_top out of range");
  }
  o.folds = static_cast<int>(folds);
  o.explain_top = static_cast<int>(explain);
  if (auto st = CheckOptions(o); !st.ok()) return bad(st.message());
  m->roles_.resize(n);
  m->scaling_.mean.resize(n);
  m->scaling_.scale.resize(n);
  size_t n_targets = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t role = 0;
    double mean = 0, scale = 0;
    if (!r.U8(&role) || !r.F64(&mean) || !r.F64(&scale)) return bad("truncated in the scaling");
    if (role > static_cast<uint8_t>(SignalRole::kTarget)) {
      return bad("signal " + std::to_string(i) + " has unknown role " + std::to_string(role));
    }
    if (!std::isfinite(mean) || !std::isfinite(scale) || !(scale > 0.0)) {
      return bad("signal " + std::to_string(i) + " has a non-finite mean or a scale <= 0");
    }
    m->roles_[i] = static_cast<SignalRole>(role);
    m->scaling_.mean(i) = mean;
    m->scaling_.scale(i) = scale;
    n_targets += m->roles_[i] == SignalRole::kTarget ? 1 : 0;
  }
  uint32_t nt = 0;
  if (!r.U32(&nt)) return bad("truncated in the target count");
  if (nt == 0 || nt != n_targets) {
    return bad("target count " + std::to_string(nt) + " does not match the " +
               std::to_string(n_targets) + " signals whose role is target");
  }
  const size_t live = LiveSignals(m->roles_).size();
  const size_t p = 2 * live - 1;
  m->targets_.resize(nt);
  int64_t prev = -1;
  for (uint32_t t = 0; t < nt; ++t) {
    Target& tg = m->targets_[t];
    uint32_t np = 0;
    if (!r.U32(&tg.signal) || !r.F64(&tg.scale) || !r.F64(&tg.fit.intercept) || !r.U32(&np)) {
      return bad("truncated in target " + std::to_string(t));
    }
    if (tg.signal >= n || m->roles_[tg.signal] != SignalRole::kTarget ||
        static_cast<int64_t>(tg.signal) <= prev) {
      return bad("target " + std::to_string(t) + " names signal " + std::to_string(tg.signal) +
                 ", which is not the next target signal");
    }
    prev = tg.signal;
    if (!std::isfinite(tg.scale) || !(tg.scale > 0.0) || !std::isfinite(tg.fit.intercept)) {
      return bad("target " + std::to_string(t) + " has a non-finite intercept or a scale <= 0");
    }
    if (np != p) {
      return bad("target " + std::to_string(t) + " has " + std::to_string(np) +
                 " weights, expected " + std::to_string(p));
    }
    if (r.remaining() / 8 < np) return bad("weights of target " + std::to_string(t) +
                                           " run past the end");
    tg.fit.weights.resize(np);
    for (uint32_t i = 0; i < np; ++i) {
      double wv = 0;
      (void)r.F64(&wv);
      if (!std::isfinite(wv)) return bad("target " + std::to_string(t) + " has a non-finite weight");
      tg.fit.weights(i) = wv;
    }
  }
  IcsCalibration& c = m->calibration_;
  if (!r.F64(&c.threshold) || !r.F64(&c.achieved_fpr) || !r.U64(&c.rows)) {
    return bad("truncated in the calibration");
  }
  if (!std::isfinite(c.threshold) || !(c.threshold > 0.0)) return bad("threshold is not > 0");
  if (!(c.achieved_fpr >= 0.0 && c.achieved_fpr <= 1.0)) return bad("achieved_fpr not in [0, 1]");
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  m->BuildColumns();
  return m;
}

}  // namespace vigil::model
