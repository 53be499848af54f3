// vigil sbom: the CycloneDX 1.5 SBOM of this vigil binary (its Debian package dependencies).

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/govern_cli.h"
#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/provenance.h"
#include "govern/registry.h"

namespace vigil::app {
namespace {

struct SbomOptions {
  std::string out;
};

int RunSbom(const SbomOptions& o) {
  govern::BinaryInfo info;
  info.version = VIGIL_VERSION;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    info.path.assign(exe, static_cast<size_t>(n));
    auto bytes = core::ReadFile(info.path, govern::kMaxArtifactBytes);
    if (bytes.has_value()) info.sha256 = govern::internal::Sha256Hex(*bytes);
  }
  if (auto st = govern::ResolveDebianPackages(govern::LoadedSharedObjects(), &info); !st.ok()) {
    return ReportError("sbom", st);
  }
  return EmitJson("sbom", govern::BuildBinaryBom(info, NowUnix(), govern::RandomUuid()), o.out,
                  " (" + std::to_string(info.packages.size()) + " Debian packages)");
}

}  // namespace

RunFn AddSbomCommand(CLI::App& root) {
  auto o = std::make_shared<SbomOptions>();
  CLI::App* cmd = root.add_subcommand(
      "sbom", "Write the CycloneDX 1.5 SBOM of this vigil binary (its Debian packages)");
  cmd->add_option("--out", o->out, "Output file (default: stdout)");
  cmd->footer("The components are the Debian packages (purl pkg:deb/debian/NAME@VERSION?arch=A)\n"
              "owning the shared libraries this binary has loaded, found with dpkg -S and\n"
              "dpkg-query.");
  return [o] { return RunSbom(*o); };
}

}  // namespace vigil::app
