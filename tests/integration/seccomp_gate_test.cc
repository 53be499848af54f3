// The seccomp gate on its own (sensor/seccomp_gate.h), as root: what it reads of each held call
// out of the caller's memory, decided by a decider that only records.

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "sensor/seccomp_gate.h"
#include "tests/integration/loopback_listener.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Allows every call and keeps a copy of it.
class RecordingDecider final : public sensor::GateDecider {
 public:
  sensor::GateAnswer Decide(const sensor::GateCall& call, sensor::CallControl*) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(call);
    return sensor::GateAnswer::kAllow;
  }
  void OnFallback(const sensor::GateCall&, sensor::GateAnswer, sensor::GateFallbackCause) override {}
  void Late(const sensor::GateCall&, sensor::GateAnswer) override {}
  std::vector<sensor::GateCall> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::vector<sensor::GateCall> calls_;
};

TEST(SeccompGateTest, ReadsEachCallsPathArgvAndAddressAsTheCallerPassedThem) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (seccomp user notification)";
  const fs::path dir =
      fs::canonical(fs::temp_directory_path()) / ("vigil-seccomp-read-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "rel.txt") << "r";
  testing::LoopbackListener listener;
  const std::string probe = VIGIL_GATE_PROBE;
  std::string many;  // 70 arguments: more than the gate reads
  for (int i = 0; i < 70; ++i) many += " a" + std::to_string(i);
  const std::string script =
      "cd " + dir.string() + " && " + probe + " open rel.txt >/dev/null; " + probe +
      " open ./sub/..//rel.txt >/dev/null; " + probe + " connect 127.0.0.1 " +
      std::to_string(listener.port()) + " >/dev/null; " + probe + " open " +
      std::string(5000, 'z') + " >/dev/null; exec " + probe + many + " >/dev/null 2>&1";

  RecordingDecider decider;
  sensor::SeccompGateOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.deadline_ns = 2'000'000'000;  // a loaded machine must not turn a decision into a fallback
  auto g = sensor::SeccompGate::Launch(o, &decider);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  const sensor::SeccompExit exit = (*g)->Wait();
  EXPECT_EQ(exit.exec_errno, 0);
  const sensor::SeccompGateStats st = (*g)->stats();
  EXPECT_EQ(st.vanished, 0u);
  EXPECT_EQ(st.read_failures, 1u);  // the 5,000-byte path: longer than the gate reads
  EXPECT_EQ(st.deadline_answers, 0u);

  const std::vector<sensor::GateCall> calls = decider.calls();
  auto count = [&](auto pred) { return std::count_if(calls.begin(), calls.end(), pred); };
  // The probe's exec: its path and argv.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kProcessExec && c.event.path == probe &&
                     c.argv == std::vector<std::string>{probe, "open", "rel.txt"} &&
                     !c.argv_truncated;
            }),
            1);
  // Relative paths made absolute against the caller's cwd, and lexically normal.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kFileOpen &&
                     c.event.path == (dir / "rel.txt").string();
            }),
            2);
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kNetConnect &&
                     c.event.net.daddr == "127.0.0.1" && c.event.net.dport == listener.port();
            }),
            1);
  // The last exec: 64 of its 71 arguments, marked truncated.
  EXPECT_EQ(count([&](const sensor::GateCall& c) {
              return c.event.kind == core::EventKind::kProcessExec && c.argv_truncated &&
                     c.argv.size() == 64 && c.argv[0] == probe && c.argv[63] == "a62";
            }),
            1);
  for (const sensor::GateCall& c : calls) {
    EXPECT_EQ(c.event.source, core::EventSource::kSeccomp);
    EXPECT_GT(c.event.proc.pid, 0u);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vigil
