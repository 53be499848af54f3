// vigil hub: the fleet service's first slice (docs/hub.md): the HTTP/JSON API over its store
// (embedded SQLite, or PostgreSQL shared by several hub instances), tokens for people and agents, and `hub ingest` to post an agent's findings file.
//
// hub's start-up, in order (undone in reverse on the way out): config -> token key -> audit
// log -> store -> listener -> wait for SIGINT/SIGTERM, timing out due escalations every second.

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/metrics.h"
#include "govern/attest.h"
#include "govern/credential.h"
#include "govern/trust.h"
#include "hub/agent_grpc.h"
#include "hub/auth.h"
#include "hub/config.h"
#include "hub/fleet_attest.h"
#include "hub/correlate.h"
#include "hub/enrolment.h"
#include "hub/nats_consumer.h"
#include "hub/nats_streams.h"
#include "hub/requests.h"
#include "hub/server.h"
#include "hub/store.h"
#include "hub/store_location.h"
#include "hub/triage.h"
#include "model/model_file.h"

namespace vigil::app {
namespace {

std::atomic<bool> g_hub_stop{false};
extern "C" void RecordHubStop(int) { g_hub_stop.store(true); }

struct HubFlags {
  std::string config;
  std::string state_dir;
  std::string listen;
  bool json = false;
  // token
  std::string role, subject;
  std::string ttl = "15m";
  // ingest
  std::string file, server, token_file, host, ca;
  size_t batch = 500;
  int timeout_ms = 10000;
};

void AddHubConfigFlags(CLI::App* cmd, HubFlags* f) {
  cmd->add_option("--config", f->config,
                  "Hub configuration (YAML, docs/hub.md); default: the "
                  "embedded defaults");
  cmd->add_option("--state-dir", f->state_dir,
                  "Where the store, audit log and keys live (overrides the config's state_dir; "
                  "default /var/lib/vigil/hub)");
}

core::Result<hub::HubConfig> LoadHubFlagsConfig(const HubFlags& f) {
  VIGIL_ASSIGN_OR_RETURN(hub::HubConfig c, hub::LoadHubConfigWithStateDir(f.config, f.state_dir));
  if (!f.listen.empty()) {
    auto hp = core::ParseHostPort(f.listen);
    if (!hp.has_value()) return hp.error().WithContext("--listen");
    c.server.listen = *hp;
  }
  return c;
}

hub::HubAuth MakeHubAuth(const hub::HubConfig& c, std::string key) {
  api::JwtConfig jwt;
  jwt.hs256_key = std::move(key);
  jwt.issuer = c.issuer;
  jwt.audience = c.audience;
  return hub::HubAuth(std::move(jwt));
}

hub::NatsConsumerOptions NatsConsumerOptionsOf(const hub::HubNatsConfig& c) {
  hub::NatsConsumerOptions o;
  o.nats.url = c.url;
  o.nats.stream = c.stream;
  o.nats.subject_prefix = c.subject_prefix;
  o.nats.token_file = c.token_file;
  o.nats.creds_file = c.creds;
  o.nats.name = "vigil-hub";
  o.consumer.durable = c.consumer;
  o.consumer.ack_wait = std::chrono::seconds(c.ack_wait_s);
  o.batch = static_cast<int>(c.batch);
  return o;
}

// The durable consumer of the audit checkpoints: the findings one's name with "-checkpoints"
// (cut to the 64 characters a NATS name may have).
std::string CheckpointDurable(const std::string& findings_durable) {
  return findings_durable.substr(0, 64 - 12) + "-checkpoints";
}

int RunHub(const HubFlags& f) {
  auto config = LoadHubFlagsConfig(f);
  if (!config.has_value()) return ReportError("hub", config.error());
  auto key = hub::LoadOrCreateTokenKey(config->token_key);
  if (!key.has_value()) return ReportError("hub", key.error());
  config->server.fleet.attestation_key = hub::AttestationKeyOf(*key);
  const hub::HubAuth auth = MakeHubAuth(*config, std::move(key).value());
  if (!config->fleet_trusted_keys.empty()) {
    auto keys = govern::LoadTrustedKeys(config->fleet_trusted_keys);
    if (!keys.has_value()) return ReportError("hub", keys.error().WithContext("fleet"));
    config->server.fleet.trusted_keys = std::move(keys).value();
  }
  if (!config->fleet_allowlist.empty()) {
    auto text = core::ReadFile(config->fleet_allowlist, 16 << 20);
    if (!text.has_value()) {
      return ReportError("hub", text.error().WithContext("fleet.attestation_allowlist"));
    }
    auto allowed = govern::ParseAllowlist(*text, config->fleet_allowlist);
    if (!allowed.has_value()) return ReportError("hub", allowed.error());
    config->server.fleet.allowlist = std::move(allowed).value();
  }
  if (!config->fleet_ek_ca.empty()) {
    auto bundle = core::ReadFile(config->fleet_ek_ca, govern::kMaxCaBundleBytes);
    if (!bundle.has_value()) {
      return ReportError("hub", bundle.error().WithContext("fleet.attestation_ek_ca"));
    }
    auto count = govern::CheckEkCaBundle(*bundle, config->fleet_ek_ca);
    if (!count.has_value()) return ReportError("hub", count.error());
    config->server.fleet.ek_ca_bundle = std::move(bundle).value();
    config->server.fleet.ek_ca_source = config->fleet_ek_ca;
  }
  if (!config->fleet_ek_crl.empty()) {
    if (config->fleet_ek_ca.empty()) {
      return ReportError("hub", core::InvalidArgument("fleet.attestation_ek_crl needs "
                                                      "fleet.attestation_ek_ca"));
    }
    auto crls = core::ReadFile(config->fleet_ek_crl, govern::kMaxCrlBytes);
    if (!crls.has_value()) {
      return ReportError("hub", crls.error().WithContext("fleet.attestation_ek_crl"));
    }
    auto count = govern::CheckEkCrls(*crls, config->fleet_ek_crl);
    if (!count.has_value()) return ReportError("hub", count.error());
    config->server.fleet.ek_crls = std::move(crls).value();
    config->server.fleet.ek_crl_source = config->fleet_ek_crl;
  }

  sigset_t set = BlockStopSignals(RecordHubStop);

  auto signer = OpenCheckpointSigner(config->audit_key);
  if (!signer.has_value()) return ReportError("hub", signer.error().WithContext("audit.key"));
  auto log = OpenHubAudit(*config, **signer);
  if (!log.has_value()) return ReportError("hub", log.error());
  hub::StoreOptions so;
  so.incident_window_ms = int64_t{config->incident_window_s} * 1000;
  so.pool_size = static_cast<int>(config->postgres_pool);
  so.pool_wait_ms = int64_t{config->postgres_pool_wait_s} * 1000;
  auto store = hub::Store::Open(config->store, so);
  if (!store.has_value()) return ReportError("hub", store.error());
  core::Registry& registry = core::Registry::Get();
  // The global model: every ingestion path goes through the correlating store
  // (hub/correlate.h), its state rebuilt from the store's recent findings first.
  hub::CorrelatorOptions co;
  co.window_ms = int64_t{config->correlation.window_s} * 1000;
  co.min_hosts = static_cast<int>(config->correlation.min_hosts);
  co.min_score = config->correlation.min_score;
  hub::FleetCorrelation correlation(co, **store, **log, core::SystemClock::Get(), registry);
  hub::CorrelatingStore correlating = config->correlation.enabled
                                          ? hub::CorrelatingStore(**store, correlation)
                                          : hub::CorrelatingStore(**store);
  hub::Store& hub_store = correlating;
  if (config->correlation.enabled) {
    if (auto s = correlation.Rebuild(); !s.ok()) {
      spdlog::warn("hub: correlator: rebuilding from the store: {}", s.message());
    }
  }
  // The triage model (hub/triage.h): scores the incidents each ingestion touched.
  hub::HubTriageOptions to;
  to.model = config->triage.model;
  to.trusted_keys = config->triage.trusted_keys;
  to.recall = config->triage.recall;
  to.threshold = config->triage.threshold;
  to.signing_key = config->audit_key;
  to.model_dir = config->triage.model_dir;
  hub::Triage triage(to, **store, **log, core::SystemClock::Get(), registry);
  // The model put in force through the API before a restart, else triage.model.
  if (auto s = triage.Start(); !s.ok()) {
    spdlog::warn("hub: triage: {} (incidents are not scored until a model loads)", s.message());
  }
  correlating.SetAfterIngest([&triage](const std::vector<hub::IngestResult>& results) {
    std::vector<int64_t> ids;
    for (const hub::IngestResult& r : results) {
      if (!r.duplicate) ids.insert(ids.end(), r.incidents.begin(), r.incidents.end());
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (auto s = triage.Score(ids); !s.ok()) {
      spdlog::warn("hub: triage: scoring incidents: {}", s.message());
    }
  });
  hub::Server server(config->server, hub_store, auth, **log, core::SystemClock::Get(), registry);
  server.SetTriage(&triage);
  if (auto s = server.Start(); !s.ok()) return ReportError("hub", s);
  // The agent gRPC port (agents.listen): the CA, the token file and the service.
  std::unique_ptr<hub::HubCa> ca;
  std::unique_ptr<hub::EnrolTokens> enrol_tokens;
  std::unique_ptr<hub::AgentGrpc> agents;
  if (config->agents.enabled) {
    auto loaded = hub::HubCa::LoadOrCreate(
        config->agents.ca_dir, core::SystemClock::Get().NowUnixNanos() / 1'000'000'000);
    if (!loaded.has_value()) {
      server.Stop();
      return ReportError("hub", loaded.error().WithContext("agents"));
    }
    ca = std::make_unique<hub::HubCa>(std::move(loaded).value());
    enrol_tokens = std::make_unique<hub::EnrolTokens>(config->agents.enrol_tokens);
    hub::AgentGrpcOptions ao;
    ao.listen = config->agents.listen;
    ao.server_names = config->agents.server_names;
    ao.cert_ttl_s = config->agents.cert_ttl_s;
    ao.enrol_attempts_per_minute = config->agents.enrol_attempts_per_minute;
    agents = std::make_unique<hub::AgentGrpc>(ao, *ca, *enrol_tokens, server, **log,
                                              core::SystemClock::Get());
    core::Status st = agents->AuditNewTokens();
    if (st.ok()) st = agents->Start();
    if (!st.ok()) {
      server.Stop();
      return ReportError("hub", st);
    }
  }
  std::unique_ptr<hub::NatsConsumer> nats;
  std::unique_ptr<hub::NatsCheckpointConsumer> nats_checkpoints;
  if (config->nats.enabled) {
    nats = std::make_unique<hub::NatsConsumer>(NatsConsumerOptionsOf(config->nats), hub_store,
                                               core::SystemClock::Get(), registry);
    if (auto s = nats->Start(); !s.ok()) {
      server.Stop();
      return ReportError("hub", s.WithContext("nats"));
    }
    // Audit checkpoints: their own subjects, so their own durable (one filter per consumer).
    const hub::NatsConsumerOptions fo = NatsConsumerOptionsOf(config->nats);
    hub::NatsCheckpointOptions cko;
    cko.nats = fo.nats;
    cko.consumer = fo.consumer;
    cko.consumer.durable = CheckpointDurable(config->nats.consumer);
    nats_checkpoints =
        std::make_unique<hub::NatsCheckpointConsumer>(cko, server.checkpoints(), registry);
    if (auto s = nats_checkpoints->Start(); !s.ok()) {
      nats->Stop();
      server.Stop();
      return ReportError("hub", s.WithContext("nats"));
    }
  }

  nlohmann::json ready = {{"status", "ready"},
                          {"port", server.port()},
                          {"tls", config->server.tls.has_value()},
                          {"store", hub::RedactStoreLocation(config->store)},
                          {"audit", config->audit_dir},
                          {"nats", nullptr},
                          {"agents", nullptr}};
  if (agents) {
    ready["agents"] = {{"port", agents->port()}, {"ca", config->agents.ca_dir + "/ca.pem"}};
  }
  if (nats) {
    ready["nats"] = {{"url", config->nats.url},
                     {"stream", config->nats.stream},
                     {"consumer", config->nats.consumer},
                     {"checkpoint_consumer", CheckpointDurable(config->nats.consumer)}};
  }
  if (f.json) {
    std::printf("%s\n", ready.dump().c_str());
  } else {
    std::printf("vigil hub: ready on %s://%s:%u (store %s, audit %s)\n",
                config->server.tls ? "https" : "http", config->server.listen.host.c_str(),
                server.port(), hub::RedactStoreLocation(config->store).c_str(),
                config->audit_dir.c_str());
    if (agents) {
      std::printf("vigil hub: agent gRPC (mTLS) on %s:%u, CA %s/ca.pem\n",
                  config->agents.listen.host.c_str(), agents->port(),
                  config->agents.ca_dir.c_str());
    }
    if (nats) {
      std::printf("vigil hub: consuming NATS stream %s at %s as %s\n",
                  config->nats.stream.c_str(), config->nats.url.c_str(),
                  config->nats.consumer.c_str());
    }
  }
  std::fflush(stdout);

  int code = kExitOk;
  timespec tick{1, 0};
  while (!g_hub_stop.load()) {
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
    if (auto s = server.ExpireDue(); !s.ok()) {
      code = ReportError("hub", s);
      break;
    }
    if (agents) {
      if (auto s = agents->AuditNewTokens(); !s.ok()) {
        code = ReportError("hub", s);
        break;
      }
    }
  }
  if (agents) agents->Stop();
  if (nats) nats->Stop();  // what it took and did not acknowledge is delivered again
  if (nats_checkpoints) nats_checkpoints->Stop();
  server.Stop();
  if (auto s = (*log)->Close(); !s.ok()) return ReportError("hub", s);
  return code;
}

int RunHubToken(const HubFlags& f) {
  hub::Role role;
  if (!hub::ParseRole(f.role, &role)) {
    return ReportError("hub token", core::InvalidArgument(
                                        "--role: expected viewer, analyst, admin or agent, got \"" +
                                        f.role + "\""));
  }
  if (f.subject.empty() || f.subject.size() > 256) {
    return ReportError("hub token", core::InvalidArgument("--subject: expected 1..256 bytes"));
  }
  if (role == hub::Role::kAgent && !hub::ValidHostId(f.subject)) {
    return ReportError("hub token",
                       core::InvalidArgument("--subject: an agent's subject is its host id "
                                             "(1..253 bytes of [A-Za-z0-9._:-])"));
  }
  auto config = LoadHubFlagsConfig(f);
  if (!config.has_value()) return ReportError("hub token", config.error());
  auto ttl = core::ParseDurationSeconds(f.ttl);
  if (!ttl.has_value() || *ttl < 1 || *ttl > config->server.max_token_ttl_s) {
    return ReportError("hub token",
                       core::InvalidArgument("--ttl: expected a duration of 1s.." +
                                             std::to_string(config->server.max_token_ttl_s) +
                                             "s (auth.max_token_ttl), got \"" + f.ttl + "\""));
  }
  auto key = hub::LoadOrCreateTokenKey(config->token_key);
  if (!key.has_value()) return ReportError("hub token", key.error());
  config->server.fleet.attestation_key = hub::AttestationKeyOf(*key);
  const hub::HubAuth auth = MakeHubAuth(*config, std::move(key).value());
  auto signer = OpenCheckpointSigner(config->audit_key);
  if (!signer.has_value()) return ReportError("hub token", signer.error());
  auto log = OpenHubAudit(*config, **signer);
  if (!log.has_value()) {
    return ReportError("hub token",
                       log.error().WithContext("(while a hub runs, an admin issues tokens with "
                                               "POST /v1/tokens)"));
  }
  const int64_t now = core::SystemClock::Get().NowUnixNanos() / 1'000'000'000;
  const int64_t expires = now + static_cast<int64_t>(*ttl);
  const char* user = std::getenv("USER");
  core::Status st = (*log)->Append(audit::RecordType::kAccessGrant,
                                   {{"action", "token-issued"},
                                    {"subject", f.subject},
                                    {"role", hub::RoleName(role)},
                                    {"expires", expires},
                                    {"by", std::string("cli:") + (user != nullptr ? user : "?")}});
  if (st.ok()) st = (*log)->Close();
  if (!st.ok()) return ReportError("hub token", st);
  const std::string token = auth.Issue(f.subject, role, static_cast<int64_t>(*ttl), now);
  if (f.json) {
    nlohmann::json j = {{"token", token},
                        {"role", hub::RoleName(role)},
                        {"subject", f.subject},
                        {"expires", expires}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", token.c_str());
  }
  return kExitOk;
}

int RunHubIngest(const HubFlags& f) {
  if (!hub::ValidHostId(f.host)) {
    return ReportError("hub ingest",
                       core::InvalidArgument("--host: expected 1..253 bytes of [A-Za-z0-9._:-]"));
  }
  if (f.batch < 1 || f.batch > hub::kMaxFindingsPerMessage) {
    return ReportError("hub ingest", core::InvalidArgument("--batch: expected 1..10000"));
  }
  std::ifstream in(f.file, std::ios::binary);
  if (!in) return ReportError("hub ingest", core::NotFound(f.file + ": cannot open"));
  std::string token;
  {
    std::ifstream t(f.token_file);
    if (!t || !std::getline(t, token) || token.empty()) {
      return ReportError("hub ingest", core::NotFound(f.token_file + ": no token in it"));
    }
  }
  // Findings (OCSF class 2004) are kept; other lines (events, status) are skipped and counted.
  std::vector<std::string> findings;
  size_t skipped = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) {
      return ReportError(
          "hub ingest",
          core::InvalidArgument(f.file + ":" + std::to_string(line_no) + ": not a JSON object"));
    }
    if (!j.contains("class_uid") || j["class_uid"] != 2004) {
      ++skipped;
      continue;
    }
    if (auto one = hub::ParseFindingJson(line); !one.has_value()) {
      return ReportError("hub ingest",
                         one.error().WithContext(f.file + ":" + std::to_string(line_no)));
    }
    findings.push_back(line);
  }
  std::unique_ptr<httplib::Client> client;
  try {
    client = std::make_unique<httplib::Client>(f.server);
  } catch (const std::exception& e) {
    return ReportError("hub ingest",
                       core::InvalidArgument("--server \"" + f.server + "\": " + e.what()));
  }
  if (!client->is_valid()) {
    return ReportError("hub ingest",
                       core::InvalidArgument("--server \"" + f.server + "\": not a usable URL"));
  }
  if (!f.ca.empty()) client->set_ca_cert_path(f.ca.c_str());
  client->set_connection_timeout(0, f.timeout_ms * 1000);
  client->set_read_timeout(0, f.timeout_ms * 1000);
  const httplib::Headers headers{{"Authorization", "Bearer " + token}};
  size_t messages = 0, duplicates = 0, stored = 0, new_incidents = 0;
  for (size_t start = 0; start < findings.size(); start += f.batch) {
    const size_t end = std::min(findings.size(), start + f.batch);
    // The message id is the digest of the host and the batch: posting the same file again
    // redelivers the same messages, which the hub recognises.
    std::string joined = f.host + "\n";
    std::string body =
        "{\"schema_version\":\"vigil.hub/v1\",\"host\":\"" + f.host + "\",\"message_id\":\"";
    std::string items;
    for (size_t i = start; i < end; ++i) {
      joined += findings[i] + "\n";
      items += (i == start ? "" : ",") + findings[i];
    }
    body += "sha256:" + model::Sha256Hex(joined).substr(0, 32);
    body += "\",\"findings\":[" + items + "]}";
    auto res = client->Post("/v1/ingest", headers, body, "application/json");
    if (!res) {
      return ReportError(
          "hub ingest",
          core::Unavailable(f.server + "/v1/ingest: " + httplib::to_string(res.error())));
    }
    const auto answer = nlohmann::json::parse(res->body, nullptr, false);
    if (res->status != 200 || !answer.is_object()) {
      std::string message = res->body.substr(0, 512);
      if (answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
        message = answer["error"].value("code", "") + ": " + answer["error"].value("message", "");
      }
      std::fprintf(stderr, "vigil hub ingest: error: HTTP %d: %s\n", res->status, message.c_str());
      return res->status == 400 ? kExitUsage : kExitFailure;
    }
    ++messages;
    if (answer.value("duplicate", false)) ++duplicates;
    stored += answer.value("findings", size_t{0});
    new_incidents += answer.value("new_incidents", size_t{0});
  }
  if (f.json) {
    nlohmann::json j = {{"messages", messages},
                        {"duplicate_messages", duplicates},
                        {"findings_read", findings.size()},
                        {"findings_stored", stored},
                        {"new_incidents", new_incidents},
                        {"lines_skipped", skipped}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "vigil hub ingest: %zu findings in %zu messages (%zu already delivered); %zu "
        "stored, %zu new incidents; %zu non-finding lines skipped\n",
        findings.size(), messages, duplicates, stored, new_incidents, skipped);
  }
  return kExitOk;
}

}  // namespace

core::Result<std::unique_ptr<audit::AuditLog>> OpenHubAudit(const hub::HubConfig& c,
                                                            const audit::Signer& signer) {
  audit::AuditOptions ao;
  if (!audit::ParseFsyncMode(c.audit_fsync, &ao.fsync)) {
    return core::InvalidArgument("audit.fsync: \"" + c.audit_fsync + "\"");
  }
  ao.writer = std::string("vigil hub ") + VIGIL_VERSION;
  auto log = audit::AuditLog::Open(c.audit_dir, ao, signer, core::SystemClock::Get());
  if (!log.has_value()) return log.error().WithContext("hub audit log");
  return std::move(log).value();
}

RunFn AddHubCommand(CLI::App& root) {
  auto f = std::make_shared<HubFlags>();
  CLI::App* hub =
      root.add_subcommand("hub",
                          "Run the fleet hub: incidents, adjudication, escalations over HTTP/JSON; "
                          "with agents.listen also the agents' gRPC API over mTLS; "
                          "with a `nats:` config section it also consumes the agents' NATS "
                          "JetStream stream (findings and audit checkpoints), sharing it with "
                          "the other hubs (docs/hub.md)");
  hub->require_subcommand(0, 1);
  AddHubConfigFlags(hub, f.get());
  hub->add_option("--listen", f->listen,
                  "HOST:PORT to serve on (port 0: any free port; "
                  "default 127.0.0.1:8470)");
  hub->add_flag("--json", f->json, "Print the ready line as JSON");
  hub->footer(
      "Store: the config's `store:` is a SQLite file (default <state_dir>/hub.db) or a "
      "PostgreSQL URI (postgres://USER@HOST:PORT/DB?passfile=FILE) that several hub instances "
      "may share.\nExit codes: 0 stopped by SIGINT/SIGTERM, 1 failure, 2 bad config or files.");

  CLI::App* token = hub->add_subcommand(
      "token",
      "Issue a hub token (HS256 JWT, printed on stdout) and audit it; the hub must not "
      "be running (an admin uses POST /v1/tokens then)");
  AddHubConfigFlags(token, f.get());
  token->add_option("--role", f->role, "viewer, analyst, admin or agent")->required();
  token->add_option("--subject", f->subject, "Who the token is for (an agent: its host id)")
      ->required();
  token->add_option("--ttl", f->ttl, "Lifetime (e.g. 15m, 1h; at most auth.max_token_ttl)")
      ->capture_default_str();
  token->add_flag("--json", f->json, "Print {token, role, subject, expires}");

  CLI::App* ingest = hub->add_subcommand(
      "ingest", "Post an agent's findings file (JSON Lines; OCSF Detection Findings) to a hub");
  ingest->add_option("file", f->file, "The agent's sink output (other lines are skipped)")
      ->required();
  ingest->add_option("--server", f->server, "The hub's base URL (http[s]://host:port)")->required();
  ingest->add_option("--token-file", f->token_file, "File whose first line is an agent token")
      ->required();
  ingest->add_option("--host", f->host, "The host the findings come from (the token's subject)")
      ->required();
  ingest->add_option("--batch", f->batch, "Findings per message")->capture_default_str();
  ingest->add_option("--ca", f->ca, "PEM CA bundle the hub's certificate must chain to");
  ingest->add_option("--timeout-ms", f->timeout_ms, "Connect and read timeout")
      ->capture_default_str();
  ingest->add_flag("--json", f->json, "Print the counts as JSON");
  ingest->footer(
      "Re-running on the same file re-sends the same message ids: nothing is stored "
      "twice.\nExit codes: 0 delivered, 1 failure, 2 bad input.");

  RunFn users = AddHubUserCommands(hub);
  std::function<int()> fleet = AddHubFleetCommands(hub);
  std::function<int()> triage = AddHubTriageCommands(hub);
  std::function<int()> enrol = AddHubEnrolCommands(hub);

  return [f, token, ingest, users, fleet, triage, enrol] {
    if (const int code = users(); code >= 0) return code;
    if (const int code = enrol(); code >= 0) return code;
    if (const int code = fleet(); code >= 0) return code;
    if (const int code = triage(); code >= 0) return code;
    if (token->parsed()) return RunHubToken(*f);
    if (ingest->parsed()) return RunHubIngest(*f);
    return RunHub(*f);
  };
}

}  // namespace vigil::app
