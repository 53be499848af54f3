// Enforce mode's signature check must judge the bytes that were loaded. A file swapped between
// the read that loads it and the read that checks it would otherwise pass with bytes other than
// the ones enforcing: here the read that loads the rules swaps a signed file into place right
// after it was served, as an attacker racing the agent would.

#include "apps/vigil/artifact_trust.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "../sensor/temp_dir.h"
#include "core/files.h"
#include "govern/keys.h"
#include "govern/trust.h"
#include "policy/engine.h"

namespace vigil::app {
namespace {

using sensor::testing::TempDir;

constexpr std::string_view kSigned = R"Y(
- rule: Shell started
  desc: a shell
  condition: evt.type in (execve) and proc.name in (bash, sh)
  output: "shell %proc.name"
  priority: WARNING
)Y";
// What the attacker wants loaded: no rule at all.
constexpr std::string_view kSwapped = R"Y(
- rule: Nothing
  desc: never fires
  condition: evt.type in (execve) and proc.name in (no-such-program)
  output: "nothing"
  priority: WARNING
)Y";

class ArtifactTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = govern::InitKeys(tmp_.path().string() + "/keys", false);
    ASSERT_TRUE(pair.has_value()) << pair.error().message();
    keys_ = {tmp_.path().string() + "/keys/vigil.pub"};
    // The signed rules wait next door; the path holds the attacker's file.
    signed_ = tmp_.Write("staging/rules.yaml", std::string(kSigned));
    rules_ = tmp_.Write("rules.yaml", std::string(kSwapped));
    auto sig = govern::SignArtifact(rules_, kSigned, pair->secret_key, "", 1700000000);
    ASSERT_TRUE(sig.has_value()) << sig.error().message();
  }

  // Reads a file, then (once) renames the signed rules over it.
  ArtifactFiles SwappingFiles() {
    return ArtifactFiles([this](const std::string& path, uint64_t max_bytes) {
      auto bytes = core::ReadFile(path, max_bytes);
      ++reads_;
      if (path == rules_ && !swapped_) {
        std::filesystem::rename(signed_, rules_);
        swapped_ = true;
      }
      return bytes;
    });
  }

  TempDir tmp_;
  std::vector<std::string> keys_;
  std::string signed_, rules_;
  int reads_ = 0;
  bool swapped_ = false;
};

TEST_F(ArtifactTrustTest, RulesSwappedAfterLoadingAreRefused) {
  ArtifactFiles files = SwappingFiles();
  auto rules = LoadRulesOnce({rules_}, &files);
  ASSERT_TRUE(rules.has_value()) << rules.error().message();
  ASSERT_EQ(rules->rules().size(), 1u);
  EXPECT_EQ(rules->rules()[0].name, "Nothing");  // the attacker's rules were loaded
  ASSERT_TRUE(swapped_);
  // The path now holds the signed file; the check must still refuse what was loaded.
  EXPECT_TRUE(govern::CheckSignedArtifact(rules_, *govern::LoadTrustedKeys(keys_)).trusted);
  const std::string refusal = CheckEnforceArtifacts(keys_, {rules_}, {}, nullptr, &files);
  EXPECT_NE(refusal.find("policy altered"), std::string::npos) << refusal;
  EXPECT_EQ(reads_, 1);  // one read of the file: loading and checking used the same bytes
}

TEST_F(ArtifactTrustTest, SignedRulesLoadedOnceAreTrusted) {
  std::filesystem::rename(signed_, rules_);
  ArtifactFiles files;
  auto rules = LoadRulesOnce({rules_, rules_}, &files);
  ASSERT_TRUE(rules.has_value()) << rules.error().message();
  EXPECT_EQ(rules->rules()[0].name, "Shell started");
  ASSERT_NE(files.Find(rules_), nullptr);
  EXPECT_EQ(*files.Find(rules_), kSigned);
  EXPECT_EQ(CheckEnforceArtifacts(keys_, {rules_}, {}, nullptr, &files), "");
  // Without the bytes read, the check reads the path (the gateway's way).
  EXPECT_EQ(CheckEnforceArtifacts(keys_, {rules_}, {}, nullptr), "");
}

// The agent's policy engine reads its files itself: the snapshot keeps the bytes it parsed, and
// those are what enforce mode checks. Swapped after the engine read them, the signed file now on
// disk does not make the loaded rules trusted.
TEST_F(ArtifactTrustTest, PolicyEngineRulesSwappedAfterLoadingAreRefused) {
  policy::PolicyOptions po;
  po.files = {rules_};
  auto engine = policy::PolicyEngine::Create(po, nullptr);
  ASSERT_TRUE(engine.has_value()) << engine.error().message();
  const std::shared_ptr<const policy::PolicySnapshot> snap = (*engine)->Current();
  EXPECT_EQ(snap->rules.rules()[0].name, "Nothing");  // the attacker's rules were loaded
  ASSERT_EQ(snap->sources.size(), 1u);
  EXPECT_EQ(snap->sources[0].first, rules_);
  EXPECT_EQ(snap->sources[0].second, kSwapped);
  std::filesystem::rename(signed_, rules_);
  ArtifactFiles files;
  files.Keep(snap->sources);
  const std::string refusal = CheckEnforceArtifacts(keys_, snap->files, {}, nullptr, &files);
  EXPECT_NE(refusal.find("policy altered"), std::string::npos) << refusal;
  // (A second read would have passed the file now in place.)
  EXPECT_EQ(CheckEnforceArtifacts(keys_, snap->files, {}, nullptr), "");
  // Reloaded, the engine parses the signed file, and those bytes pass.
  ASSERT_TRUE((*engine)->Reload().ok());
  files = ArtifactFiles();
  files.Keep((*engine)->Current()->sources);
  EXPECT_EQ(CheckEnforceArtifacts(keys_, (*engine)->Current()->files, {}, nullptr, &files), "");
}

TEST_F(ArtifactTrustTest, UnreadableAndOversizedFilesAreErrorsNamingThem) {
  ArtifactFiles files;
  auto missing = LoadRulesOnce({tmp_.path().string() + "/missing.yaml"}, &files);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("missing.yaml"), std::string::npos);
  ASSERT_TRUE(files.Read(rules_, 1 << 20).has_value());
  auto big = files.Read(rules_, 4);  // read before with a larger limit: still refused
  ASSERT_FALSE(big.has_value());
  EXPECT_NE(big.error().message().find("rules.yaml"), std::string::npos);
  auto model = LoadModelOnce(rules_, &files);  // not a model file
  EXPECT_FALSE(model.has_value());
}

}  // namespace
}  // namespace vigil::app
