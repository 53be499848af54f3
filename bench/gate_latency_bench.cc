// The latency a gate adds, measured against the same operations without it in one run
// (docs/benchmarks.md, "Gates"). A plain driver, not Google Benchmark: each operation is a real
// system call of a separate process (gate_probe), timed inside that process.
//
//   connect: gate_probe connects N times to a local listener, directly, under
//            `vigil run --policy RULES` (seccomp user notification, rules evaluated per call),
//            and under `vigil run --model` with a rule on ml.anomalous (the gate model asked
//            through the inference engine for every connect);
//   exec:    gate_probe fork+execs a copy of /bin/true N times from a tmpfs directory, with and
//            without the fanotify gate holding the exec (FAN_OPEN_EXEC_PERM) for the same rules.
// Blocks with and without the gate alternate, so that the machine's load drifts over both alike.
// Needs root. Usage: gate_latency_bench [--calls N] [--blocks B] [--vigil PATH] [--probe PATH]

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/vigil/gate_wiring.h"
#include "tests/integration/loopback_listener.h"
#include "enforce/gate.h"
#include "sensor/fanotify_gate.h"

namespace fs = std::filesystem;
using namespace vigil;

namespace {

std::vector<double> RunProbe(const std::string& cmd, const fs::path& out) {
  const std::string full = cmd + " >" + out.string();
  if (std::system(full.c_str()) == -1) return {};
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

double Pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

void Report(const char* what, const std::vector<double>& base, const std::vector<double>& gated,
            const char* base_name = "without gate", const char* gated_name = "with gate") {
  const double b50 = Pct(base, 0.5), b99 = Pct(base, 0.99);
  const double g50 = Pct(gated, 0.5), g99 = Pct(gated, 0.99);
  std::printf("%-8s %s: n=%zu P50 %.1f us P99 %.1f us | %s: n=%zu P50 %.1f us "
              "P99 %.1f us | added: P50 %.1f us P99 %.1f us\n",
              what, base_name, base.size(), b50, b99, gated_name, gated.size(), g50, g99,
              g50 - b50, g99 - b99);
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Latency added by the seccomp (vigil run) and fanotify gates"};
  int calls = 500, blocks = 6;
  std::string vigil_bin = VIGIL_BINARY, probe = GATE_PROBE;
  app.add_option("--calls", calls, "Calls per block")->capture_default_str();
  app.add_option("--blocks", blocks, "Blocks per variant (alternating)")->capture_default_str();
  app.add_option("--vigil", vigil_bin, "The vigil binary")->capture_default_str();
  app.add_option("--probe", probe, "The gate_probe binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "gate_latency_bench: needs root (seccomp, fanotify, mount)\n");
    return 2;
  }
  const fs::path dir = fs::temp_directory_path() / ("vigil-gate-bench-" + std::to_string(getpid()));
  fs::create_directories(dir / "mnt");
  const fs::path out = dir / "probe.out";

  // connect, with and without `vigil run`; the rules deny another port, so every connect is
  // evaluated and allowed.
  testing::LoopbackListener listener;
  const fs::path rules_file = dir / "rules.yaml";
  std::ofstream(rules_file) << "- rule: Forbidden port\n  desc: d\n  condition: evt.type = connect "
                               "and fd.sport = 1\n  output: \"connect %fd.sip:%fd.sport\"\n  "
                               "priority: WARNING\n  action: {type: deny, mode: enforce}\n"
                               "- rule: Secret\n  desc: d\n  condition: evt.type = openat and "
                               "fd.name = /etc/shadow\n  output: \"open %fd.name\"\n  priority: "
                               "WARNING\n  action: {type: deny, mode: enforce}\n"
                               "- rule: Exec from mnt\n  desc: d\n  condition: evt.type = execve "
                               "and proc.exepath = /nonexistent/prog\n  output: \"exec\"\n  "
                               "priority: WARNING\n  action: {type: deny, mode: enforce}\n";
  // Signed, so that `vigil run` keeps enforce mode (an unsigned policy would run in monitor mode).
  const std::string keys = (dir / "keys").string();
  if (std::system((vigil_bin + " keys init --dir " + keys + " >/dev/null && " + vigil_bin +
                   " policy sign " + rules_file.string() + " --key-dir " + keys + " >/dev/null")
                      .c_str()) != 0) {
    std::fprintf(stderr, "gate_latency_bench: cannot sign the rules\n");
    return 1;
  }
  const std::string connect_args =
      " connect 127.0.0.1 " + std::to_string(listener.port()) + " " + std::to_string(calls);
  // The same rules plus one on ml.anomalous that every connect is a candidate of: the model is
  // asked for each connect (through the inference engine, its verdict cache included).
  const fs::path ml_rules = dir / "ml-rules.yaml";
  std::ofstream(ml_rules) << std::ifstream(rules_file).rdbuf()
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
  std::vector<double> base, gated, modeled;
  for (int b = 0; b < blocks; ++b) {
    auto x = RunProbe(probe + connect_args, out);
    base.insert(base.end(), x.begin(), x.end());
    auto y = RunProbe(vigil_bin + " run --policy " + rules_file.string() + trusted + " -- " +
                          probe + connect_args,
                      out);
    gated.insert(gated.end(), y.begin(), y.end());
    auto z = RunProbe(vigil_bin + " run --policy " + ml_rules.string() + " --model " + model +
                          trusted + " -- " + probe + connect_args,
                      out);
    modeled.insert(modeled.end(), z.begin(), z.end());
  }
  Report("connect", base, gated);
  Report("connect", gated, modeled, "gate, no model", "gate + model");

  // exec of a file on a tmpfs, with and without the fanotify gate marking its directory.
  if (mount("tmpfs", (dir / "mnt").c_str(), "tmpfs", 0, "size=16m") != 0) {
    std::fprintf(stderr, "gate_latency_bench: cannot mount a tmpfs: exec skipped\n");
  } else {
    const fs::path prog = dir / "mnt" / "prog";
    fs::copy_file("/bin/true", prog);
    fs::permissions(prog, fs::perms::owner_all);
    auto rules = policy::RuleSet::LoadFiles({rules_file.string()});
    if (!rules.has_value()) return 1;
    std::vector<double> ebase, egated;
    const std::string exec_args = " exec " + prog.string() + " " + std::to_string(calls);
    for (int b = 0; b < blocks; ++b) {
      auto x = RunProbe(probe + exec_args, out);
      ebase.insert(ebase.end(), x.begin(), x.end());
      enforce::DecisionGate gate(&*rules, enforce::GateOptions{.name = "fanotify"}, nullptr,
                                 nullptr, nullptr);
      app::GateDeciderAdapter decider(&gate);
      sensor::FanotifyGateOptions o;
      o.paths = {(dir / "mnt").string()};
      auto g = sensor::FanotifyGate::Start(o, &decider);
      if (!g.has_value()) {
        std::fprintf(stderr, "gate_latency_bench: %s\n", g.error().message().c_str());
        break;
      }
      auto y = RunProbe(probe + exec_args, out);
      egated.insert(egated.end(), y.begin(), y.end());
      (*g)->Stop();
    }
    Report("exec", ebase, egated);
    umount2((dir / "mnt").c_str(), MNT_DETACH);
  }
  fs::remove_all(dir);
  return 0;
}
