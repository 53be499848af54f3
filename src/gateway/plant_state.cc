#include "gateway/plant_state.h"

#include <mutex>

namespace vigil::gateway {

void PlantState::Set(std::string_view signal, double value, int64_t mono_ns) {
  std::lock_guard lock(mu_);
  values_[std::string(signal)] = Reading{value, mono_ns};
}

void PlantState::SetAll(std::span<const std::pair<std::string, double>> values, int64_t mono_ns) {
  std::lock_guard lock(mu_);
  for (const auto& [name, value] : values) values_[name] = Reading{value, mono_ns};
}

std::optional<PlantState::Reading> PlantState::Get(std::string_view signal) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(std::string(signal));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::optional<PlantState::Reading>> PlantState::GetAll(
    std::span<const std::string> signals) const {
  std::vector<std::optional<Reading>> out;
  out.reserve(signals.size());
  std::lock_guard lock(mu_);
  for (const std::string& s : signals) {
    auto it = values_.find(s);
    out.push_back(it == values_.end() ? std::nullopt : std::optional<Reading>(it->second));
  }
  return out;
}

size_t PlantState::size() const {
  std::lock_guard lock(mu_);
  return values_.size();
}

}  // namespace vigil::gateway
