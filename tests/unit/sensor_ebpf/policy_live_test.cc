// Falco's stable rules on real events of this host: children of this test do what the rules
// describe (read /etc/shadow as an untrusted program, open a file through ../ components, truncate
// a log, link to /etc/shadow, ask to be traced, spawn a shell below a process named nginx, search
// for private keys, execute from /dev/shm and from a memfd); the eBPF sensor reports it, the process
// tree enriches it as the agent does, and the rules must fire. Needs root (CI runs as root).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "agent/policy_input.h"
#include "core/clock.h"
#include "enrich/process_tree.h"
#include "policy/engine.h"
#include "sensor/ebpf_sensor.h"

extern char** environ;

namespace vigil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

pid_t RunChild(const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

pid_t Spawn(const std::string& path, std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

class PolicyLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) GTEST_SKIP() << "kernel has no BTF";
    sensor::EbpfOptions options;
    options.syscall_stream = false;
    auto s = sensor::EbpfSensor::Open(options);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    sensor_ = std::move(s).value();
    auto t = enrich::ProcessTree::Create({}, &core::SystemClock::Get());
    ASSERT_TRUE(t.has_value());
    tree_ = std::move(t).value();
    ASSERT_TRUE(tree_->LoadSnapshot().ok());
    policy::PolicyOptions po;
    po.files = {VIGIL_SHARED_DIR "/fixtures/falco/falco_rules.yaml"};
    auto e = policy::PolicyEngine::Create(po);
    ASSERT_TRUE(e.has_value()) << e.error().message();
    engine_ = std::move(e).value();
    dir_ = fs::path("/tmp") / ("vigil-policy-live-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Applies every event to the tree as the agent does, and decides on those of this test's
  // descendants; returns when every rule in `want` fired or the deadline passed.
  void Collect(const std::set<std::string>& want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    const uint32_t self = static_cast<uint32_t>(getpid());
    const int64_t boot_offset = agent::BootToUnixOffsetNs();
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::includes(fired_.begin(), fired_.end(), want.begin(), want.end())) return;
      core::Event e;
      auto r = sensor_->NextFor(&e, milliseconds(100));
      if (!r.has_value() || *r != sensor::EbpfSensor::PollOutcome::kEvent) continue;
      const sensor::EbpfEventDetail& d = sensor_->detail();
      // The sensor leaves out this process's own events (it is the agent here), so the forks of
      // its children are missing: add a child when its first event names this process as parent.
      if (e.proc.ppid == self && !tree_->Lookup(e.proc.pid).has_value()) {
        tree_->OnFork(self, e.proc.pid, enrich::kUnknownTime);
      }
      switch (d.type) {
        case sensor::EbpfRecordType::kFork:
          tree_->OnFork(e.proc.pid, d.child_pid, enrich::kUnknownTime);
          continue;
        case sensor::EbpfRecordType::kExec:
          tree_->OnExec(e.proc.pid, e.path, d.argv, e.proc.uid, e.proc.comm, enrich::kUnknownTime);
          tree_->OnExecAttributes(e.proc.pid, e.proc);
          break;
        case sensor::EbpfRecordType::kExit:
          tree_->OnExit(e.proc.pid, enrich::kUnknownTime);
          continue;
        default:
          break;
      }
      tree_->Enrich(&e);
      bool ours = false;
      for (const enrich::ProcessInfo& a : tree_->Ancestors(e.proc.pid, 16)) {
        if (a.pid == self) ours = true;
      }
      if (!ours) continue;
      // As the agent decides: the worker's cached input and its per-process memo; checked
      // against a fresh input decided without a memo.
      policy::EvalInput& in = inputs_.Build(*tree_, e, boot_offset);
      const policy::Decision decision = engine_->Decide(&in, &inputs_.memo());
      policy::EvalInput fresh;
      agent::BuildEvalInput(*tree_, e, boot_offset, &fresh);
      const policy::Decision plain = engine_->Decide(&fresh);
      ASSERT_EQ(decision.hits.size(), plain.hits.size()) << e.path;
      for (size_t i = 0; i < plain.hits.size(); ++i) {
        EXPECT_EQ(decision.hits[i].rule, plain.hits[i].rule);
        EXPECT_EQ(decision.hits[i].output, plain.hits[i].output);
      }
      for (const policy::RuleHit& h : decision.hits) {
        fired_.insert(h.rule);
        outputs_[h.rule] = h.output;
      }
    }
  }

  std::unique_ptr<sensor::EbpfSensor> sensor_;
  std::unique_ptr<enrich::ProcessTree> tree_;
  std::unique_ptr<policy::PolicyEngine> engine_;
  agent::EvalInputCache inputs_;
  fs::path dir_;
  std::set<std::string> fired_;
  std::map<std::string, std::string> outputs_;
};

TEST_F(PolicyLiveTest, StableRulesFireOnRealEvents) {
  std::set<std::string> want;

  // An untrusted program reads /etc/shadow, directly and through ../ components.
  RunChild([] {
    prctl(PR_SET_NAME, "vigil-reader");
    int fd = open("/etc/shadow", O_RDONLY);
    if (fd >= 0) close(fd);
    fd = open("/tmp/../etc/../etc/shadow", O_RDONLY);
    if (fd >= 0) close(fd);
  });
  want.insert("Read sensitive file untrusted");
  want.insert("Directory traversal monitored file read");

  // A log truncated.
  const std::string log = "/var/log/vigil-policy-live-" + std::to_string(getpid()) + ".log";
  RunChild([&] {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) close(fd);
  });
  unlink(log.c_str());
  want.insert("Clear Log Activities");

  // Links to /etc/shadow.
  const std::string sym = (dir_ / "shadow-sym").string(), hard = (dir_ / "shadow-hard").string();
  RunChild([&] {
    if (symlink("/etc/shadow", sym.c_str()) != 0) _exit(1);
    if (link("/etc/shadow", hard.c_str()) != 0) _exit(1);  // EXDEV is fine: the call is seen
  });
  want.insert("Create Symlink Over Sensitive Files");
  want.insert("Create Hardlink Over Sensitive Files");

  // Anti-debugging.
  RunChild([] { ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); });
  want.insert("PTRACE anti-debug attempt");

  // A shell below a process named nginx (a link to sh, so the kernel names it nginx).
  const fs::path nginx = dir_ / "nginx";
  fs::create_symlink("/bin/sh", nginx);
  ASSERT_GT(Spawn(nginx.string(), {"nginx", "-c", "/bin/sh -c 'exit 0'; exit 0"}), 0);
  want.insert("Run shell untrusted");

  // Searching for private keys.
  ASSERT_GT(Spawn("/bin/grep", {"grep", "-r", "BEGIN RSA PRIVATE", "/dev/null"}), 0);
  want.insert("Search Private Keys or Passwords");

  // A program run from a memfd.
  RunChild([] {
    int mfd = static_cast<int>(memfd_create("vigil-memfd", 0));
    std::ifstream in("/bin/true", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (mfd < 0 || write(mfd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      _exit(1);
    }
    char* argv[] = {const_cast<char*>("true"), nullptr};
    fexecve(mfd, argv, environ);
    _exit(1);
  });
  want.insert("Fileless execution via memfd_create");

  // A program run from /dev/shm (when /dev/shm allows execution).
  const std::string shm = "/dev/shm/vigil-true-" + std::to_string(getpid());
  std::error_code ec;
  if (fs::copy_file("/bin/true", shm, ec)) {
    fs::permissions(shm, fs::perms::owner_all);
    if (Spawn(shm, {shm}) > 0) want.insert("Execution from /dev/shm");
  }

  Collect(want);
  fs::remove(shm, ec);
  for (const std::string& rule : want) {
    EXPECT_TRUE(fired_.count(rule)) << "rule \"" << rule << "\" did not fire";
  }
  // The outputs name the program and the file from the live event.
  EXPECT_NE(outputs_["Read sensitive file untrusted"].find("process=vigil-reader"),
            std::string::npos)
      << outputs_["Read sensitive file untrusted"];
  EXPECT_NE(outputs_["Read sensitive file untrusted"].find("file=/etc/shadow"), std::string::npos);
  EXPECT_NE(outputs_["Run shell untrusted"].find("parent=nginx"), std::string::npos)
      << outputs_["Run shell untrusted"];
}

}  // namespace
}  // namespace vigil
