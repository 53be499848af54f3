#include "sensor/adfa.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/files.h"
#include "core/syscall_table.h"

namespace vigil::sensor {
namespace fs = std::filesystem;
using core::Result;

namespace {

const char* SplitFolder(AdfaSplit split) {
  switch (split) {
    case AdfaSplit::kTraining: return "Training_Data_Master";
    case AdfaSplit::kValidation: return "Validation_Data_Master";
    case AdfaSplit::kAttack: return "Attack_Data_Master";
  }
  return "";
}

// "Java_Meterpreter_3" -> "Java_Meterpreter".
std::string AttackTypeOf(const std::string& folder) {
  const size_t us = folder.rfind('_');
  if (us == std::string::npos || us + 1 == folder.size()) return folder;
  for (size_t i = us + 1; i < folder.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(folder[i]))) return folder;
  }
  return folder.substr(0, us);
}

}  // namespace

Result<std::vector<AdfaTrace>> ListAdfaTraces(const std::string& root, AdfaSplit split) {
  const fs::path dir = fs::path(root) / SplitFolder(split);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return core::NotFound(dir.string() + ": not a directory (expected the ADFA-LD folder " +
                          SplitFolder(split) + " under " + root + ")");
  }
  std::vector<AdfaTrace> out;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) return core::IoError(dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return core::IoError(dir.string() + ": " + ec.message());
    if (!it->is_regular_file(ec) || it->path().extension() != ".txt") continue;
    AdfaTrace t;
    t.path = it->path().string();
    t.id = fs::relative(it->path(), root, ec).string();
    t.split = split;
    if (split == AdfaSplit::kAttack) {
      t.attack_type = AttackTypeOf(it->path().parent_path().filename().string());
    }
    out.push_back(std::move(t));
  }
  if (out.empty()) return core::InvalidArgument(dir.string() + ": holds no .txt trace files");
  std::sort(out.begin(), out.end(),
            [](const AdfaTrace& a, const AdfaTrace& b) { return a.id < b.id; });
  return out;
}

Result<std::vector<int32_t>> ReadAdfaTrace(const std::string& path) {
  // An ADFA-LD trace is at most a few hundred KB of numbers.
  VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, uint64_t{64} << 20));
  std::vector<int32_t> out;
  out.reserve(text.size() / 3);
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    const size_t start = i;
    int64_t v = 0;
    bool digits = true;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) {
      const char c = text[i];
      if (c < '0' || c > '9' || v > 100000) digits = false;
      if (digits) v = v * 10 + (c - '0');
      ++i;
    }
    const std::string token = text.substr(start, std::min<size_t>(i - start, 32));
    if (!digits) {
      return core::InvalidArgument(path + ": token " + std::to_string(out.size() + 1) + " ('" +
                                   token + "'): not a system-call number");
    }
    if (core::SyscallName(core::Arch::kI386, static_cast<int>(v)).empty()) {
      return core::InvalidArgument(path + ": token " + std::to_string(out.size() + 1) + " (" +
                                   token + "): no i386 system call has this number");
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

}  // namespace vigil::sensor
