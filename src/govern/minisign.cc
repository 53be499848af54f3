#include "govern/minisign.h"

#include <sodium.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace vigil::govern {
namespace {

using core::InvalidArgument;
using core::Result;

constexpr std::string_view kUntrustedPrefix = "untrusted comment: ";
constexpr std::string_view kTrustedPrefix = "trusted comment: ";
constexpr size_t kPublicKeyBytes = 2 + 8 + 32;
constexpr size_t kSecretKeyBytes = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;
constexpr size_t kSignatureBytes = 2 + 8 + 64;

void EnsureSodium() {
  static const bool ready = [] { return sodium_init() >= 0; }();
  if (!ready) std::abort();  // libsodium could not initialise its RNG: nothing can be signed
}

std::string Base64(const uint8_t* data, size_t size) {
  std::string out(sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

// One line of a key or signature file, 1-based.
struct Lines {
  std::vector<std::string_view> lines;

  explicit Lines(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      pos = end + 1;
    }
    // Blank lines at the end (a trailing newline, an editor's extra line) are not content.
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
  }
};

std::string Where(std::string_view source, size_t line) {
  return std::string(source) + ":" + std::to_string(line) + ": ";
}

Result<std::string> Comment(std::string_view line, std::string_view prefix,
                            std::string_view source, size_t number) {
  if (line.substr(0, prefix.size()) != prefix) {
    return InvalidArgument(Where(source, number) + "expected a line starting with \"" +
                           std::string(prefix) + "\"");
  }
  std::string_view text = line.substr(prefix.size());
  if (text.size() > kMaxCommentBytes) {
    return InvalidArgument(Where(source, number) + "comment is " + std::to_string(text.size()) +
                           " bytes, more than " + std::to_string(kMaxCommentBytes));
  }
  return std::string(text);
}

Result<std::vector<uint8_t>> DecodeBase64(std::string_view line, size_t expected,
                                          std::string_view what, std::string_view source,
                                          size_t number) {
  std::vector<uint8_t> bin(line.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(bin.data(), bin.size(), line.data(), line.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != line.data() + line.size()) {
    return InvalidArgument(Where(source, number) + std::string(what) + " is not valid base64");
  }
  if (len != expected) {
    return InvalidArgument(Where(source, number) + std::string(what) + " is " +
                           std::to_string(len) + " bytes, expected " + std::to_string(expected));
  }
  bin.resize(len);
  return bin;
}

Result<Lines> SplitLines(std::string_view text, size_t want, std::string_view what,
                         std::string_view source) {
  if (text.size() > 4 * (kMaxCommentBytes + 256)) {
    return InvalidArgument(std::string(source) + ": " + std::string(what) + " file is " +
                           std::to_string(text.size()) + " bytes, too large to be one");
  }
  if (text.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(source) + ": " + std::string(what) +
                           " file holds a NUL byte; it is not a minisign text file");
  }
  Lines lines(text);
  if (lines.lines.size() < want) {
    return InvalidArgument(std::string(source) + ": " + std::string(what) + " file has " +
                           std::to_string(lines.lines.size()) + " lines, expected " +
                           std::to_string(want) + " (truncated?)");
  }
  if (lines.lines.size() > want) {
    return InvalidArgument(Where(source, want + 1) + "unexpected content after the " +
                           std::string(what));
  }
  return lines;
}

// The first two lines every minisign file has: an untrusted comment, and base64 of `bytes`
// bytes that start with the two-byte algorithm name.
struct Head {
  Lines lines;
  std::string comment;
  std::vector<uint8_t> bin;
};

Result<Head> ParseHead(std::string_view text, size_t want_lines, size_t bytes,
                       std::string_view what, std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(Lines lines, SplitLines(text, want_lines, what, source));
  Head head{std::move(lines), {}, {}};
  VIGIL_ASSIGN_OR_RETURN(head.comment,
                         Comment(head.lines.lines[0], kUntrustedPrefix, source, 1));
  VIGIL_ASSIGN_OR_RETURN(head.bin, DecodeBase64(head.lines.lines[1], bytes, what, source, 2));
  return head;
}

std::string OneLine(std::string_view text) {
  std::string out(text.substr(0, kMaxCommentBytes));
  for (char& c : out) {
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
  }
  return out;
}

std::array<uint8_t, 32> SecretKeyChecksum(const SecretKey& key) {
  std::array<uint8_t, 32> out{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>("Ed"), 2);
  crypto_generichash_update(&st, key.key_id.data(), key.key_id.size());
  crypto_generichash_update(&st, key.key.data(), key.key.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::array<uint8_t, 64> Prehash(std::string_view message) {
  std::array<uint8_t, 64> out{};
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const uint8_t*>(message.data()),
                     message.size(), nullptr, 0);
  return out;
}

}  // namespace

std::string KeyIdHex(const KeyId& id) {
  std::string out;
  char buf[3];
  for (size_t i = id.size(); i-- > 0;) {
    std::snprintf(buf, sizeof(buf), "%02X", id[i]);
    out += buf;
  }
  return out;
}

KeyPair GenerateKeyPair() {
  EnsureSodium();
  KeyPair pair;
  std::array<uint8_t, 32> pk{};
  crypto_sign_keypair(pk.data(), pair.secret_key.key.data());
  randombytes_buf(pair.secret_key.key_id.data(), pair.secret_key.key_id.size());
  pair.public_key = PublicKeyOf(pair.secret_key);
  return pair;
}

PublicKey PublicKeyOf(const SecretKey& secret) {
  PublicKey pub;
  pub.key_id = secret.key_id;
  crypto_sign_ed25519_sk_to_pk(pub.key.data(), secret.key.data());
  pub.untrusted_comment = "minisign public key " + KeyIdHex(secret.key_id);
  return pub;
}

std::string EncodePublicKey(const PublicKey& key) {
  std::vector<uint8_t> bin = {'E', 'd'};
  bin.insert(bin.end(), key.key_id.begin(), key.key_id.end());
  bin.insert(bin.end(), key.key.begin(), key.key.end());
  return std::string(kUntrustedPrefix) + "minisign public key " + KeyIdHex(key.key_id) + "\n" +
         Base64(bin.data(), bin.size()) + "\n";
}

std::string EncodeSecretKey(const SecretKey& key) {
  std::vector<uint8_t> bin = {'E', 'd', 0, 0, 'B', '2'};
  bin.resize(bin.size() + 32 + 8 + 8, 0);  // no KDF: salt and limits are zero
  bin.insert(bin.end(), key.key_id.begin(), key.key_id.end());
  bin.insert(bin.end(), key.key.begin(), key.key.end());
  const auto chk = SecretKeyChecksum(key);
  bin.insert(bin.end(), chk.begin(), chk.end());
  std::string out = std::string(kUntrustedPrefix) + "minisign secret key (unencrypted)\n" +
                    Base64(bin.data(), bin.size()) + "\n";
  sodium_memzero(bin.data(), bin.size());
  return out;
}

std::string EncodeSignature(const Signature& sig) {
  std::vector<uint8_t> bin = {'E', sig.algorithm == SignatureAlgorithm::kPrehashed ? uint8_t{'D'}
                                                                                   : uint8_t{'d'}};
  bin.insert(bin.end(), sig.key_id.begin(), sig.key_id.end());
  bin.insert(bin.end(), sig.signature.begin(), sig.signature.end());
  // Comments are written as they are: Sign() made them one line, and a parsed signature's
  // comments are lines already (changing a byte would break the global signature).
  return std::string(kUntrustedPrefix) + sig.untrusted_comment + "\n" +
         Base64(bin.data(), bin.size()) + "\n" + std::string(kTrustedPrefix) +
         sig.trusted_comment + "\n" +
         Base64(sig.global_signature.data(), sig.global_signature.size()) + "\n";
}

Result<PublicKey> ParsePublicKey(std::string_view text, std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(Head head, ParseHead(text, 2, kPublicKeyBytes, "public key", source));
  const std::vector<uint8_t>& bin = head.bin;
  PublicKey key;
  key.untrusted_comment = std::move(head.comment);
  if (bin[0] != 'E' || bin[1] != 'd') {
    return InvalidArgument(Where(source, 2) + "public key algorithm is not Ed25519 (\"Ed\")");
  }
  std::memcpy(key.key_id.data(), bin.data() + 2, 8);
  std::memcpy(key.key.data(), bin.data() + 10, 32);
  return key;
}

Result<SecretKey> ParseSecretKey(std::string_view text, std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(Head head, ParseHead(text, 2, kSecretKeyBytes, "secret key", source));
  std::vector<uint8_t>& bin = head.bin;
  struct Wipe {
    std::vector<uint8_t>& b;
    ~Wipe() { sodium_memzero(b.data(), b.size()); }
  } wipe{bin};
  if (bin[0] != 'E' || bin[1] != 'd') {
    return InvalidArgument(Where(source, 2) + "secret key algorithm is not Ed25519 (\"Ed\")");
  }
  if (bin[2] == 'S' && bin[3] == 'c') {
    return InvalidArgument(Where(source, 2) +
                           "secret key is encrypted with a password; Vigil reads unencrypted "
                           "keys only (remove the password with `minisign -C -W -s KEY`)");
  }
  if (bin[2] != 0 || bin[3] != 0) {
    return InvalidArgument(Where(source, 2) + "unknown key derivation algorithm");
  }
  if (bin[4] != 'B' || bin[5] != '2') {
    return InvalidArgument(Where(source, 2) + "checksum algorithm is not BLAKE2b (\"B2\")");
  }
  SecretKey key;
  constexpr size_t kIdAt = 6 + 32 + 8 + 8;
  std::memcpy(key.key_id.data(), bin.data() + kIdAt, 8);
  std::memcpy(key.key.data(), bin.data() + kIdAt + 8, 64);
  const uint8_t* chk = bin.data() + kIdAt + 8 + 64;
  const auto want = SecretKeyChecksum(key);
  static constexpr std::array<uint8_t, 32> kZero{};
  if (std::memcmp(chk, want.data(), 32) != 0 && std::memcmp(chk, kZero.data(), 32) != 0) {
    sodium_memzero(key.key.data(), key.key.size());
    return InvalidArgument(Where(source, 2) + "secret key checksum mismatch (corrupt key)");
  }
  std::array<uint8_t, 32> pk{}, sk_seed_pk{};
  std::array<uint8_t, 64> derived{};
  crypto_sign_seed_keypair(pk.data(), derived.data(), key.key.data());
  std::memcpy(sk_seed_pk.data(), key.key.data() + 32, 32);
  sodium_memzero(derived.data(), derived.size());
  if (sodium_memcmp(pk.data(), sk_seed_pk.data(), 32) != 0) {
    sodium_memzero(key.key.data(), key.key.size());
    return InvalidArgument(Where(source, 2) +
                           "secret key is inconsistent: its public half does not belong to it");
  }
  return key;
}

Result<Signature> ParseSignature(std::string_view text, std::string_view source) {
  VIGIL_ASSIGN_OR_RETURN(Head head, ParseHead(text, 4, kSignatureBytes, "signature", source));
  const std::vector<uint8_t>& bin = head.bin;
  Signature sig;
  sig.untrusted_comment = std::move(head.comment);
  if (bin[0] == 'E' && bin[1] == 'D') {
    sig.algorithm = SignatureAlgorithm::kPrehashed;
  } else if (bin[0] == 'E' && bin[1] == 'd') {
    sig.algorithm = SignatureAlgorithm::kLegacy;
  } else {
    return InvalidArgument(Where(source, 2) +
                           "unknown signature algorithm (expected \"ED\" or \"Ed\")");
  }
  std::memcpy(sig.key_id.data(), bin.data() + 2, 8);
  std::memcpy(sig.signature.data(), bin.data() + 10, 64);
  VIGIL_ASSIGN_OR_RETURN(sig.trusted_comment,
                         Comment(head.lines.lines[2], kTrustedPrefix, source, 3));
  VIGIL_ASSIGN_OR_RETURN(const auto global,
                         DecodeBase64(head.lines.lines[3], 64, "global signature", source, 4));
  std::memcpy(sig.global_signature.data(), global.data(), 64);
  return sig;
}

Signature Sign(const SecretKey& key, std::string_view message, std::string_view trusted_comment,
               std::string_view untrusted_comment) {
  EnsureSodium();
  Signature sig;
  sig.algorithm = SignatureAlgorithm::kPrehashed;
  sig.key_id = key.key_id;
  sig.untrusted_comment = OneLine(untrusted_comment);
  sig.trusted_comment = OneLine(trusted_comment);
  const auto hash = Prehash(message);
  crypto_sign_detached(sig.signature.data(), nullptr, hash.data(), hash.size(), key.key.data());
  std::string global(reinterpret_cast<const char*>(sig.signature.data()), sig.signature.size());
  global += sig.trusted_comment;
  crypto_sign_detached(sig.global_signature.data(), nullptr,
                       reinterpret_cast<const uint8_t*>(global.data()), global.size(),
                       key.key.data());
  return sig;
}

Verification Verify(const PublicKey& key, const Signature& sig, std::string_view message) {
  EnsureSodium();
  if (key.key_id != sig.key_id) {
    return {VerifyOutcome::kUnknownKey, "signed by key " + KeyIdHex(sig.key_id) +
                                            ", not by the given key " + KeyIdHex(key.key_id)};
  }
  int rc;
  if (sig.algorithm == SignatureAlgorithm::kPrehashed) {
    const auto hash = Prehash(message);
    rc = crypto_sign_verify_detached(sig.signature.data(), hash.data(), hash.size(),
                                     key.key.data());
  } else {
    rc = crypto_sign_verify_detached(sig.signature.data(),
                                     reinterpret_cast<const uint8_t*>(message.data()),
                                     message.size(), key.key.data());
  }
  if (rc != 0) {
    return {VerifyOutcome::kBadSignature,
            "signature does not match the file: the file was altered after signing, or the "
            "signature was made by another key with the same id"};
  }
  std::string global(reinterpret_cast<const char*>(sig.signature.data()), sig.signature.size());
  global += sig.trusted_comment;
  if (crypto_sign_verify_detached(sig.global_signature.data(),
                                  reinterpret_cast<const uint8_t*>(global.data()), global.size(),
                                  key.key.data()) != 0) {
    return {VerifyOutcome::kBadTrustedComment,
            "the file matches, but the trusted comment was altered after signing"};
  }
  return {VerifyOutcome::kValid, ""};
}

}  // namespace vigil::govern
