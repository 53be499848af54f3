#include "apps/vigil/artifact_trust.h"

#include <algorithm>

#include "core/files.h"
#include "govern/trust.h"
#include "model/loader.h"
#include "model/model_file.h"

namespace vigil::app {

ArtifactFiles::ArtifactFiles()
    : read_([](const std::string& path, uint64_t max_bytes) {
        return core::ReadFile(path, max_bytes);
      }) {}

ArtifactFiles::ArtifactFiles(ReadFn read) : read_(std::move(read)) {}

core::Result<std::string_view> ArtifactFiles::Read(const std::string& path, uint64_t max_bytes) {
  auto it = bytes_.find(path);
  if (it == bytes_.end()) {
    VIGIL_ASSIGN_OR_RETURN(std::string bytes, read_(path, max_bytes));
    it = bytes_.emplace(path, std::move(bytes)).first;
  }
  if (it->second.size() > max_bytes) {
    return core::InvalidArgument(path + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  return std::string_view(it->second);
}

void ArtifactFiles::Keep(const std::vector<std::pair<std::string, std::string>>& sources) {
  for (const auto& [path, bytes] : sources) bytes_.emplace(path, bytes);
}

const std::string* ArtifactFiles::Find(const std::string& path) const {
  const auto it = bytes_.find(path);
  return it == bytes_.end() ? nullptr : &it->second;
}

core::Result<policy::RuleSet> LoadRulesOnce(const std::vector<std::string>& paths,
                                            ArtifactFiles* files) {
  std::vector<std::pair<std::string, std::string>> docs;
  for (const std::string& path : paths) {
    VIGIL_ASSIGN_OR_RETURN(std::string_view text, files->Read(path, policy::kMaxRulesFileBytes));
    docs.emplace_back(path, std::string(text));
  }
  return policy::RuleSet::LoadDocuments(docs);
}

core::Result<std::unique_ptr<model::Model>> LoadModelOnce(const std::string& path,
                                                          ArtifactFiles* files) {
  auto bytes = files->Read(path, model::kMaxModelFileBytes);
  if (!bytes.has_value()) return bytes.error().WithContext("model file");
  VIGIL_ASSIGN_OR_RETURN(model::ModelFile file, model::DecodeModelFile(*bytes, path));
  return model::LoadModelFromFile(file, path);
}

namespace {

govern::TrustCheck Check(const std::string& path, const std::vector<govern::PublicKey>& keys,
                         const ArtifactFiles* files) {
  const std::string* bytes = files != nullptr ? files->Find(path) : nullptr;
  return bytes != nullptr ? govern::CheckSignedBytes(path, *bytes, keys)
                          : govern::CheckSignedArtifact(path, keys);
}

}  // namespace

std::string CheckEnforceArtifacts(const std::vector<std::string>& key_paths,
                                  const std::vector<std::string>& policies,
                                  const std::vector<ModelArtifact>& models, AuditTrail* audit,
                                  const ArtifactFiles* files) {
  if (policies.empty() && models.empty()) return "";
  auto keys = govern::LoadTrustedKeys(key_paths);
  if (!keys.has_value()) return keys.error().message();
  const govern::TrustChecks p = govern::CheckSignedArtifacts(
      policies, *keys, [files](const std::string& path) {
        return files != nullptr ? files->Find(path) : nullptr;
      });
  if (!p.trusted) {
    const std::string why = p.first.outcome + ": " + p.first.reason;
    if (audit != nullptr) audit->PolicyChange("refused", "", 0, {p.path}, why);
    return "policy " + why;
  }
  for (const ModelArtifact& m : models) {
    const govern::TrustCheck c = Check(m.path, *keys, files);
    if (c.trusted) continue;
    if (audit != nullptr) {
      audit->ModelChange("refused", m.path, m.name, m.version, c.outcome + ": " + c.reason,
                         files != nullptr ? files->Find(m.path) : nullptr);
    }
    return "model " + c.outcome + ": " + c.reason;
  }
  return "";
}

}  // namespace vigil::app
