#pragma once

// The keys that sign audit checkpoints. The audit log needs only the Signer interface: a key id,
// the public key and Ed25519 signatures over bytes. Where the key comes from is decided in one
// place, LoadOrCreateRawKey(), so that it can later become the host key that `vigil keys init`
// writes in minisign's format without touching the log.
//
// Key ids are 8 bytes, as in minisign, and are printed as minisign prints them: the bytes read as
// a little-endian 64-bit integer, 16 uppercase hex digits.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::audit {

using KeyId = std::array<uint8_t, 8>;
using Signature = std::array<uint8_t, 64>;

struct PublicKey {
  KeyId id{};
  std::array<uint8_t, 32> key{};  // Ed25519 public key
};

std::string KeyIdString(const KeyId& id);

class Signer {
 public:
  virtual ~Signer() = default;
  virtual const PublicKey& public_key() const = 0;
  // A detached Ed25519 signature of `message`. Thread-compatible (const, no shared state).
  virtual Signature Sign(std::string_view message) const = 0;
};

// An Ed25519 key pair in memory. The secret key is wiped on destruction.
class Ed25519Signer final : public Signer {
 public:
  // `secret_key` is libsodium's 64-byte form (seed || public key); kInvalidArgument when the
  // length is wrong or the public half does not belong to the seed.
  static core::Result<std::unique_ptr<Ed25519Signer>> FromSecretKey(std::string_view secret_key,
                                                                    const KeyId& id);
  // A fresh random key pair; its id is the first 8 bytes of SHA-256 of the public key.
  static std::unique_ptr<Ed25519Signer> Generate();
  ~Ed25519Signer() override;

  const PublicKey& public_key() const override { return public_; }
  Signature Sign(std::string_view message) const override;
  std::string_view secret_key() const {
    return {reinterpret_cast<const char*>(secret_.data()), secret_.size()};
  }

 private:
  Ed25519Signer() = default;
  std::array<uint8_t, 64> secret_{};
  PublicKey public_;
};

// The default checkpoint key until the minisign host key is wired in: a raw libsodium secret key
// (exactly 64 bytes, mode 0600) at `secret_path`, created with a fresh key pair when absent (the
// parent directory is created with mode 0700), and its public key beside it at
// `secret_path + ".pub"` in minisign's public key format, which `vigil audit verify --key`
// reads. The key id is the first 8 bytes of SHA-256 of the public key.
// Fails with kDataLoss when the file is not a valid key, kPermissionDenied when it is readable
// by group or others, or an I/O status naming the path.
core::Result<std::unique_ptr<Signer>> LoadOrCreateRawKey(const std::string& secret_path);

// Parses a public key file. Accepted forms:
//  - minisign's public key file: an "untrusted comment:" line, then base64 of "Ed" || key id
//    (8 bytes) || Ed25519 public key (32 bytes);
//  - that base64 line alone (what `minisign -P` takes);
//  - 32 raw bytes (the key id is then derived as LoadOrCreateRawKey derives it).
// kInvalidArgument naming `source` and what is wrong otherwise.
core::Result<PublicKey> ParsePublicKey(std::string_view bytes, std::string_view source);
core::Result<PublicKey> LoadPublicKey(const std::string& path);
// The minisign public key file for `key` (two lines, newline-terminated).
std::string MinisignPublicKeyFile(const PublicKey& key, std::string_view comment);

// True when `signature` is a valid Ed25519 signature of `message` by `key`.
bool VerifySignature(const PublicKey& key, std::string_view message, const Signature& signature);

}  // namespace vigil::audit
