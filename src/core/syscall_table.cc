#include "core/syscall_table.h"

#include <array>

namespace vigil::core {
namespace {

struct SyscallEntry {
  int nr;
  const char* name;
};
#include "core/syscall_tables.inc"

using NameTable = std::array<std::string_view, kMaxSyscallNr>;

template <size_t N>
NameTable Build(const SyscallEntry (&entries)[N]) {
  NameTable t{};
  for (const auto& e : entries) {
    if (e.nr >= 0 && e.nr < kMaxSyscallNr) t[static_cast<size_t>(e.nr)] = e.name;
  }
  return t;
}

const NameTable* TableFor(Arch arch) {
  static const NameTable i386 = Build(kI386Table);
  static const NameTable x86_64 = Build(kX86_64Table);
  switch (arch) {
    case Arch::kI386: return &i386;
    case Arch::kX86_64: return &x86_64;
    case Arch::kUnknown: break;
  }
  return nullptr;
}

}  // namespace

std::string_view SyscallName(Arch arch, int nr) {
  const NameTable* t = TableFor(arch);
  if (t == nullptr || nr < 0 || nr >= kMaxSyscallNr) return {};
  return (*t)[static_cast<size_t>(nr)];
}

int SyscallNumber(Arch arch, std::string_view name) {
  const NameTable* t = TableFor(arch);
  if (t == nullptr || name.empty()) return -1;
  for (size_t i = 0; i < t->size(); ++i) {
    if ((*t)[i] == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace vigil::core
