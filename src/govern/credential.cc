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

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
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

// A public key of `type` ("RSA", "EC") from the parameters in `bld`.
Owned<EVP_PKEY> KeyOfParams(const char* type, OSSL_PARAM_BLD* bld) {
  Owned<EVP_PKEY> none(nullptr, EVP_PKEY_free);
  Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld), OSSL_PARAM_free);
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return none;
  }
  return Owned<EVP_PKEY>(key, EVP_PKEY_free);
}

// An RSA public key from its modulus and exponent.
Owned<EVP_PKEY> RsaKey(const std::string& n, uint32_t e) {
  Owned<EVP_PKEY> none(nullptr, EVP_PKEY_free);
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  Owned<BIGNUM> bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                             static_cast<int>(n.size()), nullptr),
                   BN_free);
  Owned<BIGNUM> be(BN_new(), BN_free);
  if (!bld || !bn || !be || BN_set_word(be.get(), e) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, be.get()) != 1) {
    return none;
  }
  return KeyOfParams("RSA", bld.get());
}

// An ECC P-256 public key from its coordinates.
Owned<EVP_PKEY> P256Key(const TPM2B_ECC_PARAMETER& x, const TPM2B_ECC_PARAMETER& y) {
  Owned<EVP_PKEY> none(nullptr, EVP_PKEY_free);
  if (x.size > 32 || y.size > 32) return none;
  std::string point(65, '\0');
  point[0] = '\x04';
  std::memcpy(point.data() + 1 + 32 - x.size, x.buffer, x.size);
  std::memcpy(point.data() + 33 + 32 - y.size, y.buffer, y.size);
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  char group[] = "prime256v1";
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return none;
  }
  return KeyOfParams("EC", bld.get());
}

Owned<X509> X509OfDer(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return Owned<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
}

}  // namespace

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
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    return InvalidArgument(src + ": the EK is not an RSA key (only RSA 2048 EKs are supported)");
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

}  // namespace

Result<size_t> CheckEkCaBundle(std::string_view ca_bundle, std::string_view bundle_source) {
  size_t count = 0;
  VIGIL_ASSIGN_OR_RETURN(Owned<X509_STORE> store,
                         LoadEkCaBundle(ca_bundle, bundle_source, &count));
  return count;
}

Result<EkChainCheck> VerifyEkChain(const EkCertificate& ek, std::string_view ca_bundle,
                                   std::string_view bundle_source) {
  size_t count = 0;
  VIGIL_ASSIGN_OR_RETURN(Owned<X509_STORE> store,
                         LoadEkCaBundle(ca_bundle, bundle_source, &count));
  Owned<X509> cert = X509OfDer(ek.der);
  Owned<X509_STORE_CTX> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!cert || !ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return core::Internal("OpenSSL: cannot set up the EK chain check");
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN);
  EkChainCheck check;
  if (X509_verify_cert(ctx.get()) == 1) {
    check.trusted = true;
  } else {
    check.detail = "the EK certificate (" + ek.subject + ", sha256 " + ek.sha256 +
                   ") does not chain to a trusted EK CA: " +
                   X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
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
    key = RsaKey(std::string(reinterpret_cast<const char*>(p.unique.rsa.buffer), 256),
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
  std::string out;
  const size_t want = (bits + 7) / 8;
  std::string tail(label);
  tail.push_back('\0');
  tail.append(context_u);
  tail.append(context_v);
  tail += Be32(bits);
  for (uint32_t i = 1; out.size() < want; ++i) out += HmacSha256(key, Be32(i) + tail);
  out.resize(want);
  if (bits % 8 != 0) out[0] = static_cast<char>(out[0] & ((1 << (bits % 8)) - 1));
  return out;
}

Result<CredentialChallenge> MakeCredential(const EkCertificate& ek, std::string_view ak_name,
                                           std::string_view secret, std::string_view seed) {
  if (secret.empty() || secret.size() > 32) {
    return InvalidArgument("the credential's secret must be 1 to 32 bytes");
  }
  if (ak_name.size() != 34 || ak_name.substr(0, 2) != Be16(TPM2_ALG_SHA256)) {
    return InvalidArgument("the attestation key's name is not a SHA-256 name (34 bytes)");
  }
  std::string seed_bytes(seed);
  if (seed_bytes.empty()) {
    seed_bytes.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed_bytes.data()), 32) != 1) {
      return core::Internal("OpenSSL: no random bytes for the credential's seed");
    }
  }
  if (seed_bytes.size() != 32) return InvalidArgument("the seed must be 32 bytes");

  // The seed, encrypted to the EK: RSA-OAEP with SHA-256 and the label "IDENTITY" (its NUL too).
  Owned<EVP_PKEY> key = RsaKey(ek.modulus, 65537);
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

  // The secret as a TPM2B_DIGEST, encrypted with AES-128-CFB (zero IV) under a key bound to the
  // AK's name; then the HMAC over the ciphertext and the name.
  const std::string sym_key = KdfaSha256(seed_bytes, "STORAGE", ak_name, "", 128);
  const std::string plain = Be16(secret.size()) + std::string(secret);
  std::string enc_identity(plain.size(), '\0');
  Owned<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  const unsigned char iv[16] = {};
  int out_len = 0, final_len = 0;
  if (!c ||
      EVP_EncryptInit_ex(c.get(), EVP_aes_128_cfb128(), nullptr,
                         reinterpret_cast<const unsigned char*>(sym_key.data()), iv) != 1 ||
      EVP_EncryptUpdate(c.get(), reinterpret_cast<unsigned char*>(enc_identity.data()), &out_len,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.get(), reinterpret_cast<unsigned char*>(enc_identity.data()) + out_len,
                          &final_len) != 1) {
    return core::Internal("OpenSSL: AES-128-CFB failed");
  }
  const std::string hmac_key = KdfaSha256(seed_bytes, "INTEGRITY", "", "", 256);
  const std::string outer_hmac = HmacSha256(hmac_key, enc_identity + std::string(ak_name));
  CredentialChallenge out;
  out.id_object = Be16(outer_hmac.size()) + outer_hmac + enc_identity;
  out.encrypted_secret = std::move(encrypted);
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
  // integrityHMAC (TPM2B_DIGEST of a SHA-256 HMAC) then at least a TPM2B_DIGEST's size.
  if (id->size() < 2 + 32 + 3 || id->size() > kMaxIdObjectBytes ||
      (static_cast<uint8_t>((*id)[0]) << 8 | static_cast<uint8_t>((*id)[1])) != 32) {
    return InvalidArgument(src + ": \"credential_blob\" is not a TPM2B_ID_OBJECT with a SHA-256 "
                                 "integrity HMAC (37.." +
                           std::to_string(kMaxIdObjectBytes) + " bytes)");
  }
  if (secret->empty() || secret->size() > kMaxEncryptedSecretBytes) {
    return InvalidArgument(src + ": \"encrypted_secret\" must be 1.." +
                           std::to_string(kMaxEncryptedSecretBytes) + " bytes");
  }
  return CredentialChallenge{std::move(*id), std::move(*secret)};
}

Result<EkBinding> CheckEkBinding(const QuoteDocument& q, std::string_view ca_bundle,
                                 std::string_view bundle_source) {
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
  VIGIL_ASSIGN_OR_RETURN(const EkChainCheck chain, VerifyEkChain(*ek, ca_bundle, bundle_source));
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
