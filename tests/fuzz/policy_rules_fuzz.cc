// libFuzzer target for the rules loader (YAML items, conditions, lists, macros, exceptions,
// outputs): any bytes must yield a rule set or an error, never a crash, hang or exception; a
// loaded set is evaluated on one sample event. Seeds: tests/fuzz/corpus/policy/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto set = vigil::policy::RuleSet::LoadString(text, "fuzz.yaml");
  if (!set.has_value()) {
    if (set.error().message().empty()) __builtin_trap();
    return 0;
  }
  vigil::core::Event e;
  e.kind = vigil::core::EventKind::kFileOpen;
  e.proc = {.pid = 7, .ppid = 1, .uid = 1000, .comm = "cat", .exe = "/usr/bin/cat"};
  e.path = "/etc/shadow";
  e.has_ret = true;
  e.ret = -13;
  vigil::policy::EvalInput in;
  in.event = &e;
  in.argv = {"cat", "/etc/shadow"};
  in.ancestors = {{.name = "bash", .exe = "/usr/bin/bash", .argv = {"bash"}}};
  (void)set->Evaluate(in);
  return 0;
}
