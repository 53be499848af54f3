#pragma once

// Who is calling the decision service, and what they may do (docs/api.md, "Authentication").
//
// Two kinds of credentials, checked before any service code runs:
//  - a client certificate, verified by the TLS layer against the configured client CA (mTLS,
//    for services); its subject common name is looked up in a table of client names -> scopes;
//  - a JWT bearer token (HS256) for people and tools: the signature, exp (required), nbf, iss
//    and aud are checked, and its "scope" claim (space-separated, OAuth style) grants scopes.
// A request with neither, or with a token that fails any check, is unauthenticated; a valid
// caller without the scope an API needs is forbidden.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::api {

// Scopes, one per API group.
enum Scope : uint32_t {
  kScopeScore = 1u << 0,    // Inference.*
  kScopeDecide = 1u << 1,   // Policy.Decide
  kScopeEnforce = 1u << 2,  // Control.Enforce, Control.Rollback
  kScopeAgent = 1u << 3,    // Control.Watch, Control.Acknowledge (enforcement agents)
};
// "score decide" <-> bits. ParseScopes: kInvalidArgument naming an unknown scope.
core::Result<uint32_t> ParseScopes(std::string_view space_separated);
std::string ScopeNames(uint32_t scopes);

struct Principal {
  std::string name;      // "cert:<CN>" or "jwt:<sub>" (rate limits are per principal)
  uint32_t scopes = 0;
};

struct JwtConfig {
  std::string hs256_key;  // the shared secret (raw bytes, >= 32); empty: tokens are not accepted
  std::string issuer;     // required "iss"
  std::string audience;   // required in "aud" (a string or an array)
  int64_t leeway_s = 30;  // clock skew allowed on exp and nbf
};

struct AuthConfig {
  JwtConfig jwt;
  std::map<std::string, uint32_t> client_scopes;  // certificate CN -> scopes
  // Without credentials: refused unless allow_anonymous (for loopback-only deployments).
  bool allow_anonymous = false;
  uint32_t anonymous_scopes = 0;
  // Bearer tokens that verified are remembered (see Authenticator) in a table of this many
  // entries; 0 verifies every token on every request.
  size_t token_cache_entries = 1024;
};

enum class AuthOutcome : uint8_t {
  kOk,
  kUnauthenticated,  // no credentials, or credentials that did not verify (HTTP 401)
  kForbidden,        // verified, but without the needed scope (HTTP 403)
};

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::kUnauthenticated;
  Principal principal;
  std::string reason;  // for the caller, when not kOk; never echoes the token
};

// Thread-safe. A bearer token that verified is remembered, keyed by the SHA-256 digest of the
// whole token (header, claims and signature), with its subject, scopes, nbf and exp, in a
// direct-mapped table of `config.token_cache_entries` slots (a newer token takes an older one's
// slot). A remembered token skips the base64, HMAC and JSON work but not the time checks: it is
// refused once `now` is past its exp (plus leeway) and evicted. Only verified tokens are
// remembered, so a token that differs in any byte (forged signature, altered claims) is
// verified in full and refused. The table lives and dies with the Authenticator: a new key or
// issuer means a new Authenticator and an empty table. There is no revocation list: a token is
// good until its exp, cached or not.
class Authenticator {
 public:
  explicit Authenticator(AuthConfig config);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // `authorization` is the Authorization header or metadata value ("" when absent);
  // `peer_cn` the CN of a client certificate the TLS layer verified ("" when none).
  // A present but invalid token is refused even when a certificate is also present.
  AuthResult Authenticate(std::string_view authorization, std::string_view peer_cn,
                          uint32_t needed_scope, int64_t now_unix) const;

  const AuthConfig& config() const { return config_; }
  // Bearer tokens answered from the table, and verified in full (for tests and metrics).
  uint64_t token_cache_hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t token_verifications() const { return verifications_.load(std::memory_order_relaxed); }

 private:
  struct CachedToken;
  struct Stripe;
  // The principal of a bearer token, from the table or verified; "" reason when ok.
  bool Bearer(std::string_view token, int64_t now_unix, Principal* out, std::string* reason) const;

  AuthConfig config_;
  std::unique_ptr<CachedToken[]> slots_;
  std::unique_ptr<Stripe[]> stripes_;
  mutable std::atomic<uint64_t> hits_{0}, verifications_{0};
};

struct TokenClaims {
  std::string subject;
  std::string issuer;
  std::string audience;
  uint32_t scopes = 0;
  int64_t not_before = 0;  // 0: no nbf claim
  int64_t expires = 0;
  // An application's own "role" claim (the hub's viewer/analyst/admin/agent); "" when absent.
  // VerifyJwt only checks that it is a string of at most 64 bytes; the application decides.
  std::string role;
};

// Checks `token` (compact JWS) with `config`: HS256 only ("none" and other algorithms are
// refused), signature, exp, nbf, iss, aud. The error says which check failed.
core::Result<TokenClaims> VerifyJwt(std::string_view token, const JwtConfig& config,
                                    int64_t now_unix);
// Issues an HS256 token with sub, iss, aud, iat = now, nbf, exp, scope and (when set) role.
std::string IssueJwt(const TokenClaims& claims, std::string_view hs256_key, int64_t now_unix);

}  // namespace vigil::api
