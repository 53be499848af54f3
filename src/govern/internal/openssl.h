#pragma once

// OpenSSL helpers of the govern room (not for other rooms).

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::govern::internal {

template <typename T>
using Owned = std::unique_ptr<T, void (*)(T*)>;

// An EC or RSA public key from PEM (SubjectPublicKeyInfo); kInvalidArgument naming `what`.
core::Result<Owned<EVP_PKEY>> PublicKeyOfPem(const std::string& pem, const std::string& what);

// An RSA public key from its big-endian modulus and its exponent; null when OpenSSL refuses them.
Owned<EVP_PKEY> RsaPublicKey(std::string_view n, uint32_t e);
// An ECC public key on `group` (OpenSSL's name; field size `n` bytes) from its big-endian
// coordinates; null when they are longer than `n` or not a point on the curve.
Owned<EVP_PKEY> EcPublicKey(const char* group, size_t n, std::string_view x, std::string_view y);

// The PEM (SubjectPublicKeyInfo) of `key`; "" when OpenSSL fails.
std::string PemOfPublicKey(EVP_PKEY* key);

}  // namespace vigil::govern::internal
