#pragma once

// Feature extractors shared by the vector model families: a bag-of-syscalls (system-call
// frequency) vector per trace over a fixed vocabulary, and a sliding-window counter. Neither
// allocates once built, so both may sit on the per-event path.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"
#include "core/status.h"
#include "core/syscall_table.h"

namespace vigil::model {

// Name of the last feature of every bag: calls outside the vocabulary (unknown numbers, or
// names the vocabulary does not hold).
inline constexpr std::string_view kOtherSyscallFeature = "<other>";

// One recorded trace of system calls, the input the syscall families train on.
struct TrainingTrace {
  std::string subject;  // program name; "" when unknown (trains the global model only)
  core::Arch arch = core::Arch::kUnknown;
  std::vector<int32_t> syscalls;
};

// A fixed, ordered list of system-call names. Feature i (< size()) counts calls named names[i];
// feature size() counts every other call, so a bag has dims() = size() + 1 entries.
class SyscallVocabulary {
 public:
  SyscallVocabulary() { lut_.fill({}); }
  // Fails with kInvalidArgument for an empty, duplicate or "<other>" name, or more than 4096.
  static core::Result<SyscallVocabulary> Create(std::vector<std::string> names);
  // Every name `arch` resolves in `traces`, in order of first appearance (unknown numbers are
  // skipped): the vocabulary a family trains with.
  static std::vector<std::string> CollectNames(core::Arch arch,
                                               std::span<const std::vector<int32_t>> traces);
  // The vocabulary of every call in `traces`: the i386 names first, then the x86-64 names not
  // seen yet, each in order of first appearance.
  static core::Result<SyscallVocabulary> FromTraces(std::span<const TrainingTrace> traces);

  size_t size() const { return names_.size(); }
  size_t dims() const { return names_.size() + 1; }
  // Feature index of call `nr` on `arch`; size() (the "<other>" feature) when not held.
  uint32_t IndexOf(core::Arch arch, int32_t nr) const {
    const auto a = static_cast<size_t>(arch);
    if (a >= lut_.size() || nr < 0 || nr >= core::kMaxSyscallNr) return other();
    return lut_[a][static_cast<size_t>(nr)];
  }
  uint32_t other() const { return static_cast<uint32_t>(names_.size()); }
  // The names of all dims() features ("<other>" last).
  std::vector<std::string> FeatureNames() const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::array<std::array<uint32_t, core::kMaxSyscallNr>, 3> lut_;  // per core::Arch
};

// Counts of the calls of one trace, per feature of a vocabulary.
class SyscallBag {
 public:
  explicit SyscallBag(const SyscallVocabulary& vocab) : vocab_(&vocab), counts_(vocab.dims()) {}
  void Add(core::Arch arch, int32_t nr) {
    ++counts_[vocab_->IndexOf(arch, nr)];
    ++total_;
  }
  void AddAll(core::Arch arch, std::span<const int32_t> nrs) {
    for (int32_t nr : nrs) Add(arch, nr);
  }
  uint64_t total() const { return total_; }
  const std::vector<uint64_t>& counts() const { return counts_; }
  // Writes the frequencies (count / total, summing to 1; all 0 for an empty bag) into `out`,
  // which must hold dims() entries.
  void Frequencies(std::span<float> out) const;
  std::vector<float> Frequencies() const;

 private:
  const SyscallVocabulary* vocab_;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

// The normalised bag-of-syscalls vector of a whole trace.
std::vector<float> BagOfSyscalls(const SyscallVocabulary& vocab, core::Arch arch,
                                 std::span<const int32_t> nrs);

// Per-feature counts over the last `window` items of a stream of feature indices (all
// < dims). Add() is O(1) and does not allocate.
class SlidingWindowCounter {
 public:
  // `window` >= 1.
  SlidingWindowCounter(size_t dims, size_t window)
      : counts_(dims), ring_(window < 1 ? 1 : window) {}
  // Adds `index` (ignored when >= dims) and drops the item `window` places back.
  void Add(uint32_t index);
  // Items in the window now (<= window).
  size_t size() const { return filled_; }
  size_t window() const { return ring_.size(); }
  const std::vector<uint32_t>& counts() const { return counts_; }
  // count / size() per feature into `out` (dims entries; all 0 when empty).
  void Frequencies(std::span<float> out) const;
  void Clear();

 private:
  std::vector<uint32_t> counts_;
  std::vector<uint32_t> ring_;
  size_t next_ = 0;
  size_t filled_ = 0;
};

}  // namespace vigil::model
