// The syscall stream under a CPU budget on this kernel (agent/stream_budget.h with the eBPF
// sensor): a tight syscall loop makes the stream cost far more than 1 % of the CPUs, so the cycler
// keeps it off most of the time; typed records (an open) still arrive while it is off. Needs root
// and kernel BTF; waits on conditions with deadlines.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "agent/stream_budget.h"
#include "core/clock.h"
#include "sensor/ebpf_sensor.h"

namespace vigil::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

bool WaitUntil(const std::function<bool()>& cond, std::chrono::seconds limit) {
  const auto deadline = steady_clock::now() + limit;
  while (!cond()) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));  // polling a condition, not timing
  }
  return true;
}

TEST(StreamBudgetLiveTest, TightLoopCutsTheDutyAndTypedEventsArriveWhileTheStreamIsOff) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs (euid " << geteuid() << ")";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    GTEST_SKIP() << "kernel has no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)";
  }
  sensor::EbpfOptions options;
  options.syscall_runs = true;
  auto opened = sensor::EbpfSensor::Open(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  std::unique_ptr<sensor::EbpfSensor> sensor = std::move(opened).value();

  // The reader: what the agent's reading thread would do, keeping the opens and counting the
  // loop's stream calls.
  const std::string marker = "/tmp/vigil-stream-budget-" + std::to_string(getpid());
  std::mutex mu;
  std::set<std::string> opened_paths;
  std::atomic<uint64_t> loop_calls{0};
  std::atomic<pid_t> loop_pid{0};
  std::thread reader([&] {
    core::Event e;
    while (true) {
      auto r = sensor->NextFor(&e, milliseconds(50));
      if (!r.has_value()) continue;
      if (*r == sensor::EbpfSensor::PollOutcome::kEnd) return;
      if (*r != sensor::EbpfSensor::PollOutcome::kEvent) continue;
      if (e.kind == core::EventKind::kFileOpen) {
        std::lock_guard<std::mutex> lock(mu);
        opened_paths.insert(e.path);
      } else if (e.kind == core::EventKind::kSyscall &&
                 e.proc.pid == static_cast<uint32_t>(loop_pid.load())) {
        loop_calls += core::EventCount(e);
      }
    }
  });

  struct JoinReader {
    sensor::EbpfSensor& sensor;
    std::thread& thread;
    ~JoinReader() {
      sensor.Stop();
      if (thread.joinable()) thread.join();
    }
  } join_reader{*sensor, reader};

  StreamBudgetOptions budget;
  budget.budget = 0.01;
  budget.cpus = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  EbpfStreamSwitch sw(*sensor);
  auto gaps = std::make_shared<StreamGaps>();
  StreamDutyCycler cycler(sw, StreamMode::kBudget, budget, core::SystemClock::Get(), ProcessCpuNs,
                          gaps);
  cycler.Start();

  const pid_t loop = fork();
  ASSERT_GE(loop, 0);
  if (loop == 0) {
    prctl(PR_SET_NAME, "vigil-tight");
    for (;;) syscall(SYS_getppid);
  }
  loop_pid = loop;
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reap{loop};

  // Switched off: the loop's cost was measured and found far over the budget. The rest that
  // follows is long (scaled from the 250 ms measured, up to the 20 s cycle), so the duty falls.
  EXPECT_TRUE(WaitUntil([&] { return cycler.Stats().switched_off >= 1; }, std::chrono::seconds(20)))
      << "switched off " << cycler.Stats().switched_off << " times, cost " << cycler.Stats().cost;
  EXPECT_TRUE(WaitUntil([&] { return cycler.Stats().duty < 0.5; }, std::chrono::seconds(10)))
      << "duty " << cycler.Stats().duty;
  const StreamDutyStats busy = cycler.Stats();
  EXPECT_GT(busy.cost, 0.01);
  EXPECT_LT(busy.planned_duty, 0.5);
  EXPECT_LT(busy.duty, 0.9);
  EXPECT_GT(loop_calls.load(), 0u) << "the stream delivered none of the loop's calls while on";
  EXPECT_GE(gaps->resumes(), busy.switched_on);  // each recorded before its switch

  // An open while the stream is off (checked before and after: no switch on in between).
  bool opened_while_off = false;
  for (int attempt = 0; attempt < 20 && !opened_while_off; ++attempt) {
    ASSERT_TRUE(WaitUntil([&] { return !cycler.Stats().on; }, std::chrono::seconds(10)));
    const uint64_t on_before = cycler.Stats().switched_on;
    const std::string path = marker + "-" + std::to_string(attempt);
    const pid_t child = fork();
    if (child == 0) {
      const int fd = open(path.c_str(), O_RDONLY);  // absent: the record carries -ENOENT
      if (fd >= 0) close(fd);
      _exit(0);
    }
    waitpid(child, nullptr, 0);
    const StreamDutyStats after = cycler.Stats();
    if (after.switched_on != on_before || after.on) continue;  // it came on meanwhile: again
    opened_while_off = true;
    EXPECT_TRUE(WaitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          return opened_paths.count(path) > 0;
        },
        std::chrono::seconds(10)))
        << "the open of " << path << " made while the stream was off never arrived";
  }
  EXPECT_TRUE(opened_while_off) << "the stream was never off long enough for one open";

  cycler.Stop();
  const StreamDutyStats end = cycler.Stats();
  EXPECT_LT(end.duty, 0.9);
  EXPECT_EQ(end.switch_failures, 0u);
}

}  // namespace
}  // namespace vigil::agent
