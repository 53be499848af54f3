#pragma once

// Tying an attestation key (AK) to the TPM's endorsement key (EK): the verifier's half of the
// TCG credential-activation protocol, without a TPM (formats: docs/attestation.md, "Tying the
// attestation key to the TPM").
//
//  1. The verifier checks that the EK certificate chains to a trusted EK CA and that the AK's
//     public area (TPMT_PUBLIC, whose hash is the AK's name) is a restricted signing key fixed to
//     its TPM and is the key that signed the quote (CheckEkBinding).
//  2. It runs TPM2_MakeCredential in software (MakeCredential: TPM 2.0 part 1, "Credential
//     Protection", with the RSA secret sharing of part 1 annex B): a random seed encrypted to
//     the EK with RSA-OAEP (SHA-256, label "IDENTITY"), a symmetric key and an HMAC key derived
//     from it with KDFa, the secret encrypted with AES-128-CFB and bound by the HMAC to the AK's
//     name.
//  3. The agent's TPM runs TPM2_ActivateCredential (govern/tpm.h): it decrypts the seed only with
//     the EK and releases the secret only when the AK with that name is loaded in the same TPM.
//     Returning the secret proves both.
//
// Only RSA 2048 EKs made from the TCG default template (EK Credential Profile template L-1: RSA
// 2048, SHA-256 name, AES-128-CFB) are supported; their certificate is in NV index 0x01c00002.
//
// Parsers take untrusted bytes and never throw; errors are kInvalidArgument naming the source.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "govern/attest.h"

namespace vigil::govern {

inline constexpr uint32_t kEkCertNvIndexRsa = 0x01c00002;
inline constexpr size_t kMaxEkCertBytes = 8 << 10;
inline constexpr size_t kMaxCaBundleBytes = 1 << 20;
inline constexpr size_t kCredentialSecretBytes = 32;
// TPM2B_ID_OBJECT: the integrity HMAC (2 + 32 bytes) and the encrypted TPM2B_DIGEST (2 + 32).
inline constexpr size_t kMaxIdObjectBytes = 132;
// TPM2B_ENCRYPTED_SECRET: an RSA-OAEP ciphertext (256 bytes for RSA 2048).
inline constexpr size_t kMaxEncryptedSecretBytes = 512;

struct EkCertificate {
  std::string der;
  std::string subject;   // one line (RFC 2253), for messages
  std::string modulus;   // the RSA key's n, big-endian, 256 bytes
  std::string sha256;    // hex SHA-256 of `der`
};

// A certificate as PEM or DER holding an RSA 2048 public key with exponent 65537.
core::Result<EkCertificate> ParseEkCertificate(std::string_view bytes, std::string_view source);
std::string EkCertificatePem(const EkCertificate& ek);

struct EkChainCheck {
  bool trusted = false;
  std::string detail;  // why not (OpenSSL's reason and the certificate's subject)
};

// Checks that `ca_bundle` holds at least one PEM certificate and nothing malformed;
// kInvalidArgument naming `bundle_source` otherwise. Returns how many certificates it holds.
core::Result<size_t> CheckEkCaBundle(std::string_view ca_bundle, std::string_view bundle_source);

// Verifies `ek` against a bundle of PEM certificates; every certificate in the bundle is a trust
// anchor (a root or a manufacturer's intermediate CA), so the chain may end at either. A bundle
// without a certificate or with a malformed one is kInvalidArgument naming `bundle_source`.
core::Result<EkChainCheck> VerifyEkChain(const EkCertificate& ek, std::string_view ca_bundle,
                                         std::string_view bundle_source);

struct AkPublic {
  std::string tpm_public;  // marshalled TPM2B_PUBLIC, as the TPM returned it
  std::string name;        // the AK's name: nameAlg (0x000b, SHA-256) || SHA-256(TPMT_PUBLIC)
  std::string pem;         // the key as SubjectPublicKeyInfo
};

// A marshalled TPM2B_PUBLIC that is an attestation key: nameAlg SHA-256; attributes fixedTPM,
// fixedParent, sensitiveDataOrigin, restricted and sign, not decrypt; ECC P-256 with ECDSA/SHA-256
// or RSA 2048 with RSASSA/SHA-256.
core::Result<AkPublic> ParseAkPublic(std::string_view tpm2b_public, std::string_view source);

// KDFa (TPM 2.0 part 1, "Key Derivation Function"; SP 800-108 counter mode) with HMAC-SHA-256:
// `bits` bits of HMAC(key, [i]32 || label || 0x00 || context_u || context_v || [bits]32), i = 1...
std::string KdfaSha256(std::string_view key, std::string_view label, std::string_view context_u,
                       std::string_view context_v, uint32_t bits);

// What TPM2_MakeCredential returns, as it crosses the wire (the TPM2B buffers' contents).
struct CredentialChallenge {
  std::string id_object;         // TPM2B_ID_OBJECT.credential: integrityHMAC || encIdentity
  std::string encrypted_secret;  // TPM2B_ENCRYPTED_SECRET.secret: the RSA-OAEP encrypted seed
};

// TPM2_MakeCredential for `ek`'s key, the AK's name and `secret` (1..32 bytes). `seed`: 32 bytes
// (tests); empty: random.
core::Result<CredentialChallenge> MakeCredential(const EkCertificate& ek, std::string_view ak_name,
                                                 std::string_view secret,
                                                 std::string_view seed = {});

// A challenge from its wire form (hex strings), with the TPM's size limits checked.
core::Result<CredentialChallenge> ParseCredentialChallenge(std::string_view id_object_hex,
                                                           std::string_view encrypted_secret_hex,
                                                           std::string_view source);

struct EkBinding {
  QuoteFailure failure = QuoteFailure::kNone;  // kUntrustedEk or kBadAttestationKey
  std::string detail;
  EkCertificate ek;
  AkPublic ak;
  bool ok() const { return failure == QuoteFailure::kNone; }
};

// Step 1 for a quote document: it carries an EK certificate and the AK's public area; the
// certificate chains to `ca_bundle`; the public area is an attestation key (ParseAkPublic) and
// is the key in `ak_public` that signed the quote. A missing or malformed certificate or public
// area is a failure (the agent's fault), a malformed bundle an error.
core::Result<EkBinding> CheckEkBinding(const QuoteDocument& q, std::string_view ca_bundle,
                                       std::string_view bundle_source);

}  // namespace vigil::govern
