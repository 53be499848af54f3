#pragma once

// A mutex with priority inheritance, and a condition variable for it. A thread at real-time
// priority (core/thread_priority.h) that waits for a std::mutex held by a normal thread waits
// as long as the scheduler keeps that thread off a core: on a loaded host, milliseconds (a
// gateway write waited 3–16 ms for the audit log's lock that its normal-priority writer thread
// held; docs/gateway.md, "Priority"). While a thread waits for a PiMutex, its holder runs at the
// waiter's priority.
//
// PiMutex meets Lockable (std::unique_lock, std::lock_guard, std::scoped_lock); PiCondition
// waits on a std::unique_lock<PiMutex> and measures its deadlines on the steady clock.

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace vigil::core {

class PiMutex {
 public:
  PiMutex();
  ~PiMutex();
  PiMutex(const PiMutex&) = delete;
  PiMutex& operator=(const PiMutex&) = delete;

  void lock();  // throws std::system_error, as std::mutex does, on an error from the system
  bool try_lock();
  void unlock();
  pthread_mutex_t* native_handle() { return &m_; }

 private:
  pthread_mutex_t m_;
};

class PiCondition {
 public:
  PiCondition();
  ~PiCondition();
  PiCondition(const PiCondition&) = delete;
  PiCondition& operator=(const PiCondition&) = delete;

  void notify_one();
  void notify_all();

  void wait(std::unique_lock<PiMutex>& lock);
  template <class Predicate>
  void wait(std::unique_lock<PiMutex>& lock, Predicate ready) {
    while (!ready()) wait(lock);
  }

  std::cv_status wait_until(std::unique_lock<PiMutex>& lock,
                            std::chrono::steady_clock::time_point deadline);
  template <class Predicate>
  bool wait_until(std::unique_lock<PiMutex>& lock, std::chrono::steady_clock::time_point deadline,
                  Predicate ready) {
    while (!ready()) {
      if (wait_until(lock, deadline) == std::cv_status::timeout) return ready();
    }
    return true;
  }

  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<PiMutex>& lock,
                          std::chrono::duration<Rep, Period> d) {
    return wait_until(lock, Deadline(d));
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<PiMutex>& lock, std::chrono::duration<Rep, Period> d,
                Predicate ready) {
    return wait_until(lock, Deadline(d), std::move(ready));
  }

 private:
  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point Deadline(std::chrono::duration<Rep, Period> d) {
    const auto now = std::chrono::steady_clock::now();
    // A duration too long to add (e.g. nanoseconds::max()) waits for as long as there is.
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(
                 std::chrono::steady_clock::time_point::max() - now)) {
      return std::chrono::steady_clock::time_point::max();
    }
    return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(d);
  }

  pthread_cond_t c_;
};

}  // namespace vigil::core
