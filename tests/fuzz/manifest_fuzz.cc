// libFuzzer target for the registry's manifests and for dpkg's output as `vigil sbom` reads it.
// Whatever parses as a manifest must re-encode and parse back to the same entry. Errors must
// carry a message; nothing may crash, hang or throw. Seeds: tests/fuzz/corpus/manifest/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "govern/provenance.h"
#include "govern/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = vigil::govern::ParseManifest(text, "fuzz.json");
  if (m.has_value()) {
    auto again = vigil::govern::ParseManifest(vigil::govern::EncodeManifest(*m), "re.json");
    if (!again.has_value() || again->digest != m->digest || again->name != m->name ||
        again->model != m->model) {
      __builtin_trap();
    }
  } else if (m.error().message().empty()) {
    __builtin_trap();
  }
  auto s = vigil::govern::ParseDpkgSearch(text);
  if (!s.has_value() && s.error().message().empty()) __builtin_trap();
  auto q = vigil::govern::ParseDpkgQuery(text);
  if (q.has_value()) {
    for (const auto& p : *q) {
      if (vigil::govern::DebianPurl(p).find('\n') != std::string::npos) __builtin_trap();
    }
  } else if (q.error().message().empty()) {
    __builtin_trap();
  }
  return 0;
}
