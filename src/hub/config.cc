#include "hub/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "core/config.h"
#include "hub/store_location.h"

namespace vigil::hub {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

struct HubYaml {
  std::string_view source;
  std::string base;

  core::Status At(const YAML::Node& n, const std::string& key, std::string_view why) const {
    const YAML::Mark m = n.Mark();
    return core::InvalidArgument(std::string(source) + ":" + std::to_string(m.line + 1) + ":" +
                                 std::to_string(m.column + 1) + ": " + key + ": " +
                                 std::string(why));
  }
  core::Status Scalar(const YAML::Node& n, const std::string& key, std::string* out) const {
    if (!n.IsScalar()) return At(n, key, "expected a single value");
    *out = n.Scalar();
    return {};
  }
  core::Status File(const YAML::Node& n, const std::string& key, std::string* out) const {
    VIGIL_RETURN_IF_ERROR(Scalar(n, key, out));
    if (out->empty()) return At(n, key, "expected a path");
    if ((*out)[0] != '/') *out = (std::filesystem::path(base) / *out).lexically_normal().string();
    return {};
  }
  core::Status Seconds(const YAML::Node& n, const std::string& key, uint64_t max,
                       uint32_t* out) const {
    const std::string text = n.IsScalar() ? n.Scalar() : "";
    auto s = core::ParseDurationSeconds(text);
    if (!s.has_value() || *s < 1 || *s > max) {
      return At(n, key,
                "expected a duration of 1s.." + std::to_string(max) +
                    "s (90, 90s, 5m, 2h, 1d), got \"" + text.substr(0, 32) + "\"");
    }
    *out = static_cast<uint32_t>(*s);
    return {};
  }
  core::Status Integer(const YAML::Node& n, const std::string& key, int lo, int hi,
                       uint32_t* out) const {
    std::string t;
    VIGIL_RETURN_IF_ERROR(Scalar(n, key, &t));
    if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(t) < lo || std::stoi(t) > hi) {
      return At(n, key, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    *out = static_cast<uint32_t>(std::stoi(t));
    return {};
  }
  // Visits a map's keys; `fn` returns kNotFound for a key it does not know.
  core::Status Keys(const YAML::Node& n, const std::string& prefix,
                    const std::function<core::Status(const std::string&, const YAML::Node&,
                                                     const std::string&)>& fn) const {
    if (!n.IsMap()) return At(n, prefix.empty() ? "(top)" : prefix, "expected a map");
    for (const auto& kv : n) {
      const std::string k = kv.first.Scalar();
      const std::string path = prefix.empty() ? k : prefix + "." + k;
      core::Status s = kv.second.IsNull() ? core::Status() : fn(k, kv.second, path);
      if (s.code() == core::StatusCode::kNotFound) return At(kv.first, path, "unknown key");
      if (!s.ok()) return s;
    }
    return {};
  }
};

core::Status Unknown() { return core::NotFound(""); }

core::Status ReadAgentsSection(const HubYaml& y, const YAML::Node& v, const std::string& p,
                               HubAgentsConfig* a) {
  return y.Keys(v, p,
                [&](const std::string& k, const YAML::Node& n, const std::string& path)
                    -> core::Status {
                  if (k == "listen") {
                    std::string t;
                    VIGIL_RETURN_IF_ERROR(y.Scalar(n, path, &t));
                    auto hp = core::ParseHostPort(t);
                    if (!hp.has_value()) return y.At(n, path, hp.error().message());
                    a->listen = *hp;
                    a->enabled = true;
                    return {};
                  }
                  if (k == "server_names") {
                    if (!n.IsSequence() || n.size() == 0 || n.size() > 64) {
                      return y.At(n, path, "expected a list of 1..64 DNS names or IP addresses");
                    }
                    a->server_names.clear();
                    for (size_t i = 0; i < n.size(); ++i) {
                      std::string name;
                      VIGIL_RETURN_IF_ERROR(
                          y.Scalar(n[i], path + "[" + std::to_string(i) + "]", &name));
                      if (name.empty() || name.size() > 253) {
                        return y.At(n[i], path, "expected a DNS name or an IP address");
                      }
                      a->server_names.push_back(std::move(name));
                    }
                    return {};
                  }
                  if (k == "cert_ttl") return y.Seconds(n, path, 365 * 86400, &a->cert_ttl_s);
                  if (k == "max_enrol_token_ttl") {
                    return y.Seconds(n, path, 30 * 86400, &a->max_enrol_token_ttl_s);
                  }
                  if (k == "enrol_attempts_per_minute") {
                    return y.Integer(n, path, 1, 10000, &a->enrol_attempts_per_minute);
                  }
                  if (k == "ca_dir") return y.File(n, path, &a->ca_dir);
                  if (k == "enrol_tokens") return y.File(n, path, &a->enrol_tokens);
                  return Unknown();
                });
}

core::Status ReadNatsSection(const HubYaml& y, const YAML::Node& v, const std::string& p,
                             HubNatsConfig* n) {
  auto checked = [&](const YAML::Node& v2, const std::string& p2, std::string* out,
                     bool (*valid)(std::string_view), const char* want) -> core::Status {
    VIGIL_RETURN_IF_ERROR(y.Scalar(v2, p2, out));
    if (!valid(*out)) return y.At(v2, p2, std::string("expected ") + want);
    return {};
  };
  const core::Status read =
      y.Keys(v, p,
             [&](const std::string& k, const YAML::Node& v2, const std::string& p2) -> core::Status {
               if (k == "url") {
                 return checked(v2, p2, &n->url, core::IsNatsUrl,
                                "nats://HOST:PORT or tls://HOST:PORT (one server, no path)");
               }
               if (k == "stream") {
                 return checked(v2, p2, &n->stream, core::IsNatsName,
                                "1..64 characters of [A-Za-z0-9_-]");
               }
               if (k == "consumer") {
                 return checked(v2, p2, &n->consumer, core::IsNatsName,
                                "1..64 characters of [A-Za-z0-9_-]");
               }
               if (k == "subject_prefix") {
                 return checked(v2, p2, &n->subject_prefix, core::IsNatsSubjectPrefix,
                                "dot-separated tokens of [A-Za-z0-9_-] (no wildcards)");
               }
               if (k == "token_file") return y.File(v2, p2, &n->token_file);
               if (k == "creds") return y.File(v2, p2, &n->creds);
               if (k == "ack_wait") return y.Seconds(v2, p2, 3600, &n->ack_wait_s);
               if (k == "batch") {
                 return y.Integer(v2, p2, 1, 1000, &n->batch);
               }
               return Unknown();
             });
  if (!read.ok()) return read;
  if (n->url.empty()) return y.At(v, p, "needs a url (nats://HOST:PORT)");
  if (!n->token_file.empty() && !n->creds.empty()) {
    return y.At(v, p, "takes a token_file or creds, not both");
  }
  n->enabled = true;
  return {};
}

// A number in (lo, hi] (lo_open) or [lo, hi].
core::Status ReadUnitNumber(const HubYaml& y, const YAML::Node& v, const std::string& p,
                            bool lo_open, double* out) {
  std::string t;
  VIGIL_RETURN_IF_ERROR(y.Scalar(v, p, &t));
  char* end = nullptr;
  const double d = t.empty() ? -1 : std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !((lo_open ? d > 0 : d >= 0) && d <= 1)) {
    return y.At(v, p, lo_open ? "expected a number in (0, 1]" : "expected a number in [0, 1]");
  }
  *out = d;
  return {};
}

core::Status ReadCorrelationSection(const HubYaml& y, const YAML::Node& v, const std::string& p,
                                    HubCorrelationConfig* c) {
  return y.Keys(v, p,
                [&](const std::string& k, const YAML::Node& v2,
                    const std::string& p2) -> core::Status {
                  std::string t;
                  if (k == "window") return y.Seconds(v2, p2, 7 * 86400, &c->window_s);
                  if (k == "enabled") {
                    VIGIL_RETURN_IF_ERROR(y.Scalar(v2, p2, &t));
                    if (t != "true" && t != "false") return y.At(v2, p2, "expected true or false");
                    c->enabled = t == "true";
                    return {};
                  }
                  if (k == "min_hosts") {
                    VIGIL_RETURN_IF_ERROR(y.Scalar(v2, p2, &t));
                    if (t.empty() || t.size() > 4 ||
                        t.find_first_not_of("0123456789") != std::string::npos ||
                        std::stoi(t) < 2 || std::stoi(t) > 1000) {
                      return y.At(v2, p2, "expected an integer in 2..1000");
                    }
                    c->min_hosts = static_cast<uint32_t>(std::stoi(t));
                    return {};
                  }
                  if (k == "min_score") return ReadUnitNumber(y, v2, p2, false, &c->min_score);
                  return Unknown();
                });
}

core::Status ReadTriageSection(const HubYaml& y, const YAML::Node& v, const std::string& p,
                               HubTriageConfig* c) {
  return y.Keys(v, p,
                [&](const std::string& k, const YAML::Node& v2,
                    const std::string& p2) -> core::Status {
                  if (k == "model") return y.File(v2, p2, &c->model);
                  if (k == "model_dir") return y.File(v2, p2, &c->model_dir);
                  if (k == "recall") return ReadUnitNumber(y, v2, p2, true, &c->recall);
                  if (k == "threshold") {
                    double d = 0;
                    VIGIL_RETURN_IF_ERROR(ReadUnitNumber(y, v2, p2, false, &d));
                    c->threshold = d;
                    return {};
                  }
                  if (k != "trusted_keys") return Unknown();
                  if (!v2.IsSequence()) return y.At(v2, p2, "expected a list of public key files");
                  for (size_t i = 0; i < v2.size(); ++i) {
                    std::string f;
                    VIGIL_RETURN_IF_ERROR(y.File(v2[i], p2 + "[" + std::to_string(i) + "]", &f));
                    c->trusted_keys.push_back(std::move(f));
                  }
                  return {};
                });
}

core::Status YamlError(std::string_view source, const YAML::Exception& e) {
  return core::InvalidArgument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                               std::to_string(e.mark.column + 1) + ": " + e.msg);
}

}  // namespace

void HubConfig::ResolvePaths() {
  const std::filesystem::path dir(state_dir);
  if (store.empty()) store = (dir / "hub.db").string();
  if (audit_dir.empty()) audit_dir = (dir / "audit").string();
  if (audit_key.empty()) audit_key = (dir / "keys" / "hub.key").string();
  if (token_key.empty()) token_key = (dir / "token.key").string();
  if (server.users_file.empty()) server.users_file = (dir / "users").string();
  if (agents.ca_dir.empty()) agents.ca_dir = (dir / "ca").string();
  if (agents.enrol_tokens.empty()) agents.enrol_tokens = (dir / "enrol-tokens.json").string();
  if (triage.model_dir.empty()) triage.model_dir = (dir / "triage").string();
}

core::Result<HubConfig> ParseHubConfig(std::string_view text, std::string_view source,
                                       const std::string& base_dir) {
  HubConfig c;
  if (text.size() > kMaxConfigBytes) {
    return core::InvalidArgument(std::string(source) + ": larger than 1 MiB");
  }
  const HubYaml y{source, base_dir};
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    if (!root.IsDefined() || root.IsNull()) return c;
    const core::Status top = y.Keys(
        root, "",
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> core::Status {
          if (k == "state_dir") return y.File(v, p, &c.state_dir);
          if (k == "store") {
            // A PostgreSQL URI (kept as written, password never echoed), else a file path.
            if (v.IsScalar() && IsPostgresLocation(v.Scalar())) {
              if (core::Status st = CheckPostgresUri(v.Scalar()); !st.ok()) {
                return y.At(v, p, st.message());
              }
              c.store = v.Scalar();
              return {};
            }
            if (v.IsScalar() && v.Scalar().find("://") != std::string::npos) {
              return y.At(v, p,
                          "expected a file path or a postgres:// or postgresql:// URI (unknown "
                          "URI scheme)");
            }
            return y.File(v, p, &c.store);
          }
          if (k == "listen") {
            std::string t;
            VIGIL_RETURN_IF_ERROR(y.Scalar(v, p, &t));
            auto hp = core::ParseHostPort(t);
            if (!hp.has_value()) return y.At(v, p, hp.error().message());
            c.server.listen = *hp;
            return {};
          }
          if (k == "threads") {
            std::string t;
            VIGIL_RETURN_IF_ERROR(y.Scalar(v, p, &t));
            if (t.empty() || t.size() > 3 ||
                t.find_first_not_of("0123456789") != std::string::npos || std::stoi(t) < 1 ||
                std::stoi(t) > 256) {
              return y.At(v, p, "expected an integer in 1..256");
            }
            c.server.threads = std::stoi(t);
            return {};
          }
          if (k == "tls") {
            HubTls tls;
            const core::Status read = y.Keys(v, p,
                                             [&](const std::string& k2, const YAML::Node& v2,
                                                 const std::string& p2) -> core::Status {
                                               if (k2 == "cert") return y.File(v2, p2, &tls.cert);
                                               if (k2 == "key") return y.File(v2, p2, &tls.key);
                                               return Unknown();
                                             });
            if (!read.ok()) return read;
            if (tls.cert.empty() || tls.key.empty()) return y.At(v, p, "needs both cert and key");
            c.server.tls = tls;
            return {};
          }
          if (k == "audit") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "dir") return y.File(v2, p2, &c.audit_dir);
                            if (k2 == "key") return y.File(v2, p2, &c.audit_key);
                            if (k2 == "fsync") {
                              if (core::Status st = y.Scalar(v2, p2, &c.audit_fsync); !st.ok())
                                return st;
                              if (c.audit_fsync != "batch" && c.audit_fsync != "interval" &&
                                  c.audit_fsync != "never") {
                                return y.At(v2, p2, "expected batch, interval or never");
                              }
                              return {};
                            }
                            return Unknown();
                          });
          }
          if (k == "auth") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "token_key") return y.File(v2, p2, &c.token_key);
                            if (k2 == "issuer") return y.Scalar(v2, p2, &c.issuer);
                            if (k2 == "audience") return y.Scalar(v2, p2, &c.audience);
                            if (k2 == "max_token_ttl")
                              return y.Seconds(v2, p2, 30 * 86400, &c.server.max_token_ttl_s);
                            if (k2 == "users") return y.File(v2, p2, &c.server.users_file);
                            if (k2 == "login_ttl")
                              return y.Seconds(v2, p2, 86400, &c.server.login_ttl_s);
                            return Unknown();
                          });
          }
          if (k == "incidents") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "window")
                              return y.Seconds(v2, p2, 86400, &c.incident_window_s);
                            return Unknown();
                          });
          }
          if (k == "nats") return ReadNatsSection(y, v, p, &c.nats);
          if (k == "correlation") return ReadCorrelationSection(y, v, p, &c.correlation);
          if (k == "triage") return ReadTriageSection(y, v, p, &c.triage);
          if (k == "postgres") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "pool") return y.Integer(v2, p2, 1, 64, &c.postgres_pool);
                            if (k2 == "pool_wait")
                              return y.Seconds(v2, p2, 3600, &c.postgres_pool_wait_s);
                            return Unknown();
                          });
          }
          if (k == "agents") return ReadAgentsSection(y, v, p, &c.agents);
          if (k == "fleet") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "require_attestation") {
                              std::string t;
                              if (core::Status st = y.Scalar(v2, p2, &t); !st.ok()) return st;
                              if (t != "true" && t != "false") {
                                return y.At(v2, p2, "expected true or false");
                              }
                              c.server.fleet.require_attestation = t == "true";
                              return {};
                            }
                            if (k2 == "attestation_allowlist") {
                              return y.File(v2, p2, &c.fleet_allowlist);
                            }
                            if (k2 == "attestation_ek_ca") return y.File(v2, p2, &c.fleet_ek_ca);
                            if (k2 == "attestation_ek_crl") {
                              return y.File(v2, p2, &c.fleet_ek_crl);
                            }
                            if (k2 == "requote") {
                              uint32_t seconds = 0;
                              VIGIL_RETURN_IF_ERROR(y.Seconds(v2, p2, 86400, &seconds));
                              c.server.fleet.requote_ms = int64_t{seconds} * 1000;
                              return {};
                            }
                            if (k2 != "trusted_keys") return Unknown();
                            if (!v2.IsSequence()) {
                              return y.At(v2, p2, "expected a list of public key files");
                            }
                            for (size_t i = 0; i < v2.size(); ++i) {
                              std::string f;
                              VIGIL_RETURN_IF_ERROR(
                                  y.File(v2[i], p2 + "[" + std::to_string(i) + "]", &f));
                              c.fleet_trusted_keys.push_back(std::move(f));
                            }
                            return {};
                          });
          }
          if (k == "escalations") {
            return y.Keys(v, p,
                          [&](const std::string& k2, const YAML::Node& v2,
                              const std::string& p2) -> core::Status {
                            if (k2 == "default_timeout") {
                              return y.Seconds(v2, p2, 86400, &c.server.escalation_timeout_s);
                            }
                            if (k2 == "max_timeout")
                              return y.Seconds(v2, p2, 86400, &c.server.max_escalation_timeout_s);
                            return Unknown();
                          });
          }
          return Unknown();
        });
    if (!top.ok()) return top;
  } catch (const YAML::Exception& e) {
    return YamlError(source, e);
  }
  if (c.issuer.empty() || c.audience.empty()) {
    return core::InvalidArgument(std::string(source) +
                                 ": auth.issuer and auth.audience must not "
                                 "be empty");
  }
  if (c.server.escalation_timeout_s > c.server.max_escalation_timeout_s) {
    return core::InvalidArgument(std::string(source) +
                                 ": escalations.default_timeout is longer "
                                 "than escalations.max_timeout");
  }
  return c;
}

core::Result<HubConfig> LoadHubConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound(path + ": cannot open");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return ParseHubConfig(text, path, std::filesystem::absolute(path).parent_path().string());
}

core::Result<HubConfig> LoadHubConfigWithStateDir(const std::string& path,
                                                  const std::string& state_dir) {
  HubConfig c;
  if (!path.empty()) {
    VIGIL_ASSIGN_OR_RETURN(c, LoadHubConfig(path));
  }
  if (!state_dir.empty()) c.state_dir = state_dir;
  c.ResolvePaths();
  return c;
}

}  // namespace vigil::hub
