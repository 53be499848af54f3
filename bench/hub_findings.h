#pragma once

// The finding the hub benchmarks send: an anomalous verdict of process `pid` on `host`, its n-th,
// as the agent's sinks write it (OCSF Detection Finding, core/event_json.h).

#include <cstdint>
#include <string>

#include "core/event.h"
#include "core/event_json.h"

namespace vigil::bench {

inline std::string HubBenchFinding(const std::string& host, int64_t pid, int64_t n) {
  core::Verdict v;
  v.host = host;
  v.pid = static_cast<uint32_t>(pid);
  v.subject = "worker";
  v.score = 0.93;
  v.anomalous = true;
  v.model_name = "ngram";
  v.model_version = "1";
  v.stream = "worker:" + std::to_string(pid);
  v.events = 42;
  v.time_ns = 1'700'000'000'000'000'000 + n * 1'000'000;
  v.explanation = {{"open>read>write", 0.7}, {"execve", 0.2}};
  return core::VerdictToOcsfJson(v);
}

}  // namespace vigil::bench
