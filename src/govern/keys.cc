#include "govern/keys.h"

#include <sys/stat.h>
#include <unistd.h>

#include "govern/internal/files.h"

namespace vigil::govern {

using core::Result;

std::string DefaultKeyDir(const std::string& state_dir) { return state_dir + "/keys"; }
std::string SecretKeyPath(const std::string& dir) { return dir + "/" + kSecretKeyFile; }
std::string PublicKeyPath(const std::string& dir) { return dir + "/" + kPublicKeyFile; }

Result<KeyPair> InitKeys(const std::string& dir, bool force) {
  const std::string sec = SecretKeyPath(dir), pub = PublicKeyPath(dir);
  if (!force) {
    for (const std::string& p : {sec, pub}) {
      if (access(p.c_str(), F_OK) == 0) {
        return core::Status(core::StatusCode::kAlreadyExists,
                            p + ": a key already exists (use --force to replace it)");
      }
    }
  }
  VIGIL_RETURN_IF_ERROR(internal::MakeDirs(dir, 0700));
  KeyPair pair = GenerateKeyPair();
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(sec, EncodeSecretKey(pair.secret_key), 0600));
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(pub, EncodePublicKey(pair.public_key), 0644));
  return pair;
}

Result<SecretKey> LoadSecretKey(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path, kMaxKeyFileBytes));
  return ParseSecretKey(text, path);
}

Result<PublicKey> LoadPublicKey(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path, kMaxKeyFileBytes));
  return ParsePublicKey(text, path);
}

Result<Signature> LoadSignature(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path, kMaxKeyFileBytes));
  return ParseSignature(text, path);
}

}  // namespace vigil::govern
