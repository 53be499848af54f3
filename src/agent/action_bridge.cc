#include "agent/action_bridge.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "enforce/from_policy.h"
#include "enforce/proc.h"

namespace vigil::agent {
namespace {

constexpr size_t kMaxReasonBytes = 4096;  // the enforcer's limit on rule and reason
constexpr size_t kMaxDoneEntries = 65536;

core::Result<enforce::StatFields> ReadProcStat(const std::string& proc_root, int32_t pid) {
  const std::string path = proc_root + "/" + std::to_string(pid) + "/stat";
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound(path + ": cannot be read (the process is gone)");
  std::stringstream ss;
  ss << in.rdbuf();
  auto f = enforce::ParseStat(ss.str());
  if (!f.has_value()) return f.error().WithContext(path);
  return f;
}

enforce::TimeoutDefault DefaultFor(policy::Fallback f) {
  return f == policy::Fallback::kDeny ? enforce::TimeoutDefault::kEnforce
                                      : enforce::TimeoutDefault::kDismiss;
}

// The order in which one decision's actions are carried out (action_bridge.h): what needs the
// process alive first, the kill last.
int CarryRank(core::Action a) {
  switch (a) {
    case core::Action::kFreeze: return 0;
    case core::Action::kBlockNetwork: return 1;
    case core::Action::kEscalate: return 2;
    case core::Action::kKill: return 4;
    default: return 3;  // deny: skipped as gate-only
  }
}

}  // namespace

std::string_view SubmitResultName(SubmitResult r) {
  switch (r) {
    case SubmitResult::kQueued: return "queued";
    case SubmitResult::kGateOnly: return "gate-only";
    case SubmitResult::kProtected: return "protected";
    case SubmitResult::kDuplicate: return "duplicate";
    case SubmitResult::kSuperseded: return "superseded";
    case SubmitResult::kDroppedFull: return "full";
    case SubmitResult::kDroppedStopped: return "stopped";
  }
  return "?";
}

ActionBridge::ActionBridge(enforce::Enforcer& enforcer, ActionBridgeOptions options,
                           core::Registry& registry)
    : enforcer_(enforcer), options_(std::move(options)), registry_(registry) {}

core::Result<std::unique_ptr<ActionBridge>> ActionBridge::Create(enforce::Enforcer& enforcer,
                                                                 ActionBridgeOptions options,
                                                                 core::Registry& registry) {
  if (options.queue_capacity == 0) {
    return core::InvalidArgument("enforcement queue: the capacity must be at least 1");
  }
  std::unique_ptr<ActionBridge> b(new ActionBridge(enforcer, std::move(options), registry));
  // The agent and every ancestor up to init: acting on one of them would stop the agent.
  b->protected_ = {0, 1, 2};
  int32_t pid = static_cast<int32_t>(getpid());
  for (int depth = 0; depth < 4096 && pid > 1 && b->protected_.insert(pid).second; ++depth) {
    auto stat = ReadProcStat(b->options_.proc_root, pid);
    if (!stat.has_value()) break;
    pid = stat->ppid;
  }
  auto counter = [&](const char* name, const char* help, const core::Labels& labels,
                     core::Counter** out) -> core::Status {
    auto c = registry.GetCounter(name, help, labels);
    if (!c.has_value()) return c.error();
    *out = *c;
    return core::Status::Ok();
  };
  const char* kSkipped = "Enforcing decisions not carried out, by cause";
  const char* kDropped = "Enforcing decisions dropped before the enforcer, by cause";
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_skipped_total", kSkipped,
                                {{"cause", "protected"}}, &b->skipped_protected_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_skipped_total", kSkipped,
                                {{"cause", "duplicate"}}, &b->skipped_duplicate_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_skipped_total", kSkipped,
                                {{"cause", "gate-only"}}, &b->skipped_gate_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_skipped_total", kSkipped,
                                {{"cause", "superseded"}}, &b->skipped_superseded_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_dropped_total", kDropped, {{"cause", "full"}},
                                &b->dropped_full_));
  VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_dropped_total", kDropped,
                                {{"cause", "stopped"}}, &b->dropped_stopped_));
  for (int a = 0; a < enforce::kActionKindCount; ++a) {
    const std::string action(enforce::ActionKindName(static_cast<enforce::ActionKind>(a)));
    // The enforcer's own counter (same name, help and labels): requests it refused or could
    // not record count as failures as well as those that failed on the host.
    VIGIL_RETURN_IF_ERROR(counter("vigil_enforcement_failure_total",
                                  "Enforcement actions that failed on the host",
                                  {{"action", action}}, &b->failure_[a]));
    for (int s = 0; s < enforce::kStateCount; ++s) {
      const std::string state(enforce::StateName(static_cast<enforce::State>(s)));
      ActionBridge* self = b.get();
      auto h = registry.AddCallbackGauge(
          "vigil_enforcement_ledger_entries",
          "Entries of the enforcement ledger by action and state (all processes, all runs)",
          {{"action", action}, {"state", state}}, [self, a, s] {
            std::lock_guard<std::mutex> lock(self->tally_mu_);
            return static_cast<double>(self->tally_.by_state[s][a]);
          });
      if (!h.has_value()) return h.error();
      b->gauges_.push_back(std::move(h).value());
    }
  }
  b->reported_full_ = b->dropped_full_->Value();  // (a registry shared with an earlier bridge)
  b->Housekeep();
  return b;
}

ActionBridge::~ActionBridge() {
  Stop();
  for (auto& g : gauges_) g.Reset();
}

void ActionBridge::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  worker_ = std::thread([this] { Worker(); });
}

void ActionBridge::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) {
    worker_.join();
  } else {
    WaitIdle(std::chrono::milliseconds(0));
    Housekeep();
  }
  ReportDrops(/*now=*/true);
}

size_t ActionBridge::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

SubmitReport ActionBridge::Submit(const policy::Decision& d) {
  SubmitReport report;
  if (!d.enforce()) return report;
  std::vector<const policy::RuleHit*> hits;
  bool kills = false;
  for (const policy::RuleHit& h : d.hits) {
    if (h.mode != policy::Mode::kEnforce || !policy::Acts(h.action)) continue;
    hits.push_back(&h);
    kills = kills || h.action == core::Action::kKill;
  }
  std::stable_sort(hits.begin(), hits.end(), [](const auto* x, const auto* y) {
    return CarryRank(x->action) < CarryRank(y->action);
  });
  const auto pid = static_cast<int32_t>(d.target.pid);
  const bool is_protected = pid <= 0 || protected_.count(pid) != 0 || d.target.ppid == 2;
  uint32_t asked = 0;  // one bit per core::Action an earlier hit asked for
  report.reserve(hits.size());
  for (const policy::RuleHit* h : hits) {
    Submitted s{h->action, h->rule.substr(0, kMaxReasonBytes), SubmitResult::kQueued};
    const uint32_t bit = 1u << static_cast<unsigned>(h->action);
    auto kind = enforce::ActionKindFor(h->action);
    if (!kind.has_value()) {
      skipped_gate_->Inc();
      s.result = SubmitResult::kGateOnly;
    } else if (is_protected) {
      skipped_protected_->Inc();
      s.result = SubmitResult::kProtected;
    } else if ((asked & bit) != 0) {
      skipped_duplicate_->Inc();
      s.result = SubmitResult::kDuplicate;
    } else if (kills && *kind == enforce::ActionKind::kFreeze) {
      skipped_superseded_->Inc();
      s.result = SubmitResult::kSuperseded;
    } else {
      s.result = Enqueue(*h, *kind, pid);
    }
    asked |= bit;
    report.push_back(std::move(s));
  }
  return report;
}

SubmitResult ActionBridge::Enqueue(const policy::RuleHit& hit, enforce::ActionKind kind,
                                   int32_t pid) {
  const std::pair<int32_t, uint8_t> key{pid, static_cast<uint8_t>(kind)};
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    dropped_stopped_->Inc();
    return SubmitResult::kDroppedStopped;
  }
  if (pending_.count(key) != 0) {
    skipped_duplicate_->Inc();
    return SubmitResult::kDuplicate;
  }
  if (queue_.size() >= options_.queue_capacity) {
    dropped_full_->Inc();
    return SubmitResult::kDroppedFull;
  }
  Item item;
  item.action = kind;
  item.pid = pid;
  item.rule = hit.rule.substr(0, kMaxReasonBytes);
  item.reason = hit.output.substr(0, kMaxReasonBytes);
  if (kind == enforce::ActionKind::kEscalate) {
    auto proposed = enforce::ActionKindFor(hit.proposed);
    item.proposed = proposed.has_value() ? *proposed : enforce::ActionKind::kFreeze;
    item.on_timeout = DefaultFor(hit.fallback);
    item.timeout_seconds = hit.timeout_seconds;
  }
  queue_.push_back(std::move(item));
  pending_.insert(key);
  lock.unlock();
  cv_.notify_one();
  return SubmitResult::kQueued;
}

void ActionBridge::CountRule(const std::string& rule, enforce::ActionKind action,
                             std::string_view result) {
  auto c = registry_.GetCounter(
      "vigil_enforcement_rule_actions_total",
      "Actions the agent's enforcement worker carried out per rule, by result",
      {{"rule", rule}, {"action", std::string(enforce::ActionKindName(action))},
       {"result", std::string(result)}});
  if (c.has_value()) (*c)->Inc();
}

bool ActionBridge::IsKernelThread(int32_t pid, uint64_t* start_time) const {
  auto stat = ReadProcStat(options_.proc_root, pid);
  if (!stat.has_value()) return false;  // gone: the enforcer records the failure
  *start_time = stat->start_time;
  return (stat->flags & enforce::kPfKthread) != 0 || stat->ppid == 2;
}

void ActionBridge::Carry(const Item& item) {
  const std::pair<int32_t, uint8_t> key{item.pid, static_cast<uint8_t>(item.action)};
  uint64_t start_time = 0;
  if (IsKernelThread(item.pid, &start_time)) {
    skipped_protected_->Inc();
    return;
  }
  if (auto it = done_.find(key);
      it != done_.end() && (start_time == 0 || it->second == start_time)) {
    // The same process (or, once it is gone, the pid we already acted on).
    skipped_duplicate_->Inc();
    return;
  }
  if (auto it = killed_.find(item.pid);
      it != killed_.end() && (start_time == 0 || it->second == start_time)) {
    // Nothing is left to act on once the kill went through.
    skipped_superseded_->Inc();
    return;
  }
  enforce::ActionRequest r;
  r.action = item.action;
  r.target.kind = enforce::TargetKind::kProcess;
  r.target.pid = item.pid;
  r.target.start_time = start_time;
  r.rule = item.rule;
  r.reason = item.reason;
  r.mode = enforce::Mode::kEnforce;
  r.proposed = item.proposed;
  r.on_timeout = item.on_timeout;
  r.timeout_seconds = item.timeout_seconds;
  const core::Result<enforce::Outcome> out = enforcer_.Apply(r);
  const std::string_view action = enforce::ActionKindName(item.action);
  CountRule(item.rule, item.action,
            !out.has_value() ? "refused" : enforce::StateName(out->state));
  if (!out.has_value()) {
    failure_[static_cast<int>(item.action)]->Inc();
    spdlog::error("enforcement: {} {} (rule \"{}\") refused: {}", action, r.target.ToString(),
                  item.rule, out.error().message());
  } else if (out->state == enforce::State::kFailed) {
    spdlog::warn("enforcement: action {}: {} {} (rule \"{}\") failed: {}", out->id, action,
                 r.target.ToString(), item.rule, out->detail);
  } else {
    spdlog::debug("enforcement: action {}: {} {} (rule \"{}\"): {}", out->id, action,
                 r.target.ToString(), item.rule, out->detail);
  }
  if (done_.size() >= kMaxDoneEntries) done_.clear();  // bounded; a repeat is then recorded again
  done_[key] = start_time;
  if (item.action == enforce::ActionKind::kKill && out.has_value() &&
      out->state == enforce::State::kApplied) {
    if (killed_.size() >= kMaxDoneEntries) killed_.clear();
    killed_[item.pid] = start_time;
  }
  if (options_.on_result) options_.on_result(r, out);
}

void ActionBridge::ReportDrops(bool now) {
  const auto t = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(report_mu_);
  const uint64_t full = dropped_full_->Value();
  if (full == reported_full_ || (!now && t < next_report_)) return;
  spdlog::warn("enforcement: {} action(s) dropped since the last report: the queue of {} was "
               "full (raise policy.enforcement_queue; vigil_enforcement_dropped_total"
               "{{cause=\"full\"}} {})",
               full - reported_full_, options_.queue_capacity, full);
  reported_full_ = full;
  next_report_ = t + options_.housekeeping_interval;
}

void ActionBridge::Housekeep() {
  ReportDrops(/*now=*/false);
  auto expired = enforcer_.ExpireDue();
  if (!expired.has_value()) {
    spdlog::warn("enforcement: expiring escalations: {}", expired.error().message());
  } else if (*expired > 0) {
    spdlog::info("enforcement: {} escalation(s) expired unanswered; their defaults applied",
                 *expired);
  }
  if (options_.audit) {
    auto drained = enforcer_.DrainAudit(options_.audit);
    if (!drained.has_value()) {
      spdlog::warn("enforcement: moving audit records: {}", drained.error().message());
    }
  }
  auto tally = enforcer_.Count();
  if (tally.has_value()) {
    std::lock_guard<std::mutex> lock(tally_mu_);
    tally_ = *tally;
  }
}

bool ActionBridge::WaitIdle(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) {
    while (!queue_.empty()) {
      Item item = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      Carry(item);
      lock.lock();
      pending_.erase({item.pid, static_cast<uint8_t>(item.action)});
    }
    return true;
  }
  return idle_cv_.wait_for(lock, limit,
                           [&] { return (queue_.empty() && !busy_) || worker_done_; });
}

void ActionBridge::Worker() {
  auto next_housekeeping = std::chrono::steady_clock::now() + options_.housekeeping_interval;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait_until(lock, next_housekeeping, [&] { return !queue_.empty() || stopping_; });
    if (!queue_.empty()) {
      Item item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      Carry(item);
      Housekeep();  // the action's audit record reaches the log now
      lock.lock();
      pending_.erase({item.pid, static_cast<uint8_t>(item.action)});
      busy_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
      continue;
    }
    if (stopping_) break;
    if (std::chrono::steady_clock::now() >= next_housekeeping) {
      lock.unlock();
      Housekeep();
      lock.lock();
      next_housekeeping = std::chrono::steady_clock::now() + options_.housekeeping_interval;
    }
  }
  lock.unlock();
  Housekeep();
  lock.lock();
  worker_done_ = true;
  idle_cv_.notify_all();
}

}  // namespace vigil::agent
