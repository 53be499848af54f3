#pragma once

// Real-time scheduling for the threads that hold a caller waiting: the gates' deciding threads
// (docs/gates.md, "Priority") and the gateway's proxy (docs/gateway.md). On a loaded host the
// wait for a core, not the decision, sets such a thread's tail latency.

#include <functional>
#include <thread>

#include "core/status.h"

namespace vigil::core {

// kInvalidArgument unless `priority` is 0 (off) or 1..99.
Status CheckRealtimePriority(int priority);

// Priority 1..99 puts the calling thread in SCHED_FIFO at that priority, with
// SCHED_RESET_ON_FORK so that nothing it starts inherits it; 0 leaves it as it is. Errors:
// kInvalidArgument (outside 0..99), or the errno of sched_setscheduler (EPERM without
// CAP_SYS_NICE or without a real-time budget in the thread's cgroup).
Status SetRealtimePriority(int priority);

// Starts a thread running `fn` at `realtime_priority` (SetRealtimePriority). The thread always
// starts; *applied says whether the priority was applied, for the caller to report (a thread
// at normal priority still does its work).
std::thread StartRealtimeThread(int realtime_priority, std::function<void()> fn, Status* applied);

}  // namespace vigil::core
