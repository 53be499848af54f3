#include "govern/internal/openssl.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstring>

namespace vigil::govern::internal {

core::Result<Owned<EVP_PKEY>> PublicKeyOfPem(const std::string& pem, const std::string& what) {
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free_all);
  if (!bio) return core::Internal("out of memory");
  Owned<EVP_PKEY> key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return core::InvalidArgument(what + ": not a PEM public key (SubjectPublicKeyInfo)");
  const int id = EVP_PKEY_get_base_id(key.get());
  if (id != EVP_PKEY_EC && id != EVP_PKEY_RSA) {
    return core::InvalidArgument(what + ": the attestation key is neither ECC nor RSA");
  }
  return key;
}

std::string PemOfPublicKey(EVP_PKEY* key) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()), BIO_free_all);
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return "";
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

namespace {

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

}  // namespace

Owned<EVP_PKEY> RsaPublicKey(std::string_view n, uint32_t e) {
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

Owned<EVP_PKEY> EcPublicKey(const char* group, size_t n, std::string_view x, std::string_view y) {
  Owned<EVP_PKEY> none(nullptr, EVP_PKEY_free);
  if (x.size() > n || y.size() > n) return none;
  std::string point(1 + 2 * n, '\0');
  point[0] = '\x04';
  std::memcpy(point.data() + 1 + n - x.size(), x.data(), x.size());
  std::memcpy(point.data() + 1 + 2 * n - y.size(), y.data(), y.size());
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  std::string group_name(group);
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name.data(),
                                      0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return none;
  }
  return KeyOfParams("EC", bld.get());
}

}  // namespace vigil::govern::internal
