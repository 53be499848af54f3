#pragma once

// Keys and signatures in minisign's formats (spec: docs/signing-and-provenance.md), so that files
// signed here verify with `minisign -V` and files signed by `minisign -S` verify here.
//
//   public key file   untrusted comment: <text>\n
//                     base64("Ed" | key_id[8] | ed25519_pk[32])\n
//   secret key file   untrusted comment: <text>\n
//                     base64("Ed" | kdf "\0\0" | "B2" | salt[32] | ops[8] | mem[8]
//                            | key_id[8] | ed25519_sk[64] | checksum[32])\n
//   signature file    untrusted comment: <text>\n
//                     base64(alg[2] | key_id[8] | sig[64])\n
//                     trusted comment: <text>\n
//                     base64(global_sig[64])\n
//
// alg "ED": sig = Ed25519(BLAKE2b-512(file)) (prehashed, what minisign 0.11 writes);
// alg "Ed": sig = Ed25519(file) (legacy). global_sig = Ed25519(sig | trusted comment text).
// Only unencrypted secret keys (minisign -G -W) are read and written.
//
// Parsers take untrusted text and never throw; every error is kInvalidArgument and names the
// source, the line and what was wrong.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::govern {

using KeyId = std::array<uint8_t, 8>;

struct PublicKey {
  KeyId key_id{};
  std::array<uint8_t, 32> key{};
  std::string untrusted_comment;  // as read; written as "minisign public key <ID>"
};

struct SecretKey {
  KeyId key_id{};
  std::array<uint8_t, 64> key{};  // libsodium's Ed25519 secret key: seed | public key
};

struct KeyPair {
  PublicKey public_key;
  SecretKey secret_key;
};

enum class SignatureAlgorithm { kLegacy, kPrehashed };  // "Ed", "ED"

struct Signature {
  SignatureAlgorithm algorithm = SignatureAlgorithm::kPrehashed;
  KeyId key_id{};
  std::array<uint8_t, 64> signature{};
  std::string untrusted_comment;
  std::string trusted_comment;
  std::array<uint8_t, 64> global_signature{};
};

// A comment line holds at most this many bytes of text (minisign's limit).
inline constexpr size_t kMaxCommentBytes = 1024;

// minisign's display form of a key id: 16 upper-case hex digits of the id read as a
// little-endian u64 ("D04010F80B227890").
std::string KeyIdHex(const KeyId& id);

// A fresh key pair with a random key id (libsodium's RNG).
KeyPair GenerateKeyPair();

// The public half of a secret key (its key id and the Ed25519 public key it embeds).
PublicKey PublicKeyOf(const SecretKey& secret);

std::string EncodePublicKey(const PublicKey& key);
std::string EncodeSecretKey(const SecretKey& key);
// Comments are written as given and must be single lines (Sign() and ParseSignature() ensure it).
std::string EncodeSignature(const Signature& sig);

core::Result<PublicKey> ParsePublicKey(std::string_view text, std::string_view source);
// Refuses encrypted keys (kdf "Sc") with a message that says how to remove the password, a
// checksum that is neither all zero (what minisign 0.11 -W writes) nor BLAKE2b-256(alg | id |
// sk), and a secret key whose embedded public key does not belong to its seed.
core::Result<SecretKey> ParseSecretKey(std::string_view text, std::string_view source);
core::Result<Signature> ParseSignature(std::string_view text, std::string_view source);

// Signs `message` with the prehashed algorithm. Control characters other than tab in the
// comments become '?' (a comment is one line); comments are cut to kMaxCommentBytes.
Signature Sign(const SecretKey& key, std::string_view message, std::string_view trusted_comment,
               std::string_view untrusted_comment);

// The outcome of checking a well-formed signature; not an error.
enum class VerifyOutcome {
  kValid,
  kUnknownKey,           // the signature's key id is not the key's
  kBadSignature,         // the file is not what was signed (altered, or another key's sig)
  kBadTrustedComment,    // the file matches but the trusted comment was altered
};

struct Verification {
  VerifyOutcome outcome = VerifyOutcome::kBadSignature;
  std::string reason;  // one line, for people; empty when valid
};

Verification Verify(const PublicKey& key, const Signature& sig, std::string_view message);

}  // namespace vigil::govern
