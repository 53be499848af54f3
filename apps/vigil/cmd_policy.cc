// vigil policy sign|verify: minisign signatures over policy files (the `policy` command itself,
// with check and test, is in cmd_policy_check.cc).

#include "apps/vigil/govern_cli.h"

namespace vigil::app {

void AddPolicySigningCommands(CommandGroup& policy) {
  // The policy loader validates a policy's content; signing covers its exact bytes.
  AddSignVerifyCommands(policy, "policy", [](std::string_view bytes, const std::string& path) {
    if (bytes.empty()) return core::InvalidArgument(path + ": empty policy file");
    return core::Status::Ok();
  });
}

}  // namespace vigil::app
