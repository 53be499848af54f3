#include "agent/policy_input.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "enrich/process_tree.h"
#include "policy/rules.h"

namespace vigil::agent {
namespace {

namespace fs = std::filesystem;

// A tree filled by events only (an empty /proc, no reads at exec), as replayed streams use it.
class EvalInputCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("vigil-policy-input-" + std::to_string(::getpid()));
    fs::create_directories(root_);
    tree_ = MakeTree();
    Exec(*tree_, 100, "/usr/bin/bash", {"bash", "-l"});
    tree_->OnFork(100, 200, enrich::kUnknownTime);
    Exec(*tree_, 200, "/usr/bin/cat", {"cat", "/etc/shadow"});
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<enrich::ProcessTree> MakeTree() {
    enrich::ProcessTreeOptions o;
    o.proc_root = root_.string();
    o.read_proc_on_exec = false;
    o.clock_ticks_per_second = 100;
    auto t = enrich::ProcessTree::Create(o, &clock_);
    EXPECT_TRUE(t.has_value());
    return std::move(t).value();
  }
  static void Exec(enrich::ProcessTree& t, uint32_t pid, const std::string& exe,
                   const std::vector<std::string>& argv) {
    t.OnExec(pid, exe, argv, 1000, fs::path(exe).filename().string(), 0);
  }
  static core::Event EventOf(uint32_t pid) {
    core::Event e;
    e.proc.pid = pid;
    e.proc.tid = pid;
    return e;
  }
  // What BuildEvalInput gives now, to compare the cached input with.
  policy::EvalInput Fresh(const core::Event& e) const {
    policy::EvalInput in;
    BuildEvalInput(*tree_, e, kOffset, &in);
    return in;
  }
  static void ExpectSame(const policy::EvalInput& a, const policy::EvalInput& b) {
    EXPECT_EQ(a.event, b.event);
    EXPECT_EQ(a.argv, b.argv);
    EXPECT_EQ(a.user_name, b.user_name);
    EXPECT_EQ(a.container_id, b.container_id);
    ASSERT_EQ(a.ancestors.size(), b.ancestors.size());
    for (size_t i = 0; i < a.ancestors.size(); ++i) {
      EXPECT_EQ(a.ancestors[i].exe, b.ancestors[i].exe);
      EXPECT_EQ(a.ancestors[i].argv, b.ancestors[i].argv);
    }
  }

  static constexpr int64_t kOffset = 1'700'000'000'000'000'000;
  fs::path root_;
  core::FakeClock clock_;
  std::unique_ptr<enrich::ProcessTree> tree_;
};

TEST_F(EvalInputCacheTest, ReusesTheInputForTheSameProcessWhileTheTreeHoldsStill) {
  EvalInputCache cache;
  const core::Event first = EventOf(200);
  policy::EvalInput& a = cache.Build(*tree_, first, kOffset);
  EXPECT_EQ(a.argv, (std::vector<std::string>{"cat", "/etc/shadow"}));
  ASSERT_EQ(a.ancestors.size(), 1u);
  EXPECT_EQ(a.ancestors[0].exe, "/usr/bin/bash");
  ExpectSame(a, Fresh(first));
  EXPECT_EQ(cache.misses(), 1u);

  core::Verdict v;
  a.verdict = &v;  // the caller sets one; the next event must not inherit it
  const core::Event second = EventOf(200);
  policy::EvalInput& b = cache.Build(*tree_, second, kOffset);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(b.event, &second);
  EXPECT_EQ(b.verdict, nullptr);
  ExpectSame(b, Fresh(second));
}

TEST_F(EvalInputCacheTest, RebuildsAfterAnExecAnotherProcessOrAnyTreeChange) {
  EvalInputCache cache;
  const core::Event e = EventOf(200);
  cache.Build(*tree_, e, kOffset);

  Exec(*tree_, 200, "/usr/bin/vi", {"vi", "notes"});  // the same pid becomes another program
  policy::EvalInput& after_exec = cache.Build(*tree_, e, kOffset);
  EXPECT_EQ(after_exec.argv, (std::vector<std::string>{"vi", "notes"}));
  ExpectSame(after_exec, Fresh(e));

  const core::Event parent = EventOf(100);
  ExpectSame(cache.Build(*tree_, parent, kOffset), Fresh(parent));
  ExpectSame(cache.Build(*tree_, e, kOffset), Fresh(e));  // one entry: back to 200 rebuilds
  EXPECT_EQ(cache.misses(), 4u);

  // A change elsewhere (bash forks and its parent exits) may change what 200's ancestors are.
  tree_->OnFork(100, 300, enrich::kUnknownTime);
  ExpectSame(cache.Build(*tree_, e, kOffset), Fresh(e));
  tree_->OnExit(100, 5);
  ExpectSame(cache.Build(*tree_, e, kOffset), Fresh(e));
  EXPECT_EQ(cache.misses(), 6u);
  EXPECT_EQ(cache.hits(), 0u);
}

TEST_F(EvalInputCacheTest, AnotherTreeNeverHitsTheCache) {
  EvalInputCache cache;
  const core::Event e = EventOf(200);
  cache.Build(*tree_, e, kOffset);
  std::unique_ptr<enrich::ProcessTree> other = MakeTree();
  EXPECT_NE(other->generation(), tree_->generation());
  Exec(*other, 200, "/usr/bin/ls", {"ls"});
  policy::EvalInput& in = cache.Build(*other, e, kOffset);
  EXPECT_EQ(in.argv, (std::vector<std::string>{"ls"}));
  EXPECT_TRUE(in.ancestors.empty());
  EXPECT_EQ(cache.misses(), 2u);
}

// The rules' per-process memo lives next to the cached input: when the input is rebuilt (the
// process exec'd another program), what the memo held about the old one must not be reused.
TEST_F(EvalInputCacheTest, TheRulesMemoIsForgottenWhenTheInputIsRebuilt) {
  auto rules = policy::RuleSet::LoadString(R"Y(
- rule: reads a secret
  desc: d
  condition: evt.type = openat and proc.args contains secret and fd.name startswith /etc/
  output: "%proc.args"
  priority: WARNING
)Y",
                                           "memo.yaml");
  ASSERT_TRUE(rules.has_value()) << rules.error().message();
  ASSERT_GT(rules->MemoizedParts(), 0u);
  EvalInputCache cache;
  core::Event open = EventOf(200);
  open.kind = core::EventKind::kFileOpen;
  open.path = "/etc/hosts";
  auto fires = [&] {
    policy::EvalInput& in = cache.Build(*tree_, open, kOffset);
    return rules->Evaluate(in, &cache.memo()).size() == 1;
  };
  EXPECT_FALSE(fires());  // cat /etc/shadow: no "secret" in its arguments
  EXPECT_FALSE(fires());
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.memo().reused(), 1u);
  Exec(*tree_, 200, "/usr/bin/cat", {"cat", "secret.txt"});  // same pid, comm and exe
  EXPECT_TRUE(fires());
  EXPECT_EQ(cache.misses(), 2u);
}

}  // namespace
}  // namespace vigil::agent
