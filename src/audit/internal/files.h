#pragma once

// Small POSIX file helpers for the audit room. Errors name the path and the errno text.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::audit::internal {

// Writes all of `bytes` at the file offset (retrying short writes and EINTR).
core::Status WriteAll(int fd, std::string_view bytes, const std::string& path);
// fsync of a directory, so that created and renamed entries survive a power loss.
core::Status SyncDir(const std::string& dir);
// Entry names of `dir` (not "." or ".."), unsorted; kNotFound when it does not exist.
core::Result<std::vector<std::string>> ListDir(const std::string& dir);

}  // namespace vigil::audit::internal
