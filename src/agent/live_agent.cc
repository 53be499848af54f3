#include "agent/live_agent.h"

#include <malloc.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "agent/clock_wait.h"
#include "agent/window_store.h"
#include "core/syscall_table.h"
#include "model/model_file.h"

namespace vigil::agent {

bool ReleaseFreeHeap() {
#ifdef __GLIBC__
  return malloc_trim(0) != 0;
#else
  return false;
#endif
}

void KeepLargeBlocksOutOfTheHeap() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

std::string_view LivePhaseName(LivePhase p) {
  switch (p) {
    case LivePhase::kLearning: return "learning";
    case LivePhase::kTraining: return "training";
    case LivePhase::kDetecting: return "detecting";
    case LivePhase::kStopped: return "stopped";
  }
  return "unknown";
}

class LiveAgent::State {
 public:
  explicit State(const LiveOptions& o) : options(o) {}

  // Learning: one window of one program's calls (copied). Bounded per program.
  void AddWindow(const std::string& program, core::Arch arch, std::span<const int32_t> calls) {
    std::lock_guard<std::mutex> lock(mu);
    if (!windows.Add(program, arch, calls)) {
      dropped_windows.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    learned_windows.fetch_add(1, std::memory_order_relaxed);
  }

  std::vector<model::TrainingTrace> TakeWindows() {
    std::lock_guard<std::mutex> lock(mu);
    return windows.Take();
  }

  void Publish(std::shared_ptr<const model::SequenceModel> m) {
    std::lock_guard<std::mutex> lock(mu);
    model = std::move(m);
    programs_learned = model->subjects().size() - 1;  // minus the global model
    generation.fetch_add(1);
    phase = LivePhase::kDetecting;
  }

  std::shared_ptr<const model::SequenceModel> Current() const {
    std::lock_guard<std::mutex> lock(mu);
    return model;
  }

  const LiveOptions& options;
  std::atomic<LivePhase> phase{LivePhase::kLearning};
  std::atomic<uint64_t> generation{0};
  std::atomic<uint64_t> learned_windows{0}, dropped_windows{0}, windows_scored{0}, alerts{0},
      evicted{0}, gap_cuts{0};
  std::atomic<uint64_t> programs_learned{0};

  mutable std::mutex mu;
  std::shared_ptr<const model::SequenceModel> model;                // guarded by mu
  WindowStore windows{options.max_windows_per_program};              // guarded by mu
  std::vector<std::string> notes;                                    // guarded by mu
};

namespace {

constexpr size_t kRecent = 4;  // recent typed events named in an alert

class LiveHandler final : public StreamHandler {
 public:
  LiveHandler(LiveAgent::State& state, VerdictSink& out) : state_(state), out_(out) {}

  bool OnEvent(core::Event& e) override {
    Proc& p = Get(e);
    p.last_seen = ++tick_;
    if (e.time_ns != 0) p.last_time_ns = e.time_ns;
    switch (e.kind) {
      case core::EventKind::kProcessExit:
        Flush(e.proc.pid, p, /*exiting=*/true);
        procs_.erase(e.proc.pid);
        return false;
      case core::EventKind::kProcessExec: {
        Remember(p, "exec ", e.path.empty() ? e.proc.exe : e.path);
        std::string program = ProgramOf(e);
        if (program != p.program) {
          Flush(e.proc.pid, p, /*exiting=*/true);  // the old program's last partial window
          p.program = std::move(program);
          p.comm = e.proc.comm;
          p.scorer.reset();
        }
        return false;
      }
      case core::EventKind::kFileOpen:
        Remember(p, "open ", e.path);
        return false;
      case core::EventKind::kNetConnect:
        Remember(p, "connect ", e.net.daddr, e.net.dport);
        return false;
      case core::EventKind::kSyscall:
        return OnSyscall(e, p);
      case core::EventKind::kProcessFork: {
        // The child runs the parent's program until it execs.
        auto [it, fresh] = procs_.try_emplace(e.child_pid);
        if (fresh) {
          Proc& parent = procs_.find(e.proc.pid)->second;
          it->second.program = parent.program;
          it->second.comm = parent.comm;
          it->second.uid = parent.uid;
          it->second.host = parent.host;
          it->second.last_seen = tick_;
          if (procs_.size() > state_.options.max_processes) Evict(e.child_pid);
        }
        return false;
      }
      case core::EventKind::kTypedCall: {
        std::string& what = Remember(p, core::SyscallName(e.syscall.arch, e.syscall.nr), {});
        if (!e.path.empty()) what.append(" ").append(e.path);
        if (!e.net.daddr.empty()) {
          what.append(" ").append(e.net.daddr).append(":").append(std::to_string(e.net.dport));
        }
        return false;
      }
      case core::EventKind::kStreamEnd:
        return false;
    }
    return false;
  }

  void OnInputEnd() override {
    for (auto& [pid, p] : procs_) Flush(pid, p, /*exiting=*/true);
    procs_.clear();
  }

 private:
  struct Proc {
    std::string program;
    std::string comm;
    std::string host;
    uint32_t uid = 0;
    core::Arch arch = core::Arch::kUnknown;
    std::vector<int32_t> learn;                    // learning: the window being filled
    std::unique_ptr<model::StreamScorer> scorer;   // detecting: the window being scored
    uint64_t scorer_generation = 0;
    size_t in_window = 0;
    uint64_t window_index = 0;
    // The last kRecent typed events, oldest first from recent_next: a ring whose strings are
    // overwritten in place (their buffers reused), not a string built per event.
    std::array<std::string, kRecent> recent;
    size_t recent_next = 0;
    size_t recent_count = 0;
    uint64_t last_seen = 0;
    int64_t last_time_ns = 0;
    int64_t last_call_ns = 0;  // time_ns of the last kSyscall event (0: none yet)
  };

  static std::string ProgramOf(const core::Event& e) {
    if (!e.proc.exe.empty()) return e.proc.exe;
    if (e.kind == core::EventKind::kProcessExec && !e.path.empty()) return e.path;
    return e.proc.comm;
  }

  Proc& Get(const core::Event& e) {
    auto [it, fresh] = procs_.try_emplace(e.proc.pid);
    Proc& p = it->second;
    if (fresh) {
      p.program = ProgramOf(e);
      p.comm = e.proc.comm;
      p.uid = e.proc.uid;
      p.host = e.host;
      if (procs_.size() > state_.options.max_processes) Evict(e.proc.pid);
    }
    return procs_.find(e.proc.pid)->second;
  }

  // Bounded memory: drop the process seen least recently (not `keep`).
  void Evict(uint32_t keep) {
    auto victim = procs_.end();
    for (auto it = procs_.begin(); it != procs_.end(); ++it) {
      if (it->first == keep) continue;
      if (victim == procs_.end() || it->second.last_seen < victim->second.last_seen) victim = it;
    }
    if (victim == procs_.end()) return;
    procs_.erase(victim);
    state_.evicted.fetch_add(1, std::memory_order_relaxed);
  }

  // Records "<verb><what>[:<port>]" as the newest recent event; returns it for additions.
  static std::string& Remember(Proc& p, std::string_view verb, std::string_view what,
                               std::optional<uint16_t> port = std::nullopt) {
    std::string& r = p.recent[p.recent_next];
    p.recent_next = (p.recent_next + 1) % kRecent;
    p.recent_count = std::min(p.recent_count + 1, kRecent);
    r.assign(verb).append(what);
    if (port) r.append(":").append(std::to_string(*port));
    return r;
  }

  // One call, or a run of calls (core::Event::syscall_run), cut into windows where they end.
  bool OnSyscall(const core::Event& e, Proc& p) {
    const size_t window = std::max<size_t>(state_.options.window, 1);
    // The stream was off between this process's last calls and these: end the window there.
    // (Either order: a batch of another thread can arrive after a later one from another CPU.)
    const StreamGaps* gaps = state_.options.stream_gaps.get();
    if (gaps != nullptr && p.last_call_ns != 0 && (!p.learn.empty() || p.in_window > 0) &&
        gaps->Between(std::min(p.last_call_ns, e.time_ns), std::max(p.last_call_ns, e.time_ns))) {
      Flush(e.proc.pid, p, /*exiting=*/true);
      state_.gap_cuts.fetch_add(1, std::memory_order_relaxed);
    }
    p.last_call_ns = e.time_ns;
    p.arch = e.syscall.arch;
    std::span<const int32_t> calls = e.syscall_run.empty()
                                         ? std::span<const int32_t>(&e.syscall.nr, 1)
                                         : std::span<const int32_t>(e.syscall_run);
    switch (state_.phase.load(std::memory_order_relaxed)) {
      case LivePhase::kLearning:
        while (!calls.empty()) {
          const size_t take = std::min(calls.size(), window - std::min(window, p.learn.size()));
          if (p.learn.capacity() < window) p.learn.reserve(window);
          p.learn.insert(p.learn.end(), calls.begin(), calls.begin() + take);
          calls = calls.subspan(take);
          if (p.learn.size() >= window) {
            state_.AddWindow(p.program, p.arch, p.learn);
            p.learn.clear();  // its buffer is reused for the next window
          }
        }
        return false;
      case LivePhase::kTraining:
      case LivePhase::kStopped:
        p.learn.clear();
        return false;
      case LivePhase::kDetecting:
        break;
    }
    const uint64_t gen = state_.generation.load(std::memory_order_acquire);
    if (gen != model_generation_) {
      model_ = state_.Current();
      model_generation_ = gen;
    }
    if (!model_) return false;
    if (!p.scorer || p.scorer_generation != gen) {
      p.scorer = model_->NewStream(p.program);
      p.scorer_generation = gen;
      p.in_window = 0;
    }
    while (!calls.empty()) {
      const size_t take = std::min(calls.size(), window - std::min(window, p.in_window));
      p.scorer->ObserveSyscalls(e.syscall.arch, calls.first(take));
      calls = calls.subspan(take);
      p.in_window += take;
      if (p.in_window >= window) Emit(e.proc.pid, p);
    }
    return true;
  }

  // End of a process (or of its current program): report the partial window when it is at least
  // half a window long; shorter ones say too little.
  void Flush(uint32_t pid, Proc& p, bool exiting) {
    const size_t half = std::max<size_t>(state_.options.window / 2, 1);
    if (state_.phase.load() == LivePhase::kLearning && p.learn.size() >= half) {
      state_.AddWindow(p.program, p.arch, p.learn);
    }
    p.learn.clear();
    if (p.scorer && p.in_window >= half) Emit(pid, p);
    if (exiting) p.scorer.reset();
    p.in_window = 0;
  }

  void Emit(uint32_t pid, Proc& p) {
    core::Verdict v = p.scorer->Current();
    v.pid = pid;
    v.uid = p.uid;
    v.subject = p.program;
    v.host = p.host;
    v.time_ns = p.last_time_ns;
    v.stream = (p.comm.empty() ? p.program : p.comm) + "[" + std::to_string(pid) + "]#" +
               std::to_string(p.window_index++);
    for (size_t i = 0; i < p.recent_count; ++i) {  // oldest first
      const size_t at = (p.recent_next + kRecent - p.recent_count + i) % kRecent;
      v.explanation.push_back({"recent: " + p.recent[at], 0.0});
    }
    state_.windows_scored.fetch_add(1, std::memory_order_relaxed);
    if (v.anomalous) state_.alerts.fetch_add(1, std::memory_order_relaxed);
    out_.Emit(std::move(v));
    if (model_) p.scorer = model_->NewStream(p.program);
    p.in_window = 0;
  }

  LiveAgent::State& state_;
  VerdictSink& out_;
  std::unordered_map<uint32_t, Proc> procs_;
  std::shared_ptr<const model::SequenceModel> model_;
  uint64_t model_generation_ = 0;
  uint64_t tick_ = 0;
};

}  // namespace

LiveAgent::LiveAgent(LiveOptions options, std::vector<pipeline::Sink*> sinks,
                     const core::Clock& clock, std::function<void()> stop_sensor)
    : options_(std::move(options)),
      sinks_(std::move(sinks)),
      clock_(clock),
      stop_sensor_(std::move(stop_sensor)),
      state_(std::make_unique<State>(options_)) {}

LiveAgent::~LiveAgent() = default;

void LiveAgent::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
  std::call_once(stop_once_, [this] {
    if (stop_sensor_) stop_sensor_();
  });
}

void LiveAgent::NoteAdded() {
  if (options_.on_note) options_.on_note();
}

std::vector<std::string> LiveAgent::TakeNotes() {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<std::string> out;
  out.swap(state_->notes);
  return out;
}

core::Status LiveAgent::EndLearning() {
  state_->phase = LivePhase::kTraining;
  std::vector<model::TrainingTrace> windows = state_->TakeWindows();
  const size_t needed = static_cast<size_t>(std::max(options_.model.folds, 2));
  if (windows.size() < needed) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->notes.push_back("learning saw only " + std::to_string(windows.size()) +
                            " windows (need " + std::to_string(needed) +
                            "); learning goes on for another period");
    state_->phase = LivePhase::kLearning;
    for (const auto& w : windows) state_->windows.Add(w.subject, w.arch, w.syscalls);
    NoteAdded();
    return core::Status::Ok();
  }
  auto m = model::SequenceModel::Train(windows, options_.model);
  if (!m.has_value()) return m.error().WithContext("training the baselines");
  nlohmann::json header;
  header["created_unix"] = clock_.NowUnixNanos() / 1'000'000'000;
  header["code_version"] = std::string("vigil ") + VIGIL_VERSION;
  header["training"] = {{"dataset", "live"},
                        {"windows", windows.size()},
                        {"window", options_.window},
                        {"learn_seconds", options_.learn_ns / 1'000'000'000}};
  if (!options_.baseline_path.empty()) {
    VIGIL_RETURN_IF_ERROR(model::WriteModelFile(options_.baseline_path, (*m)->ToFile(header)));
  }
  std::shared_ptr<const model::SequenceModel> shared(std::move(m).value());
  const size_t programs = shared->subjects().size() - 1;
  state_->Publish(std::move(shared));
  if (options_.on_model_change) options_.on_model_change("trained", programs);
  const size_t learned = windows.size();
  // The windows and training's working memory are freed now; hand the pages back (a learning
  // period of a busy host leaves megabytes free in the heap that detection never reuses).
  windows = {};
  ReleaseFreeHeap();
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->notes.push_back("learned " + std::to_string(learned) + " windows; " +
                            std::to_string(programs) + " programs have their own model" +
                            (options_.baseline_path.empty()
                                 ? std::string()
                                 : "; baselines saved to " + options_.baseline_path) +
                            "; detection started");
  }
  NoteAdded();
  return core::Status::Ok();
}

void LiveAgent::Controller(int64_t start) {
  // Waits until `deadline` (monotonic ns of the injected clock; 0: forever) or a stop request.
  // Returns true when stopped. Reads a clock other than the system clock again in short steps
  // (WaitSlice) so that a fake clock also works. The clock is read with mu_ released: Live() and
  // Stop() take mu_, and an injected clock may take its time.
  auto wait_until = [&](int64_t deadline) {
    while (true) {
      const int64_t now = clock_.MonotonicNanos();
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_requested_) return true;
      if (deadline != 0 && now >= deadline) return false;
      constexpr int64_t kHourNs = int64_t{3600} * 1'000'000'000;  // no deadline: wait this long
      const int64_t left = deadline == 0 ? kHourNs : deadline - now;
      if (cv_.wait_for(lock, WaitSlice(clock_, left), [this] { return stop_requested_; })) {
        return true;
      }
    }
  };
  const int64_t end = options_.duration_ns > 0 ? start + options_.duration_ns : 0;
  int64_t learn_end = start + options_.learn_ns;
  while (state_->phase.load() == LivePhase::kLearning) {
    const int64_t next = end != 0 ? std::min(learn_end, end) : learn_end;
    if (wait_until(next)) return;  // stopped
    if (end != 0 && clock_.MonotonicNanos() >= end) {
      Stop();
      return;
    }
    core::Status st = EndLearning();
    if (!st.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        controller_status_ = st;
      }
      Stop();
      return;
    }
    learn_end = clock_.MonotonicNanos() + options_.learn_ns;
  }
  if (!wait_until(end)) Stop();
}

core::Result<LiveStats> LiveAgent::Run(
    sensor::Sensor& sensor, const std::function<void(const core::Status&)>& on_read_error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::shared_ptr<const model::SequenceModel> shared = options_.baseline;
  if (!shared && !options_.relearn && !options_.baseline_path.empty() &&
      fs::exists(options_.baseline_path, ec)) {
    auto m = model::LoadSequenceModel(options_.baseline_path);
    if (!m.has_value()) return m.error().WithContext("baseline");
    shared = std::move(m).value();
  }
  if (shared) {
    const size_t programs = shared->subjects().size() - 1;
    state_->Publish(std::move(shared));
    if (options_.on_model_change) options_.on_model_change("loaded", programs);
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->notes.push_back("reusing the baselines in " + options_.baseline_path + " (" +
                              std::to_string(programs) +
                              " programs with their own model); detection started");
    }
    NoteAdded();
  }
  State& state = *state_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    runner_ = std::make_unique<ReplayRunner>(
        [&state](VerdictSink& out) { return std::make_unique<LiveHandler>(state, out); }, sinks_,
        options_.pipeline, clock_);
  }
  // The learning period and the duration count from here, not from when the controller thread
  // first runs: on a loaded machine that can be long after events started to flow (with a fake
  // clock, after the test moved time on, so that learning would end a whole period late).
  const int64_t start = clock_.MonotonicNanos();
  std::thread controller([this, start] { Controller(start); });
  auto stats = runner_->Run(sensor, on_read_error);
  Stop();
  controller.join();
  state_->phase = LivePhase::kStopped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!controller_status_.ok()) return controller_status_;
  }
  if (!stats.has_value()) return stats.error();
  return Live();
}

LiveStats LiveAgent::Live() const {
  LiveStats s;
  s.phase = state_->phase.load();
  s.learned_windows = state_->learned_windows.load();
  s.dropped_windows = state_->dropped_windows.load();
  s.programs_learned = state_->programs_learned.load();
  s.windows_scored = state_->windows_scored.load();
  s.alerts = state_->alerts.load();
  s.processes_evicted = state_->evicted.load();
  s.gap_cuts = state_->gap_cuts.load();
  std::lock_guard<std::mutex> lock(mu_);
  if (runner_) s.pipeline = runner_->Live();
  return s;
}

}  // namespace vigil::agent
