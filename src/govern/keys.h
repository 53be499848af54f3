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

// The public key file that belongs to a secret key file: "DIR/NAME.key" -> "DIR/NAME.pub",
// any other name -> PATH + ".pub".
std::string PublicKeyPathFor(const std::string& secret_path);

// The secret key at `secret_path`, or, when the file does not exist, a fresh pair written there
// (0600, folder created 0700) with its public key at PublicKeyPathFor(). An existing key must
// not be readable by group or others (kPermissionDenied). What the audit log signs its
// checkpoints with: the host key, so that `vigil audit verify --key vigil.pub` checks them.
core::Result<SecretKey> LoadOrCreateSecretKey(const std::string& secret_path);

// Reads and validates a key file; errors name the file (and line).
core::Result<SecretKey> LoadSecretKey(const std::string& path);
core::Result<PublicKey> LoadPublicKey(const std::string& path);
core::Result<Signature> LoadSignature(const std::string& path);

}  // namespace vigil::govern
