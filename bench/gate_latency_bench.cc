// The latency a gate adds, measured against the same operations without it in one run
// (docs/benchmarks.md, "Gates"). A plain driver, not Google Benchmark: each operation is a real
// system call of a separate process (gate_probe), timed inside that process.
//
//   connect: gate_probe connects N times to a local listener, directly, under
//            `vigil run --policy RULES` (seccomp user notification, rules evaluated per call),
//            and under `vigil run --model` with a rule on ml.anomalous (the gate model asked
//            through the inference engine for every connect);
//   exec:    gate_probe fork+execs a copy of /bin/true N times from a tmpfs directory that
//            `vigil gate` holds (FAN_OPEN_EXEC_PERM) for the same rules, each exec followed by
//            one of a copy on another tmpfs that nothing marks (the paired ungated exec).
// Two rule sets: "few fields" (three deny rules on evt.type, fd.*, proc.exepath, none matching)
// and "whole context" (the same plus a rule that reads the caller's argv, uid and user name and
// eight ancestors' names, executables and the parent's argv, never matching), and "Falco context"
// (the same, with the executables of two ancestors only, as Falco's stable rules read them).
// With --vigil-base OTHER (e.g. the previous commit's vigil), every gated variant also runs with
// OTHER, alternating with --vigil in the same blocks: a before/after comparison in one run.
// Blocks with and without the gate alternate, so that the machine's load drifts over all alike.
// Each variant's figures are those of all its blocks pooled, and then each block's added P99 (the
// gated block's P99 less the same block's ungated P99): median and range over the blocks, so that
// a run says how far its pooled P99 is from a typical block's.
// Needs root. With --strace, one more run of each gated variant under `strace -f -c` counts the
// system calls of the whole process tree per gated call (load-independent).
// Usage: gate_latency_bench [--calls N] [--exec-calls N] [--blocks B] [--vigil PATH]
//                           [--vigil-base PATH] [--probe PATH] [--strace] [--priority-ab]
//                           [--probe-priority N]
// --priority-ab adds --vigil (and --vigil-base) at --realtime-priority 0 (the gates normally
// scheduled) as variants of their own; --probe-priority runs the probe at SCHED_FIFO N, shielding
// the measured caller (gated and ungated alike) from the machine's other load.

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/loopback_listener.h"

namespace fs = std::filesystem;
using namespace vigil;

namespace {

std::vector<double> ParseProbe(const fs::path& out) {
  std::ifstream in(out);
  std::vector<double> us;
  std::string line;
  while (std::getline(in, line)) {
    int err = -1;
    long long ns = 0;
    if (std::sscanf(line.c_str(), "errno=%d ns=%lld", &err, &ns) == 2 && err == 0) {
      us.push_back(static_cast<double>(ns) / 1000.0);
    }
  }
  return us;
}

// `gate_probe exec2 A B`'s output: the pairs (A's time, B's time) in which both execs succeeded.
std::pair<std::vector<double>, std::vector<double>> ParsePairs(const fs::path& out) {
  std::ifstream in(out);
  std::pair<std::vector<double>, std::vector<double>> ab;
  std::string a, b;
  while (std::getline(in, a) && std::getline(in, b)) {
    int ea = -1, eb = -1;
    long long na = 0, nb = 0;
    if (std::sscanf(a.c_str(), "errno=%d ns=%lld", &ea, &na) == 2 &&
        std::sscanf(b.c_str(), "errno=%d ns=%lld", &eb, &nb) == 2 && ea == 0 && eb == 0) {
      ab.first.push_back(static_cast<double>(na) / 1000.0);
      ab.second.push_back(static_cast<double>(nb) / 1000.0);
    }
  }
  return ab;
}

std::vector<double> RunProbe(const std::string& cmd, const fs::path& out) {
  const std::string full = cmd + " >" + out.string();
  if (std::system(full.c_str()) == -1) return {};
  return ParseProbe(out);
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The JSON summary `vigil run --json` (stderr) or `vigil gate --json` (stdout) printed last.
nlohmann::json Summary(const fs::path& p) {
  std::istringstream in(ReadAll(p));
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') last = line;
  }
  return nlohmann::json::parse(last, nullptr, false);
}

// Starts `vigil gate` (argv) with stdout to `out` and stderr to `err`; waits until it says it
// holds the paths. Returns its pid, or -1.
pid_t StartGate(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  std::fflush(stdout);  // the child's freopen would write what is buffered a second time
  std::error_code ec;
  fs::remove(err, ec);  // a previous gate's "holding" line must not be taken for this one's
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid < 0) return -1;
  for (int i = 0; i < 1000; ++i) {
    if (ReadAll(err).find("holding") != std::string::npos) return pid;
    if (waitpid(pid, nullptr, WNOHANG) == pid) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// Stops `vigil gate` (pid), or with `traced` the vigil gate that strace (pid) runs: SIGTERM to
// strace itself would detach it and leave the gate running.
void StopGate(pid_t pid, bool traced = false) {
  pid_t target = pid;
  if (traced) {
    std::istringstream kids(ReadAll("/proc/" + std::to_string(pid) + "/task/" +
                                    std::to_string(pid) + "/children"));
    if (!(kids >> target)) target = pid;
  }
  kill(target, SIGTERM);
  waitpid(pid, nullptr, 0);
}

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

// Each block's added P99 (the gated block's P99 less the same block's ungated P99): their median
// and range say how far one block's tail is from another's, which the pooled P99 hides.
struct BlockSpread {
  double median = 0, min = 0, max = 0;
  size_t blocks = 0;
};

BlockSpread AddedP99PerBlock(const std::vector<std::vector<double>>& base,
                             const std::vector<std::vector<double>>& gated) {
  std::vector<double> added;
  for (size_t b = 0; b < base.size() && b < gated.size(); ++b) {
    if (base[b].empty() || gated[b].empty()) continue;
    added.push_back(Pct(gated[b], 0.99) - Pct(base[b], 0.99));
  }
  BlockSpread s;
  if (added.empty()) return s;
  std::sort(added.begin(), added.end());
  s.blocks = added.size();
  s.median = added.size() % 2 == 1 ? added[added.size() / 2]
                                   : (added[added.size() / 2 - 1] + added[added.size() / 2]) / 2;
  s.min = added.front();
  s.max = added.back();
  return s;
}

std::vector<double> Pooled(const std::vector<std::vector<double>>& blocks) {
  std::vector<double> all;
  for (const auto& b : blocks) all.insert(all.end(), b.begin(), b.end());
  return all;
}

void Report(const char* what, const std::vector<std::vector<double>>& base_blocks,
            const std::vector<std::vector<double>>& gated_blocks,
            const char* base_name = "without gate", const char* gated_name = "with gate") {
  const std::vector<double> base = Pooled(base_blocks), gated = Pooled(gated_blocks);
  const double b50 = Pct(base, 0.5), b99 = Pct(base, 0.99);
  const double g50 = Pct(gated, 0.5), g99 = Pct(gated, 0.99);
  std::printf("%-8s %s: n=%zu P50 %.1f us P99 %.1f us | %s: n=%zu P50 %.1f us "
              "P99 %.1f us | added: P50 %.1f us P99 %.1f us\n",
              what, base_name, base.size(), b50, b99, gated_name, gated.size(), g50, g99,
              g50 - b50, g99 - b99);
  const BlockSpread s = AddedP99PerBlock(base_blocks, gated_blocks);
  if (s.blocks > 0) {
    std::printf(
        "         added P99 per block (gated less ungated, %zu blocks): median %.1f us, "
        "range %.1f..%.1f us\n",
        s.blocks, s.median, s.min, s.max);
  }
}

// Trains and signs (with the key in `keys`) a gate model of gate_probe's gated calls (an exec,
// opens, then connects), so that the probe's connects are scored as usual; empty on failure.
std::string TrainProbeModel(const std::string& vigil_bin, const fs::path& dir,
                            const std::string& keys) {
  const fs::path data = dir / "probe-calls.jsonl", model = dir / "probe.vgm";
  {
    std::ofstream out(data);
    for (int i = 0; i < 40; ++i) {
      const std::string head = R"({"kind":"syscall","stream":"p)" + std::to_string(i) +
                               R"(","proc":{"comm":"gate_probe"},"syscall":{"arch":"x86_64","nr":)";
      out << head << "59}}\n";
      for (int k = 0; k < 5 + i % 3; ++k) out << head << "257}}\n";
      for (int k = 0; k < 20 + i; ++k) out << head << "42}}\n";
    }
  }
  const std::string cmd = vigil_bin + " train --model-type sequence --dataset jsonl --data " +
                          data.string() + " --order 3 --out " + model.string() + " >/dev/null && " +
                          vigil_bin + " model sign " + model.string() + " --key-dir " + keys +
                          " >/dev/null";
  return std::system(cmd.c_str()) == 0 ? model.string() : "";
}

// A gated variant: a vigil binary and a rules file (plus, for connect, extra flags).
struct Variant {
  std::string name;
  std::string vigil;
  std::string rules;
  std::string extra;  // more `vigil run` flags (the model)
  std::string gate_flags;  // flags for both `vigil run` and `vigil gate` (the priority)
  std::vector<std::vector<double>> blocks;  // one list of times (µs) per block
  std::vector<double> per_call;  // /proc system calls per decided call (new builds only)
  // Per stage on the gate's thread ("receive", "decide", "answer"): each block's P50 and P99
  // (µs) from the summary's "stage_us" (builds that time their stages).
  std::map<std::string, std::vector<double>> stage_p50, stage_p99;
  // exec: per block, the ungated execs made alternately with the gated ones (same gate running).
  std::vector<std::vector<double>> paired;
};

void AddSummary(const fs::path& p, Variant* v) {
  const nlohmann::json j = Summary(p);
  if (j.is_object() && j.contains("proc_syscalls_per_call")) {
    v->per_call.push_back(j["proc_syscalls_per_call"].get<double>());
  }
  if (!j.is_object() || !j.contains("stage_us") || !j["stage_us"].is_object()) return;
  for (const auto& [stage, q] : j["stage_us"].items()) {
    if (!q.is_object() || !q.contains("p50_us") || !q.contains("p99_us")) continue;
    v->stage_p50[stage].push_back(q["p50_us"].get<double>());
    v->stage_p99[stage].push_back(q["p99_us"].get<double>());
  }
}

std::string Median(std::vector<double> v) {
  if (v.empty()) return "n/a";
  std::sort(v.begin(), v.end());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v[v.size() / 2]);
  return buf;
}

// The gate thread's stages (median over blocks of each block's P50 and P99, estimated from the
// histogram buckets): what of the added latency is the gate's own work; the rest is scheduling.
void ReportStages(const Variant& v) {
  if (v.stage_p50.empty()) return;
  std::printf("         on the gate's thread, P50/P99 us (median of blocks):");
  for (const char* stage : {"receive", "decide", "answer"}) {
    const auto p50 = v.stage_p50.find(stage), p99 = v.stage_p99.find(stage);
    if (p50 == v.stage_p50.end() || p99 == v.stage_p99.end()) continue;
    std::printf(" %s %s/%s", stage, Median(p50->second).c_str(), Median(p99->second).c_str());
  }
  std::printf("\n");
}

// The total of `strace -c -o FILE`'s table: "100.00    T    U    CALLS    ERRORS total".
double StraceTotal(const fs::path& file) {
  std::istringstream in(ReadAll(file));
  std::string line;
  double total = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> w;
    std::string x;
    while (f >> x) w.push_back(x);
    if (w.size() >= 5 && w.back() == "total") total = std::atof(w[3].c_str());
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Latency added by the seccomp (vigil run) and fanotify (vigil gate) gates"};
  int calls = 1000, exec_calls = 800, blocks = 8;
  std::string vigil_bin = VIGIL_BINARY, base_bin, probe = GATE_PROBE;
  bool strace = false, priority_ab = false;
  int probe_priority = 0;
  app.add_option("--calls", calls, "Connects per block")->capture_default_str();
  app.add_option("--exec-calls", exec_calls, "Execs per block (0: no exec blocks)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--blocks", blocks, "Blocks per variant (alternating)")->capture_default_str();
  app.add_option("--vigil", vigil_bin, "The vigil binary")->capture_default_str();
  app.add_option("--vigil-base", base_bin,
                 "A second vigil binary (e.g. the previous commit's) run alternately with --vigil");
  app.add_option("--probe", probe, "The gate_probe binary")->capture_default_str();
  app.add_flag("--strace", strace, "Also count system calls per gated call with strace -f -c");
  app.add_flag("--priority-ab", priority_ab,
               "Also run --vigil (and --vigil-base) with --realtime-priority 0 (the gates at "
               "normal scheduling), alternating with their default priority");
  app.add_option("--probe-priority", probe_priority,
                 "Run the probe (gated and ungated alike) at this SCHED_FIFO priority (chrt -f), "
                 "so that the measured caller does not wait for a core behind the machine's "
                 "other work; 0: normal scheduling")
      ->capture_default_str()
      ->check(CLI::Range(0, 99));
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "gate_latency_bench: needs root (seccomp, fanotify, mount)\n");
    return 2;
  }
  const fs::path dir = fs::temp_directory_path() / ("vigil-gate-bench-" + std::to_string(getpid()));
  fs::create_directories(dir / "mnt");
  if (probe_priority > 0) probe = "chrt -f " + std::to_string(probe_priority) + " " + probe;
  const fs::path out = dir / "probe.out", err = dir / "vigil.err", gout = dir / "gate.out";
  std::printf("load average before: %s", ReadAll("/proc/loadavg").c_str());

  testing::LoopbackListener listener;
  const fs::path few = dir / "few.yaml", whole = dir / "whole.yaml", falco = dir / "falco.yaml";
  const std::string few_rules =
      "- rule: Forbidden port\n  desc: d\n  condition: evt.type = connect and fd.sport = 1\n"
      "  output: \"connect %fd.sip:%fd.sport\"\n  priority: WARNING\n"
      "  action: {type: deny, mode: enforce}\n"
      "- rule: Secret\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n"
      "  output: \"open %fd.name\"\n  priority: WARNING\n  action: {type: deny, mode: enforce}\n"
      "- rule: Exec from mnt\n  desc: d\n  condition: evt.type = execve and proc.exepath = "
      "/nonexistent/prog\n  output: \"exec\"\n  priority: WARNING\n"
      "  action: {type: deny, mode: enforce}\n";
  std::ofstream(few) << few_rules;
  std::ofstream(whole) << few_rules
                       << "- rule: Whole context\n  desc: d\n  condition: evt.type in (connect, "
                          "execve) and proc.cmdline = nothing-here and user.name = nobody-here "
                          "and proc.aname = nothing-here and proc.aexepath = /nothing-here and "
                          "proc.pcmdline = nothing-here\n  output: \"%proc.cmdline\"\n"
                          "  priority: WARNING\n  action: {type: deny, mode: enforce}\n";
  // The whole context as Falco's stable rules read it: eight ancestors' names, the executables
  // of two (proc.aexepath[2]), the parent's argv, the caller's argv and user.
  std::ofstream(falco) << few_rules
                       << "- rule: Falco context\n  desc: d\n  condition: evt.type in (connect, "
                          "execve) and proc.cmdline = nothing-here and user.name = nobody-here "
                          "and proc.aname = nothing-here and proc.aexepath[2] = /nothing-here and "
                          "proc.pcmdline = nothing-here\n  output: \"%proc.cmdline\"\n"
                          "  priority: WARNING\n  action: {type: deny, mode: enforce}\n";
  // Signed, so that the gates keep enforce mode (an unsigned policy would run in monitor mode).
  const std::string keys = (dir / "keys").string();
  if (std::system((vigil_bin + " keys init --dir " + keys + " >/dev/null && " + vigil_bin +
                   " policy sign " + few.string() + " --key-dir " + keys + " >/dev/null && " +
                   vigil_bin + " policy sign " + whole.string() + " --key-dir " + keys +
                   " >/dev/null && " + vigil_bin + " policy sign " + falco.string() +
                   " --key-dir " + keys + " >/dev/null")
                      .c_str()) != 0) {
    std::fprintf(stderr, "gate_latency_bench: cannot sign the rules\n");
    return 1;
  }
  const std::string connect_args =
      " connect 127.0.0.1 " + std::to_string(listener.port()) + " " + std::to_string(calls);
  // The few rules plus one on ml.anomalous that every connect is a candidate of: the model is
  // asked for each connect (through the inference engine, its verdict cache included).
  const fs::path ml_rules = dir / "ml-rules.yaml";
  std::ofstream(ml_rules) << few_rules
                          << "- rule: Unusual connect\n  desc: d\n  condition: evt.type = connect "
                             "and ml.anomalous = true\n  output: \"unusual connect\"\n  "
                             "priority: WARNING\n  action: {type: deny, mode: enforce}\n";
  const std::string model = TrainProbeModel(vigil_bin, dir, keys);
  if (model.empty() || std::system((vigil_bin + " policy sign " + ml_rules.string() +
                                    " --key-dir " + keys + " >/dev/null")
                                       .c_str()) != 0) {
    std::fprintf(stderr, "gate_latency_bench: cannot train or sign the gate model\n");
    return 1;
  }
  const std::string trusted = " --trusted-key " + keys + "/vigil.pub";

  std::vector<Variant> variants;
  std::vector<std::pair<std::string, std::string>> bins = {{"new", vigil_bin}};
  if (!base_bin.empty()) bins.push_back({"base", base_bin});
  for (const auto& [rname, rfile] :
       {std::pair{"few fields", few}, std::pair{"whole context", whole},
        std::pair{"Falco context", falco}}) {
    for (const auto& [bname, bin] : bins) {
      variants.push_back({bname + ", " + rname, bin, rfile.string(), "", "", {}, {}});
    }
    if (priority_ab) {
      for (const auto& [bname, bin] : bins) {
        variants.push_back({bname + ", " + std::string(rname) + ", normal priority",
                            bin,
                            rfile.string(),
                            "",
                            " --realtime-priority 0",
                            {},
                            {}});
      }
    }
  }
  variants.push_back({"new, few fields + model", vigil_bin, ml_rules.string(),
                      " --model " + model, "", {}, {}});

  // connect, with and without `vigil run`.
  std::vector<std::vector<double>> base;
  for (int b = 0; b < blocks; ++b) {
    base.push_back(RunProbe(probe + connect_args, out));
    for (Variant& v : variants) {
      auto y = RunProbe(v.vigil + " run --json --policy " + v.rules + v.extra + v.gate_flags +
                            trusted + " -- " +
                            probe + connect_args + " 2>" + err.string(),
                        out);
      v.blocks.push_back(std::move(y));
      AddSummary(err, &v);
    }
  }
  for (const Variant& v : variants) {
    Report("connect", base, v.blocks, "without gate", v.name.c_str());
    std::printf("         /proc system calls per gated call (median of blocks): %s\n",
                Median(v.per_call).c_str());
    ReportStages(v);
  }
  if (strace) {
    // The difference between a run with `calls` connects and one with none, per connect: the
    // start-up of vigil and of the probe cancel out.
    auto count = [&](const Variant& v, int n) {
      const std::string cmd = "strace -f -c -o " + (dir / "strace.out").string() + " " + v.vigil +
                              " run --policy " + v.rules + v.gate_flags + trusted + " -- " + probe +
                              " connect 127.0.0.1 " + std::to_string(listener.port()) + " " +
                              std::to_string(n) + " >/dev/null 2>&1";
      return std::system(cmd.c_str()) == -1 ? 0.0 : StraceTotal(dir / "strace.out");
    };
    for (const Variant& v : variants) {
      if (!v.extra.empty()) continue;
      std::printf("connect  %s: %.1f system calls per connect (strace -f -c of vigil run and the "
                  "probe, %d connects less none)\n",
                  v.name.c_str(), (count(v, calls) - count(v, 0)) / calls, calls);
    }
  }

  // exec of a file on a tmpfs that `vigil gate` marks, alternating call by call with an exec of a
  // copy on a second tmpfs that nothing marks, while the same gate runs: each gated exec has an
  // ungated one next to it in time, under the same load, so the difference of their tails is not
  // that of two runs seconds apart.
  fs::create_directories(dir / "free");
  if (exec_calls == 0) {
    std::printf("exec     skipped (--exec-calls 0)\n");
  } else if (mount("tmpfs", (dir / "mnt").c_str(), "tmpfs", 0, "size=16m") != 0 ||
             mount("tmpfs", (dir / "free").c_str(), "tmpfs", 0, "size=16m") != 0) {
    std::fprintf(stderr, "gate_latency_bench: cannot mount a tmpfs: exec skipped\n");
    umount2((dir / "mnt").c_str(), MNT_DETACH);
    umount2((dir / "free").c_str(), MNT_DETACH);
  } else {
    const fs::path prog = dir / "mnt" / "prog", free_prog = dir / "free" / "prog";
    for (const fs::path& p : {prog, free_prog}) {
      fs::copy_file("/bin/true", p);
      fs::permissions(p, fs::perms::owner_all);
    }
    const std::string exec_args =
        " exec2 " + prog.string() + " " + free_prog.string() + " " + std::to_string(exec_calls);
    std::vector<Variant> evars;
    for (const Variant& v : variants) {
      if (v.extra.empty()) evars.push_back({v.name, v.vigil, v.rules, "", v.gate_flags, {}, {}});
    }
    auto gate_argv = [&](const Variant& v) {
      std::vector<std::string> a{v.vigil,   "gate",  "--json",        "--watch",
                                 (dir / "mnt").string(), "--policy", v.rules, "--trusted-key",
                                 keys + "/vigil.pub"};
      std::istringstream flags(v.gate_flags);
      for (std::string f; flags >> f;) a.push_back(f);
      return a;
    };
    for (int b = 0; b < blocks; ++b) {
      for (Variant& v : evars) {
        const pid_t g = StartGate(gate_argv(v), gout, err);
        if (g < 0) {
          std::fprintf(stderr, "gate_latency_bench: vigil gate did not start: %s\n",
                       ReadAll(err).c_str());
          return 1;
        }
        std::fflush(stdout);
        const int rc = std::system((probe + exec_args + " >" + out.string()).c_str());
        StopGate(g);
        auto [gated, ungated] =
            rc == -1 ? std::pair<std::vector<double>, std::vector<double>>{} : ParsePairs(out);
        v.blocks.push_back(std::move(gated));
        v.paired.push_back(std::move(ungated));
        AddSummary(gout, &v);
      }
    }
    for (const Variant& v : evars) {
      Report("exec", v.paired, v.blocks, "without gate (paired)", v.name.c_str());
      std::printf("         /proc system calls per gated call (median of blocks): %s\n",
                  Median(v.per_call).c_str());
      ReportStages(v);
    }
    if (strace) {
      auto count = [&](const Variant& v, int n) {
        std::vector<std::string> a = gate_argv(v);
        a.insert(a.begin(), {"/usr/bin/strace", "-f", "-c", "-o", (dir / "strace.out").string()});
        const pid_t g = StartGate(a, gout, err);
        if (g < 0) return 0.0;
        (void)RunProbe(probe + " exec " + prog.string() + " " + std::to_string(n), out);
        StopGate(g, true);
        return StraceTotal(dir / "strace.out");
      };
      for (const Variant& v : evars) {
        std::printf("exec     %s: %.1f system calls of vigil gate per exec (strace -f -c, %d "
                    "execs less one)\n",
                    v.name.c_str(), (count(v, exec_calls + 1) - count(v, 1)) / exec_calls,
                    exec_calls);
      }
    }
    umount2((dir / "mnt").c_str(), MNT_DETACH);
    umount2((dir / "free").c_str(), MNT_DETACH);
  }
  std::printf("load average after: %s", ReadAll("/proc/loadavg").c_str());
  fs::remove_all(dir);
  return 0;
}
