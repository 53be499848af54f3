#include "policy/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "policy/decision_json.h"

namespace vigil::policy {
namespace {

namespace fs = std::filesystem;

constexpr char kRules[] = R"(
- rule: Shell from tmp
  desc: d
  condition: evt.type = execve and proc.exepath startswith /tmp/
  output: shell %proc.name
  priority: WARNING
  action: {type: kill, mode: enforce, fallback: deny}
- rule: Any exec
  desc: d
  condition: evt.type = execve
  output: exec %proc.name
  priority: NOTICE
- rule: Freeze tmp (monitor only)
  desc: d
  condition: evt.type = execve and proc.exepath startswith /tmp/
  output: freeze %proc.name
  priority: NOTICE
  action: {type: freeze, mode: monitor}
)";

class PolicyEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vigil_engine_test_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  static core::Event Exec(const std::string& exe) {
    core::Event e;
    e.kind = core::EventKind::kProcessExec;
    e.seq = 7;
    e.proc.pid = 4242;
    e.proc.tid = 4242;
    e.proc.comm = fs::path(exe).filename().string();
    e.proc.exe = exe;
    e.path = exe;
    e.cgroup_id = 99;
    return e;
  }
  static std::unique_ptr<PolicyEngine> LoadOrDie(const std::string& path) {
    PolicyOptions o;
    o.files = {path};
    auto engine = PolicyEngine::Create(o);
    EXPECT_TRUE(engine.has_value()) << engine.error().message();
    return engine.has_value() ? std::move(engine).value() : nullptr;
  }
  // A policy in enforce mode at the enforce-all stage.
  static core::Result<std::unique_ptr<PolicyEngine>> EnforcingEngine(const std::string& path) {
    PolicyOptions o;
    o.files = {path};
    o.mode = Mode::kEnforce;
    o.stage = RolloutStage::kEnforceAll;
    return PolicyEngine::Create(o);
  }
  fs::path dir_;
};

TEST_F(PolicyEngineTest, MonitorModeRecordsWouldEnforce) {
  PolicyOptions o;
  o.files = {Write("r.yaml", kRules)};
  auto engine = PolicyEngine::Create(o);
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  core::Event e = Exec("/tmp/x");
  EvalInput in;
  in.event = &e;
  in.cgroup = "/user.slice";
  Decision d = (*engine)->Decide(&in);
  ASSERT_EQ(d.hits.size(), 3u);
  EXPECT_EQ(d.action, core::Action::kKill);  // the strongest hit
  EXPECT_EQ(d.rule, "Shell from tmp");
  EXPECT_EQ(d.mode, Mode::kMonitor);  // the policy is in monitor mode
  EXPECT_TRUE(d.would_enforce);
  EXPECT_FALSE(d.enforce());
  EXPECT_EQ(d.fallback, Fallback::kDeny);
  EXPECT_EQ(d.stage, RolloutStage::kMonitor);
  EXPECT_EQ(d.asset_class, AssetClass::kStandard);
  EXPECT_EQ(in.asset_class, "standard");
  EXPECT_EQ(d.target.pid, 4242u);
  EXPECT_EQ(d.target.cgroup_id, 99u);
  EXPECT_EQ(d.target.cgroup, "/user.slice");
  EXPECT_EQ(d.policy_generation, 1u);
  EXPECT_TRUE(d.policy_version.starts_with("sha256:")) << d.policy_version;
  EXPECT_EQ(d.hits[1].action, core::Action::kAlert);
  EXPECT_EQ(d.hits[1].fallback, Fallback::kAlert);  // the standard class's default
  EXPECT_EQ((*engine)->counts().would_enforce, 1u);
  EXPECT_EQ((*engine)->counts().enforce, 0u);

  core::Event other = Exec("/usr/bin/ls");
  in.event = &other;
  d = (*engine)->Decide(&in);
  ASSERT_EQ(d.hits.size(), 1u);
  EXPECT_EQ(d.action, core::Action::kAlert);
  EXPECT_FALSE(d.would_enforce);
  EXPECT_EQ((*engine)->counts().decisions, 2u);
  EXPECT_EQ((*engine)->counts().matched, 2u);
}

TEST_F(PolicyEngineTest, HeldBackEnforcementDecidesAsMonitorUntilAllowed) {
  auto engine = EnforcingEngine(Write("r.yaml", kRules));
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  core::Event e = Exec("/tmp/x");
  EvalInput in;
  in.event = &e;
  (*engine)->SetEnforcementAllowed(false);  // e.g. the agent still learning
  Decision held = (*engine)->Decide(&in);
  EXPECT_EQ(held.action, core::Action::kKill);
  EXPECT_EQ(held.mode, Mode::kMonitor);
  EXPECT_TRUE(held.would_enforce);
  EXPECT_FALSE(held.enforce());
  EXPECT_EQ(held.policy_mode, Mode::kEnforce);  // the policy's own mode is still recorded
  EXPECT_EQ((*engine)->counts().would_enforce, 1u);
  EXPECT_EQ((*engine)->counts().enforce, 0u);
  (*engine)->SetEnforcementAllowed(true);
  Decision d = (*engine)->Decide(&in);
  EXPECT_EQ(d.mode, Mode::kEnforce);
  EXPECT_TRUE(d.enforce());
  EXPECT_FALSE(d.would_enforce);
  EXPECT_EQ((*engine)->counts().enforce, 1u);
}

TEST_F(PolicyEngineTest, EscalateCarriesTheRulesProposedActionAndTimeout) {
  auto engine = EnforcingEngine(Write("r.yaml", R"(
- rule: Ask
  desc: d
  condition: evt.type = execve
  output: ask %proc.name
  priority: WARNING
  action: {type: escalate, mode: enforce, fallback: deny, proposed: kill, timeout: 2m}
)"));
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  core::Event e = Exec("/usr/bin/ls");
  EvalInput in;
  in.event = &e;
  const Decision d = (*engine)->Decide(&in);
  EXPECT_EQ(d.action, core::Action::kEscalate);
  EXPECT_TRUE(d.enforce());
  EXPECT_EQ(d.proposed, core::Action::kKill);
  EXPECT_EQ(d.timeout_seconds, 120u);
  EXPECT_EQ(d.fallback, Fallback::kDeny);

  for (const char* bad : {"{type: kill, timeout: 2m}", "{type: escalate, timeout: 0s}",
                          "{type: escalate, timeout: soon}", "{type: escalate, proposed: deny}",
                          "{type: escalate, timeout: 31d}"}) {
    PolicyOptions b;
    b.files = {Write("bad.yaml", std::string("- rule: B\n  desc: d\n  condition: evt.type = "
                                             "execve\n  output: o\n  priority: INFO\n  "
                                             "action: ") + bad + "\n")};
    auto refused = PolicyEngine::Create(b);
    ASSERT_FALSE(refused.has_value()) << bad;
    EXPECT_NE(refused.error().message().find("bad.yaml:6:"), std::string::npos)
        << bad << ": " << refused.error().message();
  }
}

TEST_F(PolicyEngineTest, StagedRolloutDecidesByAssetClass) {
  const std::string rules = Write("r.yaml", kRules);
  for (auto [stage, cls, enforced] :
       std::vector<std::tuple<RolloutStage, AssetClass, bool>>{
           {RolloutStage::kMonitor, AssetClass::kNonCritical, false},
           {RolloutStage::kEnforceNonCritical, AssetClass::kNonCritical, true},
           {RolloutStage::kEnforceNonCritical, AssetClass::kCritical, false},
           {RolloutStage::kEnforceNonCritical, AssetClass::kStandard, false},
           {RolloutStage::kEnforceAll, AssetClass::kCritical, true}}) {
    PolicyOptions o;
    o.files = {rules};
    o.mode = Mode::kEnforce;
    o.stage = stage;
    o.assets = {{cls, {"x"}, {}, {}, {}}};
    auto engine = PolicyEngine::Create(o);
    ASSERT_TRUE(engine.has_value());
    core::Event e = Exec("/tmp/x");
    EvalInput in;
    in.event = &e;
    Decision d = (*engine)->Decide(&in);
    SCOPED_TRACE(std::string(StageName(stage)) + " " + std::string(AssetClassName(cls)));
    EXPECT_EQ(d.asset_class, cls);
    EXPECT_EQ(d.stage, stage);
    EXPECT_EQ(d.enforce(), enforced);
    EXPECT_EQ(d.would_enforce, !enforced);
    EXPECT_EQ(d.action, core::Action::kKill);
    // The freeze rule says mode: monitor, so it never enforces, whatever the stage.
    EXPECT_EQ(d.hits[2].mode, Mode::kMonitor);
  }
}

TEST_F(PolicyEngineTest, EnforcingHitWinsOverStrongerMonitorHit) {
  PolicyOptions o;
  o.files = {Write("r.yaml", R"(
- rule: Deny it
  desc: d
  condition: evt.type = execve
  output: o
  priority: WARNING
  action: {type: deny}
- rule: Kill it (monitor)
  desc: d
  condition: evt.type = execve
  output: o
  priority: WARNING
  action: {type: kill, mode: monitor}
)")};
  o.mode = Mode::kEnforce;
  o.stage = RolloutStage::kEnforceAll;
  o.default_class = AssetClass::kCritical;
  auto engine = PolicyEngine::Create(o);
  ASSERT_TRUE(engine.has_value());
  core::Event e = Exec("/bin/true");
  EvalInput in;
  in.event = &e;
  Decision d = (*engine)->Decide(&in);
  EXPECT_EQ(d.action, core::Action::kDeny);
  EXPECT_TRUE(d.enforce());
  EXPECT_EQ(d.fallback, Fallback::kDeny);  // critical class default
  EXPECT_EQ(d.hits[1].mode, Mode::kMonitor);
}

TEST_F(PolicyEngineTest, BundleManifestSetsVersionModeAndStage) {
  Write("base.yaml", kRules);
  const std::string manifest = Write("bundle.yaml", R"(
version: "2026.11.26-1"
mode: enforce
stage: enforce-all
rules: [base.yaml]
)");
  PolicyOptions o;
  o.files = {manifest};
  auto engine = PolicyEngine::Create(o);
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  auto snap = (*engine)->Current();
  EXPECT_EQ(snap->version, "2026.11.26-1");
  EXPECT_EQ(snap->mode, Mode::kEnforce);
  EXPECT_EQ(snap->stage, RolloutStage::kEnforceAll);
  core::Event e = Exec("/tmp/x");
  EvalInput in;
  in.event = &e;
  EXPECT_TRUE((*engine)->Decide(&in).enforce());
}

TEST_F(PolicyEngineTest, BadManifestNamesFileAndLine) {
  const std::string manifest = Write("bundle.yaml", "version: v1\nstage: sideways\nrules: [a.yaml]\n");
  PolicyOptions o;
  o.files = {manifest};
  auto engine = PolicyEngine::Create(o);
  ASSERT_FALSE(engine.has_value());
  EXPECT_NE(engine.error().message().find(manifest + ":2:8: stage"), std::string::npos)
      << engine.error().message();
}

TEST_F(PolicyEngineTest, MalformedReloadKeepsPreviousPolicy) {
  const std::string path = Write("r.yaml", kRules);
  std::unique_ptr<PolicyEngine> created = LoadOrDie(path);
  PolicyEngine& engine = *created;
  const std::string v1 = engine.Current()->version;

  Write("r.yaml", "- rule: Broken\n  desc: d\n  condition: evt.type = = execve\n  output: o\n"
                  "  priority: WARNING\n");
  core::Status s = engine.Reload();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path + ":3:"), std::string::npos) << s.message();
  EXPECT_EQ(engine.Current()->version, v1);
  EXPECT_EQ(engine.Current()->generation, 1u);
  core::Event e = Exec("/tmp/x");
  EvalInput in;
  in.event = &e;
  EXPECT_EQ(engine.Decide(&in).hits.size(), 3u);  // the old rules still decide
  EXPECT_EQ(engine.counts().reload_failures, 1u);

  Write("r.yaml", "- this is: [not closed\n");
  s = engine.Reload();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path + ":"), std::string::npos) << s.message();

  Write("r.yaml", "- rule: Only\n  desc: d\n  condition: evt.type = execve\n  output: o\n"
                  "  priority: WARNING\n");
  ASSERT_TRUE(engine.Reload().ok());
  EXPECT_EQ(engine.Current()->generation, 2u);
  EXPECT_NE(engine.Current()->version, v1);
  Decision d = engine.Decide(&in);
  EXPECT_EQ(d.hits.size(), 1u);
  EXPECT_EQ(d.policy_generation, 2u);
  EXPECT_EQ(engine.counts().reloads, 1u);
}

TEST_F(PolicyEngineTest, ReloadWhileDecidingOnOtherThreads) {
  const std::string path = Write("r.yaml", kRules);
  std::unique_ptr<PolicyEngine> created = LoadOrDie(path);
  PolicyEngine& engine = *created;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0};
  std::thread reader([&] {
    core::Event e = Exec("/tmp/x");
    while (!stop.load()) {
      EvalInput in;
      in.event = &e;
      Decision d = engine.Decide(&in);
      // Either policy is whole: three hits from the first, one from the second.
      if (d.hits.size() != 3 && d.hits.size() != 1) bad.fetch_add(1);
    }
  });
  for (int i = 0; i < 20; ++i) {
    Write("r.yaml", i % 2 == 0 ? "- rule: Only\n  desc: d\n  condition: evt.type = execve\n"
                                 "  output: o\n  priority: WARNING\n"
                               : std::string(kRules));
    ASSERT_TRUE(engine.Reload().ok());
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(engine.Current()->generation, 21u);
}

TEST_F(PolicyEngineTest, EmbeddedRulesAndRegistryMetrics) {
  core::Registry registry;
  PolicyOptions o;
  o.embedded_yaml = kRules;
  o.embedded_name = "<default>";
  auto engine = PolicyEngine::Create(o, &registry);
  ASSERT_TRUE(engine.has_value());
  core::Event e = Exec("/tmp/x");
  EvalInput in;
  in.event = &e;
  (*engine)->Decide(&in);
  const std::string text = registry.ExpositionText();
  EXPECT_NE(text.find("vigil_policy_would_enforce_total{rule=\"Shell from tmp\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_policy_would_enforce_total{rule=\"Freeze tmp (monitor only)\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("vigil_policy_decisions_total 1"), std::string::npos);
}

TEST(PolicyNamesTest, RoundTrip) {
  for (auto s : {RolloutStage::kMonitor, RolloutStage::kEnforceNonCritical, RolloutStage::kEnforceAll}) {
    RolloutStage back;
    ASSERT_TRUE(ParseStage(StageName(s), &back));
    EXPECT_EQ(back, s);
  }
  AssetClass c;
  EXPECT_TRUE(ParseAssetClass("non-critical", &c));
  EXPECT_EQ(c, AssetClass::kNonCritical);
  EXPECT_FALSE(ParseAssetClass("vital", &c));
  EXPECT_GT(ActionStrength(core::Action::kKill), ActionStrength(core::Action::kDeny));
}

// A matched decision carries every string of the event and the policy (the audit record, the
// alert line and the OCSF finding are built from them); an unmatched one carries the numbers
// and enums but leaves the strings empty (decision.h: they are built only once a rule matched).
TEST_F(PolicyEngineTest, StringsAreFilledExactlyWhenARuleMatched) {
  auto engine = LoadOrDie(Write("r.yaml", R"(
- rule: Tmp exec
  desc: d
  condition: evt.type = execve and proc.exepath startswith /tmp/
  output: exec %proc.exepath in %container.id
  priority: WARNING
)"));
  ASSERT_NE(engine, nullptr);
  core::Verdict v;
  v.score = 0.75;
  v.model_name = "per-program-sequence-model";
  core::Event e = Exec("/tmp/a-rather-long-program-name");
  e.time_ns = 1234;
  e.proc.ppid = 17;
  e.net.daddr = "192.168.100.200";  // not a connect: carried as the sensor wrote it
  e.net.dport = 8080;
  EvalInput in;
  in.event = &e;
  in.verdict = &v;
  in.cgroup = "/system.slice/a-long-service-name.service";
  in.container_id = "0123456789abcdef0123";

  Decision d = engine->Decide(&in);
  ASSERT_TRUE(d.matched());
  EXPECT_EQ(d.rule, "Tmp exec");
  EXPECT_EQ(d.output, "exec /tmp/a-rather-long-program-name in 0123456789abcdef0123");
  EXPECT_EQ(d.target.pid, 4242u);
  EXPECT_EQ(d.target.ppid, 17u);
  EXPECT_EQ(d.target.cgroup_id, 99u);
  EXPECT_EQ(d.target.cgroup, "/system.slice/a-long-service-name.service");
  EXPECT_EQ(d.target.container_id, "0123456789abcdef0123");
  EXPECT_EQ(d.target.comm, "a-rather-long-program-name");
  EXPECT_EQ(d.target.exe, "/tmp/a-rather-long-program-name");
  EXPECT_EQ(d.dst_ip, "192.168.100.200");
  EXPECT_EQ(d.dst_port, 8080);
  EXPECT_EQ(d.ml_model, "per-program-sequence-model");
  EXPECT_TRUE(d.has_verdict);
  EXPECT_DOUBLE_EQ(d.ml_score, 0.75);
  EXPECT_EQ(d.policy_version, engine->Current()->version);
  EXPECT_FALSE(d.policy_version.empty());
  EXPECT_EQ(in.asset_class, "standard");

  core::Event other = e;
  other.proc.exe = "/usr/bin/a-rather-long-program-name";
  other.path = other.proc.exe;
  in.event = &other;
  in.asset_class = "left over";  // the engine sets it whatever it held
  d = engine->Decide(&in);
  ASSERT_FALSE(d.matched());
  EXPECT_EQ(d.action, core::Action::kAllow);
  EXPECT_EQ(in.asset_class, "standard");
  EXPECT_EQ(d.asset_class, AssetClass::kStandard);
  EXPECT_EQ(d.policy_generation, 1u);
  EXPECT_EQ(d.event_seq, 7u);
  EXPECT_EQ(d.time_ns, 1234);
  EXPECT_EQ(d.target.pid, 4242u);
  EXPECT_EQ(d.target.ppid, 17u);
  EXPECT_EQ(d.target.cgroup_id, 99u);
  EXPECT_EQ(d.dst_port, 8080);
  EXPECT_TRUE(d.has_verdict);
  EXPECT_DOUBLE_EQ(d.ml_score, 0.75);
  EXPECT_EQ(d.rule, "");
  EXPECT_EQ(d.output, "");
  EXPECT_EQ(d.target.cgroup, "");
  EXPECT_EQ(d.target.container_id, "");
  EXPECT_EQ(d.target.comm, "");
  EXPECT_EQ(d.target.exe, "");
  EXPECT_EQ(d.dst_ip, "");
  EXPECT_EQ(d.ml_model, "");
  EXPECT_EQ(d.policy_version, "");
  EXPECT_EQ(engine->counts().decisions, 2u);
  EXPECT_EQ(engine->counts().matched, 1u);
}

// A decision about a connect carries the destination into its OCSF finding (dst_endpoint), which
// the hub's chain correlation reads; an address that does not parse is left out (the hub would
// refuse the finding).
TEST_F(PolicyEngineTest, ConnectDecisionCarriesTheDestination) {
  auto engine = LoadOrDie(Write("r.yaml", R"(
- rule: Outbound connect
  desc: d
  condition: evt.type = connect
  output: connect %fd.sip
  priority: WARNING
)"));
  ASSERT_NE(engine, nullptr);
  core::Event e = Exec("/usr/bin/curl");
  e.kind = core::EventKind::kNetConnect;
  e.path.clear();
  e.net.daddr = "10.1.2.3";
  e.net.dport = 8443;
  e.net.protocol = 6;
  EvalInput in;
  in.event = &e;
  Decision d = engine->Decide(&in);
  ASSERT_TRUE(d.matched());
  EXPECT_EQ(d.dst_ip, "10.1.2.3");
  EXPECT_EQ(d.dst_port, 8443);
  auto j = nlohmann::json::parse(DecisionToOcsfJson(d, "web-1"));
  ASSERT_TRUE(j.contains("dst_endpoint")) << j.dump();
  EXPECT_EQ(j["dst_endpoint"]["ip"], "10.1.2.3");
  EXPECT_EQ(j["dst_endpoint"]["port"], 8443);

  d.dst_ip = "not-an-address";
  EXPECT_FALSE(nlohmann::json::parse(DecisionToOcsfJson(d, "web-1")).contains("dst_endpoint"));
  core::Event x = Exec("/bin/sh");
  in.event = &x;
  EXPECT_FALSE(nlohmann::json::parse(DecisionToOcsfJson(engine->Decide(&in), "web-1"))
                   .contains("dst_endpoint"));
}

}  // namespace
}  // namespace vigil::policy
