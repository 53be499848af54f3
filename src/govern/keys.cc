#include "govern/keys.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "core/files.h"
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
  VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir, 0700));
  KeyPair pair = GenerateKeyPair();
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(sec, EncodeSecretKey(pair.secret_key), 0600));
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(pub, EncodePublicKey(pair.public_key), 0644));
  return pair;
}

std::string PublicKeyPathFor(const std::string& secret_path) {
  const std::string_view ext = ".key";
  if (secret_path.size() > ext.size() &&
      secret_path.compare(secret_path.size() - ext.size(), ext.size(), ext) == 0) {
    return secret_path.substr(0, secret_path.size() - ext.size()) + ".pub";
  }
  return secret_path + ".pub";
}

Result<SecretKey> LoadOrCreateSecretKey(const std::string& secret_path) {
  struct stat st {};
  if (stat(secret_path.c_str(), &st) != 0) {
    if (errno != ENOENT) return core::ErrnoError(errno, secret_path + ": cannot stat");
    const std::string dir = std::filesystem::path(secret_path).parent_path().string();
    if (!dir.empty()) VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir, 0700));
    KeyPair pair = GenerateKeyPair();
    core::Status made =
        internal::WriteFileAtomic(secret_path, EncodeSecretKey(pair.secret_key), 0600,
                                  /*exclusive=*/true);
    if (made.ok()) {
      VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(
          PublicKeyPathFor(secret_path), EncodePublicKey(pair.public_key), 0644));
      return pair.secret_key;
    }
    if (made.code() != core::StatusCode::kAlreadyExists) return made;
    // Another process made it first: use theirs.
    if (stat(secret_path.c_str(), &st) != 0) {
      return core::ErrnoError(errno, secret_path + ": cannot stat");
    }
  }
  if ((st.st_mode & 077) != 0) {
    return core::Status(core::StatusCode::kPermissionDenied,
                        secret_path + ": the secret key is readable by group or others; chmod "
                                      "600 it");
  }
  return LoadSecretKey(secret_path);
}

Result<SecretKey> LoadSecretKey(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxKeyFileBytes));
  return ParseSecretKey(text, path);
}

Result<PublicKey> LoadPublicKey(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxKeyFileBytes));
  return ParsePublicKey(text, path);
}

Result<Signature> LoadSignature(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxKeyFileBytes));
  return ParseSignature(text, path);
}

}  // namespace vigil::govern
