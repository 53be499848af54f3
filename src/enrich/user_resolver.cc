#include "enrich/user_resolver.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace vigil::enrich {

std::optional<std::string> SystemUserResolver::NameOf(uint32_t uid) {
  constexpr size_t kMaxBuffer = 1 << 20;
  const long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(hint > 0 ? static_cast<size_t>(hint) : 4096);
  while (true) {
    struct passwd pwd {};
    struct passwd* found = nullptr;
    const int rc =
        ::getpwuid_r(static_cast<uid_t>(uid), &pwd, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < kMaxBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr || found->pw_name == nullptr) return std::nullopt;
    return std::string(found->pw_name);
  }
}

CachingUserResolver::CachingUserResolver(UserResolver* inner, size_t capacity)
    : inner_(inner), capacity_(capacity == 0 ? 1 : capacity) {}

std::string CachingUserResolver::NameOf(uint32_t uid) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = names_.find(uid);
    if (it != names_.end()) return it->second;
    ++misses_;
  }
  std::string name = inner_->NameOf(uid).value_or(std::string());
  std::lock_guard<std::mutex> lock(mu_);
  if (names_.size() >= capacity_) names_.clear();
  names_.emplace(uid, name);
  return name;
}

uint64_t CachingUserResolver::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace vigil::enrich
