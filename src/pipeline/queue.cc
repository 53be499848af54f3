#include "pipeline/queue.h"

#include <string>

#include "pipeline/internal/queue_accounting.h"

namespace vigil::pipeline {

std::string_view BackpressurePolicyName(BackpressurePolicy p) {
  switch (p) {
    case BackpressurePolicy::kBlock:
      return "block";
    case BackpressurePolicy::kDropNewest:
      return "drop_newest";
    case BackpressurePolicy::kDropOldest:
      return "drop_oldest";
    case BackpressurePolicy::kSample:
      return "sample";
  }
  return "unknown";
}

std::string_view PushOutcomeName(PushOutcome o) {
  switch (o) {
    case PushOutcome::kAccepted:
      return "accepted";
    case PushOutcome::kDroppedFull:
      return "dropped_full";
    case PushOutcome::kDroppedOldestEvicted:
      return "dropped_oldest_evicted";
    case PushOutcome::kSampledOut:
      return "sampled_out";
    case PushOutcome::kClosed:
      return "closed";
    case PushOutcome::kUnknownSource:
      return "unknown_source";
  }
  return "unknown";
}

std::string_view PopOutcomeName(PopOutcome o) {
  switch (o) {
    case PopOutcome::kItem:
      return "item";
    case PopOutcome::kEmpty:
      return "empty";
    case PopOutcome::kTimeout:
      return "timeout";
    case PopOutcome::kClosed:
      return "closed";
  }
  return "unknown";
}

namespace internal {

QueueAccounting::QueueAccounting(size_t capacity)
    : capacity_(capacity), sources_(std::make_unique<SourceState[]>(kMaxQueueSources)) {}

core::Result<SourceId> QueueAccounting::Register(std::string_view name,
                                                 const SourceOptions& options) {
  if (name.empty()) return core::InvalidArgument("queue source: empty name");
  const std::string where = "queue source '" + std::string(name) + "'";
  if (options.sample_one_in == 0) {
    return core::InvalidArgument(where + ": sample_one_in must be >= 1");
  }
  if (!(options.sample_high_water >= 0.0 && options.sample_high_water <= 1.0)) {
    return core::InvalidArgument(where + ": sample_high_water must be in [0, 1], got " +
                                 std::to_string(options.sample_high_water));
  }
  std::lock_guard<std::mutex> lock(register_mu_);
  const size_t n = published_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (sources_[i].name == name) return core::InvalidArgument(where + ": already registered");
  }
  if (n == kMaxQueueSources) {
    return core::Status(
        core::StatusCode::kResourceExhausted,
        where + ": queue already has " + std::to_string(kMaxQueueSources) + " sources");
  }
  SourceState& s = sources_[n];
  s.name = std::string(name);
  s.options = options;
  s.sample_threshold =
      static_cast<size_t>(static_cast<double>(capacity_) * options.sample_high_water);
  published_.store(n + 1, std::memory_order_release);
  return static_cast<SourceId>(n);
}

QueueStats QueueAccounting::Snapshot(size_t depth, bool closed) const {
  QueueStats q;
  q.capacity = capacity_;
  q.depth = depth;
  q.closed = closed;
  q.unknown_source = unknown_source_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(register_mu_);
  const size_t n = published_.load(std::memory_order_acquire);
  q.sources.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const SourceState& s = sources_[i];
    SourceStats o;
    o.name = s.name;
    o.policy = s.options.policy;
    o.accepted = s.accepted.Get();
    o.dropped_full = s.dropped_full.Get();
    o.evicted = s.evicted.Get();
    o.sampled_out = s.sampled_out.Get();
    o.rejected_closed = s.rejected_closed.Get();
    o.popped = s.popped.Get();
    o.queued = s.queued.Get();
    o.pushed = o.accepted + o.dropped_full + o.sampled_out + o.rejected_closed;
    q.pushed += o.pushed;
    q.accepted += o.accepted;
    q.dropped_full += o.dropped_full;
    q.evicted += o.evicted;
    q.sampled_out += o.sampled_out;
    q.rejected_closed += o.rejected_closed;
    q.popped += o.popped;
    q.sources.push_back(std::move(o));
  }
  return q;
}

}  // namespace internal
}  // namespace vigil::pipeline
