// Escalations decided at a real hub on loopback and carried out through the agent's enforcer:
// approve, deny, a hub nobody answers at, and a hub that cannot be reached (the local default at
// the deadline). The proposed action is `alert` (recorded only), so no root is needed.

#include "agent/hub_escalations.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

using nlohmann::json;
using testing::WaitUntil;

class HubEscalationsTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    enforce::EnforcerOptions eo;
    eo.state_dir = (dir_ / "state").string();
    std::filesystem::create_directories(eo.state_dir);
    eo.actor = "vigil agent";
    auto e = enforce::Enforcer::Open(eo, clock_, registry_);
    ASSERT_TRUE(e.has_value()) << e.error().ToString();
    enforcer_ = std::move(e).value();
    // The process the escalations are about (the enforcer refuses to act on itself).
    target_ = fork();
    ASSERT_GE(target_, 0);
    if (target_ == 0) {
      pause();
      _exit(0);
    }
  }
  void TearDown() override {
    if (target_ > 0) {
      kill(target_, SIGKILL);
      waitpid(target_, nullptr, 0);
    }
    HubLinkTest::TearDown();
  }
  std::unique_ptr<HubEscalations> Link() {
    HubEscalationOptions o;
    o.link.url = Url();
    o.link.token_file = TokenFile();
    o.link.host = kHost;
    o.link.timeout = std::chrono::milliseconds(2000);
    o.on_answer = [this](const enforce::Escalation&, std::string_view outcome, std::string_view by,
                         const core::Result<enforce::Outcome>&) {
      answers_.push_back(std::string(outcome) + " " + std::string(by));
    };
    auto h = HubEscalations::Create(*enforcer_, o, clock_, registry_);
    EXPECT_TRUE(h.has_value()) << h.error().ToString();
    return h.has_value() ? std::move(h).value() : nullptr;
  }
  // An escalation about target_ proposing `alert`, as the agent's ActionBridge asks it.
  uint64_t Escalate(uint64_t timeout_s, enforce::TimeoutDefault on_timeout) {
    enforce::ActionRequest r;
    r.action = enforce::ActionKind::kEscalate;
    r.target.pid = static_cast<int32_t>(target_);
    r.rule = "Shell in a web server";
    r.reason = "nginx spawned sh";
    r.mode = enforce::Mode::kEnforce;
    r.proposed = enforce::ActionKind::kAlert;
    r.on_timeout = on_timeout;
    r.timeout_seconds = timeout_s;
    auto out = enforcer_->Apply(r);
    EXPECT_TRUE(out.has_value()) << out.error().ToString();
    return out.has_value() ? out->escalation_id : 0;
  }
  enforce::Escalation Local(uint64_t id) {
    auto all = enforcer_->Escalations(false);
    EXPECT_TRUE(all.has_value());
    for (const auto& e : *all) {
      if (e.id == id) return e;
    }
    ADD_FAILURE() << "no escalation " << id;
    return {};
  }
  // Polls until escalation `id` is no longer pending, then once more (the round that sees it
  // settled here); returns it.
  enforce::Escalation SettledAfterItsDeadline(HubEscalations& link, uint64_t id) {
    EXPECT_TRUE(WaitUntil(
        [&] {
          link.PollOnce();
          return Local(id).state != enforce::EscalationState::kPending;
        },
        std::chrono::seconds(5)));
    link.PollOnce();
    return Local(id);
  }
  // The hub's escalations of kHost, as an analyst reads them.
  json HubEscalationsList() {
    httplib::Client http("127.0.0.1", port_);
    auto r = http.Get("/v1/escalations?state=all&host=web-1",
                      {{"Authorization", "Bearer " + Token(hub::Role::kAnalyst, "ana")}});
    return r && r->status == 200 ? json::parse(r->body)["escalations"] : json();
  }
  int Decide(int64_t hub_id, const std::string& decision) {
    httplib::Client http("127.0.0.1", port_);
    auto r =
        http.Post("/v1/escalations/" + std::to_string(hub_id) + "/decision",
                  {{"Authorization", "Bearer " + Token(hub::Role::kAnalyst, "ana")}},
                  json{{"decision", decision}, {"note", "checked"}}.dump(), "application/json");
    return r ? r->status : -1;
  }
  // The enforcer's escalation audit records: event and by.
  std::vector<std::string> AuditEvents() {
    std::vector<std::string> out;
    auto n = enforcer_->DrainAudit([&](std::string_view type, json payload) {
      if (type == "escalation") {
        const auto by = payload.find("by");
        out.push_back(payload["event"].get<std::string>() + " " +
                      (by != payload.end() && by->is_string() ? by->get<std::string>() : ""));
      }
      return core::Status::Ok();
    });
    EXPECT_TRUE(n.has_value());
    return out;
  }

  core::Registry registry_;
  std::unique_ptr<enforce::Enforcer> enforcer_;
  std::vector<std::string> answers_;
  pid_t target_ = -1;
};

TEST_F(HubEscalationsTest, AnAnalystsApprovalAtTheHubIsCarriedOutAndAudited) {
  StartHub();
  auto link = Link();
  ASSERT_NE(link, nullptr);
  const uint64_t id = Escalate(600, enforce::TimeoutDefault::kDismiss);
  link->PollOnce();
  json list = HubEscalationsList();
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["state"], "pending");
  EXPECT_EQ(list[0]["rule"], "Shell in a web server");
  EXPECT_EQ(list[0]["action"], "alert");
  EXPECT_EQ(list[0]["default"], "deny");
  EXPECT_EQ(list[0]["pid"], target_);
  link->PollOnce();  // still pending: nothing happens, nothing is posted twice
  EXPECT_EQ(HubEscalationsList().size(), 1u);
  EXPECT_EQ(Local(id).state, enforce::EscalationState::kPending);

  ASSERT_EQ(Decide(list[0]["id"], "approve"), 200);
  link->PollOnce();
  const enforce::Escalation e = Local(id);
  EXPECT_EQ(e.state, enforce::EscalationState::kApproved);
  EXPECT_EQ(e.decided_by, "hub:ana");
  EXPECT_NE(e.result_id, 0u) << "approval carries out the proposed action";
  auto result = enforcer_->Get(e.result_id);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->action, enforce::ActionKind::kAlert);
  EXPECT_EQ(result->state, enforce::State::kApplied);
  EXPECT_EQ(answers_, std::vector<std::string>{"approved hub:ana"});
  const std::vector<std::string> audit = AuditEvents();
  EXPECT_NE(std::find(audit.begin(), audit.end(), "approved hub:ana"), audit.end());
  const HubEscalationCounts c = link->Counts();
  EXPECT_EQ(c.forwarded, 1u);
  EXPECT_EQ(c.approved, 1u);
  EXPECT_EQ(c.errors, 0u);
}

TEST_F(HubEscalationsTest, ADenialAtTheHubCarriesOutNothing) {
  StartHub();
  auto link = Link();
  ASSERT_NE(link, nullptr);
  const uint64_t id = Escalate(600, enforce::TimeoutDefault::kEnforce);
  link->PollOnce();
  json list = HubEscalationsList();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["default"], "approve");
  ASSERT_EQ(Decide(list[0]["id"], "deny"), 200);
  link->PollOnce();
  const enforce::Escalation e = Local(id);
  EXPECT_EQ(e.state, enforce::EscalationState::kDenied);
  EXPECT_EQ(e.decided_by, "hub:ana");
  EXPECT_EQ(e.result_id, 0u);
  EXPECT_EQ(link->Counts().denied, 1u);
  const std::vector<std::string> audit = AuditEvents();
  EXPECT_NE(std::find(audit.begin(), audit.end(), "denied hub:ana"), audit.end());
}

TEST_F(HubEscalationsTest, WhenNobodyAnswersAtTheHubTheDefaultAppliesAtTheDeadline) {
  StartHub();
  auto link = Link();
  ASSERT_NE(link, nullptr);
  const uint64_t id = Escalate(1, enforce::TimeoutDefault::kEnforce);
  link->PollOnce();
  ASSERT_EQ(HubEscalationsList().size(), 1u);
  const enforce::Escalation e = SettledAfterItsDeadline(*link, id);
  EXPECT_EQ(e.state, enforce::EscalationState::kExpired);
  EXPECT_NE(e.result_id, 0u) << "the default (enforce) carries out the proposed action";
  EXPECT_EQ(link->Counts().timed_out, 1u);
  EXPECT_EQ(link->Counts().default_unreachable, 0u);
  ASSERT_TRUE(WaitUntil(
      [&] {
        const json list = HubEscalationsList();
        return list.size() == 1 && list[0]["state"] == "timed_out";
      },
      std::chrono::seconds(5)));
}

TEST_F(HubEscalationsTest, AnUnreachableHubLeavesTheDefaultToTheLocalDeadlineCounted) {
  StartHub();
  StopHub();
  auto link = Link();
  ASSERT_NE(link, nullptr);
  const uint64_t id = Escalate(1, enforce::TimeoutDefault::kDismiss);
  link->PollOnce();
  EXPECT_GE(link->Counts().errors, 1u);
  EXPECT_EQ(Local(id).state, enforce::EscalationState::kPending);
  const enforce::Escalation e = SettledAfterItsDeadline(*link, id);
  EXPECT_EQ(e.state, enforce::EscalationState::kExpired);
  EXPECT_EQ(e.result_id, 0u) << "the default (dismiss) does nothing";
  EXPECT_EQ(link->Counts().default_unreachable, 1u);
  const std::string text = registry_.ExpositionText();
  EXPECT_NE(text.find(R"(vigil_hub_escalations_total{result="default_unreachable"} 1)"),
            std::string::npos)
      << text;
}

TEST_F(HubEscalationsTest, TheWorkerForwardsAndAppliesOnItsOwn) {
  StartHub();
  HubEscalationOptions o;
  o.link.url = Url();
  o.link.token_file = TokenFile();
  o.link.host = kHost;
  o.poll_interval = std::chrono::milliseconds(20);
  auto link = HubEscalations::Create(*enforcer_, o, clock_, registry_);
  ASSERT_TRUE(link.has_value());
  (*link)->Start();
  const uint64_t id = Escalate(600, enforce::TimeoutDefault::kDismiss);
  ASSERT_TRUE(WaitUntil([&] { return HubEscalationsList().size() == 1; }));
  ASSERT_EQ(Decide(HubEscalationsList()[0]["id"], "approve"), 200);
  EXPECT_TRUE(WaitUntil([&] { return Local(id).state == enforce::EscalationState::kApproved; }));
  (*link)->Stop();
}

}  // namespace
}  // namespace vigil::agent
