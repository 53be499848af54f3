// The synchronous gates for real, as root: a program under the seccomp gate, execs and opens
// of files on a tmpfs this test mounts under the fanotify gate, and forced slow decisions that
// must be answered with the rule's fallback by the deadline. The gates decide through the same
// wiring `vigil run` uses (apps/vigil/gate_wiring.h).

#include <gtest/gtest.h>
#include <sched.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "apps/vigil/agent_gate.h"
#include "apps/vigil/gate_model.h"
#include "apps/vigil/gate_wiring.h"
#include "audit/audit_log.h"
#include "audit/canonical_json.h"
#include "audit/payloads.h"
#include "core/files.h"
#include "enforce/gate.h"
#include "model/inference_engine.h"
#include "model/sequence_model.h"
#include "policy/engine.h"
#include "sensor/fanotify_gate.h"
#include "sensor/seccomp_gate.h"
#include "tests/integration/loopback_listener.h"
#include "tests/unit/sensor/thread_scheduling.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// The deadline of the tests of what happens at a deadline (the gates' default).
constexpr int64_t kDeadlineNs = 5'000'000;
// The deadline of the tests of what the rules and the model decide: on a loaded machine (CI
// shares 2 cores) reading a process's context and scoring it can take longer than 5 ms, and the
// call would then get the fallback instead of the decision under test.
constexpr int64_t kDecideDeadlineNs = 2'000'000'000;
// The deadline of the tests whose model never answers in time: only the slow call may reach
// it. At 5 ms another call of the probe (its exec, an open) reached it too now and then on a
// loaded machine, and was counted as a second deadline fallback.
constexpr int64_t kSlowDeadlineNs = 200'000'000;

bool IsRoot() { return geteuid() == 0; }

using Listener = testing::LoopbackListener;

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("vigil-gates-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The probe's first "errno=E ns=T" line.
struct ProbeResult {
  int err = -1;
  long long ns = -1;
};
ProbeResult ParseProbe(const std::string& out) {
  ProbeResult r;
  std::sscanf(out.c_str(), "errno=%d ns=%lld", &r.err, &r.ns);
  return r;
}

policy::RuleSet MustLoad(const std::string& yaml) {
  auto set = policy::RuleSet::LoadString(yaml, "gates.yaml");
  EXPECT_TRUE(set.has_value()) << set.error().message();
  return set.has_value() ? std::move(set).value() : policy::RuleSet();
}

// Whether process `pid` has exited (gone, or a zombie). The process may be reaped between
// opening its stat file and reading it (the read then fails with ESRCH): that is exited too.
bool Exited(pid_t pid) {
  const auto read = core::ReadFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!read.has_value()) return true;
  const std::string& stat = read.value();
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z';
}

// A model that answers only once the process whose call it is asked about has exited (at the
// latest after 10 s): that call must have been answered without it, however slow the machine.
class SlowSource final : public enforce::VerdictSource {
 public:
  core::Result<core::Verdict> Score(const policy::EvalInput& in, int64_t) override {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!Exited(static_cast<pid_t>(in.event->proc.pid)) &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    core::Verdict v;
    v.anomalous = false;
    return v;
  }
};

// Runs `probe ARGS` under a seccomp gate deciding with `rules`; returns the probe's result.
ProbeResult RunUnderSeccomp(const policy::RuleSet& rules, enforce::GateMode mode,
                            const std::string& probe_args, enforce::VerdictSource* source,
                            enforce::GateStats* stats = nullptr, std::string* raw = nullptr,
                            int64_t deadline_ns = kDecideDeadlineNs,
                            enforce::RecordFn record = nullptr) {
  const fs::path dir = TempDir("seccomp");
  const fs::path out = dir / "probe.out";
  enforce::DecisionGate gate(
      &rules, enforce::GateOptions{.name = "seccomp", .mode = mode, .deadline_ns = deadline_ns},
      source, nullptr, std::move(record));
  app::GateDeciderAdapter decider(&gate);
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c", std::string(VIGIL_GATE_PROBE) + " " + probe_args + " >" + out.string()};
  o.deadline_ns = deadline_ns;
  auto g = sensor::SeccompGate::Launch(o, &decider);
  EXPECT_TRUE(g.has_value()) << g.error().message();
  if (!g.has_value()) return {};
  const sensor::SeccompExit exit = (*g)->Wait();
  EXPECT_EQ(exit.exec_errno, 0);
  EXPECT_GT((*g)->stats().calls, 0u);
  if (stats != nullptr) *stats = gate.stats();
  const ProbeResult r = ParseProbe(ReadFile(out));
  if (raw != nullptr) *raw = ReadFile(out);
  fs::remove_all(dir);
  return r;
}

std::string ConnectRules(int forbidden) {
  return R"(
- rule: Forbidden port
  desc: no connections to the test's forbidden port
  condition: evt.type = connect and fd.sip = 127.0.0.1 and fd.sport = )" +
         std::to_string(forbidden) + R"(
  output: "connect to %fd.sip:%fd.sport by %proc.name"
  priority: WARNING
  action: {type: deny, mode: enforce}
)";
}

TEST(SeccompGateTest, ConnectToForbiddenPortFailsWithEpermAllowedOneSucceeds) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (seccomp user notification, /proc/PID/mem)";
  Listener allowed, forbidden;
  policy::RuleSet rules = MustLoad(ConnectRules(forbidden.port()));
  enforce::GateStats stats;
  const ProbeResult denied =
      RunUnderSeccomp(rules, enforce::GateMode::kEnforce,
                      "connect 127.0.0.1 " + std::to_string(forbidden.port()), nullptr, &stats);
  EXPECT_EQ(denied.err, EPERM);
  EXPECT_EQ(stats.denied, 1u);
  const ProbeResult ok = RunUnderSeccomp(rules, enforce::GateMode::kEnforce,
                                         "connect 127.0.0.1 " + std::to_string(allowed.port()),
                                         nullptr);
  EXPECT_EQ(ok.err, 0);
}

TEST(SeccompGateTest, MonitorModeAllowsAndCountsWouldHaveDenied) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  Listener forbidden;
  policy::RuleSet rules = MustLoad(ConnectRules(forbidden.port()));
  enforce::GateStats stats;
  const ProbeResult r =
      RunUnderSeccomp(rules, enforce::GateMode::kMonitor,
                      "connect 127.0.0.1 " + std::to_string(forbidden.port()), nullptr, &stats);
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(stats.would_deny, 1u);
  EXPECT_EQ(stats.denied, 0u);
}

TEST(SeccompGateTest, OpenOfForbiddenPathIsDenied) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  const fs::path dir = TempDir("open");
  const fs::path secret = dir / "secret.txt", plain = dir / "plain.txt";
  std::ofstream(secret) << "s";
  std::ofstream(plain) << "p";
  policy::RuleSet rules = MustLoad(R"(
- rule: Secret file
  desc: d
  condition: evt.type = openat and fd.name = )" + secret.string() + R"(
  output: "open %fd.name by %proc.name"
  priority: WARNING
  action: {type: deny, mode: enforce}
)");
  EXPECT_EQ(RunUnderSeccomp(rules, enforce::GateMode::kEnforce, "open " + secret.string(), nullptr)
                .err,
            EPERM);
  EXPECT_EQ(
      RunUnderSeccomp(rules, enforce::GateMode::kEnforce, "open " + plain.string(), nullptr).err,
      0);
  fs::remove_all(dir);
}

std::string SlowRules(int port, const std::string& fallback) {
  return R"(
- rule: Anomalous connect
  desc: d
  condition: evt.type = connect and fd.sport = )" +
         std::to_string(port) + R"( and ml.anomalous = true
  output: "anomalous connect"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: )" + fallback + R"(}
)";
}

// The scheduling policy and real-time priority of thread or process `tid`.
std::pair<int, int> SchedOf(pid_t tid) {
  sched_param sp{};
  if (sched_getparam(tid, &sp) != 0) return {-1, -1};
  return {sched_getscheduler(tid), sp.sched_priority};
}

TEST(SeccompGateTest, RealtimePriorityRaisesTheGatesThreadsAndNothingElse) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  policy::RuleSet rules = MustLoad(ConnectRules(1));
  enforce::DecisionGate gate(&rules, enforce::GateOptions{.name = "seccomp",
                                                          .mode = enforce::GateMode::kEnforce,
                                                          .deadline_ns = kDeadlineNs},
                             nullptr, nullptr, nullptr);
  app::GateDeciderAdapter decider(&gate);
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c", "sleep 0.3; exit 7"};
  o.realtime_priority = 100;
  auto bad = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("real-time priority 100"), std::string::npos);

  o.realtime_priority = 10;
  const std::pair<int, int> before = SchedOf(getpid());
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  ASSERT_TRUE((*g)->priority_status().ok()) << (*g)->priority_status().message();
  // This process's threads: the gate's reader and its watchdog at SCHED_FIFO 10 (with
  // SCHED_RESET_ON_FORK), every other one as it was.
  int raised = 0;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    const pid_t tid = std::stoi(task.path().filename().string());
    const auto [policy, prio] = SchedOf(tid);
    if (policy == (SCHED_FIFO | SCHED_RESET_ON_FORK)) {
      EXPECT_EQ(prio, 10);
      ++raised;
    } else {
      EXPECT_EQ(policy, before.first) << "thread " << tid;
    }
  }
  EXPECT_EQ(raised, 2);
  // The supervised program is not raised: it was started before the threads, and nothing they
  // start inherits the priority.
  EXPECT_EQ(SchedOf((*g)->pid()).first, SCHED_OTHER);
  EXPECT_EQ((*g)->Wait().exit_code, 7);
}

TEST(SeccompGateTest, SlowDecisionGetsTheRuleFallbackByTheDeadline) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  Listener target;
  SlowSource slow;
  for (const std::string fallback : {"deny", "allow"}) {
    policy::RuleSet rules = MustLoad(SlowRules(target.port(), fallback));
    enforce::GateStats stats;
    const ProbeResult r = RunUnderSeccomp(rules, enforce::GateMode::kEnforce,
                                          "connect 127.0.0.1 " + std::to_string(target.port()),
                                          &slow, &stats, nullptr, kSlowDeadlineNs);
    EXPECT_EQ(r.err, fallback == "deny" ? EPERM : 0) << fallback;
    // Answered at the deadline, without the model (it answers once the probe has exited, else
    // after 10 s; the slack is for the watchdog's wake-up on a loaded machine).
    EXPECT_GE(r.ns, kSlowDeadlineNs) << fallback;
    EXPECT_LT(r.ns, 1'000'000'000) << fallback;
    EXPECT_EQ(stats.deadline_fallbacks, 1u) << fallback;
    EXPECT_EQ(stats.late, 1u) << fallback;
  }
}

// The model at the gate (apps/vigil/gate_model.h): a syscall sequence model trained on the
// gated-call sequences of gate_probe runs that only open files. Its verdict drives a rule on
// ml.anomalous through the inference engine; a model that hangs makes the gate apply the rule's
// fallback within the deadline, and the engine's breaker then answers at once.
constexpr int32_t kExecve = 59, kOpenat = 257, kConnect = 42;

// gate_probe's gated calls when it only opens files: an exec, then 4..9 opens.
std::vector<model::TrainingTrace> ProbeTraces() {
  std::vector<model::TrainingTrace> traces;
  for (int i = 0; i < 40; ++i) {
    model::TrainingTrace t;
    t.subject = "gate_probe";
    t.arch = core::Arch::kX86_64;
    t.syscalls = {kExecve};
    for (int k = 0; k < 4 + i % 6; ++k) t.syscalls.push_back(kOpenat);
    traces.push_back(std::move(t));
  }
  return traces;
}

std::shared_ptr<const model::Model> ProbeModel() {
  auto m = model::SequenceModel::Train(ProbeTraces(), model::SequenceModelOptions{.order = 3});
  EXPECT_TRUE(m.has_value()) << m.error().message();
  return m.has_value() ? std::shared_ptr<const model::Model>(std::move(m).value()) : nullptr;
}

// A deny rule (enforced, fallback deny) that also needs the model to flag the process.
std::string MlDenyRule(const std::string& name, const std::string& condition) {
  return "- rule: " + name + "\n  desc: d\n  condition: " + condition +
         " and ml.anomalous = true\n  output: \"" + name +
         " by %proc.name, score %ml.score\"\n  priority: WARNING\n"
         "  action: {type: deny, mode: enforce, fallback: deny}\n";
}

std::string ModelRules(int port, const fs::path& file) {
  return MlDenyRule("Unusual connect", "evt.type = connect and fd.sport = " + std::to_string(port)) +
         MlDenyRule("Unusual open", "evt.type = openat and fd.name = " + file.string());
}

struct GateEngine {
  core::Registry registry;
  std::unique_ptr<model::InferenceEngine> engine;
  std::unique_ptr<app::EngineVerdictSource> source;
  explicit GateEngine(std::shared_ptr<const model::Model> m) {
    model::InferenceEngineOptions eo;
    eo.name = "gate-test";
    eo.registry = &registry;
    auto e = model::InferenceEngine::Create(std::move(m), eo, core::SystemClock::Get());
    EXPECT_TRUE(e.has_value()) << e.error().message();
    if (!e.has_value()) return;
    engine = std::move(e).value();
    source = std::make_unique<app::EngineVerdictSource>(engine.get(), app::GateModelOptions{});
  }
};

TEST(GateModelTest, SequenceModelVerdictDecidesRulesOnMlFields) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  auto m = ProbeModel();
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(app::CheckGateModel(*m, "probe.vgm").ok());
  GateEngine ge(m);
  ASSERT_NE(ge.source, nullptr);
  Listener target;
  const fs::path dir = TempDir("model");
  const fs::path file = dir / "data.txt";
  std::ofstream(file) << "d";
  policy::RuleSet rules = MustLoad(ModelRules(target.port(), file));

  // Opens only, as in training: not anomalous, allowed.
  enforce::GateStats stats;
  EXPECT_EQ(RunUnderSeccomp(rules, enforce::GateMode::kEnforce, "open " + file.string(),
                            ge.source.get(), &stats)
                .err,
            0);
  EXPECT_EQ(stats.denied, 0u);
  EXPECT_EQ(stats.fallbacks, 0u);
  // A connect gate_probe never made in training: anomalous, denied by the rule (not a fallback).
  EXPECT_EQ(RunUnderSeccomp(rules, enforce::GateMode::kEnforce,
                            "connect 127.0.0.1 " + std::to_string(target.port()), ge.source.get(),
                            &stats)
                .err,
            EPERM);
  EXPECT_EQ(stats.denied, 1u);
  EXPECT_EQ(stats.fallbacks, 0u);
  EXPECT_EQ(ge.engine->breaker().state(), model::BreakerState::kClosed);
  EXPECT_EQ(ge.engine->breaker().opened(), 0u);
  fs::remove_all(dir);
}

// Records what it was asked; flags a window holding a connect; fails when told to.
class RecordingModel final : public model::Model {
 public:
  const std::string& family() const override { return family_; }
  const std::string& name() const override { return family_; }
  const std::string& version() const override { return family_; }
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view) const override {
    return nullptr;
  }
  core::Result<core::Verdict> Score(const model::FeatureView& request) const override {
    std::lock_guard<std::mutex> lock(mu_);
    subject_ = std::string(request.subject);
    calls_.assign(request.syscalls.begin(), request.syscalls.end());
    if (fail_) return core::Internal("broken on purpose");
    core::Verdict v;
    v.anomalous = std::find(calls_.begin(), calls_.end(), kConnect) != calls_.end();
    v.score = v.anomalous ? 0.9 : 0.1;
    return v;
  }
  void set_fail(bool f) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = f;
  }
  std::pair<std::string, std::vector<int32_t>> last() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {subject_, calls_};
  }

 private:
  const std::string family_ = "recording";
  mutable std::mutex mu_;
  mutable std::string subject_;
  mutable std::vector<int32_t> calls_;
  bool fail_ = false;
};

core::Event GateEvent(core::EventKind kind, uint32_t pid, const std::string& comm) {
  core::Event e;
  e.kind = kind;
  e.proc.pid = pid;
  e.proc.comm = comm;
  return e;
}

// Observe/Score semantics without a kernel gate: the per-process sequence of call tokens, reset
// by an exec (new subject), bounded by the window; failures come back as errors naming why.
TEST(GateModelTest, ScoresEachProcessSequenceOfGatedCalls) {
  auto m = std::make_shared<RecordingModel>();
  GateEngine ge(m);
  ASSERT_NE(ge.source, nullptr);
  app::EngineVerdictSource& src = *ge.source;
  auto far = [] { return core::SystemClock::Get().MonotonicNanos() + 1'000'000'000; };
  // Observes the call, and scores it when `score`; the result of an unscored call is empty.
  auto call = [&](core::EventKind kind, uint32_t pid, const std::string& comm,
                  bool score) -> std::optional<core::Result<core::Verdict>> {
    const core::Event e = GateEvent(kind, pid, comm);
    policy::EvalInput in;
    in.event = &e;
    src.Observe(in);
    if (!score) return std::nullopt;
    return src.Score(in, far());
  };
  using K = core::EventKind;
  call(K::kProcessExec, 7, "sh", false);
  call(K::kFileOpen, 7, "sh", false);
  call(K::kFileOpen, 8, "other", false);  // another process: its own sequence
  auto v = *call(K::kNetConnect, 7, "sh", true);
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_TRUE(v->anomalous);
  EXPECT_EQ(v->pid, 7u);
  EXPECT_EQ(m->last().first, "sh");
  EXPECT_EQ(m->last().second, (std::vector<int32_t>{kExecve, kOpenat, kConnect}));

  // An exec starts another program's sequence.
  v = *call(K::kProcessExec, 7, "curl", true);
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(v->anomalous);
  EXPECT_EQ(m->last().first, "curl");
  EXPECT_EQ(m->last().second, (std::vector<int32_t>{kExecve}));

  // Only the last 16 calls are scored.
  for (int i = 0; i < 30; ++i) call(K::kFileOpen, 7, "curl", false);
  ASSERT_TRUE(call(K::kFileOpen, 7, "curl", true)->has_value());
  EXPECT_EQ(m->last().second, std::vector<int32_t>(16, kOpenat));

  // A failing model is an error (the gate then applies the fallback); after 5 the breaker opens.
  m->set_fail(true);
  for (int i = 0; i < 5; ++i) {
    auto failed = *call(K::kNetConnect, 9, "x" + std::to_string(i), true);  // (no cache hit)
    ASSERT_FALSE(failed.has_value());
    EXPECT_EQ(failed.error().message(), "model model error");
  }
  auto refused = *call(K::kNetConnect, 9, "y", true);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message(), "model breaker open");
  EXPECT_EQ(ge.engine->breaker().opened(), 1u);

  // A call whose deadline has passed is not scored.
  const core::Event late = GateEvent(K::kNetConnect, 10, "z");
  policy::EvalInput in;
  in.event = &late;
  EXPECT_FALSE(src.Score(in, core::SystemClock::Get().MonotonicNanos() - 1).has_value());
}

// Holds a HangingModel's answers until the test lets them go (at the latest after 10 s): every
// answer a call gets while it holds them is the gate's own, however slow the machine.
class Hang {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [this] { return released_; });
    ++answered_;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int answered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return answered_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int answered_ = 0;
};

// Releases a Hang when it goes out of scope (declared after the engine: before it is destroyed).
struct ReleaseAtExit {
  std::shared_ptr<Hang> hang;
  ~ReleaseAtExit() { hang->Release(); }
};

// Answers when `hang` lets it (long past any gate deadline), otherwise as the wrapped model.
class HangingModel final : public model::Model {
 public:
  HangingModel(std::shared_ptr<const model::Model> inner, std::shared_ptr<Hang> hang)
      : inner_(std::move(inner)), hang_(std::move(hang)) {}
  const std::string& family() const override { return inner_->family(); }
  const std::string& name() const override { return inner_->name(); }
  const std::string& version() const override { return inner_->version(); }
  std::unique_ptr<model::StreamScorer> NewStream(std::string_view subject) const override {
    return inner_->NewStream(subject);
  }
  core::Result<core::Verdict> Score(const model::FeatureView& request) const override {
    hang_->Wait();
    return inner_->Score(request);
  }

 private:
  std::shared_ptr<const model::Model> inner_;
  std::shared_ptr<Hang> hang_;
};

// The deadline of the hanging-model test. The engine gives the model 4/5 of what is left of a
// call's deadline, so its own fallback (the model error that the test counts, and the miss that
// opens the breaker) comes 1/5 of the deadline before the watchdog's: 1 ms at the gates' 5 ms, a
// margin a loaded 2-core machine overruns (the watchdog then answers first, with a deadline
// fallback; wake-ups 74 ms late were seen at load 14). At 500 ms the margin is 100 ms, each of
// the five misses before the breaker opens takes about 400 ms (under the test's 1 s bound), and
// all of them about 2 s, well inside the Hang's 10 s.
constexpr int64_t kHangDeadlineNs = 500'000'000;

TEST(GateModelTest, HangingModelGetsTheRuleFallbackWithinTheDeadlineThroughTheBreaker) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  auto m = ProbeModel();
  ASSERT_NE(m, nullptr);
  auto hang = std::make_shared<Hang>();
  GateEngine ge(std::make_shared<HangingModel>(m, hang));
  ReleaseAtExit release{hang};
  ASSERT_NE(ge.source, nullptr);
  Listener target;
  policy::RuleSet rules = MustLoad(ModelRules(target.port(), "/nonexistent"));
  constexpr int kCalls = 12;
  enforce::GateStats stats;
  std::string out;
  // The fallback records (the watchdog's thread writes some): of all calls, and of the connects.
  std::mutex mu;
  int fallbacks = 0, connect_fallbacks = 0, connect_model_fallbacks = 0;
  RunUnderSeccomp(
      rules, enforce::GateMode::kEnforce,
      "connect 127.0.0.1 " + std::to_string(target.port()) + " " + std::to_string(kCalls),
      ge.source.get(), &stats, &out, kHangDeadlineNs, [&](const enforce::GateRecord& r) {
        if (r.kind != enforce::GateRecord::Kind::kFallback) return;
        std::lock_guard<std::mutex> lock(mu);
        ++fallbacks;
        if (r.event->kind != core::EventKind::kNetConnect) return;
        ++connect_fallbacks;
        if (r.reason == enforce::FallbackReason::kModelError) ++connect_model_fallbacks;
      });
  // Every connect got the rule's fallback (deny), decided by the gate before the deadline: the
  // engine gave up at its budget, then (after 5 misses) the open breaker answered at once.
  SCOPED_TRACE("gate: decisions " + std::to_string(stats.decisions) + ", fallbacks " +
               std::to_string(stats.fallbacks) + ", model_fallbacks " +
               std::to_string(stats.model_fallbacks) + ", deadline_fallbacks " +
               std::to_string(stats.deadline_fallbacks) + ", denied " +
               std::to_string(stats.denied) + ", late " + std::to_string(stats.late) +
               "; engine: breaker opened " + std::to_string(ge.engine->breaker().opened()) +
               ", breaker-open fallbacks " +
               std::to_string(ge.engine->fallbacks(model::FallbackReason::kBreakerOpen)) +
               "; probe output:\n" + out);
  std::istringstream lines(out);
  std::string line;
  int calls = 0;
  while (std::getline(lines, line)) {
    const ProbeResult r = ParseProbe(line);
    EXPECT_EQ(r.err, EPERM) << line;
    // Answered without the model, long before it could have answered (10 s): slack for the
    // watchdog's wake-up on a loaded machine (74 ms seen at load 14).
    EXPECT_LT(r.ns, 1'000'000'000) << line;
    ++calls;
  }
  EXPECT_EQ(calls, kCalls) << out;
  EXPECT_EQ(hang->answered(), 0);
  // One fallback per connect, counted and recorded once. (The shell's and the probe's other
  // calls are decided too, with the same deadline: on a loaded machine one may get the
  // gate's own fallback, allow, at its deadline; that is counted and recorded as well.)
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(connect_fallbacks, kCalls);
  EXPECT_EQ(stats.fallbacks, static_cast<uint64_t>(fallbacks));
  EXPECT_EQ(stats.model_fallbacks, static_cast<uint64_t>(connect_model_fallbacks));
  EXPECT_GE(stats.model_fallbacks, static_cast<uint64_t>(kCalls - 5));
  EXPECT_EQ(stats.denied, static_cast<uint64_t>(kCalls));
  EXPECT_GE(ge.engine->breaker().opened(), 1u);
  EXPECT_GE(ge.engine->fallbacks(model::FallbackReason::kBreakerOpen), 1u);
}

// One call whose decision the watchdog overtook at the deadline, through the wiring the gates
// use (GateDeciderAdapter between a GateWatchdog and a DecisionGate): the call gets the
// watchdog's fallback, and stats(), the Prometheus counters and the audit records hold that
// answer alone: one fallback, the deadline's (not a model error besides), and none of the
// discarded decision's records (its deny or its alerts).
constexpr const char* kModelFallbackRules = R"(
- rule: Anomalous connect
  desc: d
  condition: evt.type = connect and fd.sport = 6 and ml.anomalous = true
  output: "anomalous"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: deny}
- rule: Note port 6
  desc: d
  condition: evt.type = connect and fd.sport = 6
  output: "port 6"
  priority: NOTICE
)";

// A held connect to 127.0.0.1:`port` by this process, as the seccomp gate hands it over.
sensor::GateCall ConnectCall(uint16_t port) {
  sensor::GateCall call;
  call.event.source = core::EventSource::kSeccomp;
  call.event.kind = core::EventKind::kNetConnect;
  call.event.proc.pid = static_cast<uint32_t>(getpid());
  call.event.proc.tid = call.event.proc.pid;
  call.event.net.daddr = "127.0.0.1";
  call.event.net.dport = port;
  return call;
}

// Passes everything on to `inner` (the decider it wraps); subclasses change Decide.
class WrappingDecider : public sensor::GateDecider {
 public:
  explicit WrappingDecider(sensor::GateDecider* inner) : inner_(inner) {}
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* c) override {
    return inner_->Decide(call, c);
  }
  void OnFallback(const sensor::GateCall& call, sensor::GateAnswer answer,
                  sensor::GateFallbackCause cause) override {
    inner_->OnFallback(call, answer, cause);
  }
  void Late(const sensor::GateCall& call, sensor::GateAnswer decided) override {
    inner_->Late(call, decided);
  }
  void Answered(const sensor::GateCall& call, sensor::GateAnswer answer) override {
    inner_->Answered(call, answer);
  }
  sensor::GateAnswer UndecidedAnswer(sensor::GateAnswer gate_fallback) override {
    return inner_->UndecidedAnswer(gate_fallback);
  }

 protected:
  sensor::GateDecider* inner_;
};

// `inner`, with `after_decide` run between its decision and the watchdog's Finish.
class HeldDecider final : public WrappingDecider {
 public:
  HeldDecider(sensor::GateDecider* inner, std::function<void()> after_decide)
      : WrappingDecider(inner), after_decide_(std::move(after_decide)) {}
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* c) override {
    const sensor::GateAnswer a = inner_->Decide(call, c);
    after_decide_();
    return a;
  }

 private:
  std::function<void()> after_decide_;
};

class OvertakenDecision {
 public:
  // `rules` match a connect to port 6 (the model's, if any, fails at once).
  explicit OvertakenDecision(const char* rules)
      : rules_(MustLoad(rules)),
        gate_(&rules_, enforce::GateOptions{.name = "t"}, &broken_, &registry_,
              [this](const enforce::GateRecord& r) { Record(r); }),
        adapter_(&gate_),
        decider_(&adapter_,
                 [this] {
                   if (on_decided) on_decided();
                 }),
        watchdog_(
            [this](const sensor::GateCall&, uint64_t, sensor::GateAnswer a) {
              std::lock_guard<std::mutex> lock(mu_);
              sent_.push_back(a);
            },
            &decider_),
        call_(ConnectCall(6)) {}

  // Called (on the deciding thread) when the decision is made, before the watchdog is told.
  std::function<void()> on_decided;

  // Decides the call with its deadline `deadline_ns` from now; true when the decision was sent.
  // (The watchdog's thread was started with the fixture, with the scheduling it had then.)
  bool Decide(int64_t deadline_ns) {
    sensor::CallControl control(core::SystemClock::Get().MonotonicNanos() + deadline_ns,
                                sensor::GateAnswer::kAllow);
    sensor::GateAnswer a = sensor::GateAnswer::kAllow;
    return watchdog_.Decide(call_, 1, &control, &a);
  }

  // Waits (up to 10 s) for the watchdog's deadline fallback to be recorded.
  void WaitForTheDeadlineRecord() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [this] {
      return std::count(reasons_.begin(), reasons_.end(), enforce::FallbackReason::kDeadline) > 0;
    });
  }

  // What the call got (the watchdog's `answer`) and what was counted and recorded of it.
  void ExpectOneDeadlineFallback(bool sent_by_decider, sensor::GateAnswer answer) {
    EXPECT_FALSE(sent_by_decider);
    const bool deny = answer == sensor::GateAnswer::kDeny;
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(sent_, std::vector<sensor::GateAnswer>{answer});
    EXPECT_EQ(reasons_, std::vector<enforce::FallbackReason>{enforce::FallbackReason::kDeadline});
    EXPECT_EQ(actions_, std::vector<core::Action>{deny ? core::Action::kDeny
                                                       : core::Action::kAllow});
    EXPECT_EQ(decision_records_, 0);
    const enforce::GateStats s = gate_.stats();
    EXPECT_EQ(s.fallbacks, 1u);
    EXPECT_EQ(s.deadline_fallbacks, 1u);
    EXPECT_EQ(s.model_fallbacks, 0u);
    EXPECT_EQ(s.denied, deny ? 1u : 0u);
    const std::string text = registry_.ExpositionText();
    EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"t\",reason=\"deadline\"} 1"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"t\",reason=\"model_error\"} 0"),
              std::string::npos)
        << text;
    // The call is counted once, in the outcome of the fallback's answer; the discarded decision
    // as late (once), and as no outcome and no alert.
    EXPECT_NE(text.find(std::string("vigil_gate_decisions_total{gate=\"t\",outcome=\"deny\"} ") +
                        (deny ? "1" : "0")),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(std::string("vigil_gate_decisions_total{gate=\"t\",outcome=\"allow\"} ") +
                        (deny ? "0" : "1")),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("vigil_gate_alerts_total{gate=\"t\"} 0"), std::string::npos) << text;
    EXPECT_EQ(s.late, 1u);
    EXPECT_EQ(s.alerts, 0u);
    EXPECT_NE(text.find("vigil_gate_late_decisions_total{gate=\"t\"} 1"), std::string::npos)
        << text;
  }

 private:
  class Broken final : public enforce::VerdictSource {
   public:
    core::Result<core::Verdict> Score(const policy::EvalInput&, int64_t) override {
      return core::Unavailable("model down");
    }
  };

  void Record(const enforce::GateRecord& r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (r.kind == enforce::GateRecord::Kind::kFallback) {
        reasons_.push_back(r.reason);
        actions_.push_back(r.decision.action);
      } else {
        ++decision_records_;
      }
    }
    cv_.notify_all();
  }

  policy::RuleSet rules_;
  Broken broken_;
  core::Registry registry_;
  enforce::DecisionGate gate_;
  app::GateDeciderAdapter adapter_;
  HeldDecider decider_;  // the adapter, with on_decided run after its decision
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<sensor::GateAnswer> sent_;          // by the watchdog
  std::vector<enforce::FallbackReason> reasons_;  // of the fallback records
  std::vector<core::Action> actions_;             // of the fallback records
  int decision_records_ = 0;                      // deny and alert records
  sensor::GateWatchdog watchdog_;                 // last: its thread goes first
  sensor::GateCall call_;
};

// The watchdog's thread answers while the decision (a model fallback) is still under way.
TEST(GateAccountingTest, AModelFallbackTheWatchdogOvertookCountsAndRecordsOneFallback) {
  OvertakenDecision t(kModelFallbackRules);
  t.on_decided = [&t] { t.WaitForTheDeadlineRecord(); };
  t.ExpectOneDeadlineFallback(t.Decide(100'000'000), sensor::GateAnswer::kDeny);
}

// The decision finishes 1 ms past the deadline before the watchdog's thread could wake: the
// deciding thread at SCHED_FIFO and the watchdog's on one CPU (GateWatchdog::Finish answers).
TEST(GateAccountingTest, AModelFallbackPastTheDeadlineCountsAndRecordsOneFallback) {
  testing::ThreadScheduling saved;
  ASSERT_TRUE(saved.ok());
  ASSERT_TRUE(saved.PinToOneCpu());
  OvertakenDecision t(kModelFallbackRules);
  constexpr int64_t kDeadline = 2'000'000;
  const int64_t start = core::SystemClock::Get().MonotonicNanos();
  t.on_decided = [start] {
    while (core::SystemClock::Get().MonotonicNanos() < start + kDeadline + 1'000'000) {
    }  // busy: the watchdog's thread gets no CPU
  };
  if (!testing::ThreadScheduling::RaiseToFifo()) {
    GTEST_SKIP() << "needs SCHED_FIFO (root) to keep the watchdog's thread off the CPU";
  }
  const bool sent = t.Decide(kDeadline);
  testing::ThreadScheduling::Lower();
  t.ExpectOneDeadlineFallback(sent, sensor::GateAnswer::kDeny);
}

// A deny rule's decision (with an alert) that the watchdog's allow fallback overtook: the audit
// log holds the allow fallback alone, no deny record and no alert, and the outcome counter no
// deny, though the decision denied.
TEST(GateAccountingTest, ALateDenyOvertakenByAnAllowFallbackLeavesOnlyTheFallbackRecord) {
  OvertakenDecision t(R"(
- rule: No port 6
  desc: d
  condition: evt.type = connect and fd.sport = 6
  output: "port 6"
  priority: WARNING
  action: {type: deny, mode: enforce}
- rule: Note port 6
  desc: d
  condition: evt.type = connect and fd.sport = 6
  output: "port 6"
  priority: NOTICE
)");
  t.on_decided = [&t] { t.WaitForTheDeadlineRecord(); };
  t.ExpectOneDeadlineFallback(t.Decide(5'000'000), sensor::GateAnswer::kAllow);
}

// A policy reload while a decision is under way: the decision finishes with the rules it
// started with (enforce/gate.h), and so does the watchdog's fallback that overtakes it, armed
// from those rules: its record carries their version, not the reloaded one's.
TEST(GateAccountingTest, ADeadlineFallbackDuringAReloadCarriesTheVersionItsDecisionStartedWith) {
  const char* kRules = R"(
- rule: No port 6
  desc: d
  condition: evt.type = connect and fd.sport = 6
  output: "port 6"
  priority: WARNING
  action: {type: deny, mode: enforce}
)";
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> versions;  // of the fallback records
  enforce::DecisionGate gate(
      enforce::GateRules{std::make_shared<const policy::RuleSet>(MustLoad(kRules)), "v1"},
      enforce::GateOptions{.name = "t"}, nullptr, nullptr, [&](const enforce::GateRecord& r) {
        if (r.kind != enforce::GateRecord::Kind::kFallback) return;
        {
          std::lock_guard<std::mutex> lock(mu);
          versions.emplace_back(r.policy_version);
        }
        cv.notify_all();
      });
  app::GateDeciderAdapter adapter(&gate);
  HeldDecider held(&adapter, [&] {
    gate.SetRules(
        enforce::GateRules{std::make_shared<const policy::RuleSet>(MustLoad(kRules)), "v2"});
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return !versions.empty(); });
  });
  sensor::GateWatchdog watchdog([](const sensor::GateCall&, uint64_t, sensor::GateAnswer) {},
                                &held);
  const sensor::GateCall call = ConnectCall(6);
  sensor::CallControl control(core::SystemClock::Get().MonotonicNanos() + 5'000'000,
                              sensor::GateAnswer::kAllow);
  sensor::GateAnswer a = sensor::GateAnswer::kAllow;
  EXPECT_FALSE(watchdog.Decide(call, 1, &control, &a));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(versions, std::vector<std::string>{"v1"});
  EXPECT_EQ(gate.rules()->version, "v2");
}

// Every call the gate answers is counted once in vigil_gate_decisions_total{outcome}, with the
// answer it got, whoever gave it: a rule, no rule, a monitored rule, the model's fallback, the
// watchdog's fallback (overtaking a decision, which is counted as late instead), an unreadable
// call's fallback, a gate held back to monitor mode. Through the gate's wiring as `vigil run`
// uses it (GateWatchdog, GateDeciderAdapter, DecisionGate), the answers counted where the sensor
// would send them.
constexpr const char* kEveryAnswerRules = R"(
- rule: No port 9
  desc: d
  condition: evt.type = connect and fd.sport = 9
  output: "port 9"
  priority: WARNING
  action: {type: deny, mode: enforce}
- rule: Watch port 7
  desc: d
  condition: evt.type = connect and fd.sport = 7
  output: "port 7"
  priority: NOTICE
  action: {type: deny, mode: monitor}
- rule: Note port 8
  desc: d
  condition: evt.type = connect and fd.sport = 8
  output: "port 8"
  priority: NOTICE
- rule: Anomalous port 6
  desc: d
  condition: evt.type = connect and fd.sport = 6 and ml.anomalous = true
  output: "anomalous 6"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: deny}
- rule: Anomalous port 5
  desc: d
  condition: evt.type = connect and fd.sport = 5 and ml.anomalous = true
  output: "anomalous 5"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: allow}
- rule: Anomalous port 4
  desc: d
  condition: evt.type = connect and fd.sport = 4 and ml.anomalous = true
  output: "anomalous 4"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: deny}
)";

class AnswerCounting {
 public:
  AnswerCounting()
      : rules_(MustLoad(kEveryAnswerRules)),
        source_(this),
        gate_(&rules_, enforce::GateOptions{.name = "t"}, &source_, &registry_, nullptr),
        adapter_(&gate_),
        watchdog_([this](const sensor::GateCall&, uint64_t,
                         sensor::GateAnswer a) { Sent(a, /*by_watchdog=*/true); },
                  &adapter_) {}

  // A connect to `port` decided with its deadline `deadline_ns` from now; the answer sent.
  sensor::GateAnswer Call(uint16_t port, int64_t deadline_ns = 10'000'000'000) {
    const sensor::GateCall call = ConnectCall(port);
    sensor::CallControl control(core::SystemClock::Get().MonotonicNanos() + deadline_ns,
                                sensor::GateAnswer::kAllow);
    sensor::GateAnswer a = sensor::GateAnswer::kAllow;
    if (watchdog_.Decide(call, 1, &control, &a)) return Sent(a, false);
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  // A call whose arguments could not be read, answered with `a` (as the seccomp gate does).
  sensor::GateAnswer Unreadable(sensor::GateAnswer a) {
    adapter_.OnFallback(ConnectCall(1), a, sensor::GateFallbackCause::kUnreadable);
    return Sent(a, false);
  }

  enforce::DecisionGate& gate() { return gate_; }
  uint64_t Outcome(const std::string& outcome) {
    auto c = registry_.GetCounter("vigil_gate_decisions_total", "",
                                  {{"gate", "t"}, {"outcome", outcome}});
    EXPECT_TRUE(c.has_value());
    return c.has_value() ? (*c)->Value() : 0;
  }
  uint64_t sent(sensor::GateAnswer a) {
    std::lock_guard<std::mutex> lock(mu_);
    return a == sensor::GateAnswer::kDeny ? denied_ : allowed_;
  }

 private:
  // Port 6: the model fails at once. Port 5: it answers "anomalous" once the watchdog has
  // answered the call (up to 10 s). Port 4: it throws (a library's exception). Else: not
  // anomalous.
  class Source final : public enforce::VerdictSource {
   public:
    explicit Source(AnswerCounting* t) : t_(t) {}
    core::Result<core::Verdict> Score(const policy::EvalInput& in, int64_t) override {
      core::Verdict v;
      v.model_name = "test";
      if (in.event->net.dport == 6) return core::Unavailable("model down");
      if (in.event->net.dport == 4) throw std::runtime_error("the model's runtime threw");
      if (in.event->net.dport == 5) {
        std::unique_lock<std::mutex> lock(t_->mu_);
        const uint64_t before = t_->by_watchdog_seen_;
        t_->cv_.wait_for(lock, std::chrono::seconds(10), [&] { return t_->by_watchdog_ > before; });
        t_->by_watchdog_seen_ = t_->by_watchdog_;
        v.score = 1.0;
        v.anomalous = true;
      }
      return v;
    }

   private:
    AnswerCounting* t_;
  };

  sensor::GateAnswer Sent(sensor::GateAnswer a, bool by_watchdog) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++(a == sensor::GateAnswer::kDeny ? denied_ : allowed_);
      last_ = a;
      if (by_watchdog) ++by_watchdog_;
    }
    cv_.notify_all();
    return a;
  }

  policy::RuleSet rules_;
  Source source_;
  core::Registry registry_;
  enforce::DecisionGate gate_;
  app::GateDeciderAdapter adapter_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t allowed_ = 0, denied_ = 0;  // answers sent
  uint64_t by_watchdog_ = 0, by_watchdog_seen_ = 0;
  sensor::GateAnswer last_ = sensor::GateAnswer::kAllow;
  sensor::GateWatchdog watchdog_;  // last: its thread goes first
};

TEST(GateAccountingTest, EveryAnsweredCallIsCountedOnceInTheOutcomeOfItsAnswer) {
  AnswerCounting t;
  using A = sensor::GateAnswer;
  // The model answers "anomalous" (deny) only after the 2 ms deadline: the watchdog's allow
  // fallback is the call's answer, the deny decision is late.
  EXPECT_EQ(t.Call(5, 2'000'000), A::kAllow);
  EXPECT_EQ(t.Call(9), A::kDeny);    // an enforced deny rule
  EXPECT_EQ(t.Call(80), A::kAllow);  // no rule
  EXPECT_EQ(t.Call(7), A::kAllow);   // a monitored deny rule (would have denied)
  EXPECT_EQ(t.Call(8), A::kAllow);   // an alert
  EXPECT_EQ(t.Call(6), A::kDeny);    // the model failed: the rule's fallback, deny
  EXPECT_EQ(t.Unreadable(A::kDeny), A::kDeny);
  // The decision throws after the rule's fallback (deny) was set: that fallback, at once.
  EXPECT_EQ(t.Call(4), A::kDeny);
  t.gate().SetEnforcementAllowed(false);  // the agent's gate held back to monitor mode
  EXPECT_EQ(t.Call(9), A::kAllow);

  const uint64_t allowed = t.sent(A::kAllow), denied = t.sent(A::kDeny);
  EXPECT_EQ(allowed, 5u);
  EXPECT_EQ(denied, 4u);
  EXPECT_EQ(t.Outcome("allow"), allowed);
  EXPECT_EQ(t.Outcome("deny"), denied);
  EXPECT_EQ(t.Outcome("allow") + t.Outcome("deny"), 9u);  // the calls answered
  const enforce::GateStats s = t.gate().stats();
  EXPECT_EQ(s.denied, denied);
  EXPECT_EQ(s.fallbacks, 4u);  // model error, deadline, unreadable, error
  EXPECT_EQ(s.model_fallbacks, 1u);
  EXPECT_EQ(s.deadline_fallbacks, 1u);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.would_deny, 2u);  // port 7, and port 9 held back
  EXPECT_EQ(s.alerts, 1u);
}

// A tmpfs mounted for the test: the fanotify gate marks a directory on it, never a mount that
// holds the test's or the system's binaries.
class TmpfsDir {
 public:
  TmpfsDir() : dir_(TempDir("fanotify")) {
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=16m") == 0;
    if (mounted_) {
      fs::create_directories(dir_ / "bin");
      fs::copy_file("/bin/true", dir_ / "bin" / "prog");
      fs::permissions(dir_ / "bin" / "prog", fs::perms::owner_all | fs::perms::group_exec);
      std::ofstream(dir_ / "bin" / "data.txt") << "d";
    }
  }
  ~TmpfsDir() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }
  bool mounted() const { return mounted_; }
  fs::path bin() const { return dir_ / "bin"; }

 private:
  fs::path dir_;
  bool mounted_ = false;
};

// Runs the probe (outside the watched directory) and parses its output.
ProbeResult Probe(const std::string& args) {
  const fs::path out = fs::temp_directory_path() / ("vigil-probe-" + std::to_string(getpid()));
  const std::string cmd = std::string(VIGIL_GATE_PROBE) + " " + args + " >" + out.string();
  (void)!std::system(cmd.c_str());
  const ProbeResult r = ParseProbe(ReadFile(out));
  fs::remove(out);
  return r;
}

std::string ExecRules(const fs::path& bin) {
  return R"(
- rule: Program from the watched directory
  desc: d
  condition: evt.type = execve and proc.exepath startswith )" + bin.string() + R"(/
  output: "exec %proc.exepath"
  priority: WARNING
  action: {type: deny, mode: enforce}
- rule: Data file
  desc: d
  condition: evt.type = openat and fd.name = )" + (bin / "data.txt").string() + R"(
  output: "open %fd.name"
  priority: WARNING
  action: {type: deny, mode: enforce}
)";
}

struct FanotifyRun {
  ProbeResult exec, open;
  enforce::GateStats stats;
  sensor::FanotifyGateStats sensor;
};

FanotifyRun RunFanotify(const TmpfsDir& t, const policy::RuleSet& rules, enforce::GateMode mode,
                        enforce::VerdictSource* source, int64_t deadline_ns = kDecideDeadlineNs) {
  FanotifyRun run;
  enforce::DecisionGate gate(
      &rules, enforce::GateOptions{.name = "fanotify", .mode = mode, .deadline_ns = deadline_ns},
      source, nullptr, nullptr);
  app::GateDeciderAdapter decider(&gate);
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.open = true;
  o.deadline_ns = deadline_ns;
  auto g = sensor::FanotifyGate::Start(o, &decider);
  EXPECT_TRUE(g.has_value()) << g.error().message();
  if (!g.has_value()) return run;
  run.exec = Probe("exec " + (t.bin() / "prog").string());
  run.open = Probe("open " + (t.bin() / "data.txt").string());
  (*g)->Stop();
  run.stats = gate.stats();
  run.sensor = (*g)->stats();
  return run;
}

TEST(FanotifyGateTest, ExecInWatchedDirectoryDeniedInEnforceAllowedInMonitor) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (fanotify permission events, mount)";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  policy::RuleSet rules = MustLoad(ExecRules(t.bin()));

  const FanotifyRun enforce = RunFanotify(t, rules, enforce::GateMode::kEnforce, nullptr);
  EXPECT_EQ(enforce.exec.err, EPERM);
  EXPECT_EQ(enforce.open.err, EPERM);
  EXPECT_EQ(enforce.stats.denied, 2u);
  EXPECT_EQ(enforce.sensor.denied, 2u);

  const FanotifyRun monitor = RunFanotify(t, rules, enforce::GateMode::kMonitor, nullptr);
  EXPECT_EQ(monitor.exec.err, 0);
  EXPECT_EQ(monitor.open.err, 0);
  EXPECT_EQ(monitor.stats.would_deny, 2u);
  EXPECT_EQ(monitor.stats.denied, 0u);
}

TEST(FanotifyGateTest, SlowDecisionGetsTheRuleFallbackByTheDeadline) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  policy::RuleSet rules = MustLoad(R"(
- rule: Anomalous program
  desc: d
  condition: evt.type = execve and proc.exepath startswith )" + t.bin().string() +
                                   R"(/ and ml.anomalous = true
  output: "x"
  priority: WARNING
  action: {type: deny, mode: enforce, fallback: deny}
)");
  SlowSource slow;
  const FanotifyRun run =
      RunFanotify(t, rules, enforce::GateMode::kEnforce, &slow, kSlowDeadlineNs);
  EXPECT_EQ(run.exec.err, EPERM);
  EXPECT_GE(run.exec.ns, kSlowDeadlineNs);
  EXPECT_LT(run.exec.ns, 1'000'000'000);  // without the model (see SlowSource)
  EXPECT_EQ(run.stats.deadline_fallbacks, 1u);
  EXPECT_EQ(run.sensor.deadline_answers, 1u);
  EXPECT_EQ(run.open.err, 0);  // no rule on that file waits for the model
}

// While a decision is stuck past its deadline, the watchdog allows the events queued behind it
// without deciding them: each is an answered call, counted and recorded once as a fallback
// (reason "queued", outcome allow) like the stuck call's own deadline fallback.
TEST(FanotifyGateTest, EventsAllowedBehindAStuckDecisionAreCountedAsFallbacks) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  policy::RuleSet rules = MustLoad(R"(
- rule: Another program
  desc: d
  condition: evt.type = execve and proc.exepath = /nonexistent/prog
  output: "x"
  priority: WARNING
  action: {type: deny, mode: enforce}
)");
  core::Registry registry;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<enforce::FallbackReason> recorded;
  enforce::DecisionGate gate(&rules, enforce::GateOptions{.name = "fanotify"}, nullptr, &registry,
                             [&](const enforce::GateRecord& r) {
                               std::lock_guard<std::mutex> lock(mu);
                               if (r.kind == enforce::GateRecord::Kind::kFallback) {
                                 recorded.push_back(r.reason);
                               }
                             });
  app::GateDeciderAdapter adapter(&gate);
  // The first decision waits until released (up to 20 s); the others are the adapter's.
  bool entered = false, released = false;  // guarded by mu
  HeldDecider stuck(&adapter, [&] {
    std::unique_lock<std::mutex> lock(mu);
    if (entered) return;
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return released; });
  });
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.deadline_ns = 50'000'000;
  auto g = sensor::FanotifyGate::Start(o, &stuck);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const std::string prog = (t.bin() / "prog").string();
  // The first exec's decision sticks; the watchdog answers it (allow) at its deadline.
  std::thread first([&] { (void)!std::system(prog.c_str()); });
  bool stuck_in_time = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    stuck_in_time = cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered; });
  }
  // Queued behind it: allowed by the watchdog without a decision.
  ProbeResult queued;
  if (stuck_in_time) queued = Probe("exec " + prog);
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  first.join();
  (*g)->Stop();
  ASSERT_TRUE(stuck_in_time) << "the first exec was not held within 10 s";
  EXPECT_EQ(queued.err, 0);
  EXPECT_EQ((*g)->stats().stuck_allowed, 1u);
  const enforce::GateStats s = gate.stats();
  EXPECT_EQ(s.fallbacks, 2u);  // the stuck call's (deadline) and the queued one's
  EXPECT_EQ(s.deadline_fallbacks, 1u);
  EXPECT_EQ(s.late, 1u);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(recorded, (std::vector<enforce::FallbackReason>{enforce::FallbackReason::kDeadline,
                                                              enforce::FallbackReason::kQueued}));
  }
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"fanotify\",reason=\"queued\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_gate_decisions_total{gate=\"fanotify\",outcome=\"allow\"} 2"),
            std::string::npos)
      << text;
}

// The stop of a gate with calls still held: `gate_probe leave` starts two children, each
// opening a file of its own, and exits once both are asleep in their open, held by the gate,
// and the gate is deciding one of them (HoldUntilStopping creates OUT.go).
// The first call is decided only once the gate is stopping (HoldUntilStopping); the second is
// then pending (seccomp: queued in the kernel; fanotify: read with the first or queued), and
// must be answered as the gate stops, with its fallback (deny here), counted and recorded as a
// fallback of reason "stopping", not left to the kernel (seccomp: ENOSYS once the listener is
// closed; fanotify: allowed, uncounted, when the group is closed).

// `inner`, except that a call to a path starting with `held` is decided only once `stopping()`
// (up to 20 s); entering such a decision creates `go` (gate_probe leave exits once it exists).
class HoldUntilStopping final : public WrappingDecider {
 public:
  HoldUntilStopping(sensor::GateDecider* inner, std::string held, std::function<bool()> stopping,
                    fs::path go)
      : WrappingDecider(inner),
        held_(std::move(held)),
        stopping_(std::move(stopping)),
        go_(std::move(go)) {}
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* c) override {
    if (call.event.path.rfind(held_, 0) == 0) {
      std::ofstream(go_) << "go";
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!stopping_() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    return inner_->Decide(call, c);
  }

 private:
  const std::string held_;
  const std::function<bool()> stopping_;
  const fs::path go_;
};

// The errno each child of `gate_probe leave OUT ...` saw (OUT.0 ... OUT.n-1), sorted; -1 for a
// child that wrote nothing within 10 s.
std::vector<int> LeftChildrenResults(const fs::path& out, int n) {
  std::vector<int> errs;
  for (int i = 0; i < n; ++i) {
    const fs::path file = out.string() + "." + std::to_string(i);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::string text;
    while ((text = ReadFile(file)).find('\n') == std::string::npos &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    int err = -1;
    std::sscanf(text.c_str(), "errno=%d", &err);
    errs.push_back(err);
  }
  std::sort(errs.begin(), errs.end());
  return errs;
}

// What the two stop tests share: a gate with no rules, in enforce mode with the fallback deny and
// a deadline (30 s) that no watchdog answer can come before the stop.
struct StoppingGate {
  static constexpr int64_t kDeadline = 30'000'000'000;
  explicit StoppingGate(const std::string& name)
      : gate(&rules,
             enforce::GateOptions{.name = name, .deadline_ns = kDeadline, .default_deny = true},
             nullptr, &registry, [this](const enforce::GateRecord& r) {
               std::lock_guard<std::mutex> lock(mu);
               if (r.kind == enforce::GateRecord::Kind::kFallback) {
                 fallbacks.push_back(r.reason);
                 fallback_paths.push_back(r.event->path);
               }
             }),
        adapter(&gate) {}

  uint64_t Outcome(const std::string& outcome) {
    auto c = registry.GetCounter("vigil_gate_decisions_total", "",
                                 {{"gate", gate.options().name}, {"outcome", outcome}});
    return c.has_value() ? (*c)->Value() : 0;
  }

  // One call, `path`, got the stopping fallback (deny): counted once as a fallback and in the
  // outcome deny, recorded as a fallback of reason "stopping"; `answered` calls in all.
  void ExpectOneStoppingDeny(const std::string& held_prefix, uint64_t answered) {
    const enforce::GateStats s = gate.stats();
    EXPECT_EQ(s.fallbacks, 1u);
    EXPECT_EQ(s.stopping_fallbacks, 1u);
    EXPECT_EQ(s.deadline_fallbacks, 0u);
    EXPECT_EQ(s.late, 0u);
    EXPECT_EQ(s.denied, 1u);
    EXPECT_EQ(Outcome("deny"), 1u);
    EXPECT_EQ(Outcome("allow") + Outcome("deny"), answered);
    const std::string text = registry.ExpositionText();
    EXPECT_NE(text.find("vigil_gate_fallbacks_total{gate=\"" + gate.options().name +
                        "\",reason=\"stopping\"} 1"),
              std::string::npos)
        << text;
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(fallbacks, std::vector<enforce::FallbackReason>{enforce::FallbackReason::kStopping});
    ASSERT_EQ(fallback_paths.size(), 1u);
    EXPECT_EQ(fallback_paths[0].rfind(held_prefix, 0), 0u) << fallback_paths[0];
  }

  policy::RuleSet rules;
  core::Registry registry;
  std::mutex mu;
  std::vector<enforce::FallbackReason> fallbacks;  // of the fallback records
  std::vector<std::string> fallback_paths;
  enforce::DecisionGate gate;
  app::GateDeciderAdapter adapter;
};

TEST(SeccompGateTest, CallsPendingWhenTheProgramExitsAreAnsweredWithTheFallbackAndCounted) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (seccomp user notification, /proc/PID/syscall)";
  const fs::path dir = TempDir("seccomp-stop");
  const std::string held = (dir / "held-").string();
  for (const char* f : {"held-0", "held-1"}) std::ofstream(dir / f) << "x";
  StoppingGate t("seccomp");
  std::atomic<sensor::SeccompGate*> running{nullptr};
  HoldUntilStopping decider(
      &t.adapter, held,
      [&running] {
        sensor::SeccompGate* g = running.load();
        return g != nullptr && g->stopping();
      },
      dir / "out.go");
  sensor::SeccompGateOptions o;
  o.argv = {VIGIL_GATE_PROBE, "leave", (dir / "out").string(), held + "0", held + "1"};
  o.deadline_ns = StoppingGate::kDeadline;
  o.default_fallback = sensor::GateAnswer::kDeny;
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  running.store(g->get());
  const sensor::SeccompExit exit = (*g)->Wait();
  EXPECT_EQ(exit.exit_code, 0) << "the children were not both held within 10 s";
  // The first child's open was decided (allowed) as the gate stopped, the second's got the
  // fallback; neither ENOSYS.
  EXPECT_EQ(LeftChildrenResults(dir / "out", 2), (std::vector<int>{0, EPERM}));
  const sensor::SeccompGateStats ss = (*g)->stats();
  EXPECT_EQ(ss.stop_answers, 1u);
  EXPECT_EQ(ss.denied, 1u);
  EXPECT_EQ(ss.vanished, 0u);
  EXPECT_EQ(ss.calls, ss.allowed + ss.denied);
  t.ExpectOneStoppingDeny(held, ss.allowed + ss.denied);
  g->reset();
  fs::remove_all(dir);
}

// Once Wait() has returned nothing reads the listener any more: a call made then by a process the
// program left running must fail with ENOSYS at once (the kernel's answer when no one listens),
// not wait, unanswered, until the gate is destroyed.
TEST(SeccompGateTest, ACallMadeAfterTheGateStoppedFailsAtOnceInsteadOfWaitingForItsDestruction) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (seccomp user notification)";
  const fs::path dir = TempDir("seccomp-after");
  const fs::path file = dir / "after";
  std::ofstream(file) << "x";
  StoppingGate t("seccomp");
  // left-running subshell -> test, test -> subshell, subshell -> program (set up: the program
  // may exit, so nothing the subshell does before the open below races with the stop)
  int report[2], go[2], up[2];
  ASSERT_EQ(pipe2(report, 0), 0);
  ASSERT_EQ(pipe2(go, 0), 0);
  ASSERT_EQ(pipe2(up, 0), 0);
  fcntl(report[0], F_SETFD, FD_CLOEXEC);
  fcntl(go[1], F_SETFD, FD_CLOEXEC);
  const std::string r = std::to_string(report[1]);
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/bash", "-c",
            "( echo >&" + std::to_string(up[1]) + "; read x <&" + std::to_string(go[0]) +
                "; true <" + file.string() + " && echo ok >&" + r + " || echo failed >&" + r +
                " ) & read y <&" + std::to_string(up[0]) + "; exit 0"};
  o.deadline_ns = StoppingGate::kDeadline;
  o.default_fallback = sensor::GateAnswer::kDeny;
  auto g = sensor::SeccompGate::Launch(o, &t.adapter);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  for (int fd : {report[1], go[0], up[0], up[1]}) close(fd);  // the program holds its copies
  EXPECT_EQ((*g)->Wait().exit_code, 0);
  ASSERT_EQ(write(go[1], "1\n", 2), 2);  // the subshell opens the file now, the gate stopped
  pollfd p{report[0], POLLIN, 0};
  const int ready = poll(&p, 1, 10'000);
  std::string line;
  char buf[64];
  ssize_t n = 0;
  if (ready == 1 && (n = read(report[0], buf, sizeof buf)) > 0) {
    line.assign(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(line, "failed\n") << "the open made after the stop got no answer within 10 s";
  g->reset();  // (answers it, should it still wait)
  close(go[1]);
  close(report[0]);
  fs::remove_all(dir);
}

TEST(FanotifyGateTest, EventsHeldWhenTheGateStopsAreAnsweredWithTheFallbackAndCounted) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string held = (t.bin() / "held-").string();
  for (const char* f : {"held-0", "held-1"}) std::ofstream(t.bin() / f) << "x";
  const fs::path out_dir = TempDir("fanotify-stop");
  StoppingGate s("fanotify");
  std::atomic<sensor::FanotifyGate*> running{nullptr};
  HoldUntilStopping decider(
      &s.adapter, held,
      [&running] {
        sensor::FanotifyGate* g = running.load();
        return g != nullptr && g->stopping();
      },
      out_dir / "out.go");
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.open = true;
  o.deadline_ns = StoppingGate::kDeadline;
  o.default_fallback = sensor::GateAnswer::kDeny;
  auto g = sensor::FanotifyGate::Start(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  running.store(g->get());
  const std::string cmd = std::string(VIGIL_GATE_PROBE) + " leave " + (out_dir / "out").string() +
                          " " + held + "0 " + held + "1";
  const int rc = std::system(cmd.c_str());
  (*g)->Stop();
  EXPECT_EQ(rc, 0) << "the children were not both held within 10 s";
  EXPECT_EQ(LeftChildrenResults(out_dir / "out", 2), (std::vector<int>{0, EPERM}));
  const sensor::FanotifyGateStats fst = (*g)->stats();
  EXPECT_EQ(fst.stop_answers, 1u);
  EXPECT_EQ(fst.denied, 1u);
  EXPECT_EQ(fst.allowed, 1u);
  EXPECT_EQ(fst.calls, 2u);
  s.ExpectOneStoppingDeny(held, fst.allowed + fst.denied);
  fs::remove_all(out_dir);
}

// Three children open a file each at once; the first open's decision waits until all three are
// held (the probe exits), so the other two are queued together when the gate reads next. The
// second's decision then sticks past its deadline: the third must be allowed by the watchdog
// (queued behind a stuck decision) as the second gets its deadline fallback, not wait for the
// stuck decision in the gate thread's buffer (it read events in batches: read with the second,
// the third was out of the watchdog's reach until the stuck decision returned).
TEST(FanotifyGateTest, AnEventQueuedWithAStuckDecisionIsAllowedByTheWatchdogNotHeldBehindIt) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string held = (t.bin() / "held-").string();
  for (const char* f : {"held-0", "held-1", "held-2"}) std::ofstream(t.bin() / f) << "x";
  const fs::path out_dir = TempDir("fanotify-batch");
  const fs::path out = out_dir / "out";
  policy::RuleSet rules;
  core::Registry registry;
  constexpr int64_t kDeadline = 2'000'000'000;
  enforce::DecisionGate gate(&rules, enforce::GateOptions{.name = "fanotify", .deadline_ns = kDeadline},
                             nullptr, &registry, nullptr);
  app::GateDeciderAdapter adapter(&gate);
  std::mutex mu;
  std::condition_variable cv;
  bool probe_done = false, released = false;  // guarded by mu
  int held_calls = 0;                         // guarded by mu
  HeldDecider decider(&adapter, [&] {
    std::unique_lock<std::mutex> lock(mu);
    const int n = ++held_calls;
    if (n == 1) {  // until the three children are held
      std::ofstream(out.string() + ".go") << "go";
      cv.wait_for(lock, std::chrono::seconds(10), [&] { return probe_done; });
    } else if (n == 2) {  // stuck until released
      cv.wait_for(lock, std::chrono::seconds(20), [&] { return released; });
    }
  });
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.exec = false;
  o.open = true;
  o.deadline_ns = kDeadline;
  auto g = sensor::FanotifyGate::Start(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  int rc = -1;
  std::thread probe([&] {
    rc = std::system((std::string(VIGIL_GATE_PROBE) + " leave " + out.string() + " " + held +
                      "0 " + held + "1 " + held + "2")
                         .c_str());
    {
      std::lock_guard<std::mutex> lock(mu);
      probe_done = true;
    }
    cv.notify_all();
  });
  // Every child answered while the second's decision is still stuck: the first decided, the
  // second and third by the watchdog (its deadline fallback, and allowed as queued behind it).
  auto answered = [&] {
    int n = 0;
    for (int i = 0; i < 3; ++i) {
      if (ReadFile(out.string() + "." + std::to_string(i)).find('\n') != std::string::npos) ++n;
    }
    return n;
  };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (answered() < 3 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int answered_while_stuck = answered();
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  probe.join();
  (*g)->Stop();
  EXPECT_EQ(rc, 0) << "the children were not all held within 10 s";
  EXPECT_EQ(answered_while_stuck, 3) << "an event waited behind the stuck decision";
  EXPECT_EQ(LeftChildrenResults(out, 3), (std::vector<int>{0, 0, 0}));
  const sensor::FanotifyGateStats fst = (*g)->stats();
  EXPECT_EQ(fst.calls, 3u);
  EXPECT_EQ(fst.allowed, 3u);
  auto outcome = registry.GetCounter("vigil_gate_decisions_total", "",
                                     {{"gate", "fanotify"}, {"outcome", "allow"}});
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ((*outcome)->Value(), 3u);
  fs::remove_all(out_dir);
}

// A child process that opens `path` once released, and reports the open's errno.
class OpenerChild {
 public:
  explicit OpenerChild(const std::string& path) {
    if (pipe2(go_, O_CLOEXEC) != 0 || pipe2(result_, O_CLOEXEC) != 0) return;
    const char* p = path.c_str();
    pid_ = fork();
    if (pid_ == 0) {  // only async-signal-safe calls
      char c = 0;
      if (read(go_[0], &c, 1) != 1) _exit(1);
      const int fd = open(p, O_RDONLY | O_CLOEXEC);
      const int err = fd < 0 ? errno : 0;
      (void)!write(result_[1], &err, sizeof err);
      _exit(0);
    }
  }
  ~OpenerChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int fd : {go_[0], go_[1], result_[0], result_[1]}) {
      if (fd >= 0) close(fd);
    }
  }
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool Release() { return write(go_[1], "g", 1) == 1; }
  // The open's errno, or -1 when the child has not reported within 10 s.
  int Result() {
    pollfd p{result_[0], POLLIN, 0};
    if (poll(&p, 1, 10'000) != 1) return -1;
    int err = -1;
    if (read(result_[0], &err, sizeof err) != sizeof err) return -1;
    return err;
  }

 private:
  int go_[2] = {-1, -1};
  int result_[2] = {-1, -1};
  pid_t pid_ = -1;
};

// Whether process `pid` is in system call `nr` (/proc/PID/syscall), waiting up to 10 s for it.
bool WaitInSyscall(pid_t pid, long nr) {
  const std::string path = "/proc/" + std::to_string(pid) + "/syscall";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < give_up) {
    long got = -1;
    if (std::sscanf(ReadFile(path).c_str(), "%ld", &got) == 1 && got == nr) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// `inner`, except that the decision of a call to `stuck` blocks until Release() (the end of the
// test): a decider that hangs.
class StuckDecider final : public WrappingDecider {
 public:
  StuckDecider(sensor::GateDecider* inner, std::string stuck)
      : WrappingDecider(inner), stuck_(std::move(stuck)) {}
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* c) override {
    if (call.event.path == stuck_) {
      std::unique_lock<std::mutex> lock(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    }
    return inner_->Decide(call, c);
  }
  bool WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [this] { return entered_; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  const std::string stuck_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

// The decider hangs on one open, with another queued behind it, when the gate is stopped: Stop()
// must not wait for the decision but answer both with the stopping fallback (deny) and return.
// Before, it waited for the reader thread, which waited for the decider: forever.
TEST(FanotifyGateTest, StopAnswersWithTheFallbackAndReturnsWhileADeciderHangs) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const fs::path stuck = t.bin() / "stuck.txt", queued = t.bin() / "queued.txt";
  for (const fs::path& f : {stuck, queued}) std::ofstream(f) << "x";
  StoppingGate s("fanotify");
  StuckDecider decider(&s.adapter, stuck.string());
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.exec = false;
  o.open = true;
  o.deadline_ns = StoppingGate::kDeadline;  // no watchdog answer before the stop
  o.default_fallback = sensor::GateAnswer::kDeny;
  auto g = sensor::FanotifyGate::Start(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  OpenerChild first(stuck.string()), second(queued.string());
  ASSERT_TRUE(first.started() && second.started());
  ASSERT_TRUE(first.Release());
  ASSERT_TRUE(decider.WaitEntered()) << "the first open was not decided within 10 s";
  ASSERT_TRUE(second.Release());
  ASSERT_TRUE(WaitInSyscall(second.pid(), SYS_openat)) << "the second open was not held";

  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
  std::thread stopper([&] {
    (*g)->Stop();
    std::lock_guard<std::mutex> lock(mu);
    stopped = true;
    cv.notify_all();
  });
  bool returned;
  {
    std::unique_lock<std::mutex> lock(mu);
    returned = cv.wait_for(lock, std::chrono::seconds(10), [&] { return stopped; });
  }
  EXPECT_TRUE(returned) << "Stop() waited 10 s for a decider that hangs";
  EXPECT_EQ(first.Result(), EPERM);
  EXPECT_EQ(second.Result(), EPERM);
  const sensor::FanotifyGateStats fst = (*g)->stats();
  decider.Release();
  stopper.join();
  if (!returned) return;
  EXPECT_EQ(fst.stuck_at_stop, 1u);
  EXPECT_EQ(fst.denied, 2u);
  EXPECT_EQ(fst.allowed, 0u);
  EXPECT_EQ(fst.stop_answers, 2u);
  EXPECT_EQ(fst.deadline_answers, 0u);
  g->reset();  // waits for the released decision, discarded as late
  const enforce::GateStats gs = s.gate.stats();
  EXPECT_EQ(gs.fallbacks, 2u);
  EXPECT_EQ(gs.stopping_fallbacks, 2u);
  EXPECT_EQ(gs.denied, 2u);
  EXPECT_EQ(gs.late, 1u);
  EXPECT_EQ(s.Outcome("deny"), 2u);
  EXPECT_EQ(s.Outcome("allow"), 0u);
}

// The kernel takes an open event off its queue but cannot hand it to the gate (the gate's
// process has no file descriptor left: EMFILE) and denies it. The gate counts it and reads on:
// the next event is decided (before, its reader thread ended, and every later event on the
// watched files waited, unanswered, until the gate stopped).
TEST(FanotifyGateTest, AnEventTheKernelCannotHandOverIsCountedAndTheGateReadsOn) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  policy::RuleSet rules;
  enforce::DecisionGate gate(&rules, enforce::GateOptions{.name = "fanotify"}, nullptr, nullptr,
                             nullptr);
  app::GateDeciderAdapter adapter(&gate);
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.exec = false;
  o.open = true;
  o.deadline_ns = kDecideDeadlineNs;
  auto g = sensor::FanotifyGate::Start(o, &adapter);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const std::string data = (t.bin() / "data.txt").string();
  OpenerChild first(data), second(data);  // forked before the limit is lowered
  ASSERT_TRUE(first.started() && second.started());
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // No new file descriptor in this process, the gate's included: a limit of 2 with 0 and 1 open
  // (and not below 2: poll(2) refuses more descriptors than the limit, and the gate polls two).
  for (int fd : {0, 1}) {
    if (fcntl(fd, F_GETFD) < 0) {
      ASSERT_EQ(open("/dev/null", O_RDWR), fd);
    }
  }
  rlimit none = saved;
  none.rlim_cur = 2;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
  const bool released = first.Release();
  const int first_err = first.Result();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(released);
  ASSERT_TRUE(second.Release());
  const int second_err = second.Result();
  (*g)->Stop();
  EXPECT_EQ(first_err, EPERM);  // denied by the kernel
  EXPECT_EQ(second_err, 0) << "the gate stopped reading after the failed read";
  const sensor::FanotifyGateStats fst = (*g)->stats();
  EXPECT_EQ(fst.read_errors, 1u);
  EXPECT_EQ(fst.calls, 1u);
  EXPECT_EQ(fst.allowed, 1u);
  EXPECT_EQ(gate.stats().decisions, 1u);
}

// A decider that takes `delay` per call and allows it.
class DelayDecider final : public sensor::GateDecider {
 public:
  explicit DelayDecider(std::chrono::microseconds delay) : delay_(delay) {}
  sensor::GateAnswer Decide(const sensor::GateCall&, sensor::CallControl*) override {
    std::this_thread::sleep_for(delay_);
    decided_.fetch_add(1);
    return sensor::GateAnswer::kAllow;
  }
  void OnFallback(const sensor::GateCall&, sensor::GateAnswer, sensor::GateFallbackCause) override {}
  void Late(const sensor::GateCall&, sensor::GateAnswer) override {}
  uint64_t decided() const { return decided_.load(); }

 private:
  const std::chrono::microseconds delay_;
  std::atomic<uint64_t> decided_{0};
};

constexpr auto kStageDelay = std::chrono::microseconds(3000);

// Every decided call is timed once in each stage, and the decide stage holds the decider's time
// (the sums are exact: each call took at least kStageDelay there, and receive/answer did not).
void ExpectStagesOf(const sensor::GateStageTimes& times, uint64_t decided) {
  ASSERT_TRUE(times.enabled());
  using S = sensor::GateStageTimes;
  const auto receive = times.histogram(S::kReceive)->Read();
  const auto decide = times.histogram(S::kDecide)->Read();
  const auto answer = times.histogram(S::kAnswer)->Read();
  EXPECT_EQ(receive.count, decided);
  EXPECT_EQ(decide.count, decided);
  EXPECT_EQ(answer.count, decided);
  const double floor_s = static_cast<double>(decided) * 3e-3;
  EXPECT_GE(decide.sum, floor_s);
  EXPECT_LT(receive.sum, decide.sum);
  EXPECT_LT(answer.sum, decide.sum);
  const nlohmann::json j = app::GateStageSummary(times);
  for (const char* stage : {"receive", "decide", "answer"}) {
    ASSERT_TRUE(j.contains(stage)) << j.dump();
    EXPECT_EQ(j[stage]["calls"].get<uint64_t>(), decided);
    EXPECT_LE(j[stage]["p50_us"].get<double>(), j[stage]["p99_us"].get<double>());
  }
  EXPECT_GE(j["decide"]["p99_us"].get<double>(), 2150.0);  // the bucket holding 3 ms starts there
}

TEST(SeccompGateTest, StageTimesTimeEveryDecidedCallOnceAndHoldTheDecidersTime) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (seccomp user notification, /proc/PID/mem)";
  Listener listener;
  core::Registry registry;
  DelayDecider decider(kStageDelay);
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c",
            std::string(VIGIL_GATE_PROBE) + " connect 127.0.0.1 " +
                std::to_string(listener.port()) + " 20 >/dev/null"};
  o.deadline_ns = 10 * kDeadlineNs * 20;  // the decider's sleep must never reach it
  o.metrics = &registry;
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const sensor::SeccompExit exit = (*g)->Wait();
  EXPECT_EQ(exit.exit_code, 0);
  const sensor::SeccompGateStats st = (*g)->stats();
  EXPECT_EQ(st.deadline_answers, 0u);
  EXPECT_EQ(st.read_failures, 0u);
  EXPECT_GE(decider.decided(), 22u);  // the shell's and the probe's execs, 20 connects, ...
  EXPECT_EQ(st.calls, decider.decided());
  ExpectStagesOf((*g)->stage_times(), decider.decided());
  EXPECT_NE(registry.ExpositionText().find("vigil_gate_stage_seconds_count{gate=\"seccomp\",stage=\"decide\"}"),
            std::string::npos);
}

TEST(SeccompGateTest, WithoutARegistryNothingIsTimed) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (seccomp user notification, /proc/PID/mem)";
  DelayDecider decider(std::chrono::microseconds(0));
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/true"};
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  (*g)->Wait();
  EXPECT_FALSE((*g)->stage_times().enabled());
  EXPECT_TRUE(app::GateStageSummary((*g)->stage_times()).empty());
}

TEST(FanotifyGateTest, StageTimesTimeEveryDecidedCallOnceAndHoldTheDecidersTime) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (fanotify permission events, mount)";
  TmpfsDir t;
  if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  core::Registry registry;
  DelayDecider decider(kStageDelay);
  sensor::FanotifyGateOptions o;
  o.paths = {t.bin().string()};
  o.open = true;
  o.deadline_ns = 10 * kDeadlineNs * 20;
  o.metrics = &registry;
  o.metrics_gate = "test";
  auto g = sensor::FanotifyGate::Start(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  EXPECT_EQ(Probe("exec " + (t.bin() / "prog").string() + " 5").err, 0);
  EXPECT_EQ(Probe("open " + (t.bin() / "data.txt").string() + " 5").err, 0);
  (*g)->Stop();
  const sensor::FanotifyGateStats st = (*g)->stats();
  EXPECT_EQ(st.deadline_answers, 0u);
  EXPECT_GE(decider.decided(), 10u);
  ExpectStagesOf((*g)->stage_times(), decider.decided());
  EXPECT_NE(registry.ExpositionText().find("vigil_gate_stage_seconds_count{gate=\"test\",stage=\"answer\"}"),
            std::string::npos);
}

TEST(FanotifyGateTest, RefusesToWatchItsOwnExecutable) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  policy::RuleSet rules;
  enforce::DecisionGate gate(&rules, enforce::GateOptions{}, nullptr, nullptr, nullptr);
  app::GateDeciderAdapter decider(&gate);
  sensor::FanotifyGateOptions o;
  o.paths = {fs::read_symlink("/proc/self/exe").parent_path().string()};
  auto g = sensor::FanotifyGate::Start(o, &decider);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(g.error().message().find("own executable"), std::string::npos);
}

// A gate record's audit payload, written without a JSON tree, is the canonical JSON of the
// decision payload plus the gate's members (the audit log's verifier refuses anything else).
TEST(GateRecordPayloadTest, CanonicalWriterGivesTheDocumentedPayload) {
  core::Event connect;
  connect.kind = core::EventKind::kNetConnect;
  connect.proc.pid = 4242;
  connect.proc.comm = "curl \"x\"";
  connect.net.daddr = "127.0.0.1";
  connect.net.dport = 9;
  core::Event exec;
  exec.kind = core::EventKind::kProcessExec;
  exec.proc.pid = 7;
  exec.path = "/opt/tools/t\xff";
  const core::Event* const calls[] = {&connect, &exec, nullptr};
  for (const core::Event* e : calls) {
    for (const bool fallback : {false, true}) {
      for (const std::string_view version : {"", "sha256:0123456789abcdef"}) {
        enforce::GateRecord r;
        r.kind = fallback ? enforce::GateRecord::Kind::kFallback
                          : enforce::GateRecord::Kind::kDecision;
        r.event = e;
        r.decision.action = core::Action::kDeny;
        r.decision.rule = "No port 9";
        r.decision.reason = "connect to 127.0.0.1:9";
        r.decision.enforced = true;
        r.decision.verdict.score = 0.75;
        r.gate = "seccomp";
        r.mode = "enforce";
        r.reason = enforce::FallbackReason::kModelError;
        r.policy_version = version;
        std::string out;
        {
          audit::CanonicalWriter w(&out);
          app::WriteGateRecordPayload(r, &w);
        }
        nlohmann::json want = audit::DecisionPayload(r.decision, r.mode);
        want["gate"] = "seccomp";
        if (!version.empty()) want["policy_version"] = version;
        if (fallback) want["fallback_reason"] = "model_error";
        if (e == &connect) {
          want["call"] = {{"type", "connect"}, {"pid", 4242}, {"comm", "curl \"x\""},
                          {"addr", "127.0.0.1"}, {"port", 9}};
        } else if (e == &exec) {
          want["call"] = {{"type", "execve"}, {"pid", 7}, {"path", "/opt/tools/t\xff"}};
        }
        EXPECT_EQ(out, audit::CanonicalJson(want));
      }
    }
  }
}

// The fanotify gate inside `vigil agent` (apps/vigil/agent_gate.h), with rules of its own
// (agent.gate.policy): a reload puts new rules in force (their version changes), a rules file that
// no longer loads leaves the rules in force as they were (file:line error), and the agent's
// policy snapshot is followed when the gate has no files of its own.
std::string ExecDenyRule(const std::string& name, const fs::path& prog) {
  return "- rule: " + name + "\n  desc: d\n  condition: evt.type = execve and proc.exepath = " +
         prog.string() + "\n  output: \"exec %proc.exepath\"\n  priority: WARNING\n"
         "  action: {type: deny, mode: enforce, fallback: deny}\n";
}

core::VigilConfig AgentGateConfig(const TmpfsDir& t, std::vector<std::string> policy,
                                  int64_t deadline_ns = kDecideDeadlineNs) {
  core::VigilConfig c;
  c.mode = core::AgentMode::kEnforce;
  c.agent.gate.watch = {t.bin().string()};
  c.agent.gate.policy = std::move(policy);
  c.agent.gate.deadline_ns = deadline_ns;
  return c;
}

// A tmpfs with a program to exec, and a folder for the rules.
class AgentGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (fanotify, mount)";
    if (!t.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  }
  void TearDown() override { fs::remove_all(dir); }

  TmpfsDir t;
  const fs::path dir = TempDir("agent-gate");
  const fs::path rules = dir / "gate.yaml";
  const fs::path prog = t.bin() / "prog";
};

TEST_F(AgentGateTest, ReloadSwapsTheRulesAndABadPolicyKeepsTheOneInForce) {
  std::ofstream(rules) << ExecDenyRule("Other program", t.bin() / "other");
  auto started = app::AgentGate::Start(AgentGateConfig(t, {rules.string()}), nullptr, nullptr);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  app::AgentGate& g = **started;
  g.SetEnforcementAllowed(true);
  const std::string v1 = g.policy_version();
  EXPECT_EQ(v1.rfind("sha256:", 0), 0u) << v1;
  EXPECT_EQ(Probe("exec " + prog.string()).err, 0);

  // New rules: in force at once, with a new version.
  std::ofstream(rules) << ExecDenyRule("No prog", prog);
  ASSERT_TRUE(g.Reload(nullptr).ok());
  const std::string v2 = g.policy_version();
  EXPECT_NE(v2, v1);
  EXPECT_EQ(Probe("exec " + prog.string()).err, EPERM);

  // A rules file that no longer loads: the error names it, the rules in force stay.
  std::ofstream(rules) << "- rule: Broken\n  desc: d\n  condition: evt.type = = execve\n"
                          "  output: x\n  priority: WARNING\n";
  const core::Status bad = g.Reload(nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("agent.gate.policy"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find(rules.string() + ":3"), std::string::npos) << bad.message();
  EXPECT_EQ(g.policy_version(), v2);
  EXPECT_EQ(Probe("exec " + prog.string()).err, EPERM);
  g.Stop();
  EXPECT_EQ(g.stats().denied, 2u);
}

TEST_F(AgentGateTest, FollowsTheAgentsPolicyReloads) {
  std::ofstream(rules) << ExecDenyRule("Other program", t.bin() / "other");
  policy::PolicyOptions po;
  po.files = {rules.string()};
  auto engine = policy::PolicyEngine::Create(po, nullptr);
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  auto started = app::AgentGate::Start(AgentGateConfig(t, {}), (*engine)->Current(), nullptr);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  app::AgentGate& g = **started;
  g.SetEnforcementAllowed(true);
  EXPECT_EQ(g.policy_version(), (*engine)->Current()->version);
  EXPECT_EQ(Probe("exec " + prog.string()).err, 0);
  std::ofstream(rules) << ExecDenyRule("No prog", prog);
  ASSERT_TRUE((*engine)->Reload().ok());
  ASSERT_TRUE(g.Reload((*engine)->Current()).ok());
  EXPECT_EQ(g.policy_version(), (*engine)->Current()->version);
  EXPECT_EQ(Probe("exec " + prog.string()).err, EPERM);
  g.Stop();
}

// The model at the agent's gate: a rule on ml.anomalous at an exec, the model forced to run
// late (held until the test lets it go, against a 5 ms deadline). The rule's fallback (deny)
// applies within the deadline, through the inference engine (the engine gives up at its budget;
// its breaker then opens).
TEST_F(AgentGateTest, LateModelGetsTheRulesFallbackWithinTheDeadline) {
  auto m = ProbeModel();
  ASSERT_NE(m, nullptr);
  std::ofstream(rules) << MlDenyRule("Unusual program", "evt.type = execve and proc.exepath "
                                                        "startswith " + t.bin().string() + "/");
  // Programs of different names: the engine's verdict cache (which keeps the late model's
  // answers) never answers for one of them.
  constexpr int kExecs = 8;
  for (int i = 0; i < kExecs; ++i) {
    fs::copy_file(prog, t.bin() / ("prog" + std::to_string(i)));
    fs::permissions(t.bin() / ("prog" + std::to_string(i)), fs::perms::owner_all);
  }
  auto hang = std::make_shared<Hang>();
  auto started = app::AgentGate::Start(AgentGateConfig(t, {rules.string()}, kDeadlineNs), nullptr,
                                       nullptr, std::make_shared<HangingModel>(m, hang));
  ReleaseAtExit release{hang};
  ASSERT_TRUE(started.has_value()) << started.error().message();
  app::AgentGate& g = **started;
  ASSERT_NE(g.engine(), nullptr);
  g.SetEnforcementAllowed(true);
  for (int i = 0; i < kExecs; ++i) {
    const ProbeResult r = Probe("exec " + (t.bin() / ("prog" + std::to_string(i))).string());
    EXPECT_EQ(r.err, EPERM);
    EXPECT_LT(r.ns, 1'000'000'000);  // without the model (it answers after 10 s): see above
  }
  EXPECT_EQ(hang->answered(), 0);
  hang->Release();  // (the engine stops with the gate: its worker must not be held)
  g.Stop();
  const enforce::GateStats s = g.stats();
  // One fallback per exec, however the deciding thread and the watchdog's raced.
  EXPECT_EQ(s.denied, static_cast<uint64_t>(kExecs));
  EXPECT_EQ(s.model_fallbacks + s.deadline_fallbacks, static_cast<uint64_t>(kExecs));
  EXPECT_GE(s.model_fallbacks, 1u);
  EXPECT_GE(g.engine()->breaker().opened(), 1u);
}

// The probe's model (ProbeModel's traces) as a model file, with `version`.
std::string ProbeModelFile(const std::string& version) {
  auto m = model::SequenceModel::Train(
      ProbeTraces(), model::SequenceModelOptions{.name = "gate", .version = version, .order = 3});
  EXPECT_TRUE(m.has_value()) << m.error().message();
  return m.has_value() ? model::EncodeModelFile((*m)->ToFile(nlohmann::json::object())) : "";
}

// The agent gate's model from agent.gate.model: a reload (SIGHUP, a model the hub rolled out)
// swaps the new file's model in, with its version and digest; a file that does not load, or a
// model that does not score system-call sequences, leaves the model in force, and the error names
// agent.gate.model and the file. A gate started without a model file has nothing to reload.
TEST_F(AgentGateTest, ReloadModelSwapsTheModelAndABadFileKeepsTheOneInForce) {
  std::ofstream(rules) << MlDenyRule("Unusual program",
                                     "evt.type = execve and proc.exepath = " + prog.string());
  const fs::path model_path = dir / "gate.vgm";
  const std::string v1 = ProbeModelFile("1"), v2 = ProbeModelFile("2");
  std::ofstream(model_path, std::ios::binary) << v1;
  core::VigilConfig c = AgentGateConfig(t, {rules.string()});
  c.agent.gate.model = model_path.string();
  auto started = app::AgentGate::Start(c, nullptr, nullptr);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  app::AgentGate& g = **started;
  ASSERT_NE(g.engine(), nullptr);
  auto info = g.model_info();
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->path, model_path.string());
  EXPECT_EQ(info->name, "gate");
  EXPECT_EQ(info->version, "1");
  EXPECT_EQ(info->sha256, audit::Sha256Hex(v1));
  EXPECT_EQ(g.engine()->model()->version(), "1");

  std::ofstream(model_path, std::ios::binary | std::ios::trunc) << v2;
  auto reloaded = g.ReloadModel("test");
  ASSERT_TRUE(reloaded.has_value()) << reloaded.error().message();
  EXPECT_EQ(reloaded->version, "2");
  EXPECT_EQ(reloaded->sha256, audit::Sha256Hex(v2));
  EXPECT_EQ(g.engine()->model()->version(), "2");
  EXPECT_EQ(g.model_info()->sha256, audit::Sha256Hex(v2));
  EXPECT_EQ(Probe("exec " + prog.string()).err, 0);  // the gate goes on deciding

  // Not a model file, then a truncated one: the error names the file; version 2 stays.
  for (const std::string& bad : {std::string("not a model\n"), v1.substr(0, v1.size() / 2)}) {
    std::ofstream(model_path, std::ios::binary | std::ios::trunc) << bad;
    auto refused = g.ReloadModel("test");
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message().find("agent.gate.model " + model_path.string()),
              std::string::npos)
        << refused.error().message();
    EXPECT_EQ(g.engine()->model()->version(), "2");
    EXPECT_EQ(g.model_info()->sha256, audit::Sha256Hex(v2));
  }
  g.Stop();

  // Without agent.gate.model there is no model to reload.
  auto plain = app::AgentGate::Start(AgentGateConfig(t, {rules.string()}), nullptr, nullptr);
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_FALSE((*plain)->model_info().has_value());
  auto none = (*plain)->ReloadModel("test");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), core::StatusCode::kFailedPrecondition);
  (*plain)->Stop();
}

// An audit trail in `dir` (its key beside it); Close returns the bytes of its segments, in which
// each record's canonical JSON payload can be found as it is.
struct AuditDir {
  explicit AuditDir(const fs::path& d) : dir(d) {
    app::AuditTrailOptions o;
    o.dir = dir.string();
    o.key_path = (dir.parent_path() / "audit.key").string();
    o.writer = "gates_test";
    auto opened = app::AuditTrail::Open(o);
    EXPECT_TRUE(opened.has_value()) << opened.error().message();
    if (opened.has_value()) trail = std::move(opened).value();
  }
  std::string Close() {
    if (!trail) return "";
    EXPECT_TRUE(trail->Close().ok());
    std::string all;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".vlog") continue;
      std::ifstream in(e.path(), std::ios::binary);
      all += std::string(std::istreambuf_iterator<char>(in), {});
    }
    return all;
  }
  fs::path dir;
  std::unique_ptr<app::AuditTrail> trail;
};

// A gate whose model the hub installs (agent.gate.model is the hub sink's model_file) starts
// before the file is there: without a model (ml.* absent: a rule on ml.score never matches), a
// model-change record "awaited". A reload that still finds no file changes nothing; once the file
// is there the gate serves it: the same exec is scored (the rule matches any score) and denied.
TEST_F(AgentGateTest, AGateStartedWithoutAModelServesTheFirstOneItIsGiven) {
  std::ofstream(rules) << "- rule: Scored program\n  desc: d\n  condition: evt.type = execve and "
                          "proc.exepath = " +
                              prog.string() +
                              " and ml.score >= 0\n  output: scored %proc.name\n  priority: "
                              "WARNING\n  action: {type: deny, mode: enforce, fallback: allow}\n";
  const fs::path model_path = dir / "gate.vgm";
  core::VigilConfig c = AgentGateConfig(t, {rules.string()});
  c.agent.gate.model = model_path.string();
  // Without the hub the file must be there.
  auto missing = app::AgentGate::Start(c, nullptr, nullptr);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("agent.gate.model"), std::string::npos)
      << missing.error().message();

  AuditDir audit(dir / "audit");
  auto started = app::AgentGate::Start(c, nullptr, audit.trail.get(), nullptr,
                                       /*model_from_hub=*/true);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  app::AgentGate& g = **started;
  g.SetEnforcementAllowed(true);
  EXPECT_EQ(g.engine(), nullptr);
  EXPECT_FALSE(g.model_info().has_value());
  EXPECT_EQ(Probe("exec " + prog.string()).err, 0);  // no model: ml.score is absent

  auto absent = g.ReloadModel("test");
  ASSERT_FALSE(absent.has_value());
  EXPECT_NE(absent.error().message().find("agent.gate.model " + model_path.string()),
            std::string::npos)
      << absent.error().message();
  EXPECT_EQ(g.engine(), nullptr);

  const std::string v1 = ProbeModelFile("1");
  std::ofstream(model_path, std::ios::binary) << v1;
  auto added = g.ReloadModel("test");
  ASSERT_TRUE(added.has_value()) << added.error().message();
  EXPECT_EQ(added->version, "1");
  EXPECT_EQ(added->sha256, audit::Sha256Hex(v1));
  ASSERT_NE(g.engine(), nullptr);
  EXPECT_EQ(g.model_info()->sha256, audit::Sha256Hex(v1));
  EXPECT_EQ(Probe("exec " + prog.string()).err, EPERM);  // scored, so the rule matches
  EXPECT_EQ(g.stats().denied, 1u);

  // A second model is swapped in as before.
  const std::string v2 = ProbeModelFile("2");
  std::ofstream(model_path, std::ios::binary | std::ios::trunc) << v2;
  auto swapped = g.ReloadModel("test");
  ASSERT_TRUE(swapped.has_value()) << swapped.error().message();
  EXPECT_EQ(g.engine()->model()->version(), "2");
  EXPECT_EQ(Probe("exec " + prog.string()).err, EPERM);
  g.Stop();
  const std::string records = audit.Close();
  for (const std::string& want : {std::string(R"("action":"awaited")"),
                                  std::string(R"("action":"added")"),
                                  std::string(R"("action":"reloaded")")}) {
    EXPECT_NE(records.find(want), std::string::npos) << want << "\n" << records;
  }
  EXPECT_EQ(records.find(R"("action":"refused")"), std::string::npos) << records;
}

// A model rolled out by the hub is judged from its file: a gate model is accepted; a host
// baseline (its header's name) or a family no one registered is refused, naming the source.
TEST(GateModelTest, CheckGateModelFileJudgesAModelFileByWhatItIs) {
  auto decode = [](const std::string& bytes) {
    auto f = model::DecodeModelFile(bytes, "test");
    EXPECT_TRUE(f.has_value()) << f.error().message();
    return f.has_value() ? *f : model::ModelFile{};
  };
  const model::ModelFile gate = decode(ProbeModelFile("1"));
  EXPECT_TRUE(app::CheckGateModelFile(gate, "sha256:aa").ok());
  model::ModelFile baseline = gate;
  baseline.header["name"] = std::string(app::kHostBaselineName);
  core::Status st = app::CheckGateModelFile(baseline, "sha256:aa");
  EXPECT_NE(st.message().find("sha256:aa: the model is a host baseline"), std::string::npos)
      << st.message();
  model::ModelFile unknown = gate;
  unknown.header["family"] = "no-such-family";
  st = app::CheckGateModelFile(unknown, "sha256:aa");
  EXPECT_NE(st.message().find("sha256:aa: unknown model family"), std::string::npos)
      << st.message();
}

// Without a model, ml.* fields are absent at the agent's gate: the rule never matches, and the
// model's fallback never applies.
TEST_F(AgentGateTest, WithoutAModelMlRulesDoNotMatch) {
  std::ofstream(rules) << MlDenyRule("Unusual program",
                                     "evt.type = execve and proc.exepath = " + prog.string());
  auto started = app::AgentGate::Start(AgentGateConfig(t, {rules.string()}), nullptr, nullptr);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  (*started)->SetEnforcementAllowed(true);
  EXPECT_EQ((*started)->engine(), nullptr);
  EXPECT_EQ(Probe("exec " + prog.string()).err, 0);
  (*started)->Stop();
  EXPECT_EQ((*started)->stats().fallbacks, 0u);
}

}  // namespace
}  // namespace vigil
