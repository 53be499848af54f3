#include "apps/vigil/artifact_trust.h"

#include "govern/trust.h"

namespace vigil::app {

std::string CheckEnforceArtifacts(const std::vector<std::string>& key_paths,
                                  const std::vector<std::string>& policies,
                                  const std::vector<ModelArtifact>& models, AuditTrail* audit) {
  if (policies.empty() && models.empty()) return "";
  auto keys = govern::LoadTrustedKeys(key_paths);
  if (!keys.has_value()) return keys.error().message();
  const govern::TrustChecks t = govern::CheckSignedArtifacts(policies, *keys);
  if (!t.trusted) {
    if (audit != nullptr) {
      audit->PolicyChange("refused", "", 0, {t.path}, t.first.outcome + ": " + t.first.reason);
    }
    return "policy " + t.first.outcome + ": " + t.first.reason;
  }
  for (const ModelArtifact& m : models) {
    const govern::TrustCheck c = govern::CheckSignedArtifact(m.path, *keys);
    if (c.trusted) continue;
    if (audit != nullptr) {
      audit->ModelChange("refused", m.path, m.name, m.version, c.outcome + ": " + c.reason);
    }
    return "model " + c.outcome + ": " + c.reason;
  }
  return "";
}

}  // namespace vigil::app
