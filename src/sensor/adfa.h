#pragma once

// The ADFA Linux Dataset (ADFA-LD) on disk: one ASCII file per trace holding space-separated
// i386 system-call numbers. Training_Data_Master/ and Validation_Data_Master/ hold normal traces;
// Attack_Data_Master/<Type>_<run>/ holds attack traces.

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vigil::sensor {

enum class AdfaSplit : uint8_t { kTraining, kValidation, kAttack };

struct AdfaTrace {
  std::string path;         // full path of the trace file
  std::string id;           // path relative to the dataset root, e.g. "Attack_Data_Master/Adduser_1/x.txt"
  AdfaSplit split = AdfaSplit::kTraining;
  std::string attack_type;  // "Adduser", ... for kAttack; "" otherwise
};

// Lists the traces of `split` under the dataset root, sorted by id. Fails with kNotFound when
// the split's folder is missing, kInvalidArgument when it holds no trace.
core::Result<std::vector<AdfaTrace>> ListAdfaTraces(const std::string& root, AdfaSplit split);

// Reads one trace. Every token must be a decimal number of an i386 system call; otherwise the
// error names the file, the token's position (1-based) and the token.
core::Result<std::vector<int32_t>> ReadAdfaTrace(const std::string& path);

}  // namespace vigil::sensor
