#include "enrich/process_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "fake_proc.h"

namespace vigil::enrich {
namespace {

using ::testing::ElementsAre;
using ::vigil::enrich::testing::FakeProc;
using ::vigil::enrich::testing::FakeProcess;

constexpr int64_t kSecond = 1'000'000'000;
constexpr uint64_t kTick = 10'000'000;  // at 100 ticks per second
const std::string kId = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa01";

// Names uid N "user<N>", except uids it is told have no name; counts the questions.
class FakeUsers final : public UserResolver {
 public:
  explicit FakeUsers(std::atomic<int>* calls) : calls_(calls) {}
  std::optional<std::string> NameOf(uint32_t uid) override {
    calls_->fetch_add(1);
    if (uid == 4242) return std::nullopt;
    return uid == 0 ? "root" : "user" + std::to_string(uid);
  }

 private:
  std::atomic<int>* calls_;
};

class ProcessTreeTest : public ::testing::Test {
 protected:
  std::unique_ptr<ProcessTree> MakeTree(ProcessTreeOptions options = {}) {
    if (options.proc_root == "/proc") options.proc_root = proc_.root();
    options.clock_ticks_per_second = 100;
    if (options.exit_grace_ns == ProcessTreeOptions{}.exit_grace_ns)
      options.exit_grace_ns = 5 * kSecond;
    core::Result<std::unique_ptr<ProcessTree>> tree =
        ProcessTree::Create(options, &clock_, std::make_unique<FakeUsers>(&user_calls_));
    EXPECT_TRUE(tree.has_value()) << tree.error().ToString();
    return std::move(tree).value();
  }

  static std::vector<uint32_t> Pids(const std::vector<ProcessInfo>& infos) {
    std::vector<uint32_t> pids;
    for (const ProcessInfo& i : infos) pids.push_back(i.pid);
    return pids;
  }

  FakeProc proc_;
  core::FakeClock clock_;
  std::atomic<int> user_calls_{0};
};

TEST_F(ProcessTreeTest, SnapshotReadsEveryField) {
  proc_.Add({.pid = 1,
             .ppid = 0,
             .comm = "systemd",
             .start_ticks = 1,
             .ruid = 0,
             .euid = 0,
             .exe = "/usr/lib/systemd/systemd",
             .argv = {"/sbin/init"},
             .cgroup = "0::/init.scope\n"});
  proc_.Add({.pid = 100,
             .ppid = 1,
             .comm = "bash",
             .start_ticks = 500,
             .exe = "/usr/bin/bash",
             .argv = {"-bash"}});
  proc_.Add({.pid = 200,
             .ppid = 100,
             .comm = "my (odd) prog",
             .start_ticks = 900,
             .ruid = 1000,
             .euid = 0,
             .exe = "/opt/odd/prog",
             .argv = {"prog", "--flag", "two words"},
             .cgroup = "0::/system.slice/docker-" + kId + ".scope\n"});
  proc_.Add({.pid = 2, .ppid = 0, .comm = "kthreadd", .start_ticks = 1, .ruid = 0, .euid = 0});
  proc_.Write("self/stat", "not a process");  // non-numeric entries are not processes

  std::unique_ptr<ProcessTree> tree = MakeTree();
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  EXPECT_EQ(tree->size(), 4u);

  const std::optional<ProcessInfo> odd = tree->Lookup(200);
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(odd->pid, 200u);
  EXPECT_EQ(odd->ppid, 100u);
  EXPECT_EQ(odd->comm, "my (odd) prog");
  EXPECT_EQ(odd->exe, "/opt/odd/prog");
  EXPECT_THAT(odd->argv, ElementsAre("prog", "--flag", "two words"));
  EXPECT_FALSE(odd->argv_truncated);
  EXPECT_TRUE(odd->uid_known);
  EXPECT_EQ(odd->uid, 0u);  // effective, not real
  EXPECT_EQ(odd->user, "root");
  EXPECT_EQ(odd->cgroup, "/system.slice/docker-" + kId + ".scope");
  EXPECT_EQ(odd->container_id, kId);
  EXPECT_EQ(odd->start_time_ns, 900 * kTick);
  EXPECT_FALSE(odd->exited);

  const std::optional<ProcessInfo> bash = tree->Lookup(100);
  ASSERT_TRUE(bash.has_value());
  EXPECT_EQ(bash->user, "user1000");
  EXPECT_EQ(bash->container_id, "");

  const std::optional<ProcessInfo> kthread = tree->Lookup(2);
  ASSERT_TRUE(kthread.has_value());
  EXPECT_EQ(kthread->exe, "");  // no exe link: left empty, not an error
  EXPECT_TRUE(kthread->argv.empty());

  const ProcessTreeStats stats = tree->stats();
  EXPECT_EQ(stats.live, 4u);
  EXPECT_EQ(stats.snapshot_errors, 0u);
  EXPECT_EQ(user_calls_.load(), 2);  // uid 0 and 1000, each asked once
}

TEST_F(ProcessTreeTest, SnapshotCountsMalformedEntriesAndSkipsThreadsAndKeepsZombiesAsExited) {
  proc_.Add({.pid = 10, .ppid = 1, .comm = "ok", .start_ticks = 5});
  proc_.Write("11/stat", "11 (broken S 1 2 3\n");  // no closing parenthesis
  proc_.Write("11/status", "Tgid:\t11\nUid:\t0\t0\t0\t0\n");
  proc_.Add({.pid = 12, .tgid = 10, .ppid = 1, .comm = "ok"});  // a thread of 10
  proc_.Add({.pid = 13, .ppid = 10, .comm = "dead", .state = 'Z'});
  proc_.Write("14/status", "Tgid:\t14\n");  // no stat: vanished mid-read

  std::unique_ptr<ProcessTree> tree = MakeTree();
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  EXPECT_TRUE(tree->Lookup(10).has_value());
  EXPECT_FALSE(tree->Lookup(11).has_value());
  EXPECT_FALSE(tree->Lookup(12).has_value());
  EXPECT_FALSE(tree->Lookup(14).has_value());
  ASSERT_TRUE(tree->Lookup(13).has_value());
  EXPECT_TRUE(tree->Lookup(13)->exited);
  const ProcessTreeStats stats = tree->stats();
  EXPECT_EQ(stats.snapshot_errors, 1u);
  EXPECT_EQ(stats.live, 1u);
  EXPECT_EQ(stats.exited_kept, 1u);

  clock_.Advance(5 * kSecond);
  tree->EvictExpired();
  EXPECT_FALSE(tree->Lookup(13).has_value());
}

TEST_F(ProcessTreeTest, SnapshotOfAMissingRootFailsAndLeavesTheTreeEmpty) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.proc_root = proc_.root() + "/does-not-exist"});
  const core::Status status = tree->LoadSnapshot();
  EXPECT_EQ(status.code(), core::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("does-not-exist"), std::string::npos) << status.message();
  EXPECT_EQ(tree->size(), 0u);
}

TEST_F(ProcessTreeTest, SnapshotOfTheRealProcFindsThisProcess) {
  if (!std::filesystem::exists("/proc/self/stat")) GTEST_SKIP() << "no /proc mounted";
  core::Result<std::unique_ptr<ProcessTree>> tree =
      ProcessTree::Create({}, &clock_);  // real /proc, real user database
  ASSERT_TRUE(tree.has_value()) << tree.error().ToString();
  ASSERT_TRUE((*tree)->LoadSnapshot().ok());

  const std::optional<ProcessInfo> self = (*tree)->Lookup(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->ppid, static_cast<uint32_t>(::getppid()));
  EXPECT_EQ(self->exe, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(self->uid, static_cast<uint32_t>(::geteuid()));
  EXPECT_FALSE(self->comm.empty());
  ASSERT_FALSE(self->argv.empty());
  EXPECT_NE(self->argv[0].find("enrich_process_tree_test"), std::string::npos) << self->argv[0];
  EXPECT_GT(self->start_time_ns, 0u);
  EXPECT_FALSE(self->exited);
  EXPECT_GT((*tree)->stats().live, 1u);
}

TEST_F(ProcessTreeTest, ForkInheritsExecReplacesExitKeepsForTheGracePeriod) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.read_proc_on_exec = false});
  const std::vector<std::string> bash_argv = {"bash"};
  tree->OnExec(100, "/usr/bin/bash", bash_argv, 1000, "bash", 1, 10 * kTick);
  tree->OnFork(100, 101, 20 * kTick);

  std::optional<ProcessInfo> child = tree->Lookup(101);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(child->ppid, 100u);
  EXPECT_EQ(child->comm, "bash");  // a fork copies the image
  EXPECT_EQ(child->exe, "/usr/bin/bash");
  EXPECT_EQ(child->user, "user1000");
  EXPECT_EQ(child->start_time_ns, 20 * kTick);

  const std::vector<std::string> ls_argv = {"ls", "-l"};
  tree->OnExec(101, "/usr/bin/ls", ls_argv, 1000, "ls", 2);
  child = tree->Lookup(101);
  EXPECT_EQ(child->exe, "/usr/bin/ls");
  EXPECT_EQ(child->comm, "ls");
  EXPECT_THAT(child->argv, ElementsAre("ls", "-l"));
  EXPECT_EQ(child->start_time_ns, 20 * kTick);  // exec keeps the start time
  EXPECT_EQ(tree->stats().pid_reuse, 0u);

  tree->OnExit(101, 30 * kTick);
  child = tree->Lookup(101);
  ASSERT_TRUE(child.has_value());
  EXPECT_TRUE(child->exited);
  EXPECT_EQ(child->exit_time_ns, 30 * kTick);
  EXPECT_EQ(tree->stats().live, 1u);
  EXPECT_EQ(tree->stats().exited_kept, 1u);

  // A late event from the exited process is still enriched during the grace period.
  clock_.Advance(4 * kSecond);
  tree->EvictExpired();
  core::Event late;
  late.proc.pid = 101;
  EXPECT_TRUE(tree->Enrich(&late));
  EXPECT_EQ(late.proc.exe, "/usr/bin/ls");

  // Any writer call sweeps; no timer needed.
  clock_.Advance(1 * kSecond);
  tree->OnFork(100, 102, 40 * kTick);
  EXPECT_FALSE(tree->Lookup(101).has_value());
  const ProcessTreeStats stats = tree->stats();
  EXPECT_EQ(stats.exited_kept, 0u);
  EXPECT_EQ(stats.evictions[static_cast<size_t>(EvictionCause::kGraceExpired)], 1u);
  EXPECT_EQ(stats.evictions_total(), 1u);

  tree->OnExit(999, 1);  // never seen
  tree->OnExit(100, 50 * kTick);
  tree->OnExit(100, 51 * kTick);  // repeated: ignored
  EXPECT_EQ(tree->stats().unknown_exits, 1u);
  EXPECT_EQ(tree->Lookup(100)->exit_time_ns, 50 * kTick);
}

TEST_F(ProcessTreeTest, ForkFromAnUnknownParentAndThreadsAreIgnored) {
  std::unique_ptr<ProcessTree> tree = MakeTree();
  tree->OnFork(7, 8, 5 * kTick);
  const std::optional<ProcessInfo> child = tree->Lookup(8);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(child->ppid, 7u);
  EXPECT_EQ(child->comm, "");
  EXPECT_FALSE(child->uid_known);
  tree->OnFork(8, 8, 6 * kTick);
  EXPECT_EQ(tree->size(), 1u);
}

TEST_F(ProcessTreeTest, EnrichFillsOnlyWhatIsMissing) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.read_proc_on_exec = false});
  tree->OnFork(1, 50, kTick);
  const std::vector<std::string> argv = {"nginx"};
  tree->OnExec(50, "/usr/sbin/nginx", argv, 33, "nginx", 1);

  core::Event bare;
  bare.proc.pid = 50;
  ASSERT_TRUE(tree->Enrich(&bare));
  EXPECT_EQ(bare.proc.ppid, 1u);
  EXPECT_EQ(bare.proc.uid, 33u);
  EXPECT_EQ(bare.proc.comm, "nginx");
  EXPECT_EQ(bare.proc.exe, "/usr/sbin/nginx");

  // The sensor said comm and uid 0: that is root, maybe an escalation; the tree must not hide it.
  core::Event root;
  root.proc.pid = 50;
  root.proc.comm = "nginx";
  root.proc.uid = 0;
  root.proc.ppid = 77;
  ASSERT_TRUE(tree->Enrich(&root));
  EXPECT_EQ(root.proc.uid, 0u);
  EXPECT_EQ(root.proc.ppid, 77u);
  EXPECT_EQ(root.proc.exe, "/usr/sbin/nginx");

  core::Event unknown;
  unknown.proc.pid = 4000;
  EXPECT_FALSE(tree->Enrich(&unknown));
  EXPECT_EQ(unknown.proc.comm, "");
  core::Event no_pid;
  EXPECT_FALSE(tree->Enrich(&no_pid));
  EXPECT_FALSE(tree->Enrich(nullptr));
}

TEST_F(ProcessTreeTest, PidReuseReplacesTheOldProcess) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.read_proc_on_exec = false});
  const std::vector<std::string> argv = {"old"};
  tree->OnFork(1, 300, 10 * kTick);
  tree->OnExec(300, "/bin/old", argv, 1000, "old", 1);

  // Exited, then forked again: a new process.
  tree->OnExit(300, 11 * kTick);
  tree->OnFork(1, 300, 12 * kTick);
  std::optional<ProcessInfo> p = tree->Lookup(300);
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->exited);
  EXPECT_EQ(p->start_time_ns, 12 * kTick);
  EXPECT_EQ(tree->stats().pid_reuse, 1u);
  EXPECT_EQ(tree->stats().exited_kept, 0u);
  EXPECT_EQ(tree->stats().live, 1u);

  // Live but a different start time: the exit was lost.
  tree->OnFork(1, 300, 500 * kTick);
  EXPECT_EQ(tree->Lookup(300)->start_time_ns, 500 * kTick);
  EXPECT_EQ(tree->stats().pid_reuse, 2u);

  // An exec naming another start time.
  tree->OnExec(300, "/bin/new", argv, 0, "new", 2, 900 * kTick);
  p = tree->Lookup(300);
  EXPECT_EQ(p->exe, "/bin/new");
  EXPECT_EQ(p->start_time_ns, 900 * kTick);
  EXPECT_EQ(p->ppid, 0u);  // the new process's parent is not known
  EXPECT_EQ(tree->stats().pid_reuse, 3u);

  // An exec for an exited entry.
  tree->OnExit(300, 901 * kTick);
  tree->OnExec(300, "/bin/newer", argv, 0, "newer", 3);
  p = tree->Lookup(300);
  EXPECT_FALSE(p->exited);
  EXPECT_EQ(p->exe, "/bin/newer");
  EXPECT_EQ(tree->stats().pid_reuse, 4u);

  // An exec with the same start time, or none, is the same process.
  tree->OnFork(300, 301, 1000 * kTick);
  tree->OnExec(301, "/bin/a", argv, 0, "a", 4, 1000 * kTick + kTick / 2);
  tree->OnExec(301, "/bin/b", argv, 0, "b", 5);
  EXPECT_EQ(tree->stats().pid_reuse, 4u);
  EXPECT_EQ(tree->stats().live, 2u);
}

TEST_F(ProcessTreeTest, ForkAlreadySeenBySnapshotIsMergedNotReused) {
  proc_.Add({.pid = 1, .ppid = 0, .comm = "init", .start_ticks = 1, .exe = "/sbin/init"});
  proc_.Add({.pid = 40, .ppid = 0, .comm = "worker", .start_ticks = 700, .exe = "/bin/worker"});
  std::unique_ptr<ProcessTree> tree = MakeTree();
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  // The sensor's fork event has ns precision; the snapshot had ticks.
  tree->OnFork(1, 40, 700 * kTick + 3'000'000);
  const std::optional<ProcessInfo> p = tree->Lookup(40);
  EXPECT_EQ(p->ppid, 1u);
  EXPECT_EQ(p->exe, "/bin/worker");
  EXPECT_EQ(tree->stats().pid_reuse, 0u);

  // A fork the event stream saw first is not overwritten by the snapshot.
  tree->OnFork(1, 41, 800 * kTick);
  proc_.Add({.pid = 41, .ppid = 1, .comm = "stale", .start_ticks = 800});
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  EXPECT_EQ(tree->Lookup(41)->comm, "init");
}

TEST_F(ProcessTreeTest, ExecReadsProcForWhatEventsDoNotCarry) {
  std::unique_ptr<ProcessTree> tree = MakeTree();
  // A container runtime forks (child in the runtime's cgroup), moves the child into the
  // container's cgroup, then execs: the exec must pick up the container.
  proc_.Add({.pid = 60,
             .ppid = 1,
             .comm = "containerd-shim",
             .start_ticks = 10,
             .exe = "/usr/bin/containerd-shim",
             .cgroup = "0::/system.slice/containerd.service\n"});
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  tree->OnFork(60, 61, 20 * kTick);
  EXPECT_EQ(tree->Lookup(61)->cgroup, "/system.slice/containerd.service");
  proc_.Add({.pid = 61,
             .ppid = 60,
             .comm = "nginx",
             .start_ticks = 20,
             .cgroup = "0::/system.slice/docker-" + kId + ".scope\n"});
  const std::vector<std::string> argv = {"nginx", "-g", "daemon off;"};
  tree->OnExec(61, "/usr/sbin/nginx", argv, 0, "nginx", 1);
  EXPECT_EQ(tree->Lookup(61)->container_id, kId);

  // A process whose fork the tree missed: parent and start time come from /proc.
  proc_.Add({.pid = 70,
             .ppid = 61,
             .comm = "sh",
             .start_ticks = 30,
             .cgroup = "0::/system.slice/docker-" + kId + ".scope\n"});
  tree->OnExec(70, "/bin/sh", argv, 0, "sh", 2);
  const std::optional<ProcessInfo> sh = tree->Lookup(70);
  ASSERT_TRUE(sh.has_value());
  EXPECT_EQ(sh->ppid, 61u);
  EXPECT_EQ(sh->start_time_ns, 30 * kTick);
  EXPECT_EQ(sh->container_id, kId);

  // /proc disagreeing with the event's start time belongs to another process: ignored.
  proc_.Add({.pid = 80,
             .ppid = 61,
             .comm = "other",
             .start_ticks = 99,
             .cgroup = "0::/system.slice/docker-" + kId + ".scope\n"});
  tree->OnExec(80, "/bin/x", argv, 0, "x", 3, 40 * kTick);
  EXPECT_EQ(tree->Lookup(80)->ppid, 0u);
  EXPECT_EQ(tree->Lookup(80)->container_id, "");
}

TEST_F(ProcessTreeTest, ExecBoundsArgvExeAndComm) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.argv_limits = {.max_args = 3, .max_bytes = 64},
                                                .max_path_bytes = 16,
                                                .read_proc_on_exec = false});
  const std::vector<std::string> argv = {"a", "b", "c", "d", "e"};
  tree->OnExec(5, std::string(100, 'x'), argv, 1, std::string(200, 'c'), 1);
  const std::optional<ProcessInfo> p = tree->Lookup(5);
  EXPECT_THAT(p->argv, ElementsAre("a", "b", "c"));
  EXPECT_TRUE(p->argv_truncated);
  EXPECT_EQ(p->exe.size(), 16u);
  EXPECT_EQ(p->comm.size(), 64u);

  proc_.Add({.pid = 6, .ppid = 1, .argv = {std::string(100, 'y')}});
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  EXPECT_TRUE(tree->Lookup(6)->argv_truncated);
  EXPECT_EQ(tree->Lookup(6)->argv[0].size(), 63u);
}

TEST_F(ProcessTreeTest, HardCapEvictsOldestExitedFirstThenOldestOverall) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.max_entries = 3, .exit_grace_ns = 3600 * kSecond});
  tree->OnFork(1, 10, 1 * kTick);
  tree->OnFork(1, 11, 2 * kTick);
  tree->OnFork(1, 12, 3 * kTick);
  tree->OnExit(12, 4 * kTick);
  tree->OnExit(11, 5 * kTick);

  tree->OnFork(1, 13, 6 * kTick);  // full: 11 and 12 exited; 12 exited first
  EXPECT_FALSE(tree->Lookup(12).has_value());
  EXPECT_TRUE(tree->Lookup(11).has_value());
  tree->OnFork(1, 14, 7 * kTick);  // 11 goes
  EXPECT_FALSE(tree->Lookup(11).has_value());
  tree->OnFork(1, 15, 8 * kTick);  // nothing exited: the first seen (10) goes
  EXPECT_FALSE(tree->Lookup(10).has_value());
  EXPECT_EQ(tree->size(), 3u);

  const ProcessTreeStats stats = tree->stats();
  EXPECT_EQ(stats.evictions[static_cast<size_t>(EvictionCause::kCapExited)], 2u);
  EXPECT_EQ(stats.evictions[static_cast<size_t>(EvictionCause::kCapLive)], 1u);
  EXPECT_EQ(stats.evictions[static_cast<size_t>(EvictionCause::kGraceExpired)], 0u);
  EXPECT_EQ(stats.live, 3u);

  // The snapshot respects the cap too, keeping the newest.
  for (uint32_t pid = 100; pid < 110; ++pid) {
    proc_.Add({.pid = pid, .ppid = 1, .start_ticks = pid});
  }
  ASSERT_TRUE(tree->LoadSnapshot().ok());
  EXPECT_EQ(tree->size(), 3u);
  EXPECT_TRUE(tree->Lookup(109).has_value());
  EXPECT_FALSE(tree->Lookup(100).has_value());
}

TEST_F(ProcessTreeTest, AncestorsWalkTheParentChain) {
  std::unique_ptr<ProcessTree> tree = MakeTree();
  tree->OnFork(0, 1, 1 * kTick);
  tree->OnFork(1, 10, 2 * kTick);
  tree->OnFork(10, 20, 3 * kTick);
  tree->OnFork(20, 30, 4 * kTick);

  EXPECT_THAT(Pids(tree->Ancestors(30, 2)), ElementsAre(20u, 10u));
  EXPECT_THAT(Pids(tree->Ancestors(30, 10)), ElementsAre(20u, 10u, 1u));
  EXPECT_THAT(Pids(tree->Ancestors(1, 10)), ElementsAre());
  EXPECT_THAT(Pids(tree->Ancestors(999, 10)), ElementsAre());
  EXPECT_THAT(Pids(tree->Ancestors(30, 0)), ElementsAre());

  // 10 exits and its pid is reused by a process younger than 20: not 20's parent any more.
  tree->OnExit(10, 5 * kTick);
  EXPECT_THAT(Pids(tree->Ancestors(30, 10)), ElementsAre(20u, 10u, 1u));  // kept in grace
  tree->OnFork(1, 10, 50 * kTick);
  EXPECT_THAT(Pids(tree->Ancestors(30, 10)), ElementsAre(20u));
}

TEST_F(ProcessTreeTest, AncestorsStopAtLoopsWithoutStartTimes) {
  std::unique_ptr<ProcessTree> tree = MakeTree();
  tree->OnFork(2, 1, kUnknownTime);
  tree->OnFork(3, 2, kUnknownTime);
  tree->OnFork(2, 3, kUnknownTime);  // 3's parent is 2, 2's parent is 3: a loop
  EXPECT_THAT(Pids(tree->Ancestors(1, 50)), ElementsAre(2u, 3u));
  EXPECT_LE(tree->Ancestors(3, 1000).size(), kMaxAncestorDepth);
}

TEST_F(ProcessTreeTest, UserNamesAreCached) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.read_proc_on_exec = false});
  const std::vector<std::string> argv = {"x"};
  for (uint32_t pid = 1; pid <= 20; ++pid) tree->OnExec(pid, "/x", argv, 1000, "x", 1);
  tree->OnExec(21, "/x", argv, 4242, "x", 1);
  tree->OnExec(22, "/x", argv, 4242, "x", 1);
  EXPECT_EQ(user_calls_.load(), 2);
  EXPECT_EQ(tree->Lookup(21)->user, "");  // no such user, remembered as such
  EXPECT_TRUE(tree->Lookup(21)->uid_known);
}

TEST_F(ProcessTreeTest, RejectsBadOptions) {
  for (const ProcessTreeOptions& bad : {
           ProcessTreeOptions{.max_entries = 0},
           ProcessTreeOptions{.exit_grace_ns = -1},
           ProcessTreeOptions{.max_path_bytes = 0},
           ProcessTreeOptions{.clock_ticks_per_second = -1},
           ProcessTreeOptions{.user_cache_capacity = 0},
       }) {
    const core::Result<std::unique_ptr<ProcessTree>> tree = ProcessTree::Create(bad, &clock_);
    ASSERT_FALSE(tree.has_value());
    EXPECT_EQ(tree.error().code(), core::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(ProcessTree::Create({}, nullptr).has_value());
}

TEST_F(ProcessTreeTest, ExportsCountersAsMetrics) {
  std::unique_ptr<ProcessTree> tree = MakeTree({.max_entries = 1});
  core::Registry registry;
  {
    core::Result<std::vector<core::Registry::CallbackHandle>> handles =
        tree->ExportMetrics(&registry);
    ASSERT_TRUE(handles.has_value()) << handles.error().ToString();
    tree->OnFork(1, 2, kTick);
    tree->OnFork(1, 3, 2 * kTick);
    tree->OnExit(3, 3 * kTick);
    const std::string text = registry.ExpositionText();
    EXPECT_NE(text.find("vigil_process_tree_processes{state=\"exited\"} 1"), std::string::npos)
        << text;
    EXPECT_NE(text.find("vigil_process_tree_evictions_total{cause=\"cap_live\"} 1"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("vigil_process_tree_pid_reuse_total 0"), std::string::npos) << text;

    // A second tree in the same registry collides, and leaves nothing of its own behind.
    std::unique_ptr<ProcessTree> other = MakeTree();
    EXPECT_EQ(other->ExportMetrics(&registry).error().code(), core::StatusCode::kAlreadyExists);
  }
  EXPECT_EQ(registry.ExpositionText().find("vigil_process_tree"), std::string::npos);
}

// One writer applying events, readers enriching at the same time. Run under TSan in CI.
TEST_F(ProcessTreeTest, OneWriterManyReaders) {
  std::unique_ptr<ProcessTree> tree =
      MakeTree({.max_entries = 256, .exit_grace_ns = 0, .read_proc_on_exec = false});
  std::atomic<bool> done{false};
  std::thread writer([&] {
    const std::vector<std::string> argv = {"worker", "--n"};
    for (uint32_t i = 0; i < 3000; ++i) {
      const uint32_t pid = 1000 + i % 500;
      tree->OnFork(1, pid, (i + 1) * kTick);
      tree->OnExec(pid, "/bin/worker", argv, i % 7, "worker", i);
      if (i % 3 != 0) tree->OnExit(pid, (i + 1) * kTick + 1);
      clock_.Advance(1000);
    }
    done.store(true);
  });
  std::vector<std::thread> readers;
  std::atomic<uint64_t> hits{0};
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      uint32_t n = static_cast<uint32_t>(r);
      while (!done.load()) {
        core::Event e;
        e.proc.pid = 1000 + n++ % 500;
        if (tree->Enrich(&e)) {
          hits.fetch_add(1);
          EXPECT_EQ(e.proc.comm, e.proc.exe.empty() ? "" : "worker");
        }
        (void)tree->Lookup(e.proc.pid);
        (void)tree->Ancestors(e.proc.pid, 4);
        (void)tree->stats();
      }
    });
  }
  writer.join();
  for (std::thread& t : readers) t.join();
  const ProcessTreeStats stats = tree->stats();
  EXPECT_EQ(stats.live + stats.exited_kept, tree->size());
  EXPECT_LE(tree->size(), 256u);
  EXPECT_GT(stats.evictions_total(), 0u);
}

}  // namespace
}  // namespace vigil::enrich
