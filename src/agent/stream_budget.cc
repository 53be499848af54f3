#include "agent/stream_budget.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "agent/clock_wait.h"
#include "sensor/ebpf_sensor.h"

namespace vigil::agent {

namespace {
// What Step() plans while the stream is held on or off (modes other than budget).
constexpr int64_t kHeldStepNs = int64_t{3600} * 1'000'000'000;
}  // namespace

std::string_view StreamModeName(StreamMode mode) {
  switch (mode) {
    case StreamMode::kOff:
      return "off";
    case StreamMode::kOn:
      return "on";
    case StreamMode::kBudget:
      return "budget";
  }
  return "unknown";
}

// --- StreamGaps ----------------------------------------------------------------------------------

void StreamGaps::RecordResume(int64_t time_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t n = count_.load(std::memory_order_relaxed);
  kept_[n % kKept] = time_ns;
  count_.store(n + 1, std::memory_order_relaxed);
  latest_.store(time_ns, std::memory_order_release);
}

bool StreamGaps::Between(int64_t after_ns, int64_t upto_ns) const {
  if (after_ns >= latest_.load(std::memory_order_acquire) || upto_ns <= after_ns) return false;
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t n = count_.load(std::memory_order_relaxed);
  const size_t kept = static_cast<size_t>(std::min<uint64_t>(n, kKept));
  int64_t oldest = INT64_MAX;
  for (size_t i = 0; i < kept; ++i) {
    const int64_t t = kept_[i];
    if (t > after_ns && t <= upto_ns) return true;
    oldest = std::min(oldest, t);
  }
  // Resumes older than the kept ones may lie in the range when it ends before all of them.
  return n > kKept && upto_ns < oldest;
}

// --- StreamBudget --------------------------------------------------------------------------------

core::Status ValidateStreamBudgetOptions(const StreamBudgetOptions& o) {
  if (!(o.budget > 0 && o.budget < 1)) {
    return core::InvalidArgument("stream budget " + std::to_string(o.budget) +
                                 ": must be a share of the CPUs between 0 and 1 (exclusive)");
  }
  if (o.cpus < 1) return core::InvalidArgument("stream budget: cpus must be at least 1");
  if (o.kernel_ns_per_call < 0 || o.max_agent_ns_per_call < 0 || o.min_on_ns <= 0 || o.min_off_ns <= 0 || o.eval_ns <= 0 ||
      o.max_on_ns < o.min_on_ns || o.cycle_ns < o.min_on_ns + o.min_off_ns ||
      o.max_cycle_ns < o.cycle_ns || o.max_cycle_ns < o.max_on_ns + o.min_off_ns) {
    return core::InvalidArgument(
        "stream budget: periods must be positive with min_on <= max_on, min_on + min_off <= "
        "cycle <= max_cycle and max_on + min_off <= max_cycle");
  }
  return core::Status::Ok();
}

void StreamBudget::ObserveOn(int64_t on_ns, uint64_t calls, int64_t agent_cpu_ns) {
  if (on_ns <= 0) return;
  const double seconds = static_cast<double>(on_ns) * 1e-9;
  const double kernel_cores = static_cast<double>(calls) / seconds *
                              static_cast<double>(options_.kernel_ns_per_call) * 1e-9;
  const double agent_cores = std::clamp(
      static_cast<double>(agent_cpu_ns) / static_cast<double>(on_ns) -
          (have_off_ ? off_cpu_cores_ : 0.0),
      0.0,
      static_cast<double>(calls) / seconds * static_cast<double>(options_.max_agent_ns_per_call) *
          1e-9);
  const double sample = (kernel_cores + agent_cores) / options_.cpus;
  if (!have_cost_ || sample > cost_) {
    cost_ = sample;
  } else {
    cost_ += 0.5 * (sample - cost_);
  }
  have_cost_ = true;
}

void StreamBudget::ObserveOff(int64_t off_ns, int64_t agent_cpu_ns) {
  // Shorter than a millisecond (a mode change): too short to say anything.
  if (off_ns < 1'000'000) return;
  const double cores =
      std::max(0.0, static_cast<double>(agent_cpu_ns) / static_cast<double>(off_ns));
  off_cpu_cores_ = have_off_ ? off_cpu_cores_ + 0.5 * (cores - off_cpu_cores_) : cores;
  have_off_ = true;
}

double StreamBudget::WantedDuty() const {
  return cost_ <= options_.budget ? 1.0 : options_.budget / cost_;
}

double StreamBudget::duty() const {
  const double wanted = WantedDuty();
  if (wanted >= 1) return 1;
  const int64_t on = NextOnNs();
  const int64_t off = OffAfterNs(on);
  return static_cast<double>(on) / static_cast<double>(on + off);
}

int64_t StreamBudget::NextOnNs() const {
  const double d = WantedDuty();
  if (d >= 1) return options_.eval_ns;
  const auto on = static_cast<int64_t>(d * static_cast<double>(options_.cycle_ns));
  return std::clamp(on, options_.min_on_ns, options_.max_on_ns);
}

int64_t StreamBudget::OffAfterNs(int64_t on_ns) const {
  const double d = WantedDuty();
  if (d >= 1) return 0;
  on_ns = std::max<int64_t>(on_ns, 1);
  const double off = static_cast<double>(on_ns) * (1 - d) / d;
  const int64_t longest = std::max(options_.max_cycle_ns - on_ns, options_.min_off_ns);
  return std::clamp(static_cast<int64_t>(std::min(off, 1e18)), options_.min_off_ns, longest);
}

// --- EbpfStreamSwitch ----------------------------------------------------------------------------

core::Status EbpfStreamSwitch::SetStream(bool on) { return sensor_.SetSyscallStream(on); }

uint64_t EbpfStreamSwitch::StreamCalls() const {
  uint64_t calls = sensor_.StreamCalls();
  // Calls that ran the raw program but were not delivered cost the kernel side too.
  if (auto lost = sensor_.LostCounts(); lost.has_value()) {
    calls += (*lost)[static_cast<size_t>(sensor::EbpfLostCause::kRingBufferFull)] +
             (*lost)[static_cast<size_t>(sensor::EbpfLostCause::kFiltered)];
  }
  return calls;
}

int64_t EbpfStreamSwitch::EventTimeNs() const { return sensor_.EventTimeNs(); }

void EbpfStreamSwitch::SetSwitchingOften(bool often) { sensor_.SetKeepPerCallAttached(often); }

int64_t ProcessCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// --- StreamDutyCycler ----------------------------------------------------------------------------

StreamDutyCycler::StreamDutyCycler(StreamSwitch& sw, StreamMode mode, StreamBudgetOptions options,
                                   const core::Clock& clock, std::function<int64_t()> cpu_ns,
                                   std::shared_ptr<StreamGaps> gaps,
                                   std::function<void(const core::Status&)> on_error)
    : sw_(sw),
      clock_(clock),
      cpu_ns_(std::move(cpu_ns)),
      gaps_(std::move(gaps)),
      on_error_(std::move(on_error)),
      mode_(mode),
      budget_(options),
      on_(mode != StreamMode::kOff) {
  start_ns_ = phase_start_ns_ = clock_.MonotonicNanos();
  phase_end_ns_ = start_ns_ + budget_.NextOnNs();
  calls_mark_ = sw_.StreamCalls();
  cpu_mark_ns_ = cpu_ns_();
  sw_.SetSwitchingOften(mode == StreamMode::kBudget);
}

StreamDutyCycler::~StreamDutyCycler() { Stop(); }

core::Status StreamDutyCycler::SwitchLocked(bool on, int64_t now) {
  if (on == on_) return core::Status::Ok();
  // Before the switch: every event of the new on-period is later than this time.
  if (on && gaps_) gaps_->RecordResume(sw_.EventTimeNs());
  core::Status st = sw_.SetStream(on);
  if (!st.ok()) {
    ++failures_;
    return st.WithContext(on ? "switching the syscall stream on"
                             : "switching the syscall stream off");
  }
  if (on) {
    ++switched_on_;
  } else {
    ++switched_off_;
    on_total_ns_ += now - phase_start_ns_;
  }
  on_ = on;
  phase_start_ns_ = now;
  return core::Status::Ok();
}

core::Status StreamDutyCycler::SetMode(StreamMode mode, double budget) {
  if (mode == StreamMode::kBudget) {
    StreamBudgetOptions o = budget_.options();
    o.budget = budget;
    VIGIL_RETURN_IF_ERROR(ValidateStreamBudgetOptions(o));
  }
  core::Status st = ApplyMode(mode, budget);
  if (st.ok()) {
    // The thread of Start() may be waiting for a step planned under the old mode.
    {
      std::lock_guard<std::mutex> lock(thread_mu_);
      replan_ = true;
    }
    cv_.notify_all();
  }
  return st;
}

core::Status StreamDutyCycler::ApplyMode(StreamMode mode, double budget) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.MonotonicNanos();
  if (mode != StreamMode::kBudget) {
    VIGIL_RETURN_IF_ERROR(SwitchLocked(mode == StreamMode::kOn, now));
    sw_.SetSwitchingOften(false);
    mode_ = mode;
    return core::Status::Ok();
  }
  budget_.set_budget(budget);
  sw_.SetSwitchingOften(true);
  if (mode_ != StreamMode::kBudget) {
    // Cycle from the present state: an on-period measured from now, or an off-period that ends
    // at the next step.
    if (on_) {
      on_total_ns_ += now - phase_start_ns_;
      phase_start_ns_ = now;
    }
    phase_end_ns_ = on_ ? now + budget_.NextOnNs() : now;
    calls_mark_ = sw_.StreamCalls();
    cpu_mark_ns_ = cpu_ns_();
  }
  mode_ = mode;
  return core::Status::Ok();
}

int64_t StreamDutyCycler::Step() {
  core::Status failed;
  int64_t next = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_.MonotonicNanos();
    // Held on or off: nothing is due until SetMode, which wakes the thread of Start().
    if (mode_ != StreamMode::kBudget) return now + kHeldStepNs;
    if (now < phase_end_ns_) return phase_end_ns_;
    const int64_t cpu = cpu_ns_();
    const int64_t length = now - phase_start_ns_;
    if (on_ && warming_up_) {
      // The first period after Start(): the reader is still converting what the kernel queued
      // during the agent's start-up, which is not this period's rate.
      warming_up_ = false;
      calls_mark_ = sw_.StreamCalls();
      cpu_mark_ns_ = cpu;
      on_total_ns_ += length;
      phase_start_ns_ = now;
      phase_end_ns_ = now + budget_.NextOnNs();
    } else if (on_) {
      const uint64_t calls = sw_.StreamCalls();
      budget_.ObserveOn(length, calls - calls_mark_, cpu - cpu_mark_ns_);
      calls_mark_ = calls;
      cpu_mark_ns_ = cpu;
      const int64_t off = budget_.OffAfterNs(length);
      if (off > 0) failed = SwitchLocked(false, now);
      if (off > 0 && failed.ok()) {
        phase_end_ns_ = now + off;
      } else {  // stays on: the next on-period is measured from here
        on_total_ns_ += length;
        phase_start_ns_ = now;
        phase_end_ns_ = now + budget_.NextOnNs();
      }
    } else {
      budget_.ObserveOff(length, cpu - cpu_mark_ns_);
      cpu_mark_ns_ = cpu;
      failed = SwitchLocked(true, now);
      // A failed switch on stays off for another period and tries again.
      if (!failed.ok()) phase_start_ns_ = now;
      phase_end_ns_ = now + (failed.ok() ? budget_.NextOnNs()
                                         : std::max(budget_.OffAfterNs(budget_.NextOnNs()),
                                                    budget_.options().min_off_ns));
    }
    next = phase_end_ns_;
  }
  if (!failed.ok() && on_error_) on_error_(failed);
  return next;
}

void StreamDutyCycler::Start() {
  {
    // The first on-period is measured from here, not from the construction.
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_.MonotonicNanos();
    if (on_) {
      on_total_ns_ += now - phase_start_ns_;
      phase_start_ns_ = now;
      phase_end_ns_ = now + budget_.NextOnNs();
    }
    calls_mark_ = sw_.StreamCalls();
    cpu_mark_ns_ = cpu_ns_();
    warming_up_ = true;
  }
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(thread_mu_);
    while (!stop_) {
      lock.unlock();
      const int64_t next = Step();
      lock.lock();
      // Waits in steps of at most 50 ms for a clock other than the system clock (WaitSlice).
      while (!stop_ && !replan_) {
        const int64_t left = next - clock_.MonotonicNanos();
        if (left <= 0) break;
        cv_.wait_for(lock, WaitSlice(clock_, left));
      }
      replan_ = false;
    }
  });
}

void StreamDutyCycler::Stop() {
  {
    std::lock_guard<std::mutex> lock(thread_mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StreamDutyStats StreamDutyCycler::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.MonotonicNanos();
  StreamDutyStats s;
  s.mode = mode_;
  s.on = on_;
  s.budget = mode_ == StreamMode::kBudget ? budget_.options().budget : 0;
  s.cost = budget_.cost();
  s.planned_duty = mode_ == StreamMode::kBudget ? budget_.duty() : (on_ ? 1 : 0);
  s.on_ns = on_total_ns_ + (on_ ? now - phase_start_ns_ : 0);
  s.elapsed_ns = now - start_ns_;
  s.duty = s.elapsed_ns > 0 ? static_cast<double>(s.on_ns) / static_cast<double>(s.elapsed_ns)
                            : (on_ ? 1 : 0);
  s.switched_on = switched_on_;
  s.switched_off = switched_off_;
  s.switch_failures = failures_;
  return s;
}

}  // namespace vigil::agent
