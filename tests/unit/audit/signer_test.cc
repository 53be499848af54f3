#include "audit/signer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "audit_test_util.h"

namespace vigil::audit {
namespace {

TEST(AuditSignerTest, SignsAndVerifies) {
  auto s = Ed25519Signer::Generate();
  const Signature sig = s->Sign("hello");
  EXPECT_TRUE(VerifySignature(s->public_key(), "hello", sig));
  EXPECT_FALSE(VerifySignature(s->public_key(), "hellO", sig));
  auto again = Ed25519Signer::FromSecretKey(s->secret_key(), s->public_key().id);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)->public_key().key, s->public_key().key);
  std::string bad(s->secret_key());
  bad[40] ^= 1;  // the public half no longer matches the seed
  EXPECT_FALSE(Ed25519Signer::FromSecretKey(bad, {}).has_value());
  EXPECT_FALSE(Ed25519Signer::FromSecretKey("short", {}).has_value());
}

TEST(AuditSignerTest, RawKeyIsCreatedOnceWithPrivateModeAndAPublicKeyFile) {
  testing::TempDir tmp;
  const std::string path = tmp.Join("keys/audit.key");
  auto first = LoadOrCreateRawKey(path);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 64);
  auto second = LoadOrCreateRawKey(path);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ((*second)->public_key().key, (*first)->public_key().key);
  EXPECT_EQ((*second)->public_key().id, (*first)->public_key().id);
  auto pub = LoadPublicKey(path + ".pub");
  ASSERT_TRUE(pub.has_value()) << pub.error().ToString();
  EXPECT_EQ(pub->key, (*first)->public_key().key);
  EXPECT_EQ(pub->id, (*first)->public_key().id);

  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto open_to_all = LoadOrCreateRawKey(path);
  ASSERT_FALSE(open_to_all.has_value());
  EXPECT_EQ(open_to_all.error().code(), core::StatusCode::kPermissionDenied);
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  testing::WriteFile(path, std::string(64, 'x'));
  auto corrupt = LoadOrCreateRawKey(path);
  ASSERT_FALSE(corrupt.has_value());
  EXPECT_EQ(corrupt.error().code(), core::StatusCode::kDataLoss);
}

TEST(AuditSignerTest, PublicKeyForms) {
  auto s = Ed25519Signer::Generate();
  const std::string file = MinisignPublicKeyFile(s->public_key(), "test");
  auto parsed = ParsePublicKey(file, "k.pub");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->key, s->public_key().key);
  EXPECT_EQ(parsed->id, s->public_key().id);
  const std::string line = file.substr(file.find('\n') + 1);
  auto bare = ParsePublicKey(line, "k.pub");
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->key, s->public_key().key);
  const auto& k = s->public_key().key;
  auto raw = ParsePublicKey(std::string(reinterpret_cast<const char*>(k.data()), 32), "raw");
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->key, k);

  for (const std::string& bad :
       {std::string("untrusted comment: x\n"), std::string("untrusted comment: x\n!!!\n"),
        std::string("untrusted comment: x\nRWQ=\n"), std::string("a\nb\nc\n"), std::string(""),
        file + "extra line\n"}) {
    auto r = ParsePublicKey(bad, "bad.pub");
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r.has_value()) {
      EXPECT_NE(r.error().message().find("bad.pub"), std::string::npos) << r.error().message();
    }
  }
  // An "Ed" blob with another algorithm tag.
  std::string other = line;
  other[1] = other[1] == 'W' ? 'X' : 'W';
  EXPECT_FALSE(ParsePublicKey(other, "alg.pub").has_value());
}

// The public key format is minisign's: a key made by Debian's minisign parses, with its id.
TEST(AuditSignerTest, ReadsAKeyMadeByMinisign) {
  if (std::system("command -v minisign >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "minisign is not installed (scripts/install-deps.sh installs it)";
  }
  testing::TempDir tmp;
  const std::string cmd = "minisign -G -W -p " + tmp.Join("m.pub") + " -s " + tmp.Join("m.key") +
                          " >" + tmp.Join("out.txt") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::ReadFile(tmp.Join("out.txt"));
  auto pub = LoadPublicKey(tmp.Join("m.pub"));
  ASSERT_TRUE(pub.has_value()) << pub.error().ToString();
  // minisign prints the id with %llX, so a leading zero nibble is dropped: compare numbers.
  const std::string text = testing::ReadFile(tmp.Join("m.pub"));
  const std::string comment = text.substr(0, text.find('\n'));
  const std::string printed = comment.substr(comment.rfind(' ') + 1);
  EXPECT_EQ(std::stoull(printed, nullptr, 16), std::stoull(KeyIdString(pub->id), nullptr, 16))
      << "minisign names the key id in the comment line: " << text;
}

}  // namespace
}  // namespace vigil::audit
