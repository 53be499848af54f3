// libFuzzer target for the config parser: any bytes must yield a config or an error, never a
// crash, hang or exception. Seeds: tests/fuzz/corpus/config/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const vigil::core::Result<vigil::core::VigilConfig> config =
      vigil::core::ParseConfig(text, "fuzz.yaml");
  if (!config.has_value() && config.error().message().empty()) __builtin_trap();
  return 0;
}
