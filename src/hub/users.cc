// Password hashing and the users file on disk (users.h).

#include "hub/users.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/file_lock.h"
#include "core/files.h"

namespace vigil::hub {
namespace {

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

// Runs `change` on the users at `path` (an absent file: none) while holding `path`.lock, then
// saves the result when `change` succeeds.
template <typename F>
core::Status ChangeUsers(const std::string& path, F change) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) VIGIL_RETURN_IF_ERROR(core::MakeDirs(parent.string(), 0700));
  VIGIL_ASSIGN_OR_RETURN(auto lock, core::FileLock::Take(path + ".lock"));
  std::vector<UserEntry> users;
  auto loaded = LoadUsers(path);
  if (loaded.has_value()) {
    users = std::move(loaded).value();
  } else if (loaded.error().code() != core::StatusCode::kNotFound) {
    return loaded.error();
  }
  VIGIL_RETURN_IF_ERROR(change(users));
  return SaveUsers(path, users);
}

}  // namespace

std::string FormatUsersFile(const std::vector<UserEntry>& users) {
  std::string out = "# vigil hub users: NAME ROLE ARGON2ID-HASH (vigil hub user add|list|remove)\n";
  for (const UserEntry& u : users) {
    out += u.name + " " + std::string(RoleName(u.role)) + " " + u.hash + "\n";
  }
  return out;
}

core::Result<std::string> HashPassword(std::string_view password) {
  if (password.size() < kMinPasswordBytes) {
    return core::InvalidArgument("password: shorter than " + std::to_string(kMinPasswordBytes) +
                                 " bytes");
  }
  if (password.size() > kMaxPasswordBytes) {
    return core::InvalidArgument("password: longer than " + std::to_string(kMaxPasswordBytes) +
                                 " bytes");
  }
  if (password.find_first_not_of(" \t") == std::string_view::npos) {
    return core::InvalidArgument("password: only blanks");
  }
  if (!SodiumReady()) return core::Internal("libsodium failed to initialise");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return core::Unavailable("password hashing ran out of memory");
  }
  return std::string(out);
}

bool VerifyPassword(const std::string& hash, std::string_view password) {
  if (!SodiumReady() || password.size() > kMaxPasswordBytes) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

core::Result<std::vector<UserEntry>> LoadUsers(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(std::string text, core::ReadFile(path, kMaxUsersFileBytes));
  return ParseUsersFile(text, path);
}

core::Status SaveUsers(const std::string& path, const std::vector<UserEntry>& users) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) VIGIL_RETURN_IF_ERROR(core::MakeDirs(parent.string(), 0700));
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return core::ErrnoError(errno, "users file \"" + tmp + "\": cannot create");
  const std::string text = FormatUsersFile(users);
  size_t done = 0;
  bool ok = ::fchmod(fd, 0600) == 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  const int err = errno;
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : err;
    ::unlink(tmp.c_str());
    return core::ErrnoError(e, "users file \"" + path + "\": cannot write");
  }
  // The rename is durable once the folder is synced.
  const int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

core::Status AddUser(const std::string& path, UserEntry user) {
  if (!ValidUserName(user.name)) {
    return core::InvalidArgument("user name \"" + user.name +
                                 "\": expected 1..64 bytes of [A-Za-z0-9._@-]");
  }
  if (user.role == Role::kAgent) {
    return core::InvalidArgument("role: people are viewer, analyst or admin (agents use tokens)");
  }
  return ChangeUsers(path, [&](std::vector<UserEntry>& users) -> core::Status {
    for (const UserEntry& u : users) {
      if (u.name == user.name) {
        return core::Status(core::StatusCode::kAlreadyExists,
                            "user \"" + user.name + "\" already exists in " + path);
      }
    }
    users.push_back(std::move(user));
    return {};
  });
}

core::Status RemoveUser(const std::string& path, std::string_view name) {
  return ChangeUsers(path, [&](std::vector<UserEntry>& users) -> core::Status {
    auto it = std::find_if(users.begin(), users.end(),
                           [&](const UserEntry& u) { return u.name == name; });
    if (it == users.end()) {
      return core::NotFound("user \"" + std::string(name) + "\": not in " + path);
    }
    users.erase(it);
    return {};
  });
}

}  // namespace vigil::hub
