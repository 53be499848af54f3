#pragma once

// The hub's attestation tokens (docs/attestation.md, "The hub"): stateless, so that any hub
// instance that shares the key accepts what another issued. The key is derived from the hub's
// token key (every instance of one hub shares that file); one-time use is enforced through the
// shared store (Store::UseNonce), not in an instance's memory.
//
//   nonce (48 bytes):  random 16 || expiry ms (8, big-endian) || HMAC-SHA-256(key, "vigil.attest.
//                      nonce/v1" 0 host 0 random expiry)[0..24)
//   challenge token:   hex(claims JSON) "." hex(HMAC-SHA-256(key, "vigil.attest.challenge/v1" 0
//                      claims JSON)); claims {"host","ak_name","ak_public","ek_sha256",
//                      "secret_sha256","exp"}
//
// The secret of a credential challenge is never in the token: only its SHA-256.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil::hub {

inline constexpr size_t kAttestNonceBytes = 48;
inline constexpr size_t kMaxChallengeTokenBytes = 8192;

// The key the hub signs its nonces and challenge tokens with, from its token key.
std::string AttestationKeyOf(std::string_view token_key);

// A nonce for `host` that expires at `expires_ms` (raw bytes).
std::string MintAttestNonce(std::string_view key, std::string_view host, int64_t expires_ms);
// Checks that `nonce` was minted with `key` for `host` and has not expired; returns its expiry.
// kFailedPrecondition with the reason otherwise ("not issued by this hub", "expired ...").
core::Result<int64_t> CheckAttestNonce(std::string_view key, std::string_view host,
                                       std::string_view nonce, int64_t now_ms);

struct ChallengeClaims {
  std::string host;
  std::string ak_name;        // hex
  std::string ak_public;      // PEM
  std::string ek_sha256;      // hex
  std::string secret_sha256;  // hex
  int64_t expires_ms = 0;
};

std::string MintChallengeToken(std::string_view key, const ChallengeClaims& c);
// kFailedPrecondition for a token not signed with `key`, malformed or expired.
core::Result<ChallengeClaims> CheckChallengeToken(std::string_view key, std::string_view token,
                                                  int64_t now_ms);

}  // namespace vigil::hub
