#include "agent/metrics.h"

#include <functional>
#include <string>

namespace vigil::agent {

core::Status RegisterReplayMetrics(core::Registry& registry, const ReplayRunner& runner,
                                   std::vector<core::Registry::CallbackHandle>* handles) {
  using Read = std::function<double(const ReplayStats&)>;
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     Read read) -> core::Status {
    auto h = registry.AddCallbackCounter(name, help, labels,
                                         [&runner, read] { return read(runner.Live()); });
    if (!h.has_value()) return h.error();
    handles->push_back(std::move(h).value());
    return core::Status::Ok();
  };
  VIGIL_RETURN_IF_ERROR(counter("vigil_events_read_total", "Events the sensor returned", {},
                                [](const ReplayStats& s) { return s.read; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_events_bad_input_total",
                                "Pieces of input the sensor reported as bad and skipped", {},
                                [](const ReplayStats& s) { return s.read_errors; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_events_scored_total", "Events that reached a model", {},
                                [](const ReplayStats& s) { return s.scored; }));
  for (size_t r = 1; r < pipeline::kRejectReasonCount; ++r) {
    const auto reason = static_cast<pipeline::RejectReason>(r);
    VIGIL_RETURN_IF_ERROR(counter(
        "vigil_events_rejected_total", "Events refused by schema validation, by reason",
        {{"reason", std::string(pipeline::RejectReasonName(reason))}},
        [r](const ReplayStats& s) { return s.validation.by_reason[r]; }));
  }
  VIGIL_RETURN_IF_ERROR(counter("vigil_queue_dropped_total", "Events dropped by the queue",
                                {{"cause", "full"}},
                                [](const ReplayStats& s) { return s.queue.dropped_full; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_queue_dropped_total", "Events dropped by the queue",
                                {{"cause", "evicted_oldest"}},
                                [](const ReplayStats& s) { return s.queue.evicted; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_queue_dropped_total", "Events dropped by the queue",
                                {{"cause", "sampled_out"}},
                                [](const ReplayStats& s) { return s.queue.sampled_out; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_streams_total", "Streams that got a verdict", {},
                                [](const ReplayStats& s) { return s.streams; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_verdicts_total", "Verdicts written to the sinks", {},
                                [](const ReplayStats& s) { return s.verdicts; }));
  VIGIL_RETURN_IF_ERROR(counter("vigil_anomalous_total", "Streams judged anomalous", {},
                                [](const ReplayStats& s) { return s.anomalous; }));
  auto depth = registry.AddCallbackGauge("vigil_queue_depth", "Events waiting in the queues", {},
                                         [&runner] { return runner.Live().queue.depth; });
  if (!depth.has_value()) return depth.error();
  handles->push_back(std::move(depth).value());
  return core::Status::Ok();
}

}  // namespace vigil::agent
