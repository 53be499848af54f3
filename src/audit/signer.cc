#include "audit/signer.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "audit/internal/files.h"
#include "audit/internal/format.h"
#include "core/files.h"

namespace vigil::audit {
namespace {

constexpr size_t kMinisignKeyBlob = 2 + 8 + 32;  // "Ed" || key id || public key

void InitSodium() {
  static const int rc = sodium_init();
  (void)rc;  // < 0 only when no randomness source exists; randombytes then aborts loudly
}

KeyId DerivedKeyId(const std::array<uint8_t, 32>& pub) {
  const internal::Hash h = internal::Sha256(
      std::string_view(reinterpret_cast<const char*>(pub.data()), pub.size()));
  KeyId id;
  std::memcpy(id.data(), h.data(), id.size());
  return id;
}

std::string Base64(const uint8_t* data, size_t n) {
  std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                        s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

core::Result<PublicKey> ParseMinisignLine(std::string_view line, std::string_view where) {
  uint8_t blob[kMinisignKeyBlob + 8];
  size_t len = 0;
  if (line.empty() || line.size() > 80 ||
      sodium_base642bin(blob, sizeof(blob), line.data(), line.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return core::InvalidArgument(std::string(where) + ": not valid base64");
  }
  if (len != kMinisignKeyBlob) {
    return core::InvalidArgument(std::string(where) + ": decodes to " + std::to_string(len) +
                                 " bytes, a minisign public key has " +
                                 std::to_string(kMinisignKeyBlob));
  }
  if (blob[0] != 'E' || blob[1] != 'd') {
    return core::InvalidArgument(std::string(where) +
                                 ": signature algorithm is not \"Ed\" (Ed25519)");
  }
  PublicKey k;
  std::memcpy(k.id.data(), blob + 2, 8);
  std::memcpy(k.key.data(), blob + 10, 32);
  return k;
}

core::Status WriteNewFile(const std::string& path, std::string_view bytes, mode_t mode) {
  // Written under a temporary name and linked into place, so that a concurrent creator or a
  // crash never leaves a partial key under the final name.
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return core::ErrnoError(errno, "cannot create '" + tmp + "'");
  core::Status st = internal::WriteAll(fd, bytes, tmp);
  if (st.ok() && fsync(fd) != 0) st = core::ErrnoError(errno, "cannot sync '" + tmp + "'");
  close(fd);
  if (st.ok() && link(tmp.c_str(), path.c_str()) != 0) {
    st = errno == EEXIST ? core::Status(core::StatusCode::kAlreadyExists, path)
                         : core::ErrnoError(errno, "cannot create '" + path + "'");
  }
  unlink(tmp.c_str());
  return st;
}

}  // namespace

std::string KeyIdString(const KeyId& id) {
  uint64_t v;
  std::memcpy(&v, id.data(), 8);
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIX64, v);
  return buf;
}

core::Result<std::unique_ptr<Ed25519Signer>> Ed25519Signer::FromSecretKey(
    std::string_view secret_key, const KeyId& id) {
  InitSodium();
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return core::InvalidArgument("an Ed25519 secret key has 64 bytes, got " +
                                 std::to_string(secret_key.size()));
  }
  std::unique_ptr<Ed25519Signer> s(new Ed25519Signer());
  std::memcpy(s->secret_.data(), secret_key.data(), 64);
  std::array<uint8_t, 32> derived{};
  crypto_sign_ed25519_sk_to_pk(derived.data(), s->secret_.data());
  unsigned char seed[32];
  crypto_sign_ed25519_sk_to_seed(seed, s->secret_.data());
  std::array<uint8_t, 64> again{};
  crypto_sign_seed_keypair(derived.data(), again.data(), seed);
  sodium_memzero(seed, sizeof(seed));
  const bool match = sodium_memcmp(again.data(), s->secret_.data(), 64) == 0;
  sodium_memzero(again.data(), again.size());
  if (!match) {
    return core::InvalidArgument("the public half of the secret key does not belong to its seed");
  }
  s->public_.key = derived;
  s->public_.id = id;
  return s;
}

std::unique_ptr<Ed25519Signer> Ed25519Signer::Generate() {
  InitSodium();
  std::unique_ptr<Ed25519Signer> s(new Ed25519Signer());
  crypto_sign_keypair(s->public_.key.data(), s->secret_.data());
  s->public_.id = DerivedKeyId(s->public_.key);
  return s;
}

Ed25519Signer::~Ed25519Signer() { sodium_memzero(secret_.data(), secret_.size()); }

Signature Ed25519Signer::Sign(std::string_view message) const {
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), secret_.data());
  return sig;
}

core::Result<std::unique_ptr<Signer>> LoadOrCreateRawKey(const std::string& secret_path) {
  InitSodium();
  struct stat st {};
  if (stat(secret_path.c_str(), &st) != 0) {
    if (errno != ENOENT) return core::ErrnoError(errno, "audit key '" + secret_path + "'");
    const size_t slash = secret_path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      VIGIL_RETURN_IF_ERROR(core::MakeDirs(secret_path.substr(0, slash), 0700));
    }
    std::unique_ptr<Ed25519Signer> fresh = Ed25519Signer::Generate();
    core::Status made = WriteNewFile(secret_path, fresh->secret_key(), 0600);
    if (made.ok()) {
      core::Status pub = WriteNewFile(
          secret_path + ".pub", MinisignPublicKeyFile(fresh->public_key(), "vigil audit key"),
          0644);
      if (!pub.ok() && pub.code() != core::StatusCode::kAlreadyExists) return pub;
      return std::unique_ptr<Signer>(std::move(fresh));
    }
    if (made.code() != core::StatusCode::kAlreadyExists) return made;
    // Another process created it first: use theirs.
  }
  if (stat(secret_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return core::Status(core::StatusCode::kPermissionDenied,
                        "audit key '" + secret_path +
                            "' is readable by group or others; chmod 600 it");
  }
  VIGIL_ASSIGN_OR_RETURN(std::string bytes, core::ReadFile(secret_path, 4096));
  std::array<uint8_t, 32> pub{};
  if (bytes.size() == 64) std::memcpy(pub.data(), bytes.data() + 32, 32);
  auto signer = Ed25519Signer::FromSecretKey(bytes, DerivedKeyId(pub));
  sodium_memzero(bytes.data(), bytes.size());
  if (!signer.has_value()) {
    return core::DataLoss("audit key '" + secret_path + "': " + signer.error().message());
  }
  const std::string pub_path = secret_path + ".pub";
  if (access(pub_path.c_str(), F_OK) != 0) {
    core::Status pub_st = WriteNewFile(
        pub_path, MinisignPublicKeyFile((*signer)->public_key(), "vigil audit key"), 0644);
    if (!pub_st.ok() && pub_st.code() != core::StatusCode::kAlreadyExists) return pub_st;
  }
  return std::unique_ptr<Signer>(std::move(signer).value());
}

core::Result<PublicKey> ParsePublicKey(std::string_view bytes, std::string_view source) {
  InitSodium();
  const std::string src(source);
  if (bytes.size() == 32) {
    PublicKey k;
    std::memcpy(k.key.data(), bytes.data(), 32);
    k.id = DerivedKeyId(k.key);
    return k;
  }
  if (bytes.size() > 4096) return core::InvalidArgument(src + ": too large for a public key");
  std::string_view rest = bytes;
  const size_t nl = rest.find('\n');
  std::string_view first = Trim(rest.substr(0, nl));
  if (first.rfind("untrusted comment:", 0) == 0) {
    if (nl == std::string_view::npos) {
      return core::InvalidArgument(src + ":2: missing the key line after the comment");
    }
    rest.remove_prefix(nl + 1);
    const size_t nl2 = rest.find('\n');
    if (nl2 != std::string_view::npos && !Trim(rest.substr(nl2 + 1)).empty()) {
      return core::InvalidArgument(src + ":3: unexpected text after the key line");
    }
    return ParseMinisignLine(Trim(rest.substr(0, nl2)), src + ":2");
  }
  if (nl != std::string_view::npos && !Trim(rest.substr(nl + 1)).empty()) {
    return core::InvalidArgument(
        src + ": expected a minisign public key file (comment line + key line), one base64 "
              "key line or 32 raw bytes");
  }
  return ParseMinisignLine(first, src + ":1");
}

core::Result<PublicKey> LoadPublicKey(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(std::string bytes, core::ReadFile(path, 4096));
  return ParsePublicKey(bytes, path);
}

std::string MinisignPublicKeyFile(const PublicKey& key, std::string_view comment) {
  uint8_t blob[kMinisignKeyBlob];
  blob[0] = 'E';
  blob[1] = 'd';
  std::memcpy(blob + 2, key.id.data(), 8);
  std::memcpy(blob + 10, key.key.data(), 32);
  return "untrusted comment: " + std::string(comment) + " " + KeyIdString(key.id) + "\n" +
         Base64(blob, sizeof(blob)) + "\n";
}

bool VerifySignature(const PublicKey& key, std::string_view message, const Signature& signature) {
  InitSodium();
  return crypto_sign_verify_detached(signature.data(),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), key.key.data()) == 0;
}

}  // namespace vigil::audit
