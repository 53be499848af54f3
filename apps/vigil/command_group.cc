// CommandGroup: how `vigil GROUP LEAF` finds the code of LEAF (commands.h).

#include <cstdio>

#include "apps/vigil/commands.h"

namespace vigil::app {

CommandGroup::CommandGroup(CLI::App& root, const std::string& name,
                           const std::string& description)
    : app_(root.add_subcommand(name, description)),
      leaves_(std::make_shared<std::vector<std::pair<CLI::App*, RunFn>>>()) {
  app_->require_subcommand(1);
}

CLI::App* CommandGroup::Add(const std::string& name, const std::string& description, RunFn run) {
  CLI::App* leaf = app_->add_subcommand(name, description);
  leaves_->emplace_back(leaf, std::move(run));
  return leaf;
}

RunFn CommandGroup::Runner() const {
  return [leaves = leaves_, app = app_]() {
    for (auto& [leaf, run] : *leaves) {
      if (leaf->parsed()) return run();
    }
    std::fprintf(stderr, "vigil %s: error: no subcommand given\n", app->get_name().c_str());
    return kExitUsage;
  };
}

sigset_t BlockStopSignals(void (*record)(int)) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction action {};
  action.sa_handler = record;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) sigaction(sig, &action, nullptr);
  return set;
}

}  // namespace vigil::app
