#pragma once

// The host's signing key pair on disk, in minisign's formats (govern/minisign.h):
//   DIR/vigil.key   unencrypted secret key, mode 0600, folder 0700
//   DIR/vigil.pub   public key, mode 0644
// The default DIR is <state_dir>/keys.

#include <string>

#include "core/status.h"
#include "govern/minisign.h"

namespace vigil::govern {

inline constexpr const char* kSecretKeyFile = "vigil.key";
inline constexpr const char* kPublicKeyFile = "vigil.pub";
// Key and signature files are small; larger inputs are refused before parsing.
inline constexpr uint64_t kMaxKeyFileBytes = 8192;

std::string DefaultKeyDir(const std::string& state_dir);
std::string SecretKeyPath(const std::string& dir);
std::string PublicKeyPath(const std::string& dir);

// Writes a fresh pair into `dir` (created 0700 when missing). Without `force`, an existing
// secret or public key file is kAlreadyExists and nothing is written.
core::Result<KeyPair> InitKeys(const std::string& dir, bool force);

// Reads and validates a key file; errors name the file (and line).
core::Result<SecretKey> LoadSecretKey(const std::string& path);
core::Result<PublicKey> LoadPublicKey(const std::string& path);
core::Result<Signature> LoadSignature(const std::string& path);

}  // namespace vigil::govern
