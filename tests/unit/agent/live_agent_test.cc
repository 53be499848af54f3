#include "agent/live_agent.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "collect_sink.h"
#include "core/clock.h"

namespace vigil::agent {
namespace {

namespace fs = std::filesystem;

// Emits `learning` events, then (when a gate is set) waits for the agent to reach detection,
// then emits `detection` events. Waits are bounded by a deadline; nothing sleeps a fixed time.
class PhasedSensor final : public sensor::Sensor {
 public:
  std::string_view name() const override { return "phased"; }
  core::Result<sensor::ReadOutcome> Next(core::Event* out) override {
    if (pos_ == learning.size() && !gated_ && gate) {
      gated_ = true;
      gate();
    }
    if (pos_ < learning.size()) {
      *out = learning[pos_++];
      return sensor::ReadOutcome::kEvent;
    }
    const size_t d = pos_ - learning.size();
    if (d < detection.size()) {
      ++pos_;
      *out = detection[d];
      return sensor::ReadOutcome::kEvent;
    }
    return sensor::ReadOutcome::kEnd;
  }
  std::vector<core::Event> learning, detection;
  std::function<void()> gate;

 private:
  size_t pos_ = 0;
  bool gated_ = false;
};

using testing::CollectSink;

bool WaitFor(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

void AddProcess(std::vector<core::Event>* out, uint32_t pid, const std::string& exe,
                const std::vector<int>& pattern, size_t calls, bool exit) {
  core::Event exec;
  exec.kind = core::EventKind::kProcessExec;
  exec.proc.pid = pid;
  exec.proc.comm = fs::path(exe).filename().string();
  exec.proc.exe = exe;
  exec.path = exe;
  out->push_back(exec);
  for (size_t i = 0; i < calls; ++i) {
    core::Event e;
    e.kind = core::EventKind::kSyscall;
    e.proc = exec.proc;
    e.syscall = {core::Arch::kX86_64, pattern[i % pattern.size()]};
    out->push_back(e);
  }
  if (exit) {
    core::Event x;
    x.kind = core::EventKind::kProcessExit;
    x.proc = exec.proc;
    out->push_back(x);
  }
}

const std::vector<int> kUsual = {2, 0, 0, 3, 5, 9, 0, 1, 3, 60};     // open read read close ...
const std::vector<int> kOdd = {59, 41, 42, 33, 33, 59, 2, 0, 1, 3};  // execve socket connect dup2

class LiveAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vigil-live-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.learn_ns = 1'000'000'000;
    options_.window = 50;
    options_.baseline_path = (dir_ / "baseline.vgm").string();
    options_.model.min_subject_traces = 5;
    options_.pipeline.workers = 2;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A PhasedSensor gate: waits until `*agent` learned `windows` windows, ends learning
  // (`end_learning` moves the clock past the learning period) and waits for detection.
  static std::function<void()> DetectAfter(LiveAgent* const* agent, uint64_t windows,
                                           std::function<void()> end_learning) {
    return [agent, windows, end_learning] {
      ASSERT_TRUE(WaitFor([&] { return (*agent)->Live().learned_windows == windows; }));
      end_learning();
      ASSERT_TRUE(WaitFor([&] { return (*agent)->Live().phase == LivePhase::kDetecting; }));
    };
  }
  std::function<void()> Advance(int64_t ns) {
    return [this, ns] { clock_.Advance(ns); };
  }

  // Runs an agent with `options` on `sensor`, learning until 80 windows were learned, then
  // detecting. By default on clock_, advanced by the learning period to end learning.
  core::Result<LiveStats> LearnThenDetect(PhasedSensor& sensor, const LiveOptions& options,
                                          CollectSink& sink, const core::Clock* clock = nullptr,
                                          std::function<void()> end_learning = {}) {
    LiveAgent* agent_ptr = nullptr;
    sensor.gate = DetectAfter(&agent_ptr, 80,
                              end_learning ? end_learning : Advance(options.learn_ns));
    LiveAgent agent(options, {&sink}, clock != nullptr ? *clock : clock_, nullptr);
    agent_ptr = &agent;
    return agent.Run(sensor, nullptr);
  }

  fs::path dir_;
  LiveOptions options_;
  core::FakeClock clock_;
};

TEST_F(LiveAgentTest, LearnsThenAlertsOnlyOnTheUnseenBehaviour) {
  PhasedSensor sensor;
  for (uint32_t pid = 100; pid < 120; ++pid) {
    AddProcess(&sensor.learning, pid, "/usr/bin/worker", kUsual, 200, true);  // 4 windows each
  }
  AddProcess(&sensor.detection, 500, "/usr/bin/worker", kUsual, 100, true);
  AddProcess(&sensor.detection, 501, "/usr/bin/worker", kOdd, 100, false);
  core::Event open;
  open.kind = core::EventKind::kFileOpen;
  open.proc.pid = 501;
  open.path = "/etc/shadow";
  sensor.detection.insert(sensor.detection.begin() + 150, open);

  CollectSink sink;
  LiveAgent* agent_ptr = nullptr;
  sensor.gate = DetectAfter(&agent_ptr, 80, Advance(options_.learn_ns));
  LiveAgent agent(options_, {&sink}, clock_, nullptr);
  agent_ptr = &agent;
  auto stats = agent.Run(sensor, nullptr);
  ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
  EXPECT_EQ(stats->learned_windows, 80u);
  EXPECT_EQ(stats->programs_learned, 1u);
  EXPECT_EQ(stats->windows_scored, 4u);
  EXPECT_EQ(stats->alerts, 2u);
  ASSERT_EQ(sink.lines.size(), 4u);
  for (const auto& j : sink.lines) {
    const bool odd = j["process"]["pid"] == 501;
    EXPECT_EQ(j["vigil"]["anomalous"].get<bool>(), odd) << j.dump();
    EXPECT_EQ(j["process"]["name"], "/usr/bin/worker");
    if (odd) {
      const std::string expl = j["vigil"]["explanation"].dump();
      EXPECT_NE(expl.find("execve"), std::string::npos) << expl;
      EXPECT_NE(expl.find("exec /usr/bin/worker"), std::string::npos) << expl;
    }
  }
  const std::string notes = nlohmann::json(agent.TakeNotes()).dump();
  EXPECT_NE(notes.find("baselines saved to"), std::string::npos) << notes;
  EXPECT_TRUE(fs::exists(options_.baseline_path));

  // A restart reuses the baseline: detection from the first event, no learning.
  PhasedSensor again;
  AddProcess(&again.detection, 600, "/usr/bin/worker", kOdd, 50, true);
  CollectSink sink2;
  LiveAgent agent2(options_, {&sink2}, clock_, nullptr);
  auto stats2 = agent2.Run(again, nullptr);
  ASSERT_TRUE(stats2.has_value()) << stats2.error().ToString();
  EXPECT_EQ(stats2->learned_windows, 0u);
  EXPECT_EQ(stats2->alerts, 1u);
  EXPECT_NE(nlohmann::json(agent2.TakeNotes()).dump().find("reusing the baselines"),
            std::string::npos);

  // An alert names the process's last four typed events, oldest first, and no older one.
  PhasedSensor third;
  AddProcess(&third.detection, 700, "/usr/bin/worker", kOdd, 50, true);
  std::vector<core::Event> typed(5);
  for (core::Event& t : typed) t.proc.pid = 700;
  typed[0].kind = core::EventKind::kFileOpen;
  typed[0].path = "/first";
  typed[1].kind = core::EventKind::kFileOpen;
  typed[1].path = "/second/with/a/path/longer/than/a/short/string";
  typed[2].kind = core::EventKind::kNetConnect;
  typed[2].net.daddr = "10.0.0.1";
  typed[2].net.dport = 443;
  typed[3].kind = core::EventKind::kTypedCall;
  typed[3].syscall = {core::Arch::kX86_64, 263};  // unlinkat
  typed[3].path = "/third";
  typed[4].kind = core::EventKind::kFileOpen;
  typed[4].path = "/fourth";
  third.detection.insert(third.detection.begin() + 1, typed.begin(), typed.end());
  CollectSink sink3;
  LiveAgent agent3(options_, {&sink3}, clock_, nullptr);
  ASSERT_TRUE(agent3.Run(third, nullptr).has_value());
  ASSERT_EQ(sink3.lines.size(), 1u);
  std::vector<std::string> recent;
  for (const auto& ev : sink3.lines[0]["vigil"]["explanation"]) {
    const std::string what = ev.is_object() ? ev.value("what", "") : ev.get<std::string>();
    if (what.rfind("recent: ", 0) == 0) recent.push_back(what.substr(8));
  }
  EXPECT_EQ(recent, (std::vector<std::string>{
                        "open /second/with/a/path/longer/than/a/short/string",
                        "connect 10.0.0.1:443", "unlinkat /third", "open /fourth"}))
      << sink3.lines[0].dump();
}

// The same events with each process's consecutive calls packed into runs
// (core::Event::syscall_run, as the eBPF sensor delivers them to the agent) of the given sizes in
// turn, so that runs straddle window boundaries.
std::vector<core::Event> PackRuns(const std::vector<core::Event>& events,
                                  const std::vector<size_t>& sizes) {
  std::vector<core::Event> out;
  size_t next = 0;
  for (const core::Event& e : events) {
    core::Event* last = out.empty() ? nullptr : &out.back();
    const bool joins = e.kind == core::EventKind::kSyscall && last != nullptr &&
                       last->kind == core::EventKind::kSyscall &&
                       last->proc.pid == e.proc.pid && last->syscall.arch == e.syscall.arch &&
                       last->syscall_run.size() < sizes[next % sizes.size()];
    if (joins) {
      last->syscall_run.push_back(e.syscall.nr);
      last->syscall.nr = e.syscall.nr;
      continue;
    }
    if (last != nullptr && !last->syscall_run.empty()) ++next;
    out.push_back(e);
    if (e.kind == core::EventKind::kSyscall) out.back().syscall_run = {e.syscall.nr};
  }
  return out;
}

TEST_F(LiveAgentTest, RunsOfCallsLearnAndScoreAsTheSingleCallsDo) {
  std::vector<core::Event> learning, detection;
  for (uint32_t pid = 100; pid < 120; ++pid) {
    AddProcess(&learning, pid, "/usr/bin/worker", kUsual, 200, true);
  }
  AddProcess(&detection, 500, "/usr/bin/worker", kUsual, 130, true);
  AddProcess(&detection, 501, "/usr/bin/worker", kOdd, 170, false);
  const std::vector<size_t> sizes = {7, 64, 1, 33, 50, 13};

  struct Outcome {
    LiveStats stats;
    std::map<std::string, double> scores;  // by verdict stream ("worker[501]#0")
  };
  auto run = [&](bool packed) {
    const fs::path state = dir_ / (packed ? "packed" : "single");
    fs::create_directories(state);
    LiveOptions options = options_;
    options.baseline_path = (state / "baseline.vgm").string();
    options.pipeline.emit_all = true;
    PhasedSensor sensor;
    sensor.learning = packed ? PackRuns(learning, sizes) : learning;
    sensor.detection = packed ? PackRuns(detection, sizes) : detection;
    CollectSink sink;
    auto stats = LearnThenDetect(sensor, options, sink);
    Outcome o;
    EXPECT_TRUE(stats.has_value()) << stats.error().ToString();
    if (stats.has_value()) o.stats = *stats;
    for (const auto& j : sink.lines) {
      o.scores[j["vigil"]["stream"].get<std::string>()] = j["vigil"]["score"].get<double>();
    }
    return o;
  };
  const Outcome single = run(false);
  const Outcome packed = run(true);
  EXPECT_EQ(packed.stats.learned_windows, 80u);
  EXPECT_EQ(packed.stats.learned_windows, single.stats.learned_windows);
  EXPECT_EQ(packed.stats.programs_learned, single.stats.programs_learned);
  // 130 calls and an exit: 2 windows and the last 30 (at least half a window: reported); 170
  // calls: 3 windows, and 20 left at the end (too short).
  EXPECT_EQ(packed.stats.windows_scored, 6u);
  EXPECT_EQ(packed.stats.windows_scored, single.stats.windows_scored);
  EXPECT_EQ(packed.stats.alerts, single.stats.alerts);
  EXPECT_GE(packed.stats.alerts, 1u);
  // Counts are of calls, not of the events that carried them.
  EXPECT_EQ(packed.stats.pipeline.read, single.stats.pipeline.read);
  EXPECT_EQ(packed.stats.pipeline.scored, single.stats.pipeline.scored);
  EXPECT_EQ(packed.stats.pipeline.validation.accepted, single.stats.pipeline.validation.accepted);
  ASSERT_EQ(packed.scores.size(), 6u);
  for (const auto& [stream, score] : single.scores) {
    ASSERT_EQ(packed.scores.count(stream), 1u) << stream;
    EXPECT_DOUBLE_EQ(packed.scores.at(stream), score) << stream;
  }
}

// Calls of `pid` at times first_ns, first_ns + 1, ... (one event each, or one run when `run`).
void AddTimedCalls(std::vector<core::Event>* out, uint32_t pid, const std::string& exe,
                   const std::vector<int>& pattern, size_t calls, int64_t first_ns, bool run) {
  core::Event e;
  e.kind = core::EventKind::kSyscall;
  e.proc.pid = pid;
  e.proc.comm = fs::path(exe).filename().string();
  e.proc.exe = exe;
  for (size_t i = 0; i < calls; ++i) {
    e.syscall = {core::Arch::kX86_64, pattern[i % pattern.size()]};
    e.time_ns = first_ns + static_cast<int64_t>(i);
    if (run) {
      e.syscall_run.push_back(e.syscall.nr);
    } else {
      out->push_back(e);
    }
  }
  if (run) out->push_back(e);
}

void AddExit(std::vector<core::Event>* out, uint32_t pid, const std::string& exe) {
  core::Event x;
  x.kind = core::EventKind::kProcessExit;
  x.proc.pid = pid;
  x.proc.exe = exe;
  out->push_back(x);
}

TEST_F(LiveAgentTest, WindowsAreCutWhereTheStreamWasOff) {
  // The stream resumed at 3,000 ns after an off period. Process 100: 30 calls before, 30 after.
  // Process 102: the same, its later calls first (another thread's batch arriving late). Each
  // side is over half a window (50): with the cut, two learned windows per process; without
  // it, one window of 50 across the gap and 10 calls too few to count.
  auto gaps = std::make_shared<StreamGaps>();
  gaps->RecordResume(3000);
  std::vector<core::Event> learning;
  AddTimedCalls(&learning, 100, "/usr/bin/sampled", kUsual, 30, 1000, false);
  AddTimedCalls(&learning, 102, "/usr/bin/sampled", kUsual, 30, 5000, false);
  AddTimedCalls(&learning, 100, "/usr/bin/sampled", kUsual, 30, 5000, false);
  AddTimedCalls(&learning, 102, "/usr/bin/sampled", kUsual, 30, 1000, false);
  AddExit(&learning, 100, "/usr/bin/sampled");
  AddExit(&learning, 102, "/usr/bin/sampled");
  auto learn = [&](std::shared_ptr<const StreamGaps> g) {
    LiveOptions options = options_;
    options.stream_gaps = std::move(g);
    PhasedSensor sensor;
    sensor.learning = learning;
    CollectSink sink;
    LiveAgent agent(options, {&sink}, clock_, nullptr);
    auto stats = agent.Run(sensor, nullptr);
    EXPECT_TRUE(stats.has_value()) << stats.error().ToString();
    return stats.has_value() ? *stats : LiveStats{};
  };
  const LiveStats cut = learn(gaps);
  EXPECT_EQ(cut.learned_windows, 4u);
  EXPECT_EQ(cut.gap_cuts, 2u);
  const LiveStats joined = learn(nullptr);
  EXPECT_EQ(joined.learned_windows, 2u);
  EXPECT_EQ(joined.gap_cuts, 0u);

  // Detection: a run of 30 calls before the gap and one after score as two windows, not one.
  auto detect = [&](std::shared_ptr<const StreamGaps> g, const std::string& name) {
    const fs::path state = dir_ / name;
    fs::create_directories(state);
    LiveOptions options = options_;
    options.baseline_path = (state / "baseline.vgm").string();
    options.stream_gaps = std::move(g);
    PhasedSensor sensor;
    for (uint32_t pid = 200; pid < 220; ++pid) {
      AddProcess(&sensor.learning, pid, "/usr/bin/worker", kUsual, 200, true);
    }
    AddTimedCalls(&sensor.detection, 500, "/usr/bin/worker", kUsual, 30, 1000, true);
    AddTimedCalls(&sensor.detection, 500, "/usr/bin/worker", kUsual, 30, 5000, true);
    AddExit(&sensor.detection, 500, "/usr/bin/worker");
    CollectSink sink;
    auto stats = LearnThenDetect(sensor, options, sink);
    EXPECT_TRUE(stats.has_value()) << stats.error().ToString();
    return stats.has_value() ? *stats : LiveStats{};
  };
  const LiveStats scored_cut = detect(gaps, "cut");
  EXPECT_EQ(scored_cut.windows_scored, 2u);
  EXPECT_EQ(scored_cut.gap_cuts, 1u);
  const LiveStats scored_joined = detect(nullptr, "joined");
  EXPECT_EQ(scored_joined.windows_scored, 1u);
}

// A fake clock whose first reading from any thread but the test's waits until Release(): the
// agent's controller thread scheduled late on a loaded machine, after time moved on.
class LateThreadsClock final : public core::Clock {
 public:
  int64_t NowUnixNanos() const override { return fake.NowUnixNanos(); }
  int64_t MonotonicNanos() const override {
    if (std::this_thread::get_id() != owner_) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(20), [this] { return released_; });
    }
    return fake.MonotonicNanos();
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  core::FakeClock fake;

 private:
  const std::thread::id owner_ = std::this_thread::get_id();
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool released_ = false;
};

TEST_F(LiveAgentTest, LearningPeriodStartsWithTheRunNotWithItsControllerThread) {
  // The learning period is measured from Run's start. Here the controller thread first reads
  // the clock only after the whole period has passed; learning must still end then, not a
  // period after the controller happened to run.
  PhasedSensor sensor;
  for (uint32_t pid = 100; pid < 120; ++pid) {
    AddProcess(&sensor.learning, pid, "/usr/bin/worker", kUsual, 200, true);
  }
  AddProcess(&sensor.detection, 501, "/usr/bin/worker", kOdd, 100, true);
  LateThreadsClock clock;
  CollectSink sink;
  auto stats = LearnThenDetect(sensor, options_, sink, &clock, [&] {
    clock.fake.Advance(options_.learn_ns);
    clock.Release();
  });
  ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
  EXPECT_EQ(stats->learned_windows, 80u);
  EXPECT_EQ(stats->windows_scored, 2u);
  EXPECT_EQ(stats->alerts, 2u);
}

TEST_F(LiveAgentTest, TooLittleLearningKeepsLearning) {
  PhasedSensor sensor;
  AddProcess(&sensor.learning, 100, "/usr/bin/quiet", kUsual, 120, true);  // 2 windows
  LiveAgent* agent_ptr = nullptr;
  sensor.gate = [&] {
    ASSERT_TRUE(WaitFor([&] { return agent_ptr->Live().learned_windows == 2; }));
    clock_.Advance(options_.learn_ns);
    // Learning ended, found too little and went back to learning.
    ASSERT_TRUE(WaitFor([&] {
      const std::string notes = nlohmann::json(agent_ptr->TakeNotes()).dump();
      return notes.find("learning saw only 2 windows") != std::string::npos;
    }));
    EXPECT_EQ(agent_ptr->Live().phase, LivePhase::kLearning);
  };
  CollectSink sink;
  LiveAgent agent(options_, {&sink}, clock_, nullptr);
  agent_ptr = &agent;
  auto stats = agent.Run(sensor, nullptr);
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->windows_scored, 0u);
  EXPECT_FALSE(fs::exists(options_.baseline_path));
}

TEST_F(LiveAgentTest, CorruptBaselineIsRefused) {
  std::ofstream(options_.baseline_path) << "garbage";
  PhasedSensor sensor;
  CollectSink sink;
  LiveAgent agent(options_, {&sink}, clock_, nullptr);
  auto stats = agent.Run(sensor, nullptr);
  ASSERT_FALSE(stats.has_value());
  EXPECT_NE(stats.error().message().find("baseline.vgm"), std::string::npos)
      << stats.error().message();
}

TEST_F(LiveAgentTest, DurationEndsTheRunThroughTheSensorStop) {
  // A sensor that produces nothing until stopped.
  class IdleSensor final : public sensor::Sensor {
   public:
    std::string_view name() const override { return "idle"; }
    core::Result<sensor::ReadOutcome> Next(core::Event*) override {
      while (!stopped.load()) std::this_thread::yield();
      return sensor::ReadOutcome::kEnd;
    }
    std::atomic<bool> stopped{false};
  } sensor;
  options_.duration_ns = 5'000'000'000;
  CollectSink sink;
  LiveAgent agent(options_, {&sink}, clock_, [&] { sensor.stopped = true; });
  std::thread advance([&] {
    // The run ends only when the (fake) duration has passed; keep time moving until it has.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!sensor.stopped.load() && std::chrono::steady_clock::now() < deadline) {
      clock_.Advance(100'000'000);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto stats = agent.Run(sensor, nullptr);
  advance.join();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->phase, LivePhase::kStopped);
}

}  // namespace
}  // namespace vigil::agent
