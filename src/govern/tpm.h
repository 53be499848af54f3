#pragma once

// A TPM 2.0 through tpm2-tss's ESAPI, with the few commands attestation needs. The TCTI is
// chosen by a tpm2-tss configuration string (Tss2_TctiLdr_Initialize): "device:/dev/tpmrm0" for
// the kernel's resource manager, "swtpm:host=127.0.0.1,port=2321" for swtpm, "mssim:..." for the
// reference simulator. Errors name the TCTI, the command and tpm2-tss's decoded response code.
//
// The attestation key (AK) is a primary key under the endorsement hierarchy: a restricted ECC
// P-256 signing key with ECDSA/SHA-256 (the TCG's default AK template shape). A primary key is
// derived from the hierarchy's seed and the template, so every Quote() on the same TPM signs
// with the same key without storing anything; it is flushed after each use. The endorsement
// hierarchy must have an empty authorization value (the default; a TPM whose owner set one
// refuses CreatePrimary with an authorization error, which is reported).
//
// The endorsement key (EK) is the primary key of a TCG default template (govern/credential.h,
// EkKind): L-1 (RSA 2048, certificate in NV index 0x01c00002), L-2 (ECC P-256, 0x01c0000a) or
// H-3 (ECC P-384, 0x01c00016), the keys a manufacturer (or swtpm_setup --create-ek-cert)
// certifies; ActivateCredential() uses it to prove that the AK lives in the same TPM.
//
// Not thread-safe: one Tpm per thread. Move-only.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "govern/attest.h"
#include "govern/credential.h"

namespace vigil::govern {

struct TpmQuote {
  std::string attest;     // marshalled TPMS_ATTEST (what was signed)
  std::string signature;  // marshalled TPMT_SIGNATURE
  std::string ak_public_pem;
  std::string ak_tpm_public;  // the AK's marshalled TPM2B_PUBLIC
};

class Tpm {
 public:
  // Connects through `tcti` (kInvalidArgument when empty; kUnavailable when it cannot connect).
  static core::Result<std::unique_ptr<Tpm>> Open(const std::string& tcti);
  ~Tpm();
  Tpm(const Tpm&) = delete;
  Tpm& operator=(const Tpm&) = delete;

  // TPM2_Startup(CLEAR). A TPM that was already started up is not an error.
  core::Status Startup();
  // TPM2_PCR_Reset (only PCRs resettable from locality 0: 16, 23).
  core::Status ResetPcr(uint32_t pcr);
  core::Status ExtendPcr(uint32_t pcr, const Sha256Digest& digest);
  core::Result<Sha256Digest> ReadPcr(uint32_t pcr);
  // `nonce`: kMinNonceBytes..kMaxNonceBytes bytes; `pcrs`: ascending sha256-bank indexes.
  core::Result<TpmQuote> Quote(const std::vector<uint32_t>& pcrs, const std::string& nonce);
  // The EK certificate of `kind` in its NV index (EkCertNvIndex; DER, possibly zero-padded);
  // kNotFound when the TPM has none.
  core::Result<std::string> ReadEkCertificate(EkKind kind = EkKind::kRsa2048);
  // The public key (PEM) of the EK of `kind`, created from its default template.
  core::Result<std::string> EndorsementKeyPem(EkKind kind);
  // TPM2_ActivateCredential: the AK as the object the credential is bound to, the EK (created
  // from the default template of the kind the challenge was made for, EkKindOfChallenge) as the
  // decrypting key, under a PolicySecret(TPM_RH_ENDORSEMENT) session for the L templates, with
  // its empty authValue for H-3. Returns the secret; a challenge made for another EK or another
  // AK is kUnavailable with the TPM's response code (an integrity or decryption failure).
  core::Result<std::string> ActivateCredential(const CredentialChallenge& challenge);
  // Random bytes from the TPM (at most 32 per call are asked; loops as needed).
  core::Result<std::string> Random(size_t bytes);

  const std::string& tcti() const { return tcti_; }

 private:
  struct Handles;
  explicit Tpm(std::string tcti);
  core::Status Check(uint32_t rc, const char* command) const;
  // Creates the attestation key (the returned handle must be flushed) and its public area.
  core::Result<uint32_t> CreateAk(AkPublic* ak);

  std::string tcti_;
  std::unique_ptr<Handles> h_;
};

}  // namespace vigil::govern
