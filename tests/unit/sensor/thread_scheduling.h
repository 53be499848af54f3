#pragma once

// For tests of what happens when one thread cannot get a CPU (the gates' watchdog on a loaded
// machine): the calling thread pinned to one CPU, which threads it starts then share, and raised
// to SCHED_FIFO over them. Everything is restored when the object goes.

#include <pthread.h>
#include <sched.h>

namespace vigil::testing {

class ThreadScheduling {
 public:
  ThreadScheduling() {
    CPU_ZERO(&cpus_);
    ok_ = sched_getaffinity(0, sizeof cpus_, &cpus_) == 0 &&
          pthread_getschedparam(pthread_self(), &policy_, &param_) == 0;
  }
  ~ThreadScheduling() {
    if (!ok_) return;
    pthread_setschedparam(pthread_self(), policy_, &param_);
    sched_setaffinity(0, sizeof cpus_, &cpus_);
  }
  ThreadScheduling(const ThreadScheduling&) = delete;
  ThreadScheduling& operator=(const ThreadScheduling&) = delete;

  // Whether the thread's CPU set and policy were read (and will be restored).
  bool ok() const { return ok_; }
  // Runs the calling thread on the first CPU it may run on; threads it starts after inherit
  // that CPU set. False when refused.
  bool PinToOneCpu() const {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (!CPU_ISSET(c, &cpus_)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      return sched_setaffinity(0, sizeof one, &one) == 0;
    }
    return false;
  }
  // SCHED_FIFO priority 1 for the calling thread: a normal thread on its CPU gets none until
  // Lower(). False without the privilege (root).
  static bool RaiseToFifo() {
    const sched_param fifo{.sched_priority = 1};
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0;
  }
  // Back to SCHED_OTHER.
  static void Lower() {
    const sched_param normal{};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
  }

 private:
  cpu_set_t cpus_;
  int policy_ = SCHED_OTHER;
  sched_param param_{};
  bool ok_ = false;
};

}  // namespace vigil::testing
