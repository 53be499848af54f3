#pragma once

// JSON renderings of a policy Decision: the audit log's decision payload and an OCSF 1.1
// Detection Finding (class 2004) for the sinks. Field lists: docs/policy.md "Decision records".

#include <string>

#include <nlohmann/json.hpp>

#include "policy/decision.h"

namespace vigil::policy {

// {"action","enforced","mode","would_enforce","fallback","rule","priority","reason" (the rule's
// output),"hits":[{"rule","action","mode"}...],"target":{...},"asset_class","stage",
// "policy_mode","policy_version","policy_generation","event_seq","time_ns","ml":{...}}.
nlohmann::json DecisionJson(const Decision& d);

// One line: the decision as an OCSF Detection Finding, Vigil's fields under "vigil".
std::string DecisionToOcsfJson(const Decision& d, const std::string& host);

}  // namespace vigil::policy
