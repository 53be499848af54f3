#include "agent/window_store.h"

#include <utility>

namespace vigil::agent {

namespace {

void PutVarint(uint32_t v, std::vector<uint8_t>* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

// Precondition: *at points at a varint that Put wrote (the store reads only what it wrote).
uint32_t GetVarint(const uint8_t** at) {
  uint32_t v = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t b = *(*at)++;
    v |= static_cast<uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

}  // namespace

bool WindowStore::Add(std::string_view program, core::Arch arch, std::span<const int32_t> calls) {
  auto it = programs_.find(program);
  if (it == programs_.end()) {
    if (max_windows_per_program_ == 0) return false;
    it = programs_.emplace(std::string(program), Program{}).first;
  }
  Program& p = it->second;
  if (p.lengths.size() >= max_windows_per_program_) return false;
  for (int32_t nr : calls) PutVarint(static_cast<uint32_t>(nr), &p.calls);
  p.lengths.push_back(static_cast<uint32_t>(calls.size()));
  p.archs.push_back(arch);
  ++windows_;
  return true;
}

size_t WindowStore::bytes() const {
  size_t n = 0;
  for (const auto& [name, p] : programs_) {
    n += p.calls.size() + p.lengths.size() * sizeof(uint32_t) + p.archs.size() * sizeof(core::Arch);
  }
  return n;
}

std::vector<model::TrainingTrace> WindowStore::Take() {
  std::vector<model::TrainingTrace> out;
  out.reserve(windows_);
  for (auto& [name, p] : programs_) {
    const uint8_t* at = p.calls.data();
    for (size_t w = 0; w < p.lengths.size(); ++w) {
      model::TrainingTrace t;
      t.subject = name;
      t.arch = p.archs[w];
      t.syscalls.resize(p.lengths[w]);
      for (int32_t& nr : t.syscalls) nr = static_cast<int32_t>(GetVarint(&at));
      out.push_back(std::move(t));
    }
  }
  programs_.clear();
  windows_ = 0;
  return out;
}

}  // namespace vigil::agent
