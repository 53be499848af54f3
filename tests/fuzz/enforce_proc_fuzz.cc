// Fuzzes the parsers of kernel text and targets that enforcement reads: /proc/PID/stat,
// /proc/PID/cgroup, /proc/self/mountinfo and the TARGET argument (pid:, pgid:, cgroup:).
// A target that parses must print back to the same text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "enforce/enforce.h"
#include "enforce/proc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)vigil::enforce::ParseStat(text);
  (void)vigil::enforce::ParseCgroupV2Path(text);
  (void)vigil::enforce::FindCgroup2Mount(text);
  auto t = vigil::enforce::ParseTarget(text);
  if (t.has_value()) {
    auto again = vigil::enforce::ParseTarget(t->ToString());
    if (!again.has_value() || again->ToString() != t->ToString()) std::abort();
  }
  return 0;
}
