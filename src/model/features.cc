#include "model/features.h"

#include <algorithm>
#include <set>

namespace vigil::model {
namespace {
constexpr size_t kMaxVocabulary = 4096;
}  // namespace

core::Result<SyscallVocabulary> SyscallVocabulary::Create(std::vector<std::string> names) {
  if (names.size() > kMaxVocabulary) {
    return core::InvalidArgument("syscall vocabulary of " + std::to_string(names.size()) +
                                 " names is larger than " + std::to_string(kMaxVocabulary));
  }
  std::set<std::string_view> seen;
  for (const std::string& n : names) {
    if (n.empty()) return core::InvalidArgument("syscall vocabulary holds an empty name");
    if (n == kOtherSyscallFeature) {
      return core::InvalidArgument("syscall vocabulary holds the reserved name " +
                                   std::string(kOtherSyscallFeature));
    }
    if (!seen.insert(n).second) {
      return core::InvalidArgument("syscall vocabulary holds \"" + n + "\" twice");
    }
  }
  SyscallVocabulary v;
  v.names_ = std::move(names);
  const auto other = static_cast<uint32_t>(v.names_.size());
  for (auto& row : v.lut_) row.fill(other);
  for (size_t i = 0; i < v.names_.size(); ++i) {
    for (core::Arch arch : {core::Arch::kI386, core::Arch::kX86_64}) {
      const int nr = core::SyscallNumber(arch, v.names_[i]);
      if (nr >= 0 && nr < core::kMaxSyscallNr) {
        v.lut_[static_cast<size_t>(arch)][static_cast<size_t>(nr)] = static_cast<uint32_t>(i);
      }
    }
  }
  return v;
}

std::vector<std::string> SyscallVocabulary::CollectNames(
    core::Arch arch, std::span<const std::vector<int32_t>> traces) {
  std::vector<std::string> out;
  std::set<std::string_view> seen;
  for (const auto& t : traces) {
    for (int32_t nr : t) {
      const std::string_view name = core::SyscallName(arch, nr);
      if (name.empty() || !seen.insert(name).second) continue;
      out.emplace_back(name);
    }
  }
  return out;
}

core::Result<SyscallVocabulary> SyscallVocabulary::FromTraces(
    std::span<const TrainingTrace> traces) {
  std::vector<std::string> names;
  for (core::Arch arch : {core::Arch::kI386, core::Arch::kX86_64}) {
    std::vector<std::vector<int32_t>> of_arch;
    for (const TrainingTrace& t : traces) {
      if (t.arch == arch) of_arch.push_back(t.syscalls);
    }
    for (std::string& n : CollectNames(arch, of_arch)) {
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
    }
  }
  return Create(std::move(names));
}

std::vector<std::string> SyscallVocabulary::FeatureNames() const {
  std::vector<std::string> out = names_;
  out.emplace_back(kOtherSyscallFeature);
  return out;
}

void SyscallBag::Frequencies(std::span<float> out) const {
  const size_t n = std::min(out.size(), counts_.size());
  const double inv = total_ == 0 ? 0.0 : 1.0 / static_cast<double>(total_);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(counts_[i]) * inv);
}

std::vector<float> SyscallBag::Frequencies() const {
  std::vector<float> out(counts_.size());
  Frequencies(out);
  return out;
}

std::vector<float> BagOfSyscalls(const SyscallVocabulary& vocab, core::Arch arch,
                                 std::span<const int32_t> nrs) {
  SyscallBag bag(vocab);
  bag.AddAll(arch, nrs);
  return bag.Frequencies();
}

void SlidingWindowCounter::Add(uint32_t index) {
  if (index >= counts_.size()) return;
  if (filled_ == ring_.size()) {
    --counts_[ring_[next_]];
  } else {
    ++filled_;
  }
  ring_[next_] = index;
  ++counts_[index];
  next_ = (next_ + 1) % ring_.size();
}

void SlidingWindowCounter::Frequencies(std::span<float> out) const {
  const size_t n = std::min(out.size(), counts_.size());
  const double inv = filled_ == 0 ? 0.0 : 1.0 / static_cast<double>(filled_);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(counts_[i] * inv);
}

void SlidingWindowCounter::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0u);
  next_ = 0;
  filled_ = 0;
}

}  // namespace vigil::model
