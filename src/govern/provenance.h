#pragma once

// Provenance and bills of materials for models and for the vigil binary (formats:
// docs/signing-and-provenance.md):
//  - an in-toto Statement v1 whose predicate is SLSA Provenance v1;
//  - a CycloneDX 1.5 ML-BOM of a model (machine-learning-model component with a model card);
//  - a CycloneDX 1.5 SBOM of the vigil binary (its Debian packages as pkg:deb purls).
// Builders are pure: every input (file digest, header, time, package list) is passed in.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace vigil::govern {

// What is known of a model file: its bytes' digest and its (already validated) header.
struct ModelArtifact {
  std::string file_name;  // base name, for subject names
  std::string sha256;     // 64 hex digits of the whole file
  uint64_t size = 0;
  nlohmann::json header;  // must hold string "family", "name", "version"
};

// The performance figures a model header carries, as name -> number: every numeric entry of
// "metrics" (nested objects flattened with '.'), and from "calibration" its threshold and
// achieved false-alarm rate (the global subject "*" for per-program models). A "metrics" or
// "calibration" that is not an object is kInvalidArgument naming `source`.
core::Result<nlohmann::json> ModelMetrics(const nlohmann::json& header, std::string_view source);

// The in-toto statement. `generator_version` is this vigil's version; `now_unix` the time.
// A header "training.digest" that is present but not 64 hex digits is kInvalidArgument.
core::Result<nlohmann::json> BuildProvenance(const ModelArtifact& model,
                                             const std::string& generator_version,
                                             int64_t now_unix, std::string_view source);

// The CycloneDX 1.5 ML-BOM. `serial_uuid` is a UUID string (see RandomUuid()).
core::Result<nlohmann::json> BuildModelBom(const ModelArtifact& model,
                                           const std::string& generator_version,
                                           int64_t now_unix, const std::string& serial_uuid,
                                           std::string_view source);

struct DebianPackage {
  std::string name;
  std::string version;
  std::string architecture;
  std::vector<std::string> files;  // the shared objects of the binary it provides
};

struct BinaryInfo {
  std::string path;
  std::string sha256;
  std::string version;
  std::vector<DebianPackage> packages;
  std::vector<std::string> unpackaged;  // shared objects no Debian package owns
};

nlohmann::json BuildBinaryBom(const BinaryInfo& binary, int64_t now_unix,
                              const std::string& serial_uuid);

// pkg:deb/debian/NAME@VERSION?arch=ARCH with the version percent-encoded (':' -> %3A).
std::string DebianPurl(const DebianPackage& package);

// A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string RandomUuid();
// RFC 3339 UTC time of a Unix time, "2026-11-26T04:05:06Z".
std::string Rfc3339(int64_t unix_seconds);

// The shared objects loaded into this process (dl_iterate_phdr), excluding the vDSO and the
// main program: what the running binary links.
std::vector<std::string> LoadedSharedObjects();

// Finds the Debian package that owns each file (`dpkg -S`, trying the /usr-merged twin of each
// path too) and its version (`dpkg-query -W`). Files no package owns go to `unpackaged`.
// Malformed dpkg output is kInvalidArgument; dpkg missing is kFailedPrecondition.
core::Status ResolveDebianPackages(const std::vector<std::string>& files, BinaryInfo* info);

// Parsers of dpkg's output, exposed for tests and the fuzz target.
// `dpkg -S` lines: "pkg[:arch][, pkg2...]: /path" -> path -> "pkg[:arch]" (first owner).
core::Result<std::vector<std::pair<std::string, std::string>>> ParseDpkgSearch(
    std::string_view out);
// `dpkg-query -W -f '${Package}\t${Architecture}\t${Version}\n'` lines.
core::Result<std::vector<DebianPackage>> ParseDpkgQuery(std::string_view out);

}  // namespace vigil::govern
