#include "api/auth.h"

#include <gtest/gtest.h>

namespace vigil::api {
namespace {

constexpr int64_t kNow = 1'800'000'000;
const std::string kKey(40, 'k');

JwtConfig Config() { return {kKey, "vigil-test", "vigil-api", 30}; }

TokenClaims Claims(uint32_t scopes = kScopeScore) {
  TokenClaims c;
  c.subject = "alice";
  c.issuer = "vigil-test";
  c.audience = "vigil-api";
  c.scopes = scopes;
  c.expires = kNow + 600;
  return c;
}

TEST(JwtTest, IssuedTokenVerifies) {
  auto c = VerifyJwt(IssueJwt(Claims(kScopeScore | kScopeDecide), kKey, kNow), Config(), kNow);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->subject, "alice");
  EXPECT_EQ(c->scopes, kScopeScore | kScopeDecide);
}

TEST(JwtTest, CarriesAnApplicationRoleClaim) {
  TokenClaims c = Claims(0);
  c.role = "analyst";
  auto v = VerifyJwt(IssueJwt(c, kKey, kNow), Config(), kNow);
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_EQ(v->role, "analyst");
  auto none = VerifyJwt(IssueJwt(Claims(), kKey, kNow), Config(), kNow);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->role, "");
  c.role = std::string(65, 'r');
  EXPECT_NE(VerifyJwt(IssueJwt(c, kKey, kNow), Config(), kNow).error().message().find("role"),
            std::string::npos);
}

TEST(JwtTest, RefusesExpiredNotYetValidWrongIssuerAudienceAndKey) {
  TokenClaims expired = Claims();
  expired.expires = kNow - 31;
  EXPECT_NE(VerifyJwt(IssueJwt(expired, kKey, kNow), Config(), kNow).error().message().find(
                "expired"),
            std::string::npos);
  TokenClaims early = Claims();
  early.not_before = kNow + 120;
  EXPECT_FALSE(VerifyJwt(IssueJwt(early, kKey, kNow), Config(), kNow).has_value());
  TokenClaims iss = Claims();
  iss.issuer = "someone-else";
  EXPECT_NE(VerifyJwt(IssueJwt(iss, kKey, kNow), Config(), kNow).error().message().find("issuer"),
            std::string::npos);
  TokenClaims aud = Claims();
  aud.audience = "other-api";
  EXPECT_NE(VerifyJwt(IssueJwt(aud, kKey, kNow), Config(), kNow).error().message().find(
                "audience"),
            std::string::npos);
  EXPECT_NE(VerifyJwt(IssueJwt(Claims(), std::string(40, 'x'), kNow), Config(), kNow)
                .error()
                .message()
                .find("signature"),
            std::string::npos);
}

TEST(JwtTest, RefusesAlgNoneAndTamperedPayload) {
  // {"alg":"none"} . {"sub":"a","exp":...} . (empty)
  const std::string none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjoxOTAwMDAwMDAwfQ.";
  EXPECT_FALSE(VerifyJwt(none, Config(), kNow).has_value());
  std::string token = IssueJwt(Claims(), kKey, kNow);
  const size_t dot = token.find('.');
  token[dot + 3] = token[dot + 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyJwt(token, Config(), kNow).has_value());
  EXPECT_FALSE(VerifyJwt("a.b", Config(), kNow).has_value());
  EXPECT_FALSE(VerifyJwt("", Config(), kNow).has_value());
}

TEST(AuthenticatorTest, ScopesCertificatesAndAnonymous) {
  AuthConfig config;
  config.jwt = Config();
  config.client_scopes["ci-runner"] = kScopeScore;
  Authenticator auth(config);
  const std::string bearer = "Bearer " + IssueJwt(Claims(kScopeScore), kKey, kNow);
  EXPECT_EQ(auth.Authenticate(bearer, "", kScopeScore, kNow).outcome, AuthOutcome::kOk);
  EXPECT_EQ(auth.Authenticate(bearer, "", kScopeEnforce, kNow).outcome, AuthOutcome::kForbidden);
  EXPECT_EQ(auth.Authenticate("", "ci-runner", kScopeScore, kNow).principal.name, "cert:ci-runner");
  EXPECT_EQ(auth.Authenticate("", "stranger", kScopeScore, kNow).outcome,
            AuthOutcome::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate("", "", kScopeScore, kNow).outcome, AuthOutcome::kUnauthenticated);
  // A bad token is refused even next to a good certificate.
  EXPECT_EQ(auth.Authenticate("Bearer x.y.z", "ci-runner", kScopeScore, kNow).outcome,
            AuthOutcome::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate("Basic abc", "", kScopeScore, kNow).outcome,
            AuthOutcome::kUnauthenticated);
}

TEST(AuthenticatorTest, RemembersAVerifiedTokenUntilItExpires) {
  AuthConfig config;
  config.jwt = Config();
  Authenticator auth(config);
  TokenClaims claims = Claims(kScopeScore);
  claims.expires = kNow + 60;
  const std::string bearer = "Bearer " + IssueJwt(claims, kKey, kNow);
  AuthResult first = auth.Authenticate(bearer, "", kScopeScore, kNow);
  ASSERT_EQ(first.outcome, AuthOutcome::kOk) << first.reason;
  EXPECT_EQ(auth.token_verifications(), 1u);
  AuthResult again = auth.Authenticate(bearer, "", kScopeScore, kNow + 1);
  EXPECT_EQ(again.outcome, AuthOutcome::kOk);
  EXPECT_EQ(again.principal.name, "jwt:alice");
  EXPECT_EQ(again.principal.scopes, kScopeScore);
  EXPECT_EQ(auth.token_cache_hits(), 1u);
  EXPECT_EQ(auth.token_verifications(), 1u);
  // The scope is checked on every request, cached or not.
  EXPECT_EQ(auth.Authenticate(bearer, "", kScopeDecide, kNow + 2).outcome,
            AuthOutcome::kForbidden);
  // Within the leeway (30 s) after exp, still good; past it, refused although remembered.
  EXPECT_EQ(auth.Authenticate(bearer, "", kScopeScore, kNow + 90).outcome, AuthOutcome::kOk);
  AuthResult late = auth.Authenticate(bearer, "", kScopeScore, kNow + 91);
  EXPECT_EQ(late.outcome, AuthOutcome::kUnauthenticated);
  EXPECT_NE(late.reason.find("expired"), std::string::npos) << late.reason;
  // Evicted: the next try verifies in full, and is refused again.
  const uint64_t verified = auth.token_verifications();
  EXPECT_EQ(auth.Authenticate(bearer, "", kScopeScore, kNow + 92).outcome,
            AuthOutcome::kUnauthenticated);
  EXPECT_EQ(auth.token_verifications(), verified + 1);
}

TEST(AuthenticatorTest, ARememberedTokenDoesNotVouchForAForgedOne) {
  AuthConfig config;
  config.jwt = Config();
  Authenticator auth(config);
  const std::string token = IssueJwt(Claims(kScopeScore), kKey, kNow);
  ASSERT_EQ(auth.Authenticate("Bearer " + token, "", kScopeScore, kNow).outcome,
            AuthOutcome::kOk);
  // The same claims with another signature (signed with another key, or one byte changed).
  const std::string other_key = IssueJwt(Claims(kScopeScore), std::string(40, 'x'), kNow);
  std::string flipped = token;
  const size_t sig = token.rfind('.') + 5;
  flipped[sig] = flipped[sig] == 'A' ? 'B' : 'A';
  // Claims altered (more scopes) under the original signature.
  const std::string wider = IssueJwt(Claims(kScopeScore | kScopeEnforce), kKey, kNow);
  std::string altered = wider.substr(0, wider.rfind('.')) + token.substr(token.rfind('.'));
  for (const std::string& forged : {other_key, flipped, altered}) {
    AuthResult r = auth.Authenticate("Bearer " + forged, "", kScopeScore, kNow);
    EXPECT_EQ(r.outcome, AuthOutcome::kUnauthenticated) << forged;
    EXPECT_NE(r.reason.find("signature"), std::string::npos) << r.reason;
  }
  // Still refused when asked again (refusals are not remembered as good).
  EXPECT_EQ(auth.Authenticate("Bearer " + altered, "", kScopeEnforce, kNow).outcome,
            AuthOutcome::kUnauthenticated);
  // An Authenticator with another key does not share the first one's table.
  AuthConfig rotated = config;
  rotated.jwt.hs256_key = std::string(40, 'r');
  Authenticator fresh(rotated);
  EXPECT_EQ(fresh.Authenticate("Bearer " + token, "", kScopeScore, kNow).outcome,
            AuthOutcome::kUnauthenticated);
}

TEST(AuthenticatorTest, TokensThatShareASlotAreEachVerified) {
  AuthConfig config;
  config.jwt = Config();
  config.token_cache_entries = 1;  // every token takes the one slot
  Authenticator auth(config);
  TokenClaims bob = Claims(kScopeDecide);
  bob.subject = "bob";
  const std::string a = "Bearer " + IssueJwt(Claims(kScopeScore), kKey, kNow);
  const std::string b = "Bearer " + IssueJwt(bob, kKey, kNow);
  for (int i = 0; i < 3; ++i) {
    AuthResult ra = auth.Authenticate(a, "", kScopeScore, kNow);
    AuthResult rb = auth.Authenticate(b, "", kScopeDecide, kNow);
    ASSERT_EQ(ra.outcome, AuthOutcome::kOk);
    ASSERT_EQ(rb.outcome, AuthOutcome::kOk);
    EXPECT_EQ(ra.principal.name, "jwt:alice");
    EXPECT_EQ(rb.principal.name, "jwt:bob");
  }
  EXPECT_EQ(auth.token_cache_hits(), 0u);
  EXPECT_EQ(auth.token_verifications(), 6u);
  // Without a table, every request verifies.
  config.token_cache_entries = 0;
  Authenticator none(config);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(none.Authenticate(a, "", kScopeScore, kNow).outcome,
                                        AuthOutcome::kOk);
  EXPECT_EQ(none.token_cache_hits(), 0u);
  EXPECT_EQ(none.token_verifications(), 3u);
}

TEST(ScopesTest, ParsesAndNames) {
  EXPECT_EQ(*ParseScopes("score  enforce"), kScopeScore | kScopeEnforce);
  EXPECT_EQ(ScopeNames(kScopeDecide | kScopeAgent), "decide agent");
  EXPECT_FALSE(ParseScopes("score admin").has_value());
}

}  // namespace
}  // namespace vigil::api
