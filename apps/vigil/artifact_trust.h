#pragma once

// Enforce mode's signature precondition, shared by the commands that enforce what they load
// from disk (`vigil run`, `vigil gate`, `vigil gateway`): every policy file and every file a model
// comes from must carry a minisign signature (FILE.minisig) by a trusted key
// (govern::CheckSignedArtifact; docs/attestation.md, "Enforce mode"). The caller falls back to
// monitor mode when the check refuses.

#include <string>
#include <vector>

#include "apps/vigil/audit_trail.h"

namespace vigil::app {

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
std::string CheckEnforceArtifacts(const std::vector<std::string>& key_paths,
                                  const std::vector<std::string>& policies,
                                  const std::vector<ModelArtifact>& models, AuditTrail* audit);

}  // namespace vigil::app
