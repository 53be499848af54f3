// The vigil binary's own SBOM: which Debian packages provide the shared objects it links.

#include <link.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <set>

#include "govern/internal/files.h"
#include "govern/provenance.h"

namespace vigil::govern {

using core::InvalidArgument;
using core::Result;
using nlohmann::json;

namespace {

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

bool ValidPackageName(std::string_view s) {
  // Debian policy 5.6.1: lower-case letters, digits, + - . ; at least two characters.
  if (s.size() < 2) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
  });
}

bool ValidVersion(std::string_view s) {
  // Debian policy 5.6.12: [epoch:]upstream[-revision] from alphanumerics and . + - ~ :
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '+' || c == '-' || c == '~' || c == ':';
  });
}

// "/lib/x" <-> "/usr/lib/x": Debian 12 merges /lib into /usr/lib, yet dpkg records each file
// under the path its package ships it at.
std::string UsrTwin(const std::string& path) {
  if (path.rfind("/usr/", 0) == 0) return path.substr(4);
  return "/usr" + path;
}

}  // namespace

std::string DebianPurl(const DebianPackage& p) {
  std::string version;
  for (char c : p.version) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_' || c == '~' || c == '+') {
      version += c;
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      version += buf;
    }
  }
  return "pkg:deb/debian/" + p.name + "@" + version + "?arch=" + p.architecture;
}

json BuildBinaryBom(const BinaryInfo& binary, int64_t now_unix, const std::string& serial_uuid) {
  json components = json::array();
  for (const DebianPackage& p : binary.packages) {
    const std::string purl = DebianPurl(p);
    json props = json::array();
    for (const std::string& f : p.files) props.push_back({{"name", "vigil:shared-object"}, {"value", f}});
    json c = {{"type", "library"}, {"bom-ref", purl}, {"name", p.name},
              {"version", p.version}, {"purl", purl}};
    if (!props.empty()) c["properties"] = props;
    components.push_back(c);
  }
  for (const std::string& f : binary.unpackaged) {
    const std::string ref = "file:" + f;
    components.push_back({{"type", "file"},
                          {"bom-ref", ref},
                          {"name", f},
                          {"properties", json::array({{{"name", "vigil:unpackaged"},
                                                       {"value", "no Debian package owns it"}}})}});
  }
  json app = {{"type", "application"},
              {"bom-ref", "vigil"},
              {"name", "vigil"},
              {"version", binary.version}};
  if (internal::IsSha256Hex(binary.sha256)) {
    app["hashes"] = json::array({{{"alg", "SHA-256"}, {"content", binary.sha256}}});
  }
  app["properties"] = json::array({{{"name", "vigil:path"}, {"value", binary.path}}});
  return internal::CycloneDxBom(app, components, binary.version, now_unix, serial_uuid);
}

std::vector<std::string> LoadedSharedObjects() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        auto* list = static_cast<std::vector<std::string>*>(data);
        // The main program has an empty name; the vDSO's has no '/'.
        if (info->dlpi_name != nullptr && info->dlpi_name[0] == '/') {
          list->emplace_back(info->dlpi_name);
        }
        return 0;
      },
      &out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseDpkgSearch(std::string_view out) {
  std::vector<std::pair<std::string, std::string>> result;
  size_t number = 0;
  for (std::string_view line : SplitLines(out)) {
    ++number;
    if (line.rfind("diversion by ", 0) == 0) continue;
    const size_t sep = line.find(": /");
    if (sep == std::string_view::npos || sep == 0) {
      return InvalidArgument("dpkg -S output line " + std::to_string(number) +
                             ": expected \"package: /path\"");
    }
    std::string_view owners = line.substr(0, sep);
    std::string_view first = owners.substr(0, owners.find(", "));
    const std::string_view name = first.substr(0, first.find(':'));
    if (!ValidPackageName(name)) {
      return InvalidArgument("dpkg -S output line " + std::to_string(number) +
                             ": \"" + std::string(first) + "\" is not a package name");
    }
    result.emplace_back(std::string(line.substr(sep + 2)), std::string(first));
  }
  return result;
}

Result<std::vector<DebianPackage>> ParseDpkgQuery(std::string_view out) {
  std::vector<DebianPackage> result;
  size_t number = 0;
  for (std::string_view line : SplitLines(out)) {
    ++number;
    const size_t t1 = line.find('\t');
    const size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string_view::npos || line.find('\t', t2 + 1) != std::string_view::npos) {
      return InvalidArgument("dpkg-query output line " + std::to_string(number) +
                             ": expected three tab-separated fields");
    }
    DebianPackage p;
    p.name = std::string(line.substr(0, t1));
    p.architecture = std::string(line.substr(t1 + 1, t2 - t1 - 1));
    p.version = std::string(line.substr(t2 + 1));
    if (!ValidPackageName(p.name) || !ValidVersion(p.version) || p.architecture.empty() ||
        !std::all_of(p.architecture.begin(), p.architecture.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); })) {
      return InvalidArgument("dpkg-query output line " + std::to_string(number) +
                             ": bad package name, architecture or version");
    }
    result.push_back(std::move(p));
  }
  return result;
}

core::Status ResolveDebianPackages(const std::vector<std::string>& files, BinaryInfo* info) {
  // Every candidate path of every file: as loaded, its real path, and their /usr twins.
  std::map<std::string, std::vector<std::string>> candidates;
  std::vector<std::string> args = {"dpkg", "-S"};
  std::set<std::string> queried;
  for (const std::string& f : files) {
    std::vector<std::string>& c = candidates[f];
    c.push_back(f);
    char real[PATH_MAX];
    if (realpath(f.c_str(), real) != nullptr && real != f) c.push_back(real);
    const size_t n = c.size();
    for (size_t i = 0; i < n; ++i) c.push_back(UsrTwin(c[i]));
    for (const std::string& p : c) {
      if (queried.insert(p).second) args.push_back(p);
    }
  }
  if (files.empty()) return core::Status::Ok();
  auto search = internal::RunCommand(args);
  if (!search.has_value()) {
    return core::FailedPrecondition("cannot run dpkg -S (is this a Debian system?): " +
                                    search.error().message());
  }
  // dpkg -S exits 1 when some path has no owner; its stdout still lists the others.
  if (search->exit_code != 0 && search->exit_code != 1) {
    return core::FailedPrecondition("dpkg -S failed with exit code " +
                                    std::to_string(search->exit_code));
  }
  VIGIL_ASSIGN_OR_RETURN(const auto owners, ParseDpkgSearch(search->out));
  std::map<std::string, std::string> owner_of(owners.begin(), owners.end());
  std::map<std::string, std::vector<std::string>> files_of;  // "pkg[:arch]" -> files
  for (const auto& [file, cands] : candidates) {
    std::string owner;
    for (const std::string& p : cands) {
      auto it = owner_of.find(p);
      if (it != owner_of.end()) {
        owner = it->second;
        break;
      }
    }
    if (owner.empty()) {
      info->unpackaged.push_back(file);
    } else {
      files_of[owner].push_back(file);
    }
  }
  if (files_of.empty()) return core::Status::Ok();
  std::vector<std::string> qargs = {"dpkg-query", "-W",
                                    "-f=${Package}\t${Architecture}\t${Version}\n"};
  for (const auto& [pkg, fs] : files_of) qargs.push_back(pkg);
  auto query = internal::RunCommand(qargs);
  if (!query.has_value() || query->exit_code != 0) {
    return core::FailedPrecondition("dpkg-query -W failed for the owning packages");
  }
  VIGIL_ASSIGN_OR_RETURN(std::vector<DebianPackage> pkgs, ParseDpkgQuery(query->out));
  for (DebianPackage& p : pkgs) {
    for (const std::string& key : {p.name + ":" + p.architecture, p.name}) {
      auto it = files_of.find(key);
      if (it != files_of.end()) {
        p.files.insert(p.files.end(), it->second.begin(), it->second.end());
      }
    }
    std::sort(p.files.begin(), p.files.end());
    info->packages.push_back(std::move(p));
  }
  std::sort(info->packages.begin(), info->packages.end(),
            [](const DebianPackage& a, const DebianPackage& b) { return a.name < b.name; });
  return core::Status::Ok();
}

}  // namespace vigil::govern
