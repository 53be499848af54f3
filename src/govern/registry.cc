#include "govern/registry.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/files.h"
#include "govern/internal/files.h"

namespace vigil::govern {

using core::InvalidArgument;
using core::Result;
using nlohmann::json;

namespace {

constexpr std::string_view kDigestPrefix = "sha256:";

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20;
  });
}

Result<std::string> StringField(const json& j, const char* key, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end()) return InvalidArgument(std::string(where) + ": missing \"" + key + "\"");
  if (!it->is_string()) {
    return InvalidArgument(std::string(where) + ": \"" + key + "\" is not a string");
  }
  return it->get<std::string>();
}

}  // namespace

std::string DefaultRegistryDir(const std::string& state_dir) { return state_dir + "/registry"; }

std::string EncodeManifest(const RegistryEntry& e) {
  json j = {{"schema", kManifestSchema},
            {"digest", std::string(kDigestPrefix) + e.digest},
            {"size", e.size},
            {"name", e.name},
            {"kind", e.kind},
            {"pushed_unix", e.pushed_unix},
            {"signed", e.has_signature}};
  if (e.model.is_object()) j["model"] = e.model;
  return j.dump(2) + "\n";
}

Result<RegistryEntry> ParseManifest(std::string_view text, std::string_view source) {
  const std::string src(source);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(src + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(src + ": not a JSON object");
  static const char* kKeys[] = {"schema", "digest", "size", "name",
                                "kind",   "pushed_unix", "signed", "model"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (std::find_if(std::begin(kKeys), std::end(kKeys),
                     [&key](const char* k) { return key == k; }) == std::end(kKeys)) {
      return InvalidArgument(src + ": unknown key \"" + key + "\"");
    }
  }
  VIGIL_ASSIGN_OR_RETURN(const std::string schema, StringField(j, "schema", src));
  if (schema != kManifestSchema) {
    return InvalidArgument(src + ": schema \"" + schema + "\" is not \"" + kManifestSchema +
                           "\"");
  }
  RegistryEntry e;
  VIGIL_ASSIGN_OR_RETURN(const std::string digest, StringField(j, "digest", src));
  if (digest.substr(0, kDigestPrefix.size()) != kDigestPrefix ||
      !internal::IsSha256Hex(std::string_view(digest).substr(kDigestPrefix.size()))) {
    return InvalidArgument(src + ": \"digest\" is not \"sha256:\" and 64 lower-case hex digits");
  }
  e.digest = digest.substr(kDigestPrefix.size());
  if (!j.contains("size") || !j["size"].is_number_unsigned()) {
    return InvalidArgument(src + ": \"size\" is missing or not an unsigned integer");
  }
  e.size = j["size"].get<uint64_t>();
  VIGIL_ASSIGN_OR_RETURN(e.name, StringField(j, "name", src));
  if (!ValidName(e.name)) {
    return InvalidArgument(src + ": \"name\" must be a plain file name (no '/', no control "
                                 "characters, 1..255 bytes)");
  }
  VIGIL_ASSIGN_OR_RETURN(e.kind, StringField(j, "kind", src));
  if (e.kind != "model" && e.kind != "policy") {
    return InvalidArgument(src + ": \"kind\" is \"" + e.kind + "\", not \"model\" or \"policy\"");
  }
  if (!j.contains("pushed_unix") || !j["pushed_unix"].is_number_integer()) {
    return InvalidArgument(src + ": \"pushed_unix\" is missing or not an integer");
  }
  e.pushed_unix = j["pushed_unix"].get<int64_t>();
  if (!j.contains("signed") || !j["signed"].is_boolean()) {
    return InvalidArgument(src + ": \"signed\" is missing or not true/false");
  }
  e.has_signature = j["signed"].get<bool>();
  if (j.contains("model")) {
    const json& m = j["model"];
    if (!m.is_object()) return InvalidArgument(src + ": \"model\" is not an object");
    for (const char* key : {"family", "name", "version"}) {
      VIGIL_ASSIGN_OR_RETURN(const std::string v, StringField(m, key, src + ": model"));
      (void)v;
    }
    if (m.size() != 3) {
      return InvalidArgument(src + ": \"model\" has keys other than family, name, version");
    }
    e.model = m;
  }
  return e;
}

std::string Registry::BlobPath(const std::string& digest) const {
  return dir_ + "/blobs/sha256/" + digest;
}

std::string Registry::ManifestPath(const std::string& digest) const {
  return dir_ + "/manifests/" + digest + ".json";
}

Result<RegistryEntry> Registry::Push(std::string_view bytes, const std::string& name,
                                     const std::string& kind, const json& model,
                                     std::string_view signature, int64_t now_unix) {
  RegistryEntry e;
  e.digest = internal::Sha256Hex(bytes);
  e.size = bytes.size();
  e.name = name;
  e.kind = kind;
  e.pushed_unix = now_unix;
  e.model = model.is_object() ? model : json();
  if (!ValidName(e.name)) return InvalidArgument(name + ": not a usable artifact name");
  VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir_ + "/blobs/sha256", 0755));
  VIGIL_RETURN_IF_ERROR(core::MakeDirs(dir_ + "/manifests", 0755));
  const std::string blob = BlobPath(e.digest);
  bool have_blob = false;
  if (std::filesystem::exists(blob)) {
    auto existing = core::ReadFile(blob, kMaxArtifactBytes);
    have_blob = existing.has_value() && internal::Sha256Hex(*existing) == e.digest;
  }
  if (!have_blob) VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(blob, bytes, 0644));
  if (!signature.empty()) {
    VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(blob + ".minisig", signature, 0644));
    e.has_signature = true;
  } else {
    auto old = Resolve(e.digest);
    e.has_signature = old.has_value() && old->has_signature;
  }
  VIGIL_RETURN_IF_ERROR(internal::WriteFileAtomic(ManifestPath(e.digest), EncodeManifest(e), 0644));
  return e;
}

Result<std::vector<RegistryEntry>> Registry::List() const {
  std::vector<RegistryEntry> out;
  const std::string mdir = dir_ + "/manifests";
  std::error_code ec;
  if (!std::filesystem::exists(mdir, ec)) return out;
  std::filesystem::directory_iterator it(mdir, ec), end;
  if (ec) return core::ErrnoError(ec.value(), mdir + ": cannot list");
  for (; it != end; it.increment(ec)) {
    const std::string fname = it->path().filename().string();
    if (fname.size() != 64 + 5 || fname.substr(64) != ".json") continue;  // temporaries etc.
    const std::string path = it->path().string();
    VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxManifestBytes));
    VIGIL_ASSIGN_OR_RETURN(RegistryEntry e, ParseManifest(text, path));
    if (e.digest != fname.substr(0, 64)) {
      return core::DataLoss(path + ": manifest names digest " + e.digest +
                            ", not the one in its file name");
    }
    out.push_back(std::move(e));
  }
  if (ec) return core::ErrnoError(ec.value(), mdir + ": cannot list");
  std::sort(out.begin(), out.end(), [](const RegistryEntry& a, const RegistryEntry& b) {
    return a.pushed_unix != b.pushed_unix ? a.pushed_unix > b.pushed_unix : a.digest < b.digest;
  });
  return out;
}

Result<RegistryEntry> Registry::Resolve(std::string_view digest) const {
  std::string_view want = digest;
  if (want.substr(0, kDigestPrefix.size()) == kDigestPrefix) want.remove_prefix(kDigestPrefix.size());
  const bool hex = !want.empty() && want.size() <= 64 &&
                   std::all_of(want.begin(), want.end(), [](char c) {
                     return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                   });
  if (!hex || want.size() < 8) {
    return InvalidArgument("digest \"" + std::string(digest) +
                           "\": expected [sha256:] and 8 to 64 lower-case hex digits");
  }
  VIGIL_ASSIGN_OR_RETURN(const std::vector<RegistryEntry> all, List());
  const RegistryEntry* found = nullptr;
  for (const RegistryEntry& e : all) {
    if (e.digest.compare(0, want.size(), want) != 0) continue;
    if (found != nullptr) {
      return InvalidArgument("digest \"" + std::string(digest) +
                             "\" is ambiguous in " + dir_ + "; give more digits");
    }
    found = &e;
  }
  if (found == nullptr) {
    return core::NotFound("digest \"" + std::string(digest) + "\" is not in the registry " + dir_);
  }
  return *found;
}

Result<std::string> Registry::ReadBlob(const RegistryEntry& entry) const {
  const std::string path = BlobPath(entry.digest);
  VIGIL_ASSIGN_OR_RETURN(std::string bytes, core::ReadFile(path, kMaxArtifactBytes));
  const std::string actual = internal::Sha256Hex(bytes);
  if (actual != entry.digest) {
    return core::DataLoss(path + ": content has SHA-256 " + actual +
                          "; the registry entry is damaged");
  }
  return bytes;
}

Result<std::string> Registry::ReadSignature(const RegistryEntry& entry) const {
  if (!entry.has_signature) return std::string();
  return core::ReadFile(BlobPath(entry.digest) + ".minisig", 1 << 16);
}

}  // namespace vigil::govern
