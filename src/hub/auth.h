#pragma once

// Who may do what on the hub (docs/hub.md, "Authentication"). People and agents present
// short-lived HS256 JWTs that the hub signs (api/auth.h VerifyJwt/IssueJwt); the token's "role"
// claim is one of
//   viewer   read incidents, escalations, agents, labelled data
//   analyst  viewer + adjudicate incidents, decide escalations
//   admin    analyst + what later slices add (agents, policy and model pushes)
//   agent    post findings and escalations for the host named by the token's subject, and read
//            its own escalations (agents are to move to mTLS certificates in a later slice)
// A request without a token, or with one that fails any check, is unauthenticated (401); a
// verified caller whose role does not grant the route is forbidden (403).

#include <cstdint>
#include <string>
#include <string_view>

#include "api/auth.h"
#include "core/status.h"

namespace vigil::hub {

enum class Role : uint8_t { kViewer, kAnalyst, kAdmin, kAgent };
std::string_view RoleName(Role r);  // "viewer", "analyst", "admin", "agent"
bool ParseRole(std::string_view name, Role* out);
// Whether `have` grants what `need` may do: viewer < analyst < admin; agent only agent.
bool Grants(Role have, Role need);

struct Caller {
  std::string subject;  // the token's "sub" (an agent's host id)
  Role role = Role::kViewer;
};

enum class AuthFailure : uint8_t { kNone, kUnauthenticated, kForbidden };

struct AuthCheck {
  AuthFailure failure = AuthFailure::kUnauthenticated;
  Caller caller;
  std::string reason;  // never echoes the token
};

class HubAuth {
 public:
  // `jwt.hs256_key` must hold at least 32 bytes.
  explicit HubAuth(api::JwtConfig jwt) : jwt_(std::move(jwt)) {}

  // `authorization` is the Authorization header ("" when absent).
  AuthCheck Check(std::string_view authorization, Role need, int64_t now_unix) const;

  // A token for `subject` with `role`, valid from now for `ttl_s` seconds.
  std::string Issue(std::string_view subject, Role role, int64_t ttl_s, int64_t now_unix) const;

  const api::JwtConfig& jwt() const { return jwt_; }

 private:
  api::JwtConfig jwt_;
};

}  // namespace vigil::hub

namespace vigil::hub {

// The hub's HS256 secret at `path`: read (trailing newline dropped; at least 32 bytes, else
// kInvalidArgument), or, when the file is absent, created with 32 random bytes as 64 hex digits
// (mode 0600, parent directories 0700). Errors name the path.
core::Result<std::string> LoadOrCreateTokenKey(const std::string& path);

}  // namespace vigil::hub
