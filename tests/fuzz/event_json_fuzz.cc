// libFuzzer target for the JSON Lines event parser (outside input: `vigil replay --jsonl`,
// training files). Any bytes must give an event or an error that says what was wrong; never a
// crash, hang, leak or exception. An accepted event must survive EventToJson -> ParseEventJson
// unchanged. Seeds: tests/fuzz/corpus/events/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/event_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const vigil::core::Result<vigil::core::Event> event = vigil::core::ParseEventJson(line);
  if (!event.has_value()) {
    if (event.error().message().empty()) __builtin_trap();
    return 0;
  }
  // What we write, we read back: the rendering of an accepted event is a fixed point.
  const std::string once = vigil::core::EventToJson(*event);
  const vigil::core::Result<vigil::core::Event> again = vigil::core::ParseEventJson(once);
  if (!again.has_value()) __builtin_trap();
  if (vigil::core::EventToJson(*again) != once) __builtin_trap();
  return 0;
}
