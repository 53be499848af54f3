#include "apps/vigil/trainer_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace vigil::app {
namespace {

constexpr const char* kModuleFile = "libvigil-trainer.so";

core::Result<const model::TrainerModule*> Load() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return core::FailedPrecondition("trainer module: cannot find the vigil binary's directory "
                                    "(/proc/self/exe: " + ec.message() + ")");
  }
  const std::filesystem::path dir = exe.parent_path();
  const std::vector<std::filesystem::path> candidates = {
      dir / kModuleFile, (dir / ".." / "lib" / "vigil" / kModuleFile).lexically_normal()};
  std::string tried;
  for (const std::filesystem::path& path : candidates) {
    if (!tried.empty()) tried += "; ";
    if (!std::filesystem::exists(path, ec)) {
      tried += path.string() + ": not found";
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += path.string() + ": " + (why != nullptr ? why : "dlopen failed");
      continue;
    }
    using Entry = const model::TrainerModule* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, model::kTrainerModuleSymbol));
    const model::TrainerModule* table = entry != nullptr ? entry() : nullptr;
    if (table == nullptr) {
      tried += path.string() + ": no " + model::kTrainerModuleSymbol;
    } else if (table->abi != model::kTrainerModuleAbi ||
               table->layout != model::TrainerModuleLayout() ||
               std::string(table->version) != VIGIL_VERSION) {
      tried += path.string() + ": built for another vigil (version " + table->version + ")";
    } else {
      return table;  // kept loaded: trained models run the module's code
    }
    dlclose(handle);
  }
  return core::FailedPrecondition(
      "the libtorch trainer module is not available (" + tried +
      "); it is built with vigil (target vigil_trainer) and installed to lib/vigil");
}

}  // namespace

core::Result<const model::TrainerModule*> LoadTrainerModule() {
  static std::once_flag once;
  static core::Result<const model::TrainerModule*> loaded = core::Internal("not loaded");
  std::call_once(once, [] { loaded = Load(); });
  return loaded;
}

}  // namespace vigil::app
