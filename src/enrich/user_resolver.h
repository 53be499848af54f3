#pragma once

// Turning a uid into a user name. The system lookup (getpwuid_r) may go through NSS to LDAP or
// SSSD and block for a long time, so the process tree asks through a small cache and never while
// holding its own lock; tests inject a fake resolver instead of depending on /etc/passwd.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace vigil::enrich {

// Implementations must be safe to call from several threads at once.
class UserResolver {
 public:
  virtual ~UserResolver() = default;
  // The name of `uid`, or nullopt when the user database has none (or could not be read).
  virtual std::optional<std::string> NameOf(uint32_t uid) = 0;
};

// getpwuid_r(3) with a buffer grown on ERANGE up to 1 MiB. Thread-safe.
class SystemUserResolver final : public UserResolver {
 public:
  std::optional<std::string> NameOf(uint32_t uid) override;
};

// Remembers up to `capacity` answers of another resolver, including "no such user", so a host
// whose processes run as a few dozen users asks the database a few dozen times. When full it
// forgets everything and starts again: uids are few, so a smarter policy buys nothing. A user
// added to the database after a negative answer stays unnamed until the cache is next cleared.
// Thread-safe.
class CachingUserResolver {
 public:
  // `inner` is not owned and must outlive this object. Precondition: capacity >= 1.
  CachingUserResolver(UserResolver* inner, size_t capacity);
  CachingUserResolver(const CachingUserResolver&) = delete;
  CachingUserResolver& operator=(const CachingUserResolver&) = delete;

  // The name of `uid`, or "" when it has none. The inner resolver is called outside the lock, so
  // two threads missing on the same uid may both ask it; the answers are the same.
  std::string NameOf(uint32_t uid);

  // Times the inner resolver was asked (for tests and diagnostics).
  uint64_t misses() const;

 private:
  UserResolver* const inner_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, std::string> names_;  // "" = known to have no name
  uint64_t misses_ = 0;
};

}  // namespace vigil::enrich
