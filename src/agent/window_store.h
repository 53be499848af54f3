#pragma once

// WindowStore: the windows of system calls the live agent learns from, held compactly until
// training. A learning agent keeps every window it collects (up to a bound per program) for the
// whole learning period, so on a busy host they were the largest part of its heap: each window
// as a model::TrainingTrace cost its calls at 4 bytes each, a heap block of its own and a copy of
// the program's name (about 560 bytes for a 100-call window).
//
// Here each program's windows are one byte buffer: every call number as an unsigned LEB128
// varint (one byte below 128, two below 16,384: every number of the syscall tables), plus one
// byte of architecture and four of length per window; about 150 bytes for a 100-call window of
// typical numbers. Any int32_t round-trips exactly (a negative one takes five bytes).
//
// Not thread-safe: the caller serialises (LiveAgent::State holds its mutex).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "model/features.h"

namespace vigil::agent {

class WindowStore {
 public:
  // At most `max_windows_per_program` windows are kept per program; later ones are refused.
  explicit WindowStore(size_t max_windows_per_program)
      : max_windows_per_program_(max_windows_per_program) {}

  // Keeps a copy of `calls` as one window of `program` (compiled for `arch`). Returns false, and
  // keeps nothing, when the program already has its bound of windows.
  bool Add(std::string_view program, core::Arch arch, std::span<const int32_t> calls);

  // Windows held, over all programs.
  size_t windows() const { return windows_; }
  // Bytes of encoded calls and per-window records held (not counting spare capacity).
  size_t bytes() const;

  // Every window, decoded, as training traces (subject = program): programs in name order, each
  // program's windows in the order they were added. Leaves the store empty, its memory freed.
  std::vector<model::TrainingTrace> Take();

 private:
  struct Program {
    std::vector<uint8_t> calls;     // every window's calls, varint-encoded, back to back
    std::vector<uint32_t> lengths;  // calls per window
    std::vector<core::Arch> archs;  // per window
  };

  size_t max_windows_per_program_;
  size_t windows_ = 0;
  std::map<std::string, Program, std::less<>> programs_;
};

}  // namespace vigil::agent
