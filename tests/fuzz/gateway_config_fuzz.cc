// libFuzzer target for the gateway config parser: any bytes yield a config or an error that
// names the input, never a crash, hang or exception. Seeds: tests/fuzz/corpus/gateway_config/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = vigil::gateway::ParseGatewayConfig(text, "fuzz.yaml");
  if (!c.has_value() && c.error().message().rfind("fuzz.yaml", 0) != 0) __builtin_trap();
  if (c.has_value()) {
    for (const auto& a : c->assets) {
      if (a.min > a.max) __builtin_trap();
    }
  }
  return 0;
}
