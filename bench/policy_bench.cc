// Evaluating Falco's stable rules (src/policy/rules/falco_rules.yaml, the agent's default
// policy) on typical events: a process start, file opens (ordinary and sensitive), a connect and a
// typed call; and one process's repeated opens (the agent's open/close loop) without and with a
// per-process memo. Reports the time per event; run with --benchmark_repetitions=N for medians.
//
//   cmake --build --preset release --target policy_bench
//   build/release/bench/policy_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
//
// Instructions per event (repeatable on a busy machine), docs/benchmarks.md:
//   valgrind --tool=callgrind --toggle-collect='vigil::policy::RuleSet::Evaluate*'
//     build/release/bench/policy_bench --benchmark_filter=Evaluate --benchmark_min_time=0.05
//   (one command line)
//   then Ir collected / calls of RuleSet::Evaluate (callgrind_annotate --tree=caller).

#include <fcntl.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "policy/default_rules.h"
#include "policy/engine.h"
#include "policy/rules.h"

namespace {

using vigil::core::Event;
using vigil::core::EventKind;
using vigil::policy::EvalInput;

struct Workload {
  std::vector<Event> events;
  std::vector<EvalInput> inputs;
};

Workload Typical() {
  Workload w;
  auto base = [](EventKind kind, const char* comm, const char* exe) {
    Event e;
    e.source = vigil::core::EventSource::kEbpf;
    e.kind = kind;
    e.seq = 1;
    e.proc = {4242, 4242, 4000, 1000, comm, exe};
    e.time_ns = 1'700'000'000'000'000'000;
    return e;
  };
  Event exec = base(EventKind::kProcessExec, "ls", "/usr/bin/ls");
  exec.path = "/usr/bin/ls";
  Event lib = base(EventKind::kFileOpen, "ls", "/usr/bin/ls");
  lib.path = "/lib/x86_64-linux-gnu/libc.so.6";
  lib.flags = O_RDONLY | O_CLOEXEC;
  lib.has_ret = true;
  lib.ret = 3;
  Event conf = lib;
  conf.path = "/etc/ld.so.cache";
  Event shadow = base(EventKind::kFileOpen, "cat", "/usr/bin/cat");
  shadow.path = "/etc/shadow";
  shadow.has_ret = true;
  shadow.ret = 3;
  Event conn = base(EventKind::kNetConnect, "curl", "/usr/bin/curl");
  conn.net = {"93.184.216.34", 443, 6};
  conn.syscall = {vigil::core::Arch::kX86_64, 42};
  conn.has_ret = true;
  conn.ret = -115;
  Event setuid = base(EventKind::kTypedCall, "sudo", "/usr/bin/sudo");
  setuid.syscall = {vigil::core::Arch::kX86_64, 105};
  setuid.has_ret = true;
  w.events = {exec, lib, conf, lib, shadow, conn, setuid, lib};
  for (const Event& e : w.events) {
    EvalInput in;
    in.argv = {e.proc.comm, "-l", "/home/user"};
    in.user_name = "user";
    in.ancestors = {{"bash", "/usr/bin/bash", {"bash"}},
                    {"sshd", "/usr/sbin/sshd", {"sshd:", "user@pts/0"}},
                    {"sshd", "/usr/sbin/sshd", {"/usr/sbin/sshd", "-D"}},
                    {"systemd", "/usr/lib/systemd/systemd", {"/sbin/init"}}};
    in.cwd = "/home/user";
    w.inputs.push_back(std::move(in));
  }
  for (size_t i = 0; i < w.events.size(); ++i) w.inputs[i].event = &w.events[i];
  return w;
}

const vigil::policy::RuleSet& Rules() {
  static const vigil::policy::RuleSet* rules = [] {
    auto r = vigil::policy::RuleSet::LoadString(vigil::policy::DefaultRules(),
                                                vigil::policy::kDefaultRulesName);
    if (!r.has_value()) {
      std::fprintf(stderr, "%s\n", r.error().message().c_str());
      std::exit(1);
    }
    return new vigil::policy::RuleSet(std::move(r).value());
  }();
  return *rules;
}

// RuleSet::Evaluate over the enabled stable rules, one event per iteration.
void BM_StableRulesEvaluate(benchmark::State& state) {
  Workload w = Typical();
  const auto& rules = Rules();
  size_t i = 0, matches = 0;
  for (auto _ : state) {
    auto m = rules.Evaluate(w.inputs[i]);
    matches += m.size();
    benchmark::DoNotOptimize(m);
    if (++i == w.inputs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["enabled_rules"] = static_cast<double>(rules.enabled_count());
  // Rules the evt.type index leaves to evaluate, averaged over the rotation.
  size_t candidates = 0;
  for (const Event& e : w.events) candidates += rules.CandidateCount(vigil::policy::EventTypeName(e));
  state.counters["candidate_rules_per_event"] =
      static_cast<double>(candidates) / static_cast<double>(w.events.size());
  state.counters["matches_per_event"] =
      static_cast<double>(matches) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_StableRulesEvaluate);

// The agent's open/close loop as the policy sees it: one process opening one file again and
// again, evaluated with a per-process memo (RuleSet::Evaluate, ProcessMemo) as the agent does.
// Arg 0: without the memo, 1: with it.
void BM_OneProcessOpens(benchmark::State& state) {
  Event open;
  open.source = vigil::core::EventSource::kEbpf;
  open.kind = EventKind::kFileOpen;
  open.seq = 1;
  open.proc = {4242, 4242, 4000, 0, "syscall_loop", "/tmp/bench/syscall_loop"};
  open.time_ns = 1'700'000'000'000'000'000;
  open.path = "/tmp/vigil-bench-loop.Ab3dEf";
  open.flags = O_RDONLY;
  open.has_ret = true;
  open.ret = 3;
  EvalInput in;
  in.event = &open;
  in.argv = {"/tmp/bench/syscall_loop", "openclose", "2000000"};
  in.user_name = "root";
  in.ancestors = {{"bash", "/usr/bin/bash", {"bash", "scripts/bench-agent.sh"}},
                  {"sshd", "/usr/sbin/sshd", {"sshd:", "root@pts/0"}},
                  {"systemd", "/usr/lib/systemd/systemd", {"/sbin/init"}}};
  in.cwd = "/work/main";
  const auto& rules = Rules();
  vigil::policy::ProcessMemo memo;
  vigil::policy::ProcessMemo* use = state.range(0) != 0 ? &memo : nullptr;
  size_t matches = 0;
  for (auto _ : state) {
    auto m = rules.Evaluate(in, use);
    matches += m.size();
    benchmark::DoNotOptimize(m);
    ++open.seq;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["candidate_rules_per_event"] =
      static_cast<double>(rules.CandidateCount(vigil::policy::EventTypeName(open)));
  state.counters["matches_per_event"] =
      static_cast<double>(matches) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_OneProcessOpens)->Arg(0)->Arg(1);

// The whole decision: asset class, evaluation, hits, counters.
void BM_StableRulesDecide(benchmark::State& state) {
  Workload w = Typical();
  vigil::policy::PolicyOptions o;
  o.embedded_yaml = std::string(vigil::policy::DefaultRules());
  auto engine = vigil::policy::PolicyEngine::Create(o);
  if (!engine.has_value()) {
    state.SkipWithError(engine.error().message().c_str());
    return;
  }
  size_t i = 0;
  for (auto _ : state) {
    auto d = (*engine)->Decide(&w.inputs[i]);
    benchmark::DoNotOptimize(d);
    if (++i == w.inputs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StableRulesDecide);

}  // namespace

BENCHMARK_MAIN();
