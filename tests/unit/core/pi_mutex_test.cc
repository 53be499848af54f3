#include "core/pi_mutex.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/files.h"
#include "core/thread_priority.h"

namespace vigil::core {
namespace {

using namespace std::chrono_literals;

TEST(PiMutexTest, LocksAndTriesAsAMutexDoes) {
  PiMutex mu;
  {
    std::unique_lock lock(mu);
    std::thread other([&] { EXPECT_FALSE(mu.try_lock()); });
    other.join();
  }
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  // Mutual exclusion: two threads counting under the lock lose no increment.
  long count = 0;
  auto add = [&] {
    for (int i = 0; i < 100000; ++i) {
      std::lock_guard lock(mu);
      ++count;
    }
  };
  std::thread a(add), b(add);
  a.join();
  b.join();
  EXPECT_EQ(count, 200000);
}

TEST(PiConditionTest, WakesAWaiterAndTimesOut) {
  PiMutex mu;
  PiCondition cv;
  bool ready = false;
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);
    {
      std::lock_guard lock(mu);
      ready = true;
    }
    cv.notify_one();
  });
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return ready; }));
  }
  setter.join();

  std::unique_lock lock(mu);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cv.wait_for(lock, 30ms, [] { return false; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  EXPECT_EQ(cv.wait_until(lock, std::chrono::steady_clock::now() - 1s), std::cv_status::timeout);
  // A duration too long to add to now waits like wait(): here the predicate is already true.
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::nanoseconds::max(), [] { return true; }));
}

TEST(PiConditionTest, NotifyAllWakesEveryWaiter) {
  PiMutex mu;
  PiCondition cv;
  bool go = false;
  int woken = 0;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return go; });
      ++woken;
    });
  }
  {
    std::lock_guard lock(mu);
    go = true;
  }
  cv.notify_all();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken, 4);
}

// The thread's /proc stat line, or "" once it has exited (a read of a task that exits while it
// is read fails with ESRCH; an std::ifstream would throw that out of istreambuf_iterator).
std::string TaskStat(pid_t tid) {
  auto read = core::ReadFile("/proc/self/task/" + std::to_string(tid) + "/stat", 4096);
  return read.has_value() ? std::move(read).value() : std::string();
}

// Field 18 of /proc/thread-self/stat: the thread's effective priority as the kernel schedules
// it (20 for a normal thread at nice 0, -1 - P for SCHED_FIFO P, including a priority inherited
// through a PI futex).
int EffectivePriority(pid_t tid) {
  const std::string text = TaskStat(tid);
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 1000;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  for (int i = 3; i <= 18; ++i) fields >> f;  // fields 3 (state) .. 18 (priority)
  return std::stoi(f);
}

char State(pid_t tid) {
  const std::string text = TaskStat(tid);
  const size_t close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
}

// A normal thread holds the lock; a SCHED_FIFO 10 thread waits for it. Returns the holder's
// effective priority once the waiter is asleep on the lock (after `settle`).
template <class Mutex>
int HolderPriorityWhileARealtimeThreadWaits(Mutex& mu, Status* applied) {
  const pid_t holder = static_cast<pid_t>(syscall(SYS_gettid));
  std::unique_lock lock(mu);
  std::atomic<pid_t> waiter_tid{0};
  std::thread waiter = StartRealtimeThread(
      10,
      [&] {
        waiter_tid = static_cast<pid_t>(syscall(SYS_gettid));
        std::lock_guard inner(mu);
      },
      applied);
  int seen = EffectivePriority(holder);
  if (applied->ok()) {
    // Wait until the waiter sleeps on the lock, then give the kernel a moment to boost.
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < give_up &&
           (waiter_tid.load() == 0 || State(waiter_tid.load()) != 'S')) {
      std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(20ms);
    seen = EffectivePriority(holder);
  }
  lock.unlock();
  waiter.join();
  return seen;
}

TEST(PiMutexTest, TheHolderRunsAtTheWaitersPriorityWhileARealtimeThreadWaits) {
  ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
  const int normal = EffectivePriority(static_cast<pid_t>(syscall(SYS_gettid)));
  // The control: a std::mutex leaves its holder at its own priority.
  std::mutex plain;
  Status applied;
  EXPECT_EQ(HolderPriorityWhileARealtimeThreadWaits(plain, &applied), normal);
  if (!applied.ok()) {
    GTEST_SKIP() << "this host refuses SCHED_FIFO (needs root or CAP_SYS_NICE and a real-time "
                    "budget): "
                 << applied.message();
  }
  PiMutex pi;
  EXPECT_EQ(HolderPriorityWhileARealtimeThreadWaits(pi, &applied), -11);  // SCHED_FIFO 10
  ASSERT_TRUE(applied.ok()) << applied.message();
  // And back once the lock is released.
  EXPECT_EQ(EffectivePriority(static_cast<pid_t>(syscall(SYS_gettid))), normal);
}

}  // namespace
}  // namespace vigil::core
