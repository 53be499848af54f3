// vigil: one binary, one subcommand per job. This file holds the only catch-all of the process.

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <map>

#include <CLI/CLI.hpp>

#include "apps/vigil/commands.h"
#include "apps/vigil/gate_wiring.h"

namespace vigil::app {

int ReportError(std::string_view command, const core::Status& status) {
  std::fprintf(stderr, "vigil %.*s: error: %s\n", static_cast<int>(command.size()), command.data(),
               status.message().c_str());
  switch (status.code()) {
    case core::StatusCode::kInvalidArgument:
    case core::StatusCode::kNotFound:
    case core::StatusCode::kOutOfRange:
    case core::StatusCode::kDataLoss:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(fileno(stderr)) != 0) {}

Progress::~Progress() {
  if (enabled_ && last_percent_ >= 0) std::fputc('\n', stderr);
}

void Progress::Update(size_t done) {
  if (!enabled_ || total_ == 0) return;
  const int percent = static_cast<int>(done * 100 / total_);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 40;
  const int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% (%zu/%zu)", label_.c_str(), filled,
               "########################################", kWidth - filled, "", percent, done,
               total_);
  std::fflush(stderr);
}

int Main(int argc, char** argv) {
  CLI::App root{"Vigil: AI-assisted operating-system security.\n"
                "Scores system behaviour with learned models and explains every verdict.",
                "vigil"};
  root.require_subcommand(1);
  root.set_version_flag("--version", std::string("vigil ") + VIGIL_VERSION);
  root.footer("Run 'vigil COMMAND --help' for a command's flags.\n"
              "Exit codes: 0 ok, 1 finding or failure, 2 bad usage or bad input.");
  std::map<CLI::App*, RunFn> runners;
  auto add = [&](RunFn (*adder)(CLI::App&)) {
    const size_t before = root.get_subcommands({}).size();
    RunFn fn = adder(root);
    runners[root.get_subcommands({})[before]] = std::move(fn);
  };
  add(AddTrainCommand);
  add(AddEvalCommand);
  add(AddReplayCommand);
  add(AddAgentCommand);
  add(AddStatusCommand);
  add(AddPolicyCommand);
  add(AddAuditCommand);
  add(AddKeysCommand);
  add(AddModelCommand);
  add(AddSbomCommand);
  add(AddEnforcementCommand);
  add(AddEscalationsCommand);
  add(AddRunCommand);
  add(AddAttestCommand);
  add(AddGatewayCommand);
  add(AddServeCommand);
  add(AddTokenCommand);
  add(AddScoreCommand);
  add(AddDecideCommand);
  add(AddGateCommand);
  add(AddHubCommand);
  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "vigil: error: %s\nRun 'vigil --help' or 'vigil COMMAND --help'.\n",
                 e.what());
    return kExitUsage;
  }
  for (CLI::App* sub : root.get_subcommands()) {
    auto it = runners.find(sub);
    if (it != runners.end()) return it->second();
  }
  std::fprintf(stderr, "vigil: error: no command given\n");
  return kExitUsage;
}

}  // namespace vigil::app

int main(int argc, char** argv) {
  try {
    return vigil::app::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vigil: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "vigil: internal error: unknown exception\n");
  }
  return vigil::app::kExitFailure;
}
