#include "sensor/gate_call.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>
#include <string>

namespace vigil::sensor {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::chrono::steady_clock::time_point AtNs(int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

}  // namespace

int64_t GateNowNs() { return NowNs(); }

GateStageTimes::GateStageTimes(core::Registry* registry, std::string_view gate) {
  if (registry == nullptr) return;
  core::Histogram* got[kStages] = {};
  for (int s = 0; s < kStages; ++s) {
    auto h = registry->GetHistogram(
        "vigil_gate_stage_seconds",
        "Time a held call spends in each stage on the gate's thread (receive: woken to the call "
        "read; decide: the decider; answer: the answer written to the kernel)",
        {{"gate", std::string(gate)}, {"stage", std::string(Name(static_cast<Stage>(s)))}});
    if (!h.has_value()) return;  // refused: nothing is timed
    got[s] = *h;
  }
  for (int s = 0; s < kStages; ++s) stage_[s] = got[s];
}

std::string_view GateStageTimes::Name(Stage stage) {
  switch (stage) {
    case kReceive: return "receive";
    case kDecide: return "decide";
    case kAnswer: return "answer";
    case kStages: break;
  }
  return "";
}

GateWatchdog::GateWatchdog(AnswerFn answer, GateDecider* decider, int realtime_priority)
    : answer_(std::move(answer)), decider_(decider), realtime_priority_(realtime_priority) {
  // Started with its priority in force when the constructor returns; a refusal is the gate
  // thread's to report (the host's answer is the same for both).
  core::Status refused;
  thread_ = core::StartRealtimeThread(realtime_priority_, [this] { Run(); }, &refused);
}

GateWatchdog::~GateWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int64_t GateWatchdog::sleeping_until() {
  std::lock_guard<std::mutex> lock(mu_);
  return sleeping_until_;
}

void GateWatchdog::SetStuckHook(int64_t period_ns, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  stuck_period_ns_ = period_ns;
  stuck_hook_ = std::move(fn);
}

void GateWatchdog::Begin(Slot* slot) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot->answered = false;
    slots_.push_back(slot);
    // A deadline earlier than the one the thread sleeps towards (any, when it is idle) must wake
    // it, or the call would be answered only at that later time.
    wake = slot->control->deadline_ns() < sleeping_until_;
  }
  if (wake) cv_.notify_one();
}

bool GateWatchdog::Finish(Slot* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(slots_.begin(), slots_.end(), slot);
  if (it != slots_.end()) slots_.erase(it);
  // A decision that finished past the deadline is late whether or not this thread has woken yet
  // (on a loaded machine it may wake after the deciding thread): the call gets its fallback,
  // counted as a deadline answer, exactly as if the watchdog had been on time.
  if (!slot->answered && NowNs() >= slot->control->deadline_ns()) AnswerAtDeadlineLocked(slot);
  return !slot->answered;
}

void GateWatchdog::AnswerAtDeadlineLocked(Slot* s) {
  const GateAnswer a = s->control->fallback();
  s->answered = true;
  answer_(*s->call, s->token, a);
  deadline_answers_.fetch_add(1, std::memory_order_relaxed);
  if (decider_ != nullptr) decider_->OnFallback(*s->call, a, GateFallbackCause::kDeadline);
}

int GateWatchdog::AnswerAllNow(GateAnswer a, GateFallbackCause cause) {
  std::lock_guard<std::mutex> lock(mu_);
  int answered = 0;
  for (Slot* s : slots_) {
    if (s->answered) continue;
    s->answered = true;
    answer_(*s->call, s->token, a);
    ++answered;
    if (decider_ != nullptr) decider_->OnFallback(*s->call, a, cause);
  }
  return answered;
}

bool GateWatchdog::Decide(const GateCall& call, uint64_t token, CallControl* control,
                          GateAnswer* answer) {
  Slot slot;
  slot.call = &call;
  slot.token = token;
  slot.control = control;
  Begin(&slot);
  *answer = decider_->Decide(call, control);
  if (Finish(&slot)) {
    decider_->Answered(call, *answer);
    return true;
  }
  decider_->Late(call, *answer);
  return false;
}

void GateWatchdog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    int64_t earliest = std::numeric_limits<int64_t>::max();
    bool overdue = false;
    const int64_t now = NowNs();
    for (Slot* s : slots_) {
      if (s->answered) {
        overdue = true;
        continue;
      }
      if (now >= s->control->deadline_ns()) {
        AnswerAtDeadlineLocked(s);
        overdue = true;
        continue;
      }
      earliest = std::min(earliest, s->control->deadline_ns());
    }
    if (overdue && stuck_hook_ && stuck_period_ns_ > 0) {
      stuck_hook_();
      earliest = std::min(earliest, NowNs() + stuck_period_ns_);
    }
    sleeping_until_ = earliest;
    if (earliest == std::numeric_limits<int64_t>::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, AtNs(earliest));
    }
    sleeping_until_ = std::numeric_limits<int64_t>::max();
  }
}

short WaitReadable(int fd, int stop_fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if (fds[1].revents != 0) return 0;
    if (fds[0].revents != 0) return fds[0].revents;
  }
}

}  // namespace vigil::sensor
