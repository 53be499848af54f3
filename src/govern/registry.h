#pragma once

// A content-addressed local registry of model and policy artifacts (format:
// docs/signing-and-provenance.md). Artifacts are stored under their SHA-256:
//
//   DIR/blobs/sha256/<hex>           the artifact's bytes
//   DIR/blobs/sha256/<hex>.minisig   its minisign signature, when one was pushed with it
//   DIR/manifests/<hex>.json         what is known of it (name, size, kind, model identity)
//
// The default DIR is <state_dir>/registry. Writes are atomic (temporary file, fsync, rename);
// readers re-check every blob's digest, so a damaged registry is reported, never served.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace vigil::govern {

inline constexpr const char* kManifestSchema = "vigil.registry.manifest/v1";
// Largest artifact pushed or pulled (it is read into memory).
inline constexpr uint64_t kMaxArtifactBytes = uint64_t{2} << 30;
inline constexpr uint64_t kMaxManifestBytes = 1 << 20;

struct RegistryEntry {
  std::string digest;        // 64 lower-case hex digits (SHA-256 of the artifact)
  uint64_t size = 0;         // bytes
  std::string name;          // file name it was pushed as (no folders)
  std::string kind;          // "model" or "policy"
  int64_t pushed_unix = 0;   // seconds
  bool has_signature = false;
  // For models: {"family", "name", "version"} from the model header; null otherwise.
  nlohmann::json model;
};

std::string DefaultRegistryDir(const std::string& state_dir);

// The manifest's JSON text, and its strict parser (unknown keys, wrong types, a bad digest, a
// name with a slash... are kInvalidArgument naming `source` and the key).
std::string EncodeManifest(const RegistryEntry& entry);
core::Result<RegistryEntry> ParseManifest(std::string_view text, std::string_view source);

class Registry {
 public:
  explicit Registry(std::string dir) : dir_(std::move(dir)) {}

  // Stores `bytes` (named `name`); `signature`, when not empty, is the artifact's minisign
  // signature text and is stored beside it. Pushing the same bytes again keeps the blob and
  // replaces the manifest (and signature, if given).
  core::Result<RegistryEntry> Push(std::string_view bytes, const std::string& name,
                                   const std::string& kind, const nlohmann::json& model,
                                   std::string_view signature, int64_t now_unix);

  // Every entry, newest first. A manifest that does not parse, or that disagrees with its file
  // name, is an error naming it.
  core::Result<std::vector<RegistryEntry>> List() const;

  // The entry for a digest: 64 hex digits, optionally "sha256:"-prefixed, or a unique prefix of
  // at least 8 digits. Unknown or ambiguous digests are kNotFound / kInvalidArgument.
  core::Result<RegistryEntry> Resolve(std::string_view digest) const;

  // The artifact's bytes after re-checking their SHA-256 (kDataLoss when they differ).
  core::Result<std::string> ReadBlob(const RegistryEntry& entry) const;
  // The stored signature text ("" when there is none).
  core::Result<std::string> ReadSignature(const RegistryEntry& entry) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string BlobPath(const std::string& digest) const;
  std::string ManifestPath(const std::string& digest) const;

  std::string dir_;
};

}  // namespace vigil::govern
