// Reading a whole file with a size limit: every outside input (rules, models, keys, datasets,
// spool and audit segments, kernel files) is read through this one function, so that no input
// can make the process allocate without bound.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::core {

// The bytes of the file at `path`, read until end of file. Errors name the path:
// kNotFound / kPermissionDenied / kUnavailable from errno; kInvalidArgument for a directory;
// kOutOfRange when the file holds more than `max_bytes` (the error gives the limit). Files whose
// size stat does not know (/proc, /sys, pipes) are read the same way.
Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes);

// The first line of a token file (a bearer token, a NATS token): at most 16 KiB, the line's
// end ("\n" or "\r\n") cut off, printable ASCII without spaces. ReadFile's errors, or
// kInvalidArgument "<what> file PATH: no token in it" / "...: the first line is not a token".
Result<std::string> ReadTokenFile(const std::string& path, std::string_view what);

// Creates the folder `dir` with `mode` and its missing parents with 0755 (as `mkdir -p`, both
// narrowed by the umask); existing folders are left as they are. Something at `dir` that is not
// a folder is kFailedPrecondition.
Status MakeDirs(const std::string& dir, unsigned mode);

}  // namespace vigil::core
