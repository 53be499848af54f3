#include "govern/tpm.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <cstdlib>
#include <cstring>

namespace vigil::govern {

using core::Result;
using core::Status;

struct Tpm::Handles {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* esys = nullptr;
  ~Handles() {
    if (esys != nullptr) Esys_Finalize(&esys);
    if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
  }
};

namespace {

TPML_PCR_SELECTION Selection(const std::vector<uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t p : pcrs) sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
  return sel;
}

// The attestation key's template: restricted ECC P-256 signing key, ECDSA with SHA-256.
TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

std::string Padded(const TPM2B_ECC_PARAMETER& v) {
  std::string out(32 - std::min<size_t>(v.size, 32), '\0');
  out.append(reinterpret_cast<const char*>(v.buffer), std::min<size_t>(v.size, 32));
  return out;
}

Result<std::string> EccPem(const TPMT_PUBLIC& pub) {
  if (pub.type != TPM2_ALG_ECC || pub.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
    return core::Internal("the TPM returned an attestation key that is not ECC P-256");
  }
  const std::string point =
      std::string(1, '\x04') + Padded(pub.unique.ecc.x) + Padded(pub.unique.ecc.y);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* key = nullptr;
  BIO* bio = nullptr;
  std::string pem;
  char group[] = "prime256v1";
  if (bld != nullptr &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ==
          1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr &&
      (ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)) != nullptr &&
      EVP_PKEY_fromdata_init(ctx) == 1 &&
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
      (bio = BIO_new(BIO_s_mem())) != nullptr && PEM_write_bio_PUBKEY(bio, key) == 1) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    if (len > 0) pem.assign(data, static_cast<size_t>(len));
  }
  BIO_free_all(bio);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  if (pem.empty()) return core::Internal("encoding the attestation key as PEM failed (OpenSSL)");
  return pem;
}

}  // namespace

Tpm::Tpm(std::string tcti) : tcti_(std::move(tcti)), h_(std::make_unique<Handles>()) {}
Tpm::~Tpm() = default;

Status Tpm::Check(uint32_t rc, const char* command) const {
  if (rc == TSS2_RC_SUCCESS) return Status::Ok();
  return core::Unavailable(std::string("TPM (") + tcti_ + "): " + command + ": " +
                           Tss2_RC_Decode(rc));
}

Result<std::unique_ptr<Tpm>> Tpm::Open(const std::string& tcti) {
  if (tcti.empty()) return core::InvalidArgument("no TPM configured (attestation.tcti is empty)");
  // tpm2-tss logs its own errors to stderr; ours say the same with the context. TSS2_LOG set by
  // the user still wins.
  setenv("TSS2_LOG", "all+none", /*overwrite=*/0);
  std::unique_ptr<Tpm> t(new Tpm(tcti));
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &t->h_->tcti);
  if (rc != TSS2_RC_SUCCESS) {
    t->h_->tcti = nullptr;
    return core::Unavailable("TPM: cannot open TCTI \"" + tcti + "\": " + Tss2_RC_Decode(rc));
  }
  VIGIL_RETURN_IF_ERROR(t->Check(Esys_Initialize(&t->h_->esys, t->h_->tcti, nullptr),
                                 "Esys_Initialize"));
  return t;
}

Status Tpm::Startup() {
  const TSS2_RC rc = Esys_Startup(h_->esys, TPM2_SU_CLEAR);
  if (rc == TPM2_RC_INITIALIZE) return Status::Ok();  // already started
  return Check(rc, "TPM2_Startup");
}

Status Tpm::ResetPcr(uint32_t pcr) {
  if (!IsResettablePcr(pcr)) {
    return core::InvalidArgument("PCR " + std::to_string(pcr) +
                                 " cannot be reset from locality 0 (use 16 or 23)");
  }
  return Check(Esys_PCR_Reset(h_->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                              ESYS_TR_NONE),
               "TPM2_PCR_Reset");
}

Status Tpm::ExtendPcr(uint32_t pcr, const Sha256Digest& digest) {
  if (pcr > kMaxPcr) return core::InvalidArgument("PCR " + std::to_string(pcr) + " > 23");
  TPML_DIGEST_VALUES values{};
  values.count = 1;
  values.digests[0].hashAlg = TPM2_ALG_SHA256;
  std::memcpy(values.digests[0].digest.sha256, digest.data(), digest.size());
  return Check(Esys_PCR_Extend(h_->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, &values),
               "TPM2_PCR_Extend");
}

Result<Sha256Digest> Tpm::ReadPcr(uint32_t pcr) {
  if (pcr > kMaxPcr) return core::InvalidArgument("PCR " + std::to_string(pcr) + " > 23");
  const TPML_PCR_SELECTION sel = Selection({pcr});
  UINT32 counter = 0;
  TPML_PCR_SELECTION* out_sel = nullptr;
  TPML_DIGEST* values = nullptr;
  VIGIL_RETURN_IF_ERROR(Check(Esys_PCR_Read(h_->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                            &sel, &counter, &out_sel, &values),
                              "TPM2_PCR_Read"));
  Sha256Digest d{};
  const bool ok = values != nullptr && values->count == 1 && values->digests[0].size == 32;
  if (ok) std::memcpy(d.data(), values->digests[0].buffer, 32);
  Esys_Free(out_sel);
  Esys_Free(values);
  if (!ok) {
    return core::Unavailable("TPM (" + tcti_ + "): PCR " + std::to_string(pcr) +
                             " has no sha256 value (is the sha256 bank allocated?)");
  }
  return d;
}

Result<TpmQuote> Tpm::Quote(const std::vector<uint32_t>& pcrs, const std::string& nonce) {
  if (nonce.size() < kMinNonceBytes || nonce.size() > kMaxNonceBytes) {
    return core::InvalidArgument("the nonce must be " + std::to_string(kMinNonceBytes) + " to " +
                                 std::to_string(kMaxNonceBytes) + " bytes");
  }
  if (pcrs.empty()) return core::InvalidArgument("no PCR to quote");
  for (uint32_t p : pcrs) {
    if (p > kMaxPcr) return core::InvalidArgument("PCR " + std::to_string(p) + " > 23");
  }
  TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_PUBLIC tmpl = AkTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcrs{};
  ESYS_TR ak = ESYS_TR_NONE;
  TPM2B_PUBLIC* ak_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  VIGIL_RETURN_IF_ERROR(Check(
      Esys_CreatePrimary(h_->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creation_pcrs, &ak,
                         &ak_public, &creation_data, &creation_hash, &creation_ticket),
      "TPM2_CreatePrimary (attestation key under the endorsement hierarchy)"));
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(creation_ticket);
  auto pem = EccPem(ak_public->publicArea);
  Esys_Free(ak_public);
  if (!pem.has_value()) {
    Esys_FlushContext(h_->esys, ak);
    return pem.error();
  }

  TPM2B_DATA qualifying{};
  qualifying.size = static_cast<UINT16>(nonce.size());
  std::memcpy(qualifying.buffer, nonce.data(), nonce.size());
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;  // the key's own scheme (ECDSA/SHA-256)
  const TPML_PCR_SELECTION sel = Selection(pcrs);
  TPM2B_ATTEST* quoted = nullptr;
  TPMT_SIGNATURE* signature = nullptr;
  const TSS2_RC rc = Esys_Quote(h_->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                &qualifying, &scheme, &sel, &quoted, &signature);
  Esys_FlushContext(h_->esys, ak);
  VIGIL_RETURN_IF_ERROR(Check(rc, "TPM2_Quote"));
  TpmQuote q;
  q.attest.assign(reinterpret_cast<const char*>(quoted->attestationData), quoted->size);
  uint8_t buf[sizeof(TPMT_SIGNATURE)];
  size_t len = 0;
  const TSS2_RC mrc = Tss2_MU_TPMT_SIGNATURE_Marshal(signature, buf, sizeof(buf), &len);
  Esys_Free(quoted);
  Esys_Free(signature);
  VIGIL_RETURN_IF_ERROR(Check(mrc, "marshalling the quote's signature"));
  q.signature.assign(reinterpret_cast<const char*>(buf), len);
  q.ak_public_pem = std::move(pem).value();
  return q;
}

Result<std::string> Tpm::Random(size_t bytes) {
  std::string out;
  while (out.size() < bytes) {
    TPM2B_DIGEST* r = nullptr;
    const auto want = static_cast<UINT16>(std::min<size_t>(bytes - out.size(), 32));
    VIGIL_RETURN_IF_ERROR(Check(
        Esys_GetRandom(h_->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &r),
        "TPM2_GetRandom"));
    out.append(reinterpret_cast<const char*>(r->buffer), r->size);
    Esys_Free(r);
  }
  out.resize(bytes);
  return out;
}

}  // namespace vigil::govern
