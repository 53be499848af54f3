#pragma once

// File and process helpers of the govern room (not for other rooms).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vigil::govern::internal {

// Writes `data` to `path` atomically: PATH.tmp.<pid> in the same folder created with `mode`,
// fsync, rename, fsync of the folder. With `exclusive`, an existing `path` is kAlreadyExists.
core::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode,
                             bool exclusive = false);

struct CommandOutput {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
};

// Runs argv[0] (looked up in PATH) without a shell, stdin from /dev/null, stderr discarded,
// and returns its exit code and up to `max_out` bytes of stdout.
core::Result<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                       size_t max_out = 16 << 20);

}  // namespace vigil::govern::internal

namespace vigil::govern::internal {

// Lower-case hex SHA-256 of `data` (OpenSSL EVP).
std::string Sha256Hex(std::string_view data);
// True when `s` is 64 lower-case hex digits.
bool IsSha256Hex(std::string_view s);

}  // namespace vigil::govern::internal

#include <nlohmann/json.hpp>

namespace vigil::govern::internal {

// A CycloneDX 1.5 document: `subject` as metadata.component, `components`, and dependencies in
// which the subject depends on every component (each needs a "bom-ref"). The tool is vigil at
// `tool_version`.
nlohmann::json CycloneDxBom(const nlohmann::json& subject, const nlohmann::json& components,
                            const std::string& tool_version, int64_t now_unix,
                            const std::string& serial_uuid);

}  // namespace vigil::govern::internal
