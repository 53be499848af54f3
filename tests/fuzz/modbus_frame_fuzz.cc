// libFuzzer target for the proxy's Modbus request decoding: any bytes are classified without
// reading past them, and a decoded write stays inside the address space.
// Seeds: tests/fuzz/corpus/modbus_frame/.

#include <cstddef>
#include <cstdint>
#include <span>

#include "gateway/modbus_frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> adu(data, size);
  const vigil::gateway::ParsedFrame f = vigil::gateway::ParseRequest(adu);
  if (f.cls == vigil::gateway::FrameClass::kWrite) {
    if (f.write.values.empty() || f.write.address + f.write.values.size() > 65536) {
      __builtin_trap();
    }
    if (f.write.kind == vigil::gateway::RegisterKind::kCoil) {
      for (uint16_t v : f.write.values) {
        if (v > 1) __builtin_trap();
      }
    }
  }
  (void)vigil::gateway::ResponseMatches(adu, adu);
  return 0;
}
