// libFuzzer target for the hub's fast ingest parser (hub/ingest_json.cc, hub/internal/
// json_tape.h): a differential test against the tree-based reading it replaced
// (tests/unit/hub/ingest_reference.h). The first byte picks the parser (even: an ingest body,
// odd: one finding line); both readings must accept the same inputs with the same values and
// refuse the others with the same error message.
// Seeds: tests/fuzz/corpus/ingest_json/.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "../unit/hub/ingest_reference.h"
#include "hub/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string difference;
  if (data[0] % 2 == 0) {
    difference = vigil::hub::reference::Difference(
        vigil::hub::ParseIngestRequest(input), vigil::hub::reference::ParseIngestRequest(input));
  } else {
    difference = vigil::hub::reference::Difference(vigil::hub::ParseFindingJson(input),
                                                   vigil::hub::reference::ParseFindingJson(input));
  }
  if (!difference.empty()) {
    std::fprintf(stderr, "the readings differ: %s\n", difference.c_str());
    __builtin_trap();
  }
  return 0;
}
