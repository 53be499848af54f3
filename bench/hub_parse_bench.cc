// The hub's parse of one ingest message (docs/benchmarks.md): the fast reader the hub uses
// (hub/ingest_json.cc) against the nlohmann-tree reading it replaced
// (tests/unit/hub/ingest_reference.h), in the same run, on the body hub_nats_bench publishes
// (--findings OCSF verdicts as the agent writes them). Prints microseconds per message and per
// finding for each (CPU time of the parsing thread) and their ratio.
// A plain driver, built by name: cmake --build --preset release --target hub_parse_bench

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>

#include "../tests/unit/hub/ingest_reference.h"
#include "hub/requests.h"
#include "hub_findings.h"

namespace {

// This thread's CPU time in microseconds (the machine is shared: wall time would count waits).
double CpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// The fastest of `rounds` rounds of `n` parses, in CPU microseconds per parse.
template <typename F>
double Best(int rounds, int n, F parse) {
  double best = 1e300;
  for (int r = 0; r < rounds; ++r) {
    const double start = CpuMicros();
    for (int i = 0; i < n; ++i) {
      if (!parse()) {
        std::fprintf(stderr, "the body was refused\n");
        std::exit(1);
      }
    }
    best = std::min(best, (CpuMicros() - start) / n);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("the hub's parse of one ingest message: fast reader against the nlohmann tree");
  int findings = 50, n = 200, rounds = 5;
  app.add_option("--findings", findings, "Findings per message (1..10000)")->capture_default_str();
  app.add_option("--parses", n, "Parses per round")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds (the fastest is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (findings < 1 || findings > 10000 || n < 1 || rounds < 1) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  std::string body =
      R"({"schema_version":"vigil.hub/v1","host":"bench-0","message_id":"b0","findings":[)";
  for (int i = 0; i < findings; ++i) {
    body += (i ? "," : "") + vigil::bench::HubBenchFinding("bench-0", 1000 + i % 500, i);
  }
  body += "]}";
  const double fast =
      Best(rounds, n, [&] { return vigil::hub::ParseIngestRequest(body).has_value(); });
  const double tree =
      Best(rounds, n, [&] { return vigil::hub::reference::ParseIngestRequest(body).has_value(); });
  std::printf(
      "hub parse of one ingest message (%d findings, %zu bytes): fast reader %.1f us (%.2f us per "
      "finding), nlohmann tree %.1f us (%.2f us per finding): %.1fx\n",
      findings, body.size(), fast, fast / findings, tree, tree / findings, tree / fast);
  return 0;
}
