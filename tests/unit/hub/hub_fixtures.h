#pragma once

// Findings as the agent writes them (the real renderers), for the hub's tests.

#include <string>
#include <vector>

#include "core/event.h"
#include "core/event_json.h"
#include "policy/decision_json.h"

namespace vigil::hub::testing {

inline constexpr int64_t kBaseNs = 1'700'000'000'000'000'000;

// A model verdict about `process` (pid) at kBaseNs + seconds.
inline std::string VerdictLine(const std::string& host, uint32_t pid, const std::string& process,
                               int seconds, double score, const std::string& model = "ngram") {
  core::Verdict v;
  v.host = host;
  v.pid = pid;
  v.subject = process;
  v.score = score;
  v.anomalous = score >= 0.5;
  v.model_name = model;
  v.model_version = "1.0";
  v.stream = process + ":" + std::to_string(pid);
  v.events = 42;
  v.time_ns = kBaseNs + int64_t{seconds} * 1'000'000'000;
  v.explanation = {{"open>read>write", 0.7}, {"execve", 0.2}};
  return core::VerdictToOcsfJson(v);
}

// A policy decision by `rule` about `process` (pid) at kBaseNs + seconds.
inline std::string DecisionLine(const std::string& host, uint32_t pid, const std::string& process,
                                int seconds, const std::string& rule, double ml_score = 0.9) {
  policy::Decision d;
  d.action = core::Action::kAlert;
  d.rule = rule;
  d.output = rule + " fired for " + process;
  d.target.pid = pid;
  d.target.comm = process;
  d.policy_version = "p1";
  d.event_seq = static_cast<uint64_t>(seconds);
  d.time_ns = kBaseNs + int64_t{seconds} * 1'000'000'000;
  d.has_verdict = true;
  d.ml_score = ml_score;
  d.ml_model = "ngram";
  return policy::DecisionToOcsfJson(d, host);
}

// n anomalous verdicts and n decisions about distinct processes "worker" (pids 1000 + first ..),
// one second apart.
inline std::vector<std::string> FindingLines(const std::string& host, int first, int n) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    out.push_back(VerdictLine(host, 1000 + i, "worker", i, 0.9));
    out.push_back(DecisionLine(host, 1000 + i, "worker", i, "shell"));
  }
  return out;
}

inline std::string IngestBody(const std::string& host, const std::string& message_id,
                              const std::vector<std::string>& findings) {
  std::string body = R"({"schema_version":"vigil.hub/v1","host":")" + host + R"(","message_id":")" +
                     message_id + R"(","findings":[)";
  for (size_t i = 0; i < findings.size(); ++i) body += (i ? "," : "") + findings[i];
  return body + "]}";
}

}  // namespace vigil::hub::testing
