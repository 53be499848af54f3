#pragma once

// Subcommands of the vigil binary. Each Add*Command registers its flags on `root` and returns the
// function that runs it once the command line has been parsed. Exit codes: 0 ok, 1 a finding or a
// failure, 2 bad usage or bad input.

#include <signal.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace vigil::audit {
class AuditLog;
class Signer;
}  // namespace vigil::audit
namespace vigil::hub {
struct HubConfig;
}  // namespace vigil::hub

namespace vigil::app {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

using RunFn = std::function<int()>;

RunFn AddTrainCommand(CLI::App& root);
RunFn AddEvalCommand(CLI::App& root);
RunFn AddReplayCommand(CLI::App& root);
RunFn AddAgentCommand(CLI::App& root);
RunFn AddStatusCommand(CLI::App& root);
RunFn AddPolicyCommand(CLI::App& root);
RunFn AddAuditCommand(CLI::App& root);
RunFn AddKeysCommand(CLI::App& root);
RunFn AddModelCommand(CLI::App& root);
RunFn AddSbomCommand(CLI::App& root);
RunFn AddEnforcementCommand(CLI::App& root);
RunFn AddEscalationsCommand(CLI::App& root);
RunFn AddRunCommand(CLI::App& root);
RunFn AddAttestCommand(CLI::App& root);
RunFn AddGatewayCommand(CLI::App& root);
RunFn AddServeCommand(CLI::App& root);
RunFn AddTokenCommand(CLI::App& root);
RunFn AddScoreCommand(CLI::App& root);
RunFn AddDecideCommand(CLI::App& root);
RunFn AddHubCommand(CLI::App& root);
// `vigil hub user add|list|remove` (cmd_hub_user.cc), added under `hub`; the runner returns -1
// when none of them was parsed.
RunFn AddHubUserCommands(CLI::App* hub);

// A command with subcommands ("vigil model inspect", "vigil policy check"): every leaf is added
// with its own runner, and the group's Runner() (what the group's Add*Command returns) runs the
// leaf that was parsed. Several files may add leaves to one group: the file that creates the
// group passes it to the others' Add* functions below.
class CommandGroup {
 public:
  CommandGroup(CLI::App& root, const std::string& name, const std::string& description);
  CLI::App* Add(const std::string& name, const std::string& description, RunFn run);
  RunFn Runner() const;
  CLI::App* app() const { return app_; }

 private:
  CLI::App* app_;
  std::shared_ptr<std::vector<std::pair<CLI::App*, RunFn>>> leaves_;
};

// Leaves of groups created in other files: `policy sign|verify` (cmd_policy.cc) and
// `model inspect` (cmd_model_inspect.cc).
void AddPolicySigningCommands(CommandGroup& policy);
void AddModelInspectCommand(CommandGroup& model);

// Prints "vigil CMD: error: MESSAGE" to stderr and returns the exit code for the status: 2 for
// bad input (invalid argument, not found, out of range, data loss), 1 otherwise.
int ReportError(std::string_view command, const core::Status& status);
// `vigil hub push` and `vigil hub rollout ...` (cmd_hub_fleet.cc) under `hub`; the function runs
// the one parsed and returns its exit code, or -1 when none of them was.
std::function<int()> AddHubFleetCommands(CLI::App* hub);
// `vigil hub triage export|train|measure` (cmd_hub_triage.cc), the same way.
std::function<int()> AddHubTriageCommands(CLI::App* hub);
// The hub's audit log (audit.dir of the config), written as "vigil hub VERSION" (cmd_hub.cc):
// `vigil hub` and the commands that audit without a running hub. Errors name the log.
core::Result<std::unique_ptr<audit::AuditLog>> OpenHubAudit(const hub::HubConfig& c,
                                                            const audit::Signer& signer);

// `vigil hub enrol-token create` (cmd_hub_enrol.cc) under `hub`, and `vigil agent enrol` and
// `vigil agent renew` (cmd_agent_enrol.cc) under `agent`: the function runs the one parsed, or
// returns -1.
std::function<int()> AddHubEnrolCommands(CLI::App* hub);
std::function<int()> AddAgentEnrolCommand(CLI::App* agent);
std::function<int()> AddAgentRenewCommand(CLI::App* agent);

// For services stopped by SIGINT/SIGTERM: blocks both in the calling thread (threads started
// later inherit the mask), makes `record` their handler, and returns the set to wait on with
// sigtimedwait().
sigset_t BlockStopSignals(void (*record)(int));

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, size_t total);
  ~Progress();
  void Update(size_t done);

 private:
  std::string label_;
  size_t total_;
  bool enabled_;
  int last_percent_ = -1;
};

}  // namespace vigil::app
