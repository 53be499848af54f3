#pragma once

// Enum <-> name lookups over a constant table of (value, name) pairs, for the small enums of the
// value types (event kinds, policy modes, ...).

#include <array>
#include <cstddef>
#include <string_view>
#include <utility>

namespace vigil::core {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, std::string_view>, N>;

// The name of `v`, or "unknown" when the table lacks it.
template <typename E, size_t N>
std::string_view NameOf(const NameTable<E, N>& table, E v) {
  for (const auto& [e, n] : table) {
    if (e == v) return n;
  }
  return "unknown";
}

// Sets *out to the value named `name`; false (and *out untouched) when the table lacks it.
template <typename E, size_t N>
bool ParseName(const NameTable<E, N>& table, std::string_view name, E* out) {
  for (const auto& [e, n] : table) {
    if (n == name) {
      *out = e;
      return true;
    }
  }
  return false;
}

}  // namespace vigil::core
