#pragma once

// The policy `vigil agent` uses when its config names no rules files: Falco's stable rules
// (src/policy/rules/falco_rules.yaml, Apache-2.0, as Falco publishes them), embedded at build
// time. Rules that need a field Vigil lacks are disabled at load with a warning, as for any file.

#include <string_view>

namespace vigil::policy {

inline constexpr std::string_view kDefaultRulesName = "<embedded falco_rules.yaml>";
std::string_view DefaultRules();

}  // namespace vigil::policy
