#include "core/pi_mutex.h"

#include <cerrno>
#include <ctime>
#include <system_error>

namespace vigil::core {
namespace {

void Check(int rc, const char* what) {
  if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
}

}  // namespace

PiMutex::PiMutex() {
  pthread_mutexattr_t attr;
  Check(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
  Check(pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT),
        "pthread_mutexattr_setprotocol(PTHREAD_PRIO_INHERIT)");
  const int rc = pthread_mutex_init(&m_, &attr);
  pthread_mutexattr_destroy(&attr);
  Check(rc, "pthread_mutex_init");
}

PiMutex::~PiMutex() { pthread_mutex_destroy(&m_); }

void PiMutex::lock() { Check(pthread_mutex_lock(&m_), "pthread_mutex_lock"); }

bool PiMutex::try_lock() {
  const int rc = pthread_mutex_trylock(&m_);
  if (rc == EBUSY) return false;
  Check(rc, "pthread_mutex_trylock");
  return true;
}

void PiMutex::unlock() { pthread_mutex_unlock(&m_); }

PiCondition::PiCondition() {
  pthread_condattr_t attr;
  Check(pthread_condattr_init(&attr), "pthread_condattr_init");
  // std::chrono::steady_clock is CLOCK_MONOTONIC on Linux.
  Check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), "pthread_condattr_setclock");
  const int rc = pthread_cond_init(&c_, &attr);
  pthread_condattr_destroy(&attr);
  Check(rc, "pthread_cond_init");
}

PiCondition::~PiCondition() { pthread_cond_destroy(&c_); }

void PiCondition::notify_one() { pthread_cond_signal(&c_); }

void PiCondition::notify_all() { pthread_cond_broadcast(&c_); }

void PiCondition::wait(std::unique_lock<PiMutex>& lock) {
  Check(pthread_cond_wait(&c_, lock.mutex()->native_handle()), "pthread_cond_wait");
}

std::cv_status PiCondition::wait_until(std::unique_lock<PiMutex>& lock,
                                       std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    wait(lock);
    return std::cv_status::no_timeout;
  }
  const auto since_epoch = deadline.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  if (ts.tv_nsec < 0) {  // a deadline before the clock's epoch
    ts.tv_sec -= 1;
    ts.tv_nsec += 1'000'000'000;
  }
  if (ts.tv_sec < 0) return std::cv_status::timeout;
  const int rc = pthread_cond_timedwait(&c_, lock.mutex()->native_handle(), &ts);
  if (rc == ETIMEDOUT) return std::cv_status::timeout;
  Check(rc, "pthread_cond_timedwait");
  return std::cv_status::no_timeout;
}

}  // namespace vigil::core
