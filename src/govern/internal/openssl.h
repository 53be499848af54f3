#pragma once

// OpenSSL helpers of the govern room (not for other rooms).

#include <openssl/evp.h>

#include <memory>
#include <string>

#include "core/status.h"

namespace vigil::govern::internal {

template <typename T>
using Owned = std::unique_ptr<T, void (*)(T*)>;

// An EC or RSA public key from PEM (SubjectPublicKeyInfo); kInvalidArgument naming `what`.
core::Result<Owned<EVP_PKEY>> PublicKeyOfPem(const std::string& pem, const std::string& what);

// The PEM (SubjectPublicKeyInfo) of `key`; "" when OpenSSL fails.
std::string PemOfPublicKey(EVP_PKEY* key);

}  // namespace vigil::govern::internal
