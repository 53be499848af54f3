// vigil status: asks a running agent for its health (/healthz) and prints it.

#include <cstdio>
#include <memory>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/config.h"

namespace vigil::app {
namespace {

struct StatusOptions {
  std::string config = std::string(core::kDefaultConfigPath);
  std::string address;
  bool json = false;
  int timeout_s = 3;
};

int RunStatus(const StatusOptions& o) {
  std::string address = o.address;
  if (address.empty()) {
    auto config = core::LoadConfig(o.config);
    if (!config.has_value()) return ReportError("status", config.error());
    address = config->metrics.listen.ToString();
  }
  auto hp = core::ParseHostPort(address);
  if (!hp.has_value()) return ReportError("status", hp.error().WithContext("--address"));
  httplib::Client client(hp->host, hp->port);
  client.set_connection_timeout(o.timeout_s, 0);
  client.set_read_timeout(o.timeout_s, 0);
  auto res = client.Get("/healthz");  // httplib reports failures in the result, not by throwing
  if (!res) {
    return ReportError("status", core::Unavailable("no agent answers on " + address + " (" +
                                                   httplib::to_string(res.error()) +
                                                   "); is `vigil agent` running?"));
  }
  auto j = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return ReportError("status", core::Unavailable(address + "/healthz did not answer JSON"));
  }
  const bool healthy = res->status == 200 && j.value("status", "") == "ok";
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return healthy ? kExitOk : kExitFailure;
  }
  auto num = [&](const char* key) { return j.contains(key) ? j[key].dump() : std::string("-"); };
  std::printf("agent at %s: %s\n", address.c_str(), healthy ? "healthy" : "UNHEALTHY");
  std::printf("  phase:             %s\n", j.value("phase", std::string("-")).c_str());
  if (j.contains("mode") && j["mode"].is_string()) {
    std::printf("  mode:              %s\n", j["mode"].get<std::string>().c_str());
  }
  if (j.contains("enforce_refused") && j["enforce_refused"].is_string()) {
    std::printf("  enforce refused:   %s\n", j["enforce_refused"].get<std::string>().c_str());
  }
  std::printf("  events/s:          %.0f (total %s)\n", j.value("events_per_second", 0.0),
              num("events_read").c_str());
  std::printf("  queue drops:       %s\n", num("queue_dropped").c_str());
  if (j.contains("kernel_lost") && j["kernel_lost"].is_object()) {
    std::string lost;
    for (auto& [cause, n] : j["kernel_lost"].items()) {
      lost += (lost.empty() ? "" : ", ") + cause + " " + n.dump();
    }
    std::printf("  kernel losses:     %s\n", lost.c_str());
  }
  if (j.contains("syscall_stream") && j["syscall_stream"].is_object()) {
    // (An answer from something else than the agent may hold anything: typed reads only.)
    const nlohmann::json& s = j["syscall_stream"];
    auto real = [&](const char* key) {
      return s.contains(key) && s[key].is_number() ? s[key].get<double>() : 0.0;
    };
    auto text = [&](const char* key) { return s.contains(key) ? s[key].dump() : std::string("-"); };
    const std::string mode =
        s.contains("mode") && s["mode"].is_string() ? s["mode"].get<std::string>() : "-";
    const bool on = s.contains("on") && s["on"].is_boolean() && s["on"].get<bool>();
    std::printf("  syscall stream:    %s, %s now", mode.c_str(), on ? "on" : "off");
    if (mode == "budget") {
      std::printf("; on %.1f %% of the time (plan %.1f %%), costing %.2f %% of all CPUs while on "
                  "(budget %.2f %%); %s switches off, %s windows cut at gaps",
                  100 * real("duty"), 100 * real("planned_duty"), 100 * real("cost"),
                  100 * real("budget"), text("switches_off").c_str(), text("gap_cuts").c_str());
    }
    std::printf("\n");
  }
  std::printf("  processes tracked: %s\n", num("processes_tracked").c_str());
  std::printf("  programs learned:  %s (from %s windows)\n", num("programs_learned").c_str(),
              num("learned_windows").c_str());
  std::printf("  windows scored:    %s\n", num("windows_scored").c_str());
  std::printf("  alerts:            %s\n", num("alerts").c_str());
  std::printf("  memory:            %.1f MB resident\n", j.value("resident_mb", 0.0));
  return healthy ? kExitOk : kExitFailure;
}

}  // namespace

RunFn AddStatusCommand(CLI::App& root) {
  auto o = std::make_shared<StatusOptions>();
  CLI::App* cmd = root.add_subcommand("status", "Show a running agent's health");
  cmd->add_option("--address", o->address,
                  "The agent's metrics address HOST:PORT (default: metrics.listen of the config)");
  cmd->add_option("--config", o->config, "Config to read the metrics address from")
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s, "Seconds to wait for an answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 60));
  cmd->add_flag("--json", o->json, "Print the agent's /healthz answer as JSON");
  return [o] { return RunStatus(*o); };
}

}  // namespace vigil::app
