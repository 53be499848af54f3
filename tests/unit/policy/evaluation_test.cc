// RuleSet::Evaluate (the evt.type index, memoised fields, simplified trees, hashed `in` lists,
// precompiled globs) against the plain evaluation of every rule with fresh fields
// (RuleSet::EvaluateEveryRule) and against expectations written out here. An index that left out
// a rule that can fire for an event's type, or a memoised value reused wrongly, fails these.

#include <fcntl.h>
#include <fnmatch.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/syscall_table.h"
#include "policy/rules.h"

namespace vigil::policy {
namespace {

std::vector<std::string> Names(const std::vector<Match>& ms) {
  std::vector<std::string> out;
  for (const Match& m : ms) out.push_back(m.rule->name + " | " + m.output);
  return out;
}

core::Event FileOpen(const std::string& path) {
  core::Event e;
  e.kind = core::EventKind::kFileOpen;
  e.path = path;
  return e;
}

RuleSet LoadOrDie(std::string_view yaml) {
  auto set = RuleSet::LoadString(yaml, "eval.yaml");
  EXPECT_TRUE(set.has_value()) << set.error().message();
  return set.has_value() ? std::move(set).value() : RuleSet();
}

// A varied, deterministic event set: every kind, every x86_64 system call number as a typed
// call, programs and paths the stable rules name (and ones they do not), containers and hosts,
// several ancestries and users.
struct EventSet {
  std::vector<core::Event> events;
  std::vector<EvalInput> inputs;
};

EventSet VariedEvents(size_t random_count) {
  const std::vector<std::string> comms = {
      "bash", "sh", "zsh", "ls", "cat", "sshd", "nginx", "grep", "find", "shred", "nc", "ncat",
      "curl", "wget", "python3", "sudo", "ln", "insmod", "debugfs", "tcpdump", "ssh", "rm",
      "vigil-reader", "dpkg", "apt", "systemd", "runc:[1:CHILD]", "php-fpm", "node", "java"};
  const std::vector<std::string> paths = {
      "/etc/shadow", "/etc/passwd", "/etc/sudoers", "/etc/pam.d/sshd", "/etc/hostname",
      "/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6", "/var/log/syslog",
      "/var/log/auth.log", "/dev/shm/x", "/tmp/x", "/root/.ssh/id_rsa", "/root/.aws/credentials",
      "/sys/fs/cgroup/x/release_agent", "/proc/self/mem", "/usr/bin/ls", "/bin/sh",
      "/var/www/../../etc/passwd", "../etc/shadow", "relative/file", "/etc//shadow/",
      "/home/user/.bash_history", "/dev/fd/3", "./x", "/", ""};
  const std::vector<std::vector<std::string>> argvs = {
      {"x"},
      {"x", "-l", "/home/user"},
      {"x", "-c", "id"},
      {"x", "-r", "BEGIN RSA PRIVATE", "/home"},
      {"x", "/", "-path", "/root/.aws/credentials"},
      {"x", "-e", "/bin/sh", "10.0.0.1", "4444"},
      {"x", "-u", "/tmp/f"},
      {"x", "/dev/sda1"},
      {}};
  const std::vector<std::vector<Ancestor>> ancestries = {
      {},
      {{"bash", "/usr/bin/bash", {"bash"}}, {"sshd", "/usr/sbin/sshd", {"sshd"}}},
      {{"nginx", "/usr/sbin/nginx", {"nginx"}}, {"systemd", "/sbin/init", {}}},
      {{"runc:[1:CHILD]", "", {}}},
      {{"php-fpm", "/usr/sbin/php-fpm", {"php-fpm"}}, {"bash", "/bin/bash", {"bash"}},
       {"sshd", "/usr/sbin/sshd", {"/usr/sbin/sshd", "-D"}}, {"systemd", "/sbin/init", {}}},
  };
  const std::vector<std::string> addrs = {"93.184.216.34", "10.0.0.1", "192.168.1.5", "127.0.0.1",
                                          "203.0.113.7", "2001:db8::1", "::1", ""};
  const std::vector<uint16_t> ports = {22, 80, 443, 4444, 6443, 53};
  const std::vector<uint32_t> open_flags = {O_RDONLY, O_WRONLY | O_TRUNC, O_RDWR | O_CREAT,
                                            O_WRONLY | O_APPEND, O_RDONLY | O_CLOEXEC};

  std::mt19937_64 rng(20261127);
  auto pick = [&](const auto& v) -> const auto& { return v[rng() % v.size()]; };
  EventSet set;
  auto add = [&](core::Event e) {
    e.source = core::EventSource::kEbpf;
    e.seq = 1 + set.events.size();
    e.time_ns = 2'000'000'000'000;
    e.proc.pid = 1000;
    e.proc.tid = 1000;
    e.proc.ppid = 999;
    if (e.proc.comm.empty()) e.proc.comm = pick(comms);
    if (e.proc.exe.empty()) e.proc.exe = "/usr/bin/" + e.proc.comm;
    e.proc.uid = (rng() % 3 == 0) ? 1000 : 0;
    e.proc.loginuid = (rng() % 2 == 0) ? core::kNoLoginUid : 1000;
    e.proc.tty = (rng() % 2 == 0) ? 0 : (136u << 20);
    if (rng() % 3 == 0) {
      e.proc.has_caps = true;
      e.proc.cap_effective = rng();
      e.proc.cap_permitted = e.proc.cap_effective | rng();
    }
    set.events.push_back(std::move(e));
  };
  // Every system call number as a typed call, with paths and arguments.
  for (int nr = 0; nr < 460; ++nr) {
    if (core::SyscallName(core::Arch::kX86_64, nr).empty()) continue;
    core::Event e;
    e.kind = core::EventKind::kTypedCall;
    e.syscall = {core::Arch::kX86_64, nr};
    e.path = pick(paths);
    e.path2 = pick(paths);
    e.args = {rng() % 20, rng() % 20, rng(), rng()};
    e.has_ret = true;
    e.ret = (rng() % 4 == 0) ? -13 : 0;
    add(std::move(e));
  }
  for (size_t i = 0; i < random_count; ++i) {
    core::Event e;
    switch (rng() % 8) {
      case 0:
      case 1:
        e.kind = core::EventKind::kProcessExec;
        e.proc.comm = pick(comms);
        e.proc.exe = rng() % 4 == 0 ? pick(paths) : "/usr/bin/" + e.proc.comm;
        e.path = e.proc.exe;
        e.flags = rng() % 5 == 0 ? core::kExecFromMemfd : 0;
        break;
      case 2:
      case 3:
      case 4:
        e.kind = core::EventKind::kFileOpen;
        e.syscall = {core::Arch::kX86_64, 257};
        e.path = pick(paths);
        e.flags = pick(open_flags);
        e.has_ret = true;
        e.ret = rng() % 5 == 0 ? -2 : 3;
        break;
      case 5:
        e.kind = core::EventKind::kNetConnect;
        e.net = {pick(addrs), pick(ports), static_cast<uint8_t>(rng() % 2 ? 6 : 17)};
        if (e.net.daddr.empty()) e.path = "/run/docker.sock";
        e.syscall = {core::Arch::kX86_64, 42};
        e.has_ret = true;
        e.ret = rng() % 2 ? 0 : -115;
        break;
      case 6: {
        static const std::vector<core::EventKind> kOther = {
            core::EventKind::kProcessFork, core::EventKind::kProcessExit,
            core::EventKind::kStreamEnd, core::EventKind::kSyscall};
        e.kind = pick(kOther);
        e.syscall = {core::Arch::kX86_64, static_cast<int32_t>(rng() % 335)};
        break;
      }
      default:
        e.kind = core::EventKind::kTypedCall;
        e.syscall = {core::Arch::kX86_64,
                     pick(std::vector<int32_t>{101, 41, 266, 265, 313, 175, 105, 59, 87, 263})};
        e.path = pick(paths);
        e.path2 = pick(paths);
        e.args = {rng() % 20, rng() % 20, 0, 0};
        e.has_ret = true;
        e.ret = 0;
        break;
    }
    add(std::move(e));
  }
  for (const core::Event& e : set.events) {
    EvalInput in;
    in.argv = pick(argvs);
    if (!in.argv.empty()) in.argv[0] = e.proc.comm;
    in.user_name = e.proc.uid == 0 ? "root" : (rng() % 2 ? "user" : "www-data");
    in.ancestors = pick(ancestries);
    in.cwd = rng() % 2 ? "/root" : "";
    in.proc_start_time_ns = rng() % 2 ? e.time_ns - 60'000'000'000 : e.time_ns - 1'000'000;
    if (rng() % 3 == 0) {
      in.container_id = std::string(64, 'a');
      in.container_image = rng() % 2 ? "docker.io/library/debian:12" : "registry.k8s.io/pause@sha256:00";
      in.container_privileged = static_cast<int>(rng() % 2);
      in.k8s_namespace = "default";
    }
    set.inputs.push_back(std::move(in));
  }
  for (size_t i = 0; i < set.events.size(); ++i) set.inputs[i].event = &set.events[i];
  return set;
}

TEST(EvaluationTest, StableRulesIndexedEqualsEveryRule) {
  auto loaded = RuleSet::LoadFiles({VIGIL_SHARED_DIR "/fixtures/falco/falco_rules.yaml"});
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  const RuleSet& rules = *loaded;
  const EventSet set = VariedEvents(4000);
  std::set<std::string> fired;
  size_t matches = 0;
  for (const EvalInput& in : set.inputs) {
    const auto fast = Names(rules.Evaluate(in));
    const auto plain = Names(rules.EvaluateEveryRule(in));
    ASSERT_EQ(fast, plain) << "event seq " << in.event->seq << " type "
                           << EventTypeName(*in.event) << " comm " << in.event->proc.comm
                           << " path " << in.event->path;
    for (const Match& m : rules.Evaluate(in)) fired.insert(m.rule->name);
    matches += fast.size();
  }
  // Not vacuous: the set makes many of the rules fire, on many events.
  EXPECT_GE(fired.size(), 15u) << ::testing::PrintToString(fired);
  EXPECT_GE(matches, 200u);
}

// Conditions whose evt.type bounds need `not`, `!=`, `or` across types and macros.
constexpr std::string_view kTypeRules = R"Y(
- macro: is_connect
  condition: evt.type = connect
- macro: opens
  condition: evt.type in (open, openat, openat2)
- rule: not an open
  desc: d
  condition: not opens and proc.name = probe
  output: "not open %evt.type"
  priority: WARNING
- rule: not a connect
  desc: d
  condition: not is_connect and proc.name = probe
  output: "not connect %evt.type"
  priority: WARNING
- rule: ne exec
  desc: d
  condition: evt.type != execve and proc.name = probe
  output: "ne exec %evt.type"
  priority: WARNING
- rule: exec or name
  desc: d
  condition: evt.type = execve or proc.name = probe
  output: "exec or name %evt.type"
  priority: WARNING
- rule: not both
  desc: d
  condition: not (is_connect and fd.sport = 80) and proc.name = probe
  output: "not both %evt.type"
  priority: WARNING
- rule: double negation
  desc: d
  condition: not not opens and proc.name = probe
  output: "double negation %evt.type"
  priority: WARNING
- rule: never
  desc: d
  condition: evt.type = execve and not evt.type = execve
  output: "never"
  priority: WARNING
- rule: prefix
  desc: d
  condition: evt.type startswith open and proc.name = probe
  output: "prefix %evt.type"
  priority: WARNING
- rule: exception on type
  desc: d
  condition: proc.name = probe
  exceptions:
    - name: not opens
      fields: [evt.type]
      comps: [in]
      values: [[[openat, execve]]]
  output: "exception %evt.type"
  priority: WARNING
)Y";

TEST(EvaluationTest, TypeIndexIsSoundForNegationsAndAlternatives) {
  const RuleSet rules = LoadOrDie(kTypeRules);
  ASSERT_EQ(rules.enabled_count(), 9u);
  std::vector<core::Event> events;
  for (core::EventKind kind : {core::EventKind::kProcessExec, core::EventKind::kFileOpen,
                               core::EventKind::kNetConnect, core::EventKind::kProcessExit}) {
    core::Event e;
    e.kind = kind;
    events.push_back(e);
  }
  for (int nr : {0, 1, 2, 56, 59, 257, 437}) {
    core::Event e;
    e.kind = core::EventKind::kTypedCall;
    e.syscall = {core::Arch::kX86_64, nr};
    events.push_back(e);
  }
  for (core::Event& e : events) {
    e.proc.comm = "probe";
    e.net = {"10.1.1.1", 80, 6};
    EvalInput in;
    in.event = &e;
    const std::string type = EventTypeName(e);
    std::set<std::string> want;
    const bool open = type == "open" || type == "openat" || type == "openat2";
    if (!open) want.insert("not an open");
    if (type != "connect") want.insert("not a connect");
    if (type != "execve") want.insert("ne exec");
    want.insert("exec or name");
    if (type != "connect") want.insert("not both");  // connect events here have port 80
    if (open) want.insert("double negation");
    if (type.starts_with("open")) want.insert("prefix");
    if (type != "openat" && type != "execve") want.insert("exception on type");
    std::set<std::string> got;
    for (const Match& m : rules.Evaluate(in)) got.insert(m.rule->name);
    EXPECT_EQ(got, want) << type;
    std::set<std::string> plain;
    for (const Match& m : rules.EvaluateEveryRule(in)) plain.insert(m.rule->name);
    EXPECT_EQ(plain, want) << type;
  }
  // The plans themselves: "never" is a candidate nowhere; within a named type every evt.type
  // check is decided (also "startswith open"); a type no condition names gets the rules that
  // may hold for every type but the ones they name.
  EXPECT_EQ(rules.CandidateCount("execve"), 4u);   // not ne exec, double negation, never,
                                                   // prefix, exception
  EXPECT_EQ(rules.CandidateCount("openat"), 6u);   // not "not an open", never, exception
  EXPECT_EQ(rules.CandidateCount("connect"), 5u);  // not "not a connect", double negation,
                                                   // never, prefix
  EXPECT_EQ(rules.CandidateCount("read"), 7u);     // not double negation, never
}

// Events of every kind and of system calls on both architectures, named by a condition or not.
std::vector<core::Event> EveryKindOfEvent() {
  std::vector<core::Event> events;
  for (core::EventKind kind :
       {core::EventKind::kProcessExec, core::EventKind::kFileOpen, core::EventKind::kNetConnect,
        core::EventKind::kProcessExit, core::EventKind::kProcessFork, core::EventKind::kStreamEnd}) {
    core::Event e;
    e.kind = kind;
    events.push_back(e);
  }
  for (core::Arch arch : {core::Arch::kX86_64, core::Arch::kI386, core::Arch::kUnknown}) {
    for (int nr : {-1, 0, 2, 5, 11, 56, 59, 257, 437, 511, 512, 100000}) {
      for (core::EventKind kind : {core::EventKind::kTypedCall, core::EventKind::kSyscall}) {
        core::Event e;
        e.kind = kind;
        e.syscall = {arch, nr};
        events.push_back(e);
      }
    }
  }
  for (core::Event& e : events) e.proc.comm = "probe";
  return events;
}

// A rule without any evt.type check is a candidate for every type and fires on every event; a
// list- and macro-expanded type set plans exactly its types; a negated set every other type.
TEST(EvaluationTest, TypePlansFollowListsMacrosAndNegations) {
  const RuleSet rules = LoadOrDie(R"Y(
- list: my_types
  items: [openat, execve]
- list: more_types
  items: [my_types, connect]
- macro: my_event
  condition: evt.type in (more_types)
- rule: any type
  desc: d
  condition: proc.name = probe
  output: "any %evt.type"
  priority: WARNING
- rule: listed types
  desc: d
  condition: my_event and proc.name = probe
  output: "listed %evt.type"
  priority: WARNING
- rule: not listed types
  desc: d
  condition: not my_event and proc.name = probe
  output: "not listed %evt.type"
  priority: WARNING
- rule: not one type
  desc: d
  condition: proc.name = probe and not evt.type = openat
  output: "not openat %evt.type"
  priority: WARNING
)Y");
  ASSERT_EQ(rules.enabled_count(), 4u);
  EXPECT_EQ(rules.CandidateCount("openat"), 2u);   // any, listed
  EXPECT_EQ(rules.CandidateCount("execve"), 3u);   // any, listed, not openat
  EXPECT_EQ(rules.CandidateCount("connect"), 3u);  // any, listed, not openat
  EXPECT_EQ(rules.CandidateCount("read"), 3u);     // any, not listed, not openat
  EXPECT_EQ(rules.CandidateCount(""), 3u);
  size_t events = 0;
  for (core::Event& e : EveryKindOfEvent()) {
    EvalInput in;
    in.event = &e;
    const std::string type = EventTypeName(e);
    const bool listed = type == "openat" || type == "execve" || type == "connect";
    std::set<std::string> want = {"any type", listed ? "listed types" : "not listed types"};
    if (type != "openat") want.insert("not one type");
    std::set<std::string> got;
    for (const Match& m : rules.Evaluate(in)) got.insert(m.rule->name);
    EXPECT_EQ(got, want) << type << " kind " << static_cast<int>(e.kind) << " arch "
                         << static_cast<int>(e.syscall.arch) << " nr " << e.syscall.nr;
    EXPECT_EQ(Names(rules.Evaluate(in)), Names(rules.EvaluateEveryRule(in))) << type;
    EXPECT_EQ(rules.CandidateCount(type), want.size()) << type;
    ++events;
  }
  EXPECT_GT(events, 70u);
}

// The per-process memo: parts that read only the process are evaluated once per process and
// reused for its later events; a different process (its `proc` differs), a Reset() or another
// rule set recompute them. Every result equals the plain evaluation.
TEST(EvaluationTest, ProcessMemoGivesThePlainResults) {
  auto loaded = RuleSet::LoadFiles({VIGIL_SHARED_DIR "/fixtures/falco/falco_rules.yaml"});
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  const RuleSet& rules = *loaded;
  ASSERT_GT(rules.MemoizedParts(), 10u);
  EventSet set = VariedEvents(3000);
  // Runs of up to 6 events of one process: the run's first event's process for all of them.
  std::mt19937_64 rng(7);
  ProcessMemo memo;
  std::set<std::string> fired;
  size_t matches = 0;
  for (size_t i = 0; i < set.events.size();) {
    const size_t end = std::min(set.events.size(), i + 1 + rng() % 6);
    for (size_t j = i + 1; j < end; ++j) {
      set.events[j].proc = set.events[i].proc;
      EvalInput& in = set.inputs[j];
      const EvalInput& first = set.inputs[i];
      in.argv = first.argv;
      in.user_name = first.user_name;
      in.ancestors = first.ancestors;
      in.cwd = first.cwd;
      in.container_id = first.container_id;
      in.container_image = first.container_image;
      in.container_privileged = first.container_privileged;
      in.k8s_namespace = first.k8s_namespace;
    }
    memo.Reset();  // a new process part
    for (size_t j = i; j < end; ++j) {
      const auto fast = Names(rules.Evaluate(set.inputs[j], &memo));
      ASSERT_EQ(fast, Names(rules.EvaluateEveryRule(set.inputs[j])))
          << "event seq " << set.events[j].seq << " type " << EventTypeName(set.events[j])
          << " comm " << set.events[j].proc.comm << " path " << set.events[j].path;
      for (const Match& m : rules.Evaluate(set.inputs[j], &memo)) fired.insert(m.rule->name);
      matches += fast.size();
    }
    i = end;
  }
  EXPECT_GE(fired.size(), 15u) << ::testing::PrintToString(fired);
  EXPECT_GE(matches, 150u);
  EXPECT_GT(memo.reused(), 3000u);

  // The event's `proc` is part of the key: a renamed process (prctl) is evaluated afresh.
  const RuleSet named = LoadOrDie(R"Y(
- rule: shell opens
  desc: d
  condition: evt.type = openat and proc.name = bash and fd.name startswith /etc/
  output: "%proc.name %fd.name"
  priority: WARNING
)Y");
  ASSERT_EQ(named.MemoizedParts(), 1u);
  core::Event e;
  e.kind = core::EventKind::kFileOpen;
  e.path = "/etc/passwd";
  e.proc.comm = "bash";
  EvalInput in;
  in.event = &e;
  ProcessMemo m;
  EXPECT_EQ(named.Evaluate(in, &m).size(), 1u);
  EXPECT_EQ(named.Evaluate(in, &m).size(), 1u);
  EXPECT_EQ(m.reused(), 1u);
  e.proc.comm = "evil";
  EXPECT_EQ(named.Evaluate(in, &m).size(), 0u);
  e.proc.comm = "bash";
  EXPECT_EQ(named.Evaluate(in, &m).size(), 1u);
  EXPECT_EQ(m.reused(), 1u);
  // Another rule set's values are never read: the memo follows the set it is used with.
  EXPECT_EQ(rules.Evaluate(in, &m).size(), rules.EvaluateEveryRule(in).size());
  EXPECT_EQ(named.Evaluate(in, &m).size(), 1u);
  EXPECT_EQ(m.reused(), 1u);
}

// fd.name (normalised against proc.cwd), fd.directory and fd.filename against a plain
// component-by-component normaliser, on paths that are normal already and ones that are not.
TEST(EvaluationTest, FileNamesAreNormalisedAsByComponents) {
  const RuleSet rules = LoadOrDie(R"Y(
- rule: names
  desc: d
  condition: evt.type = openat
  output: "%fd.name|%fd.directory|%fd.filename"
  priority: WARNING
)Y");
  auto normalise = [](const std::string& path, const std::string& cwd) -> std::string {
    const bool absolute = !path.empty() && path[0] == '/';
    if (!absolute && (cwd.empty() || cwd[0] != '/')) return path;
    std::vector<std::string> parts;
    for (const std::string& whole : {absolute ? std::string() : cwd, path}) {
      size_t start = 0;
      while (start <= whole.size()) {
        const size_t slash = std::min(whole.find('/', start), whole.size());
        const std::string part = whole.substr(start, slash - start);
        if (part == "..") {
          if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
          parts.push_back(part);
        }
        start = slash + 1;
      }
    }
    std::string out;
    for (const std::string& p : parts) out += "/" + p;
    return out.empty() ? "/" : out;
  };
  const std::vector<std::string> paths = {
      "/", "/etc", "/etc/", "//etc", "/etc//x", "/./x", "/x/.", "/x/..", "/..", "/.x", "/..x",
      "/x./y", "/x../y", "/a/b/../c", "/a/./b", "/a/b/.", "/.", "/...", "rel", "./rel",
      "../rel", "a/b", "/tmp/vigil-bench-loop.Ab3dEf"};
  for (const std::string& cwd : {std::string("/home/u"), std::string()}) {
    for (const std::string& path : paths) {
      core::Event e = FileOpen(path);
      EvalInput in;
      in.event = &e;
      in.cwd = cwd;
      const std::string name = normalise(path, cwd);
      const size_t slash = name.rfind('/');
      const std::string dir = slash == std::string::npos ? "<NA>"
                              : slash == 0               ? "/"
                                                         : name.substr(0, slash);
      const size_t raw_slash = path.rfind('/');
      std::string file = raw_slash == std::string::npos ? path : path.substr(raw_slash + 1);
      if (file.empty()) file = "<NA>";
      const auto got = rules.Evaluate(in);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].output, name + "|" + dir + "|" + file) << path << " in " << cwd;
    }
  }
}

// The rewritten trees (or-merged equalities, spliced macros, not not) and the matchers (hashed
// `in`, glob without fnmatch) give what the condition says.
TEST(EvaluationTest, SimplifiedChecksKeepTheirMeaning) {
  const RuleSet rules = LoadOrDie(R"Y(
- list: many
  items: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, "", "with space"]
- macro: m1
  condition: proc.name = x or (proc.name in (y, z) or proc.name = many_not_a_list)
- rule: merged
  desc: d
  condition: evt.type = execve and (m1 or proc.name in (many) or proc.pname = x or proc.name = w)
  output: "merged %proc.name"
  priority: WARNING
- rule: any ancestor
  desc: d
  condition: evt.type = execve and (proc.aname = anc or proc.aname in (anc2, anc3))
  output: "anc %proc.name"
  priority: WARNING
- rule: folded
  desc: d
  condition: evt.type = execve and proc.cmdline icontains "SeCrEt"
  output: "folded"
  priority: WARNING
)Y");
  auto fired = [&](const std::string& comm, const std::string& pname,
                   std::vector<std::string> argv) {
    core::Event e;
    e.kind = core::EventKind::kProcessExec;
    e.proc.comm = comm;
    EvalInput in;
    in.event = &e;
    in.argv = std::move(argv);
    in.ancestors = {{pname, "", {}}, {"anc3", "", {}}};
    std::set<std::string> out;
    for (const Match& m : rules.Evaluate(in)) out.insert(m.rule->name);
    std::set<std::string> plain;
    for (const Match& m : rules.EvaluateEveryRule(in)) plain.insert(m.rule->name);
    EXPECT_EQ(out, plain);
    return out;
  };
  using S = std::set<std::string>;
  EXPECT_EQ(fired("x", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("z", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("many_not_a_list", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("a12", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("with space", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("a13", "x", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("w", "p", {}), (S{"merged", "any ancestor"}));
  EXPECT_EQ(fired("a13", "p", {"a13", "read", "the", "sEcReT"}), (S{"any ancestor", "folded"}));
  EXPECT_EQ(fired("a1x", "p", {"a1x", "secre"}), (S{"any ancestor"}));
}

TEST(EvaluationTest, GlobMatchesAsFnmatch) {
  const std::vector<std::string> patterns = {
      "/etc/*",  "*shadow", "/etc/*/*.conf", "*",     "",          "a*b*c", "/tmp/x",
      "*/.ssh/*", "**",     "/e?c/*",        "/[e]tc/*", "[*]*",  "/etc/[!p]*"};
  const std::vector<std::string> paths = {
      "/etc/shadow", "/etc/passwd", "/etc/ssh/sshd.conf", "/etc/a/b/c.conf", "", "abc",
      "aXbYc",       "acb",         "/tmp/x",             "/tmp/xy",         "/root/.ssh/id",
      "/etc",        "*",           "a*",                 "/etc/"};
  std::string yaml;
  for (size_t i = 0; i < patterns.size(); ++i) {
    yaml += "- rule: g" + std::to_string(i) + "\n  desc: d\n  condition: fd.name glob \"" +
            patterns[i] + "\"\n  output: o\n  priority: WARNING\n";
  }
  const RuleSet rules = LoadOrDie(yaml);
  ASSERT_EQ(rules.enabled_count(), patterns.size());
  for (const std::string& path : paths) {
    core::Event e = FileOpen(path);
    EvalInput in;
    in.event = &e;
    std::set<std::string> got;
    for (const Match& m : rules.Evaluate(in)) got.insert(m.rule->name);
    // fd.name is the normalised path; a file event needs a path.
    std::string name = path;
    if (name.size() > 1 && name.back() == '/') name.pop_back();
    std::set<std::string> want;
    for (size_t i = 0; i < patterns.size() && !path.empty(); ++i) {
      if (fnmatch(patterns[i].c_str(), name.c_str(), 0) == 0) want.insert("g" + std::to_string(i));
    }
    EXPECT_EQ(got, want) << path;
  }
}

}  // namespace
}  // namespace vigil::policy
