#include "govern/credential.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>

#include "govern/internal/openssl.h"

namespace vigil::govern {

using core::InvalidArgument;
using core::Result;
using internal::Owned;

namespace {

constexpr size_t kEkModulusBytes = 256;

std::string Be16(size_t v) {
  return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
          static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

std::string HmacOf(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string DigestOf(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

// KDFa with HMAC over `md` (see KdfaSha256).
std::string Kdfa(const EVP_MD* md, std::string_view key, std::string_view label,
                 std::string_view context_u, std::string_view context_v, uint32_t bits) {
  std::string out;
  const size_t want = (bits + 7) / 8;
  std::string tail(label);
  tail.push_back('\0');
  tail.append(context_u);
  tail.append(context_v);
  tail += Be32(bits);
  for (uint32_t i = 1; out.size() < want; ++i) out += HmacOf(md, key, Be32(i) + tail);
  out.resize(want);
  if (bits % 8 != 0) out[0] = static_cast<char>(out[0] & ((1 << (bits % 8)) - 1));
  return out;
}

// What the TCG default template of an EK kind fixes for credential protection.
struct EkScheme {
  const EVP_MD* md;          // the EK's name algorithm: KDFs, the integrity HMAC
  const EVP_CIPHER* cipher;  // the EK's symmetric algorithm (CFB mode)
  int key_bits;
  size_t coordinate_bytes;  // ECC: the field size; 0 for RSA
  const char* group;        // ECC: OpenSSL's group name
};
EkScheme SchemeOf(EkKind kind) {
  switch (kind) {
    case EkKind::kEccP256:
      return {EVP_sha256(), EVP_aes_128_cfb128(), 128, 32, "prime256v1"};
    case EkKind::kEccP384:
      return {EVP_sha384(), EVP_aes_256_cfb128(), 256, 48, "secp384r1"};
    case EkKind::kRsa2048:
      break;
  }
  return {EVP_sha256(), EVP_aes_128_cfb128(), 128, 0, nullptr};
}

std::string BnBytes(const BIGNUM* bn) {
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string OpenSslReason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown reason";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// An ECC P-256 public key from its coordinates.
Owned<EVP_PKEY> P256Key(const TPM2B_ECC_PARAMETER& x, const TPM2B_ECC_PARAMETER& y) {
  return internal::EcPublicKey("prime256v1", 32, std::string_view(reinterpret_cast<const char*>(x.buffer), x.size),
               std::string_view(reinterpret_cast<const char*>(y.buffer), y.size));
}

// `key`'s EC point as big-endian coordinates of `n` bytes each; false when it has none.
bool EcCoordinates(EVP_PKEY* key, size_t n, std::string* x, std::string* y) {
  BIGNUM* bx = nullptr;
  BIGNUM* by = nullptr;
  const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
                   EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
                   BN_num_bytes(bx) <= static_cast<int>(n) && BN_num_bytes(by) <= static_cast<int>(n);
  if (got) {
    x->assign(n, '\0');
    y->assign(n, '\0');
    BN_bn2binpad(bx, reinterpret_cast<unsigned char*>(x->data()), static_cast<int>(n));
    BN_bn2binpad(by, reinterpret_cast<unsigned char*>(y->data()), static_cast<int>(n));
  }
  BN_free(bx);
  BN_free(by);
  ERR_clear_error();
  return got;
}

Owned<X509> X509OfDer(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return Owned<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
}

}  // namespace

const char* EkKindName(EkKind kind) {
  switch (kind) {
    case EkKind::kEccP256:
      return "ecc-p256";
    case EkKind::kEccP384:
      return "ecc-p384";
    case EkKind::kRsa2048:
      break;
  }
  return "rsa2048";
}

std::optional<EkKind> EkKindOfName(std::string_view name) {
  for (EkKind k : kAllEkKinds) {
    if (name == EkKindName(k)) return k;
  }
  return std::nullopt;
}

uint32_t EkCertNvIndex(EkKind kind) {
  switch (kind) {
    case EkKind::kEccP256:
      return kEkCertNvIndexEccP256;
    case EkKind::kEccP384:
      return kEkCertNvIndexEccP384;
    case EkKind::kRsa2048:
      break;
  }
  return kEkCertNvIndexRsa;
}

Result<EkCertificate> ParseEkCertificate(std::string_view bytes, std::string_view source) {
  const std::string src(source);
  if (bytes.empty()) return InvalidArgument(src + ": empty (no EK certificate)");
  if (bytes.size() > 2 * kMaxEkCertBytes) {
    return InvalidArgument(src + ": larger than " + std::to_string(2 * kMaxEkCertBytes) + " bytes");
  }
  Owned<X509> cert(nullptr, X509_free);
  EkCertificate ek;
  if (bytes.find("-----BEGIN") != std::string_view::npos) {
    Owned<BIO> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), BIO_free_all);
    cert.reset(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) return InvalidArgument(src + ": not a PEM certificate (" + OpenSslReason() + ")");
  } else {
    // DER, as a TPM's NV index holds it; NV areas may be padded with zero bytes after it.
    const auto* start = reinterpret_cast<const unsigned char*>(bytes.data());
    const unsigned char* p = start;
    cert.reset(d2i_X509(nullptr, &p, static_cast<long>(bytes.size())));
    if (!cert) return InvalidArgument(src + ": not a DER certificate (" + OpenSslReason() + ")");
    const std::string_view rest = bytes.substr(static_cast<size_t>(p - start));
    if (std::any_of(rest.begin(), rest.end(), [](char c) { return c != '\0'; })) {
      return InvalidArgument(src + ": bytes after the certificate");
    }
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0) return InvalidArgument(src + ": cannot re-encode the certificate");
  ek.der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  if (ek.der.size() > kMaxEkCertBytes) {
    return InvalidArgument(src + ": larger than " + std::to_string(kMaxEkCertBytes) + " bytes");
  }
  Owned<BIO> name(BIO_new(BIO_s_mem()), BIO_free_all);
  if (name && X509_NAME_print_ex(name.get(), X509_get_subject_name(cert.get()), 0,
                                 XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(name.get(), &data);
    if (len > 0) ek.subject.assign(data, static_cast<size_t>(std::min<long>(len, 512)));
  }
  if (ek.subject.empty()) ek.subject = "(empty subject)";
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key != nullptr && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
    char group[64] = {};
    size_t group_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &group_len) != 1) {
      ERR_clear_error();
      return InvalidArgument(src + ": the EK's ECC key has no named curve");
    }
    const std::string_view g(group, group_len);
    if (g == "prime256v1" || g == "P-256") {
      ek.kind = EkKind::kEccP256;
    } else if (g == "secp384r1" || g == "P-384") {
      ek.kind = EkKind::kEccP384;
    } else {
      return InvalidArgument(src + ": the EK's curve " + std::string(g) +
                             " is not NIST P-256 or P-384");
    }
    if (!EcCoordinates(key, SchemeOf(ek.kind).coordinate_bytes, &ek.ecc_x, &ek.ecc_y)) {
      return InvalidArgument(src + ": the EK's ECC point cannot be read");
    }
    ek.sha256 = HexOf(Sha256Of(ek.der));
    return ek;
  }
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    return InvalidArgument(src + ": the EK is neither an RSA nor an ECC key");
  }
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  const bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                   EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1;
  const bool shape = got && BN_num_bytes(n) == static_cast<int>(kEkModulusBytes) &&
                     BN_is_word(e, 65537);
  if (shape) ek.modulus = BnBytes(n);
  BN_free(n);
  BN_free(e);
  if (!shape) {
    return InvalidArgument(src + ": the EK is not RSA 2048 with exponent 65537 (the TCG default "
                                 "EK template)");
  }
  ek.sha256 = HexOf(Sha256Of(ek.der));
  return ek;
}

std::string EkCertificatePem(const EkCertificate& ek) {
  Owned<X509> cert = X509OfDer(ek.der);
  Owned<BIO> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  if (!cert || !bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

namespace {

// The bundle's certificates as trust anchors of a new store.
Result<Owned<X509_STORE>> LoadEkCaBundle(std::string_view ca_bundle, std::string_view source,
                                         size_t* count) {
  const std::string src(source);
  if (ca_bundle.size() > kMaxCaBundleBytes) return InvalidArgument(src + ": larger than 1 MiB");
  Owned<X509_STORE> store(X509_STORE_new(), X509_STORE_free);
  Owned<BIO> bio(BIO_new_mem_buf(ca_bundle.data(), static_cast<int>(ca_bundle.size())),
                 BIO_free_all);
  if (!store || !bio) return core::Internal("out of memory");
  *count = 0;
  for (;;) {
    Owned<X509> ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (!ca) break;
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) ERR_clear_error();  // a repeat
    ++*count;
  }
  const unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  if (*count == 0) return InvalidArgument(src + ": no PEM certificate in the EK CA bundle");
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
    return InvalidArgument(src + ": certificate " + std::to_string(*count + 1) +
                           " of the EK CA bundle is malformed");
  }
  return store;
}

// Adds the CRLs in `crls` (PEM, one or more; or one DER CRL) to `store` (may be null: only
// checked); returns how many.
Result<size_t> LoadCrls(std::string_view crls, std::string_view source, X509_STORE* store) {
  const std::string src(source);
  if (crls.empty()) return InvalidArgument(src + ": empty (no CRL)");
  if (crls.size() > kMaxCrlBytes) {
    return InvalidArgument(src + ": larger than " + std::to_string(kMaxCrlBytes >> 20) + " MiB");
  }
  auto add = [store](X509_CRL* crl) {
    if (store != nullptr && X509_STORE_add_crl(store, crl) != 1) ERR_clear_error();  // a repeat
  };
  size_t count = 0;
  if (crls.find("-----BEGIN") == std::string_view::npos) {
    const auto* start = reinterpret_cast<const unsigned char*>(crls.data());
    const unsigned char* p = start;
    Owned<X509_CRL> crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(crls.size())),
                        X509_CRL_free);
    if (!crl) return InvalidArgument(src + ": not a PEM or DER CRL (" + OpenSslReason() + ")");
    if (p != start + crls.size()) return InvalidArgument(src + ": bytes after the DER CRL");
    add(crl.get());
    return size_t{1};
  }
  Owned<BIO> bio(BIO_new_mem_buf(crls.data(), static_cast<int>(crls.size())), BIO_free_all);
  if (!bio) return core::Internal("out of memory");
  for (;;) {
    Owned<X509_CRL> crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr),
                        X509_CRL_free);
    if (!crl) break;
    add(crl.get());
    ++count;
  }
  const unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  if (count == 0) return InvalidArgument(src + ": no PEM CRL (\"X509 CRL\") in the file");
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
    return InvalidArgument(src + ": CRL " + std::to_string(count + 1) + " is malformed");
  }
  return count;
}

}  // namespace

Result<size_t> CheckEkCrls(std::string_view crls, std::string_view crl_source) {
  return LoadCrls(crls, crl_source, nullptr);
}

Result<size_t> CheckEkCaBundle(std::string_view ca_bundle, std::string_view bundle_source) {
  size_t count = 0;
  VIGIL_ASSIGN_OR_RETURN(Owned<X509_STORE> store,
                         LoadEkCaBundle(ca_bundle, bundle_source, &count));
  return count;
}

Result<EkChainCheck> VerifyEkChain(const EkCertificate& ek, std::string_view ca_bundle,
                                   std::string_view bundle_source, std::string_view crls,
                                   std::string_view crl_source) {
  size_t count = 0;
  VIGIL_ASSIGN_OR_RETURN(Owned<X509_STORE> store,
                         LoadEkCaBundle(ca_bundle, bundle_source, &count));
  if (!crls.empty()) {
    auto loaded = LoadCrls(crls, crl_source, store.get());
    if (!loaded.has_value()) return loaded.error();
  }
  Owned<X509> cert = X509OfDer(ek.der);
  Owned<X509_STORE_CTX> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!cert || !ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return core::Internal("OpenSSL: cannot set up the EK chain check");
  }
  // The EK certificate's own revocation (its issuer's CRL); the CA certificates in the bundle are
  // trust anchors, whose revocation a bundle update handles.
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN |
                                          (crls.empty() ? 0 : X509_V_FLAG_CRL_CHECK));
  EkChainCheck check;
  if (X509_verify_cert(ctx.get()) == 1) {
    check.trusted = true;
  } else {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const bool revocation =
        err == X509_V_ERR_CERT_REVOKED || err == X509_V_ERR_UNABLE_TO_GET_CRL ||
        err == X509_V_ERR_CRL_HAS_EXPIRED || err == X509_V_ERR_CRL_NOT_YET_VALID ||
        err == X509_V_ERR_CRL_SIGNATURE_FAILURE ||
        err == X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER || err == X509_V_ERR_KEYUSAGE_NO_CRL_SIGN;
    check.detail = "the EK certificate (" + ek.subject + ", sha256 " + ek.sha256 + ") " +
                   (revocation ? "fails the revocation check against " + std::string(crl_source)
                               : std::string("does not chain to a trusted EK CA")) +
                   ": " + X509_verify_cert_error_string(err);
  }
  ERR_clear_error();
  return check;
}

Result<AkPublic> ParseAkPublic(std::string_view tpm2b_public, std::string_view source) {
  const std::string src(source);
  TPM2B_PUBLIC pub{};
  size_t offset = 0;
  if (tpm2b_public.size() < 2 ||
      Tss2_MU_TPM2B_PUBLIC_Unmarshal(reinterpret_cast<const uint8_t*>(tpm2b_public.data()),
                                     tpm2b_public.size(), &offset, &pub) != TSS2_RC_SUCCESS ||
      offset != tpm2b_public.size() || pub.size + 2u != tpm2b_public.size()) {
    return InvalidArgument(src + ": not a marshalled TPM2B_PUBLIC");
  }
  const TPMT_PUBLIC& p = pub.publicArea;
  if (p.nameAlg != TPM2_ALG_SHA256) return InvalidArgument(src + ": the name algorithm is not SHA-256");
  const TPMA_OBJECT want = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                           TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |
                           TPMA_OBJECT_SIGN_ENCRYPT;
  if ((p.objectAttributes & want) != want || (p.objectAttributes & TPMA_OBJECT_DECRYPT) != 0) {
    return InvalidArgument(src + ": not an attestation key (it must be fixedTPM, fixedParent, "
                                 "sensitiveDataOrigin, restricted and sign, not decrypt)");
  }
  Owned<EVP_PKEY> key(nullptr, EVP_PKEY_free);
  if (p.type == TPM2_ALG_ECC) {
    const TPMS_ECC_PARMS& e = p.parameters.eccDetail;
    if (e.curveID != TPM2_ECC_NIST_P256 || e.scheme.scheme != TPM2_ALG_ECDSA ||
        e.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) {
      return InvalidArgument(src + ": an ECC attestation key must be P-256 with ECDSA/SHA-256");
    }
    key = P256Key(p.unique.ecc.x, p.unique.ecc.y);
  } else if (p.type == TPM2_ALG_RSA) {
    const TPMS_RSA_PARMS& r = p.parameters.rsaDetail;
    if (r.keyBits != 2048 || r.scheme.scheme != TPM2_ALG_RSASSA ||
        r.scheme.details.rsassa.hashAlg != TPM2_ALG_SHA256 || p.unique.rsa.size != 256) {
      return InvalidArgument(src + ": an RSA attestation key must be 2048 bits with "
                                   "RSASSA/SHA-256");
    }
    key = internal::RsaPublicKey(std::string(reinterpret_cast<const char*>(p.unique.rsa.buffer), 256),
                 r.exponent == 0 ? 65537 : r.exponent);
  } else {
    return InvalidArgument(src + ": the attestation key is neither ECC nor RSA");
  }
  if (!key) return InvalidArgument(src + ": the public key is not a valid point or modulus");
  AkPublic ak;
  ak.tpm_public = std::string(tpm2b_public);
  ak.pem = internal::PemOfPublicKey(key.get());
  if (ak.pem.empty()) return core::Internal("encoding the attestation key as PEM failed");
  const Sha256Digest d = Sha256Of(tpm2b_public.substr(2));  // the TPMT_PUBLIC as marshalled
  ak.name = Be16(TPM2_ALG_SHA256) + std::string(reinterpret_cast<const char*>(d.data()), d.size());
  return ak;
}

std::string KdfaSha256(std::string_view key, std::string_view label, std::string_view context_u,
                       std::string_view context_v, uint32_t bits) {
  return Kdfa(EVP_sha256(), key, label, context_u, context_v, bits);
}

std::string Kdfe(bool sha384, std::string_view z, std::string_view label,
                 std::string_view party_u, std::string_view party_v, uint32_t bits) {
  const EVP_MD* md = sha384 ? EVP_sha384() : EVP_sha256();
  std::string out;
  const size_t want = (bits + 7) / 8;
  std::string tail(z);
  tail.append(label);
  tail.push_back('\0');
  tail.append(party_u);
  tail.append(party_v);
  for (uint32_t i = 1; out.size() < want; ++i) out += DigestOf(md, Be32(i) + tail);
  out.resize(want);
  if (bits % 8 != 0) out[0] = static_cast<char>(out[0] & ((1 << (bits % 8)) - 1));
  return out;
}

Result<EkKind> EkKindOfChallenge(const CredentialChallenge& challenge) {
  const std::string& s = challenge.encrypted_secret;
  if (s.size() == kEkModulusBytes) return EkKind::kRsa2048;
  TPMS_ECC_POINT point{};
  size_t offset = 0;
  if (Tss2_MU_TPMS_ECC_POINT_Unmarshal(reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                                       &offset, &point) == TSS2_RC_SUCCESS &&
      offset == s.size() && point.x.size == point.y.size) {
    if (point.x.size == 32) return EkKind::kEccP256;
    if (point.x.size == 48) return EkKind::kEccP384;
  }
  return InvalidArgument("the credential's encrypted secret (" + std::to_string(s.size()) +
                         " bytes) is neither an RSA 2048 ciphertext nor a P-256 or P-384 point");
}

namespace {

// The seed shared with an RSA EK: random (or `seed`), encrypted with RSA-OAEP (SHA-256, label
// "IDENTITY" with its NUL).
Result<std::string> RsaSeed(const EkCertificate& ek, std::string_view seed,
                            std::string* encrypted_out) {
  std::string seed_bytes(seed);
  if (seed_bytes.empty()) {
    seed_bytes.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed_bytes.data()), 32) != 1) {
      return core::Internal("OpenSSL: no random bytes for the credential's seed");
    }
  }
  if (seed_bytes.size() != 32) return InvalidArgument("the seed must be 32 bytes");
  Owned<EVP_PKEY> key = internal::RsaPublicKey(ek.modulus, 65537);
  Owned<EVP_PKEY_CTX> ctx(key ? EVP_PKEY_CTX_new(key.get(), nullptr) : nullptr, EVP_PKEY_CTX_free);
  static const char kLabel[] = "IDENTITY";
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  std::string encrypted(512, '\0');
  size_t encrypted_len = encrypted.size();
  const bool ok =
      ctx && label != nullptr && EVP_PKEY_encrypt_init(ctx.get()) == 1 &&
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) == 1 &&
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, static_cast<int>(sizeof(kLabel))) == 1 &&
      (label = nullptr, true) &&
      EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(encrypted.data()),
                       &encrypted_len, reinterpret_cast<const unsigned char*>(seed_bytes.data()),
                       seed_bytes.size()) == 1;
  OPENSSL_free(label);
  if (!ok) return core::Internal("OpenSSL: encrypting the seed to the EK: " + OpenSslReason());
  encrypted.resize(encrypted_len);
  *encrypted_out = std::move(encrypted);
  return seed_bytes;
}

// The seed shared with an ECC EK (part 1, "ECDH" secret sharing): an ephemeral key on the EK's
// curve; Z, the x-coordinate of the ECDH product with the EK; seed = KDFe(nameAlg, Z, "IDENTITY",
// ephemeral x, EK x, digest bits). The ephemeral public point, as a TPMS_ECC_POINT, is what the
// TPM gets to recompute Z with the EK's private key.
Result<std::string> EcdhSeed(const EkCertificate& ek, std::string* encrypted_out) {
  const EkScheme scheme = SchemeOf(ek.kind);
  const size_t n = scheme.coordinate_bytes;
  Owned<EVP_PKEY> ek_key = internal::EcPublicKey(scheme.group, n, ek.ecc_x, ek.ecc_y);
  if (!ek_key) return InvalidArgument("the EK's ECC point is not on its curve");
  Owned<EVP_PKEY> ephemeral(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", scheme.group),
                            EVP_PKEY_free);
  std::string ex, ey;
  if (!ephemeral || !EcCoordinates(ephemeral.get(), n, &ex, &ey)) {
    return core::Internal("OpenSSL: cannot make an ephemeral ECC key: " + OpenSslReason());
  }
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(ephemeral.get(), nullptr), EVP_PKEY_CTX_free);
  std::string z(n, '\0');
  size_t z_len = z.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), ek_key.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(z.data()), &z_len) != 1 ||
      z_len != n) {
    return core::Internal("OpenSSL: ECDH with the EK failed: " + OpenSslReason());
  }
  const uint32_t digest_bits = static_cast<uint32_t>(EVP_MD_get_size(scheme.md)) * 8;
  std::string seed = Kdfe(scheme.md == EVP_sha384(), z, "IDENTITY", ex, ek.ecc_x, digest_bits);
  OPENSSL_cleanse(z.data(), z.size());
  *encrypted_out = Be16(n) + ex + Be16(n) + ey;
  return seed;
}

}  // namespace

Result<CredentialChallenge> MakeCredential(const EkCertificate& ek, std::string_view ak_name,
                                           std::string_view secret, std::string_view seed) {
  if (secret.empty() || secret.size() > 32) {
    return InvalidArgument("the credential's secret must be 1 to 32 bytes");
  }
  if (ak_name.size() != 34 || ak_name.substr(0, 2) != Be16(TPM2_ALG_SHA256)) {
    return InvalidArgument("the attestation key's name is not a SHA-256 name (34 bytes)");
  }
  if (!seed.empty() && ek.kind != EkKind::kRsa2048) {
    return InvalidArgument("a chosen seed is for RSA EKs only (an ECC EK's comes from ECDH)");
  }
  const EkScheme scheme = SchemeOf(ek.kind);
  CredentialChallenge out;
  VIGIL_ASSIGN_OR_RETURN(std::string seed_bytes,
                         ek.kind == EkKind::kRsa2048
                             ? RsaSeed(ek, seed, &out.encrypted_secret)
                             : EcdhSeed(ek, &out.encrypted_secret));

  // The secret as a TPM2B_DIGEST, encrypted with the EK's symmetric algorithm in CFB mode (zero
  // IV) under a key bound to the AK's name; then the HMAC over the ciphertext and the name, both
  // keyed from the seed with the EK's name algorithm.
  const std::string sym_key = Kdfa(scheme.md, seed_bytes, "STORAGE", ak_name, "",
                                   static_cast<uint32_t>(scheme.key_bits));
  const std::string plain = Be16(secret.size()) + std::string(secret);
  std::string enc_identity(plain.size(), '\0');
  Owned<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  const unsigned char iv[16] = {};
  int out_len = 0, final_len = 0;
  if (!c ||
      EVP_EncryptInit_ex(c.get(), scheme.cipher, nullptr,
                         reinterpret_cast<const unsigned char*>(sym_key.data()), iv) != 1 ||
      EVP_EncryptUpdate(c.get(), reinterpret_cast<unsigned char*>(enc_identity.data()), &out_len,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.get(), reinterpret_cast<unsigned char*>(enc_identity.data()) + out_len,
                          &final_len) != 1) {
    OPENSSL_cleanse(seed_bytes.data(), seed_bytes.size());
    return core::Internal("OpenSSL: AES-CFB failed");
  }
  const std::string hmac_key = Kdfa(scheme.md, seed_bytes, "INTEGRITY", "", "",
                                    static_cast<uint32_t>(EVP_MD_get_size(scheme.md)) * 8);
  OPENSSL_cleanse(seed_bytes.data(), seed_bytes.size());
  const std::string outer_hmac = HmacOf(scheme.md, hmac_key, enc_identity + std::string(ak_name));
  out.id_object = Be16(outer_hmac.size()) + outer_hmac + enc_identity;
  return out;
}

Result<CredentialChallenge> ParseCredentialChallenge(std::string_view id_object_hex,
                                                     std::string_view encrypted_secret_hex,
                                                     std::string_view source) {
  const std::string src(source);
  auto id = BytesOfHex(id_object_hex);
  auto secret = BytesOfHex(encrypted_secret_hex);
  if (!id) return InvalidArgument(src + ": \"credential_blob\" is not hex");
  if (!secret) return InvalidArgument(src + ": \"encrypted_secret\" is not hex");
  // integrityHMAC (TPM2B_DIGEST of a SHA-256 or SHA-384 HMAC) then at least a TPM2B_DIGEST's
  // size.
  const size_t hmac_size =
      id->size() < 2 ? 0 : (static_cast<uint8_t>((*id)[0]) << 8 | static_cast<uint8_t>((*id)[1]));
  if (id->size() < 2 + 32 + 3 || id->size() > kMaxIdObjectBytes ||
      (hmac_size != 32 && hmac_size != 48) || id->size() < 2 + hmac_size + 3) {
    return InvalidArgument(src + ": \"credential_blob\" is not a TPM2B_ID_OBJECT with a SHA-256 "
                                 "or SHA-384 integrity HMAC (37.." +
                           std::to_string(kMaxIdObjectBytes) + " bytes)");
  }
  if (secret->empty() || secret->size() > kMaxEncryptedSecretBytes) {
    return InvalidArgument(src + ": \"encrypted_secret\" must be 1.." +
                           std::to_string(kMaxEncryptedSecretBytes) + " bytes");
  }
  return CredentialChallenge{std::move(*id), std::move(*secret)};
}

Result<EkBinding> CheckEkBinding(const QuoteDocument& q, std::string_view ca_bundle,
                                 std::string_view bundle_source, std::string_view crls,
                                 std::string_view crl_source) {
  EkBinding b;
  auto fail = [&b](QuoteFailure f, std::string detail) {
    b.failure = f;
    b.detail = std::move(detail);
    return b;
  };
  if (q.ek_certificate_pem.empty()) {
    return fail(QuoteFailure::kUntrustedEk,
                "the quote carries no EK certificate (\"ek_certificate\")");
  }
  auto ek = ParseEkCertificate(q.ek_certificate_pem, "ek_certificate");
  if (!ek.has_value()) return fail(QuoteFailure::kUntrustedEk, ek.error().message());
  VIGIL_ASSIGN_OR_RETURN(const EkChainCheck chain,
                         VerifyEkChain(*ek, ca_bundle, bundle_source, crls, crl_source));
  if (!chain.trusted) return fail(QuoteFailure::kUntrustedEk, chain.detail);
  b.ek = std::move(ek).value();
  if (q.ak_tpm_public.empty()) {
    return fail(QuoteFailure::kBadAttestationKey,
                "the quote carries no attestation key public area (\"ak_tpm_public\")");
  }
  auto ak = ParseAkPublic(q.ak_tpm_public, "ak_tpm_public");
  if (!ak.has_value()) return fail(QuoteFailure::kBadAttestationKey, ak.error().message());
  auto signer = internal::PublicKeyOfPem(q.ak_public_pem, "ak_public");
  auto declared = internal::PublicKeyOfPem(ak->pem, "ak_tpm_public");
  if (!signer.has_value() || !declared.has_value() ||
      EVP_PKEY_eq(signer->get(), declared->get()) != 1) {
    return fail(QuoteFailure::kBadAttestationKey,
                "\"ak_tpm_public\" is not the key in \"ak_public\" that signed the quote");
  }
  b.ak = std::move(ak).value();
  return b;
}

}  // namespace vigil::govern
