#include "govern/minisign.h"

#include <sodium.h>

#include <string>

#include <gtest/gtest.h>

namespace vigil::govern {
namespace {

// Made by Debian's minisign 0.11: `minisign -G -W`, then `minisign -S -m f` over "hello\n".
constexpr char kMinisignPub[] =
    "untrusted comment: minisign public key D04010F80B227890\n"
    "RWSQeCIL+BBA0NXDH9T/yAd0RGKxuDx5aoJrTzUtIvLN82SpdygtBMv1\n";
constexpr char kMinisignKey[] =
    "untrusted comment: minisign encrypted secret key\n"
    "RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAkHgiC/gQQNAlxOCMrnhqSSpelhWOvkmNgEXt5lVal0/03kqECqPcZtXDH9T/yAd0RGKxuDx5aoJrTzUtIvLN82SpdygtBMv1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
constexpr char kMinisignSig[] =
    "untrusted comment: signature from minisign secret key\n"
    "RUSQeCIL+BBA0BOgHPptWIGQXI77xEMbYFLQ9EpUEZpeYZ1Kzeq+Kp4sDBoPu7DwcX5djBcFokSpTGqJcMfKmeIMSI+Xa5mdOQI=\n"
    "trusted comment: timestamp:1795665917\tfile:f\thashed\n"
    "+EaRp8kwZuO4t5j9SbzJYRb31kBs/oMJfPskGdx4PrSbLuNJ/LGRqyHU7rGxzT0FAap+fk/F0oLvkckZdX3VDQ==\n";

std::string ErrorOf(const core::Status& s) { return s.message(); }

TEST(MinisignTest, VerifiesWhatMinisignSigned) {
  auto pub = ParsePublicKey(kMinisignPub, "k.pub");
  ASSERT_TRUE(pub.has_value()) << pub.error().message();
  EXPECT_EQ(KeyIdHex(pub->key_id), "D04010F80B227890");
  auto sig = ParseSignature(kMinisignSig, "f.minisig");
  ASSERT_TRUE(sig.has_value()) << sig.error().message();
  EXPECT_EQ(sig->algorithm, SignatureAlgorithm::kPrehashed);
  EXPECT_EQ(sig->trusted_comment, "timestamp:1795665917\tfile:f\thashed");
  EXPECT_EQ(Verify(*pub, *sig, "hello\n").outcome, VerifyOutcome::kValid);
  EXPECT_EQ(Verify(*pub, *sig, "hello!").outcome, VerifyOutcome::kBadSignature);
}

TEST(MinisignTest, ReadsMinisignUnencryptedSecretKeyWithZeroChecksum) {
  auto sec = ParseSecretKey(kMinisignKey, "k.key");
  ASSERT_TRUE(sec.has_value()) << sec.error().message();
  auto pub = ParsePublicKey(kMinisignPub, "k.pub");
  ASSERT_TRUE(pub.has_value());
  const PublicKey derived = PublicKeyOf(*sec);
  EXPECT_EQ(derived.key_id, pub->key_id);
  EXPECT_EQ(derived.key, pub->key);
  // Its public key file is byte for byte what minisign wrote.
  EXPECT_EQ(EncodePublicKey(derived), kMinisignPub);
}

TEST(MinisignTest, RoundTripsKeysAndSignatures) {
  const KeyPair pair = GenerateKeyPair();
  auto sec = ParseSecretKey(EncodeSecretKey(pair.secret_key), "vigil.key");
  ASSERT_TRUE(sec.has_value()) << sec.error().message();
  EXPECT_EQ(sec->key, pair.secret_key.key);
  auto pub = ParsePublicKey(EncodePublicKey(pair.public_key), "vigil.pub");
  ASSERT_TRUE(pub.has_value());
  const Signature s = Sign(*sec, "model bytes", "timestamp:1\tfile:m", "from vigil");
  auto parsed = ParseSignature(EncodeSignature(s), "m.minisig");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_EQ(parsed->trusted_comment, "timestamp:1\tfile:m");
  EXPECT_EQ(Verify(*pub, *parsed, "model bytes").outcome, VerifyOutcome::kValid);
}

TEST(MinisignTest, NamesEachWayVerificationFails) {
  const KeyPair a = GenerateKeyPair(), b = GenerateKeyPair();
  Signature s = Sign(a.secret_key, "data", "tc", "uc");
  EXPECT_EQ(Verify(a.public_key, s, "datA").outcome, VerifyOutcome::kBadSignature);
  const Verification other = Verify(b.public_key, s, "data");
  EXPECT_EQ(other.outcome, VerifyOutcome::kUnknownKey);
  EXPECT_NE(other.reason.find(KeyIdHex(a.public_key.key_id)), std::string::npos);
  PublicKey same_id = b.public_key;  // another key claiming a's id
  same_id.key_id = a.public_key.key_id;
  EXPECT_EQ(Verify(same_id, s, "data").outcome, VerifyOutcome::kBadSignature);
  s.trusted_comment = "tc edited";
  EXPECT_EQ(Verify(a.public_key, s, "data").outcome, VerifyOutcome::kBadTrustedComment);
}

TEST(MinisignTest, VerifiesLegacySignatures) {
  const KeyPair pair = GenerateKeyPair();
  Signature s;
  s.algorithm = SignatureAlgorithm::kLegacy;
  s.key_id = pair.secret_key.key_id;
  s.trusted_comment = "legacy";
  const std::string msg = "legacy message";
  crypto_sign_detached(s.signature.data(), nullptr,
                       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       pair.secret_key.key.data());
  std::string global(reinterpret_cast<const char*>(s.signature.data()), 64);
  global += s.trusted_comment;
  crypto_sign_detached(s.global_signature.data(), nullptr,
                       reinterpret_cast<const unsigned char*>(global.data()), global.size(),
                       pair.secret_key.key.data());
  auto parsed = ParseSignature(EncodeSignature(s), "l.minisig");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->algorithm, SignatureAlgorithm::kLegacy);
  EXPECT_EQ(Verify(pair.public_key, *parsed, msg).outcome, VerifyOutcome::kValid);
  EXPECT_EQ(Verify(pair.public_key, *parsed, msg + "x").outcome, VerifyOutcome::kBadSignature);
}

TEST(MinisignTest, CommentsStayOneLine) {
  const KeyPair pair = GenerateKeyPair();
  const Signature s = Sign(pair.secret_key, "x", "a\nb", std::string(3000, 'c'));
  EXPECT_EQ(s.trusted_comment, "a?b");
  EXPECT_EQ(s.untrusted_comment.size(), kMaxCommentBytes);
  auto parsed = ParseSignature(EncodeSignature(s), "s");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_EQ(Verify(pair.public_key, *parsed, "x").outcome, VerifyOutcome::kValid);
}

struct BadInput {
  const char* text;
  const char* error;
};

TEST(MinisignTest, RefusesMalformedSignaturesPrecisely) {
  const std::string good = kMinisignSig;
  const std::string line2 = good.substr(good.find('\n') + 1, good.find('\n', good.find('\n') + 1) - good.find('\n') - 1);
  const BadInput cases[] = {
      {"", "s.minisig: signature file has 0 lines, expected 4 (truncated?)"},
      {"untrusted comment: x\n", "s.minisig: signature file has 1 lines, expected 4"},
      {"comment: x\nAAAA\ntrusted comment: y\nAAAA\n",
       "s.minisig:1: expected a line starting with \"untrusted comment: \""},
      {"untrusted comment: x\n!!!!\ntrusted comment: y\nAAAA\n",
       "s.minisig:2: signature is not valid base64"},
      {"untrusted comment: x\nAAAA\ntrusted comment: y\nAAAA\n",
       "s.minisig:2: signature is 3 bytes, expected 74"},
      {"untrusted comment: x\nAAAA\ntrusted comment: y\nAAAA\nmore\n",
       "s.minisig:5: unexpected content after the signature"},
  };
  for (const BadInput& c : cases) {
    auto r = ParseSignature(c.text, "s.minisig");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << "got: " << r.error().message() << "\nwant: " << c.error;
  }
  std::string bad_tc = good;
  bad_tc.replace(bad_tc.find("trusted comment: timestamp"), 17, "tusted comment: ");
  auto r = ParseSignature(bad_tc, "s.minisig");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(ErrorOf(r.error()).find("s.minisig:3: expected a line starting with \"trusted comment: \""),
            std::string::npos) << r.error().message();
  std::string short_global = good.substr(0, good.rfind("trusted comment")) +
                             "trusted comment: x\nAAAA\n";
  r = ParseSignature(short_global, "s.minisig");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(ErrorOf(r.error()).find("s.minisig:4: global signature is 3 bytes, expected 64"),
            std::string::npos)
      << r.error().message();
  // An unknown algorithm: "RX" instead of "ED" ("RU" in base64 is "E" + part of "D").
  std::string alg = good;
  alg.replace(alg.find(line2), 2, "UV");
  r = ParseSignature(alg, "s.minisig");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(ErrorOf(r.error()).find("unknown signature algorithm"), std::string::npos)
      << r.error().message();
}

TEST(MinisignTest, RefusesMalformedKeysPrecisely) {
  auto r = ParsePublicKey("untrusted comment: k\nRWSQeCIL\n", "k.pub");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("k.pub:2: public key is 6 bytes, expected 42"),
            std::string::npos) << r.error().message();

  // Flip one bit of the secret key inside the checksummed part: the checksum catches it.
  const KeyPair pair = GenerateKeyPair();
  std::string text = EncodeSecretKey(pair.secret_key);
  const size_t b64 = text.find('\n') + 1;
  std::string bin(158, '\0');
  size_t len = 0;
  ASSERT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(bin.data()), bin.size(),
                              text.data() + b64, text.size() - b64 - 1, nullptr, &len, nullptr,
                              sodium_base64_VARIANT_ORIGINAL), 0);
  auto reencode = [&](const std::string& raw) {
    std::string out(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                      raw.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);
    return "untrusted comment: k\n" + out + "\n";
  };
  std::string flipped = bin;
  flipped[80] ^= 1;
  auto s = ParseSecretKey(reencode(flipped), "vigil.key");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("vigil.key:2: secret key checksum mismatch"),
            std::string::npos) << s.error().message();

  // With a zero checksum (as minisign 0.11 -W writes) a damaged key is caught by its halves.
  std::string zeroed = flipped;
  std::fill(zeroed.end() - 32, zeroed.end(), '\0');
  s = ParseSecretKey(reencode(zeroed), "vigil.key");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("public half does not belong"), std::string::npos)
      << s.error().message();

  std::string encrypted = bin;
  encrypted[2] = 'S';
  encrypted[3] = 'c';
  s = ParseSecretKey(reencode(encrypted), "vigil.key");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("encrypted with a password"), std::string::npos);

  std::string nul = "untrusted comment: k\n";
  nul += '\0';
  s = ParseSecretKey(nul, "vigil.key");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("NUL byte"), std::string::npos);
}

}  // namespace
}  // namespace vigil::govern
