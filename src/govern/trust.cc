#include "govern/trust.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/registry.h"

namespace vigil::govern {

core::Result<std::vector<PublicKey>> LoadTrustedKeys(
    const std::vector<std::string>& paths) {
  if (paths.empty()) return core::InvalidArgument("trusted_keys: no key given");
  std::vector<PublicKey> keys;
  for (const std::string& p : paths) {
    auto key = LoadPublicKey(p);
    if (!key.has_value()) return key.error().WithContext("trusted_keys");
    keys.push_back(std::move(key).value());
  }
  return keys;
}

TrustCheck CheckSignedArtifact(const std::string& path,
                            const std::vector<PublicKey>& trusted) {
  auto bytes = core::ReadFile(path, kMaxArtifactBytes);
  if (!bytes.has_value()) {
    TrustCheck c;
    c.outcome = "unreadable";
    c.reason = bytes.error().message();
    return c;
  }
  return CheckSignedBytes(path, *bytes, trusted);
}

TrustCheck CheckSignedBytes(const std::string& path, std::string_view bytes,
                            const std::vector<PublicKey>& trusted) {
  const std::string sig_path = path + ".minisig";
  auto sig = LoadSignature(sig_path);
  if (!sig.has_value()) {
    TrustCheck c;
    c.sha256 = internal::Sha256Hex(bytes);
    const bool missing = sig.error().code() == core::StatusCode::kNotFound;
    c.outcome = missing ? "unsigned" : "bad-signature-file";
    c.reason = missing ? path + " is not signed (no " + sig_path + ")" : sig.error().message();
    return c;
  }
  return CheckSignedBytes(path, bytes, *sig, trusted);
}

TrustCheck CheckSignedBytes(const std::string& name, std::string_view bytes,
                            const Signature& sig, const std::vector<PublicKey>& trusted) {
  TrustCheck c;
  c.sha256 = internal::Sha256Hex(bytes);
  c.key_id = KeyIdHex(sig.key_id);
  for (const PublicKey& key : trusted) {
    if (key.key_id != sig.key_id) continue;
    const Verification v = Verify(key, sig, bytes);
    switch (v.outcome) {
      case VerifyOutcome::kValid:
        c.trusted = true;
        c.outcome = "valid";
        return c;
      case VerifyOutcome::kBadTrustedComment:
        c.outcome = "bad-trusted-comment";
        break;
      default:
        c.outcome = "altered";
        break;
    }
    c.reason = name + ": " + v.reason;
    return c;
  }
  c.outcome = "unknown-key";
  c.reason = name + " is signed by key " + c.key_id + ", which is not a trusted key";
  return c;
}

core::Status WriteSignedArtifact(const std::string& path, std::string_view bytes,
                                 std::string_view signature) {
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(path + ".minisig", signature, 0644));
  return internal::WriteFileAtomic(path, bytes, 0644);
}

TrustChecks CheckSignedArtifacts(
    const std::vector<std::string>& paths, const std::vector<PublicKey>& trusted,
    const std::function<const std::string*(const std::string& path)>& bytes_of) {
  TrustChecks all;
  for (const std::string& p : paths) {
    if (std::find(all.checked.begin(), all.checked.end(), p) != all.checked.end()) continue;
    all.checked.push_back(p);
    const std::string* bytes = bytes_of ? bytes_of(p) : nullptr;
    TrustCheck c = bytes != nullptr ? CheckSignedBytes(p, *bytes, trusted)
                                    : CheckSignedArtifact(p, trusted);
    if (c.trusted) continue;
    all.trusted = false;
    all.path = p;
    all.first = std::move(c);
    break;
  }
  return all;
}

core::Result<Signature> SignArtifact(const std::string& path, std::string_view bytes,
                                     const SecretKey& key, std::string_view extra,
                                     int64_t now_unix) {
  std::string name = std::filesystem::path(path).filename().string();
  for (char& ch : name) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = '?';
  }
  std::string trusted = "timestamp:" + std::to_string(now_unix) + "\tfile:" + name +
                        "\tsha256:" + internal::Sha256Hex(bytes);
  if (!extra.empty()) trusted += "\t" + std::string(extra);
  Signature sig = Sign(key, bytes, trusted,
                       "signature from vigil secret key " + KeyIdHex(key.key_id));
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(path + ".minisig", EncodeSignature(sig), 0644));
  return sig;
}

}  // namespace vigil::govern
