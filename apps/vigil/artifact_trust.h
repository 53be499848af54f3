#pragma once

// Enforce mode's signature precondition, shared by the commands that enforce what they load
// from disk (`vigil run`, `vigil gate`, `vigil gateway`): every policy file and every file a model
// comes from must carry a minisign signature (FILE.minisig) by a trusted key
// (govern::CheckSignedArtifact; docs/attestation.md, "Enforce mode"). The caller falls back to
// monitor mode when the check refuses.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apps/vigil/audit_trail.h"
#include "core/status.h"
#include "govern/trust.h"
#include "model/model.h"
#include "policy/rules.h"

namespace vigil::app {

// The files an enforcing command loads, each read once: what it parses is what
// CheckEnforceArtifacts checks. (Checking a second read of the path would let a file swapped in
// between pass the check in place of what was loaded.)
class ArtifactFiles {
 public:
  using ReadFn =
      std::function<core::Result<std::string>(const std::string& path, uint64_t max_bytes)>;
  ArtifactFiles();                      // reads with core::ReadFile
  explicit ArtifactFiles(ReadFn read);  // tests: a read that swaps the file afterwards

  // The bytes of `path` (at most `max_bytes`): read on the first call, the same bytes later.
  core::Result<std::string_view> Read(const std::string& path, uint64_t max_bytes);
  // The bytes Read() gave for `path`; null when it was not read.
  const std::string* Find(const std::string& path) const;
  // The files a policy engine read, as it read them (PolicySnapshot::sources): Find() gives
  // those bytes, Read() too (a path already kept is not read again).
  void Keep(const std::vector<std::pair<std::string, std::string>>& sources);

 private:
  ReadFn read_;
  std::map<std::string, std::string> bytes_;
};

// The rules files `paths`, in order, as one rule set, each read through `files`.
core::Result<policy::RuleSet> LoadRulesOnce(const std::vector<std::string>& paths,
                                            ArtifactFiles* files);
// The model file at `path`, read through `files`.
core::Result<std::unique_ptr<model::Model>> LoadModelOnce(const std::string& path,
                                                          ArtifactFiles* files);

// A file a model is loaded or learned from, with the model's name and version for the audit
// record.
struct ModelArtifact {
  std::string path;
  std::string name;
  std::string version;
};

// Loads the keys at `key_paths` and checks every file of `policies` (in order, each distinct path
// once), then every file of `models`, stopping at the first one that is not trusted. Returns ""
// when all are trusted (nothing to check needs no keys), else the refusal: the keys' error,
// "policy <outcome>: <reason>" or "model <outcome>: <reason>". On an untrusted file, with
// `audit` non-null, writes a policy-change record "refused" ({"files": [the file]}) or a
// model-change record "refused", the reason "<outcome>: <reason>".
//
// A file that `files` (when non-null) read is checked as those bytes; any other is read here
// (the gateway, whose loaders read their files themselves: a window remains there).
std::string CheckEnforceArtifacts(const std::vector<std::string>& key_paths,
                                  const std::vector<std::string>& policies,
                                  const std::vector<ModelArtifact>& models, AuditTrail* audit,
                                  const ArtifactFiles* files = nullptr);

}  // namespace vigil::app
