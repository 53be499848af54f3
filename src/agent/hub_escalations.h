#pragma once

// HubEscalations: the agent's escalations decided by people at the hub (docs/hub.md,
// "Escalations through the hub"). The agent's `escalate` action queues a question in its
// enforcement ledger (enforce::Enforcer: proposed action, deadline, default); this link
//
//   1. posts every pending escalation to the hub (POST /v1/escalations: rule, proposed action,
//      reason, pid, the time left as timeout_s, default approve when the local default is
//      enforce, else deny), under the id "<ledger id>@<created ns>" — the hub answers a repeat
//      with the one it has, so a restarted agent finds its questions again;
//   2. polls each forwarded one (GET /v1/escalations/ID) every `poll_interval`;
//   3. carries out the answer through the enforcer: approved -> Enforcer::Approve (the proposed
//      action is carried out by the enforcement path), denied -> Enforcer::Deny (nothing is
//      done), timed out at the hub -> the outcome the hub reports (the default). The enforcer
//      records each in its ledger and audit outbox ("escalation" records, decided_by
//      "hub:<analyst>" or "hub:timeout"), which the agent's ActionBridge moves to the audit log.
//
// When the hub cannot be reached, nothing is decided here: the escalation stays pending in the
// ledger and the enforcer applies its default at the local deadline (counted as
// default_unreachable). An escalation decided on this host meanwhile (`vigil escalations
// approve|deny`) is left alone (counted as decided_locally).
//
// Counters: vigil_hub_escalations_total{result="forwarded"|"approved"|"denied"|"timed_out"|
// "default_unreachable"|"decided_locally"}, vigil_hub_escalation_errors_total (exchanges with the
// hub that failed).
//
// Thread-safety: Start/Stop from the owner; PollOnce from one thread at a time (the worker, or
// a test without Start).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/hub_client.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "enforce/enforce.h"

namespace vigil::agent {

struct HubEscalationOptions {
  HubLinkOptions link;
  std::chrono::milliseconds poll_interval{1000};
  // Told about every answer carried out (for the agent's console): the local escalation, the
  // outcome ("approved", "denied", "timed_out"), who decided, and what the enforcer did.
  std::function<void(const enforce::Escalation&, std::string_view outcome, std::string_view by,
                     const core::Result<enforce::Outcome>&)>
      on_answer;
};

struct HubEscalationCounts {
  uint64_t forwarded = 0, approved = 0, denied = 0, timed_out = 0, default_unreachable = 0,
           decided_locally = 0, errors = 0;
};

class HubEscalations {
 public:
  // `enforcer`, `clock` and `registry` must outlive the link. Fails as ValidateHubLink does, or
  // when a counter cannot be registered.
  static core::Result<std::unique_ptr<HubEscalations>> Create(enforce::Enforcer& enforcer,
                                                              HubEscalationOptions options,
                                                              const core::Clock& clock,
                                                              core::Registry& registry);
  ~HubEscalations();  // Stop()s
  HubEscalations(const HubEscalations&) = delete;
  HubEscalations& operator=(const HubEscalations&) = delete;

  void Start();
  void Stop();  // idempotent; joins the worker

  // One round: forwards what is new, polls what is forwarded, carries out answers.
  void PollOnce();

  HubEscalationCounts Counts() const;

 private:
  struct Tracked {
    int64_t hub_id = 0;      // 0: not at the hub yet
    bool reachable = false;  // the last exchange about it succeeded
    std::string state;       // the hub's: "pending", "approved", "denied", "timed_out"
    std::string outcome;     // "approve" / "deny" once decided
    std::string decided_by;
  };

  HubEscalations(enforce::Enforcer& enforcer, HubEscalationOptions options,
                 const core::Clock& clock);
  bool Forward(const enforce::Escalation& e, Tracked* t);
  bool Refresh(Tracked* t);
  bool ReadState(const nlohmann::json& reply, Tracked* t);
  // Carries out a decided escalation; true when it is settled here.
  bool Answer(const enforce::Escalation& e, const Tracked& t);
  void Vanished(const std::map<uint64_t, Tracked>& gone);
  void Error(const std::string& what);

  enforce::Enforcer& enforcer_;
  const HubEscalationOptions options_;
  const core::Clock& clock_;
  std::unique_ptr<HubClient> client_;
  std::map<uint64_t, Tracked> tracked_;  // by ledger escalation id
  bool failing_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread worker_;

  core::Counter* forwarded_ = nullptr;
  core::Counter* approved_ = nullptr;
  core::Counter* denied_ = nullptr;
  core::Counter* timed_out_ = nullptr;
  core::Counter* default_unreachable_ = nullptr;
  core::Counter* decided_locally_ = nullptr;
  core::Counter* errors_ = nullptr;
};

}  // namespace vigil::agent
