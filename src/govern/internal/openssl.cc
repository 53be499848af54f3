#include "govern/internal/openssl.h"

#include <openssl/bio.h>
#include <openssl/pem.h>

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

}  // namespace vigil::govern::internal
