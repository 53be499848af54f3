// The gates' process context cache (apps/vigil/gate_context.h): what the rules need is all that
// is read, what is kept is re-read when the process exec'd or its pid now names another process,
// and a kept process costs one stat read per call. Real processes (a shell that execs sleep) and
// a fake /proc tree (to stage a reused pid and a setuid, which cannot be forced for real).

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "apps/vigil/gate_context.h"
#include "enforce/proc.h"
#include "policy/rules.h"

namespace vigil::app {
namespace {

namespace fs = std::filesystem;

policy::RuleSet Rules(const std::string& condition, const std::string& output = "x",
                      const std::string& more = "") {
  auto r = policy::RuleSet::LoadString("- rule: r\n  desc: d\n  condition: " + condition +
                                           "\n  output: \"" + output +
                                           "\"\n  priority: WARNING\n" + more,
                                       "test.yaml");
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return std::move(r).value();
}

TEST(GateContextNeedsTest, OnlyWhatTheRulesRead) {
  EXPECT_EQ(NeedsOfRules(Rules("evt.type = connect and fd.sport = 25", "%fd.sip"), 8),
            GateContextNeeds{});
  GateContextNeeds n = NeedsOfRules(Rules("proc.pname = bash"), 8);
  EXPECT_EQ(n.ancestors, 1u);
  EXPECT_FALSE(n.ancestor_exe || n.parent_argv || n.exe || n.argv || n.uid);
  n = NeedsOfRules(Rules("proc.aname[3] = sshd", "%proc.exepath"), 8);
  EXPECT_EQ(n.ancestors, 3u);
  EXPECT_TRUE(n.exe);  // from the output
  EXPECT_EQ(NeedsOfRules(Rules("proc.aname = sshd"), 8).ancestors, 8u);
  EXPECT_EQ(NeedsOfRules(Rules("proc.aname[12] = sshd"), 8).ancestors, 8u);
  n = NeedsOfRules(Rules("proc.pexe = /bin/sh"), 8);
  EXPECT_TRUE(n.ancestor_exe && n.parent_argv);
  EXPECT_EQ(n.ancestors, 1u);
  n = NeedsOfRules(Rules("user.name = root and proc.cmdline contains x"), 8);
  EXPECT_TRUE(n.uid && n.argv);
  EXPECT_FALSE(n.exe);
  n = NeedsOfRules(Rules("proc.aname[6] = sshd and proc.pexepath = /bin/sh"), 8);
  EXPECT_EQ(n.ancestors, 6u);
  EXPECT_EQ(n.ancestor_exe, 1u) << "the executable of the parent alone";
  n = NeedsOfRules(Rules("proc.aexepath[2] = /bin/sh and proc.aname = x"), 8);
  EXPECT_EQ(n.ancestors, 8u);
  EXPECT_EQ(n.ancestor_exe, 2u);
  EXPECT_EQ(NeedsOfRules(Rules("proc.aexepath = /bin/sh"), 8).ancestor_exe, 8u);
  n = NeedsOfRules(Rules("proc.aexepath[0] = /bin/sh"), 8);
  EXPECT_TRUE(n.exe);
  EXPECT_EQ(n.ancestors, 0u);
  // A disabled rule reads nothing.
  EXPECT_EQ(NeedsOfRules(Rules("proc.pname = bash", "x", "  enabled: false\n"), 8),
            GateContextNeeds{});
}

TEST(GateContextNeedsTest, UsedFieldsListsConditionAndOutputFieldsOnce) {
  const policy::RuleSet r = Rules("proc.aname[2] = a and (proc.name = b or proc.name = c)",
                                  "%proc.name %fd.name");
  const std::vector<policy::FieldUse> used = r.UsedFields();
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0], (policy::FieldUse{"proc.aname", 2}));
  EXPECT_EQ(used[1], (policy::FieldUse{"proc.name", -1}));
  EXPECT_EQ(used[2], (policy::FieldUse{"fd.name", -1}));
}

// A /proc/PID/stat line with 52 fields; `layout` seeds the memory-layout fields an exec changes
// (all 0 with `hide_layout`, as the kernel shows them to a reader without ptrace access).
std::string StatLine(int pid, const std::string& comm, int ppid, uint64_t start, uint64_t layout,
                     bool hide_layout = false) {
  std::vector<std::string> f(53, "0");
  f[1] = std::to_string(pid);
  f[2] = "(" + comm + ")";
  f[3] = "S";
  f[4] = std::to_string(ppid);
  f[22] = std::to_string(start);
  for (int i : {26, 27, 28, 48, 49, 50, 51}) f[i] = hide_layout ? "0" : std::to_string(layout + i);
  std::string s;
  for (size_t i = 1; i < f.size(); ++i) s += (i > 1 ? " " : "") + f[i];
  return s + "\n";
}

TEST(GateContextTest, StatShowsTheLayoutAnExecChanges) {
  const std::string line = StatLine(7, "a b) c", 1, 99, 1000);  // comm views it
  auto st = enforce::ParseStat(line);
  ASSERT_TRUE(st.has_value()) << st.error().message();
  EXPECT_EQ(st->comm, "a b) c");
  EXPECT_EQ(st->start_time, 99u);
  EXPECT_EQ(st->layout[0], 1026u);
  EXPECT_EQ(st->layout[6], 1051u);
  // Older kernels stop before the layout: the required fields still parse.
  auto shorter = enforce::ParseStat("7 (a) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 1 2 3");
  ASSERT_TRUE(shorter.has_value());
  EXPECT_EQ(shorter->layout[0], 0u);
}

// A fake /proc with one process (pid 4242, parent 1) whose files a test rewrites in place.
class FakeProc {
 public:
  FakeProc() : root_(fs::temp_directory_path() / ("vigil-fake-proc-" + std::to_string(getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_ / "4242");
    fs::create_directories(root_ / "1");
    Write("1/stat", StatLine(1, "init", 0, 1, 500));
    Write("1/status", "Name:\tinit\nTgid:\t1\nUid:\t0\t0\t0\t0\n");
    fs::create_symlink("/sbin/init", root_ / "1/exe");
    Write("1/cmdline", std::string("/sbin/init\0", 11));
  }
  ~FakeProc() { fs::remove_all(root_); }
  // Rewrites in place (same inode), as the kernel's view changes under an open descriptor.
  void Write(const std::string& rel, const std::string& content) {
    std::ofstream(root_ / rel, std::ios::trunc) << content;
  }
  void Exe(const std::string& target) {
    fs::remove(root_ / "4242/exe");
    fs::create_symlink(target, root_ / "4242/exe");
  }
  void Process(const std::string& comm, uint64_t start, uint64_t layout, uint32_t uid,
               const std::string& exe, const std::string& cmdline) {
    Write("4242/stat", StatLine(4242, comm, 1, start, layout));
    Write("4242/status", "Name:\t" + comm + "\nTgid:\t4242\nUid:\t" + std::to_string(uid) + "\t" +
                             std::to_string(uid) + "\t" + std::to_string(uid) + "\t" +
                             std::to_string(uid) + "\n");
    Exe(exe);
    Write("4242/cmdline", cmdline);
  }
  // Another process, `pid` (not 4242 or 1), child of `ppid`.
  void Add(int pid, int ppid, uint64_t start) {
    const std::string dir = std::to_string(pid);
    fs::create_directories(root_ / dir);
    Write(dir + "/stat", StatLine(pid, "p" + dir, ppid, start, 7000));
    Write(dir + "/status", "Name:\tp" + dir + "\nTgid:\t" + dir + "\nUid:\t5\t5\t5\t5\n");
  }
  // Rewrites the ancestor (pid 1): `start` its start time, `layout` its memory layout.
  void Init(uint64_t start, uint64_t layout, const std::string& exe, const std::string& cmdline) {
    Write("1/stat", StatLine(1, "init", 0, start, layout));
    fs::remove(root_ / "1/exe");
    fs::create_symlink(exe, root_ / "1/exe");
    Write("1/cmdline", cmdline);
  }
  std::string root() const { return root_.string(); }

 private:
  fs::path root_;
};

struct Described {
  bool ok = false;
  core::Event event;
  policy::EvalInput in;
};

Described Describe(ProcContextCache* cache, int32_t tid, const GateContextNeeds& needs) {
  Described d;
  d.ok = cache->Describe(tid, needs, false, &d.event, &d.in);
  return d;
}

TEST(GateContextTest, AReusedPidOrAnExecIsNotGivenStaleContext) {
  FakeProc proc;
  proc.Process("old", 100, 7000, 1000, "/usr/bin/old", std::string("old\0-x\0", 7));
  ProcContextCache cache(ProcContextCache::Options{proc.root(), 64});
  const GateContextNeeds all = GateContextNeeds::Everything(8);
  Described d = Describe(&cache, 4242, all);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.pid, 4242u);
  EXPECT_EQ(d.event.proc.comm, "old");
  EXPECT_EQ(d.event.proc.exe, "/usr/bin/old");
  EXPECT_EQ(d.event.proc.uid, 1000u);
  EXPECT_EQ(d.in.argv, (std::vector<std::string>{"old", "-x"}));
  ASSERT_EQ(d.in.ancestors.size(), 1u);
  EXPECT_EQ(d.in.ancestors[0].name, "init");
  EXPECT_EQ(d.in.ancestors[0].exe, "/sbin/init");
  EXPECT_EQ(d.in.ancestors[0].argv, (std::vector<std::string>{"/sbin/init"}));

  // Nothing changed in stat: the executable and argv are kept (not read again), the uid is read
  // afresh (setuid changes it without an exec).
  proc.Exe("/usr/bin/not-read");
  proc.Write("4242/status", "Name:\told\nTgid:\t4242\nUid:\t0\t0\t0\t0\n");
  const uint64_t before = cache.stats().syscalls;
  d = Describe(&cache, 4242, all);
  EXPECT_EQ(d.event.proc.exe, "/usr/bin/old");
  EXPECT_EQ(d.event.proc.uid, 0u);
  EXPECT_EQ(cache.stats().syscalls - before, 3u) << "stat and status of 4242, stat of 1";

  // The same pid, another start time: another process. Everything is read anew.
  proc.Process("old", 200, 7000, 1000, "/usr/bin/reused", std::string("reused\0", 7));
  d = Describe(&cache, 4242, all);
  EXPECT_EQ(d.event.proc.exe, "/usr/bin/reused");
  EXPECT_EQ(d.in.argv, (std::vector<std::string>{"reused"}));

  // An exec: same pid and start time, another memory layout.
  proc.Process("old", 200, 9000, 1000, "/usr/bin/execd", std::string("execd\0a\0", 8));
  d = Describe(&cache, 4242, all);
  EXPECT_EQ(d.event.proc.exe, "/usr/bin/execd");
  EXPECT_EQ(d.in.argv, (std::vector<std::string>{"execd", "a"}));
  EXPECT_EQ(cache.stats().execs, 1u);

  // A stat that shows no layout (no ptrace access, a zombie): nothing is kept.
  proc.Process("old", 200, 0, 1000, "/usr/bin/one", std::string("one\0", 4));
  proc.Write("4242/stat", StatLine(4242, "old", 1, 200, 0, /*hide_layout=*/true));
  EXPECT_EQ(Describe(&cache, 4242, all).event.proc.exe, "/usr/bin/one");
  proc.Exe("/usr/bin/two");
  EXPECT_EQ(Describe(&cache, 4242, all).event.proc.exe, "/usr/bin/two");
}

// The same for an ancestor (here the parent, pid 1): kept while nothing changes, read anew
// after its pid names another process or after it exec'd.
TEST(GateContextTest, AnAncestorsReusedPidOrExecIsNotGivenStaleContext) {
  FakeProc proc;
  proc.Process("child", 100, 7000, 1000, "/usr/bin/child", std::string("child\0", 6));
  proc.Init(500, 3000, "/sbin/init", std::string("/sbin/init\0", 11));
  ProcContextCache cache(ProcContextCache::Options{proc.root(), 64});
  const GateContextNeeds all = GateContextNeeds::Everything(8);
  Described d = Describe(&cache, 4242, all);
  ASSERT_TRUE(d.ok);
  ASSERT_EQ(d.in.ancestors.size(), 1u);
  EXPECT_EQ(d.in.ancestors[0].exe, "/sbin/init");
  EXPECT_EQ(d.in.ancestors[0].argv, (std::vector<std::string>{"/sbin/init"}));

  // The same stat: what was read is kept (the new exe and cmdline are not looked at).
  proc.Init(500, 3000, "/usr/bin/not-read", std::string("not-read\0", 9));
  d = Describe(&cache, 4242, all);
  ASSERT_EQ(d.in.ancestors.size(), 1u);
  EXPECT_EQ(d.in.ancestors[0].exe, "/sbin/init");
  EXPECT_EQ(d.in.ancestors[0].argv, (std::vector<std::string>{"/sbin/init"}));

  // The parent's pid now names another process (another start time, the same layout).
  proc.Init(900, 3000, "/usr/bin/reused", std::string("reused\0-r\0", 10));
  d = Describe(&cache, 4242, all);
  ASSERT_EQ(d.in.ancestors.size(), 1u);
  EXPECT_EQ(d.in.ancestors[0].exe, "/usr/bin/reused");
  EXPECT_EQ(d.in.ancestors[0].argv, (std::vector<std::string>{"reused", "-r"}));

  // The parent exec'd: the same start time, another layout.
  proc.Init(900, 4000, "/usr/bin/execd", std::string("execd\0", 6));
  d = Describe(&cache, 4242, all);
  ASSERT_EQ(d.in.ancestors.size(), 1u);
  EXPECT_EQ(d.in.ancestors[0].exe, "/usr/bin/execd");
  EXPECT_EQ(d.in.ancestors[0].argv, (std::vector<std::string>{"execd"}));
  EXPECT_EQ(cache.stats().execs, 1u);
}

// /proc/self/status's FDSize: the slots of this process's descriptor table.
size_t FdTableSize() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("FDSize:", 0) == 0) return std::stoul(line.substr(7));
  }
  return 0;
}

size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// A gate that holds execs sees a new process at every call: the descriptors kept stay within
// the budget (the least recently used process is forgotten), and every process is described.
TEST(GateContextTest, KeptDescriptorsStayWithinTheirBudget) {
  FakeProc proc;
  for (int pid = 5000; pid < 5040; ++pid) proc.Add(pid, 1, 100);
  const size_t open_before = OpenFds();
  ProcContextCache::Options o{proc.root(), 64};
  o.max_fds = 10;
  ProcContextCache cache(o);
  EXPECT_EQ(cache.max_fds(), 10u);
  GateContextNeeds needs;
  needs.uid = true;  // two descriptors per process: stat and status
  needs.ancestors = 1;
  for (int pid = 5000; pid < 5040; ++pid) {
    Described d = Describe(&cache, pid, needs);
    ASSERT_TRUE(d.ok) << pid;
    EXPECT_EQ(d.event.proc.uid, 5u);
    EXPECT_EQ(d.event.proc.comm, "p" + std::to_string(pid));
    ASSERT_EQ(d.in.ancestors.size(), 1u);
    EXPECT_EQ(d.in.ancestors[0].name, "init");
    EXPECT_LE(cache.fds(), 10u);
  }
  EXPECT_GT(cache.stats().evicted, 0u);
  EXPECT_LE(OpenFds(), open_before + 1 + 10) << "the /proc directory and the kept descriptors";
  // The parent, described at every call, was never the least recently used: still kept.
  const uint64_t before = cache.stats().syscalls;
  Describe(&cache, 5039, needs);
  EXPECT_EQ(cache.stats().syscalls - before, 3u) << "stat and status of 5039, stat of 1";
}

// The descriptor table is grown once, when the cache is made, to hold every descriptor it may
// keep: growing it later, while other threads share it, waits for an RCU grace period inside the
// open() of a held call.
TEST(GateContextTest, TheDescriptorTableIsGrownUpFront) {
  FakeProc proc;
  constexpr int kProcesses = 150;
  for (int pid = 5000; pid < 5000 + kProcesses; ++pid) proc.Add(pid, 1, 100);
  ProcContextCache::Options o{proc.root(), 512};
  o.max_fds = 2 * kProcesses + 2;
  ProcContextCache cache(o);
  const size_t table = FdTableSize();
  EXPECT_GE(table, OpenFds() + o.max_fds);
  GateContextNeeds needs;
  needs.uid = true;
  for (int pid = 5000; pid < 5000 + kProcesses; ++pid) {
    ASSERT_TRUE(Describe(&cache, pid, needs).ok) << pid;
  }
  EXPECT_EQ(cache.fds(), 2u * kProcesses);
  EXPECT_EQ(cache.stats().evicted, 0u);
  EXPECT_EQ(FdTableSize(), table) << "the table grew while calls were described";
}

TEST(GateContextTest, ReadsOnlyWhatIsNeeded) {
  FakeProc proc;
  proc.Process("p", 100, 7000, 1000, "/usr/bin/p", std::string("p\0", 2));
  ProcContextCache cache(ProcContextCache::Options{proc.root(), 64});
  Described d = Describe(&cache, 4242, GateContextNeeds{});
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.comm, "p");
  EXPECT_EQ(d.event.proc.ppid, 1u);
  EXPECT_TRUE(d.event.proc.exe.empty());
  EXPECT_TRUE(d.in.argv.empty());
  EXPECT_TRUE(d.in.ancestors.empty());
  // Opened stat and status (the thread group, once), read both.
  EXPECT_EQ(cache.stats().syscalls, 4u);
  const uint64_t before = cache.stats().syscalls;
  d = Describe(&cache, 4242, GateContextNeeds{});
  EXPECT_EQ(cache.stats().syscalls - before, 1u) << "one read of the kept stat";
  EXPECT_FALSE(Describe(&cache, 999999, GateContextNeeds{}).ok);
}

bool WaitFor(const std::function<bool()>& cond) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::string ExeOf(pid_t pid) {
  std::error_code ec;
  return fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

// True once PID runs EXE under the name COMM and has gone to sleep in it. The kernel switches
// the executable first, then the name, then fills in the arguments and the memory layout, all
// while the process runs; one asleep (waiting for input or a timer) has finished its exec, so
// /proc shows the whole new program and nothing of it changes under a describe.
bool AsleepIn(pid_t pid, const std::string& exe, const std::string& comm) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/";
  std::ifstream stat(dir + "stat");
  std::string line;
  std::getline(stat, line);
  const auto st = enforce::ParseStat(line);
  std::ifstream cmdline(dir + "cmdline");
  const bool has_args = cmdline.get() != std::ifstream::traits_type::eof();
  return st.has_value() && st->comm == comm && st->state == 'S' && has_args && ExeOf(pid) == exe;
}

// A real process: a shell that, told to, execs sleep; then exits.
TEST(GateContextTest, ARealExecAndExitAreSeen) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(p[0], 0);
    close(p[1]);
    execl("/bin/sh", "sh", "-c", "read x; exec /bin/sleep 30 1", nullptr);
    _exit(127);
  }
  close(p[0]);
  // A failed assertion returns early: the child must not outlive the test (its sleep would
  // hold the test's output open for 30 s).
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  const std::string shell = fs::canonical("/bin/sh").string();
  ASSERT_TRUE(WaitFor([&] { return AsleepIn(child, shell, "sh"); }));
  ProcContextCache cache;
  const GateContextNeeds all = GateContextNeeds::Everything(8);
  Described d = Describe(&cache, child, all);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.pid, static_cast<uint32_t>(child));
  EXPECT_EQ(d.event.proc.ppid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(d.event.proc.comm, "sh");
  EXPECT_EQ(d.event.proc.exe, shell);
  ASSERT_EQ(d.in.argv.size(), 3u);
  EXPECT_EQ(d.in.argv[0], "sh");
  ASSERT_FALSE(d.in.ancestors.empty());
  EXPECT_EQ(d.in.ancestors[0].exe, fs::canonical("/proc/self/exe").string());

  // Kept: the second call reads the stat of each process and the caller's status, nothing else.
  uint64_t before = cache.stats().syscalls;
  d = Describe(&cache, child, all);
  EXPECT_EQ(cache.stats().syscalls - before, 2 + d.in.ancestors.size());

  ASSERT_EQ(write(p[1], "\n", 1), 1);
  const std::string sleep = fs::canonical("/bin/sleep").string();
  ASSERT_TRUE(WaitFor([&] { return AsleepIn(child, sleep, "sleep"); }));
  d = Describe(&cache, child, all);
  EXPECT_EQ(d.event.proc.comm, "sleep");
  EXPECT_EQ(d.event.proc.exe, sleep);
  EXPECT_EQ(d.in.argv, (std::vector<std::string>{"/bin/sleep", "30", "1"}));
  EXPECT_EQ(cache.stats().execs, 1u);

  kill(child, SIGKILL);
  reaper.pid = 0;
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  close(p[1]);
  // Gone (its pid, were it reused, would name another process: the kept descriptor does not).
  d = Describe(&cache, child, all);
  if (d.ok) {
    EXPECT_NE(d.event.proc.exe, sleep) << "a reused pid described as the dead process";
  }
  EXPECT_EQ(cache.stats().gone, 1u);
}

// The uid and the thread group as the kernel has them now, whichever way they are read (a pidfd
// where the kernel gives PIDFD_GET_INFO, else /proc/PID/status): a setuid without an exec is
// seen at the next call, and a thread is described as its thread group.
class GateContextInfoTest : public testing::TestWithParam<bool> {};

bool KernelAtLeast(int major, int minor) {
  utsname u{};
  int ma = 0, mi = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

TEST_P(GateContextInfoTest, UidFollowsSetuidAndAThreadIsItsThreadGroup) {
  ProcContextCache::Options o;
  o.pidfd = GetParam();
  ProcContextCache cache(o);
  if (o.pidfd && !KernelAtLeast(6, 13)) {
    GTEST_SKIP() << "this kernel has no PIDFD_GET_INFO (Linux 6.13)";
  }
  ASSERT_EQ(cache.uses_pidfd(), o.pidfd);

  // A thread of this process: described as the process.
  std::atomic<pid_t> tid{0};
  std::atomic<bool> done{false};
  std::thread t([&] {
    tid = gettid();
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  ASSERT_TRUE(WaitFor([&] { return tid.load() != 0; }));
  GateContextNeeds uid;
  uid.uid = true;
  Described d = Describe(&cache, tid.load(), uid);
  done = true;
  t.join();
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(d.event.proc.uid, geteuid());

  if (geteuid() != 0) GTEST_SKIP() << "changing a process's uid needs root";
  // A child that, told to, changes its effective uid (no exec: the stat stays the same).
  int go[2], ready[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c = 0;
    if (read(go[0], &c, 1) != 1 || setresuid(65534, 65534, 0) != 0) _exit(1);
    if (write(ready[1], "r", 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(go[0]);
  close(ready[1]);
  d = Describe(&cache, child, uid);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.pid, static_cast<uint32_t>(child));
  EXPECT_EQ(d.event.proc.uid, 0u);
  const uint64_t before = cache.stats().syscalls;
  d = Describe(&cache, child, uid);
  EXPECT_EQ(cache.stats().syscalls - before, 2u) << "the kept stat, and the uid";
  char c = 0;
  ASSERT_EQ(write(go[1], "g", 1), 1);
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  d = Describe(&cache, child, uid);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.event.proc.uid, 65534u) << "a setuid without an exec is seen at the next call";
  EXPECT_EQ(cache.stats().new_entries, 2u) << "the thread, the child";

  // Gone: nothing described, and no uid of a process that may have taken its pid since.
  kill(child, SIGKILL);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  close(go[1]);
  close(ready[0]);
  d = Describe(&cache, child, uid);
  if (d.ok) {
    EXPECT_NE(d.event.proc.uid, 65534u) << "a reused pid described with the dead process's uid";
  }
  EXPECT_EQ(cache.stats().gone, 1u);
}

// An ancestor of which only the name is read is kept by pidfd and /proc/PID/comm (where the
// kernel gives PIDFD_GET_INFO): a rename and a reparenting are seen at the next call, the
// ancestors whose executable is read are still read through their stat.
TEST(GateContextTest, AncestorsReadByNameFollowRenamesAndReparenting) {
  ProcContextCache cache;
  if (!KernelAtLeast(6, 13)) GTEST_SKIP() << "this kernel has no PIDFD_GET_INFO (Linux 6.13)";
  ASSERT_TRUE(cache.uses_pidfd());
  // This process -> middle -> leaf. The middle renames itself or exits when told to.
  int cmd[2], leaf_pid[2];
  ASSERT_EQ(pipe(cmd), 0);
  ASSERT_EQ(pipe(leaf_pid), 0);
  const pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    prctl(PR_SET_NAME, "middle");
    const pid_t leaf = fork();
    if (leaf == 0) {
      prctl(PR_SET_NAME, "leaf");
      while (true) pause();
    }
    if (write(leaf_pid[1], &leaf, sizeof leaf) != sizeof leaf) _exit(1);
    char c = 0;
    while (read(cmd[0], &c, 1) == 1) {
      if (c == 'r') prctl(PR_SET_NAME, "renamed");
      if (c == 'x') _exit(0);
      if (write(leaf_pid[1], &c, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  pid_t leaf = 0;
  ASSERT_EQ(read(leaf_pid[0], &leaf, sizeof leaf), static_cast<ssize_t>(sizeof leaf));
  auto tell = [&](char c) {
    ASSERT_EQ(write(cmd[1], &c, 1), 1);
    if (c != 'x') {
      ASSERT_EQ(read(leaf_pid[0], &c, 1), 1);
    }
  };
  GateContextNeeds needs;
  needs.ancestors = 3;
  needs.ancestor_exe = 1;  // the parent's executable; the two above it by name
  Described d = Describe(&cache, leaf, needs);
  ASSERT_TRUE(d.ok);
  ASSERT_EQ(d.in.ancestors.size(), 3u);
  EXPECT_EQ(d.in.ancestors[0].name, "middle");
  EXPECT_EQ(d.in.ancestors[0].exe, fs::canonical("/proc/self/exe").string());
  EXPECT_EQ(d.in.ancestors[1].name, std::string(program_invocation_short_name).substr(0, 15));
  EXPECT_TRUE(d.in.ancestors[1].exe.empty()) << "not asked for";
  uint64_t before = cache.stats().syscalls;
  d = Describe(&cache, leaf, needs);
  EXPECT_EQ(cache.stats().syscalls - before, 2u + 1u + 2u + 2u)
      << "the parent's stat, and for the leaf (no executable or argv read) and each ancestor by "
         "name its pidfd and comm";

  GateContextNeeds names;  // by name alone, the parent too
  names.ancestors = 2;
  d = Describe(&cache, leaf, names);
  ASSERT_EQ(d.in.ancestors.size(), 2u);
  EXPECT_EQ(d.in.ancestors[0].name, "middle");

  tell('r');
  d = Describe(&cache, leaf, needs);
  ASSERT_EQ(d.in.ancestors.size(), 3u);
  EXPECT_EQ(d.in.ancestors[0].name, "renamed");

  // Kept by name, the renamed parent is seen too.
  before = cache.stats().new_entries;
  d = Describe(&cache, leaf, names);
  EXPECT_EQ(cache.stats().new_entries, before) << "kept, and read again";
  ASSERT_EQ(d.in.ancestors.size(), 2u);
  EXPECT_EQ(d.in.ancestors[0].name, "renamed");
  EXPECT_EQ(d.in.ancestors[1].name, std::string(program_invocation_short_name).substr(0, 15));

  // The parent exits: the leaf is reparented (to init or a subreaper), and described so.
  tell('x');
  ASSERT_EQ(waitpid(middle, nullptr, 0), middle);
  ASSERT_TRUE(WaitFor([&] {
    Described now = Describe(&cache, leaf, names);
    return now.ok && now.event.proc.ppid != static_cast<uint32_t>(middle);
  }));
  d = Describe(&cache, leaf, names);
  ASSERT_FALSE(d.in.ancestors.empty());
  EXPECT_NE(d.in.ancestors[0].name, "renamed");
  kill(leaf, SIGKILL);  // reaped by its new parent
  for (int fd : {cmd[0], cmd[1], leaf_pid[0], leaf_pid[1]}) close(fd);
}

INSTANTIATE_TEST_SUITE_P(PidfdOrStatus, GateContextInfoTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& p) {
                           return p.param ? "Pidfd" : "ProcStatus";
                         });

}  // namespace
}  // namespace vigil::app
