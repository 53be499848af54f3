#include "policy/default_rules.h"

namespace vigil::policy {

std::string_view DefaultRules() {
  static constexpr char kRules[] =
#include "policy/default_rules.inc"
      ;
  return {kRules, sizeof(kRules) - 1};
}

}  // namespace vigil::policy
