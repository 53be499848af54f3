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

TEST(ScopesTest, ParsesAndNames) {
  EXPECT_EQ(*ParseScopes("score  enforce"), kScopeScore | kScopeEnforce);
  EXPECT_EQ(ScopeNames(kScopeDecide | kScopeAgent), "decide agent");
  EXPECT_FALSE(ParseScopes("score admin").has_value());
}

}  // namespace
}  // namespace vigil::api
