// libFuzzer target for the hub's users file (src/hub/users.h): any bytes give users or an error
// naming the source and line; accepted users have valid names, a person's role and an argon2id
// string without blanks, and no name twice. Seeds: tests/fuzz/corpus/hub_users/.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "hub/users.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto users = vigil::hub::ParseUsersFile(input, "users");
  if (!users.has_value()) {
    if (users.error().message().substr(0, 6) != "users:") __builtin_trap();
    return 0;
  }
  std::set<std::string> names;
  for (const auto& u : *users) {
    if (!vigil::hub::ValidUserName(u.name) || u.role == vigil::hub::Role::kAgent ||
        u.hash.substr(0, 10) != "$argon2id$" || u.hash.find(' ') != std::string::npos ||
        !names.insert(u.name).second) {
      __builtin_trap();
    }
  }
  return 0;
}
