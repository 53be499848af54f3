#pragma once

// Exposes a ReplayRunner's counters in a metrics registry (read at scrape time, so the hot path
// only touches its own atomics).

#include <vector>

#include "agent/replay_runner.h"
#include "core/metrics.h"
#include "core/status.h"

namespace vigil::agent {

// Registers vigil_events_*_total, vigil_events_rejected_total{reason}, vigil_queue_dropped_total
// {cause}, vigil_queue_depth, vigil_streams_total, vigil_verdicts_total and
// vigil_anomalous_total. The series live as long as the handles appended to *handles; `runner`
// must outlive them. Fails (kAlreadyExists) if another runner's series are registered.
core::Status RegisterReplayMetrics(core::Registry& registry, const ReplayRunner& runner,
                                   std::vector<core::Registry::CallbackHandle>* handles);

}  // namespace vigil::agent
