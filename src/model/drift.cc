#include "model/drift.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace vigil::model {

size_t ReferenceHistogram::BinOf(double v) const {
  if (std::isnan(v)) return 0;
  // First edge >= v: v belongs to the bin that edge closes.
  return static_cast<size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
}

core::Result<ReferenceHistogram> ReferenceHistogram::FromSamples(std::span<const double> samples,
                                                                 size_t bins) {
  if (bins < 2 || bins > 100) return core::InvalidArgument("reference histogram: bins must be 2..100");
  if (samples.size() < 2) return core::InvalidArgument("reference histogram: need 2 samples");
  std::vector<double> v(samples.begin(), samples.end());
  for (double x : v) {
    if (!std::isfinite(x)) return core::InvalidArgument("reference histogram: a sample is not finite");
  }
  std::sort(v.begin(), v.end());
  ReferenceHistogram h;
  h.samples = v.size();
  for (size_t i = 1; i < bins; ++i) {
    // The i/bins quantile: the largest value with at most i/bins of the sample at or below it.
    const size_t idx = (i * v.size() + bins - 1) / bins - 1;
    const double e = v[std::min(idx, v.size() - 1)];
    if (h.edges.empty() || e > h.edges.back()) h.edges.push_back(e);
  }
  std::vector<uint64_t> counts(h.edges.size() + 1, 0);
  for (double x : v) ++counts[h.BinOf(x)];
  for (uint64_t c : counts) {
    h.proportions.push_back(static_cast<double>(c) / static_cast<double>(v.size()));
  }
  return h;
}

nlohmann::json ReferenceHistogram::ToJson() const {
  return {{"edges", edges}, {"proportions", proportions}, {"samples", samples}};
}

core::Result<ReferenceHistogram> ReferenceHistogram::FromJson(const nlohmann::json& j,
                                                              std::string_view source,
                                                              std::string_view where) {
  auto bad = [&](const std::string& why) {
    return core::DataLoss(std::string(source) + ": " + std::string(where) + ": " + why);
  };
  if (!j.is_object()) return bad("not an object");
  auto edges = j.find("edges");
  auto props = j.find("proportions");
  auto samples = j.find("samples");
  if (edges == j.end() || !edges->is_array()) return bad("\"edges\" is missing or not an array");
  if (props == j.end() || !props->is_array()) {
    return bad("\"proportions\" is missing or not an array");
  }
  if (samples == j.end() || !samples->is_number_unsigned()) {
    return bad("\"samples\" is missing or not a non-negative integer");
  }
  if (props->size() < 2 || props->size() > 100) return bad("needs 2..100 bins");
  if (edges->size() + 1 != props->size()) return bad("edges do not match the bins");
  ReferenceHistogram h;
  h.samples = samples->get<uint64_t>();
  for (const auto& e : *edges) {
    if (!e.is_number() || !std::isfinite(e.get<double>())) return bad("an edge is not a finite number");
    const double x = e.get<double>();
    if (!h.edges.empty() && !(x > h.edges.back())) return bad("edges are not strictly increasing");
    h.edges.push_back(x);
  }
  double sum = 0;
  for (const auto& p : *props) {
    if (!p.is_number()) return bad("a proportion is not a number");
    const double x = p.get<double>();
    if (!(x >= 0.0 && x <= 1.0)) return bad("a proportion is outside [0, 1]");
    h.proportions.push_back(x);
    sum += x;
  }
  if (std::fabs(sum - 1.0) > 1e-6) return bad("proportions do not sum to 1");
  return h;
}

double PopulationStabilityIndex(std::span<const double> expected, std::span<const double> actual) {
  if (expected.size() != actual.size()) return std::numeric_limits<double>::quiet_NaN();
  double psi = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = std::max(expected[i], kPsiFloor);
    const double a = std::max(actual[i], kPsiFloor);
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

double PopulationStabilityIndex(const ReferenceHistogram& reference,
                                std::span<const double> samples) {
  std::vector<double> actual(reference.bins(), 0.0);
  for (double s : samples) actual[reference.BinOf(s)] += 1.0;
  for (double& a : actual) a /= samples.empty() ? 1.0 : static_cast<double>(samples.size());
  return PopulationStabilityIndex(reference.proportions, actual);
}

nlohmann::json DriftReference::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  if (score.has_value()) j["score"] = score->ToJson();
  if (!features.empty()) {
    nlohmann::json f = nlohmann::json::object();
    for (const FeatureReference& fr : features) {
      nlohmann::json h = fr.histogram.ToJson();
      h["index"] = fr.index;
      f[fr.name] = std::move(h);
    }
    j["features"] = std::move(f);
  }
  return j;
}

core::Result<DriftReference> DriftReference::FromHeader(const nlohmann::json& header,
                                                        std::string_view source) {
  DriftReference r;
  if (!header.is_object()) return r;
  auto it = header.find("drift_reference");
  if (it == header.end()) return r;
  if (!it->is_object()) {
    return core::DataLoss(std::string(source) + ": header \"drift_reference\": not an object");
  }
  if (auto s = it->find("score"); s != it->end()) {
    VIGIL_ASSIGN_OR_RETURN(r.score, ReferenceHistogram::FromJson(
                                        *s, source, "header \"drift_reference\" \"score\""));
  }
  if (auto f = it->find("features"); f != it->end()) {
    if (!f->is_object()) {
      return core::DataLoss(std::string(source) +
                            ": header \"drift_reference\" \"features\": not an object");
    }
    for (const auto& [name, h] : f->items()) {
      const std::string where = "header \"drift_reference\" feature \"" + name + "\"";
      FeatureReference fr;
      fr.name = name;
      VIGIL_ASSIGN_OR_RETURN(fr.histogram, ReferenceHistogram::FromJson(h, source, where));
      auto index = h.find("index");
      if (index == h.end() || !index->is_number_unsigned() ||
          index->get<uint64_t>() > UINT32_MAX) {
        return core::DataLoss(std::string(source) + ": " + where +
                              ": \"index\" is missing or not a feature index");
      }
      fr.index = index->get<uint32_t>();
      r.features.push_back(std::move(fr));
    }
  }
  return r;
}

std::vector<double> DriftMonitor::Counts::Proportions(uint64_t* total) const {
  std::vector<double> p(n, 0.0);
  uint64_t t = 0;
  for (size_t i = 0; i < n; ++i) {
    p[i] = static_cast<double>(bins[i].load(std::memory_order_relaxed));
    t += static_cast<uint64_t>(p[i]);
  }
  for (double& x : p) x /= t == 0 ? 1.0 : static_cast<double>(t);
  *total = t;
  return p;
}

DriftMonitor::DriftMonitor(DriftReference reference, const DriftMonitorOptions& options)
    : reference_(std::move(reference)), options_(options) {
  auto make = [](size_t n) {
    Counts c;
    c.n = n;
    c.bins = std::make_unique<std::atomic<uint64_t>[]>(n);
    for (size_t i = 0; i < n; ++i) c.bins[i].store(0);
    return c;
  };
  if (reference_.score.has_value()) score_ = make(reference_.score->bins());
  for (const FeatureReference& f : reference_.features) {
    features_.push_back(make(f.histogram.bins()));
  }
}

core::Result<std::unique_ptr<DriftMonitor>> DriftMonitor::Create(
    DriftReference reference, const DriftMonitorOptions& options) {
  if (reference.empty()) return core::InvalidArgument("drift monitor: the reference is empty");
  if (!(options.threshold > 0.0) || !std::isfinite(options.threshold)) {
    return core::InvalidArgument("drift monitor: threshold must be a positive number");
  }
  std::unique_ptr<DriftMonitor> m(new DriftMonitor(std::move(reference), options));
  core::Registry& r = options.registry != nullptr ? *options.registry : core::Registry::Get();
  constexpr std::string_view kHelp =
      "Population stability index of scores or features against the training reference";
  if (m->reference_.score.has_value()) {
    VIGIL_ASSIGN_OR_RETURN(m->score_gauge_,
                           r.GetGauge("vigil_model_drift_psi", kHelp,
                                      {{"model", options.model}, {"of", "score"}}));
  }
  for (const FeatureReference& f : m->reference_.features) {
    VIGIL_ASSIGN_OR_RETURN(core::Gauge * g,
                           r.GetGauge("vigil_model_drift_psi", kHelp,
                                      {{"model", options.model}, {"of", "feature:" + f.name}}));
    m->feature_gauges_.push_back(g);
  }
  VIGIL_ASSIGN_OR_RETURN(m->alerts_,
                         r.GetCounter("vigil_model_drift_alerts_total",
                                      "Times a drift indicator crossed its alert threshold",
                                      {{"model", options.model}}));
  return m;
}

void DriftMonitor::ObserveScore(double score) {
  if (!reference_.score.has_value()) return;
  score_.bins[reference_.score->BinOf(score)].fetch_add(1, std::memory_order_relaxed);
}

void DriftMonitor::ObserveFeatures(std::span<const float> row) {
  for (size_t i = 0; i < features_.size(); ++i) {
    const FeatureReference& f = reference_.features[i];
    if (f.index >= row.size()) continue;
    features_[i].bins[f.histogram.BinOf(row[f.index])].fetch_add(1, std::memory_order_relaxed);
  }
}

DriftReport DriftMonitor::Evaluate() {
  DriftReport report;
  report.score_psi = std::numeric_limits<double>::quiet_NaN();
  double worst = 0.0;
  std::string worst_what;
  std::vector<core::Evidence> drifted;
  auto judge = [&](const std::string& what, double psi, uint64_t n) {
    if (n < options_.min_samples) return;
    if (psi > options_.threshold) drifted.push_back({what, psi});
    if (psi > worst) worst = psi;
  };
  if (reference_.score.has_value()) {
    uint64_t n = 0;
    const std::vector<double> actual = score_.Proportions(&n);
    report.samples = n;
    report.score_psi = PopulationStabilityIndex(reference_.score->proportions, actual);
    score_gauge_->Set(report.score_psi);
    judge("score", report.score_psi, n);
  }
  for (size_t i = 0; i < features_.size(); ++i) {
    uint64_t n = 0;
    const std::vector<double> actual = features_[i].Proportions(&n);
    const FeatureReference& f = reference_.features[i];
    const double psi = PopulationStabilityIndex(f.histogram.proportions, actual);
    report.feature_psi.emplace_back(f.name, psi);
    feature_gauges_[i]->Set(psi);
    judge("feature " + f.name, psi, n);
  }
  if (drifted.empty()) {
    alerting_ = false;
    return report;
  }
  if (alerting_) return report;
  alerting_ = true;
  alerts_->Inc();
  std::sort(drifted.begin(), drifted.end(),
            [](const core::Evidence& a, const core::Evidence& b) { return a.weight > b.weight; });
  core::Verdict v;
  v.model_name = options_.model;
  v.subject = "drift";
  v.anomalous = true;
  v.score = std::min(1.0, worst);
  v.events = report.samples;
  char buf[64];
  for (const core::Evidence& e : drifted) {
    std::snprintf(buf, sizeof(buf), "%.3f > %.3f", e.weight, options_.threshold);
    v.explanation.push_back({"drift: " + e.what + " PSI " + buf, e.weight});
  }
  spdlog::warn("model {}: {}", options_.model, v.explanation.front().what);
  report.alert = std::move(v);
  return report;
}

void DriftMonitor::Reset() {
  for (size_t i = 0; i < score_.n; ++i) score_.bins[i].store(0, std::memory_order_relaxed);
  for (Counts& c : features_) {
    for (size_t i = 0; i < c.n; ++i) c.bins[i].store(0, std::memory_order_relaxed);
  }
}

}  // namespace vigil::model
