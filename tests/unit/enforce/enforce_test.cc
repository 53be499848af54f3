// The enforcement value types, the /proc parsers and the ledger, escalation queue and audit
// outbox, with actions that do not touch the host (alert, monitor mode, escalations of alerts).

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "enforce/enforce.h"
#include "enforce/from_policy.h"
#include "enforce/proc.h"
#include "policy/rules.h"

namespace vigil::enforce {
namespace {

namespace fs = std::filesystem;

TEST(TargetTest, ParsesAndPrintsTheThreeKinds) {
  auto p = ParseTarget("pid:42");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, TargetKind::kProcess);
  EXPECT_EQ(p->pid, 42);
  EXPECT_EQ(p->ToString(), "pid:42");
  auto s = ParseTarget("pid:42@123456");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->start_time, 123456u);
  EXPECT_EQ(s->ToString(), "pid:42@123456");
  auto g = ParseTarget("pgid:7");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->kind, TargetKind::kProcessGroup);
  auto c = ParseTarget("cgroup:/system.slice/x.service");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->cgroup, "/system.slice/x.service");
  EXPECT_EQ(c->ToString(), "cgroup:/system.slice/x.service");
}

TEST(TargetTest, RefusesBadTargetsNamingTheFault) {
  for (const char* bad : {"", "pid:", "pid:0", "pid:-1", "pid:4194305", "pid:12x", "pid:1@0",
                          "pgid:3@5", "cgroup:", "cgroup:/", "cgroup:a/b", "cgroup:/a/../b",
                          "cgroup:/a//b", "cgroup:/a/", "cgroup:/a\nb", "proc:1"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_EQ(t.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(t.error().message().find("target \""), std::string::npos) << t.error().message();
  }
}

TEST(ProcParseTest, StatFieldsComeAfterTheLastParenthesis) {
  const std::string stat =
      "123 (a) (b) c) S 1 77 77 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
  auto f = ParseStat(stat);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ(f->pid, 123);
  EXPECT_EQ(f->state, 'S');
  EXPECT_EQ(f->ppid, 1);
  EXPECT_EQ(f->pgrp, 77);
  EXPECT_EQ(f->start_time, 987654u);
  EXPECT_EQ(f->flags, 4194304u);
  EXPECT_EQ(f->flags & kPfKthread, 0u);
  EXPECT_FALSE(ParseStat("123 (a) S 1").has_value());
  EXPECT_FALSE(ParseStat("x (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20").has_value());
  EXPECT_FALSE(ParseStat("").has_value());
}

TEST(ProcParseTest, CgroupV2LineAndMountinfo) {
  auto p = ParseCgroupV2Path("12:pids:/x\n0::/user.slice/a b\n");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, "/user.slice/a b");
  EXPECT_EQ(ParseCgroupV2Path("1:cpu:/\n").error().code(), core::StatusCode::kNotFound);
  EXPECT_EQ(ParseCgroupV2Path("0::relative\n").error().code(),
            core::StatusCode::kInvalidArgument);
  const std::string mountinfo =
      "30 1 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
      "40 31 0:38 /sub /mnt/x rw - cgroup2 cgroup2 rw\n"
      "41 31 0:38 / /sys/fs/cgroup/my\\040unified rw shared:9 - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(FindCgroup2Mount(mountinfo), "/sys/fs/cgroup/my unified");
  EXPECT_EQ(FindCgroup2Mount("30 1 0:26 / /a rw - ext4 /dev/x rw\n"), std::nullopt);
  EXPECT_EQ(FindCgroup2Mount("garbage\n - \n"), std::nullopt);
}

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vigil-enforce-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    Reopen();
  }
  void TearDown() override {
    enforcer_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    enforcer_.reset();
    EnforcerOptions o;
    o.state_dir = dir_.string();
    auto e = Enforcer::Open(o, clock_, registry_);
    ASSERT_TRUE(e.has_value()) << e.error().message();
    enforcer_ = std::move(e).value();
  }
  uint64_t Count(const char* name, const char* action) {
    return (*registry_.GetCounter(name, "", {{"action", action}}))->Value();
  }
  std::vector<std::pair<std::string, nlohmann::json>> Drain() {
    std::vector<std::pair<std::string, nlohmann::json>> out;
    auto n = enforcer_->DrainAudit([&](std::string_view type, nlohmann::json j) {
      out.emplace_back(std::string(type), std::move(j));
      return core::Status::Ok();
    });
    EXPECT_TRUE(n.has_value());
    return out;
  }
  static ActionRequest Request(ActionKind a, Mode m, std::string target = "pid:4242") {
    ActionRequest r;
    r.action = a;
    r.target = *ParseTarget(target);
    r.rule = "Test rule";
    r.reason = "test";
    r.mode = m;
    return r;
  }

  fs::path dir_;
  core::FakeClock clock_;
  core::Registry registry_;
  std::unique_ptr<Enforcer> enforcer_;
};

TEST_F(LedgerTest, MonitorModeRecordsAndCountsButNeverActs) {
  // pid 4242 need not exist: monitor mode does not look at the host.
  for (ActionKind a : {ActionKind::kKill, ActionKind::kFreeze, ActionKind::kBlockNetwork,
                       ActionKind::kKill}) {
    auto o = enforcer_->Apply(Request(a, Mode::kMonitor));
    ASSERT_TRUE(o.has_value()) << o.error().message();
    EXPECT_EQ(o->state, State::kMonitor);
    EXPECT_NE(o->detail.find("would"), std::string::npos);
  }
  EXPECT_EQ(Count("vigil_enforcement_would_have_enforced_total", "kill"), 2u);
  EXPECT_EQ(Count("vigil_enforcement_would_have_enforced_total", "freeze"), 1u);
  EXPECT_EQ(Count("vigil_enforcement_success_total", "kill"), 0u);
  auto tally = enforcer_->Count();
  ASSERT_TRUE(tally.has_value());
  const auto monitor = static_cast<size_t>(State::kMonitor);
  EXPECT_EQ(tally->by_state[monitor][static_cast<size_t>(ActionKind::kKill)], 2u);
  EXPECT_EQ(tally->by_state[monitor][static_cast<size_t>(ActionKind::kBlockNetwork)], 1u);
  EXPECT_EQ(tally->by_state[static_cast<size_t>(State::kApplied)][0], 0u);
  auto list = enforcer_->List();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].id, 4u);  // newest first
  EXPECT_EQ((*list)[0].state, State::kMonitor);
  auto rb = enforcer_->Rollback(1);
  ASSERT_FALSE(rb.has_value());
  EXPECT_EQ(rb.error().code(), core::StatusCode::kFailedPrecondition);
  const std::string text = registry_.ExpositionText();
  EXPECT_NE(text.find("vigil_enforcement_would_have_enforced_total{action=\"kill\"} 2"),
            std::string::npos);
}

TEST_F(LedgerTest, AlertIsRecordedAndWithdrawnAndTheLedgerSurvivesReopen) {
  auto o = enforcer_->Apply(Request(ActionKind::kAlert, Mode::kEnforce));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->state, State::kApplied);
  Reopen();
  auto e = enforcer_->Get(o->id);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rule, "Test rule");
  EXPECT_EQ(e->target.ToString(), "pid:4242");
  auto rb = enforcer_->Rollback(o->id);
  ASSERT_TRUE(rb.has_value()) << rb.error().message();
  EXPECT_EQ(rb->state, State::kRolledBack);
  EXPECT_EQ(enforcer_->Get(o->id)->state, State::kRolledBack);
  auto again = enforcer_->Rollback(o->id);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), core::StatusCode::kFailedPrecondition);
  auto missing = enforcer_->Rollback(999);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), core::StatusCode::kNotFound);
  EXPECT_NE(missing.error().message().find("999"), std::string::npos);
  auto records = Drain();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].first, "enforcement");
  EXPECT_EQ(records[0].second["action"], "alert");
  EXPECT_EQ(records[1].first, "rollback");
  EXPECT_EQ(records[1].second["result"], "rolled-back");
  EXPECT_EQ(*enforcer_->PendingAudit(), 0u);
}

TEST_F(LedgerTest, RefusesInvalidRequests) {
  auto init = enforcer_->Apply(Request(ActionKind::kKill, Mode::kEnforce, "pid:1"));
  ASSERT_FALSE(init.has_value());
  EXPECT_EQ(init.error().code(), core::StatusCode::kInvalidArgument);
  auto self = enforcer_->Apply(Request(ActionKind::kFreeze, Mode::kEnforce,
                                       "pid:" + std::to_string(getpid())));
  ASSERT_FALSE(self.has_value());
  ActionRequest esc = Request(ActionKind::kEscalate, Mode::kEnforce);
  esc.proposed = ActionKind::kEscalate;
  EXPECT_FALSE(enforcer_->Apply(esc).has_value());
  esc.proposed = ActionKind::kKill;
  esc.timeout_seconds = 0;
  EXPECT_FALSE(enforcer_->Apply(esc).has_value());
  EXPECT_TRUE(enforcer_->List()->empty());
}

TEST_F(LedgerTest, EscalationDenyAndExpiryWithEachDefault) {
  ActionRequest r = Request(ActionKind::kEscalate, Mode::kEnforce);
  r.proposed = ActionKind::kAlert;
  r.timeout_seconds = 60;
  auto a = enforcer_->Apply(r);  // denied below
  ASSERT_TRUE(a.has_value());
  ASSERT_NE(a->escalation_id, 0u);
  r.on_timeout = TimeoutDefault::kEnforce;
  auto b = enforcer_->Apply(r);  // expires: enforce
  r.on_timeout = TimeoutDefault::kDismiss;
  auto c = enforcer_->Apply(r);  // expires: dismiss
  ASSERT_TRUE(b.has_value() && c.has_value());
  EXPECT_EQ(enforcer_->Escalations(true)->size(), 3u);

  auto denied = enforcer_->Deny(a->escalation_id, "alice");
  ASSERT_TRUE(denied.has_value()) << denied.error().message();
  EXPECT_NE(denied->detail.find("nothing was done"), std::string::npos);
  auto twice = enforcer_->Approve(a->escalation_id, "bob");
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(twice.error().message().find("denied (by alice)"), std::string::npos);

  clock_.Advance(int64_t{59} * 1'000'000'000);
  EXPECT_EQ(*enforcer_->ExpireDue(), 0u);
  clock_.Advance(int64_t{1} * 1'000'000'000);
  auto pending = enforcer_->Escalations(true);  // applies the expiries
  ASSERT_TRUE(pending.has_value());
  EXPECT_TRUE(pending->empty());
  auto all = *enforcer_->Escalations(false);
  ASSERT_EQ(all.size(), 3u);
  const Escalation& eb = all[1];
  const Escalation& ec = all[0];
  EXPECT_EQ(eb.state, EscalationState::kExpired);
  EXPECT_EQ(eb.decided_by, "timeout");
  ASSERT_NE(eb.result_id, 0u);
  EXPECT_EQ(enforcer_->Get(eb.result_id)->action, ActionKind::kAlert);
  EXPECT_EQ(ec.state, EscalationState::kExpired);
  EXPECT_EQ(ec.result_id, 0u);
  auto late = enforcer_->Approve(ec.id, "bob");
  ASSERT_FALSE(late.has_value());
  EXPECT_NE(late.error().message().find("dismiss"), std::string::npos) << late.error().message();
  EXPECT_EQ(enforcer_->Approve(77, "bob").error().code(), core::StatusCode::kNotFound);
}

TEST_F(LedgerTest, RollingBackAPendingEscalationCancelsIt) {
  ActionRequest r = Request(ActionKind::kEscalate, Mode::kEnforce);
  r.proposed = ActionKind::kKill;
  auto a = enforcer_->Apply(r);
  ASSERT_TRUE(a.has_value());
  auto rb = enforcer_->Rollback(a->id);
  ASSERT_TRUE(rb.has_value()) << rb.error().message();
  EXPECT_EQ(rb->state, State::kRolledBack);
  auto all = *enforcer_->Escalations(false);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state, EscalationState::kCancelled);
  std::vector<std::string> events;
  for (auto& [type, j] : Drain()) {
    events.push_back(type + (j.contains("event") ? ":" + j["event"].get<std::string>() : ""));
  }
  EXPECT_EQ(events, (std::vector<std::string>{"escalation:queued", "enforcement",
                                              "escalation:cancelled", "rollback"}));
}

TEST_F(LedgerTest, ADamagedLedgerIsReportedNotTrusted) {
  enforcer_.reset();
  {
    std::ofstream(dir_ / "enforcement.db", std::ios::trunc) << "this is not a database at all....";
  }
  EnforcerOptions o;
  o.state_dir = dir_.string();
  auto e = Enforcer::Open(o, clock_, registry_);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message().find("enforcement.db"), std::string::npos);
}

}  // namespace
}  // namespace vigil::enforce

namespace vigil::enforce {
namespace {

TEST(FromPolicyTest, DecidedActionsMapToEnforcementActions) {
  EXPECT_EQ(*ActionKindFor(core::Action::kFreeze), ActionKind::kFreeze);
  EXPECT_EQ(*ActionKindFor(core::Action::kBlockNetwork), ActionKind::kBlockNetwork);
  EXPECT_EQ(*ActionKindFor(core::Action::kKill), ActionKind::kKill);
  EXPECT_EQ(*ActionKindFor(core::Action::kEscalate), ActionKind::kEscalate);
  EXPECT_FALSE(ActionKindFor(core::Action::kAllow).has_value());
  auto deny = ActionKindFor(core::Action::kDeny);
  ASSERT_FALSE(deny.has_value());
  EXPECT_NE(deny.error().message().find("gate"), std::string::npos);
}

TEST(FromPolicyTest, ARuleActionBlockBecomesARequest) {
  auto rules = policy::RuleSet::LoadString(
      "- rule: Miner\n  desc: d\n  condition: proc.name = xmrig\n  output: o\n"
      "  priority: critical\n  action:\n    type: escalate\n    mode: enforce\n"
      "    fallback: deny\n"
      "- rule: Plain\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: info\n"
      "- rule: Gate\n  desc: d\n  condition: proc.name = y\n  output: o\n  priority: info\n"
      "  action:\n    type: deny\n    mode: enforce\n",
      "rules.yaml");
  ASSERT_TRUE(rules.has_value()) << rules.error().message();
  const Target target = *ParseTarget("pid:77");
  auto miner = RequestForRule(rules->rules()[0], target, "score 0.97");
  ASSERT_TRUE(miner.has_value()) << miner.error().message();
  EXPECT_EQ(miner->action, ActionKind::kEscalate);
  EXPECT_EQ(miner->mode, Mode::kEnforce);
  EXPECT_EQ(miner->on_timeout, TimeoutDefault::kEnforce);
  EXPECT_EQ(miner->rule, "Miner");
  EXPECT_EQ(miner->target.ToString(), "pid:77");
  auto plain = RequestForRule(rules->rules()[1], target, "");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->action, ActionKind::kAlert);
  EXPECT_EQ(plain->mode, Mode::kMonitor);
  auto gate = RequestForRule(rules->rules()[2], target, "");
  ASSERT_FALSE(gate.has_value());
  EXPECT_NE(gate.error().message().find("rules.yaml:"), std::string::npos)
      << gate.error().message();
}

}  // namespace
}  // namespace vigil::enforce
