#pragma once

// `vigil hub --config FILE`: the hub's configuration (YAML; schema and defaults in docs/hub.md).
// Every key is optional: without a file the embedded defaults run a hub on 127.0.0.1:8470 with
// its SQLite store, audit log and token key under state_dir. Unknown keys are errors; every
// error names the source, line and column and the key path, e.g.
//   hub.yaml:3:10: incidents.window: expected a duration (90, 90s, 5m, 2h, 1d), got "soon"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "hub/server.h"

namespace vigil::hub {

inline constexpr std::string_view kDefaultHubStateDir = "/var/lib/vigil/hub";

// The `nats:` section (docs/hub.md "NATS JetStream"): the hub also consumes the JetStream stream
// that agents' nats sinks publish to, as the durable consumer shared by every hub instance.
struct HubNatsConfig {
  bool enabled = false;  // the section is present (it then needs a url)
  std::string url;       // nats://HOST:PORT or tls://HOST:PORT
  std::string stream = "VIGIL";
  std::string subject_prefix = "vigil";
  std::string consumer = "vigil-hub";  // the durable consumer's name
  std::string token_file;              // or creds, not both
  std::string creds;
  uint32_t ack_wait_s = 30;  // a message not acknowledged this long is delivered again
  uint32_t batch = 64;       // messages fetched at once, 1..1000
};

// The `correlation:` section (docs/hub.md "Fleet incidents"): the global model's window and
// thresholds (hub/correlate.h).
struct HubCorrelationConfig {
  bool enabled = true;
  uint32_t window_s = 600;  // T
  uint32_t min_hosts = 3;   // K, 2..1000
  double min_score = 0.5;   // verdicts below this do not count, 0..1
};

// The `triage:` section (docs/hub.md "Triage"): the signed triage model the hub scores incidents
// with (hub/triage.h).
struct HubTriageConfig {
  std::string model;                      // "": none until one is trained (POST /v1/triage/train)
  std::vector<std::string> trusted_keys;  // besides the hub's own key (audit.key's public key)
  double recall = 0.95;                   // (0, 1]: the threshold keeps this share of true positives
  std::optional<double> threshold;        // [0, 1]: fixed instead
  std::string model_dir;                  // "": <state_dir>/triage (trained models)
};

// The `agents:` section (docs/hub.md "Agents over gRPC with mTLS"): the agent gRPC service,
// served only when `agents.listen` is set; enrolment tokens and the CA work without it.
struct HubAgentsConfig {
  bool enabled = false;  // agents.listen is set
  core::HostPort listen{"127.0.0.1", 8471};
  // DNS names and IP addresses in the agent port's server certificate (agents pin the CA).
  std::vector<std::string> server_names{"localhost", "127.0.0.1"};
  uint32_t cert_ttl_s = 30 * 86400;               // agents.cert_ttl: an enrolled agent's cert
  uint32_t max_enrol_token_ttl_s = 7 * 86400;     // agents.max_enrol_token_ttl
  uint32_t enrol_attempts_per_minute = 10;        // agents.enrol_attempts_per_minute (per peer)
  std::string ca_dir;        // "": <state_dir>/ca (ca.pem, ca.key)
  std::string enrol_tokens;  // "": <state_dir>/enrol-tokens.json
};

struct HubConfig {
  ServerOptions server;
  std::string state_dir{kDefaultHubStateDir};
  std::string store;      // "": <state_dir>/hub.db; a path (SQLite) or a postgres:// URI
  std::string audit_dir;  // "": <state_dir>/audit
  std::string audit_key;  // "": <state_dir>/keys/hub.key (minisign secret key, created)
  std::string audit_fsync = "batch";
  std::string token_key;  // "": <state_dir>/token.key (HS256 secret, created when absent)
  std::string issuer = "vigil-hub";
  std::string audience = "vigil-hub";
  uint32_t incident_window_s = 300;
  // postgres.pool / postgres.pool_wait: the PostgreSQL store's connections (StoreOptions).
  uint32_t postgres_pool = 4;
  uint32_t postgres_pool_wait_s = 10;
  HubNatsConfig nats;
  HubCorrelationConfig correlation;
  HubTriageConfig triage;
  HubAgentsConfig agents;
  // fleet.trusted_keys: minisign public keys an uploaded policy or model must be signed by
  // (loaded into server.fleet by `vigil hub`); none: uploads are refused.
  std::vector<std::string> fleet_trusted_keys;
  // fleet.attestation_allowlist: digests a registering agent's measurements must be in (loaded
  // by `vigil hub`); "": any. fleet.require_attestation goes to server.fleet directly.
  std::string fleet_allowlist;
  // fleet.attestation_ek_ca: the trusted EK CA bundle (PEM) that ties agents' attestation keys
  // to their TPMs (loaded by `vigil hub` into server.fleet.ek_ca_bundle); "": not done.
  // fleet.requote goes to server.fleet.requote_ms directly.
  std::string fleet_ek_ca;
  // fleet.attestation_ek_crl: CRLs (PEM) the EK certificates are checked against (loaded by
  // `vigil hub` into server.fleet.ek_crls); needs attestation_ek_ca; "": no revocation check.
  std::string fleet_ek_crl;

  // Fills the empty paths from state_dir.
  void ResolvePaths();
};

// Parses `text` (empty: the defaults); relative paths resolve against `base_dir`.
core::Result<HubConfig> ParseHubConfig(std::string_view text, std::string_view source,
                                       const std::string& base_dir);
core::Result<HubConfig> LoadHubConfig(const std::string& path);
// What the hub's commands take from --config and --state-dir: the file at `path` ("": the
// defaults), its state_dir replaced by `state_dir` when not empty, the paths resolved.
core::Result<HubConfig> LoadHubConfigWithStateDir(const std::string& path,
                                                  const std::string& state_dir);

}  // namespace vigil::hub
