#pragma once

// How the seccomp gate (seccomp_gate.h) reads a held call's arguments out of the caller's memory:
// process_vm_readv(2) into the gate's own buffers, no descriptor opened and nothing allocated per
// read. None of these functions knows whether `pid` is still the caller: a pid names whichever
// process holds it at the time of the read. The gate asks the kernel, after its last read of a
// call, whether the notification is still pending (SECCOMP_IOCTL_NOTIF_ID_VALID): while it is,
// the caller is alive and blocked, so its pid cannot have been reused, and everything read before
// the check was the caller's.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vigil::sensor {

// Reads exactly `len` bytes at `addr` of process `pid` into `out`. False when any of them could
// not be read (unmapped, the process gone, no ptrace access to it).
[[nodiscard]] bool ReadCallerMemory(pid_t pid, uint64_t addr, void* out, size_t len);

// Reads the NUL-terminated string at `addr` of process `pid` into `buf` (which holds `cap`
// bytes) and sets *len to its length, the NUL not counted (and not stored). The string must be
// shorter than `cap`: a string of `cap` bytes or more fails. Reads up to each page's end, so a
// string that ends just before an unmapped page is read. False for a null `addr`, an unreadable
// byte before the NUL, or a string too long.
[[nodiscard]] bool ReadCallerString(pid_t pid, uint64_t addr, char* buf, size_t cap, size_t* len);

// Whether the absolute `path` is already what std::filesystem::path::lexically_normal() makes of
// it (no repeated '/', no "." or ".." component), so that it can be taken as it is; false for a
// relative or empty path.
bool IsLexicallyNormalAbsolute(std::string_view path);

}  // namespace vigil::sensor
