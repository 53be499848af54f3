// vigil attest extend|quote|verify|events against a private swtpm, as a user runs them.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/govern/ek_ca.h"
#include "../unit/govern/swtpm.h"
#include "../unit/sensor/temp_dir.h"
#include "vigil_cli.h"

namespace vigil::e2e {
namespace {

using govern::testing::Swtpm;
using govern::testing::SwtpmCa;
using sensor::testing::TempDir;

class AttestCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!swtpm_.ok()) GTEST_SKIP() << swtpm_.why();
    dir_ = tmp_.path().string();
    config_ = tmp_.Write("vigil.yaml", "state_dir: " + dir_ + "/state\nattestation:\n  tcti: " +
                                           swtpm_.tcti() + "\n");
    model_ = tmp_.Write("model.vgm", "model bytes");
    policy_ = tmp_.Write("rules.yaml", "- rule: x\n");
  }

  CmdResult Vigil(const std::string& args) { return RunVigil(tmp_.path(), args); }

  Swtpm swtpm_;
  TempDir tmp_;
  std::string dir_, config_, model_, policy_;
};

TEST_F(AttestCliTest, ExtendQuoteVerify) {
  CmdResult r = Vigil("attest extend " + model_ + " --kind model --restart --config " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Vigil("attest extend " + policy_ + " --kind policy --json --config " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["pcr"], 23);

  r = Vigil("attest events --json --config " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto events = nlohmann::json::parse(r.out);
  ASSERT_EQ(events["events"].size(), 2u);
  EXPECT_EQ(events["events"][1]["kind"], "policy");

  const std::string quote = dir_ + "/quote.json", nonce = "00112233445566778899aabbccddeeff";
  r = Vigil("attest quote --nonce " + nonce + " --out " + quote + " --config " + config_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(ReadAll(quote));
  EXPECT_EQ(doc["schema"], "vigil.attest.quote/v1");
  // The replayed value `attest events` printed is the value the TPM quoted.
  EXPECT_EQ(doc["pcr_values"]["23"], events["replayed"]["23"]);

  r = Vigil("attest verify " + quote + " --nonce " + nonce + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["outcome"], "ok");

  // Pinning the attestation key it printed.
  std::ofstream(dir_ + "/ak.pem") << doc["ak_public"].get<std::string>();
  r = Vigil("attest verify " + quote + " --nonce " + nonce + " --ak " + dir_ + "/ak.pem");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // Another nonce: exit 1 naming it.
  r = Vigil("attest verify " + quote + " --nonce ffffffffffffffff");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("FAILED (nonce-mismatch)"), std::string::npos) << r.err;

  // An allowlist from sha256sum: the model alone is not enough.
  ASSERT_EQ(std::system(("sha256sum " + model_ + " > " + dir_ + "/allow.txt").c_str()), 0);
  r = Vigil("attest verify " + quote + " --nonce " + nonce + " --allow " + dir_ + "/allow.txt");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("FAILED (disallowed-digest): " + quote + ": event 1 (policy " + policy_),
            std::string::npos)
      << r.err;
  ASSERT_EQ(std::system(("sha256sum " + policy_ + " >> " + dir_ + "/allow.txt").c_str()), 0);
  r = Vigil("attest verify " + quote + " --nonce " + nonce + " --allow " + dir_ + "/allow.txt");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // An event list edited after the quote no longer replays.
  auto edited = doc;
  edited["events"][0]["digest"] = std::string(64, '0');
  std::ofstream(dir_ + "/edited.json") << edited.dump();
  r = Vigil("attest verify " + dir_ + "/edited.json --nonce " + nonce);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("replay-mismatch"), std::string::npos) << r.err;
}

TEST_F(AttestCliTest, BadInputExitsTwo) {
  CmdResult r = Vigil("attest quote --nonce 00 --config " + config_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--nonce: expected 8 to 64 bytes"), std::string::npos) << r.err;
  r = Vigil("attest quote --nonce 0011223344556677 --pcrs 23,99 --config " + config_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--pcrs: \"99\""), std::string::npos) << r.err;
  const std::string garbage = tmp_.Write("garbage.json", "{\"schema\":1}");
  r = Vigil("attest verify " + garbage + " --nonce 0011223344556677");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(garbage + ": \"schema\" is not a string"), std::string::npos) << r.err;
  // No TPM configured: said so, exit 2.
  const std::string bare = tmp_.Write("bare.yaml", "state_dir: " + dir_ + "/state\n");
  r = Vigil("attest quote --nonce 0011223344556677 --config " + bare);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no TPM configured"), std::string::npos) << r.err;
}

// Credential activation from the command line: two TPMs manufactured by one test CA, and a CA
// that made neither.
TEST(AttestEkCliTest, VerifyTiesTheAttestationKeyToTheEk) {
  SwtpmCa ca, other_ca;
  Swtpm a(&ca), b(&ca);
  if (!a.ok()) GTEST_SKIP() << a.why();
  ASSERT_TRUE(b.ok()) << b.why();
  { Swtpm warm(&other_ca); }
  TempDir tmp;
  const std::string dir = tmp.path().string();
  const std::string bundle = tmp.Write("ek-ca.pem", ca.bundle());
  const std::string other = tmp.Write("other-ca.pem", other_ca.bundle());
  auto vigil = [&tmp](const std::string& args) { return RunVigil(tmp.path(), args); };
  const std::string nonce = "00112233445566778899aabbccddeeff";
  const std::string bare = tmp.Write("bare.yaml", "state_dir: " + dir + "/state\n");
  auto quote = [&](const Swtpm& t, const std::string& name) {
    const std::string path = dir + "/" + name;
    CmdResult r = vigil("attest quote --ek --nonce " + nonce + " --out " + path + " --tcti " +
                        t.tcti() + " --events " + dir + "/" + name + ".events --config " + bare);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path;
  };
  const std::string qa = quote(a, "a.json"), qb = quote(b, "b.json");
  const auto doc_a = nlohmann::json::parse(ReadAll(qa));
  ASSERT_TRUE(doc_a.contains("ek_certificate"));
  ASSERT_TRUE(doc_a.contains("ak_tpm_public"));

  // The quoting TPM activates the credential: valid, and the AK's name is printed.
  CmdResult r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-ca " + bundle +
                      " --tcti " + a.tcti() + " --json --config " + bare);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["outcome"], "ok");
  EXPECT_EQ(j["ek_checked"], true);
  EXPECT_EQ(j["ak_name"].get<std::string>().size(), 68u);

  // TPM B's quote presenting TPM A's EK certificate: B cannot activate a credential for A's EK.
  auto forged = nlohmann::json::parse(ReadAll(qb));
  forged["ek_certificate"] = doc_a["ek_certificate"];
  const std::string qf = tmp.Write("forged.json", forged.dump());
  r = vigil("attest verify " + qf + " --nonce " + nonce + " --ek-ca " + bundle + " --tcti " +
            b.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("FAILED (activation-failed)"), std::string::npos) << r.err;

  // An EK certificate from a CA that is not trusted.
  r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-ca " + other + " --tcti " +
            a.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("FAILED (untrusted-ek)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not chain to a trusted EK CA"), std::string::npos) << r.err;

  // A quote made without --ek carries no certificate.
  r = vigil("attest quote --nonce " + nonce + " --out " + dir + "/plain.json --tcti " + a.tcti() +
            " --events " + dir + "/a.json.events --config " + bare);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = vigil("attest verify " + dir + "/plain.json --nonce " + nonce + " --ek-ca " + bundle +
            " --tcti " + a.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("FAILED (untrusted-ek)"), std::string::npos) << r.err;

  // A bundle without a certificate is bad input.
  const std::string junk = tmp.Write("junk.pem", "not a certificate\n");
  r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-ca " + junk + " --tcti " +
            a.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(junk + ": no PEM certificate in the EK CA bundle"), std::string::npos)
      << r.err;

  // The ECC EK (swtpm's is NIST P-384): the credential is made with ECDH and activates.
  const std::string qe = dir + "/ecc.json";
  r = vigil("attest quote --ek --ek-alg ecc-p384 --nonce " + nonce + " --out " + qe + " --tcti " +
            a.tcti() + " --events " + dir + "/a.json.events --config " + bare);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(nlohmann::json::parse(ReadAll(qe))["ek_certificate"], doc_a["ek_certificate"]);
  r = vigil("attest verify " + qe + " --nonce " + nonce + " --ek-ca " + bundle + " --tcti " +
            a.tcti() + " --json --config " + bare);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ak_name"], j["ak_name"]);
  r = vigil("attest quote --ek --ek-alg ecc --nonce " + nonce + " --tcti " + a.tcti() +
            " --config " + bare);
  EXPECT_EQ(r.exit_code, 2);

  // Revocation: a CRL file that has no CRL of the EK's issuer fails closed; a malformed one is
  // bad input; --ek-crl needs --ek-ca.
  govern::testing::EkCa crl_ca("a CA with a CRL");
  const std::string crl = tmp.Write("other.crl", crl_ca.IssueCrl({}));
  r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-ca " + bundle + " --ek-crl " +
            crl + " --tcti " + a.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("FAILED (untrusted-ek)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fails the revocation check against " + crl +
                       ": unable to get certificate CRL"),
            std::string::npos)
      << r.err;
  r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-ca " + bundle + " --ek-crl " +
            junk + " --tcti " + a.tcti() + " --config " + bare);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(junk + ": not a PEM or DER CRL"), std::string::npos) << r.err;
  r = vigil("attest verify " + qa + " --nonce " + nonce + " --ek-crl " + crl + " --config " +
            bare);
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace vigil::e2e
