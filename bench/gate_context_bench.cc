// What describing a held call's process costs the gate's thread (apps/vigil/gate_context.h), on
// a real chain of processes: a leaf with eight ancestors (seven sleeping processes this program
// forked, then this program), all kept in the cache as they are when a gate sees the same
// process again. Each iteration is one Describe of the leaf. Arguments: what is read (0: the
// name and parent only, 1: also the uid, 2: everything the "whole context" rules read: argv,
// uid, eight ancestors' names and executables, the parent's argv; 3: as 2, but the executables
// of two ancestors only, as `falco_rules.yaml` reads them: proc.aname up to 8, proc.aexepath[2]),
// and whether pidfds are used (1: the uid and thread group from PIDFD_GET_INFO, ancestors read by
// name alone kept as pidfd and comm) or not (0: /proc/PID/status and every ancestor's stat).
// Built by name (`--target gate_context_bench`); docs/benchmarks.md, "Gates".

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <benchmark/benchmark.h>

#include "apps/vigil/gate_context.h"

namespace {

constexpr int kChain = 7;  // forked processes above the leaf, the leaf included: 7 + this one

// Forks a chain of kChain sleeping processes, each the child of the one before; returns the
// first's pid and sets *leaf to the last's (read from a pipe).
pid_t ForkChain(pid_t* leaf) {
  int p[2];
  if (pipe(p) != 0) return -1;
  const pid_t first = fork();
  if (first == 0) {
    close(p[0]);
    for (int i = 1; i < kChain; ++i) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const pid_t c = fork();
      if (c != 0) {  // this link (or a failed fork) waits to be killed with the rest
        while (true) pause();
      }
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const pid_t me = getpid();
    if (write(p[1], &me, sizeof me) != sizeof me) _exit(1);
    while (true) pause();
  }
  close(p[1]);
  if (first < 0 || read(p[0], leaf, sizeof *leaf) != sizeof *leaf) *leaf = -1;
  close(p[0]);
  return first;
}

void BM_Describe(benchmark::State& state) {
  pid_t leaf = -1;
  const pid_t first = ForkChain(&leaf);
  if (first < 0 || leaf < 0) {
    state.SkipWithError("cannot fork the chain of processes");
    return;
  }
  vigil::app::GateContextNeeds needs;
  if (state.range(0) >= 1) needs.uid = true;
  if (state.range(0) >= 2) needs = vigil::app::GateContextNeeds::Everything(8);
  if (state.range(0) == 3) needs.ancestor_exe = 2;  // as Falco's stable rules read them
  vigil::app::ProcContextCache::Options o;
  o.pidfd = state.range(1) != 0;
  vigil::app::ProcContextCache cache(o);
  if (o.pidfd && !cache.uses_pidfd()) {
    kill(first, SIGKILL);
    waitpid(first, nullptr, 0);
    state.SkipWithError("this kernel has no PIDFD_GET_INFO (Linux 6.13)");
    return;
  }
  vigil::core::Event event;
  vigil::policy::EvalInput in;
  if (!cache.Describe(leaf, needs, false, &event, &in)) state.SkipWithError("leaf not described");
  const uint64_t before = cache.stats().syscalls;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.Describe(leaf, needs, false, &event, &in));
  }
  state.counters["ancestors"] = static_cast<double>(in.ancestors.size());
  state.counters["syscalls"] = benchmark::Counter(
      static_cast<double>(cache.stats().syscalls - before), benchmark::Counter::kAvgIterations);
  kill(first, SIGKILL);  // the rest follow (PR_SET_PDEATHSIG)
  waitpid(first, nullptr, 0);
}
BENCHMARK(BM_Describe)
    ->ArgNames({"reads", "pidfd"})
    ->ArgsProduct({{0, 1, 2, 3}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
