#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace vigil::core {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Parses `yaml` as "vigil.yaml" and returns the error message (empty when it parsed).
std::string ParseError(std::string_view yaml) {
  Result<VigilConfig> r = ParseConfig(yaml, "vigil.yaml");
  if (r.has_value()) return "";
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  return r.error().message();
}

TEST(ConfigTest, DefaultsAreSane) {
  const VigilConfig c = DefaultConfig();
  EXPECT_FALSE(c.host.empty());
  EXPECT_EQ(c.state_dir, "/var/lib/vigil");
  EXPECT_EQ(c.log.level, LogLevel::kInfo);
  EXPECT_EQ(c.log.format, LogFormat::kText);
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen.host, "127.0.0.1");
  EXPECT_EQ(c.metrics.listen.port, 9464);
  EXPECT_EQ(c.pipeline.queue.capacity, 4096u);
  EXPECT_EQ(c.pipeline.queue.backpressure, Backpressure::kBlock);
  EXPECT_EQ(c.pipeline.queue.sample_every, 10u);
  EXPECT_FALSE(c.pipeline.spool.enabled);
  EXPECT_EQ(c.pipeline.spool.dir, "/var/lib/vigil/spool");
  EXPECT_EQ(c.pipeline.spool.fsync, FsyncPolicy::kBatch);
  EXPECT_EQ(c.pipeline.spool.segment_bytes, 67108864u);
  EXPECT_EQ(c.pipeline.workers, 2u);
  ASSERT_EQ(c.sinks.size(), 1u);
  EXPECT_EQ(c.sinks[0].type, SinkType::kStdout);
  EXPECT_EQ(c.model.path, "/var/lib/vigil/models/adfa.vgm");
  EXPECT_DOUBLE_EQ(c.model.target_fpr, 0.05);
  EXPECT_EQ(c.source, "<defaults>");
}

TEST(ConfigTest, EmptyDocumentYieldsDefaults) {
  for (std::string_view text : {"", "\n", "# only a comment\n", "---\n", "~\n"}) {
    Result<VigilConfig> r = ParseConfig(text, "empty.yaml");
    ASSERT_TRUE(r.has_value()) << text << ": " << r.error().ToString();
    EXPECT_EQ(r->pipeline.queue.capacity, 4096u);
    EXPECT_EQ(r->source, "empty.yaml");
    EXPECT_EQ(r->sinks.size(), 1u);
  }
}

TEST(ConfigTest, ParsesFullConfig) {
  constexpr std::string_view kYaml = R"(
host: gw-01
state_dir: /srv/vigil
log: { level: debug, format: json }
metrics: { enabled: false, listen: "0.0.0.0:0" }
pipeline:
  queue: { capacity: 1024, backpressure: drop-oldest, sample_every: 3 }
  spool: { enabled: true, fsync: always, segment_bytes: 1048576 }
  workers: 4
sinks:
  - type: stdout
  - { type: file, path: /var/log/vigil/events.jsonl, rotate_bytes: 1000, keep: 2 }
  - type: null
model: { target_fpr: 0.01 }
)";
  Result<VigilConfig> r = ParseConfig(kYaml, "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  const VigilConfig& c = *r;
  EXPECT_EQ(c.host, "gw-01");
  EXPECT_EQ(c.log.level, LogLevel::kDebug);
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen.host, "0.0.0.0");
  EXPECT_EQ(c.metrics.listen.port, 0);
  EXPECT_EQ(c.pipeline.queue.capacity, 1024u);
  EXPECT_EQ(c.pipeline.queue.backpressure, Backpressure::kDropOldest);
  EXPECT_EQ(c.pipeline.queue.sample_every, 3u);
  EXPECT_TRUE(c.pipeline.spool.enabled);
  EXPECT_EQ(c.pipeline.spool.fsync, FsyncPolicy::kAlways);
  EXPECT_EQ(c.pipeline.spool.segment_bytes, 1048576u);
  EXPECT_EQ(c.pipeline.workers, 4u);
  // Derived from state_dir when not given.
  EXPECT_EQ(c.pipeline.spool.dir, "/srv/vigil/spool");
  EXPECT_EQ(c.model.path, "/srv/vigil/models/adfa.vgm");
  EXPECT_DOUBLE_EQ(c.model.target_fpr, 0.01);
  ASSERT_EQ(c.sinks.size(), 3u);
  EXPECT_EQ(c.sinks[0].type, SinkType::kStdout);
  EXPECT_EQ(c.sinks[1].type, SinkType::kFile);
  EXPECT_EQ(c.sinks[1].path, "/var/log/vigil/events.jsonl");
  EXPECT_EQ(c.sinks[1].rotate_bytes, 1000u);
  EXPECT_EQ(c.sinks[1].keep, 2u);
  EXPECT_EQ(c.sinks[2].type, SinkType::kNull);
}

TEST(ConfigTest, EmptySinkListMeansNoSinks) {
  Result<VigilConfig> r = ParseConfig("sinks: []\n", "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->sinks.empty());
}

TEST(ConfigTest, NullSinkSpellings) {
  Result<VigilConfig> r = ParseConfig("sinks: [{type: 'null'}, {type: ~}]\n", "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->sinks.size(), 2u);
  EXPECT_EQ(r->sinks[0].type, SinkType::kNull);
  EXPECT_EQ(r->sinks[1].type, SinkType::kNull);
}

TEST(ConfigTest, BadIntegerNamesFileLineColumnAndKey) {
  constexpr std::string_view kYaml =
      "host: a\n"
      "pipeline:\n"
      "  queue:\n"
      "    capacity: abc\n";
  EXPECT_EQ(ParseError(kYaml),
            "vigil.yaml:4:15: pipeline.queue.capacity: expected a positive integer, got \"abc\"");
}

TEST(ConfigTest, ZeroNegativeOverflowAndNonScalarIntegersAreRejected) {
  EXPECT_THAT(ParseError("pipeline: {queue: {capacity: 0}}"),
              HasSubstr("pipeline.queue.capacity: expected a positive integer, got 0"));
  EXPECT_THAT(ParseError("pipeline: {queue: {capacity: -5}}"),
              HasSubstr("pipeline.queue.capacity: expected a positive integer, got \"-5\""));
  EXPECT_THAT(ParseError("pipeline: {queue: {capacity: 99999999999}}"),
              HasSubstr("pipeline.queue.capacity: expected a positive integer, got 99999999999"));
  EXPECT_THAT(ParseError("pipeline: {queue: {capacity: 99999999999999999999999}}"),
              HasSubstr("pipeline.queue.capacity: expected a positive integer"));
  EXPECT_THAT(ParseError("pipeline: {queue: {capacity: [1]}}"), HasSubstr("got a sequence"));
  EXPECT_THAT(ParseError("pipeline: {spool: {segment_bytes: 100}}"),
              HasSubstr("pipeline.spool.segment_bytes: expected an integer >= 4096, got 100"));
}

TEST(ConfigTest, WorkersRange) {
  EXPECT_EQ(ParseError("pipeline:\n  workers: 65\n"),
            "vigil.yaml:2:12: pipeline.workers: expected an integer in 1..64, got 65");
  EXPECT_EQ(ParseError("pipeline:\n  workers: 64\n"), "");
}

TEST(ConfigTest, UnknownKeyIsAnErrorWithItsPath) {
  constexpr std::string_view kYaml =
      "pipeline:\n"
      "  queue:\n"
      "    capacty: 10\n";
  EXPECT_EQ(ParseError(kYaml),
            "vigil.yaml:3:5: pipeline.queue.capacty: unknown key; did you mean 'capacity'?");
  EXPECT_EQ(ParseError("colour: blue\n"),
            "vigil.yaml:1:1: colour: unknown key (expected one of: host, state_dir, log, metrics, "
            "pipeline, sinks, model, agent, policy, mode, trusted_keys, attestation)");
}

TEST(ConfigTest, DuplicateKeyIsAnError) {
  EXPECT_EQ(ParseError("host: a\nhost: b\n"), "vigil.yaml:2:1: host: key given more than once");
}

TEST(ConfigTest, BadEnumListsChoices) {
  EXPECT_EQ(ParseError("log:\n  level: verbose\n"),
            "vigil.yaml:2:10: log.level: expected one of trace, debug, info, warn, error, off, "
            "got \"verbose\"");
  EXPECT_THAT(ParseError("pipeline: {queue: {backpressure: drop}}"),
              HasSubstr("pipeline.queue.backpressure: expected one of block, drop-newest, "
                        "drop-oldest, sample, got \"drop\""));
  EXPECT_THAT(ParseError("policy: {stage: everywhere}"),
              HasSubstr("policy.stage: expected one of monitor, enforce-non-critical, "
                        "enforce-all, got \"everywhere\""));
  EXPECT_THAT(ParseError("policy: {asset_class: vital}"),
              HasSubstr("policy.asset_class: expected one of critical, standard, non-critical"));
  EXPECT_THAT(ParseError("pipeline: {spool: {fsync: sometimes}}"),
              HasSubstr("pipeline.spool.fsync: expected one of always, batch, never"));
}

TEST(ConfigTest, EnforcementQueueIsBoundedAndNamedInErrors) {
  EXPECT_EQ(DefaultConfig().policy.enforcement_queue, 256u);
  Result<VigilConfig> r = ParseConfig("policy:\n  enforcement_queue: 1024\n", "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->policy.enforcement_queue, 1024u);
  r = ParseConfig("policy: {enforcement_queue: 65536}", "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->policy.enforcement_queue, kMaxEnforcementQueue);
  EXPECT_EQ(ParseError("policy:\n  mode: enforce\n  enforcement_queue: 0\n"),
            "vigil.yaml:3:22: policy.enforcement_queue: expected an integer in 1..65536, got 0");
  EXPECT_THAT(ParseError("policy:\n  enforcement_queue: 65537\n"),
              HasSubstr("vigil.yaml:2:22: policy.enforcement_queue: expected an integer in "
                        "1..65536"));
  EXPECT_THAT(ParseError("policy:\n  enforcement_queue: -5\n"),
              HasSubstr("vigil.yaml:2:22: policy.enforcement_queue: expected an integer in "
                        "1..65536, got \"-5\""));
  EXPECT_THAT(ParseError("policy:\n  enforcement_queue: [1]\n"),
              HasSubstr("vigil.yaml:2:22: policy.enforcement_queue: expected an integer in "
                        "1..65536, got a sequence"));
}

TEST(ConfigTest, BadPortIsRejected) {
  EXPECT_EQ(ParseError("metrics:\n  listen: 127.0.0.1:70000\n"),
            "vigil.yaml:2:11: metrics.listen: port must be an integer in 0..65535, got \"70000\" "
            "in \"127.0.0.1:70000\"");
  EXPECT_THAT(ParseError("metrics: {listen: localhost}"),
              HasSubstr("metrics.listen: expected host:port, got \"localhost\""));
  EXPECT_THAT(ParseError("metrics: {listen: ':9464'}"), HasSubstr("metrics.listen: empty host"));
  EXPECT_THAT(ParseError("metrics: {listen: 'h:x1'}"), HasSubstr("port must be an integer"));
}

TEST(ConfigTest, BadBool) {
  EXPECT_EQ(ParseError("metrics: {enabled: maybe}"),
            "vigil.yaml:1:20: metrics.enabled: expected true or false, got \"maybe\"");
}

TEST(ConfigTest, BadTypeOfSection) {
  EXPECT_EQ(ParseError("log: loud\n"), "vigil.yaml:1:6: log: expected a mapping, got \"loud\"");
  EXPECT_EQ(ParseError("- a\n- b\n"),
            "vigil.yaml:1:1: expected a mapping at the top level, got a sequence");
  EXPECT_THAT(ParseError("sinks: {type: stdout}\n"),
              HasSubstr("sinks: expected a sequence of sinks, got a mapping"));
  EXPECT_THAT(ParseError("host: [a, b]\n"),
              HasSubstr("host: expected a non-empty string, got a sequence"));
}

TEST(ConfigTest, SinkErrorsNameTheIndex) {
  constexpr std::string_view kYaml =
      "sinks:\n"
      "  - type: stdout\n"
      "  - type: file\n"
      "    keep: 3\n";
  EXPECT_EQ(ParseError(kYaml), "vigil.yaml:3:5: sinks[1]: a file sink needs a 'path'");
  EXPECT_THAT(ParseError("sinks:\n  - type: kafka\n"),
              HasSubstr("vigil.yaml:2:11: sinks[0].type: expected one of stdout, file, null"));
  EXPECT_THAT(ParseError("sinks:\n  - path: /x\n"), HasSubstr("sinks[0]: missing key 'type'"));
  // Keys of the file sink are not valid for other types.
  EXPECT_THAT(ParseError("sinks:\n  - {type: stdout, path: /x}\n"),
              HasSubstr("sinks[0].path: unknown key (expected one of: type)"));
  EXPECT_THAT(ParseError("sinks:\n  - {type: file, path: /x, keep: -1}\n"),
              HasSubstr("sinks[0].keep: expected a non-negative integer, got \"-1\""));
}

TEST(ConfigTest, ParsesAHubSink) {
  constexpr std::string_view kYaml =
      "sinks:\n"
      "  - type: stdout\n"
      "  - type: hub\n"
      "    url: https://hub.example:8470\n"
      "    token_file: /etc/vigil/hub.token\n"
      "    ca: /etc/vigil/hub-ca.pem\n"
      "    spool: /var/spool/vigil-hub\n"
      "    spool_sync: batch\n"
      "    drain: 2m\n"
      "    all_verdicts: true\n"
      "    model_file: /var/lib/vigil/models/gate.vgm\n";
  Result<VigilConfig> r = ParseConfig(kYaml, "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->sinks.size(), 2u);
  EXPECT_EQ(r->sinks[0].type, SinkType::kStdout);
  const SinkConfig& s = r->sinks[1];
  EXPECT_EQ(s.type, SinkType::kHub);
  EXPECT_EQ(s.hub.url, "https://hub.example:8470");
  EXPECT_EQ(s.hub.token_file, "/etc/vigil/hub.token");
  EXPECT_EQ(s.hub.ca, "/etc/vigil/hub-ca.pem");
  EXPECT_EQ(s.hub.spool, "/var/spool/vigil-hub");
  EXPECT_EQ(s.hub.spool_sync, FsyncPolicy::kBatch);
  EXPECT_EQ(s.hub.drain_seconds, 120u);
  EXPECT_TRUE(s.hub.all_verdicts);
  EXPECT_EQ(s.hub.model_file, "/var/lib/vigil/models/gate.vgm");
}

TEST(ConfigTest, HubSinkDefaults) {
  Result<VigilConfig> r =
      ParseConfig("sinks: [{type: hub, url: 'http://127.0.0.1:8470', token_file: t}]\n", "v");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->sinks.size(), 1u);
  const HubSinkConfig& h = r->sinks[0].hub;
  EXPECT_EQ(h.url, "http://127.0.0.1:8470");
  EXPECT_EQ(h.token_file, "t");
  EXPECT_EQ(h.ca, "");
  EXPECT_EQ(h.spool, "");  // <state_dir>/hub-spool, filled in where the state dir is final
  EXPECT_EQ(h.spool_sync, FsyncPolicy::kAlways);
  EXPECT_EQ(h.drain_seconds, 30u);
  EXPECT_FALSE(h.all_verdicts);
}

TEST(ConfigTest, ParsesANatsSinkAndChecksItsNames) {
  constexpr std::string_view kYaml =
      "sinks:\n"
      "  - type: nats\n"
      "    url: nats://127.0.0.1:4222\n"
      "    stream: FLEET\n"
      "    subject_prefix: acme.vigil\n"
      "    creds: /etc/vigil/agent.creds\n"
      "    drain: 1m\n"
      "    audit_key_hub: grpcs://hub.example:8471\n";
  Result<VigilConfig> r = ParseConfig(kYaml, "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->sinks.size(), 1u);
  const NatsSinkConfig& n = r->sinks[0].nats;
  EXPECT_EQ(r->sinks[0].type, SinkType::kNats);
  EXPECT_EQ(n.url, "nats://127.0.0.1:4222");
  EXPECT_EQ(n.stream, "FLEET");
  EXPECT_EQ(n.subject_prefix, "acme.vigil");
  EXPECT_EQ(n.creds, "/etc/vigil/agent.creds");
  EXPECT_EQ(n.token_file, "");
  EXPECT_EQ(n.spool_sync, FsyncPolicy::kAlways);
  EXPECT_EQ(n.drain_seconds, 60u);
  EXPECT_EQ(n.audit_key_hub, "grpcs://hub.example:8471");
  EXPECT_THAT(
      ParseError("sinks:\n  - {type: nats, url: 'nats://h:1', audit_key_hub: 'nats://h:2'}\n"),
      HasSubstr("sinks[0].audit_key_hub: expected http://HOST:PORT"));

  EXPECT_EQ(ParseError("sinks:\n  - type: nats\n    url: http://127.0.0.1:4222\n"),
            "vigil.yaml:3:10: sinks[0].url: expected nats://HOST:PORT or tls://HOST:PORT (one "
            "server, no path), got \"http://127.0.0.1:4222\"");
  EXPECT_EQ(ParseError("sinks:\n  - {type: nats, url: 'nats://h:1', stream: A.B}\n"),
            "vigil.yaml:2:45: sinks[0].stream: expected 1..64 characters of [A-Za-z0-9_-], got "
            "\"A.B\"");
  EXPECT_THAT(ParseError("sinks:\n  - {type: nats, url: 'nats://h:1', subject_prefix: 'a.>'}\n"),
              HasSubstr("sinks[0].subject_prefix: expected dot-separated tokens"));
  EXPECT_EQ(ParseError("sinks:\n  - type: nats\n    stream: V\n"),
            "vigil.yaml:2:5: sinks[0]: a nats sink needs a 'url'");
  EXPECT_THAT(ParseError("sinks:\n  - {type: nats, url: 'nats://h:1', token_file: t, creds: c}\n"),
              HasSubstr("not both"));
  EXPECT_THAT(ParseError("sinks:\n  - {type: nats, url: 'nats://h:1'}\n"
                         "  - {type: nats, url: 'nats://h:2'}\n"),
              HasSubstr("sinks[1]: only one nats sink is allowed"));
  EXPECT_THAT(ParseError("sinks:\n  - {type: nats, url: 'nats://h:1', ca: x}\n"),
              HasSubstr("sinks[0].ca"));
}

TEST(ConfigTest, AGrpcsHubSinkTakesTheEnrolledCertificateInsteadOfAToken) {
  const std::string grpc =
      "sinks:\n  - type: hub\n    url: grpcs://hub.example:8471\n    cert: /c/agent.pem\n"
      "    key: /c/agent.key\n    ca: /c/ca.pem\n";
  auto c = ParseConfig(grpc, "vigil.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  ASSERT_EQ(c->sinks.size(), 1u);
  EXPECT_EQ(c->sinks[0].hub.url, "grpcs://hub.example:8471");
  EXPECT_EQ(c->sinks[0].hub.cert, "/c/agent.pem");
  EXPECT_EQ(c->sinks[0].hub.key, "/c/agent.key");
  EXPECT_EQ(c->sinks[0].hub.ca, "/c/ca.pem");
  EXPECT_EQ(ParseError(grpc + "    token_file: t\n"),
            "vigil.yaml:7:17: sinks[0].token_file: a grpcs:// hub sink authenticates with its "
            "certificate, not a token");
  EXPECT_EQ(ParseError("sinks:\n  - type: hub\n    url: grpcs://h:1\n    cert: c\n    ca: a\n"),
            "vigil.yaml:2:5: sinks[0]: a grpcs:// hub sink needs 'cert', 'key' and 'ca' "
            "(agent.pem, agent.key and ca.pem from vigil agent enrol)");
  EXPECT_EQ(ParseError("sinks:\n  - type: hub\n    url: http://h:1\n    token_file: t\n"
                       "    cert: c\n"),
            "vigil.yaml:5:11: sinks[0].cert: a client certificate (and its renewal) is for a "
            "grpcs:// hub; the url is \"http://h:1\"");
  EXPECT_EQ(c->sinks[0].hub.renew_at, 0.67);
  EXPECT_TRUE(c->sinks[0].hub.renew);
  auto renewing = ParseConfig(grpc + "    renew_at: 0.8\n    renew: false\n", "vigil.yaml");
  ASSERT_TRUE(renewing.has_value()) << renewing.error().message();
  EXPECT_EQ(renewing->sinks[0].hub.renew_at, 0.8);
  EXPECT_FALSE(renewing->sinks[0].hub.renew);
  EXPECT_THAT(ParseError(grpc + "    renew_at: 1.5\n"),
              HasSubstr("sinks[0].renew_at: expected a number between 0 and 1 (exclusive)"));
  EXPECT_THAT(ParseError("sinks:\n  - {type: hub, url: 'grpcs://h:1/x', cert: c, key: k, ca: a}\n"),
              HasSubstr("sinks[0].url: expected http://HOST:PORT"));
}

TEST(ConfigTest, HubSinkErrorsNameLineAndKey) {
  const std::string ok = "  - type: hub\n    url: http://127.0.0.1:8470\n    token_file: t\n";
  EXPECT_EQ(ParseError("sinks:\n" + ok + "    url: http://x:1\n"),
            "vigil.yaml:5:5: sinks[0].url: key given more than once");
  EXPECT_EQ(ParseError("sinks:\n  - type: hub\n    url: ftp://127.0.0.1:1\n    token_file: t\n"),
            "vigil.yaml:3:10: sinks[0].url: expected http://HOST:PORT, https://HOST:PORT or "
            "grpcs://HOST:PORT (no path), got \"ftp://127.0.0.1:1\"");
  EXPECT_THAT(ParseError("sinks:\n  - {type: hub, url: 'http://h:1/v1', token_file: t}\n"),
              HasSubstr("sinks[0].url: expected http://HOST:PORT"));
  EXPECT_EQ(ParseError("sinks:\n  - type: hub\n    token_file: t\n"),
            "vigil.yaml:2:5: sinks[0]: a hub sink needs a 'url'");
  EXPECT_EQ(ParseError("sinks:\n  - type: hub\n    url: http://127.0.0.1:8470\n"),
            "vigil.yaml:2:5: sinks[0]: a hub sink needs a 'token_file' (an agent token for this "
            "host)");
  // One key added to a valid hub sink (line 5), and the whole message it gives.
  const std::pair<std::string, std::string> cases[] = {
      {"ca: /ca.pem",
       "vigil.yaml:5:9: sinks[0].ca: a CA file is for an https URL; the url is "
       "\"http://127.0.0.1:8470\""},
      {"drain: soon",
       "vigil.yaml:5:12: sinks[0].drain: expected a duration like 90s, 5m or 2h, got \"soon\""},
      {"spool_sync: sometimes",
       "vigil.yaml:5:17: sinks[0].spool_sync: expected one of always, batch, never, got "
       "\"sometimes\""},
      {"all_verdicts: maybe",
       "vigil.yaml:5:19: sinks[0].all_verdicts: expected true or false, got \"maybe\""},
      {"spool: [a]", "vigil.yaml:5:12: sinks[0].spool: expected a non-empty string, got a sequence"},
  };
  for (const auto& [line, message] : cases) {
    EXPECT_EQ(ParseError("sinks:\n" + ok + "    " + line + "\n"), message) << line;
  }
  EXPECT_THAT(ParseError("sinks:\n" + ok + "    path: /x\n"),
              HasSubstr("vigil.yaml:5:5: sinks[0].path: unknown key (expected one of: type, url, "
                        "token_file, ca, cert, key, spool, spool_sync, drain, all_verdicts, "
                        "group, heartbeat, policy_file, model_file, enforce_requires_hub, "
                        "renew_at, renew)"));
  EXPECT_EQ(ParseError("sinks:\n" + ok + ok),
            "vigil.yaml:5:5: sinks[1]: only one hub sink is allowed");
  // Keys of the hub sink are not valid for other types.
  EXPECT_THAT(ParseError("sinks:\n  - {type: file, path: /x, url: 'http://h:1'}\n"),
              HasSubstr("sinks[0].url: unknown key"));
}

TEST(ConfigTest, IsHttpBaseUrl) {
  bool https = true;
  EXPECT_TRUE(IsHttpBaseUrl("http://127.0.0.1:8470", &https));
  EXPECT_FALSE(https);
  EXPECT_TRUE(IsHttpBaseUrl("https://[::1]:8470", &https));
  EXPECT_TRUE(https);
  EXPECT_TRUE(IsHttpBaseUrl("https://hub.example", &https));
  for (std::string_view bad : {"", "http://", "ftp://h:1", "http://h:1/", "http://u@h:1",
                               "HTTP://h:1", "http://h :1", "https://h:1?x"}) {
    EXPECT_FALSE(IsHttpBaseUrl(bad, &https)) << bad;
  }
}

TEST(ConfigTest, TargetFprMustBeAFraction) {
  EXPECT_THAT(ParseError("model: {target_fpr: 1.5}"),
              HasSubstr("model.target_fpr: expected a number between 0 and 1 (exclusive), got "
                        "\"1.5\""));
  EXPECT_THAT(ParseError("model: {target_fpr: nan}"), HasSubstr("model.target_fpr"));
  EXPECT_THAT(ParseError("model: {target_fpr: 0}"), HasSubstr("model.target_fpr"));
}

TEST(ConfigTest, YamlSyntaxErrorNamesFileAndLine) {
  constexpr std::string_view kYaml =
      "host: a\n"
      "pipeline: [1, 2\n"
      "workers: 3\n";
  const std::string error = ParseError(kYaml);
  EXPECT_THAT(error, StartsWith("vigil.yaml:3:"));
  EXPECT_THAT(error, HasSubstr("invalid YAML"));
  EXPECT_THAT(ParseError("a: b: c\n"), HasSubstr("invalid YAML"));
}

TEST(ConfigTest, MultipleDocumentsAreRejected) {
  EXPECT_THAT(ParseError("host: a\n---\nhost: b\n"),
              HasSubstr("vigil.yaml:2:1: expected one YAML document, found more"));
}

// Found by fuzzing: yaml-cpp's LoadAll() never returns on a leading ',' and Load() reads it as
// an empty document.
TEST(ConfigTest, StrayFlowTokenIsAnErrorNotAHang) {
  EXPECT_EQ(ParseError(",ipeline:worke\n  queue:\n  ( capacty: 10\n"),
            "vigil.yaml:1:1: invalid YAML: unexpected token \",\"");
  EXPECT_THAT(ParseError(","), HasSubstr("invalid YAML"));
  EXPECT_THAT(ParseError("]"), HasSubstr("invalid YAML"));
}

TEST(ConfigTest, LongAndBinaryValuesAreQuotedSafely) {
  const std::string long_value(500, 'x');
  const std::string error = ParseError("log: {level: " + long_value + "}");
  EXPECT_THAT(error, HasSubstr("...\""));
  EXPECT_LT(error.size(), 250u);
  EXPECT_THAT(ParseError("log: {level: \"a\\x01b\"}"), HasSubstr("got \"a\\x01b\""));
}

TEST(ConfigTest, AliasCyclesDoNotHang) {
  EXPECT_THAT(ParseError("log: &a {level: *a}\n"), HasSubstr("log.level: expected one of"));
  EXPECT_THAT(ParseError("sinks: &s [*s]\n"), HasSubstr("sinks[0]"));
}

TEST(ConfigTest, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = "log: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  EXPECT_FALSE(ParseError(deep).empty());
}

TEST(ConfigTest, NullValuesKeepDefaults) {
  Result<VigilConfig> r = ParseConfig("host:\nlog:\npipeline:\n  queue: ~\n", "vigil.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_FALSE(r->host.empty());
  EXPECT_EQ(r->pipeline.queue.capacity, 4096u);
}

TEST(ConfigTest, ParseHostPort) {
  Result<HostPort> v4 = ParseHostPort("127.0.0.1:9464");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  EXPECT_EQ(v4->ToString(), "127.0.0.1:9464");
  Result<HostPort> v6 = ParseHostPort("[::1]:0");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(v6->ToString(), "[::1]:0");
  EXPECT_FALSE(ParseHostPort("::1:80").has_value());
  EXPECT_FALSE(ParseHostPort("[::1:80").has_value());
  EXPECT_FALSE(ParseHostPort("host:-1").has_value());
  EXPECT_FALSE(ParseHostPort("host:").has_value());
  EXPECT_FALSE(ParseHostPort("host:65536").has_value());
  EXPECT_TRUE(ParseHostPort("host:65535").has_value());
}

TEST(ConfigTest, EnumNames) {
  EXPECT_EQ(BackpressureName(Backpressure::kDropNewest), "drop-newest");
  EXPECT_EQ(FsyncPolicyName(FsyncPolicy::kNever), "never");
  EXPECT_EQ(SinkTypeName(SinkType::kFile), "file");
  EXPECT_EQ(SinkTypeName(SinkType::kHub), "hub");
}

TEST(ConfigTest, FormatSourceError) {
  EXPECT_EQ(FormatSourceError("f.yaml", 7, 3, "a.b", "bad"), "f.yaml:7:3: a.b: bad");
  EXPECT_EQ(FormatSourceError("f.yaml", 7, 0, "", "bad"), "f.yaml:7: bad");
  EXPECT_EQ(FormatSourceError("f.yaml", 0, 0, "", "bad"), "f.yaml: bad");
  EXPECT_EQ(FormatSourceError("", 0, 0, "", "bad"), "bad");
}

class LoadConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_config_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, std::string_view text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(LoadConfigTest, LoadsFileAndNamesItInErrors) {
  const std::string good = Write("good.yaml", "pipeline: {workers: 3}\n");
  Result<VigilConfig> r = LoadConfig(good);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->pipeline.workers, 3u);
  EXPECT_EQ(r->source, good);

  const std::string bad = Write("bad.yaml", "\n\npipeline: {workers: zero}\n");
  Result<VigilConfig> e = LoadConfig(bad);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message(),
            bad + ":3:21: pipeline.workers: expected an integer in 1..64, got \"zero\"");
}

TEST_F(LoadConfigTest, MissingExplicitFileIsAnError) {
  const std::string path = (dir_ / "absent.yaml").string();
  Result<VigilConfig> r = LoadConfig(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.error().message(), HasSubstr(path));
}

TEST_F(LoadConfigTest, MissingDefaultFileYieldsDefaults) {
  if (std::filesystem::exists(std::string(kDefaultConfigPath))) {
    GTEST_SKIP() << kDefaultConfigPath << " exists on this machine, so it cannot be absent";
  }
  Result<VigilConfig> r = LoadConfig(std::string(kDefaultConfigPath));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->source, "<defaults>");
}

TEST_F(LoadConfigTest, OversizedFileIsRefused) {
  const std::string path = Write("big.yaml", std::string(kMaxConfigBytes + 10, '#'));
  Result<VigilConfig> r = LoadConfig(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("more than the"));
}

TEST_F(LoadConfigTest, DirectoryIsAnError) {
  Result<VigilConfig> r = LoadConfig(dir_.string());
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr(dir_.string()));
}

}  // namespace
}  // namespace vigil::core

namespace vigil::core {
namespace {

TEST(AgentConfigTest, ReadsEveryAgentKey) {
  auto c = ParseConfig(R"(agent:
  learn: 2m
  window: 50
  min_program_windows: 3
  syscall_stream: false
  events: [exec, open]
  write_events: false
  ring_buffer_bytes: 65536
  mount_tracefs: false
  baseline: /tmp/b.vgm
  filters:
    exclude_comms: [sshd]
    include_uids: [0, 1000]
    exclude_cgroups: [42]
)",
                       "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->agent.learn_seconds, 120u);
  EXPECT_EQ(c->agent.window, 50u);
  EXPECT_EQ(c->agent.min_program_windows, 3u);
  EXPECT_EQ(c->agent.syscall_stream, SyscallStreamMode::kOff);
  EXPECT_EQ(c->agent.events, (std::vector<std::string>{"exec", "open"}));
  EXPECT_FALSE(c->agent.write_events);
  EXPECT_EQ(c->agent.ring_buffer_bytes, 65536u);
  EXPECT_FALSE(c->agent.mount_tracefs);
  EXPECT_EQ(c->agent.baseline, "/tmp/b.vgm");
  EXPECT_EQ(c->agent.filters.exclude_comms, (std::vector<std::string>{"sshd"}));
  EXPECT_EQ(c->agent.filters.include_uids, (std::vector<uint32_t>{0, 1000}));
  EXPECT_EQ(c->agent.filters.exclude_cgroups, (std::vector<uint64_t>{42}));
}

TEST(AgentConfigTest, ReadsTheGate) {
  auto c = ParseConfig(R"(agent:
  gate:
    watch: [/opt/tools, /srv/run.sh]
    open: true
    mode: monitor
    deadline: 500us
    fallback: deny
    policy: [/etc/vigil/gate.yaml]
    model: /var/lib/vigil/models/gate.vgm
    realtime_priority: 0
)",
                       "g.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  const AgentGateConfig& g = c->agent.gate;
  EXPECT_EQ(g.watch, (std::vector<std::string>{"/opt/tools", "/srv/run.sh"}));
  EXPECT_TRUE(g.open);
  EXPECT_EQ(g.mode, "monitor");
  EXPECT_EQ(g.deadline_ns, 500'000);
  EXPECT_TRUE(g.fallback_deny);
  EXPECT_EQ(g.policy, (std::vector<std::string>{"/etc/vigil/gate.yaml"}));
  EXPECT_EQ(g.model, "/var/lib/vigil/models/gate.vgm");
  EXPECT_EQ(g.realtime_priority, 0u);
  // Off by default.
  auto d = ParseConfig("agent:\n  window: 50\n", "d.yaml");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->agent.gate.watch.empty());
  EXPECT_EQ(d->agent.gate.deadline_ns, 5'000'000);
  EXPECT_EQ(d->agent.gate.mode, "");
  EXPECT_EQ(d->agent.gate.model, "");
  EXPECT_EQ(d->agent.gate.realtime_priority, kDefaultGateRealtimePriority);
}

TEST(AgentConfigTest, BadGateSettingsNameFileLineAndKey) {
  EXPECT_EQ(ParseError("agent:\n  gate:\n    deadline: 5 parsecs\n"),
            "vigil.yaml:3:15: agent.gate.deadline: expected a whole number with us, ms or s "
            "(e.g. 5ms), got \"5 parsecs\"");
  EXPECT_EQ(ParseError("agent:\n  gate:\n    deadline: 20s\n"),
            "vigil.yaml:3:15: agent.gate.deadline: must be between 100us and 10s, got \"20s\"");
  EXPECT_EQ(ParseError("agent:\n  gate:\n    watch: [tools]\n"),
            "vigil.yaml:3:13: agent.gate.watch[0]: expected an absolute path");
  EXPECT_EQ(ParseError("agent:\n  gate:\n    model: gate.vgm\n"),
            "vigil.yaml:3:12: agent.gate.model: expected an absolute path");
  EXPECT_THAT(ParseError("agent:\n  gate:\n    mode: block\n"),
              HasSubstr("agent.gate.mode: expected monitor or enforce"));
  EXPECT_THAT(ParseError("agent:\n  gate:\n    fallback: maybe\n"),
              HasSubstr("agent.gate.fallback"));
  EXPECT_THAT(ParseError("agent:\n  gate:\n    realtime_priority: 100\n"),
              HasSubstr("vigil.yaml:3:24: agent.gate.realtime_priority"));
  EXPECT_THAT(ParseError("agent:\n  gate:\n    paths: [/x]\n"),
              HasSubstr("vigil.yaml:3:5: agent.gate.paths: unknown key"));
}

TEST(AgentConfigTest, DefaultsAndDerivedBaseline) {
  auto c = ParseConfig("state_dir: /srv/vigil\n", "d.yaml");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->agent.learn_seconds, 300u);
  EXPECT_EQ(c->agent.baseline, "/srv/vigil/models/baseline.vgm");
  EXPECT_EQ(c->agent.syscall_stream, SyscallStreamMode::kBudget);
  EXPECT_DOUBLE_EQ(c->agent.syscall_stream_budget, 0.01);
  EXPECT_EQ(c->agent.events.size(), 10u);
  EXPECT_TRUE(c->agent.write_events);
  EXPECT_TRUE(c->agent.mount_tracefs);
}

TEST(AgentConfigTest, SyscallStreamModesAndBudget) {
  auto on = ParseConfig("agent:\n  syscall_stream: true\n", "s.yaml");
  ASSERT_TRUE(on.has_value()) << on.error().ToString();
  EXPECT_EQ(on->agent.syscall_stream, SyscallStreamMode::kOn);
  auto budget =
      ParseConfig("agent:\n  syscall_stream: budget\n  syscall_stream_budget: 0.005\n", "s.yaml");
  ASSERT_TRUE(budget.has_value()) << budget.error().ToString();
  EXPECT_EQ(budget->agent.syscall_stream, SyscallStreamMode::kBudget);
  EXPECT_DOUBLE_EQ(budget->agent.syscall_stream_budget, 0.005);
  EXPECT_EQ(ParseError("agent:\n  syscall_stream: sometimes\n"),
            "vigil.yaml:2:19: agent.syscall_stream: expected true, false or budget, got "
            "\"sometimes\"");
  EXPECT_EQ(ParseError("agent:\n  syscall_stream: [budget]\n"),
            "vigil.yaml:2:19: agent.syscall_stream: expected true, false or budget, got a "
            "sequence");
  for (const char* bad : {"0", "1", "1.5", "1%", "-0.01", "nan"}) {
    EXPECT_EQ(ParseError(std::string("agent:\n  syscall_stream_budget: ") + bad + "\n"),
              std::string("vigil.yaml:2:26: agent.syscall_stream_budget: expected a number "
                          "between 0 and 1 (exclusive), got \"") +
                  bad + "\"")
        << bad;
  }
}

TEST(AgentConfigTest, ErrorsNameLineAndKey) {
  struct Case {
    const char* yaml;
    const char* want;
  } cases[] = {
      {"agent:\n  learn: soon\n", "b.yaml:2:10: agent.learn: expected a duration"},
      {"agent:\n  events: [exec, teleport]\n", "agent.events[1]: unknown event \"teleport\""},
      {"agent:\n  ring_buffer_bytes: 5000\n", "agent.ring_buffer_bytes: expected a power of two"},
      {"agent:\n  filters:\n    exclude_comms: [averyveryverylongname]\n",
       "b.yaml:3:21: agent.filters.exclude_comms[0]: a comm is at most 15 bytes"},
      {"agent:\n  filterz: {}\n", "agent.filterz"},
      {"agent:\n  window: 5\n", "agent.window: expected an integer in 10..100000"},
  };
  for (const Case& c : cases) {
    auto r = ParseConfig(c.yaml, "b.yaml");
    ASSERT_FALSE(r.has_value()) << c.yaml;
    EXPECT_NE(r.error().message().find(c.want), std::string::npos)
        << "got: " << r.error().message() << "\nwant: " << c.want;
  }
}

TEST(AgentConfigTest, ParsesDurations) {
  EXPECT_EQ(*ParseDurationSeconds("90"), 90u);
  EXPECT_EQ(*ParseDurationSeconds("90s"), 90u);
  EXPECT_EQ(*ParseDurationSeconds("5m"), 300u);
  EXPECT_EQ(*ParseDurationSeconds("2h"), 7200u);
  EXPECT_FALSE(ParseDurationSeconds("").has_value());
  EXPECT_FALSE(ParseDurationSeconds("5 m").has_value());
  EXPECT_FALSE(ParseDurationSeconds("m").has_value());
}

}  // namespace
}  // namespace vigil::core

namespace vigil::core {
namespace {

TEST(ConfigTest, ModeTrustedKeysAndAttestation) {
  auto d = ParseConfig("state_dir: /s\n", "vigil.yaml");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->mode, AgentMode::kMonitor);
  EXPECT_EQ(d->trusted_keys, std::vector<std::string>{"/s/keys/vigil.pub"});
  EXPECT_TRUE(d->attestation.tcti.empty());
  EXPECT_EQ(d->attestation.pcr, 23u);
  EXPECT_EQ(d->attestation.events, "/s/attest/events.json");
  auto c = ParseConfig(
      "mode: enforce\ntrusted_keys: [/a.pub, /b.pub]\n"
      "attestation:\n  tcti: device:/dev/tpmrm0\n  pcr: 16\n  require: true\n",
      "vigil.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->mode, AgentMode::kEnforce);
  EXPECT_EQ(c->trusted_keys.size(), 2u);
  EXPECT_EQ(c->attestation.tcti, "device:/dev/tpmrm0");
  EXPECT_EQ(c->attestation.pcr, 16u);
  EXPECT_TRUE(c->attestation.require);
  auto bad = ParseConfig("attestation:\n  pcr: 17\n", "vigil.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(),
            "vigil.yaml:2:8: attestation.pcr: expected 16 or 23 (the PCRs resettable from "
            "locality 0)");
  bad = ParseConfig("mode: enforcing\n", "vigil.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("mode: expected one of monitor, enforce"),
            std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace vigil::core
