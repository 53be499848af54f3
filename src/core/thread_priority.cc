#include "core/thread_priority.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <future>
#include <string>

namespace vigil::core {

Status CheckRealtimePriority(int priority) {
  if (priority >= 0 && priority <= 99) return Status::Ok();
  return InvalidArgument("real-time priority " + std::to_string(priority) +
                         ": expected 0 (off) or 1..99");
}

Status SetRealtimePriority(int priority) {
  if (priority == 0) return Status::Ok();
  if (Status s = CheckRealtimePriority(priority); !s.ok()) return s;
  sched_param sp{};
  sp.sched_priority = priority;
  // The thread's own id: sched_setscheduler with a tid changes that thread only.
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (sched_setscheduler(tid, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) != 0) {
    const int err = errno;
    return ErrnoError(err, "SCHED_FIFO priority " + std::to_string(priority) +
                               (err == EPERM ? " (needs CAP_SYS_NICE and a real-time budget in "
                                               "the thread's cgroup)"
                                             : ""));
  }
  return Status::Ok();
}

std::thread StartRealtimeThread(int realtime_priority, std::function<void()> fn, Status* applied) {
  std::promise<Status> promise;
  std::future<Status> result = promise.get_future();
  std::thread t([realtime_priority, fn = std::move(fn), &promise] {
    promise.set_value(SetRealtimePriority(realtime_priority));  // `promise` dies after this
    fn();
  });
  *applied = result.get();
  return t;
}

}  // namespace vigil::core
