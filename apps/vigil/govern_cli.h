#pragma once

// Pieces shared by the governance commands (keys, model, policy, sbom): the state-directory
// defaults, and signing/verifying a file in minisign's format.

#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "core/config.h"

namespace vigil::app {

// `--config` for the state directory, and the resolved default of a state-relative path.
struct StateOptions {
  std::string config = std::string(core::kDefaultConfigPath);
  void AddTo(CLI::App* cmd);
  // `given` when set, else make(state_dir of the config); errors as LoadConfig.
  core::Result<std::string> Resolve(const std::string& given,
                                    std::string (*make)(const std::string&)) const;
};

// Writes `doc` (indented JSON) to `out` atomically, or to stdout when `out` is empty; on a file,
// says so on stderr with `note` appended. Returns the exit code.
int EmitJson(const std::string& command, const nlohmann::json& doc, const std::string& out,
             const std::string& note = "");

// Seconds since the Unix epoch (system clock).
int64_t NowUnix();

// What a kind of artifact checks before it is signed or after its signature verified: OK, or
// why the bytes are not an artifact of that kind. `path` names it in errors.
using ArtifactCheck = std::function<core::Status(std::string_view bytes, const std::string& path)>;

// Registers `sign` and `verify` leaves on `group` for one kind of artifact ("model", "policy").
void AddSignVerifyCommands(CommandGroup& group, const std::string& kind, ArtifactCheck check);

}  // namespace vigil::app
