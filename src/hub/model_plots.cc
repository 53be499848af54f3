#include "hub/model_plots.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "model/drift.h"

namespace vigil::hub {

nlohmann::json ModelScorePlots(const std::vector<ScoreSample>& samples, int buckets,
                               size_t min_samples) {
  buckets = std::clamp(buckets, 1, 200);
  std::map<std::string, std::vector<const ScoreSample*>> by_model;
  for (const ScoreSample& s : samples) {
    if (std::isfinite(s.score)) by_model[s.model].push_back(&s);
  }
  nlohmann::json models = nlohmann::json::array();
  for (const auto& [name, list] : by_model) {
    std::vector<int64_t> histogram(kScoreHistogramBins, 0);
    int64_t first = list.front()->time_ms, last = first;
    for (const ScoreSample* s : list) {
      const int bin = std::clamp(static_cast<int>(s->score * kScoreHistogramBins), 0,
                                 kScoreHistogramBins - 1);
      ++histogram[bin];
      first = std::min(first, s->time_ms);
      last = std::max(last, s->time_ms);
    }
    const int64_t width = std::max<int64_t>(1, (last - first) / buckets + 1);
    std::vector<std::vector<double>> per(buckets);
    for (const ScoreSample* s : list) {
      per[std::min<int64_t>((s->time_ms - first) / width, buckets - 1)].push_back(s->score);
    }
    nlohmann::json drift = nlohmann::json::array();
    std::optional<model::ReferenceHistogram> reference;
    nlohmann::json reference_start = nullptr;
    for (int b = 0; b < buckets; ++b) {
      nlohmann::json psi = nullptr;
      if (per[b].size() >= min_samples) {
        if (!reference) {
          auto r = model::ReferenceHistogram::FromSamples(per[b], 10);
          if (r.has_value()) {
            reference = std::move(r).value();
            reference_start = first + b * width;
          }
        }
        if (reference) psi = model::PopulationStabilityIndex(*reference, per[b]);
      }
      drift.push_back({{"start_ms", first + b * width}, {"count", per[b].size()}, {"psi", psi}});
    }
    models.push_back({{"model", name},
                      {"count", list.size()},
                      {"first_ms", first},
                      {"last_ms", last},
                      {"histogram", histogram},
                      {"bucket_ms", width},
                      {"reference_start_ms", reference_start},
                      {"drift", std::move(drift)}});
  }
  return {{"models", std::move(models)}};
}

}  // namespace vigil::hub
