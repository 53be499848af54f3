#include "hub/fleet_attest.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "govern/attest.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

std::string Hmac(std::string_view key, std::string_view domain, std::string_view data) {
  crypto_auth_hmacsha256_state st;
  unsigned char out[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(domain.data()),
                                domain.size());
  const unsigned char zero = 0;
  crypto_auth_hmacsha256_update(&st, &zero, 1);
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(data.data()),
                                data.size());
  crypto_auth_hmacsha256_final(&st, out);
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

bool Equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string NonceMac(std::string_view key, std::string_view host, std::string_view body) {
  std::string data(host);
  data.push_back('\0');
  data.append(body);
  return Hmac(key, "vigil.attest.nonce/v1", data).substr(0, 24);
}

}  // namespace

std::string AttestationKeyOf(std::string_view token_key) {
  return Hmac(token_key, "vigil.attest.key/v1", "");
}

std::string MintAttestNonce(std::string_view key, std::string_view host, int64_t expires_ms) {
  std::string body(16, '\0');
  randombytes_buf(body.data(), body.size());
  for (int i = 7; i >= 0; --i) {
    body.push_back(static_cast<char>((static_cast<uint64_t>(expires_ms) >> (8 * i)) & 0xff));
  }
  return body + NonceMac(key, host, body);
}

core::Result<int64_t> CheckAttestNonce(std::string_view key, std::string_view host,
                                       std::string_view nonce, int64_t now_ms) {
  if (nonce.size() != kAttestNonceBytes || !Equal(nonce.substr(24), NonceMac(key, host,
                                                                             nonce.substr(0, 24)))) {
    return core::FailedPrecondition(
        "the quote's nonce was not issued to this host by this hub (GET /v1/agents/nonce)");
  }
  uint64_t expires = 0;
  for (size_t i = 16; i < 24; ++i) expires = expires << 8 | static_cast<uint8_t>(nonce[i]);
  const auto expires_ms = static_cast<int64_t>(expires);
  if (expires_ms <= now_ms) {
    return core::FailedPrecondition("the quote's nonce expired " +
                                    std::to_string((now_ms - expires_ms) / 1000) +
                                    " s ago (ask for a new one)");
  }
  return expires_ms;
}

std::string MintChallengeToken(std::string_view key, const ChallengeClaims& c) {
  const std::string claims = json{{"host", c.host},
                                  {"ak_name", c.ak_name},
                                  {"ak_public", c.ak_public},
                                  {"ek_sha256", c.ek_sha256},
                                  {"secret_sha256", c.secret_sha256},
                                  {"exp", c.expires_ms}}
                                 .dump();
  return govern::HexOf(claims) + "." + govern::HexOf(Hmac(key, "vigil.attest.challenge/v1", claims));
}

core::Result<ChallengeClaims> CheckChallengeToken(std::string_view key, std::string_view token,
                                                  int64_t now_ms) {
  auto bad = [](const std::string& why) {
    return core::FailedPrecondition("challenge token: " + why);
  };
  if (token.size() > kMaxChallengeTokenBytes) return bad("too long");
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return bad("not CLAIMS.MAC");
  auto claims = govern::BytesOfHex(token.substr(0, dot));
  auto mac = govern::BytesOfHex(token.substr(dot + 1));
  if (!claims || !mac) return bad("not hex");
  if (!Equal(*mac, Hmac(key, "vigil.attest.challenge/v1", *claims))) {
    return bad("not issued by this hub");
  }
  const json j = json::parse(*claims, nullptr, false);
  ChallengeClaims c;
  if (!j.is_object()) return bad("malformed claims");
  for (auto [name, out] : {std::pair{"host", &c.host}, std::pair{"ak_name", &c.ak_name},
                           std::pair{"ak_public", &c.ak_public},
                           std::pair{"ek_sha256", &c.ek_sha256},
                           std::pair{"secret_sha256", &c.secret_sha256}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return bad(std::string("no \"") + name + "\"");
    *out = it->get<std::string>();
  }
  auto exp = j.find("exp");
  if (exp == j.end() || !exp->is_number_integer()) return bad("no \"exp\"");
  c.expires_ms = exp->get<int64_t>();
  if (c.expires_ms <= now_ms) return bad("expired (register again for a new challenge)");
  return c;
}

}  // namespace vigil::hub
