// The cost of authenticating one bearer token (api::Authenticator, docs/benchmarks.md): the full
// HS256 verification (token_cache_entries 0) against a remembered token (the default table).
// Best of 7 loops of 100,000 calls each. Built by name: --target api_auth_bench.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "api/auth.h"

int main() {
  using vigil::api::AuthConfig;
  const int64_t now = 1'800'000'000;
  const std::string key(40, 'k');
  vigil::api::TokenClaims c;
  c.subject = "bench";
  c.issuer = "vigil-bench";
  c.audience = "vigil-api";
  c.scopes = vigil::api::kScopeScore;
  c.expires = now + 7200;
  const std::string bearer = "Bearer " + vigil::api::IssueJwt(c, key, now);
  for (size_t entries : {size_t{0}, AuthConfig{}.token_cache_entries}) {
    AuthConfig config;
    config.jwt = {key, "vigil-bench", "vigil-api", 30};
    config.token_cache_entries = entries;
    vigil::api::Authenticator auth(config);
    double best = 1e18;
    for (int rep = 0; rep < 7; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 100000; ++i) {
        if (auth.Authenticate(bearer, "", vigil::api::kScopeScore, now).outcome !=
            vigil::api::AuthOutcome::kOk) {
          std::fprintf(stderr, "api_auth_bench: the token was refused\n");
          return 1;
        }
      }
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - t0;
      best = std::min(best, took.count() / 100000);
    }
    std::printf("token_cache_entries %zu: %.0f ns per Authenticate (best of 7 x 100,000)\n",
                entries, best);
  }
  return 0;
}
