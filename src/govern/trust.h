#pragma once

// The check an enforcing agent makes before it lets a model or a policy drive enforcement: the
// file must carry a minisign signature (FILE.minisig) by one of the trusted keys, over exactly
// these bytes and with an intact trusted comment. Anything else refuses the artifact, with the
// reason, and the caller falls back to monitor mode (docs/attestation.md, "Enforce mode").

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "govern/minisign.h"

namespace vigil::govern {

struct TrustCheck {
  bool trusted = false;
  // "valid", "unsigned", "unknown-key", "altered", "bad-trusted-comment", "bad-signature-file",
  // "unreadable".
  std::string outcome;
  std::string reason;   // one sentence naming the file; empty when trusted
  std::string sha256;   // of the bytes checked (empty when unreadable)
  std::string key_id;   // the signer's key id as minisign prints it (when a signature was read)
};

// Reads every trusted public key (minisign format). A missing or malformed key file is an error
// naming it: an enforcing agent without its trust anchors must not guess.
core::Result<std::vector<PublicKey>> LoadTrustedKeys(const std::vector<std::string>& paths);

// Checks `path` against `path + ".minisig"` and `trusted`. Never fails: every problem is an
// untrusted outcome with its reason.
TrustCheck CheckSignedArtifact(const std::string& path, const std::vector<PublicKey>& trusted);

// The same for `bytes`, the content of `path` as the caller read it: a caller that parses what
// it read checks those very bytes, not a second read of the path (which a file swapped in
// between would pass).
TrustCheck CheckSignedBytes(const std::string& path, std::string_view bytes,
                            const std::vector<PublicKey>& trusted);

// The same check of `bytes` (named `name` in the reason) against the signature `sig` (parsed with
// ParseSignature): for artifacts that arrive over the network rather than from a file.
TrustCheck CheckSignedBytes(const std::string& name, std::string_view bytes, const Signature& sig,
                            const std::vector<PublicKey>& trusted);

// Installs a signed artifact received over the network: `signature` (a .minisig file's text) to
// `path + ".minisig"`, then `bytes` to `path`, each atomically (same-folder temporary file, fsync,
// rename). Errors name the file.
core::Status WriteSignedArtifact(const std::string& path, std::string_view bytes,
                                 std::string_view signature);

// A check of several artifacts that must all be trusted (a policy's rules files and manifest).
struct TrustChecks {
  bool trusted = true;
  std::string path;                  // the first untrusted file ("" when all are trusted)
  TrustCheck first;                  // its check (outcome, reason); default when all are trusted
  std::vector<std::string> checked;  // every distinct path checked, in order
};
// Checks each distinct path of `paths` in order and stops at the first untrusted one: as the
// bytes `bytes_of(path)` gives when it is set and gives them (the bytes the caller loaded: a
// file read again could have been replaced since), else with CheckSignedArtifact (read now). An
// empty list is trusted (nothing was read from disk).
TrustChecks CheckSignedArtifacts(
    const std::vector<std::string>& paths, const std::vector<PublicKey>& trusted,
    const std::function<const std::string*(const std::string& path)>& bytes_of = {});

// Signs `bytes` (the content of `path`) with `key` and writes `path + ".minisig"` atomically. The
// trusted comment is "timestamp:<now_unix>\tfile:<file name>\tsha256:<hex>", then a tab and
// `extra` when not empty. Returns the signature written.
core::Result<Signature> SignArtifact(const std::string& path, std::string_view bytes,
                                     const SecretKey& key, std::string_view extra,
                                     int64_t now_unix);

}  // namespace vigil::govern
