#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

namespace vigil::api {
namespace {

constexpr std::array<std::pair<std::string_view, Scope>, 4> kScopes{{
    {"score", kScopeScore}, {"decide", kScopeDecide}, {"enforce", kScopeEnforce},
    {"agent", kScopeAgent}}};

std::string Base64Url(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

bool UnBase64Url(std::string_view text, std::string* out) {
  out->assign(text.size(), '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out->data()), out->size(), text.data(),
                        text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != text.data() + text.size()) {
    return false;
  }
  out->resize(len);
  return true;
}

std::string HmacSha256(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

core::Status Refuse(std::string m) { return core::Status(core::StatusCode::kPermissionDenied, m); }

// A NumericDate claim: absent (false, ok), a number (true), or anything else (error).
core::Status ReadTime(const nlohmann::json& claims, const char* name, bool* present,
                      int64_t* out) {
  *present = false;
  auto it = claims.find(name);
  if (it == claims.end()) return {};
  if (!it->is_number() || !(it->get<double>() > -1e15 && it->get<double>() < 1e15)) {
    return Refuse(std::string("token: claim \"") + name + "\" is not a time");
  }
  *present = true;
  *out = static_cast<int64_t>(it->get<double>());
  return {};
}

}  // namespace

core::Result<uint32_t> ParseScopes(std::string_view text) {
  uint32_t bits = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (j > i) {
      const std::string_view word = text.substr(i, j - i);
      bool known = false;
      for (const auto& [name, bit] : kScopes) {
        if (word == name) {
          bits |= bit;
          known = true;
        }
      }
      if (!known) {
        return core::InvalidArgument("unknown scope \"" + std::string(word.substr(0, 64)) +
                                     "\" (known: score, decide, enforce, agent)");
      }
    }
    i = j;
  }
  return bits;
}

std::string ScopeNames(uint32_t scopes) {
  std::string out;
  for (const auto& [name, bit] : kScopes) {
    if ((scopes & bit) == 0) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

core::Result<TokenClaims> VerifyJwt(std::string_view token, const JwtConfig& config,
                                    int64_t now_unix) {
  if (config.hs256_key.empty()) return Refuse("token: bearer tokens are not accepted here");
  if (token.size() > 8192) return Refuse("token: longer than 8192 bytes");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Refuse("token: not a compact JWS (three base64url parts)");
  }
  std::string header_json, payload_json, signature;
  if (!UnBase64Url(token.substr(0, dot1), &header_json) ||
      !UnBase64Url(token.substr(dot1 + 1, dot2 - dot1 - 1), &payload_json) ||
      !UnBase64Url(token.substr(dot2 + 1), &signature)) {
    return Refuse("token: a part is not base64url");
  }
  const auto header = nlohmann::json::parse(header_json, nullptr, false);
  if (!header.is_object()) return Refuse("token: header is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != "HS256") {
    return Refuse("token: algorithm must be HS256");
  }
  const std::string expected = HmacSha256(config.hs256_key, token.substr(0, dot2));
  if (signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return Refuse("token: bad signature");
  }
  const auto claims = nlohmann::json::parse(payload_json, nullptr, false);
  if (!claims.is_object()) return Refuse("token: payload is not a JSON object");
  TokenClaims out;
  bool has_exp = false, has_nbf = false;
  if (auto s = ReadTime(claims, "exp", &has_exp, &out.expires); !s.ok()) return s;
  if (auto s = ReadTime(claims, "nbf", &has_nbf, &out.not_before); !s.ok()) return s;
  if (!has_exp) return Refuse("token: no \"exp\" claim");
  if (now_unix > out.expires + config.leeway_s) return Refuse("token: expired");
  if (has_nbf && now_unix + config.leeway_s < out.not_before) {
    return Refuse("token: not valid yet (nbf)");
  }
  auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string() || iss->get<std::string>() != config.issuer) {
    return Refuse("token: wrong issuer");
  }
  out.issuer = config.issuer;
  auto aud = claims.find("aud");
  bool aud_ok = false;
  if (aud != claims.end() && aud->is_string()) aud_ok = aud->get<std::string>() == config.audience;
  if (aud != claims.end() && aud->is_array()) {
    for (const auto& a : *aud) aud_ok |= a.is_string() && a.get<std::string>() == config.audience;
  }
  if (!aud_ok) return Refuse("token: wrong audience");
  out.audience = config.audience;
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty() ||
      sub->get<std::string>().size() > 256) {
    return Refuse("token: no \"sub\" claim");
  }
  out.subject = sub->get<std::string>();
  auto scope = claims.find("scope");
  if (scope != claims.end()) {
    if (!scope->is_string()) return Refuse("token: \"scope\" is not a string");
    auto bits = ParseScopes(scope->get<std::string>());
    if (!bits.has_value()) return Refuse("token: " + bits.error().message());
    out.scopes = *bits;
  }
  auto role = claims.find("role");
  if (role != claims.end()) {
    if (!role->is_string() || role->get<std::string>().size() > 64) {
      return Refuse("token: \"role\" is not a string of at most 64 bytes");
    }
    out.role = role->get<std::string>();
  }
  return out;
}

std::string IssueJwt(const TokenClaims& claims, std::string_view hs256_key, int64_t now_unix) {
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  nlohmann::json payload = {{"sub", claims.subject},      {"iss", claims.issuer},
                            {"aud", claims.audience},     {"iat", now_unix},
                            {"exp", claims.expires},      {"scope", ScopeNames(claims.scopes)}};
  if (claims.not_before != 0) payload["nbf"] = claims.not_before;
  if (!claims.role.empty()) payload["role"] = claims.role;
  std::string signing_input = Base64Url(header) + "." + Base64Url(payload.dump());
  const std::string mac = HmacSha256(hs256_key, signing_input);
  return signing_input + "." + Base64Url(mac);
}

namespace {
constexpr size_t kStripes = 16;
using Digest = std::array<unsigned char, 32>;

Digest Sha256(std::string_view bytes) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}
}  // namespace

struct Authenticator::CachedToken {
  bool used = false;
  Digest digest{};
  Principal principal;
  int64_t not_before = 0;  // 0: none
  int64_t expires = 0;
};

struct Authenticator::Stripe {
  std::mutex mu;
};

Authenticator::Authenticator(AuthConfig config)
    : config_(std::move(config)),
      slots_(config_.token_cache_entries > 0
                 ? std::make_unique<CachedToken[]>(config_.token_cache_entries)
                 : nullptr),
      stripes_(std::make_unique<Stripe[]>(kStripes)) {}

Authenticator::~Authenticator() = default;

bool Authenticator::Bearer(std::string_view token, int64_t now_unix, Principal* out,
                           std::string* reason) const {
  const size_t n = config_.token_cache_entries;
  Digest digest{};
  size_t slot = 0;
  if (n > 0 && !config_.jwt.hs256_key.empty()) {
    digest = Sha256(token);
    uint64_t h = 0;
    std::memcpy(&h, digest.data(), sizeof(h));
    slot = static_cast<size_t>(h % n);
    std::lock_guard<std::mutex> lock(stripes_[slot % kStripes].mu);
    CachedToken& c = slots_[slot];
    if (c.used && c.digest == digest) {
      if (now_unix > c.expires + config_.jwt.leeway_s) {
        c.used = false;
        *reason = "token: expired";
        return false;
      }
      if (c.not_before != 0 && now_unix + config_.jwt.leeway_s < c.not_before) {
        *reason = "token: not valid yet (nbf)";
        return false;
      }
      *out = c.principal;
      hits_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  verifications_.fetch_add(1, std::memory_order_relaxed);
  auto claims = VerifyJwt(token, config_.jwt, now_unix);
  if (!claims.has_value()) {
    *reason = claims.error().message();
    return false;
  }
  *out = {"jwt:" + claims->subject, claims->scopes};
  if (n > 0) {
    std::lock_guard<std::mutex> lock(stripes_[slot % kStripes].mu);
    CachedToken& c = slots_[slot];
    c.used = true;
    c.digest = digest;
    c.principal = *out;
    c.not_before = claims->not_before;
    c.expires = claims->expires;
  }
  return true;
}

AuthResult Authenticator::Authenticate(std::string_view authorization, std::string_view peer_cn,
                                       uint32_t needed_scope, int64_t now_unix) const {
  AuthResult r;
  if (!authorization.empty()) {
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.substr(0, kBearer.size()) != kBearer) {
      r.reason = "authorization: expected \"Bearer <token>\"";
      return r;
    }
    if (!Bearer(authorization.substr(kBearer.size()), now_unix, &r.principal, &r.reason)) {
      return r;
    }
  } else if (!peer_cn.empty()) {
    auto it = config_.client_scopes.find(std::string(peer_cn));
    if (it == config_.client_scopes.end()) {
      r.reason = "client certificate: \"" + std::string(peer_cn.substr(0, 128)) +
                 "\" is not a configured client";
      return r;
    }
    r.principal = {"cert:" + it->first, it->second};
  } else if (config_.allow_anonymous) {
    r.principal = {"anonymous", config_.anonymous_scopes};
  } else {
    r.reason = "no credentials (a bearer token or a client certificate is required)";
    return r;
  }
  if ((r.principal.scopes & needed_scope) != needed_scope) {
    r.outcome = AuthOutcome::kForbidden;
    r.reason = "\"" + r.principal.name + "\" lacks the scope \"" + ScopeNames(needed_scope) + "\"";
    return r;
  }
  r.outcome = AuthOutcome::kOk;
  return r;
}

}  // namespace vigil::api
