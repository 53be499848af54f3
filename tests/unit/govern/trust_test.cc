#include "govern/trust.h"

#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "../sensor/temp_dir.h"
#include "govern/keys.h"

namespace vigil::govern {
namespace {

using sensor::testing::TempDir;

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = InitKeys(tmp_.path().string() + "/keys", false);
    ASSERT_TRUE(pair.has_value()) << pair.error().message();
    pair_ = *pair;
    model_ = tmp_.Write("model.vgm", "model bytes");
  }
  TempDir tmp_;
  KeyPair pair_;
  std::string model_;
};

TEST_F(TrustTest, SignedByATrustedKeyIsTrusted) {
  auto sig = SignArtifact(model_, "model bytes", pair_.secret_key, "extra", 1700000000);
  ASSERT_TRUE(sig.has_value()) << sig.error().message();
  EXPECT_NE(sig->trusted_comment.find("\tfile:model.vgm\tsha256:"), std::string::npos);
  auto keys = LoadTrustedKeys({tmp_.path().string() + "/keys/vigil.pub"});
  ASSERT_TRUE(keys.has_value()) << keys.error().message();
  const TrustCheck c = CheckSignedArtifact(model_, *keys);
  EXPECT_TRUE(c.trusted) << c.reason;
  EXPECT_EQ(c.outcome, "valid");
  EXPECT_EQ(c.key_id, KeyIdHex(pair_.public_key.key_id));
}

TEST_F(TrustTest, UnsignedAlteredAndUnknownKeyAreRefusedWithTheReason) {
  const std::vector<PublicKey> trusted = {pair_.public_key};
  TrustCheck c = CheckSignedArtifact(model_, trusted);
  EXPECT_FALSE(c.trusted);
  EXPECT_EQ(c.outcome, "unsigned");
  EXPECT_EQ(c.reason, model_ + " is not signed (no " + model_ + ".minisig)");

  ASSERT_TRUE(SignArtifact(model_, "model bytes", pair_.secret_key, "", 1).has_value());
  tmp_.Write("model.vgm", "model bytez");
  c = CheckSignedArtifact(model_, trusted);
  EXPECT_EQ(c.outcome, "altered");
  EXPECT_NE(c.reason.find(model_), std::string::npos);

  const KeyPair other = GenerateKeyPair();
  ASSERT_TRUE(SignArtifact(model_, "model bytez", other.secret_key, "", 1).has_value());
  c = CheckSignedArtifact(model_, trusted);
  EXPECT_EQ(c.outcome, "unknown-key");
  EXPECT_EQ(c.reason, model_ + " is signed by key " + KeyIdHex(other.public_key.key_id) +
                          ", which is not a trusted key");

  tmp_.Write("model.vgm.minisig", "garbage\n");
  EXPECT_EQ(CheckSignedArtifact(model_, trusted).outcome, "bad-signature-file");
  EXPECT_EQ(CheckSignedArtifact(tmp_.path().string() + "/missing.vgm", trusted).outcome,
            "unreadable");
}

TEST_F(TrustTest, SeveralArtifactsStopAtTheFirstUntrustedOne) {
  const std::vector<PublicKey> trusted = {pair_.public_key};
  const std::string rules = tmp_.Write("rules.yaml", "- list: a\n  items: [b]\n");
  ASSERT_TRUE(SignArtifact(model_, "model bytes", pair_.secret_key, "", 1).has_value());
  TrustChecks all = CheckSignedArtifacts({model_, rules, model_}, trusted);
  EXPECT_FALSE(all.trusted);
  EXPECT_EQ(all.path, rules);
  EXPECT_EQ(all.first.outcome, "unsigned");
  EXPECT_EQ(all.checked, (std::vector<std::string>{model_, rules}));

  ASSERT_TRUE(SignArtifact(rules, "- list: a\n  items: [b]\n", pair_.secret_key, "", 1)
                  .has_value());
  all = CheckSignedArtifacts({model_, rules, model_}, trusted);
  EXPECT_TRUE(all.trusted) << all.first.reason;
  EXPECT_TRUE(all.path.empty());
  EXPECT_EQ(all.checked.size(), 2u);
  EXPECT_TRUE(CheckSignedArtifacts({}, trusted).trusted);

  // With the bytes the caller loaded, those are checked, not the file as it is now.
  const std::string loaded = "- list: a\n  items: [evil]\n";
  all = CheckSignedArtifacts({model_, rules}, trusted, [&](const std::string& path) {
    return path == rules ? &loaded : nullptr;
  });
  EXPECT_FALSE(all.trusted);
  EXPECT_EQ(all.path, rules);
  EXPECT_EQ(all.first.outcome, "altered");
}

TEST_F(TrustTest, TrustedKeysMustAllLoad) {
  auto keys = LoadTrustedKeys({tmp_.path().string() + "/keys/vigil.pub",
                               tmp_.path().string() + "/nope.pub"});
  ASSERT_FALSE(keys.has_value());
  EXPECT_NE(keys.error().message().find("trusted_keys"), std::string::npos);
  EXPECT_NE(keys.error().message().find("nope.pub"), std::string::npos);
  EXPECT_FALSE(LoadTrustedKeys({}).has_value());
}

TEST(HostKeyTest, LoadOrCreateMakesAMinisignPairAndRefusesLooseModes) {
  TempDir tmp;
  const std::string path = tmp.path().string() + "/k/vigil.key";
  auto made = LoadOrCreateSecretKey(path);
  ASSERT_TRUE(made.has_value()) << made.error().message();
  EXPECT_EQ(PublicKeyPathFor(path), tmp.path().string() + "/k/vigil.pub");
  auto pub = LoadPublicKey(PublicKeyPathFor(path));
  ASSERT_TRUE(pub.has_value()) << pub.error().message();
  EXPECT_EQ(pub->key_id, made->key_id);
  auto again = LoadOrCreateSecretKey(path);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->key, made->key);
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto loose = LoadOrCreateSecretKey(path);
  ASSERT_FALSE(loose.has_value());
  EXPECT_EQ(loose.error().code(), core::StatusCode::kPermissionDenied);
  EXPECT_EQ(PublicKeyPathFor("/x/audit"), "/x/audit.pub");
}

}  // namespace
}  // namespace vigil::govern
