#pragma once

// Wires a sensor gate (seccomp, fanotify) to the decision gate: the context rules read about
// the process behind a held call (comm, executable, argv, uid, user, ancestors) comes from /proc,
// the decision from enforce::DecisionGate, and fallbacks and decisions go to the audit log.

#include <cstddef>
#include <memory>

#include <nlohmann/json.hpp>

#include "enforce/gate.h"
#include "enrich/user_resolver.h"
#include "policy/fields.h"
#include "sensor/gate_call.h"

namespace vigil::app {

class AuditTrail;

// Fills `event` (a copy of the call's) and `in` with what /proc says about the caller. For an
// exec the process is described as the program it is becoming (Falco's execve semantics:
// proc.name is the new program's name, proc.exepath its path, proc.args the new argv, and the
// ancestors are the caller's parent and up). Up to `max_ancestors` ancestors are read.
void FillGateContext(const sensor::GateCall& call, enrich::CachingUserResolver* users,
                     size_t max_ancestors, core::Event* event, policy::EvalInput* in);

class GateDeciderAdapter final : public sensor::GateDecider {
 public:
  // `gate` must outlive the adapter.
  explicit GateDeciderAdapter(enforce::DecisionGate* gate, size_t max_ancestors = 8);

  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl* control) override;
  void OnFallback(const sensor::GateCall& call, sensor::GateAnswer answer,
                  sensor::GateFallbackCause cause) override;
  void Late(const sensor::GateCall& call, sensor::GateAnswer decided) override;

 private:
  enforce::DecisionGate* gate_;
  size_t max_ancestors_;
  enrich::SystemUserResolver system_users_;
  enrich::CachingUserResolver users_;
};

// The audit payload of a gate record: the decision's fields (audit::DecisionPayload) plus
// "gate", "call" ({"type","pid","path" or "addr","port"}) and, for fallbacks, "fallback_reason".
nlohmann::json GateRecordPayload(const enforce::GateRecord& r);

// A RecordFn that appends gate records to `trail` (decisions as kDecision, fallbacks as
// kFallback); `trail` may be null (nothing recorded) and must outlive the gate.
enforce::RecordFn AuditGateRecords(AuditTrail* trail);

}  // namespace vigil::app
