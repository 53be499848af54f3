#include "service/serve_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>

#include "core/config.h"
#include "core/files.h"

namespace vigil::service {
namespace {

using core::Status;

class Reader {
 public:
  Reader(std::string_view source, std::string base) : source_(source), base_(std::move(base)) {}

  Status Error(const YAML::Node& n, std::string_view path, std::string_view msg) const {
    const YAML::Mark m = n.Mark();
    return core::InvalidArgument(std::string(source_) + ":" + std::to_string(m.line + 1) + ":" +
                                 std::to_string(m.column + 1) + ": " + std::string(path) + ": " +
                                 std::string(msg));
  }

  using Field =
      std::function<Status(const std::string& key, const YAML::Node& v, const std::string& path)>;
  // Calls `fn` for each key of a map; unknown keys are reported by `fn` returning kNotFound.
  Status Map(const YAML::Node& n, const std::string& path, const Field& fn) const {
    if (!n.IsMap()) return Error(n, path, "expected a map");
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      const std::string p = path.empty() ? key : path + "." + key;
      Status s = fn(key, kv.second, p);
      if (s.code() == core::StatusCode::kNotFound) return Error(kv.first, p, "unknown key");
      if (!s.ok()) return s;
    }
    return {};
  }

  Status String(const YAML::Node& n, const std::string& path, std::string* out) const {
    if (!n.IsScalar()) return Error(n, path, "expected a string");
    *out = n.Scalar();
    return {};
  }
  Status Path(const YAML::Node& n, const std::string& path, std::string* out) const {
    if (auto s = String(n, path, out); !s.ok()) return s;
    if (out->empty()) return Error(n, path, "expected a file path");
    if (!out->empty() && (*out)[0] != '/') *out = (std::filesystem::path(base_) / *out).string();
    return {};
  }
  Status Uint(const YAML::Node& n, const std::string& path, uint64_t lo, uint64_t hi,
              uint32_t* out) const {
    uint64_t v = 0;
    const std::string t = n.IsScalar() ? n.Scalar() : "";
    size_t used = 0;
    bool ok =
        !t.empty() && t.size() <= 19 && t.find_first_not_of("0123456789") == std::string::npos;
    if (ok) {
      v = std::stoull(t, &used);
      ok = v >= lo && v <= hi;
    }
    if (!ok) {
      return Error(n, path,
                   "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                       ", got \"" + t.substr(0, 32) + "\"");
    }
    *out = static_cast<uint32_t>(v);
    return {};
  }
  Status Number(const YAML::Node& n, const std::string& path, double lo, double hi,
                double* out) const {
    const std::string t = n.IsScalar() ? n.Scalar() : "";
    char* end = nullptr;
    const double v = t.empty() ? 0 : std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !(v >= lo && v <= hi)) {
      return Error(n, path,
                   "expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got \"" + t.substr(0, 32) + "\"");
    }
    *out = v;
    return {};
  }
  Status Bool(const YAML::Node& n, const std::string& path, bool* out) const {
    const std::string t = n.IsScalar() ? n.Scalar() : "";
    if (t == "true")
      *out = true;
    else if (t == "false")
      *out = false;
    else
      return Error(n, path, "expected true or false");
    return {};
  }
  Status Scopes(const YAML::Node& n, const std::string& path, uint32_t* out) const {
    if (!n.IsSequence()) return Error(n, path, "expected a list of scopes");
    *out = 0;
    for (const auto& item : n) {
      if (!item.IsScalar()) return Error(item, path, "expected a scope name");
      auto bits = api::ParseScopes(item.Scalar());
      if (!bits.has_value()) return Error(item, path, bits.error().message());
      *out |= *bits;
    }
    return {};
  }
  Status Listen(const YAML::Node& n, const std::string& path, core::HostPort* out) const {
    std::string t;
    if (auto s = String(n, path, &t); !s.ok()) return s;
    auto hp = core::ParseHostPort(t);
    if (!hp.has_value()) return Error(n, path, hp.error().message());
    *out = *hp;
    return {};
  }
  Status Tls(const YAML::Node& n, const std::string& path, api::TlsFiles* tls) const {
    Status s = Map(n, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
      if (k == "cert") return Path(v, p, &tls->cert);
      if (k == "key") return Path(v, p, &tls->key);
      if (k == "client_ca") return Path(v, p, &tls->client_ca);
      if (k == "require_client_cert") return Bool(v, p, &tls->require_client_cert);
      return core::NotFound("");
    });
    if (!s.ok()) return s;
    if (tls->cert.empty() || tls->key.empty()) return Error(n, path, "needs cert and key");
    if (tls->require_client_cert && tls->client_ca.empty()) {
      return Error(n, path, "require_client_cert needs client_ca");
    }
    return {};
  }

 private:
  std::string_view source_;
  std::string base_;
};

}  // namespace

core::Result<ServeConfig> ParseServeConfig(std::string_view text, std::string_view source,
                                           const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return core::InvalidArgument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                                 std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  ServeConfig c;
  const Reader r(source, base_dir);
  std::string key_file;
  YAML::Node key_node;
  try {
    Status s = r.Map(
        root, "", [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "http") {
            c.http.emplace();
            return r.Map(v, p,
                         [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) {
                           if (k2 == "listen") return r.Listen(v2, p2, &c.http->listen);
                           if (k2 == "threads") {
                             uint32_t t = 0;
                             Status st = r.Uint(v2, p2, 1, 1024, &t);
                             c.http->threads = static_cast<int>(t);
                             return st;
                           }
                           if (k2 == "tls") return r.Tls(v2, p2, &c.http->tls.emplace());
                           return core::NotFound("");
                         });
          }
          if (k == "grpc") {
            c.grpc.emplace();
            return r.Map(v, p,
                         [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) {
                           if (k2 == "listen") return r.Listen(v2, p2, &c.grpc->listen);
                           if (k2 == "max_threads") {
                             uint32_t t = 0;
                             Status st = r.Uint(v2, p2, 2, 1024, &t);
                             c.grpc->max_threads = static_cast<int>(t);
                             return st;
                           }
                           if (k2 == "poll_threads") {
                             uint32_t t = 0;
                             Status st = r.Uint(v2, p2, 1, 64, &t);
                             c.grpc->poll_threads = static_cast<int>(t);
                             return st;
                           }
                           if (k2 == "tls") return r.Tls(v2, p2, &c.grpc->tls.emplace());
                           return core::NotFound("");
                         });
          }
          if (k == "auth") {
            return r.Map(
                v, p,
                [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) -> Status {
                  if (k2 == "jwt") {
                    return r.Map(v2, p2,
                                 [&](const std::string& k3, const YAML::Node& v3,
                                     const std::string& p3) -> Status {
                                   if (k3 == "hs256_key_file") {
                                     key_node = v3;
                                     return r.Path(v3, p3, &key_file);
                                   }
                                   if (k3 == "issuer") return r.String(v3, p3, &c.auth.jwt.issuer);
                                   if (k3 == "audience")
                                     return r.String(v3, p3, &c.auth.jwt.audience);
                                   if (k3 == "leeway_seconds") {
                                     uint32_t l = 0;
                                     Status st = r.Uint(v3, p3, 0, 3600, &l);
                                     c.auth.jwt.leeway_s = l;
                                     return st;
                                   }
                                   return core::NotFound("");
                                 });
                  }
                  if (k2 == "clients") {
                    return r.Map(
                        v2, p2,
                        [&](const std::string& cn, const YAML::Node& v3, const std::string& p3) {
                          return r.Scopes(v3, p3, &c.auth.client_scopes[cn]);
                        });
                  }
                  if (k2 == "allow_anonymous") return r.Bool(v2, p2, &c.auth.allow_anonymous);
                  if (k2 == "anonymous_scopes") return r.Scopes(v2, p2, &c.auth.anonymous_scopes);
                  return core::NotFound("");
                });
          }
          if (k == "limits") {
            return r.Map(
                v, p,
                [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) -> Status {
                  if (k2 == "rate_per_second")
                    return r.Number(v2, p2, 0, 1e9, &c.frontend.rate.per_second);
                  if (k2 == "burst") return r.Number(v2, p2, 0, 1e9, &c.frontend.rate.burst);
                  if (k2 == "max_in_flight")
                    return r.Uint(v2, p2, 1, 1'000'000, &c.frontend.max_in_flight);
                  if (k2 == "default_deadline_ms") {
                    return r.Uint(v2, p2, 1, 60'000, &c.frontend.default_deadline_ms);
                  }
                  if (k2 == "queue") return r.Uint(v2, p2, 1, 1'000'000, &c.scoring.queue);
                  return core::NotFound("");
                });
          }
          if (k == "batch") {
            return r.Map(
                v, p,
                [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) -> Status {
                  if (k2 == "max_size") return r.Uint(v2, p2, 1, 65'536, &c.scoring.batch_max);
                  if (k2 == "max_delay_us") {
                    return r.Uint(v2, p2, 0, 1'000'000, &c.scoring.batch_delay_us);
                  }
                  if (k2 == "inline") return r.Bool(v2, p2, &c.scoring.inline_when_fast);
                  return core::NotFound("");
                });
          }
          if (k == "cache") {
            return r.Map(
                v, p,
                [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) -> Status {
                  if (k2 == "capacity")
                    return r.Uint(v2, p2, 0, 10'000'000, &c.scoring.cache_capacity);
                  if (k2 == "ttl_seconds") return r.Uint(v2, p2, 1, 86'400, &c.scoring.cache_ttl_s);
                  return core::NotFound("");
                });
          }
          if (k == "fallback") {
            return r.Map(
                v, p,
                [&](const std::string& k2, const YAML::Node& v2, const std::string& p2) -> Status {
                  if (k2 == "score") return r.Number(v2, p2, 0, 1, &c.scoring.fallback_score);
                  if (k2 == "anomalous") return r.Bool(v2, p2, &c.scoring.fallback_anomalous);
                  return core::NotFound("");
                });
          }
          if (k == "model") return r.Path(v, p, &c.model);
          if (k == "rules") {
            if (!v.IsSequence()) return r.Error(v, p, "expected a list of rules files");
            for (const auto& item : v) {
              std::string f;
              if (auto st = r.Path(item, p, &f); !st.ok()) return st;
              c.rules.push_back(f);
            }
            return {};
          }
          if (k == "policy_version") return r.String(v, p, &c.policy_version);
          if (k == "public_key") return r.Path(v, p, &c.public_key);
          return core::NotFound("");
        });
    if (!s.ok()) return s;
    if (!c.http && !c.grpc) return r.Error(root, "http, grpc", "configure at least one listener");
    if (c.model.empty()) return r.Error(root, "model", "missing (the model file to serve)");
    if (c.rules.empty()) return r.Error(root, "rules", "missing (the rules files to decide with)");
    if (!key_file.empty()) {
      auto key = ReadJwtKeyFile(key_file);
      if (!key.has_value()) {
        return key.error().WithContext(std::string(source) + ": auth.jwt.hs256_key_file");
      }
      c.auth.jwt.hs256_key = std::move(key).value();
      if (c.auth.jwt.issuer.empty() || c.auth.jwt.audience.empty()) {
        return r.Error(key_node, "auth.jwt", "needs issuer and audience");
      }
    }
  } catch (const YAML::Exception& e) {
    return core::InvalidArgument(std::string(source) + ": " + e.what());
  }
  return c;
}

core::Result<std::string> ReadJwtKeyFile(const std::string& path) {
  // A shared key is a line of text; a file far larger than that is not one.
  constexpr uint64_t kMaxJwtKeyFileBytes = 64 * 1024;
  auto bytes = core::ReadFile(path, kMaxJwtKeyFileBytes);
  if (!bytes.has_value()) return bytes.error();
  std::string key = std::move(bytes).value();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < 32) return core::InvalidArgument(path + ": holds fewer than 32 bytes");
  return key;
}

core::Result<ServeConfig> LoadServeConfig(const std::string& path) {
  auto text = core::ReadFile(path, core::kMaxConfigBytes);
  if (!text.has_value()) return text.error().WithContext("the config file");
  return ParseServeConfig(*text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace vigil::service
