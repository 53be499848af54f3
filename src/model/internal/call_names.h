#pragma once

// A system call as streams remember it for explanations: (arch, nr) packed into 32 bits, and
// its name ("syscall#N" when the table does not know it). Shared by the stream scorers.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/event.h"
#include "core/syscall_table.h"

namespace vigil::model::internal {

inline uint32_t CallId(core::Arch arch, int32_t nr) {
  return (static_cast<uint32_t>(arch) << 16) | (static_cast<uint32_t>(nr) & 0xffff);
}

inline std::string CallName(uint32_t id) {
  const auto arch = static_cast<core::Arch>(id >> 16);
  const auto nr = static_cast<int>(id & 0xffff);
  const std::string_view name = core::SyscallName(arch, nr);
  return name.empty() ? "syscall#" + std::to_string(nr) : std::string(name);
}

}  // namespace vigil::model::internal
