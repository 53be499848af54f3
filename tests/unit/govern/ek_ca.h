#pragma once

// What a TPM manufacturer's CA does besides swtpm_localca, for the EK tests: certify an EK that
// swtpm_setup did not (the ECC P-256 one, or any EK under a CA of the test's own) and publish a
// CRL. Empty strings on failure (the test asserts).
//
//   EkCa ca(swtpm_ca);  // signs with a SwtpmCa's intermediate (after a TPM was manufactured)
//   EkCa own("name");   // a fresh self-signed root that may sign CRLs (swtpm's may not)

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "swtpm.h"

namespace vigil::govern::testing {

template <typename T, typename Write>
std::string PemOf(Write write, T* object) {
  std::unique_ptr<BIO, void (*)(BIO*)> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  if (!bio || write(bio.get(), object) != 1) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

class EkCa {
 public:
  explicit EkCa(const SwtpmCa& ca) {
    if (FILE* f = std::fopen(ca.issuer_cert().c_str(), "r")) {
      cert_.reset(PEM_read_X509(f, nullptr, nullptr, nullptr));
      std::fclose(f);
    }
    if (FILE* f = std::fopen(ca.issuer_key().c_str(), "r")) {
      key_.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
      std::fclose(f);
    }
  }
  explicit EkCa(const std::string& name = "test EK CA") {
    key_.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    cert_.reset(X509_new());
    if (!key_ || !cert_) return;
    X509_set_version(cert_.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_.get()), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert_.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert_.get(), X509_get_subject_name(cert_.get()));
    X509_gmtime_adj(X509_getm_notBefore(cert_.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert_.get()), 86400);
    X509_set_pubkey(cert_.get(), key_.get());
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert_.get(), cert_.get(), nullptr, nullptr, 0);
    for (const auto& [ext_name, value] :
         {std::pair{"basicConstraints", "critical,CA:TRUE"},
          std::pair{"keyUsage", "critical,keyCertSign,cRLSign"},
          std::pair{"subjectKeyIdentifier", "hash"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf(nullptr, &ctx, ext_name, value);
      if (ext == nullptr) return;
      X509_add_ext(cert_.get(), ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (X509_sign(cert_.get(), key_.get(), EVP_sha256()) <= 0) cert_.reset();
  }

  bool ok() const { return cert_ && key_; }
  std::string bundle() const { return ok() ? PemOf(PEM_write_bio_X509, cert_.get()) : ""; }

  // A certificate for `public_key_pem` (an EK), serial `serial`.
  std::string IssueEkCertificate(const std::string& public_key_pem, long serial) const {
    std::unique_ptr<BIO, void (*)(BIO*)> in(
        BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())),
        BIO_free_all);
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pub(
        PEM_read_bio_PUBKEY(in.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    std::unique_ptr<X509, void (*)(X509*)> cert(X509_new(), X509_free);
    if (!ok() || !pub || !cert) return "";
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get()));
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("test EK"), -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
    X509_set_pubkey(cert.get(), pub.get());
    if (X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0) return "";
    return PemOf(PEM_write_bio_X509, cert.get());
  }

  // A CRL revoking the certificates in `revoked_der`, valid from an hour ago until
  // `next_update_s` from now (negative: already expired).
  std::string IssueCrl(const std::vector<std::string>& revoked_der,
                       long next_update_s = 86400) const {
    std::unique_ptr<X509_CRL, void (*)(X509_CRL*)> crl(X509_CRL_new(), X509_CRL_free);
    if (!ok() || !crl) return "";
    X509_CRL_set_version(crl.get(), 1);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert_.get()));
    const time_t now = std::time(nullptr);
    std::unique_ptr<ASN1_TIME, void (*)(ASN1_TIME*)> last(ASN1_TIME_adj(nullptr, now, 0, -3600),
                                                          ASN1_TIME_free);
    std::unique_ptr<ASN1_TIME, void (*)(ASN1_TIME*)> next(
        ASN1_TIME_adj(nullptr, now, 0, next_update_s), ASN1_TIME_free);
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const std::string& der : revoked_der) {
      const auto* p = reinterpret_cast<const unsigned char*>(der.data());
      std::unique_ptr<X509, void (*)(X509*)> c(
          d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
      if (!c) return "";
      X509_REVOKED* r = X509_REVOKED_new();
      X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(c.get()));
      X509_REVOKED_set_revocationDate(r, last.get());
      X509_CRL_add0_revoked(crl.get(), r);
    }
    X509_CRL_sort(crl.get());
    if (X509_CRL_sign(crl.get(), key_.get(), EVP_sha256()) <= 0) return "";
    return PemOf(PEM_write_bio_X509_CRL, crl.get());
  }

 private:
  std::unique_ptr<X509, void (*)(X509*)> cert_{nullptr, X509_free};
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key_{nullptr, EVP_PKEY_free};
};

}  // namespace vigil::govern::testing
