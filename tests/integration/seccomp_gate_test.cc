// The seccomp gate on its own (sensor/seccomp_gate.h), as root: what it reads of each held call
// out of the caller's memory, decided by a decider that only records; where its thread is woken
// with synchronous wake-ups.

#include "sensor/seccomp_gate.h"

#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/loopback_listener.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Allows every call and keeps a copy of it.
class RecordingDecider final : public sensor::GateDecider {
 public:
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl*) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(call);
    return sensor::GateAnswer::kAllow;
  }
  void OnFallback(const sensor::GateCall&, sensor::GateAnswer, sensor::GateFallbackCause) override {
  }
  void Late(const sensor::GateCall&, sensor::GateAnswer) override {}
  std::vector<sensor::GateCall> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::vector<sensor::GateCall> calls_;
};

TEST(SeccompGateTest, ReadsEachCallsPathArgvAndAddressAsTheCallerPassedThem) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
  const fs::path dir =
      fs::canonical(fs::temp_directory_path()) / ("vigil-seccomp-read-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "rel.txt") << "r";
  testing::LoopbackListener listener;
  const std::string probe = VIGIL_GATE_PROBE;
  std::string many;  // 70 arguments: more than the gate reads
  for (int i = 0; i < 70; ++i) many += " a" + std::to_string(i);
  const std::string script = "cd " + dir.string() + " && " + probe + " open rel.txt >/dev/null; " +
                             probe + " open ./sub/..//rel.txt >/dev/null; " + probe +
                             " connect 127.0.0.1 " + std::to_string(listener.port()) +
                             " >/dev/null; " + probe + " open " + std::string(5000, 'z') +
                             " >/dev/null; exec " + probe + many + " >/dev/null 2>&1";

  RecordingDecider decider;
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.deadline_ns = 2'000'000'000;  // a loaded machine must not turn a decision into a fallback
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const sensor::SeccompExit exit = (*g)->Wait();
  EXPECT_EQ(exit.exec_errno, 0);
  const sensor::SeccompGateStats st = (*g)->stats();
  EXPECT_EQ(st.vanished, 0u);
  EXPECT_EQ(st.read_failures, 1u);  // the 5,000-byte path: longer than the gate reads
  EXPECT_EQ(st.deadline_answers, 0u);

  const std::vector<sensor::GateCall> calls = decider.calls();
  auto count = [&](auto pred) { return std::count_if(calls.begin(), calls.end(), pred); };
  // The probe's exec: its path and argv.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kProcessExec && c.event.path == probe &&
                     c.argv == std::vector<std::string>{probe, "open", "rel.txt"} &&
                     !c.argv_truncated;
            }),
            1);
  // Relative paths made absolute against the caller's cwd, and lexically normal.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kFileOpen &&
                     c.event.path == (dir / "rel.txt").string();
            }),
            2);
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kNetConnect &&
                     c.event.net.daddr == "127.0.0.1" && c.event.net.dport == listener.port();
            }),
            1);
  // The last exec: 64 of its 71 arguments, marked truncated.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kProcessExec && c.argv_truncated &&
                     c.argv.size() == 64 && c.argv[0] == probe && c.argv[63] == "a62";
            }),
            1);
  for (const sensor::GateCall& c : calls) {
    EXPECT_EQ(c.event.source, core::EventSource::kSeccomp);
    EXPECT_GT(c.event.proc.pid, 0u);
  }
  fs::remove_all(dir);
}

// Allows every call and records, for the opens of one file, the CPU each was decided on.
class CpuDecider final : public sensor::GateDecider {
 public:
  explicit CpuDecider(std::string path) : path_(std::move(path)) {}
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl*) override {
    if (call.event.kind == core::EventKind::kFileOpen && call.event.path == path_) {
      std::lock_guard<std::mutex> lock(mu_);
      cpus_.push_back(sched_getcpu());
    }
    return sensor::GateAnswer::kAllow;
  }
  void OnFallback(const sensor::GateCall&, sensor::GateAnswer, sensor::GateFallbackCause) override {
  }
  void Late(const sensor::GateCall&, sensor::GateAnswer) override {}
  std::vector<int> cpus() {
    std::lock_guard<std::mutex> lock(mu_);
    return cpus_;
  }

 private:
  const std::string path_;
  std::mutex mu_;
  std::vector<int> cpus_;
};

// Linux 6.6 or later: the kernel has SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.
bool KernelHasSyncWakeup() {
  utsname u{};
  int major = 0, minor = 0;
  return uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
         (major > 6 || (major == 6 && minor >= 6));
}

// With synchronous wake-ups, a normally scheduled gate thread is woken on the CPU of the caller
// that made the call (the kernel's WF_CURRENT_CPU), so it decides the call there. The caller is
// pinned to one CPU and the gate's thread may run on any: without the flag the scheduler prefers
// an idle CPU for the woken gate thread, the caller's own being busy with the caller.
TEST(SeccompGateTest, SyncWakeupIsSetWhereSupportedAndDecidesOnTheCallersCpu) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (CPU_COUNT(&allowed) < 2) GTEST_SKIP() << "needs two CPUs to tell them apart";
  int cpu = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpu = c;
  }
  const fs::path file =
      fs::temp_directory_path() / ("vigil-seccomp-cpu-" + std::to_string(getpid()));
  std::ofstream(file) << "x";
  constexpr int kOpens = 200;
  CpuDecider decider(file.string());
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c",
            "exec taskset -c " + std::to_string(cpu) + " " + VIGIL_GATE_PROBE + " open " +
                file.string() + " " + std::to_string(kOpens) + " >/dev/null"};
  o.deadline_ns = 2'000'000'000;
  o.realtime_priority = 0;  // a real-time thread is woken where it last ran, flag or not
  o.sync_wakeup = true;
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const sensor::SeccompExit exit = (*g)->Wait();
  fs::remove(file);
  EXPECT_EQ(exit.exit_code, 0);
  if (!KernelHasSyncWakeup()) {
    EXPECT_FALSE((*g)->sync_wakeup_status().ok());
    GTEST_SKIP() << "kernel older than 6.6: " << (*g)->sync_wakeup_status().message();
  }
  ASSERT_TRUE((*g)->sync_wakeup_status().ok()) << (*g)->sync_wakeup_status().message();
  const std::vector<int> cpus = decider.cpus();
  ASSERT_EQ(cpus.size(), static_cast<size_t>(kOpens));
  // On the caller's CPU unless the gate's thread was moved between its wake-up and the decision
  // (the load balancer, a loaded machine): most of them, not necessarily all.
  const auto on_callers = std::count(cpus.begin(), cpus.end(), cpu);
  EXPECT_GE(on_callers, kOpens / 2) << "of " << kOpens << " opens made on CPU " << cpu;
}

// Kills process `pid` with SIGKILL unless Disarm() comes within 10 s: a gate that leaves a call
// unanswered makes the test fail (the program killed) instead of hang.
class KillUnlessDoneIn10s {
 public:
  explicit KillUnlessDoneIn10s(pid_t pid)
      : thread_([this, pid] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, std::chrono::seconds(10), [this] { return done_; })) {
            kill(pid, SIGKILL);
          }
        }) {}
  ~KillUnlessDoneIn10s() { Disarm(); }
  void Disarm() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// The real receive, after the first `fail` calls have failed with `err` (0: every call fails).
struct FailingReceive {
  int err;
  int fail;
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  int operator()(int listener, void* notif) const {
    const int n = calls->fetch_add(1) + 1;
    if (fail == 0 || n <= fail) {
      errno = err;
      return -1;
    }
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, notif);
  }
};

// A receive that fails now and then is counted, and the gate serves on: every call is decided.
TEST(SeccompGateTest, AFailedReceiveIsCountedAndTheGateServesOn) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
  const fs::path file =
      fs::temp_directory_path() / ("vigil-seccomp-recv-" + std::to_string(getpid()));
  std::ofstream(file) << "x";
  RecordingDecider decider;
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c",
            std::string(VIGIL_GATE_PROBE) + " open " + file.string() + " >/dev/null"};
  o.deadline_ns = 2'000'000'000;
  o.receive = FailingReceive{EIO, 3};
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  KillUnlessDoneIn10s guard((*g)->pid());
  const sensor::SeccompExit exit = (*g)->Wait();
  guard.Disarm();
  fs::remove(file);
  EXPECT_EQ(exit.exit_code, 0) << "a call was left unanswered (killed after 10 s)";
  EXPECT_EQ(exit.exec_errno, 0);
  const sensor::SeccompGateStats st = (*g)->stats();
  EXPECT_EQ(st.receive_failures, 3u);
  EXPECT_GE(st.calls, 2u);  // the probe's exec and its open, at least
  EXPECT_EQ(st.allowed, st.calls);
  EXPECT_TRUE((*g)->serve_status().ok()) << (*g)->serve_status().message();
  const std::vector<sensor::GateCall> calls = decider.calls();
  EXPECT_EQ(std::count_if(calls.begin(), calls.end(),
                          [&](const sensor::GateCall& c) {
                            return c.event.kind == core::EventKind::kFileOpen &&
                                   c.event.path == file.string();
                          }),
            1);
}

// A listener that cannot be served (broken at once, or failing every receive) is let go as at a
// stop: the call pending then, the program's own execve, fails with ENOSYS at once instead of
// waiting unanswered, and serve_status() says why.
TEST(SeccompGateTest, AListenerThatCannotBeServedIsLetGoAndItsCallsFailAtOnce) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
  struct Case {
    int err;
    uint64_t failures;  // counted before the gate stops serving
  };
  // EBADF: broken at once; EIO: 64 in a row, and once more as it stops (what is pending).
  for (const Case& c : {Case{EBADF, 1}, Case{EIO, 65}}) {
    SCOPED_TRACE(std::strerror(c.err));
    RecordingDecider decider;
    sensor::SeccompGateOptions o;
    o.argv = {VIGIL_GATE_PROBE, "open", "/dev/null"};
    o.receive = FailingReceive{c.err, 0};
    auto g = sensor::SeccompGate::Launch(o, &decider);
    ASSERT_TRUE(g.has_value()) << g.error().message();
    KillUnlessDoneIn10s guard((*g)->pid());
    const sensor::SeccompExit exit = (*g)->Wait();
    guard.Disarm();
    EXPECT_EQ(exit.exec_errno, ENOSYS) << "exit code " << exit.exit_code
                                       << " (137: left waiting, killed after 10 s)";
    const sensor::SeccompGateStats st = (*g)->stats();
    EXPECT_EQ(st.receive_failures, c.failures);
    EXPECT_EQ(st.calls, 0u);
    EXPECT_TRUE((*g)->stopping());
    const core::Status why = (*g)->serve_status();
    EXPECT_FALSE(why.ok());
    EXPECT_NE(why.message().find(std::strerror(c.err)), std::string::npos) << why.message();
    EXPECT_TRUE(decider.calls().empty());
  }
}

}  // namespace
}  // namespace vigil
