#include "apps/vigil/commands.h"
namespace vigil::app {
RunFn AddReplayCommand(CLI::App& root) {
  root.add_subcommand("replay", "Stream recorded events through the pipeline");
  return [] { return kExitFailure; };
}
}  // namespace vigil::app
