// vigil hub enrol-token create: one-time tokens with which agents enrol at the hub's agent gRPC
// port (docs/hub.md, "Agents over gRPC with mTLS"). The token file is shared with a running
// hub, which audits each new token when it notices it (at start, every second, and before an
// enrolment), like the users file.

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/files.h"
#include "hub/config.h"
#include "hub/enrolment.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"

namespace vigil::app {
namespace {

struct EnrolTokenFlags {
  std::string config, state_dir;
  std::string group, host;
  std::string ttl = "1h";
  bool json = false;
};

int RunEnrolTokenCreate(const EnrolTokenFlags& f) {
  constexpr const char* kCmd = "hub enrol-token create";
  hub::HubConfig c;
  if (!f.config.empty()) {
    auto loaded = hub::LoadHubConfig(f.config);
    if (!loaded.has_value()) return ReportError(kCmd, loaded.error());
    c = std::move(loaded).value();
  }
  if (!f.state_dir.empty()) c.state_dir = f.state_dir;
  c.ResolvePaths();
  if (!f.group.empty() && !hub::ValidGroupName(f.group)) {
    return ReportError(kCmd, core::InvalidArgument("--group: expected 1..64 bytes of "
                                                   "[A-Za-z0-9._-], got \"" +
                                                   f.group + "\""));
  }
  if (!f.host.empty() && !hub::ValidHostId(f.host)) {
    return ReportError(kCmd, core::InvalidArgument("--host: expected 1..253 bytes of "
                                                   "[A-Za-z0-9._:-]"));
  }
  const uint32_t max_ttl = c.agents.max_enrol_token_ttl_s;
  auto ttl = core::ParseDurationSeconds(f.ttl);
  if (!ttl.has_value() || *ttl < 1 || *ttl > max_ttl) {
    return ReportError(
        kCmd, core::InvalidArgument("--ttl: expected a duration of 1s.." + std::to_string(max_ttl) +
                                    "s (agents.max_enrol_token_ttl), got \"" + f.ttl + "\""));
  }
  if (auto s = core::MakeDirs(c.state_dir, 0700); !s.ok()) return ReportError(kCmd, s);
  hub::EnrolTokens tokens(c.agents.enrol_tokens);
  const int64_t now = core::SystemClock::Get().NowUnixNanos() / 1'000'000'000;
  const char* user = std::getenv("USER");
  auto issued = tokens.Create(f.group, f.host, static_cast<int64_t>(*ttl), now,
                              std::string("cli:") + (user != nullptr ? user : "?"));
  if (!issued.has_value()) return ReportError(kCmd, issued.error());
  if (f.json) {
    nlohmann::json j = {{"token", issued->token},
                        {"id", issued->record.id},
                        {"group", f.group},
                        {"host", f.host},
                        {"expires", issued->record.expires_s}};
    // The CA's fingerprint, for `vigil agent enrol --ca-sha256` (once the hub has made its CA).
    if (auto pem = core::ReadFile(c.agents.ca_dir + "/ca.pem", 1 << 20); pem.has_value()) {
      if (auto fp = hub::CertSha256(*pem); fp.has_value()) j["ca_sha256"] = *fp;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", issued->token.c_str());
  }
  return kExitOk;
}

}  // namespace

std::function<int()> AddHubEnrolCommands(CLI::App* hub) {
  auto f = std::make_shared<EnrolTokenFlags>();
  CLI::App* group = hub->add_subcommand(
      "enrol-token", "One-time tokens with which agents enrol (vigil agent enrol)");
  group->require_subcommand(1);
  CLI::App* create = group->add_subcommand(
      "create",
      "Print a new one-time enrolment token (stored hashed in <state_dir>/enrol-tokens.json; "
      "the running hub audits it); works while the hub runs");
  create->add_option("--config", f->config, "Hub configuration (YAML, docs/hub.md)");
  create->add_option("--state-dir", f->state_dir,
                     "The hub's state dir (overrides the config's; default /var/lib/vigil/hub)");
  create->add_option("--group", f->group,
                     "The agent's group at the hub (in its certificate; default: what the "
                     "agent registers with)");
  create->add_option("--host", f->host, "Only this host id may enrol with it (default: any)");
  create->add_option("--ttl", f->ttl, "Lifetime (e.g. 30m, 1h; at most agents.max_enrol_token_ttl)")
      ->capture_default_str();
  create->add_flag("--json", f->json,
                   "Print {token, id, group, host, expires, ca_sha256} (ca_sha256: the hub CA's "
                   "fingerprint for vigil agent enrol --ca-sha256, once the hub has made its CA)");
  create->footer("Exit codes: 0 printed, 1 failure, 2 bad flags or config.");
  return [f, create]() -> int {
    if (create->parsed()) return RunEnrolTokenCreate(*f);
    return -1;
  };
}

}  // namespace vigil::app
