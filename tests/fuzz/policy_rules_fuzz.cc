// libFuzzer target for the rules loader (YAML items, conditions, lists, macros, exceptions,
// outputs): any bytes must yield a rule set or an error, never a crash, hang or exception; a
// loaded set is evaluated on sample events of four types, and the planned evaluation (with and
// without a process memo) must equal the evaluation of every rule. Seeds: tests/fuzz/corpus/policy/.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

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
  // The same event as a file open, a process start, a connect and a typed call: the evt.type
  // index (Evaluate) must select exactly what evaluating every rule selects.
  // With one process memo across the four (the process does not change), its reused parts
  // must give the same result too.
  vigil::policy::ProcessMemo memo;
  auto equal = [](const std::vector<vigil::policy::Match>& a,
                  const std::vector<vigil::policy::Match>& b) {
    if (a.size() != b.size()) __builtin_trap();
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].rule != b[i].rule || a[i].output != b[i].output) __builtin_trap();
    }
  };
  auto same = [&] {
    const auto plain = set->EvaluateEveryRule(in);
    equal(set->Evaluate(in), plain);
    equal(set->Evaluate(in, &memo), plain);
    equal(set->Evaluate(in, &memo), plain);
  };
  same();
  e.kind = vigil::core::EventKind::kProcessExec;
  same();
  e.kind = vigil::core::EventKind::kNetConnect;
  e.net = {"10.0.0.1", 80, 6};
  same();
  e.kind = vigil::core::EventKind::kTypedCall;
  e.syscall = {vigil::core::Arch::kX86_64, 0};
  same();
  return 0;
}
