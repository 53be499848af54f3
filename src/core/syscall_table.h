#pragma once

// System-call numbering per architecture. Models key on syscall *names* (so a model learned from
// i386 traces and one learned on an x86-64 host speak the same vocabulary); sensors carry the
// raw (arch, nr) pair and the lookups here translate.

#include <string_view>

#include "core/event.h"

namespace vigil::core {

// Largest syscall number in any table, plus one; tables index [0, kMaxSyscallNr).
inline constexpr int kMaxSyscallNr = 512;

// The name of syscall `nr` on `arch`, or "" when the number is not assigned.
std::string_view SyscallName(Arch arch, int nr);
// The number of `name` on `arch`, or -1 when `arch` has no such call.
int SyscallNumber(Arch arch, std::string_view name);

}  // namespace vigil::core
