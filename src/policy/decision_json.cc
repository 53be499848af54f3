#include "policy/decision_json.h"

#include <arpa/inet.h>

#include "core/event_json.h"

namespace vigil::policy {
namespace {

using nlohmann::json;

// OCSF severity_id from a Falco priority.
int Severity(Priority p) {
  switch (p) {
    case Priority::kEmergency: return 6;  // Fatal
    case Priority::kAlert:
    case Priority::kCritical: return 5;   // Critical
    case Priority::kError: return 4;      // High
    case Priority::kWarning: return 3;    // Medium
    case Priority::kNotice: return 2;     // Low
    case Priority::kInformational:
    case Priority::kDebug: return 1;      // Informational
  }
  return 0;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return !s.empty() &&
         (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1);
}

}  // namespace

json DecisionJson(const Decision& d) {
  json hits = json::array();
  for (const RuleHit& h : d.hits) {
    hits.push_back({{"rule", h.rule},
                    {"action", core::ActionName(h.action)},
                    {"mode", ModeName(h.mode)},
                    {"priority", PriorityName(h.priority)}});
  }
  json j = {{"action", core::ActionName(d.action)},
            {"enforced", d.enforce()},
            {"mode", ModeName(d.mode)},
            {"would_enforce", d.would_enforce},
            {"fallback", FallbackName(d.fallback)},
            {"rule", d.rule},
            {"priority", PriorityName(d.priority)},
            {"reason", d.output},
            {"hits", std::move(hits)},
            {"target",
             {{"pid", d.target.pid},
              {"tid", d.target.tid},
              {"ppid", d.target.ppid},
              {"cgroup_id", d.target.cgroup_id},
              {"cgroup", d.target.cgroup},
              {"container_id", d.target.container_id},
              {"comm", d.target.comm},
              {"exe", d.target.exe}}},
            {"asset_class", AssetClassName(d.asset_class)},
            {"stage", StageName(d.stage)},
            {"policy_mode", ModeName(d.policy_mode)},
            {"policy_version", d.policy_version},
            {"policy_generation", d.policy_generation},
            {"event_seq", d.event_seq},
            {"time_ns", d.time_ns}};
  if (d.has_verdict) j["ml"] = {{"score", d.ml_score}, {"model", d.ml_model}};
  return j;
}

std::string DecisionToOcsfJson(const Decision& d, const std::string& host) {
  json j = core::OcsfFindingBase(d.time_ns, Severity(d.priority));
  j["message"] = d.output;
  j["finding_info"] = {{"title", d.rule},
                       {"uid", d.policy_version + ":" + std::to_string(d.event_seq)},
                       {"analytic", {{"name", d.rule}, {"type_id", 1}, {"type", "Rule"}}}};
  if (!host.empty()) j["device"] = {{"hostname", host}};
  j["process"] = {{"pid", d.target.pid}, {"name", d.target.comm}};
  if (!d.target.exe.empty()) j["process"]["file"] = {{"path", d.target.exe}, {"type_id", 1}};
  // Only an address that parses: the hub refuses a finding whose dst_endpoint.ip does not.
  if (IsIpAddress(d.dst_ip)) j["dst_endpoint"] = {{"ip", d.dst_ip}, {"port", d.dst_port}};
  j["vigil"] = DecisionJson(d);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace vigil::policy
