// The actions on real processes of this host: freeze and thaw, kill, block-network and its
// rollback, escalations that carry out an action. Needs root (CI runs as root); each test uses
// its own cgroup subtree and bpffs pin directory, and removes them.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "enforce/enforce.h"
#include "enforce/proc.h"

namespace vigil::enforce {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "R", "S", ... from /proc/PID/status.
std::string ProcState(pid_t pid) {
  const std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("State:\t");
  return at == std::string::npos ? "" : status.substr(at + 7, 1);
}

std::string ProcCgroup(pid_t pid) {
  auto p = ParseCgroupV2Path(ReadFile("/proc/" + std::to_string(pid) + "/cgroup"));
  return p.has_value() ? *p : "";
}

// Waits (up to 5 s) until `pred` holds; the kernel's state changes are asynchronous.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// A child that spins on the CPU until killed.
pid_t SpinningChild() {
  const pid_t pid = fork();
  if (pid == 0) {
    volatile uint64_t n = 0;
    for (;;) n = n + 1;
  }
  return pid;
}

// A child that, for every byte it reads on `cmd`, connects to 127.0.0.1:port and writes the
// errno of the attempt (0 on success) to `res`; it exits at end of input.
struct Connector {
  pid_t pid = -1;
  int cmd = -1;
  int res = -1;

  static Connector Start(uint16_t port) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return {};
    const pid_t pid = fork();
    if (pid == 0) {
      close(to_child[1]);
      close(from_child[0]);
      char c;
      while (read(to_child[0], &c, 1) == 1) {
        const int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int err = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? 0 : errno;
        close(s);
        if (write(from_child[1], &err, sizeof(err)) != sizeof(err)) _exit(1);
      }
      _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    return Connector{pid, to_child[1], from_child[0]};
  }
  int Connect() const {
    if (write(cmd, "c", 1) != 1) return -1;
    int err = -1;
    if (read(res, &err, sizeof(err)) != sizeof(err)) return -1;
    return err;
  }
  void Stop() {
    if (pid <= 0) return;
    close(cmd);
    close(res);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
  }
};

// A TCP listener on 127.0.0.1 at a free port (its address in *addr); -1 on failure.
int Listen(sockaddr_in* addr) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

class ActionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (cgroup moves, freezer, BPF, signals)";
    const std::string tag = std::to_string(getpid()) + "-" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("vigil-enforce-root-" + tag);
    fs::remove_all(dir_);
    options_.state_dir = dir_.string();
    options_.cgroup_subtree = "vigil-test-" + std::to_string(getpid());
    options_.bpf_pin_dir = "/sys/fs/bpf/vigil-test-" + std::to_string(getpid());
    auto e = Enforcer::Open(options_, clock_, registry_);
    ASSERT_TRUE(e.has_value()) << e.error().message();
    enforcer_ = std::move(e).value();
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    enforcer_.reset();
    fs::remove_all(dir_);
  }
  pid_t Track(pid_t pid) {
    children_.push_back(pid);
    return pid;
  }
  core::Result<Outcome> Do(ActionKind a, const std::string& target) {
    ActionRequest r;
    r.action = a;
    r.target = *ParseTarget(target);
    r.rule = "test";
    r.reason = "root test";
    r.mode = Mode::kEnforce;
    return enforcer_->Apply(r);
  }
  uint64_t Count(const char* name, const char* action) {
    return (*registry_.GetCounter(name, "", {{"action", action}}))->Value();
  }

  fs::path dir_;
  EnforcerOptions options_;
  core::FakeClock clock_;
  core::Registry registry_;
  std::unique_ptr<Enforcer> enforcer_;
  std::vector<pid_t> children_;
};

TEST_F(ActionTest, FreezeThenThawARealProcess) {
  const pid_t child = Track(SpinningChild());
  const std::string original = ProcCgroup(child);
  ASSERT_FALSE(original.empty());
  ASSERT_TRUE(Eventually([&] { return ProcState(child) == "R"; }));

  auto o = Do(ActionKind::kFreeze, "pid:" + std::to_string(child));
  ASSERT_TRUE(o.has_value()) << o.error().message();
  ASSERT_EQ(o->state, State::kApplied) << o->detail;
  const std::string held = "/" + options_.cgroup_subtree + "/a" + std::to_string(o->id);
  EXPECT_EQ(ProcCgroup(child), held);
  // A spinning process stops running once frozen: it sleeps in the freezer.
  EXPECT_TRUE(Eventually([&] { return ProcState(child) == "S"; })) << ProcState(child);
  EXPECT_EQ(Count("vigil_enforcement_success_total", "freeze"), 1u);

  auto rb = enforcer_->Rollback(o->id);
  ASSERT_TRUE(rb.has_value()) << rb.error().message();
  ASSERT_TRUE(rb->error.ok()) << rb->error.message();
  EXPECT_EQ(rb->state, State::kRolledBack);
  EXPECT_TRUE(Eventually([&] { return ProcState(child) == "R"; })) << ProcState(child);
  EXPECT_EQ(ProcCgroup(child), original);
  auto e = enforcer_->Get(o->id);
  EXPECT_EQ(e->state, State::kRolledBack);
  EXPECT_EQ(Count("vigil_enforcement_rollback_total", "freeze"), 1u);
  // The Vigil cgroup is gone again.
  auto root_mount = FindCgroup2Mount(ReadFile("/proc/self/mountinfo"));
  ASSERT_TRUE(root_mount.has_value());
  EXPECT_FALSE(fs::exists(*root_mount + held));
  fs::remove(*root_mount + "/" + options_.cgroup_subtree);
}

TEST_F(ActionTest, KillIsCarriedOutAndItsRollbackRefusedAndRecorded) {
  const pid_t child = Track(SpinningChild());
  auto st = ParseStat(ReadFile("/proc/" + std::to_string(child) + "/stat"));
  ASSERT_TRUE(st.has_value());
  // With its start time, so that the second kill below cannot hit a recycled pid.
  const std::string target = "pid:" + std::to_string(child) + "@" + std::to_string(st->start_time);
  auto o = Do(ActionKind::kKill, target);
  ASSERT_TRUE(o.has_value()) << o.error().message();
  ASSERT_EQ(o->state, State::kApplied) << o->detail;
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  children_.clear();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  auto rb = enforcer_->Rollback(o->id);
  ASSERT_FALSE(rb.has_value());
  EXPECT_EQ(rb.error().code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(rb.error().message().find("cannot be rolled back"), std::string::npos);
  EXPECT_EQ(enforcer_->Get(o->id)->state, State::kApplied);
  EXPECT_FALSE(enforcer_->Get(o->id)->reversible);
  std::vector<std::string> results;
  (void)enforcer_->DrainAudit([&](std::string_view type, nlohmann::json j) {
    if (type == "rollback") results.push_back(j["result"]);
    return core::Status::Ok();
  });
  EXPECT_EQ(results, std::vector<std::string>{"not-reversible"});

  // The process is gone now: a second kill fails and is counted as a failure.
  auto again = Do(ActionKind::kKill, target);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->state, State::kFailed);
  EXPECT_EQ(Count("vigil_enforcement_failure_total", "kill"), 1u);
}

TEST_F(ActionTest, KillOfARecycledPidIsRefused) {
  const pid_t child = Track(SpinningChild());
  auto st = ParseStat(ReadFile("/proc/" + std::to_string(child) + "/stat"));
  ASSERT_TRUE(st.has_value());
  auto o = Do(ActionKind::kKill,
              "pid:" + std::to_string(child) + "@" + std::to_string(st->start_time + 1));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->state, State::kFailed);
  EXPECT_NE(o->detail.find("another process"), std::string::npos) << o->detail;
  EXPECT_EQ(ProcState(child), "R");
}

TEST_F(ActionTest, KillAProcessGroup) {
  const pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    if (fork() == 0) pause();
    pause();
    _exit(0);
  }
  Track(leader);
  ASSERT_TRUE(Eventually([&] { return getpgid(leader) == leader; }));
  auto o = Do(ActionKind::kKill, "pgid:" + std::to_string(leader));
  ASSERT_TRUE(o.has_value()) << o.error().message();
  ASSERT_EQ(o->state, State::kApplied) << o->detail;
  int status = 0;
  ASSERT_EQ(waitpid(leader, &status, 0), leader);
  children_.clear();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_F(ActionTest, BlockNetworkThenRollback) {
  sockaddr_in a{};
  const int listener = Listen(&a);
  ASSERT_GE(listener, 0);
  const uint16_t port = ntohs(a.sin_port);

  Connector c = Connector::Start(port);
  ASSERT_GT(c.pid, 0);
  Track(c.pid);
  const std::string original = ProcCgroup(c.pid);
  EXPECT_EQ(c.Connect(), 0) << "connect before the block";

  auto o = Do(ActionKind::kBlockNetwork, "pid:" + std::to_string(c.pid));
  ASSERT_TRUE(o.has_value()) << o.error().message();
  ASSERT_EQ(o->state, State::kApplied) << o->detail;
  EXPECT_EQ(c.Connect(), EPERM);
  // Only the target's cgroup is cut off: this process still connects.
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  close(s);
  EXPECT_TRUE(fs::exists(options_.bpf_pin_dir + "/net_deny"));

  auto rb = enforcer_->Rollback(o->id);
  ASSERT_TRUE(rb.has_value()) << rb.error().message();
  ASSERT_TRUE(rb->error.ok()) << rb->error.message();
  EXPECT_NE(rb->detail.find("1 connect(s) refused"), std::string::npos) << rb->detail;
  EXPECT_EQ(c.Connect(), 0) << "connect after the rollback";
  EXPECT_EQ(ProcCgroup(c.pid), original);
  // The last entry gone, the programs are detached and their pins removed.
  EXPECT_FALSE(fs::exists(options_.bpf_pin_dir));
  c.Stop();
  children_.clear();
  close(listener);
  auto root_mount = FindCgroup2Mount(ReadFile("/proc/self/mountinfo"));
  if (root_mount) fs::remove(*root_mount + "/" + options_.cgroup_subtree);
}

// Cgroup targets act on the cgroup in place: freeze/thaw it, deny-list it, kill everything in it.
TEST_F(ActionTest, CgroupTargetsFreezeBlockAndKillInPlace) {
  auto root_mount = FindCgroup2Mount(ReadFile("/proc/self/mountinfo"));
  ASSERT_TRUE(root_mount.has_value());
  const std::string path = "/" + options_.cgroup_subtree + "-target";
  const std::string abs = *root_mount + path;
  fs::create_directories(abs);
  sockaddr_in a{};
  const int listener = Listen(&a);
  ASSERT_GE(listener, 0);
  Connector c = Connector::Start(ntohs(a.sin_port));
  Track(c.pid);
  std::ofstream(abs + "/cgroup.procs") << c.pid << std::flush;
  ASSERT_EQ(ProcCgroup(c.pid), path);

  auto block = Do(ActionKind::kBlockNetwork, "cgroup:" + path);
  ASSERT_TRUE(block.has_value() && block->state == State::kApplied)
      << (block ? block->detail : block.error().message());
  EXPECT_EQ(c.Connect(), EPERM);
  ASSERT_TRUE(enforcer_->Rollback(block->id).has_value());
  EXPECT_EQ(c.Connect(), 0);
  EXPECT_EQ(ProcCgroup(c.pid), path) << "a cgroup target is never moved";

  auto freeze = Do(ActionKind::kFreeze, "cgroup:" + path);
  ASSERT_TRUE(freeze.has_value() && freeze->state == State::kApplied)
      << (freeze ? freeze->detail : freeze.error().message());
  EXPECT_NE(ReadFile(abs + "/cgroup.events").find("frozen 1"), std::string::npos);
  ASSERT_TRUE(enforcer_->Rollback(freeze->id).has_value());
  EXPECT_NE(ReadFile(abs + "/cgroup.events").find("frozen 0"), std::string::npos);
  EXPECT_EQ(c.Connect(), 0);

  auto kill = Do(ActionKind::kKill, "cgroup:" + path);
  ASSERT_TRUE(kill.has_value() && kill->state == State::kApplied)
      << (kill ? kill->detail : kill.error().message());
  int status = 0;
  ASSERT_EQ(waitpid(c.pid, &status, 0), c.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  children_.clear();
  close(c.cmd);
  close(c.res);
  close(listener);
  EXPECT_TRUE(Eventually([&] { return rmdir(abs.c_str()) == 0; }));
  auto missing = Do(ActionKind::kFreeze, "cgroup:" + path);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->state, State::kFailed);
  EXPECT_NE(missing->detail.find("does not exist"), std::string::npos) << missing->detail;
}

TEST_F(ActionTest, FreezeAndBlockShareOneHoldUntilBothAreRolledBack) {
  const pid_t child = Track(SpinningChild());
  const std::string original = ProcCgroup(child);
  auto f = Do(ActionKind::kFreeze, "pid:" + std::to_string(child));
  ASSERT_TRUE(f.has_value() && f->state == State::kApplied) << (f ? f->detail : "");
  auto b = Do(ActionKind::kBlockNetwork, "pid:" + std::to_string(child));
  ASSERT_TRUE(b.has_value() && b->state == State::kApplied) << (b ? b->detail : "");
  const std::string held = ProcCgroup(child);
  EXPECT_EQ(enforcer_->Get(b->id)->cgroup, held);
  ASSERT_TRUE(enforcer_->Rollback(f->id).has_value());
  EXPECT_TRUE(Eventually([&] { return ProcState(child) == "R"; }));
  EXPECT_EQ(ProcCgroup(child), held) << "still held by the block";
  ASSERT_TRUE(enforcer_->Rollback(b->id).has_value());
  EXPECT_EQ(ProcCgroup(child), original);
  auto root_mount = FindCgroup2Mount(ReadFile("/proc/self/mountinfo"));
  if (root_mount) fs::remove(*root_mount + "/" + options_.cgroup_subtree);
}

TEST_F(ActionTest, EscalationApprovedFreezesTimeoutKillsDeniedDoesNothing) {
  const pid_t a = Track(SpinningChild());
  const pid_t b = Track(SpinningChild());
  const pid_t c = Track(SpinningChild());
  auto ask = [&](pid_t pid, ActionKind proposed, TimeoutDefault def) {
    ActionRequest r;
    r.action = ActionKind::kEscalate;
    r.target = *ParseTarget("pid:" + std::to_string(pid));
    r.rule = "test";
    r.mode = Mode::kEnforce;
    r.proposed = proposed;
    r.on_timeout = def;
    r.timeout_seconds = 30;
    auto o = enforcer_->Apply(r);
    EXPECT_TRUE(o.has_value());
    return o.has_value() ? o->escalation_id : 0;
  };
  const uint64_t ea = ask(a, ActionKind::kFreeze, TimeoutDefault::kDismiss);
  const uint64_t eb = ask(b, ActionKind::kKill, TimeoutDefault::kEnforce);
  ASSERT_NE(eb, 0u);
  const uint64_t ec = ask(c, ActionKind::kKill, TimeoutDefault::kEnforce);
  EXPECT_EQ(ProcState(a), "R");

  auto approved = enforcer_->Approve(ea, "alice");
  ASSERT_TRUE(approved.has_value()) << approved.error().message();
  EXPECT_EQ(approved->state, State::kApplied) << approved->detail;
  EXPECT_TRUE(Eventually([&] { return ProcState(a) == "S"; }));
  auto denied = enforcer_->Deny(ec, "alice");
  ASSERT_TRUE(denied.has_value());

  clock_.Advance(int64_t{31} * 1'000'000'000);
  ASSERT_EQ(*enforcer_->ExpireDue(), 1u);
  int status = 0;
  ASSERT_EQ(waitpid(b, &status, 0), b);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  std::erase(children_, b);
  EXPECT_EQ(ProcState(c), "R") << "denied: untouched";

  ASSERT_TRUE(enforcer_->Rollback(approved->id).has_value());
  EXPECT_TRUE(Eventually([&] { return ProcState(a) == "R"; }));
  auto root_mount = FindCgroup2Mount(ReadFile("/proc/self/mountinfo"));
  if (root_mount) fs::remove(*root_mount + "/" + options_.cgroup_subtree);
}

TEST_F(ActionTest, FreezeOfAGoneProcessFailsAndIsRecorded) {
  const pid_t child = SpinningChild();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto o = Do(ActionKind::kFreeze, "pid:" + std::to_string(child));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->state, State::kFailed);
  EXPECT_EQ(o->error.code(), core::StatusCode::kNotFound);
  EXPECT_EQ(enforcer_->Get(o->id)->state, State::kFailed);
  EXPECT_EQ(Count("vigil_enforcement_failure_total", "freeze"), 1u);
}

}  // namespace
}  // namespace vigil::enforce
