// Tying the attestation key to the EK: the verifier's software MakeCredential against a real
// TPM's ActivateCredential (swtpm manufactured with an EK certificate from a test CA).

#include "govern/credential.h"

#include <gtest/gtest.h>

#include "../sensor/temp_dir.h"
#include "govern/measure.h"
#include "govern/tpm.h"
#include "swtpm.h"

namespace vigil::govern {
namespace {

using sensor::testing::TempDir;
using testing::Swtpm;
using testing::SwtpmCa;

TEST(CredentialTest, KdfaIsCounterModeHmacSha256) {
  // One block: HMAC(key, [1] || "STORAGE" || 0 || u || v || [128]) cut to 16 bytes.
  const std::string k = KdfaSha256("seed", "STORAGE", "name", "", 128);
  EXPECT_EQ(k.size(), 16u);
  EXPECT_EQ(KdfaSha256("seed", "INTEGRITY", "", "", 256).size(), 32u);
  // Two blocks differ, and the length is part of the input.
  const std::string long_key = KdfaSha256("seed", "X", "", "", 512);
  EXPECT_NE(long_key.substr(0, 32), long_key.substr(32));
  EXPECT_NE(KdfaSha256("seed", "X", "", "", 256), long_key.substr(0, 32));
  EXPECT_NE(KdfaSha256("seed", "STORAGE", "name2", "", 128), k);
}

TEST(CredentialTest, ChallengeWireFormIsChecked) {
  auto err = [](const std::string& id, const std::string& secret) {
    auto r = ParseCredentialChallenge(id, secret, "challenge");
    return r.has_value() ? std::string("ok") : r.error().message();
  };
  const std::string id = "0020" + std::string(64, 'a') + "0022" + std::string(68, 'b');
  EXPECT_EQ(err(id, std::string(512, 'c')), "ok");
  EXPECT_EQ(err("zz", "00"), "challenge: \"credential_blob\" is not hex");
  EXPECT_EQ(err(id, "0"), "challenge: \"encrypted_secret\" is not hex");
  EXPECT_NE(err("0010" + std::string(64, 'a') + "000000", "00").find("integrity HMAC"),
            std::string::npos);
  EXPECT_EQ(err(id, std::string(1026, 'c')), "challenge: \"encrypted_secret\" must be 1..512 bytes");
  EXPECT_EQ(err(id, ""), "challenge: \"encrypted_secret\" must be 1..512 bytes");
}

TEST(CredentialTest, BadCertificatesAndKeysAreNamed) {
  auto ek = ParseEkCertificate("not a certificate", "ek.der");
  ASSERT_FALSE(ek.has_value());
  EXPECT_EQ(ek.error().message().rfind("ek.der: not a DER certificate", 0), 0u)
      << ek.error().message();
  auto pem = ParseEkCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                "ek.pem");
  ASSERT_FALSE(pem.has_value());
  EXPECT_EQ(pem.error().message().rfind("ek.pem: not a PEM certificate", 0), 0u);
  auto ak = ParseAkPublic(std::string("\x00\x05hello", 7), "ak");
  ASSERT_FALSE(ak.has_value());
  EXPECT_EQ(ak.error().message(), "ak: not a marshalled TPM2B_PUBLIC");
  EkCertificate none;
  auto chain = VerifyEkChain(none, "no certificates here", "ca.pem");
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().message(), "ca.pem: no PEM certificate in the EK CA bundle");
}

// Two TPMs manufactured by one CA (each test is its own process under ctest: kept small).
class CredentialTpmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new SwtpmCa();
    tpm_a_ = new Swtpm(ca_);
    tpm_b_ = new Swtpm(ca_);
  }
  static void TearDownTestSuite() {
    delete tpm_a_;
    delete tpm_b_;
    delete ca_;
  }
  void SetUp() override {
    if (!tpm_a_->ok()) GTEST_SKIP() << tpm_a_->why();
    if (!tpm_b_->ok()) GTEST_SKIP() << tpm_b_->why();
    a_ = Open(*tpm_a_, "a");
    b_ = Open(*tpm_b_, "b");
  }

  std::unique_ptr<Measurer> Open(const Swtpm& t, const std::string& name) {
    MeasureOptions o;
    o.tcti = t.tcti();
    o.events_path = tmp_.path().string() + "/" + name + "/events.json";
    auto m = Measurer::Open(o);
    EXPECT_TRUE(m.has_value()) << m.error().message();
    if (!m.has_value()) return nullptr;
    AttestEvent e;
    e.kind = "agent-start";
    e.name = "/usr/bin/vigil";
    e.digest = Sha256Of("vigil");
    EXPECT_TRUE((*m)->Restart(e).ok());
    return std::move(m).value();
  }

  QuoteDocument Quote(Measurer& m) {
    auto q = m.Quote({}, nonce_, /*with_ek=*/true);
    EXPECT_TRUE(q.has_value()) << q.error().message();
    return q.has_value() ? *q : QuoteDocument{};
  }

  EkBinding Bind(const QuoteDocument& q, const std::string& bundle) {
    auto b = CheckEkBinding(q, bundle, "ek-ca.pem");
    EXPECT_TRUE(b.has_value()) << b.error().message();
    return b.has_value() ? *b : EkBinding{};
  }

  static SwtpmCa* ca_;
  static Swtpm* tpm_a_;
  static Swtpm* tpm_b_;
  TempDir tmp_;
  std::unique_ptr<Measurer> a_, b_;
  const std::string nonce_ = "0123456789abcdef";
  const std::string secret_ = std::string("0123456789abcdef0123456789abcdef");
};
SwtpmCa* CredentialTpmTest::ca_ = nullptr;
Swtpm* CredentialTpmTest::tpm_a_ = nullptr;
Swtpm* CredentialTpmTest::tpm_b_ = nullptr;

TEST_F(CredentialTpmTest, AkOfTheSameTpmActivatesTheCredential) {
  const QuoteDocument q = Quote(*a_);
  ASSERT_FALSE(q.ek_certificate_pem.empty());
  const EkBinding b = Bind(q, ca_->bundle());
  ASSERT_TRUE(b.ok()) << b.detail;
  EXPECT_EQ(b.ak.name.size(), 34u);
  auto c = MakeCredential(b.ek, b.ak.name, secret_);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  auto got = a_->tpm().ActivateCredential(*c);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(*got, secret_);
  // A fresh credential each time (a random seed); both activate.
  auto c2 = MakeCredential(b.ek, b.ak.name, secret_);
  ASSERT_TRUE(c2.has_value());
  EXPECT_NE(c2->encrypted_secret, c->encrypted_secret);
  EXPECT_EQ(a_->tpm().ActivateCredential(*c2).value_or(""), secret_);
  // The name of the AK the TPM quotes with is stable (a primary key).
  EXPECT_EQ(Bind(Quote(*a_), ca_->bundle()).ak.name, b.ak.name);
}

TEST_F(CredentialTpmTest, AkOfAnotherTpmWithThisEkCertificateFails) {
  // TPM B's quote and AK, with TPM A's EK certificate: the chain is fine, but the credential is
  // encrypted to A's EK, which B does not hold.
  QuoteDocument q = Quote(*b_);
  q.ek_certificate_pem = Quote(*a_).ek_certificate_pem;
  const EkBinding b = Bind(q, ca_->bundle());
  ASSERT_TRUE(b.ok()) << b.detail;
  auto c = MakeCredential(b.ek, b.ak.name, secret_);
  ASSERT_TRUE(c.has_value());
  auto got = b_->tpm().ActivateCredential(*c);
  ASSERT_FALSE(got.has_value());
  EXPECT_NE(got.error().message().find("TPM2_ActivateCredential"), std::string::npos)
      << got.error().message();
  // TPM A holds the EK but not B's AK: the HMAC over B's AK name does not match A's AK.
  auto on_a = a_->tpm().ActivateCredential(*c);
  EXPECT_FALSE(on_a.has_value());
}

TEST_F(CredentialTpmTest, EkCertificateFromAnUntrustedCaFails) {
  SwtpmCa other_ca;
  {
    Swtpm made_by_other(&other_ca);  // makes the other CA's certificates
    ASSERT_TRUE(made_by_other.ok()) << made_by_other.why();
  }
  const EkBinding b = Bind(Quote(*a_), other_ca.bundle());
  EXPECT_EQ(b.failure, QuoteFailure::kUntrustedEk);
  EXPECT_NE(b.detail.find("does not chain to a trusted EK CA"), std::string::npos) << b.detail;
  // No certificate at all.
  QuoteDocument q = Quote(*a_);
  q.ek_certificate_pem.clear();
  EXPECT_EQ(Bind(q, ca_->bundle()).failure, QuoteFailure::kUntrustedEk);
}

TEST_F(CredentialTpmTest, AkPublicAreaMustBeTheSigner) {
  QuoteDocument q = Quote(*a_);
  q.ak_tpm_public = Quote(*b_).ak_tpm_public;  // B's AK declared, A's key signed
  EkBinding b = Bind(q, ca_->bundle());
  EXPECT_EQ(b.failure, QuoteFailure::kBadAttestationKey);
  EXPECT_NE(b.detail.find("not the key in \"ak_public\""), std::string::npos) << b.detail;
  // A key that is not restricted cannot be an AK: clear the restricted bit (attributes are bytes
  // 6..9 of the TPM2B_PUBLIC: size, type, nameAlg, then TPMA_OBJECT big-endian).
  q = Quote(*a_);
  q.ak_tpm_public[7] = static_cast<char>(q.ak_tpm_public[7] & ~0x01);  // bit 16: restricted
  b = Bind(q, ca_->bundle());
  EXPECT_EQ(b.failure, QuoteFailure::kBadAttestationKey);
  EXPECT_NE(b.detail.find("not an attestation key"), std::string::npos) << b.detail;
}

}  // namespace
}  // namespace vigil::govern
