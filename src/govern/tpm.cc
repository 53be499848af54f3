#include "govern/tpm.h"

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "govern/internal/openssl.h"

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

// PolicyA of the TCG EK Credential Profile with SHA-256: PolicySecret(TPM_RH_ENDORSEMENT), the
// authPolicy of templates L-1 and L-2.
constexpr uint8_t kPolicyASha256[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
// PolicyB with SHA-384 (PolicyOR of PolicyA and PolicyC), the authPolicy of template H-3.
constexpr uint8_t kPolicyBSha384[48] = {
    0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
    0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
    0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12};

// An ECC EK's parameters: AES-`aes_bits`-CFB, no signing scheme, no KDF, on `curve`.
void SetEccEkParameters(TPMS_ECC_PARMS* e, uint16_t aes_bits, TPM2_ECC_CURVE curve) {
  e->symmetric.algorithm = TPM2_ALG_AES;
  e->symmetric.keyBits.aes = aes_bits;
  e->symmetric.mode.aes = TPM2_ALG_CFB;
  e->scheme.scheme = TPM2_ALG_NULL;
  e->curveID = curve;
  e->kdf.scheme = TPM2_ALG_NULL;
}

// The TCG EK Credential Profile's default templates: L-1 (RSA 2048), L-2 (ECC P-256), both
// SHA-256 and AES-128-CFB with PolicyA and no userWithAuth; H-3 (ECC P-384, SHA-384, AES-256-CFB,
// PolicyB, userWithAuth with the empty authValue). These are the keys a manufacturer (or
// swtpm_setup --create-ek-cert) certifies.
TPM2B_PUBLIC EkTemplate(EkKind kind) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  if (kind == EkKind::kEccP384) {
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA384;
    p.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
    p.authPolicy.size = sizeof(kPolicyBSha384);
    std::memcpy(p.authPolicy.buffer, kPolicyBSha384, sizeof(kPolicyBSha384));
    SetEccEkParameters(&p.parameters.eccDetail, 256, TPM2_ECC_NIST_P384);
    return t;  // unique: empty in the high-range templates
  }
  p.nameAlg = TPM2_ALG_SHA256;
  p.authPolicy.size = sizeof(kPolicyASha256);
  std::memcpy(p.authPolicy.buffer, kPolicyASha256, sizeof(kPolicyASha256));
  if (kind == EkKind::kEccP256) {
    p.type = TPM2_ALG_ECC;
    SetEccEkParameters(&p.parameters.eccDetail, 128, TPM2_ECC_NIST_P256);
    p.unique.ecc.x.size = 32;  // zeros
    p.unique.ecc.y.size = 32;
    return t;
  }
  p.type = TPM2_ALG_RSA;
  p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
  p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
  p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.rsaDetail.keyBits = 2048;
  p.parameters.rsaDetail.exponent = 0;
  p.unique.rsa.size = 256;  // zeros
  return t;
}

// Creates a primary key under the endorsement hierarchy.
TSS2_RC CreateEndorsementPrimary(ESYS_CONTEXT* esys, const TPM2B_PUBLIC& tmpl, ESYS_TR* handle,
                                 TPM2B_PUBLIC** out_public) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcrs{};
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc = Esys_CreatePrimary(esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
                                        ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl, &outside,
                                        &creation_pcrs, handle, out_public, &creation_data,
                                        &creation_hash, &creation_ticket);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(creation_ticket);
  return rc;
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
  AkPublic ak_public;
  VIGIL_ASSIGN_OR_RETURN(const ESYS_TR ak, CreateAk(&ak_public));

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
  q.ak_public_pem = std::move(ak_public.pem);
  q.ak_tpm_public = std::move(ak_public.tpm_public);
  return q;
}

Result<uint32_t> Tpm::CreateAk(AkPublic* ak) {
  const TPM2B_PUBLIC tmpl = AkTemplate();
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC* out = nullptr;
  VIGIL_RETURN_IF_ERROR(
      Check(CreateEndorsementPrimary(h_->esys, tmpl, &handle, &out),
            "TPM2_CreatePrimary (attestation key under the endorsement hierarchy)"));
  uint8_t buf[sizeof(TPM2B_PUBLIC)];
  size_t len = 0;
  const TSS2_RC mrc = Tss2_MU_TPM2B_PUBLIC_Marshal(out, buf, sizeof(buf), &len);
  Esys_Free(out);
  Result<AkPublic> parsed =
      mrc == TSS2_RC_SUCCESS
          ? ParseAkPublic(std::string_view(reinterpret_cast<const char*>(buf), len),
                          "the TPM's attestation key")
          : Result<AkPublic>(core::Internal("marshalling the attestation key's public area"));
  if (!parsed.has_value()) {
    Esys_FlushContext(h_->esys, handle);
    return parsed.error();
  }
  *ak = std::move(parsed).value();
  return handle;
}

Result<std::string> Tpm::ReadEkCertificate(EkKind kind) {
  ESYS_TR nv = ESYS_TR_NONE;
  char index[16];
  std::snprintf(index, sizeof(index), "0x%08x", EkCertNvIndex(kind));
  const TSS2_RC rc = Esys_TR_FromTPMPublic(h_->esys, EkCertNvIndex(kind), ESYS_TR_NONE,
                                           ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) {
    return core::NotFound("TPM (" + tcti_ + "): no " + EkKindName(kind) +
                          " EK certificate in NV index " + index + " (" + Tss2_RC_Decode(rc) +
                          ")");
  }
  TPM2B_NV_PUBLIC* pub = nullptr;
  TPM2B_NAME* name = nullptr;
  VIGIL_RETURN_IF_ERROR(Check(
      Esys_NV_ReadPublic(h_->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name),
      "TPM2_NV_ReadPublic (EK certificate)"));
  const size_t size = pub->nvPublic.dataSize;
  Esys_Free(pub);
  Esys_Free(name);
  if (size == 0 || size > kMaxEkCertBytes) {
    return core::Unavailable("TPM (" + tcti_ + "): the EK certificate's NV index holds " +
                             std::to_string(size) + " bytes");
  }
  std::string out;
  while (out.size() < size) {
    const auto chunk = static_cast<UINT16>(std::min<size_t>(size - out.size(), 512));
    TPM2B_MAX_NV_BUFFER* data = nullptr;
    VIGIL_RETURN_IF_ERROR(Check(Esys_NV_Read(h_->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                             ESYS_TR_NONE, chunk,
                                             static_cast<UINT16>(out.size()), &data),
                                "TPM2_NV_Read (EK certificate)"));
    out.append(reinterpret_cast<const char*>(data->buffer), data->size);
    const bool empty = data->size == 0;
    Esys_Free(data);
    if (empty) break;
  }
  return out;
}

Result<std::string> Tpm::ActivateCredential(const CredentialChallenge& challenge) {
  VIGIL_ASSIGN_OR_RETURN(const EkKind kind, EkKindOfChallenge(challenge));
  const TPM2B_PUBLIC ek_template = EkTemplate(kind);
  // L templates authorize the EK's use with PolicySecret(TPM_RH_ENDORSEMENT); H templates also
  // allow its (empty) authValue.
  const bool policy = (ek_template.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) == 0;
  TPM2B_ID_OBJECT blob{};
  TPM2B_ENCRYPTED_SECRET secret{};
  if (challenge.id_object.size() > sizeof(blob.credential) ||
      challenge.encrypted_secret.size() > sizeof(secret.secret)) {
    return core::InvalidArgument("the credential challenge is larger than the TPM's buffers");
  }
  blob.size = static_cast<UINT16>(challenge.id_object.size());
  std::memcpy(blob.credential, challenge.id_object.data(), blob.size);
  secret.size = static_cast<UINT16>(challenge.encrypted_secret.size());
  std::memcpy(secret.secret, challenge.encrypted_secret.data(), secret.size);

  AkPublic ak_public;
  VIGIL_ASSIGN_OR_RETURN(const ESYS_TR ak, CreateAk(&ak_public));
  ESYS_TR ek = ESYS_TR_NONE;
  ESYS_TR session = ESYS_TR_NONE;
  TPM2B_PUBLIC* ek_public = nullptr;
  auto release = [&] {
    Esys_Free(ek_public);
    if (session != ESYS_TR_NONE) Esys_FlushContext(h_->esys, session);
    if (ek != ESYS_TR_NONE) Esys_FlushContext(h_->esys, ek);
    Esys_FlushContext(h_->esys, ak);
  };
  const std::string what =
      std::string("TPM2_CreatePrimary (endorsement key, ") + EkKindName(kind) + " TCG template)";
  Status st = Check(CreateEndorsementPrimary(h_->esys, ek_template, &ek, &ek_public), what.c_str());
  const TPMT_SYM_DEF none{.algorithm = TPM2_ALG_NULL, .keyBits = {}, .mode = {}};
  if (st.ok() && policy) {
    st = Check(Esys_StartAuthSession(h_->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &none,
                                     TPM2_ALG_SHA256, &session),
               "TPM2_StartAuthSession (policy session for the EK)");
  }
  if (st.ok() && policy) {
    // Used once: the TPM flushes it after ActivateCredential succeeds.
    st = Check(Esys_TRSess_SetAttributes(h_->esys, session, 0, TPMA_SESSION_CONTINUESESSION),
               "Esys_TRSess_SetAttributes");
  }
  if (st.ok() && policy) {
    TPM2B_TIMEOUT* timeout = nullptr;
    TPMT_TK_AUTH* ticket = nullptr;
    st = Check(Esys_PolicySecret(h_->esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD,
                                 ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0,
                                 &timeout, &ticket),
               "TPM2_PolicySecret(TPM_RH_ENDORSEMENT)");
    Esys_Free(timeout);
    Esys_Free(ticket);
  }
  TPM2B_DIGEST* cert_info = nullptr;
  if (st.ok()) {
    st = Check(Esys_ActivateCredential(h_->esys, ak, ek, ESYS_TR_PASSWORD,
                                       policy ? session : ESYS_TR_PASSWORD, ESYS_TR_NONE, &blob,
                                       &secret, &cert_info),
               "TPM2_ActivateCredential");
    if (st.ok()) session = ESYS_TR_NONE;  // a policy session without continueSession is gone
  }
  release();
  if (!st.ok()) return st;
  std::string out(reinterpret_cast<const char*>(cert_info->buffer), cert_info->size);
  Esys_Free(cert_info);
  return out;
}

Result<std::string> Tpm::EndorsementKeyPem(EkKind kind) {
  ESYS_TR ek = ESYS_TR_NONE;
  TPM2B_PUBLIC* pub = nullptr;
  const std::string what =
      std::string("TPM2_CreatePrimary (endorsement key, ") + EkKindName(kind) + " TCG template)";
  VIGIL_RETURN_IF_ERROR(
      Check(CreateEndorsementPrimary(h_->esys, EkTemplate(kind), &ek, &pub), what.c_str()));
  Esys_FlushContext(h_->esys, ek);
  const TPMT_PUBLIC& p = pub->publicArea;
  auto bytes = [](const auto& b) {
    return std::string_view(reinterpret_cast<const char*>(b.buffer), b.size);
  };
  const bool p384 = p.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384;
  internal::Owned<EVP_PKEY> key =
      p.type == TPM2_ALG_RSA
          ? internal::RsaPublicKey(bytes(p.unique.rsa), 65537)
          : internal::EcPublicKey(p384 ? "secp384r1" : "prime256v1", p384 ? 48 : 32,
                                  bytes(p.unique.ecc.x), bytes(p.unique.ecc.y));
  const std::string pem = key ? internal::PemOfPublicKey(key.get()) : std::string();
  Esys_Free(pub);
  if (pem.empty()) return core::Internal("encoding the endorsement key as PEM failed");
  return pem;
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
