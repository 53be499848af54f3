#pragma once

// What every model-file fuzz target requires of the code it drives: a refusal explains itself,
// and a model that loads scores a short system-call stream to a finite score in [0, 1].

#include <cmath>
#include <cstdint>

#include "core/status.h"
#include "model/model.h"

namespace vigil::fuzz {

inline void CheckError(const core::Status& s) {
  if (s.ok() || s.message().empty()) __builtin_trap();
}

inline void CheckScoresStream(const model::Model& m) {
  static constexpr int32_t kSyscalls[] = {3, 5, 6, 192, 195, 3, 3, 11, 0, -1, 511, 340, 5, 5};
  auto stream = m.NewStream("");
  stream->ObserveSyscalls(core::Arch::kI386, kSyscalls);
  const core::Verdict v = stream->Current();
  if (std::isnan(v.score) || v.score < 0.0 || v.score > 1.0) __builtin_trap();
}

}  // namespace vigil::fuzz
