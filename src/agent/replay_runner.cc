#include "agent/replay_runner.h"

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/event_json.h"

namespace vigil::agent {
namespace {

// At most this many events of one burst wait for their worker before being handed on.
constexpr size_t kPushBurst = 64;

class PerStreamHandler final : public StreamHandler {
 public:
  PerStreamHandler(const model::Model& model, VerdictSink& out) : model_(model), out_(out) {}

  bool OnEvent(core::Event& e) override {
    if (last_ == nullptr || e.stream != last_name_) {
      auto [it, fresh] = open_.try_emplace(e.stream);
      if (fresh) {
        it->second.scorer = model_.NewStream(e.proc.comm);
        it->second.comm = e.proc.comm;
      }
      last_ = &it->second;
      last_name_ = e.stream;
    }
    if (e.kind == core::EventKind::kStreamEnd) {
      Finish(last_name_, *last_);
      open_.erase(last_name_);
      last_ = nullptr;
      return false;
    }
    last_->pid = e.proc.pid;
    if (last_->host != e.host) last_->host = e.host;
    if (e.time_ns != 0) last_->last_time_ns = e.time_ns;
    if (e.syscall_run.empty()) {
      last_->scorer->Observe(e);
    } else {
      last_->scorer->ObserveSyscalls(e.syscall.arch, e.syscall_run);
    }
    return true;
  }

  void OnInputEnd() override {
    for (auto& [name, s] : open_) Finish(name, s);  // input ended mid-stream: still report
    open_.clear();
    last_ = nullptr;
  }

 private:
  struct OpenStream {
    std::unique_ptr<model::StreamScorer> scorer;
    uint32_t pid = 0;
    std::string comm;
    std::string host;
    int64_t last_time_ns = 0;
  };
  void Finish(const std::string& stream, OpenStream& s) {
    core::Verdict v = s.scorer->Current();
    v.stream = stream;
    v.host = s.host;
    v.pid = s.pid;
    v.subject = s.comm;  // the program; the model's own key may be the global "*"
    v.time_ns = s.last_time_ns;
    out_.Emit(std::move(v));
  }

  const model::Model& model_;
  VerdictSink& out_;
  std::unordered_map<std::string, OpenStream> open_;
  std::string last_name_;
  OpenStream* last_ = nullptr;
};

}  // namespace

HandlerFactory PerStreamScoring(const model::Model& model) {
  return [&model](VerdictSink& out) { return std::make_unique<PerStreamHandler>(model, out); };
}

ReplayRunner::ReplayRunner(HandlerFactory handlers, std::vector<pipeline::Sink*> sinks,
                           ReplayOptions options, const core::Clock& clock)
    : handlers_(std::move(handlers)),
      sinks_(std::move(sinks)),
      options_(std::move(options)),
      clock_(clock) {}

ReplayRunner::ReplayRunner(const model::Model& model, std::vector<pipeline::Sink*> sinks,
                           ReplayOptions options, const core::Clock& clock)
    : ReplayRunner(PerStreamScoring(model), std::move(sinks), std::move(options), clock) {}

void ReplayRunner::Emit(core::Verdict v) {
  if (v.time_ns == 0) v.time_ns = clock_.NowUnixNanos();
  streams_.fetch_add(1, std::memory_order_relaxed);
  if (v.anomalous) anomalous_.fetch_add(1, std::memory_order_relaxed);
  const bool write = options_.emit_all || v.anomalous;
  const std::string line = write ? core::VerdictToOcsfJson(v) : std::string();
  std::lock_guard<std::mutex> lock(sink_mu_);
  if (options_.on_verdict) options_.on_verdict(v);
  if (!write) return;
  WriteLocked(line, options_.flush_each_verdict);
  verdicts_.fetch_add(1, std::memory_order_relaxed);
}

void ReplayRunner::WriteEvent(const core::Event& event) {
  if (event.kind == core::EventKind::kSyscall || event.kind == core::EventKind::kStreamEnd) return;
  const std::optional<std::string> line = core::EventToOcsfJson(event);
  if (!line) return;
  std::lock_guard<std::mutex> lock(sink_mu_);
  WriteLocked(*line, /*flush=*/false);
  events_written_.fetch_add(1, std::memory_order_relaxed);
}

void ReplayRunner::WriteLocked(const std::string& line, bool flush) {
  for (pipeline::Sink* sink : sinks_) {
    core::Status st = sink->Write(line);
    if (st.ok() && flush) st = sink->Flush();
    if (!st.ok() && sink_status_.ok()) sink_status_ = st;
  }
}

core::Result<ReplayStats> ReplayRunner::Run(
    sensor::Sensor& sensor, const std::function<void(const core::Status&)>& on_read_error) {
  if (options_.workers < 1 || options_.workers > 64) {
    return core::InvalidArgument("workers must be in 1..64, got " +
                                 std::to_string(options_.workers));
  }
  if (options_.queue_capacity < 1) return core::InvalidArgument("queue capacity must be >= 1");
  const auto nworkers = static_cast<size_t>(options_.workers);
  std::vector<pipeline::BoundedQueue<core::Event>*> queues;
  std::vector<pipeline::EventValidator*> validators;
  std::vector<pipeline::SourceId> source_ids;
  std::vector<std::unique_ptr<StreamHandler>> handlers;
  {
    std::lock_guard<std::mutex> lock(queues_mu_);
    queues_.clear();
    validators_.clear();
    for (size_t i = 0; i < nworkers; ++i) {
      validators_.push_back(std::make_unique<pipeline::EventValidator>());
      validators.push_back(validators_.back().get());
      queues_.push_back(
          std::make_unique<pipeline::BoundedQueue<core::Event>>(options_.queue_capacity));
      auto id = queues_.back()->RegisterSource(sensor.name(), options_.source);
      if (!id.has_value()) return id.error();
      source_ids.push_back(*id);
      queues.push_back(queues_.back().get());
      handlers.push_back(handlers_(*this));
    }
  }

  auto work = [&](pipeline::BoundedQueue<core::Event>& queue, pipeline::EventValidator& validator,
                  StreamHandler& handler) {
    // Kept across batches and taken over (PopBatchOver): the strings the events of one batch
    // allocated on the reading thread go back to it through the queue's slots instead of being
    // freed here (a free on this thread and a malloc on the reader's was, per typed event, the
    // largest allocator cost of the agent).
    std::vector<core::Event> batch;
    batch.reserve(options_.batch);
    uint32_t latency_tick = 0;
    size_t n = 0;
    while ((n = queue.PopBatchOver(&batch, options_.batch)) > 0) {
      uint64_t scored = 0;
      for (size_t i = 0; i < n; ++i) {
        core::Event& e = batch[i];
        if (validator.ValidateRun(&e) != pipeline::RejectReason::kNone) continue;
        if (options_.emit_events) WriteEvent(e);
        if (options_.on_typed && e.kind != core::EventKind::kSyscall &&
            e.kind != core::EventKind::kStreamEnd) {
          const std::string line = options_.on_typed(e);
          if (!line.empty()) {
            std::lock_guard<std::mutex> lock(sink_mu_);
            WriteLocked(line, /*flush=*/true);
            typed_lines_.fetch_add(1, std::memory_order_relaxed);
          }
        }
        if (!handler.OnEvent(e)) continue;
        scored += core::EventCount(e);
        if (options_.latency != nullptr && ++latency_tick >= options_.latency_sample_every) {
          latency_tick = 0;
          options_.latency->ObserveNanos(clock_.MonotonicNanos() - e.ingest_ns);
        }
      }
      scored_.fetch_add(scored, std::memory_order_relaxed);
    }
    handler.OnInputEnd();
  };

  start_mono_ = clock_.MonotonicNanos();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nworkers; ++i) {
    threads.emplace_back(work, std::ref(*queues[i]), std::ref(*validators[i]),
                         std::ref(*handlers[i]));
  }

  std::hash<std::string> hash_stream;
  std::string last_stream;
  size_t last_shard = 0;
  // Events read in one burst (while the sensor says more are already there) go to their
  // worker's queue together: one lock and one wake-up per burst and worker, not per event.
  std::vector<std::vector<core::Event>> pending(nworkers);
  for (auto& p : pending) p.reserve(kPushBurst);
  auto hand_on = [&](size_t shard) {
    if (!pending[shard].empty()) queues[shard]->PushBatch(source_ids[shard], &pending[shard]);
  };
  auto hand_on_all = [&] {
    for (size_t i = 0; i < nworkers; ++i) hand_on(i);
  };
  // One clock read per burst (and per kPushBurst events within one): the events of a burst
  // were read together.
  int64_t ingest_ns = 0;
  size_t stamped = kPushBurst;
  // A sensor that assigns whole events reads into the moved-from `e` as it is; others get a
  // fresh one each time (building, moving and destroying one was ~10 % of the reading thread).
  const bool reset = !sensor.AssignsWholeEvent();
  core::Event e;
  while (true) {
    if (!sensor.Buffered()) {
      hand_on_all();  // Next may wait: nothing is held back meanwhile
      stamped = kPushBurst;
    }
    auto r = sensor.Next(&e);
    if (!r.has_value()) {
      read_errors_.fetch_add(1, std::memory_order_relaxed);
      if (on_read_error) on_read_error(r.error());
      continue;
    }
    if (*r == sensor::ReadOutcome::kEnd) break;
    read_.fetch_add(core::EventCount(e), std::memory_order_relaxed);
    if (options_.on_read) options_.on_read(e);
    if (stamped >= kPushBurst) {
      ingest_ns = clock_.MonotonicNanos();
      stamped = 0;
    }
    ++stamped;
    e.ingest_ns = ingest_ns;
    if (e.host.empty()) e.host = options_.host;
    size_t shard = 0;
    if (nworkers > 1) {
      if (e.stream.empty()) {
        shard = e.proc.pid % nworkers;
      } else {
        if (e.stream != last_stream) {
          last_stream = e.stream;
          last_shard = hash_stream(e.stream) % nworkers;
        }
        shard = last_shard;
      }
    }
    pending[shard].push_back(std::move(e));
    if (pending[shard].size() >= kPushBurst) hand_on(shard);
    if (reset) e = core::Event();
  }
  hand_on_all();
  for (auto& q : queues) q->Close();
  for (auto& t : threads) t.join();
  for (pipeline::Sink* sink : sinks_) {
    core::Status st = sink->Flush();
    if (!st.ok() && sink_status_.ok()) sink_status_ = st;
  }
  end_mono_ = clock_.MonotonicNanos();
  if (!sink_status_.ok()) return sink_status_;
  return Live();
}

ReplayStats ReplayRunner::Live() const {
  ReplayStats stats;
  stats.read = read_.load(std::memory_order_relaxed);
  stats.read_errors = read_errors_.load(std::memory_order_relaxed);
  stats.scored = scored_.load(std::memory_order_relaxed);
  stats.streams = streams_.load(std::memory_order_relaxed);
  stats.verdicts = verdicts_.load(std::memory_order_relaxed);
  stats.anomalous = anomalous_.load(std::memory_order_relaxed);
  stats.events_written = events_written_.load(std::memory_order_relaxed);
  stats.typed_lines = typed_lines_.load(std::memory_order_relaxed);
  const int64_t end = end_mono_.load();
  stats.seconds =
      static_cast<double>((end != 0 ? end : clock_.MonotonicNanos()) - start_mono_) / 1e9;
  std::lock_guard<std::mutex> lock(queues_mu_);
  for (const auto& v : validators_) {
    const pipeline::ValidatorStats s = v->Stats();
    stats.validation.accepted += s.accepted;
    stats.validation.rejected += s.rejected;
    for (size_t i = 0; i < s.by_reason.size(); ++i) stats.validation.by_reason[i] += s.by_reason[i];
  }
  for (const auto& q : queues_) {
    const pipeline::QueueStats s = q->Stats();
    stats.queue.capacity += s.capacity;
    stats.queue.depth += s.depth;
    stats.queue.pushed += s.pushed;
    stats.queue.accepted += s.accepted;
    stats.queue.dropped_full += s.dropped_full;
    stats.queue.evicted += s.evicted;
    stats.queue.sampled_out += s.sampled_out;
    stats.queue.rejected_closed += s.rejected_closed;
    stats.queue.popped += s.popped;
  }
  return stats;
}

}  // namespace vigil::agent
