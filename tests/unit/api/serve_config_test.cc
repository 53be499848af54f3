// `vigil serve`'s YAML config: the engine's settings (batch, queue, cache, fallback) and the
// errors that name the file, line, column and key.

#include "service/serve_config.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil::service {
namespace {

constexpr const char* kMinimal =
    "http: {listen: \"127.0.0.1:0\"}\nmodel: m.vmod\nrules: [r.yaml]\n";

TEST(ServeConfigTest, EngineSettingsHaveDefaultsAndAreRead) {
  auto plain = ParseServeConfig(kMinimal, "serve.yaml", "/etc/vigil");
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_EQ(plain->scoring.batch_max, 32u);
  EXPECT_EQ(plain->scoring.batch_delay_us, 0u);
  EXPECT_TRUE(plain->scoring.inline_when_fast);
  EXPECT_EQ(plain->scoring.queue, 1024u);
  EXPECT_EQ(plain->model, "/etc/vigil/m.vmod");
  auto set = ParseServeConfig(std::string(kMinimal) +
                                  "batch: {max_size: 8, max_delay_us: 200, inline: false}\n"
                                  "limits: {queue: 64}\ncache: {capacity: 0, ttl_seconds: 5}\n"
                                  "fallback: {score: 0.25, anomalous: false}\n",
                              "serve.yaml", "/etc/vigil");
  ASSERT_TRUE(set.has_value()) << set.error().message();
  EXPECT_EQ(set->scoring.batch_max, 8u);
  EXPECT_EQ(set->scoring.batch_delay_us, 200u);
  EXPECT_FALSE(set->scoring.inline_when_fast);
  EXPECT_EQ(set->scoring.queue, 64u);
  EXPECT_EQ(set->scoring.cache_capacity, 0u);
  EXPECT_EQ(set->scoring.cache_ttl_s, 5u);
  EXPECT_DOUBLE_EQ(set->scoring.fallback_score, 0.25);
  EXPECT_FALSE(set->scoring.fallback_anomalous);
}

TEST(ServeConfigTest, GrpcThreadsHaveDefaultsAndAreRead) {
  auto plain = ParseServeConfig(std::string(kMinimal) + "grpc: {listen: \"127.0.0.1:0\"}\n",
                                "serve.yaml", "/etc/vigil");
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_EQ(plain->grpc->poll_threads, 2);
  EXPECT_EQ(plain->grpc->max_threads, 16);
  auto set = ParseServeConfig(
      std::string(kMinimal) + "grpc: {listen: \"127.0.0.1:0\", poll_threads: 1, max_threads: 4}\n",
      "serve.yaml", "/etc/vigil");
  ASSERT_TRUE(set.has_value()) << set.error().message();
  EXPECT_EQ(set->grpc->poll_threads, 1);
  EXPECT_EQ(set->grpc->max_threads, 4);
  auto bad = ParseServeConfig(std::string(kMinimal) + "grpc: {poll_threads: 0}\n", "serve.yaml",
                              "/etc/vigil");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("grpc.poll_threads: expected an integer in 1..64"),
            std::string::npos)
      << bad.error().message();
}

TEST(ServeConfigTest, BadValuesAndUnknownKeysNameTheLineAndKey) {
  struct Case {
    const char* extra;
    const char* expected;
  } cases[] = {
      {"batch: {max_size: 0}\n",
       "serve.yaml:4:19: batch.max_size: expected an integer in 1..65536"},
      {"batch: {max_delay_us: -1}\n", "serve.yaml:4:23: batch.max_delay_us: expected an integer"},
      {"batch: {size: 3}\n", "serve.yaml:4:9: batch.size: unknown key"},
      // The engine has one worker: the old per-service worker count is not a setting any more.
      {"limits: {workers: 2}\n", "serve.yaml:4:10: limits.workers: unknown key"},
      {"fallback: {score: 2}\n", "serve.yaml:4:19: fallback.score: expected a number in [0"},
  };
  for (const Case& c : cases) {
    auto r = ParseServeConfig(std::string(kMinimal) + c.extra, "serve.yaml", "/etc/vigil");
    ASSERT_FALSE(r.has_value()) << c.extra;
    EXPECT_EQ(r.error().code(), core::StatusCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.expected), std::string::npos)
        << c.extra << " gave: " << r.error().message();
  }
}

}  // namespace
}  // namespace vigil::service
