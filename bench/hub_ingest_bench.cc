// Hub ingest over HTTP into its store (docs/benchmarks.md): a hub::Server on loopback with its
// store in a temporary folder (SQLite) or at --store (a PostgreSQL URI: bench/hub/postgres.sh
// starts a throwaway server and runs both), one client posting messages of B findings (verdicts and decisions
// of distinct processes, as the agent's hub sink builds them) back to back. Prints findings/s and
// the P50/P99 time from post to incident stored (the hub stores a message's findings and
// incidents in the request's transaction, so the 200 answer is the incident's arrival).
// A plain driver, built by name: cmake --build --preset release --target hub_ingest_bench

#include <httplib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "hub/auth.h"
#include "hub/correlate.h"
#include "hub/server.h"
#include "hub/store.h"
#include "hub/store_location.h"
#include "hub_findings.h"

using namespace vigil;

int main(int argc, char** argv) {
  CLI::App app("hub ingest over HTTP into the hub's store");
  int messages = 200, batch = 500;
  std::string location;
  app.add_option("--store", location,
                 "Store location: a SQLite path or a postgres:// URI of an empty database "
                 "(default: a SQLite file in a temporary folder)");
  app.add_option("--messages", messages, "Messages posted")->capture_default_str();
  app.add_option("--batch", batch, "Findings per message (1..10000)")->capture_default_str();
  bool correlate = false;
  app.add_flag("--correlate", correlate,
               "Ingest through the global model (hub/correlate.h), as `vigil hub` does");
  CLI11_PARSE(app, argc, argv);
  if (messages < 1 || batch < 1 || batch > 10000) return 2;

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("hub_ingest_bench_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const core::Clock& clock = core::SystemClock::Get();
  if (location.empty()) location = (dir / "hub.db").string();
  auto store = hub::Store::Open(location, hub::StoreOptions{});
  if (!store.has_value()) return std::fprintf(stderr, "%s\n", store.error().ToString().c_str()), 1;
  auto signer = audit::Ed25519Signer::Generate();
  audit::AuditOptions ao;
  ao.fsync = audit::FsyncMode::kNever;
  auto log = audit::AuditLog::Open((dir / "audit").string(), ao, *signer, clock);
  if (!log.has_value()) return std::fprintf(stderr, "%s\n", log.error().ToString().c_str()), 1;
  api::JwtConfig jwt;
  jwt.hs256_key = "0123456789abcdef0123456789abcdef-bench";
  jwt.issuer = jwt.audience = "vigil-hub";
  hub::HubAuth auth(jwt);
  core::Registry registry;
  hub::ServerOptions so;
  so.listen = {"127.0.0.1", 0};
  so.threads = 2;
  hub::FleetCorrelation correlation(hub::CorrelatorOptions{}, **store, **log, clock, registry);
  hub::CorrelatingStore correlating(**store, correlation);
  hub::Server server(so, correlate ? correlating : **store, auth, **log, clock, registry);
  if (auto st = server.Start(); !st.ok())
    return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  const std::string token =
      auth.Issue("bench-1", hub::Role::kAgent, 3600, clock.NowUnixNanos() / 1'000'000'000);

  // Bodies first, so that only posting and storing are timed.
  std::vector<std::string> bodies;
  int n = 0;
  for (int m = 0; m < messages; ++m) {
    std::string body = R"({"schema_version":"vigil.hub/v1","host":"bench-1","message_id":"m)" +
                       std::to_string(m) + R"(","findings":[)";
    for (int i = 0; i < batch; ++i, ++n) {
      body += (i ? "," : "") + bench::HubBenchFinding("bench-1", 1000 + n, n);
    }
    bodies.push_back(body + "]}");
  }
  httplib::Client client("127.0.0.1", server.port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& body : bodies) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = client.Post("/v1/ingest", headers, body, "application/json");
    const auto t1 = std::chrono::steady_clock::now();
    if (!r || r->status != 200) {
      std::fprintf(stderr, "ingest failed: %s\n", r ? r->body.c_str() : "no answer");
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  server.Stop();
  (void)(*log)->Close();
  std::filesystem::remove_all(dir);
  std::sort(ms.begin(), ms.end());
  auto q = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  std::printf(
      "hub ingest (%s%s): %d messages x %d findings in %.2f s: %.0f findings/s; post to "
      "incident P50 %.2f ms, P99 %.2f ms\n",
      hub::IsPostgresLocation(location) ? "postgresql" : "sqlite",
      correlate ? ", correlated" : "", messages, batch, seconds, static_cast<double>(messages) * batch / seconds, q(0.5), q(0.99));
  return 0;
}
