#include "hub/auth.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vigil::hub {
namespace {

constexpr std::array<std::pair<std::string_view, Role>, 4> kRoles{{{"viewer", Role::kViewer},
                                                                   {"analyst", Role::kAnalyst},
                                                                   {"admin", Role::kAdmin},
                                                                   {"agent", Role::kAgent}}};

}  // namespace

std::string_view RoleName(Role r) {
  for (const auto& [name, role] : kRoles) {
    if (role == r) return name;
  }
  return "viewer";
}

bool ParseRole(std::string_view name, Role* out) {
  for (const auto& [n, role] : kRoles) {
    if (n == name) {
      *out = role;
      return true;
    }
  }
  return false;
}

bool Grants(Role have, Role need) {
  if (have == Role::kAgent || need == Role::kAgent) return have == need;
  return static_cast<uint8_t>(have) >= static_cast<uint8_t>(need);
}

AuthCheck HubAuth::Check(std::string_view authorization, Role need, int64_t now_unix) const {
  AuthCheck c;
  if (authorization.empty()) {
    c.reason = "no credentials (send \"Authorization: Bearer <token>\")";
    return c;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) {
    c.reason = "authorization: expected \"Bearer <token>\"";
    return c;
  }
  auto claims = api::VerifyJwt(authorization.substr(kBearer.size()), jwt_, now_unix);
  if (!claims.has_value()) {
    c.reason = claims.error().message();
    return c;
  }
  if (!ParseRole(claims->role, &c.caller.role)) {
    c.reason = "token: no hub role (viewer, analyst, admin or agent)";
    return c;
  }
  c.caller.subject = claims->subject;
  if (!Grants(c.caller.role, need)) {
    c.failure = AuthFailure::kForbidden;
    c.reason = "\"" + c.caller.subject + "\" has the role " + std::string(RoleName(c.caller.role)) +
               "; this needs " + std::string(RoleName(need));
    return c;
  }
  c.failure = AuthFailure::kNone;
  return c;
}

std::string HubAuth::Issue(std::string_view subject, Role role, int64_t ttl_s,
                           int64_t now_unix) const {
  api::TokenClaims t;
  t.subject = std::string(subject);
  t.issuer = jwt_.issuer;
  t.audience = jwt_.audience;
  t.role = std::string(RoleName(role));
  t.expires = now_unix + ttl_s;
  return api::IssueJwt(t, jwt_.hs256_key, now_unix);
}

core::Result<std::string> LoadOrCreateTokenKey(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, ec);
      if (ec) return core::Unavailable("token key \"" + path + "\": " + ec.message());
      std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
    }
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    char hex[65];
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      return core::ErrnoError(errno, "token key \"" + path + "\": cannot create");
    }
    if (fd >= 0) {
      const std::string text = std::string(hex, 64) + "\n";
      const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::close(fd);
      if (!ok) return core::Unavailable("token key \"" + path + "\": cannot write");
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound("token key \"" + path + "\": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  std::string key = s.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < 32) {
    return core::InvalidArgument("token key \"" + path + "\": holds fewer than 32 bytes");
  }
  return key;
}

}  // namespace vigil::hub
