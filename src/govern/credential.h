#pragma once

// Tying an attestation key (AK) to the TPM's endorsement key (EK): the verifier's half of the
// TCG credential-activation protocol, without a TPM (formats: docs/attestation.md, "Tying the
// attestation key to the TPM").
//
//  1. The verifier checks that the EK certificate chains to a trusted EK CA and that the AK's
//     public area (TPMT_PUBLIC, whose hash is the AK's name) is a restricted signing key fixed to
//     its TPM and is the key that signed the quote (CheckEkBinding).
//  2. It runs TPM2_MakeCredential in software (MakeCredential: TPM 2.0 part 1, "Credential
//     Protection" and annex B/C "Secret Sharing"): a random seed shared with the EK, a symmetric
//     key and an HMAC key derived from it with KDFa, the secret encrypted with AES-CFB and bound by
//     the HMAC to the AK's name. With an RSA EK the seed is random and encrypted with RSA-OAEP
//     (label "IDENTITY"); with an ECC EK it is KDFe("IDENTITY") of the ECDH secret of an ephemeral
//     key and the EK, and the ephemeral public point is what the TPM receives.
//  3. The agent's TPM runs TPM2_ActivateCredential (govern/tpm.h): it decrypts the seed only with
//     the EK and releases the secret only when the AK with that name is loaded in the same TPM.
//     Returning the secret proves both.
//
// Supported EKs are those of the TCG EK Credential Profile's default templates, told apart by the
// certificate's key (EkKind): RSA 2048 (template L-1: SHA-256, AES-128-CFB; certificate in NV
// index 0x01c00002), ECC NIST P-256 (L-2: SHA-256, AES-128-CFB; 0x01c0000a) and ECC NIST P-384
// (H-3: SHA-384, AES-256-CFB; 0x01c00016, the ECC EK swtpm_setup makes).
//
// A certificate revocation list (CRL) given with the EK CA bundle is checked too: the EK
// certificate must not be revoked by its issuer's CRL, and with a CRL set, an issuer without a
// current CRL in it is a failure (fail closed).
//
// Parsers take untrusted bytes and never throw; errors are kInvalidArgument naming the source.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "govern/attest.h"

namespace vigil::govern {

inline constexpr uint32_t kEkCertNvIndexRsa = 0x01c00002;
inline constexpr uint32_t kEkCertNvIndexEccP256 = 0x01c0000a;
inline constexpr uint32_t kEkCertNvIndexEccP384 = 0x01c00016;
inline constexpr size_t kMaxEkCertBytes = 8 << 10;
inline constexpr size_t kMaxCaBundleBytes = 1 << 20;
inline constexpr size_t kMaxCrlBytes = 4 << 20;
inline constexpr size_t kCredentialSecretBytes = 32;
// TPM2B_ID_OBJECT: the integrity HMAC (2 + up to 48 bytes) and the encrypted TPM2B_DIGEST.
inline constexpr size_t kMaxIdObjectBytes = 132;
// TPM2B_ENCRYPTED_SECRET: an RSA-OAEP ciphertext (256 bytes for RSA 2048) or a TPMS_ECC_POINT.
inline constexpr size_t kMaxEncryptedSecretBytes = 512;

// The EK's key type, which fixes its TCG default template and certificate NV index.
enum class EkKind { kRsa2048, kEccP256, kEccP384 };
inline constexpr EkKind kAllEkKinds[] = {EkKind::kRsa2048, EkKind::kEccP256, EkKind::kEccP384};
// "rsa2048", "ecc-p256", "ecc-p384".
const char* EkKindName(EkKind kind);
// The kind of a name EkKindName returns; nullopt for another string.
std::optional<EkKind> EkKindOfName(std::string_view name);
uint32_t EkCertNvIndex(EkKind kind);

struct EkCertificate {
  std::string der;
  std::string subject;   // one line (RFC 2253), for messages
  EkKind kind = EkKind::kRsa2048;
  std::string modulus;   // RSA: the key's n, big-endian, 256 bytes
  std::string ecc_x;     // ECC: the point's coordinates, big-endian, 32 (P-256) or 48 (P-384)
  std::string ecc_y;     //   bytes each
  std::string sha256;    // hex SHA-256 of `der`
};

// A certificate as PEM or DER holding an RSA 2048 public key with exponent 65537 or an ECC
// NIST P-256 or P-384 public key.
core::Result<EkCertificate> ParseEkCertificate(std::string_view bytes, std::string_view source);
std::string EkCertificatePem(const EkCertificate& ek);

struct EkChainCheck {
  bool trusted = false;
  std::string detail;  // why not (OpenSSL's reason and the certificate's subject)
};

// Checks that `ca_bundle` holds at least one PEM certificate and nothing malformed;
// kInvalidArgument naming `bundle_source` otherwise. Returns how many certificates it holds.
core::Result<size_t> CheckEkCaBundle(std::string_view ca_bundle, std::string_view bundle_source);

// Checks that `crls` holds at least one CRL (PEM or DER) and nothing malformed; kInvalidArgument
// naming `crl_source` otherwise. Returns how many CRLs it holds.
core::Result<size_t> CheckEkCrls(std::string_view crls, std::string_view crl_source);

// Verifies `ek` against a bundle of PEM certificates; every certificate in the bundle is a trust
// anchor (a root or a manufacturer's intermediate CA), so the chain may end at either. A bundle
// without a certificate or with a malformed one is kInvalidArgument naming `bundle_source`.
// With `crls` (PEM CRLs, or one DER CRL), the EK certificate must not be revoked: its issuer's
// CRL must be in `crls`, signed by that issuer and current (not past its nextUpdate); a
// malformed `crls` is kInvalidArgument naming `crl_source`.
core::Result<EkChainCheck> VerifyEkChain(const EkCertificate& ek, std::string_view ca_bundle,
                                         std::string_view bundle_source,
                                         std::string_view crls = {},
                                         std::string_view crl_source = {});

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

// KDFe (TPM 2.0 part 1, "KDFe for ECDH"; SP 800-56A concatenation KDF) with SHA-256 or SHA-384
// (`sha384`): `bits` bits of H([i]32 || z || label || 0x00 || party_u || party_v), i = 1...
std::string Kdfe(bool sha384, std::string_view z, std::string_view label,
                 std::string_view party_u, std::string_view party_v, uint32_t bits);

// What TPM2_MakeCredential returns, as it crosses the wire (the TPM2B buffers' contents).
struct CredentialChallenge {
  std::string id_object;         // TPM2B_ID_OBJECT.credential: integrityHMAC || encIdentity
  std::string encrypted_secret;  // TPM2B_ENCRYPTED_SECRET.secret: the RSA-OAEP encrypted seed
                                 // (RSA EK) or the ephemeral TPMS_ECC_POINT (ECC EK)
};

// The EK kind a challenge was made for, from the shape of its encrypted secret: 256 bytes is an
// RSA 2048 ciphertext; a marshalled TPMS_ECC_POINT with 32- or 48-byte coordinates is for a P-256
// or P-384 EK. kInvalidArgument otherwise.
core::Result<EkKind> EkKindOfChallenge(const CredentialChallenge& challenge);

// TPM2_MakeCredential for `ek`'s key, the AK's name and `secret` (1..32 bytes). `seed` (RSA EKs
// only, tests): the 32-byte seed; empty: random. With an ECC EK the seed comes from a fresh
// ephemeral key.
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
// area is a failure (the agent's fault), a malformed bundle or CRL file an error. `crls`: as for
// VerifyEkChain (a revoked EK certificate is kUntrustedEk).
core::Result<EkBinding> CheckEkBinding(const QuoteDocument& q, std::string_view ca_bundle,
                                       std::string_view bundle_source, std::string_view crls = {},
                                       std::string_view crl_source = {});

}  // namespace vigil::govern
