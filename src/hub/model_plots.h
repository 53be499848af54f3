#pragma once

// The models page's plots (GET /v1/models/scores, docs/hub.md "Web UI"), from the scores of the
// findings the hub stored: per model, the score distribution (20 equal bins over [0, 1]) and its
// drift over time — the span of the samples cut into `buckets` equal time buckets, the first
// bucket with at least `min_samples` scores as the reference (model::ReferenceHistogram, 10
// quantile bins), and the PSI of each later bucket with at least `min_samples` scores against it
// (model/drift.h; null for buckets with fewer).
//
// These are the scores agents send to the hub, which are only the anomalous verdicts and the
// decisions unless an agent sends all verdicts (--hub-all-verdicts): a drift of what was flagged,
// not of everything scored. Agents' own drift gauges (against the training reference) are not
// sent to the hub.

#include <nlohmann/json.hpp>
#include <vector>

#include "hub/store.h"

namespace vigil::hub {

inline constexpr int kScoreHistogramBins = 20;

// {"models":[{"model","count","first_ms","last_ms","histogram":[20 counts],
//             "bucket_ms","drift":[{"start_ms","count","psi"|null}...],"reference_start_ms"}]}
// `samples` oldest first (Store::ScoreSamples).
nlohmann::json ModelScorePlots(const std::vector<ScoreSample>& samples, int buckets = 12,
                               size_t min_samples = 20);

}  // namespace vigil::hub
