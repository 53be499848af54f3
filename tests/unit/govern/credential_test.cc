// Tying the attestation key to the EK: the verifier's software MakeCredential against a real
// TPM's ActivateCredential (swtpm manufactured with an EK certificate from a test CA).

#include "govern/credential.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include "../sensor/temp_dir.h"
#include "ek_ca.h"
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

TEST(CredentialTest, KdfeIsTheConcatenationKdf) {
  // One block: H([1]32 || z || "IDENTITY" || 0 || u || v), the TPM's KDFe for ECDH.
  const std::string z(32, 'z'), u(32, 'u'), v(32, 'v');
  const std::string input = std::string("\0\0\0\1", 4) + z + "IDENTITY" + std::string(1, '\0') + u + v;
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), d, &len, EVP_sha256(), nullptr);
  EXPECT_EQ(Kdfe(false, z, "IDENTITY", u, v, 256), std::string(reinterpret_cast<char*>(d), len));
  EVP_Digest(input.data(), input.size(), d, &len, EVP_sha384(), nullptr);
  EXPECT_EQ(Kdfe(true, z, "IDENTITY", u, v, 384), std::string(reinterpret_cast<char*>(d), len));
  // Longer outputs chain blocks; the parties are part of the input.
  EXPECT_EQ(Kdfe(false, z, "IDENTITY", u, v, 512).substr(0, 32), Kdfe(false, z, "IDENTITY", u, v, 256));
  EXPECT_NE(Kdfe(false, z, "IDENTITY", v, u, 256), Kdfe(false, z, "IDENTITY", u, v, 256));
}

TEST(CredentialTest, EkKindOfAChallengeIsItsSecretsShape) {
  auto kind = [](const std::string& secret) {
    auto k = EkKindOfChallenge(CredentialChallenge{"", secret});
    return k.has_value() ? std::string(EkKindName(*k)) : k.error().message();
  };
  EXPECT_EQ(kind(std::string(256, 'r')), "rsa2048");
  auto point = [](size_t n) {
    return std::string{0, static_cast<char>(n)} + std::string(n, 'x') +
           std::string{0, static_cast<char>(n)} + std::string(n, 'y');
  };
  EXPECT_EQ(kind(point(32)), "ecc-p256");
  EXPECT_EQ(kind(point(48)), "ecc-p384");
  EXPECT_NE(kind(point(66)).find("neither an RSA 2048 ciphertext nor a P-256 or P-384 point"),
            std::string::npos);
  EXPECT_NE(kind(point(32) + "x").find("(69 bytes)"), std::string::npos);
  EXPECT_NE(kind("").find("neither"), std::string::npos);
  EXPECT_EQ(EkKindOfName("ecc-p384"), EkKind::kEccP384);
  EXPECT_FALSE(EkKindOfName("ecc").has_value());
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

  std::unique_ptr<Measurer> Open(const Swtpm& t, const std::string& name,
                                 std::optional<EkKind> ek_kind = std::nullopt) {
    MeasureOptions o;
    o.tcti = t.tcti();
    o.events_path = tmp_.path().string() + "/" + name + "/events.json";
    o.ek_kind = ek_kind;
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

  EkBinding Bind(const QuoteDocument& q, const std::string& bundle,
                 const std::string& crls = "") {
    auto b = CheckEkBinding(q, bundle, "ek-ca.pem", crls, "ek.crl");
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

TEST_F(CredentialTpmTest, EccP384EkOfSwtpmActivatesTheCredential) {
  // swtpm_setup certifies an ECC EK too: NIST P-384, template H-3, NV index 0x01c00016.
  auto a384 = Open(*tpm_a_, "a384", EkKind::kEccP384);
  ASSERT_NE(a384, nullptr);
  const QuoteDocument q = Quote(*a384);
  ASSERT_FALSE(q.ek_certificate_pem.empty());
  const EkBinding b = Bind(q, ca_->bundle());
  ASSERT_TRUE(b.ok()) << b.detail;
  EXPECT_EQ(b.ek.kind, EkKind::kEccP384);
  EXPECT_EQ(b.ek.ecc_x.size(), 48u);
  auto c = MakeCredential(b.ek, b.ak.name, secret_);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->encrypted_secret.size(), 2u + 48 + 2 + 48);  // the ephemeral point
  EXPECT_EQ(c->id_object.size(), 2u + 48 + 2 + secret_.size());  // SHA-384 HMAC
  auto got = a_->tpm().ActivateCredential(*c);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(*got, secret_);
  // TPM B has another ECC EK: the ECDH secret differs, so does the seed; the HMAC fails.
  auto on_b = b_->tpm().ActivateCredential(*c);
  ASSERT_FALSE(on_b.has_value());
  EXPECT_NE(on_b.error().message().find("TPM2_ActivateCredential"), std::string::npos);
  // A flipped bit of the ephemeral point or the blob is refused by the TPM.
  CredentialChallenge bad = *c;
  bad.encrypted_secret[10] = static_cast<char>(bad.encrypted_secret[10] ^ 1);
  EXPECT_FALSE(a_->tpm().ActivateCredential(bad).has_value());
  bad = *c;
  bad.id_object.back() = static_cast<char>(bad.id_object.back() ^ 1);
  EXPECT_FALSE(a_->tpm().ActivateCredential(bad).has_value());
  // auto picks the RSA certificate first.
  EXPECT_EQ(Bind(Quote(*a_), ca_->bundle()).ek.kind, EkKind::kRsa2048);
}

TEST_F(CredentialTpmTest, EccP256EkActivatesTheCredential) {
  // swtpm_setup certifies no P-256 EK: the test's CA certifies the L-2 EK of TPM A.
  auto pem = a_->tpm().EndorsementKeyPem(EkKind::kEccP256);
  ASSERT_TRUE(pem.has_value()) << pem.error().message();
  const std::string cert = testing::EkCa(*ca_).IssueEkCertificate(*pem, 256);
  ASSERT_FALSE(cert.empty());
  QuoteDocument q = Quote(*a_);
  q.ek_certificate_pem = cert;
  const EkBinding b = Bind(q, ca_->bundle());
  ASSERT_TRUE(b.ok()) << b.detail;
  EXPECT_EQ(b.ek.kind, EkKind::kEccP256);
  auto c = MakeCredential(b.ek, b.ak.name, secret_);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->encrypted_secret.size(), 2u + 32 + 2 + 32);
  auto got = a_->tpm().ActivateCredential(*c);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(*got, secret_);
  EXPECT_FALSE(b_->tpm().ActivateCredential(*c).has_value());
  // A chosen seed is for RSA only (an ECC seed comes from ECDH).
  EXPECT_FALSE(MakeCredential(b.ek, b.ak.name, secret_, std::string(32, 's')).has_value());
  // No P-256 certificate in the TPM's NV: asking for one is kNotFound naming the index.
  auto a256 = Open(*tpm_a_, "a256", EkKind::kEccP256);
  ASSERT_NE(a256, nullptr);
  auto none = a256->Quote({}, nonce_, /*with_ek=*/true);
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message().find("no ecc-p256 EK certificate in NV index 0x01c0000a"),
            std::string::npos)
      << none.error().message();
}

TEST_F(CredentialTpmTest, RevokedEkCertificateIsUntrusted) {
  // swtpm's local CA may not sign CRLs (no cRLSign): a CA of the test's own certifies the RSA EKs
  // of both TPMs.
  testing::EkCa ca;
  ASSERT_TRUE(ca.ok());
  auto cert_of = [&ca](Measurer& m, long serial) {
    auto pem = m.tpm().EndorsementKeyPem(EkKind::kRsa2048);
    EXPECT_TRUE(pem.has_value()) << pem.error().message();
    return ca.IssueEkCertificate(pem.value_or(""), serial);
  };
  QuoteDocument q = Quote(*a_);
  q.ek_certificate_pem = cert_of(*a_, 1001);
  auto ek = ParseEkCertificate(q.ek_certificate_pem, "ek");
  ASSERT_TRUE(ek.has_value());
  auto ek_b = ParseEkCertificate(cert_of(*b_, 1002), "ek");
  ASSERT_TRUE(ek_b.has_value());
  EXPECT_TRUE(Bind(q, ca.bundle()).ok());
  // A current CRL that revokes B's EK only: A's is trusted, and its credential activates.
  const std::string crl_b = ca.IssueCrl({ek_b->der});
  ASSERT_FALSE(crl_b.empty());
  const EkBinding good = Bind(q, ca.bundle(), crl_b);
  ASSERT_TRUE(good.ok()) << good.detail;
  auto c = MakeCredential(good.ek, good.ak.name, secret_);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(a_->tpm().ActivateCredential(*c).value_or(""), secret_);
  // A CRL that revokes A's: untrusted, and the reason says so.
  EkBinding b = Bind(q, ca.bundle(), ca.IssueCrl({ek->der, ek_b->der}));
  EXPECT_EQ(b.failure, QuoteFailure::kUntrustedEk);
  EXPECT_NE(b.detail.find("fails the revocation check against ek.crl: certificate revoked"),
            std::string::npos)
      << b.detail;
  // An expired CRL, or none from A's issuer (fail closed): untrusted.
  b = Bind(q, ca.bundle(), ca.IssueCrl({}, -60));
  EXPECT_EQ(b.failure, QuoteFailure::kUntrustedEk);
  EXPECT_NE(b.detail.find("CRL has expired"), std::string::npos) << b.detail;
  testing::EkCa other("another EK CA");
  b = Bind(q, ca.bundle() + other.bundle(), other.IssueCrl({}));
  EXPECT_EQ(b.failure, QuoteFailure::kUntrustedEk);
  EXPECT_NE(b.detail.find("unable to get certificate CRL"), std::string::npos) << b.detail;
  // A CRL in the name of A's issuer but signed by another key.
  testing::EkCa forger("test EK CA");
  b = Bind(q, ca.bundle(), forger.IssueCrl({}));
  EXPECT_EQ(b.failure, QuoteFailure::kUntrustedEk);
  EXPECT_NE(b.detail.find("CRL signature failure"), std::string::npos) << b.detail;
  // A malformed CRL file is an error naming it.
  auto bad = CheckEkBinding(q, ca_->bundle(), "ek-ca.pem", "-----BEGIN X509 CRL-----\nAAAA\n"
                            "-----END X509 CRL-----\n", "ek.crl");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message().rfind("ek.crl: ", 0), 0u) << bad.error().message();
  auto junk = CheckEkCrls("junk", "ek.crl");
  ASSERT_FALSE(junk.has_value());
  EXPECT_EQ(junk.error().message().rfind("ek.crl: not a PEM or DER CRL", 0), 0u)
      << junk.error().message();
  EXPECT_EQ(CheckEkCrls(crl_b + other.IssueCrl({}), "ek.crl").value_or(0), 2u);
}

}  // namespace
}  // namespace vigil::govern
