// The bridge from policy decisions to enforcement: which decisions reach the enforcer, what they
// become there (ledger, audit records, counters), and what is never acted on. Kill works on the
// test's own children without root; freeze and block-network are the root e2e test's.

#include "agent/action_bridge.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "enforce/proc.h"

namespace vigil::agent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A child that waits to be killed; reaped by the destructor.
class Child {
 public:
  Child() {
    pid_ = fork();
    if (pid_ == 0) {
      for (;;) pause();
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // The signal that ended it, waiting at most ~5 s; 0 when it still runs.
  int WaitSignal() {
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
      }
      usleep(10'000);
    }
    return 0;
  }
  bool Alive() { return waitpid(pid_, nullptr, WNOHANG) == 0; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

policy::RuleHit Hit(std::string rule, core::Action action,
                    policy::Mode mode = policy::Mode::kEnforce) {
  policy::RuleHit h;
  h.rule = std::move(rule);
  h.output = h.rule + " output";
  h.action = action;
  h.mode = mode;
  return h;
}

// A decision about `pid` with these hits. The bridge reads the hits; of the decision's own
// fields only action and mode (whether it enforces at all), set as the engine does: the
// strongest enforcing hit's.
policy::Decision Decided(pid_t pid, std::vector<policy::RuleHit> hits) {
  policy::Decision d;
  d.target.pid = static_cast<uint32_t>(pid);
  d.target.ppid = static_cast<uint32_t>(getpid());
  for (const policy::RuleHit& h : hits) {
    if (h.mode != policy::Mode::kEnforce || !policy::Acts(h.action)) continue;
    if (d.mode != policy::Mode::kEnforce ||
        policy::ActionStrength(h.action) > policy::ActionStrength(d.action)) {
      d.action = h.action;
      d.mode = policy::Mode::kEnforce;
    }
  }
  if (d.mode != policy::Mode::kEnforce && !hits.empty()) d.action = hits[0].action;
  d.hits = std::move(hits);
  return d;
}

policy::Decision Enforcing(core::Action action, pid_t pid) {
  policy::RuleHit h = Hit("Test rule", action);
  h.output = "test output";
  return Decided(pid, {h});
}

policy::Decision EscalatingKill(pid_t pid, uint64_t timeout_seconds, policy::Fallback fallback) {
  policy::RuleHit h = Hit("Test rule", core::Action::kEscalate);
  h.output = "test output";
  h.proposed = core::Action::kKill;
  h.timeout_seconds = timeout_seconds;
  h.fallback = fallback;
  return Decided(pid, {h});
}

// The result of a decision with one enforcing hit.
SubmitResult One(const SubmitReport& report) {
  EXPECT_EQ(report.size(), 1u);
  return report.empty() ? SubmitResult::kDroppedStopped : report[0].result;
}

std::vector<std::string> Described(const SubmitReport& report) {
  std::vector<std::string> out;
  for (const Submitted& s : report) {
    out.push_back(std::string(core::ActionName(s.action)) + " " + s.rule + ": " +
                  std::string(SubmitResultName(s.result)));
  }
  return out;
}

double Metric(core::Registry& r, const std::string& series) {
  const std::string text = r.ExpositionText();
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

class ActionBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil_bridge_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    enforce::EnforcerOptions eo;
    eo.state_dir = dir_.string();
    eo.actor = "bridge test";
    // Not cgroup v2 and not bpffs: freeze and block-network fail before touching the host, as
    // root too (root's freeze and block-network are the e2e agent test's).
    eo.cgroup_root = (dir_ / "no-cgroup").string();
    eo.bpf_pin_dir = (dir_ / "no-bpf").string();
    auto e = enforce::Enforcer::Open(eo, clock_, registry_);
    ASSERT_TRUE(e.has_value()) << e.error().message();
    enforcer_ = std::move(e).value();
  }
  void TearDown() override {
    bridge_.reset();
    enforcer_.reset();
    fs::remove_all(dir_);
  }
  ActionBridge& Bridge(size_t capacity = 16) {
    ActionBridgeOptions o;
    o.queue_capacity = capacity;
    o.audit = [this](std::string_view type, nlohmann::json j) {
      audit_.emplace_back(std::string(type), std::move(j));
      return core::Status::Ok();
    };
    auto b = ActionBridge::Create(*enforcer_, std::move(o), registry_);
    EXPECT_TRUE(b.has_value()) << b.error().message();
    bridge_ = std::move(b).value();
    return *bridge_;
  }
  std::vector<enforce::LedgerEntry> Ledger() {
    auto l = enforcer_->List();
    EXPECT_TRUE(l.has_value());
    return l.has_value() ? *l : std::vector<enforce::LedgerEntry>{};
  }

  fs::path dir_;
  core::FakeClock clock_;
  core::Registry registry_;
  std::unique_ptr<enforce::Enforcer> enforcer_;
  std::unique_ptr<ActionBridge> bridge_;
  std::vector<std::pair<std::string, nlohmann::json>> audit_;
};

TEST_F(ActionBridgeTest, AnEnforcingKillIsCarriedOutOnTheWorkerWithLedgerAuditAndCounters) {
  Child child;
  ActionBridge& b = Bridge();
  b.Start();
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, child.pid()))), SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  EXPECT_EQ(child.WaitSignal(), SIGKILL);
  const auto ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].action, enforce::ActionKind::kKill);
  EXPECT_EQ(ledger[0].state, enforce::State::kApplied);
  EXPECT_EQ(ledger[0].mode, enforce::Mode::kEnforce);
  EXPECT_EQ(ledger[0].rule, "Test rule");
  EXPECT_EQ(ledger[0].reason, "test output");
  EXPECT_EQ(ledger[0].target.pid, child.pid());
  EXPECT_NE(ledger[0].target.start_time, 0u) << "the process is named with its start time";
  b.Stop();
  ASSERT_EQ(audit_.size(), 1u);  // moved to the audit writer by the worker
  EXPECT_EQ(audit_[0].first, "enforcement");
  EXPECT_EQ(audit_[0].second["state"], "applied");
  EXPECT_EQ(audit_[0].second["actor"], "bridge test");
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_success_total{action=\"kill\"}"), 1);
  EXPECT_EQ(
      Metric(registry_, "vigil_enforcement_ledger_entries{action=\"kill\",state=\"applied\"}"), 1);
}

TEST_F(ActionBridgeTest, MonitorDecisionsAndGateAnswersAreNotCarriedOut) {
  Child child;
  ActionBridge& b = Bridge();
  policy::Decision monitor =
      Decided(child.pid(), {Hit("Test rule", core::Action::kKill, policy::Mode::kMonitor)});
  monitor.would_enforce = true;
  EXPECT_TRUE(b.Submit(monitor).empty());
  policy::Decision alert = Enforcing(core::Action::kAlert, child.pid());  // enforce mode, no act
  EXPECT_TRUE(b.Submit(alert).empty());
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kDeny, child.pid()))), SubmitResult::kGateOnly);
  b.Stop();
  EXPECT_TRUE(child.Alive());
  EXPECT_TRUE(Ledger().empty());
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"gate-only\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_would_have_enforced_total{action=\"kill\"}"), 0)
      << "monitor decisions are counted by the policy engine, not turned into ledger entries";
}

TEST_F(ActionBridgeTest, NeverActsOnItselfItsParentChainInitOrKernelThreads) {
  ActionBridge& b = Bridge();
  EXPECT_TRUE(b.protected_pids().count(getpid()));
  EXPECT_TRUE(b.protected_pids().count(getppid()));
  for (pid_t pid : {getpid(), getppid(), pid_t{1}, pid_t{2}}) {
    EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, pid))), SubmitResult::kProtected) << pid;
  }
  // A kernel thread other than kthreadd, found by its PF_KTHREAD flag.
  pid_t kthread = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos || name == "2") continue;
    std::ifstream in(entry.path() / "stat");
    std::stringstream ss;
    ss << in.rdbuf();
    auto st = enforce::ParseStat(ss.str());
    if (st.has_value() && (st->flags & enforce::kPfKthread) != 0) {
      kthread = st->pid;
      break;
    }
  }
  if (kthread != 0) {
    policy::Decision d = Enforcing(core::Action::kKill, kthread);
    d.target.ppid = 0;  // even when the event did not say who its parent is
    EXPECT_EQ(One(b.Submit(d)), SubmitResult::kQueued);
  }
  b.Stop();
  EXPECT_TRUE(Ledger().empty());
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"protected\"}"),
            4 + (kthread != 0 ? 1 : 0));
  if (kthread == 0) GTEST_SKIP() << "no kernel thread besides kthreadd is visible in /proc";
}

TEST_F(ActionBridgeTest, AFailedActionIsCountedRecordedAndTheBridgeGoesOn) {
  pid_t gone = 0;
  {
    Child c;
    gone = c.pid();
  }  // killed and reaped: the pid names no process
  ActionBridge& b = Bridge();
  b.Start();
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, gone))), SubmitResult::kQueued);
  // A request the enforcer refuses outright (an escalation timeout out of range).
  Child asked;
  policy::Decision bad = Enforcing(core::Action::kEscalate, asked.pid());
  bad.hits[0].timeout_seconds = 0;
  EXPECT_EQ(One(b.Submit(bad)), SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  // The bridge still works afterwards.
  Child next;
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, next.pid()))), SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  EXPECT_EQ(next.WaitSignal(), SIGKILL);
  b.Stop();
  const auto ledger = Ledger();
  ASSERT_EQ(ledger.size(), 2u);  // the refused escalation never reached the ledger
  EXPECT_EQ(ledger[1].state, enforce::State::kFailed);
  EXPECT_EQ(ledger[0].state, enforce::State::kApplied);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_failure_total{action=\"kill\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_failure_total{action=\"escalate\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_success_total{action=\"kill\"}"), 1);
  EXPECT_TRUE(asked.Alive());
}

TEST_F(ActionBridgeTest, DuplicatesAreAskedOnceAndAFullQueueDropsCountedByCause) {
  Child a, c;
  ActionBridge& b = Bridge(/*capacity=*/1);  // not started: nothing is taken off the queue
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, a.pid()))), SubmitResult::kQueued);
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, a.pid()))), SubmitResult::kDuplicate);
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, c.pid()))), SubmitResult::kDroppedFull);
  EXPECT_EQ(b.queued(), 1u);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));  // runs the queued action here
  EXPECT_EQ(a.WaitSignal(), SIGKILL);
  // Carried out once; the same process is not asked again while the record says so.
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, a.pid()))), SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  b.Stop();
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kKill, c.pid()))), SubmitResult::kDroppedStopped);
  EXPECT_TRUE(c.Alive());
  EXPECT_EQ(Ledger().size(), 1u);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_dropped_total{cause=\"full\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_dropped_total{cause=\"stopped\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"duplicate\"}"), 2);
}

TEST_F(ActionBridgeTest, EveryEnforcingRuleHasItsActionCarriedOutOnceInOrderWithItsRuleName) {
  Child child;
  ActionBridge& b = Bridge();
  b.Start();
  policy::RuleHit ask = Hit("Ask", core::Action::kEscalate);
  ask.proposed = core::Action::kKill;
  ask.timeout_seconds = 120;
  ask.fallback = policy::Fallback::kAllow;
  const policy::Decision d = Decided(
      child.pid(), {Hit("Kill it", core::Action::kKill), ask,
                    Hit("Would freeze", core::Action::kFreeze, policy::Mode::kMonitor),
                    Hit("Cut off", core::Action::kBlockNetwork), Hit("Note", core::Action::kAlert),
                    Hit("Kill again", core::Action::kKill), Hit("At a gate", core::Action::kDeny)});
  ASSERT_EQ(d.action, core::Action::kKill);  // what the agent carried out alone before
  // Monitor-mode and alert hits are not actions; the rest in the order they are carried out.
  EXPECT_EQ(Described(b.Submit(d)),
            (std::vector<std::string>{"block-network Cut off: queued", "escalate Ask: queued",
                                      "deny At a gate: gate-only", "kill Kill it: queued",
                                      "kill Kill again: duplicate"}));
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  EXPECT_EQ(child.WaitSignal(), SIGKILL);
  b.Stop();

  auto ledger = Ledger();  // newest first
  std::reverse(ledger.begin(), ledger.end());
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(ledger[0].action, enforce::ActionKind::kBlockNetwork);
  EXPECT_EQ(ledger[0].rule, "Cut off");
  EXPECT_EQ(ledger[0].reason, "Cut off output");
  EXPECT_EQ(ledger[0].state, enforce::State::kFailed) << "no cgroup v2 in this fixture";
  EXPECT_EQ(ledger[1].action, enforce::ActionKind::kEscalate);
  EXPECT_EQ(ledger[1].rule, "Ask");
  EXPECT_EQ(ledger[1].state, enforce::State::kApplied);
  EXPECT_EQ(ledger[2].action, enforce::ActionKind::kKill);
  EXPECT_EQ(ledger[2].rule, "Kill it");
  EXPECT_EQ(ledger[2].state, enforce::State::kApplied);
  for (const auto& e : ledger) {
    EXPECT_EQ(e.target.pid, child.pid());
    EXPECT_EQ(e.mode, enforce::Mode::kEnforce);
  }
  // The escalation carries its own rule's proposal, timeout and default.
  auto escalations = enforcer_->Escalations(/*pending_only=*/false);
  ASSERT_TRUE(escalations.has_value());
  ASSERT_EQ(escalations->size(), 1u);
  EXPECT_EQ((*escalations)[0].rule, "Ask");
  EXPECT_EQ((*escalations)[0].proposed, enforce::ActionKind::kKill);
  EXPECT_EQ((*escalations)[0].on_timeout, enforce::TimeoutDefault::kDismiss);
  EXPECT_EQ((*escalations)[0].deadline_ns - (*escalations)[0].created_ns,
            int64_t{120} * 1'000'000'000);

  // One audit record per action, each naming its rule.
  std::vector<std::string> audited;
  for (const auto& [type, j] : audit_) {
    if (type == "enforcement") audited.push_back(j.value("rule", "?"));
  }
  EXPECT_EQ(audited, (std::vector<std::string>{"Cut off", "Ask", "Kill it"}));
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_rule_actions_total{action=\"block-network\","
                              "result=\"failed\",rule=\"Cut off\"}"),
            1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_rule_actions_total{action=\"escalate\","
                              "result=\"applied\",rule=\"Ask\"}"),
            1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_rule_actions_total{action=\"kill\","
                              "result=\"applied\",rule=\"Kill it\"}"),
            1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_success_total{action=\"escalate\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_success_total{action=\"kill\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"duplicate\"}"), 1);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"gate-only\"}"), 1);
  // Each applied action is its own ledger entry: the escalation can be undone on its own.
  auto undone = enforcer_->Rollback(ledger[1].id);
  ASSERT_TRUE(undone.has_value()) << undone.error().message();
  EXPECT_EQ(undone->state, enforce::State::kRolledBack);
}

TEST_F(ActionBridgeTest, FreezeAndBlockNetworkOfOneDecisionAreBothCarriedOutFreezeFirst) {
  Child child;
  ActionBridge& b = Bridge();
  const policy::Decision d =
      Decided(child.pid(), {Hit("Cut off", core::Action::kBlockNetwork),
                            Hit("Hold", core::Action::kFreeze), Hit("Ask", core::Action::kEscalate)});
  EXPECT_EQ(Described(b.Submit(d)),
            (std::vector<std::string>{"freeze Hold: queued", "block-network Cut off: queued",
                                      "escalate Ask: queued"}));
  EXPECT_EQ(b.queued(), 3u);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  b.Stop();
  auto ledger = Ledger();
  std::reverse(ledger.begin(), ledger.end());
  ASSERT_EQ(ledger.size(), 3u);
  EXPECT_EQ(ledger[0].action, enforce::ActionKind::kFreeze);
  EXPECT_EQ(ledger[0].rule, "Hold");
  EXPECT_EQ(ledger[1].action, enforce::ActionKind::kBlockNetwork);
  EXPECT_EQ(ledger[1].rule, "Cut off");
  EXPECT_EQ(ledger[2].action, enforce::ActionKind::kEscalate);
  EXPECT_EQ(ledger[2].rule, "Ask");
  EXPECT_TRUE(child.Alive());
}

TEST_F(ActionBridgeTest, AKillSupersedesAFreezeOfTheSameDecisionAndLaterActionsOnTheProcess) {
  Child child;
  ActionBridge& b = Bridge();
  EXPECT_EQ(Described(b.Submit(Decided(child.pid(), {Hit("Hold", core::Action::kFreeze),
                                                     Hit("Kill it", core::Action::kKill)}))),
            (std::vector<std::string>{"freeze Hold: superseded", "kill Kill it: queued"}));
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  // A later decision about the killed process (its events may trail the kill).
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kBlockNetwork, child.pid()))),
            SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  EXPECT_EQ(child.WaitSignal(), SIGKILL);
  EXPECT_EQ(One(b.Submit(Enforcing(core::Action::kFreeze, child.pid()))), SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  b.Stop();
  const auto ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].action, enforce::ActionKind::kKill);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_skipped_total{cause=\"superseded\"}"), 3);
}

TEST_F(ActionBridgeTest, AFullQueueDropsEachActionItHasNoRoomFor) {
  Child child;
  ActionBridge& b = Bridge(/*capacity=*/2);  // not started
  EXPECT_EQ(Described(b.Submit(Decided(child.pid(), {Hit("Ask", core::Action::kEscalate),
                                                     Hit("Cut off", core::Action::kBlockNetwork),
                                                     Hit("Kill it", core::Action::kKill)}))),
            (std::vector<std::string>{"block-network Cut off: queued", "escalate Ask: queued",
                                      "kill Kill it: full"}));
  EXPECT_EQ(b.queued(), 2u);
  EXPECT_EQ(Metric(registry_, "vigil_enforcement_dropped_total{cause=\"full\"}"), 1);
  // The worker says so in the log, naming the setting to raise.
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  b.Stop();
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_NE(log.str().find("1 action(s) dropped since the last report: the queue of 2 was full "
                           "(raise policy.enforcement_queue"),
            std::string::npos)
      << log.str();
  EXPECT_TRUE(child.Alive());
}

TEST_F(ActionBridgeTest, EscalationWaitsWithTheRulesTimeoutAndItsDefaultAppliesOnExpiry) {
  Child child;
  ActionBridge& b = Bridge();
  // Nobody answers: the fallback deny carries the kill out.
  EXPECT_EQ(One(b.Submit(EscalatingKill(child.pid(), 60, policy::Fallback::kDeny))),
            SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  auto pending = enforcer_->Escalations(/*pending_only=*/true);
  ASSERT_TRUE(pending.has_value());
  ASSERT_EQ(pending->size(), 1u);
  const enforce::Escalation& e = (*pending)[0];
  EXPECT_EQ(e.proposed, enforce::ActionKind::kKill);
  EXPECT_EQ(e.on_timeout, enforce::TimeoutDefault::kEnforce);
  EXPECT_EQ(e.deadline_ns - e.created_ns, int64_t{60} * 1'000'000'000);
  EXPECT_EQ(e.rule, "Test rule");
  b.Housekeep();
  EXPECT_TRUE(child.Alive()) << "not before the deadline";
  clock_.Advance(int64_t{61} * 1'000'000'000);
  b.Housekeep();  // the agent's worker does this every second
  EXPECT_EQ(child.WaitSignal(), SIGKILL);
  auto all = enforcer_->Escalations(/*pending_only=*/false);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ((*all)[0].state, enforce::EscalationState::kExpired);
  EXPECT_NE((*all)[0].result_id, 0u);
  b.Stop();
  bool expired_record = false;
  for (const auto& [type, j] : audit_) {
    if (type == "escalation" && j.value("event", "") == "expired") expired_record = true;
  }
  EXPECT_TRUE(expired_record);
}

TEST_F(ActionBridgeTest, EscalationWithAnAllowFallbackIsDismissedOnExpiry) {
  Child child;
  ActionBridge& b = Bridge();
  EXPECT_EQ(One(b.Submit(EscalatingKill(child.pid(), 5, policy::Fallback::kAllow))),
            SubmitResult::kQueued);
  ASSERT_TRUE(b.WaitIdle(milliseconds(5000)));
  clock_.Advance(int64_t{6} * 1'000'000'000);
  b.Housekeep();
  EXPECT_TRUE(child.Alive());
  auto all = enforcer_->Escalations(/*pending_only=*/false);
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, enforce::EscalationState::kExpired);
  EXPECT_EQ((*all)[0].result_id, 0u);
}

}  // namespace
}  // namespace vigil::agent
