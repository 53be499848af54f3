#include "policy/rules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vigil::policy {
namespace {

core::Event Exec(const std::string& comm, const std::string& exe, uint32_t uid = 0) {
  core::Event e;
  e.kind = core::EventKind::kProcessExec;
  e.seq = 5;
  e.proc = {.pid = 100, .ppid = 50, .uid = uid, .comm = comm, .exe = exe};
  e.path = exe;
  return e;
}

core::Event Open(const std::string& comm, const std::string& path, int64_t ret = 3) {
  core::Event e;
  e.kind = core::EventKind::kFileOpen;
  e.proc = {.pid = 200, .uid = 1000, .comm = comm, .exe = "/usr/bin/" + comm};
  e.path = path;
  e.has_ret = true;
  e.ret = ret;
  return e;
}

std::vector<std::string> Fired(const RuleSet& set, const EvalInput& in) {
  std::vector<std::string> names;
  for (const Match& m : set.Evaluate(in)) names.push_back(m.rule->name);
  return names;
}

RuleSet MustLoad(std::string_view yaml) {
  auto set = RuleSet::LoadString(yaml, "t.yaml");
  EXPECT_TRUE(set.has_value()) << set.error().message();
  return set.has_value() ? std::move(set).value() : RuleSet();
}

constexpr std::string_view kBase = R"Y(
- required_engine_version: 0.57.0
- list: shells
  items: [bash, sh]
- list: more_shells
  items: [shells, zsh, '"(odd)"']
- macro: spawned
  condition: evt.type in (execve, execveat)
- macro: shell
  condition: proc.name in (more_shells)
- rule: Shell started
  desc: a shell
  condition: spawned and shell and not proc.pname in (sshd)
  output: "shell %proc.name (parent %proc.pname, uid %user.uid, seq %evt.num) %proc.cmdline"
  priority: WARNING
  tags: [shell]
- rule: Secret read
  desc: shadow read
  condition: evt.type=openat and fd.name pmatch (/etc/shadow, /root) and evt.res=SUCCESS
  output: "%proc.name read %fd.name"
  priority: critical
)Y";

TEST(RulesTest, ListsMacrosAndRulesEvaluate) {
  RuleSet set = MustLoad(kBase);
  ASSERT_EQ(set.rules().size(), 2u);
  EXPECT_EQ(set.enabled_count(), 2u);
  EXPECT_TRUE(set.warnings().empty());
  EXPECT_EQ(set.rules()[1].priority, Priority::kCritical);

  core::Event e = Exec("zsh", "/usr/bin/zsh");
  EvalInput in{.event = &e, .argv = {"zsh", "-i"}, .ancestors = {{.name = "cron"}}};
  auto matches = set.Evaluate(in);
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].rule->name, "Shell started");
  EXPECT_EQ(matches[0].output, "shell zsh (parent cron, uid 0, seq 5) zsh -i");

  e.proc.comm = "(odd)";  // a quoted list item
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"Shell started"});
  in.ancestors = {{.name = "sshd"}};
  EXPECT_TRUE(Fired(set, in).empty());
  in.ancestors.clear();  // no parent known: "proc.pname in" is false, so "not" holds
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"Shell started"});
  e.proc.comm = "python";
  EXPECT_TRUE(Fired(set, in).empty());
}

TEST(RulesTest, PathMatchAndResults) {
  RuleSet set = MustLoad(kBase);
  core::Event e = Open("cat", "/etc/shadow");
  EvalInput in{.event = &e};
  auto m = set.Evaluate(in);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].output, "cat read /etc/shadow");
  e.path = "/root/.bashrc";
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"Secret read"});
  e.path = "/rootfs/x";  // pmatch is by path component
  EXPECT_TRUE(Fired(set, in).empty());
  e.path = "/etc/shadow";
  e.ret = -13;
  EXPECT_TRUE(Fired(set, in).empty());
}

TEST(RulesTest, AppendAndOverride) {
  std::string yaml(kBase);
  yaml += R"Y(
- list: shells
  items: [fish]
  override:
    items: append
- macro: spawned
  condition: or evt.type=clone
  append: true
- rule: Shell started
  condition: and user.uid != 0
  override:
    condition: append
- rule: Secret read
  enabled: false
)Y";
  RuleSet set = MustLoad(yaml);
  EXPECT_EQ(set.enabled_count(), 1u);
  EXPECT_FALSE(set.rules()[1].enabled);
  EXPECT_TRUE(set.rules()[1].disabled_reason.empty());  // disabled by the file, not the loader
  core::Event e = Exec("fish", "/usr/bin/fish", 1000);
  EvalInput in{.event = &e};
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"Shell started"});
  e.proc.uid = 0;
  EXPECT_TRUE(Fired(set, in).empty());
}

TEST(RulesTest, ExceptionsCarveOutTuples) {
  RuleSet set = MustLoad(R"Y(
- rule: Open etc
  desc: x
  condition: evt.type=openat and fd.name startswith /etc/
  output: "%fd.name"
  priority: notice
  exceptions:
    - name: known_readers
      fields: [proc.name, fd.name]
      comps: [=, startswith]
      values:
        - [cat, /etc/hosts]
        - [sshd, /etc/ssh/]
    - name: trusted
      fields: proc.name
      values: [apt, dpkg]
)Y");
  core::Event e = Open("cat", "/etc/hosts");
  EvalInput in{.event = &e};
  EXPECT_TRUE(Fired(set, in).empty());
  e.path = "/etc/passwd";
  EXPECT_EQ(Fired(set, in).size(), 1u);
  e.proc.comm = "sshd";
  e.path = "/etc/ssh/sshd_config";
  EXPECT_TRUE(Fired(set, in).empty());
  e.proc.comm = "dpkg";
  e.path = "/etc/passwd";
  EXPECT_TRUE(Fired(set, in).empty());
}

TEST(RulesTest, UnsupportedFieldDisablesTheRuleWithAWarning) {
  RuleSet set = MustLoad(R"Y(
- macro: interactive
  condition: proc.is_exe_upper_layer = true
- rule: Good
  desc: x
  condition: evt.type=execve
  output: "%proc.name %fd.sip.name"
  priority: info
- rule: Needs upper layer
  desc: x
  condition: evt.type=execve and interactive
  output: x
  priority: info
)Y");
  EXPECT_EQ(set.enabled_count(), 1u);
  ASSERT_EQ(set.warnings().size(), 2u);
  const std::string output_warning = set.warnings()[0].ToString();
  EXPECT_NE(output_warning.find("fd.sip.name"), std::string::npos) << output_warning;
  const std::string w = set.warnings()[1].ToString();
  EXPECT_NE(w.find("t.yaml:9"), std::string::npos) << w;
  EXPECT_NE(w.find("rule \"Needs upper layer\""), std::string::npos) << w;
  EXPECT_NE(w.find("\"proc.is_exe_upper_layer\""), std::string::npos) << w;
  EXPECT_NE(w.find("macro \"interactive\" at t.yaml:3"), std::string::npos) << w;
  EXPECT_FALSE(set.rules()[1].enabled);
  EXPECT_NE(set.rules()[1].disabled_reason.find("proc.is_exe_upper_layer"), std::string::npos);
  core::Event e = Exec("ls", "/bin/ls");
  EvalInput in{.event = &e};
  auto m = set.Evaluate(in);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].output, "ls <NA>");
}

TEST(RulesTest, MlFieldsReadTheVerdict) {
  RuleSet set = MustLoad(R"Y(
- rule: Anomalous shell
  desc: x
  condition: evt.type=execve and ml.anomalous=true and ml.score >= 0.8 and ml.explain contains setuid
  output: "%ml.model %ml.score"
  priority: error
  action: {type: kill, mode: enforce, fallback: alert}
)Y");
  ASSERT_TRUE(set.rules()[0].has_action);
  EXPECT_EQ(set.rules()[0].action.type, "kill");
  EXPECT_EQ(set.rules()[0].action.mode, "enforce");
  core::Event e = Exec("sh", "/bin/sh");
  core::Verdict v;
  v.score = 0.93;
  v.anomalous = true;
  v.model_name = "syscall-ngram";
  v.explanation = {{"open setuid execve", 9}};
  EvalInput in{.event = &e};
  EXPECT_TRUE(Fired(set, in).empty());  // no verdict: ml.* absent
  in.verdict = &v;
  auto m = set.Evaluate(in);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].output, "syscall-ngram 0.93");
  v.score = 0.5;
  EXPECT_TRUE(Fired(set, in).empty());
}

TEST(RulesTest, BadInputNamesFileLineAndReason) {
  auto err = [](std::string_view yaml) {
    auto set = RuleSet::LoadString(yaml, "bad.yaml");
    return set.has_value() ? std::string("loaded") : set.error().message();
  };
  EXPECT_EQ(err("- rule: x\n  condition: evt.type=\n  output: o\n  priority: info\n"),
            "bad.yaml:2:14: rule \"x\": condition: column 10: missing value at the end");
  EXPECT_EQ(err("- rule: x\n  condition: evt.type=open\n  output: o\n  priority: loud\n"),
            "bad.yaml:4:13: priority: expected emergency, alert, critical, error, warning, notice, "
            "informational or debug");
  EXPECT_EQ(err("- rule: x\n  condtion: a\n"),
            "bad.yaml:2:3: unknown key \"condtion\" in a rule (expected one of: rule, desc, "
            "condition, output, priority, tags, enabled, exceptions, source, append, override, "
            "warn_evttypes, skip-if-unknown-filter, action)");
  EXPECT_NE(err("- rule: x\n  condition: nope\n  output: o\n  priority: info\n")
                .find("undefined macro \"nope\""),
            std::string::npos);
  EXPECT_NE(err("- rule: x\n  condition: user.uid = root\n  output: o\n  priority: info\n")
                .find("\"root\" is not a number"),
            std::string::npos);
  EXPECT_NE(err("- rule: x\n  condition: user.uid contains 1\n  output: o\n  priority: info\n")
                .find("does not apply"),
            std::string::npos);
  EXPECT_NE(err("- required_engine_version: 9.0.0\n").find("newer than this engine"),
            std::string::npos);
  EXPECT_NE(err("- rule: [unclosed\n").find("bad.yaml:"), std::string::npos);
  EXPECT_NE(err("- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: x\n  condition: a\n"
                "  output: o\n  priority: info\n")
                .find("refers to itself"),
            std::string::npos);
  EXPECT_NE(err("- list: l\n  items: [x]\n  append: true\n- list: m\n  items: [y]\n  append: true\n")
                .find("append to a list not defined before"),
            std::string::npos);
  EXPECT_NE(err("- frob: 1\n").find("unknown item"), std::string::npos);
  EXPECT_NE(err("- rule: x\n  condition: evt.type=open\n  output: o\n  priority: info\n"
                "  action: {type: nuke}\n")
                .find("action.type: expected one of"),
            std::string::npos);
}

TEST(RulesTest, ExponentialMacroExpansionIsRefused) {
  std::string yaml = "- macro: m0\n  condition: proc.name=a\n";
  for (int i = 1; i <= 24; ++i) {
    yaml += "- macro: m" + std::to_string(i) + "\n  condition: m" + std::to_string(i - 1) +
            " and m" + std::to_string(i - 1) + "\n";
  }
  yaml += "- rule: x\n  condition: m24\n  output: o\n  priority: info\n";
  auto set = RuleSet::LoadString(yaml, "big.yaml");
  ASSERT_FALSE(set.has_value());
  EXPECT_NE(set.error().message().find("expands to more than"), std::string::npos)
      << set.error().message();
}

// A connect to a Unix socket (the gates report its path and no address) is fd.typechar u, so
// a rule on IP connects (fd.typechar = 4) does not match glibc's connect to nscd's socket.
TEST(RulesTest, FdTypeTellsIpConnectsFromUnixSocketsAndFiles) {
  RuleSet set = MustLoad(R"Y(
- rule: IPv4 connect
  desc: x
  condition: evt.type = connect and fd.typechar = 4 and fd.type = ipv4
  output: x
  priority: info
- rule: IPv6 connect
  desc: x
  condition: evt.type = connect and fd.typechar = 6 and fd.type = ipv6
  output: x
  priority: info
- rule: Unix connect
  desc: x
  condition: evt.type = connect and fd.typechar = u and fd.type = unix
  output: x
  priority: info
- rule: File
  desc: x
  condition: fd.typechar = f and fd.type = file
  output: x
  priority: info
)Y");
  core::Event e;
  e.kind = core::EventKind::kNetConnect;
  e.proc = {.pid = 300, .comm = "bash", .exe = "/usr/bin/bash"};
  EvalInput in{.event = &e};
  e.net.daddr = "127.0.0.1";
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"IPv4 connect"});
  e.net.daddr = "::1";
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"IPv6 connect"});
  e.net.daddr.clear();
  e.path = "/var/run/nscd/socket";
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"Unix connect"});
  core::Event open = Open("cat", "/etc/hosts");
  in.event = &open;
  EXPECT_EQ(Fired(set, in), std::vector<std::string>{"File"});
}

#ifdef VIGIL_SHARED_DIR
TEST(RulesTest, FalcoStableRulesLoadAndTheUnsupportedAreListed) {
  const std::string path = std::string(VIGIL_SHARED_DIR) + "/fixtures/falco/falco_rules.yaml";
  auto set = RuleSet::LoadFiles({path});
  ASSERT_TRUE(set.has_value()) << set.error().message();
  EXPECT_EQ(set->rules().size(), 25u);
  size_t by_loader = 0;
  for (const Rule& r : set->rules()) {
    if (!r.enabled && !r.disabled_reason.empty()) {
      ++by_loader;
      bool warned = false;
      for (const LoadWarning& w : set->warnings()) warned |= w.rule == r.name && w.line == r.line;
      EXPECT_TRUE(warned) << r.name;
    }
  }
  EXPECT_GT(set->enabled_count(), 0u);
  EXPECT_EQ(set->enabled_count() + by_loader, set->rules().size());
}
#endif

}  // namespace
}  // namespace vigil::policy
