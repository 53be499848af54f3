// vigil model push|list|pull|sign|verify|provenance|sbom: the model registry, signatures,
// provenance statements and ML-BOMs.

#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/govern_cli.h"
#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/provenance.h"
#include "govern/registry.h"
#include "model/model_file.h"

namespace vigil::app {
namespace {

using nlohmann::json;

struct ModelOptions {
  std::string file;
  std::string digest;
  std::string out;
  std::string registry;
  bool json = false;
  StateOptions state;
};

core::Result<govern::ModelArtifact> ReadArtifact(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(const std::string bytes,
                         core::ReadFile(path, govern::kMaxArtifactBytes));
  VIGIL_ASSIGN_OR_RETURN(model::ModelFile file, model::DecodeModelFile(bytes, path));
  govern::ModelArtifact a;
  a.file_name = std::filesystem::path(path).filename().string();
  a.sha256 = govern::internal::Sha256Hex(bytes);
  a.size = bytes.size();
  a.header = std::move(file.header);
  return a;
}

json EntryJson(const govern::RegistryEntry& e) {
  json j = json::parse(govern::EncodeManifest(e));
  j["digest"] = "sha256:" + e.digest;
  return j;
}

int RunPush(const ModelOptions& o) {
  auto dir = o.state.Resolve(o.registry, govern::DefaultRegistryDir);
  if (!dir.has_value()) return ReportError("model push", dir.error());
  auto artifact = ReadArtifact(o.file);
  if (!artifact.has_value()) return ReportError("model push", artifact.error());
  auto bytes = core::ReadFile(o.file, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return ReportError("model push", bytes.error());
  std::string signature;
  const std::string sig_path = o.file + ".minisig";
  if (std::filesystem::exists(sig_path)) {
    auto text = core::ReadFile(sig_path, govern::kMaxKeyFileBytes);
    if (!text.has_value()) return ReportError("model push", text.error());
    auto parsed = govern::ParseSignature(*text, sig_path);
    if (!parsed.has_value()) return ReportError("model push", parsed.error());
    signature = *text;
  }
  json identity = {{"family", artifact->header.value("family", "")},
                   {"name", artifact->header.value("name", "")},
                   {"version", artifact->header.value("version", "")}};
  govern::Registry reg(*dir);
  auto e = reg.Push(*bytes, artifact->file_name, "model", identity, signature, NowUnix());
  if (!e.has_value()) return ReportError("model push", e.error());
  if (o.json) {
    std::printf("%s\n", EntryJson(*e).dump(2).c_str());
  } else {
    std::printf("pushed %s as sha256:%s%s\n", o.file.c_str(), e->digest.c_str(),
                e->has_signature ? " (with its signature)" : "");
  }
  return kExitOk;
}

int RunList(const ModelOptions& o) {
  auto dir = o.state.Resolve(o.registry, govern::DefaultRegistryDir);
  if (!dir.has_value()) return ReportError("model list", dir.error());
  govern::Registry reg(*dir);
  auto entries = reg.List();
  if (!entries.has_value()) return ReportError("model list", entries.error());
  if (o.json) {
    json arr = json::array();
    for (const auto& e : *entries) {
      if (e.kind == "model") arr.push_back(EntryJson(e));
    }
    std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-14s %-20s %-14s %-10s %10s %-6s %s\n", "DIGEST", "NAME", "FAMILY", "VERSION",
              "BYTES", "SIGNED", "PUSHED");
  for (const auto& e : *entries) {
    if (e.kind != "model") continue;
    std::printf("%-14s %-20s %-14s %-10s %10llu %-6s %s\n", e.digest.substr(0, 12).c_str(),
                e.model.value("name", e.name).c_str(), e.model.value("family", "-").c_str(),
                e.model.value("version", "-").c_str(), static_cast<unsigned long long>(e.size),
                e.has_signature ? "yes" : "no", govern::Rfc3339(e.pushed_unix).c_str());
  }
  return kExitOk;
}

int RunPull(const ModelOptions& o) {
  auto dir = o.state.Resolve(o.registry, govern::DefaultRegistryDir);
  if (!dir.has_value()) return ReportError("model pull", dir.error());
  govern::Registry reg(*dir);
  auto e = reg.Resolve(o.digest);
  if (!e.has_value()) return ReportError("model pull", e.error());
  auto bytes = reg.ReadBlob(*e);
  if (!bytes.has_value()) return ReportError("model pull", bytes.error());
  auto sig = reg.ReadSignature(*e);
  if (!sig.has_value()) return ReportError("model pull", sig.error());
  if (auto st = govern::internal::WriteFileAtomic(o.out, *bytes, 0644); !st.ok()) {
    return ReportError("model pull", st);
  }
  if (!sig->empty()) {
    if (auto st = govern::internal::WriteFileAtomic(o.out + ".minisig", *sig, 0644); !st.ok()) {
      return ReportError("model pull", st);
    }
  }
  if (o.json) {
    json j = EntryJson(*e);
    j["out"] = o.out;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("pulled sha256:%s to %s%s\n", e->digest.c_str(), o.out.c_str(),
                sig->empty() ? "" : (" and " + o.out + ".minisig").c_str());
  }
  return kExitOk;
}

int RunProvenance(const ModelOptions& o) {
  auto artifact = ReadArtifact(o.file);
  if (!artifact.has_value()) return ReportError("model provenance", artifact.error());
  auto doc = govern::BuildProvenance(*artifact, VIGIL_VERSION, NowUnix(), o.file);
  if (!doc.has_value()) return ReportError("model provenance", doc.error());
  return EmitJson("model provenance", *doc, o.out);
}

int RunSbom(const ModelOptions& o) {
  auto artifact = ReadArtifact(o.file);
  if (!artifact.has_value()) return ReportError("model sbom", artifact.error());
  auto doc = govern::BuildModelBom(*artifact, VIGIL_VERSION, NowUnix(), govern::RandomUuid(),
                                   o.file);
  if (!doc.has_value()) return ReportError("model sbom", doc.error());
  return EmitJson("model sbom", *doc, o.out);
}

CLI::App* WithRegistry(CLI::App* cmd, ModelOptions* o) {
  cmd->add_option("--registry", o->registry, "Registry folder (default: <state_dir>/registry)");
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  o->state.AddTo(cmd);
  return cmd;
}

}  // namespace

RunFn AddModelCommand(CLI::App& root) {
  CommandGroup group(root, "model",
                     "Model files: inspect, registry, signatures, provenance and ML-BOM");
  auto push = std::make_shared<ModelOptions>();
  WithRegistry(group.Add("push", "Store a model file (and FILE.minisig) under its SHA-256",
                         [push] { return RunPush(*push); }),
               push.get())
      ->add_option("FILE", push->file, "Model file")
      ->required();
  auto list = std::make_shared<ModelOptions>();
  WithRegistry(group.Add("list", "List the models in the registry, newest first",
                         [list] { return RunList(*list); }),
               list.get());
  auto pull = std::make_shared<ModelOptions>();
  CLI::App* p = WithRegistry(group.Add("pull", "Copy a model out of the registry (and its signature)",
                                       [pull] { return RunPull(*pull); }),
                             pull.get());
  p->add_option("DIGEST", pull->digest, "sha256:HEX, HEX, or a unique prefix of 8+ digits")
      ->required();
  p->add_option("--out", pull->out, "Where to write the model")->required();

  AddSignVerifyCommands(group, "model", [](std::string_view bytes, const std::string& path) {
    auto file = model::DecodeModelFile(bytes, path);
    return file.has_value() ? core::Status::Ok() : file.error();
  });

  auto prov = std::make_shared<ModelOptions>();
  CLI::App* pv = group.Add("provenance",
                           "Write an in-toto Statement v1 with a SLSA provenance v1 predicate",
                           [prov] { return RunProvenance(*prov); });
  pv->add_option("MODEL", prov->file, "Model file")->required();
  pv->add_option("--out", prov->out, "Output file (default: stdout)");
  auto sbom = std::make_shared<ModelOptions>();
  CLI::App* sb = group.Add("sbom", "Write a CycloneDX 1.5 ML-BOM with the model card",
                           [sbom] { return RunSbom(*sbom); });
  sb->add_option("MODEL", sbom->file, "Model file")->required();
  sb->add_option("--out", sbom->out, "Output file (default: stdout)");
  AddModelInspectCommand(group);
  return group.Runner();
}

}  // namespace vigil::app
