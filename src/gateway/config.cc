#include "gateway/config.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vigil::gateway {
namespace {

using core::Status;

// A scalar for a diagnostic: printable ASCII kept, other bytes as \xNN, long values cut.
std::string Shown(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsSequence()) return "a sequence";
  if (node.IsMap()) return "a mapping";
  if (!node.IsScalar()) return "nothing";
  std::string out = "\"";
  const std::string& s = node.Scalar();
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    out += (u >= 0x20 && u < 0x7f && u != '"') ? std::string(1, s[i])
                                                : fmt::format("\\x{:02x}", u);
  }
  return out + (s.size() > 64 ? "...\"" : "\"");
}

// Walks a document against the schema; every Read* leaves its target alone for a null value.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Status Error(const YAML::Mark& mark, std::string_view path, std::string_view msg) const {
    return core::InvalidArgument(core::FormatSourceError(
        source_, mark.is_null() ? 0 : mark.line + 1, mark.is_null() ? 0 : mark.column + 1, path,
        msg));
  }
  Status Error(const YAML::Node& node, std::string_view path, std::string_view msg) const {
    return Error(node.Mark(), path, msg);
  }
  Status Expected(const YAML::Node& node, std::string_view path, std::string_view what) const {
    return Error(node, path, fmt::format("expected {}, got {}", what, Shown(node)));
  }

  // Calls fn(key, value, path) for each entry of the mapping, refusing unknown or repeated keys.
  Status Fields(const YAML::Node& node, std::string_view path,
                std::initializer_list<std::string_view> allowed,
                const std::function<Status(const std::string&, const YAML::Node&,
                                           const std::string&)>& fn) const {
    if (!node.IsMap()) return Expected(node, path, "a mapping");
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Expected(kv.first, path, "a string key");
      const std::string& key = kv.first.Scalar();
      const std::string child = path.empty() ? key : fmt::format("{}.{}", path, key);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string names;
        for (std::string_view a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
        return Error(kv.first, child, fmt::format("unknown key (expected one of: {})", names));
      }
      if (!seen.insert(key).second) return Error(kv.first, child, "key given more than once");
      VIGIL_RETURN_IF_ERROR(fn(key, kv.second, child));
    }
    return Status::Ok();
  }

  Status String(const YAML::Node& v, std::string_view path, std::string* out) const {
    if (v.IsNull()) return Status::Ok();
    if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().find('\0') != std::string::npos) {
      return Expected(v, path, "a non-empty string");
    }
    *out = v.Scalar();
    return Status::Ok();
  }

  Status Strings(const YAML::Node& v, std::string_view path, std::vector<std::string>* out) const {
    if (v.IsNull()) return Status::Ok();
    if (!v.IsSequence()) return Expected(v, path, "a sequence of strings");
    out->clear();
    std::set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string p = fmt::format("{}[{}]", path, i);
      std::string s;
      VIGIL_RETURN_IF_ERROR(String(v[i], p, &s));
      if (s.empty()) return Expected(v[i], p, "a non-empty string");
      if (!seen.insert(s).second) return Error(v[i], p, fmt::format("\"{}\" listed twice", s));
      out->push_back(std::move(s));
    }
    return Status::Ok();
  }

  Status Uint(const YAML::Node& v, std::string_view path, uint64_t min, uint64_t max,
              uint64_t* out) const {
    if (v.IsNull()) return Status::Ok();
    const std::string what = fmt::format("an integer in {}..{}", min, max);
    if (!v.IsScalar()) return Expected(v, path, what);
    const std::string& s = v.Scalar();
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < min ||
        value > max) {
      return Expected(v, path, what);
    }
    *out = value;
    return Status::Ok();
  }
  template <typename T>
  Status Uint(const YAML::Node& v, std::string_view path, uint64_t min, uint64_t max,
              T* out) const {
    uint64_t wide = *out;
    VIGIL_RETURN_IF_ERROR(Uint(v, path, min, max, &wide));
    *out = static_cast<T>(wide);
    return Status::Ok();
  }

  Status Number(const YAML::Node& v, std::string_view path, double min, double max,
                double* out) const {
    if (v.IsNull()) return Status::Ok();
    const std::string what = fmt::format("a number in [{}, {}]", min, max);
    if (!v.IsScalar()) return Expected(v, path, what);
    const std::string& s = v.Scalar();
    double value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value) ||
        value < min || value > max) {
      return Expected(v, path, what);
    }
    *out = value;
    return Status::Ok();
  }

  Status Bool(const YAML::Node& v, std::string_view path, bool* out) const {
    if (v.IsNull()) return Status::Ok();
    if (v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false")) {
      *out = v.Scalar() == "true";
      return Status::Ok();
    }
    return Expected(v, path, "true or false");
  }

  // `choices` lists the accepted words; *index gets the position of the one given.
  Status Choice(const YAML::Node& v, std::string_view path,
                std::initializer_list<std::string_view> choices, size_t* index) const {
    if (v.IsNull()) return Status::Ok();
    if (v.IsScalar()) {
      for (size_t i = 0; i < choices.size(); ++i) {
        if (v.Scalar() == choices.begin()[i]) {
          *index = i;
          return Status::Ok();
        }
      }
    }
    std::string names;
    for (std::string_view c : choices) names += (names.empty() ? "" : " or ") + std::string(c);
    return Expected(v, path, names);
  }

  Status Mode(const YAML::Node& v, std::string_view path, gateway::Mode* out) const {
    size_t i = *out == gateway::Mode::kMonitor ? 0 : 1;
    VIGIL_RETURN_IF_ERROR(Choice(v, path, {"monitor", "enforce"}, &i));
    *out = i == 0 ? gateway::Mode::kMonitor : gateway::Mode::kEnforce;
    return Status::Ok();
  }

  Status Address(const YAML::Node& v, std::string_view path, core::HostPort* out) const {
    std::string text;
    VIGIL_RETURN_IF_ERROR(String(v, path, &text));
    if (text.empty()) return Status::Ok();
    auto hp = core::ParseHostPort(text);
    if (!hp.has_value()) return Error(v, path, hp.error().message());
    *out = std::move(hp).value();
    return Status::Ok();
  }

  Status Duration(const YAML::Node& v, std::string_view path, uint64_t* seconds) const {
    if (v.IsNull()) return Status::Ok();
    if (!v.IsScalar()) return Expected(v, path, "a duration (90, 90s, 5m, 2h, 1d)");
    auto d = core::ParseDurationSeconds(v.Scalar());
    if (!d.has_value()) return Error(v, path, d.error().message());
    *seconds = *d;
    return Status::Ok();
  }

  Status ReadModbus(const YAML::Node& node, std::string_view path, ModbusConfig* m) const {
    if (node.IsNull()) return Status::Ok();
    return Fields(node, path,
                  {"listen", "upstream", "upstream_timeout_ms", "max_clients", "unmapped_writes",
                   "other_functions"},
                  [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
                    if (k == "listen") return Address(v, p, &m->listen);
                    if (k == "upstream") return Address(v, p, &m->upstream);
                    if (k == "upstream_timeout_ms") {
                      return Uint(v, p, 1, 60000, &m->upstream_timeout_ms);
                    }
                    if (k == "max_clients") return Uint(v, p, 1, 1024, &m->max_clients);
                    size_t i = 0;
                    bool* target =
                        k == "unmapped_writes" ? &m->deny_unmapped_writes : &m->deny_other_functions;
                    i = *target ? 0 : 1;
                    VIGIL_RETURN_IF_ERROR(Choice(v, p, {"deny", "allow"}, &i));
                    *target = i == 0;
                    return Status::Ok();
                  });
  }

  Status ReadDecision(const YAML::Node& node, std::string_view path, DecisionConfig* d) const {
    if (node.IsNull()) return Status::Ok();
    return Fields(node, path,
                  {"deadline_us", "breaker_failures", "breaker_cooldown_ms", "realtime_priority"},
                  [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
                    if (k == "deadline_us") return Uint(v, p, 1, 10'000'000, &d->deadline_us);
                    if (k == "realtime_priority") return Uint(v, p, 0, 99, &d->realtime_priority);
                    if (k == "breaker_failures") return Uint(v, p, 1, 1'000'000, &d->breaker_failures);
                    return Uint(v, p, 0, 3'600'000, &d->breaker_cooldown_ms);
                  });
  }

  Status ReadPolicy(const YAML::Node& node, std::string_view path, GatewayPolicyConfig* g) const {
    if (node.IsNull()) return Status::Ok();
    return Fields(node, path, {"rules", "stage", "version"},
                  [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
                    if (k == "rules") return Strings(v, p, &g->rules);
                    if (k == "version") return String(v, p, &g->version);
                    if (v.IsNull()) return Status::Ok();
                    if (!v.IsScalar() || !policy::ParseStage(v.Scalar(), &g->stage)) {
                      return Expected(v, p, "monitor, enforce-non-critical or enforce-all");
                    }
                    return Status::Ok();
                  });
  }

  Status ReadModel(const YAML::Node& node, std::string_view path, ActuatorModelConfig* m) const {
    if (node.IsNull()) return Status::Ok();
    return Fields(node, path,
                  {"training", "actuators", "context", "bins", "min_support", "max_share",
                   "state_max_age"},
                  [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
                    if (k == "training") return String(v, p, &m->training);
                    if (k == "actuators") return Strings(v, p, &m->actuators);
                    if (k == "context") return Strings(v, p, &m->context);
                    if (k == "bins") return Uint(v, p, 2, 1000, &m->bins);
                    if (k == "min_support") return Uint(v, p, 1, 1'000'000'000, &m->min_support);
                    if (k == "max_share") {
                      VIGIL_RETURN_IF_ERROR(Number(v, p, 0, 0.5, &m->max_share));
                      if (m->max_share >= 0.5) return Expected(v, p, "a number in [0, 0.5)");
                      return Status::Ok();
                    }
                    return Duration(v, p, &m->state_max_age_s);
                  });
  }

  Status ReadSignal(const YAML::Node& node, std::string_view path, SignalSchema* s) const {
    YAML::Mark max_mark = node.Mark();
    YAML::Mark field_mark = node.Mark();
    Status fields = Fields(
        node, path, {"name", "field", "type", "min", "max", "units"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "name") return String(v, p, &s->name);
          if (k == "field") {
            field_mark = v.Mark();
            return String(v, p, &s->field);
          }
          if (k == "type") {
            size_t i = static_cast<size_t>(s->type);
            VIGIL_RETURN_IF_ERROR(Choice(v, p, {"number", "integer", "bool"}, &i));
            s->type = static_cast<SignalType>(i);
            return Status::Ok();
          }
          if (k == "units") return String(v, p, &s->units);
          if (k == "max") max_mark = v.Mark();
          return Number(v, p, -1e300, 1e300, k == "min" ? &s->min : &s->max);
        });
    if (!fields.ok()) return fields;
    if (s->name.empty()) return Error(node, path, "missing key 'name'");
    if (!s->field.empty() && !ValidFieldName(s->field)) {
      return Error(field_mark, std::string(path) + ".field",
                   "expected a key or a JSON pointer (/a/b, ~0 for ~, ~1 for /)");
    }
    if (s->min > s->max) {
      return Error(max_mark, std::string(path) + ".max",
                   fmt::format("expected a number >= {}.min ({}), got {}", path, s->min, s->max));
    }
    return Status::Ok();
  }

  // An MQTT topic filter: levels split by '/', '+' a whole level, '#' only the whole last one.
  static bool ValidTopicFilter(const std::string& t) {
    if (t.empty() || t.size() > 65535 || t.find('\0') != std::string::npos) return false;
    size_t start = 0;
    while (true) {
      const size_t end = t.find('/', start);
      const std::string_view level(t.data() + start,
                                   (end == std::string::npos ? t.size() : end) - start);
      const bool has_wild = level.find_first_of("+#") != std::string_view::npos;
      if (has_wild && level != "+" && level != "#") return false;
      if (level == "#" && end != std::string::npos) return false;
      if (end == std::string::npos) return true;
      start = end + 1;
    }
  }

  Status ReadTopics(const YAML::Node& node, std::string_view path,
                    std::vector<TopicSchema>* out) const {
    if (node.IsNull()) return Status::Ok();
    if (!node.IsSequence()) return Expected(node, path, "a sequence of topics");
    std::map<std::string, std::string> owner;  // signal -> the topic path that sets it
    std::set<std::string> topics;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string p = fmt::format("{}[{}]", path, i);
      TopicSchema t;
      YAML::Node signals_node;
      Status fields = Fields(
          node[i], p, {"topic", "signals"},
          [&](const std::string& k, const YAML::Node& v, const std::string& kp) -> Status {
            if (k == "topic") {
              VIGIL_RETURN_IF_ERROR(String(v, kp, &t.topic));
              if (!t.topic.empty() && !ValidTopicFilter(t.topic)) {
                return Error(v, kp, "not an MQTT topic filter ('+' and '#' must be whole "
                                    "levels, '#' the last)");
              }
              return Status::Ok();
            }
            signals_node = v;
            if (v.IsNull()) return Status::Ok();
            if (!v.IsSequence() || v.size() == 0) {
              return Expected(v, kp, "a non-empty sequence of signals");
            }
            for (size_t j = 0; j < v.size(); ++j) {
              SignalSchema s;
              VIGIL_RETURN_IF_ERROR(ReadSignal(v[j], fmt::format("{}[{}]", kp, j), &s));
              t.signals.push_back(std::move(s));
            }
            return Status::Ok();
          });
      if (!fields.ok()) return fields;
      if (t.topic.empty()) return Error(node[i], p, "missing key 'topic'");
      if (t.signals.empty()) return Error(node[i], p, "missing key 'signals'");
      if (!topics.insert(t.topic).second) {
        return Error(node[i], p + ".topic", fmt::format("topic \"{}\" listed twice", t.topic));
      }
      for (size_t j = 0; j < t.signals.size(); ++j) {
        const std::string sp = fmt::format("{}.signals[{}]", p, j);
        auto [it, fresh] = owner.emplace(t.signals[j].name, sp);
        if (!fresh) {
          return Error(signals_node[j], sp + ".name",
                       fmt::format("signal \"{}\" is already set by {}", t.signals[j].name,
                                   it->second));
        }
      }
      out->push_back(std::move(t));
    }
    return Status::Ok();
  }

  Status ReadMqttTls(const YAML::Node& node, std::string_view path,
                     std::optional<MqttTlsConfig>* out) const {
    if (node.IsNull()) return Status::Ok();
    MqttTlsConfig tls;
    VIGIL_RETURN_IF_ERROR(Fields(
        node, path, {"ca_file", "cert_file", "key_file"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "ca_file") return String(v, p, &tls.ca_file);
          if (k == "cert_file") return String(v, p, &tls.cert_file);
          return String(v, p, &tls.key_file);
        }));
    if (tls.ca_file.empty()) return Error(node, path, "missing key 'ca_file'");
    if (tls.cert_file.empty() != tls.key_file.empty()) {
      return Error(node, path,
                   "'cert_file' and 'key_file' go together (a client certificate needs its key)");
    }
    *out = std::move(tls);
    return Status::Ok();
  }

  Status ReadTelemetry(const YAML::Node& node, std::string_view path, TelemetryConfig* t) const {
    if (node.IsNull()) return Status::Ok();
    YAML::Mark max_mark = node.Mark();
    YAML::Mark password_mark = node.Mark();
    Status fields = Fields(
        node, path,
        {"broker", "client_id", "username", "password_file", "tls", "keepalive_s", "qos",
         "reconnect_min_s", "reconnect_max_s", "topics", "scoring"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "broker") return Address(v, p, &t->broker);
          if (k == "username") {
            VIGIL_RETURN_IF_ERROR(String(v, p, &t->username));
            if (t->username.size() > 256) return Expected(v, p, "a user name of at most 256 bytes");
            return Status::Ok();
          }
          if (k == "password_file") {
            password_mark = v.Mark();
            return String(v, p, &t->password_file);
          }
          if (k == "tls") return ReadMqttTls(v, p, &t->tls);
          if (k == "client_id") {
            VIGIL_RETURN_IF_ERROR(String(v, p, &t->client_id));
            if (t->client_id.size() > 128) {
              return Expected(v, p, "a client id of at most 128 bytes");
            }
            return Status::Ok();
          }
          if (k == "keepalive_s") return Uint(v, p, 5, 3600, &t->keepalive_s);
          if (k == "qos") return Uint(v, p, 0, 1, &t->qos);
          if (k == "reconnect_min_s") return Uint(v, p, 1, 3600, &t->reconnect_min_s);
          if (k == "reconnect_max_s") {
            max_mark = v.Mark();
            return Uint(v, p, 1, 3600, &t->reconnect_max_s);
          }
          if (k == "topics") return ReadTopics(v, p, &t->topics);
          if (v.IsNull()) return Status::Ok();
          return Fields(v, p, {"predictors", "autoencoder", "target_fpr"},
                        [&](const std::string& sk, const YAML::Node& sv,
                            const std::string& sp) -> Status {
                          if (sk == "predictors") return Bool(sv, sp, &t->scoring.predictors);
                          if (sk == "autoencoder") return Bool(sv, sp, &t->scoring.autoencoder);
                          return Number(sv, sp, 1e-6, 0.5, &t->scoring.target_fpr);
                        });
        });
    if (!fields.ok()) return fields;
    if (!t->password_file.empty() && t->username.empty()) {
      return Error(password_mark, std::string(path) + ".password_file",
                   "a password needs 'username' beside it");
    }
    if (t->reconnect_max_s < t->reconnect_min_s) {
      return Error(max_mark, std::string(path) + ".reconnect_max_s",
                   fmt::format("expected an integer >= {}.reconnect_min_s ({}), got {}", path,
                               t->reconnect_min_s, t->reconnect_max_s));
    }
    return Status::Ok();
  }

  Status ReadAsset(const YAML::Node& node, std::string_view path, AssetConfig* a) const {
    YAML::Mark min_mark = node.Mark();
    YAML::Mark max_mark = node.Mark();
    bool has_max = false;
    Status fields = Fields(
        node, path,
        {"name", "register", "address", "unit", "min", "max", "max_rate", "signal", "critical",
         "mode"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "name") return String(v, p, &a->name);
          if (k == "register") {
            size_t i = a->kind == RegisterKind::kCoil ? 0 : 1;
            VIGIL_RETURN_IF_ERROR(Choice(v, p, {"coil", "holding"}, &i));
            a->kind = i == 0 ? RegisterKind::kCoil : RegisterKind::kHolding;
            return Status::Ok();
          }
          if (k == "address") return Uint(v, p, 0, 65535, &a->address);
          if (k == "unit") return Uint(v, p, 0, 255, &a->unit);
          if (k == "min") {
            min_mark = v.Mark();
            return Number(v, p, 0, 65535, &a->min);
          }
          if (k == "max") {
            max_mark = v.Mark();
            has_max = !v.IsNull();
            return Number(v, p, 0, 65535, &a->max);
          }
          if (k == "max_rate") return Number(v, p, 0, 1e9, &a->max_rate);
          if (k == "signal") return String(v, p, &a->signal);
          if (k == "critical") return Bool(v, p, &a->critical);
          gateway::Mode m = gateway::Mode::kMonitor;
          VIGIL_RETURN_IF_ERROR(Mode(v, p, &m));
          if (!v.IsNull()) a->mode = m;
          return Status::Ok();
        });
    if (!fields.ok()) return fields;
    if (a->name.empty()) return Error(node, path, "missing key 'name'");
    if (a->kind == RegisterKind::kCoil) {
      if (!has_max) a->max = 1;
      if (a->max > 1) return Error(max_mark, std::string(path) + ".max", "a coil is 0 or 1");
    }
    if (a->min > a->max) {
      return Error(has_max ? max_mark : min_mark, fmt::format("{}.max", path),
                   fmt::format("expected a number >= {}.min ({}), got {}", path, a->min, a->max));
    }
    return Status::Ok();
  }

  Status ReadAssets(const YAML::Node& node, std::string_view path,
                    std::vector<AssetConfig>* out) const {
    if (node.IsNull()) return Status::Ok();
    if (!node.IsSequence()) return Expected(node, path, "a sequence of assets");
    std::set<std::string> names;
    std::set<std::tuple<int, int, int>> places;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string p = fmt::format("{}[{}]", path, i);
      AssetConfig a;
      VIGIL_RETURN_IF_ERROR(ReadAsset(node[i], p, &a));
      if (!names.insert(a.name).second) {
        return Error(node[i], p + ".name", fmt::format("asset \"{}\" named twice", a.name));
      }
      if (!places.insert({static_cast<int>(a.kind), a.address, a.unit}).second) {
        return Error(node[i], p + ".address",
                     fmt::format("{} {} (unit {}) belongs to another asset",
                                 RegisterKindName(a.kind), a.address, a.unit));
      }
      out->push_back(std::move(a));
    }
    return Status::Ok();
  }

  Status ReadRoot(const YAML::Node& root, GatewayConfig* c) const {
    if (root.IsNull()) return Status::Ok();
    YAML::Node assets_node;
    Status fields = Fields(
        root, "",
        {"mode", "host", "state_dir", "audit_dir", "sinks", "metrics", "modbus", "decision",
         "model", "telemetry", "policy", "assets"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) -> Status {
          if (k == "mode") return Mode(v, p, &c->mode);
          if (k == "host") return String(v, p, &c->host);
          if (k == "state_dir") return String(v, p, &c->state_dir);
          if (k == "audit_dir") return String(v, p, &c->audit_dir);
          if (k == "sinks") {
            if (v.IsSequence() && v.size() == 0) {
              c->sinks.clear();
              return Status::Ok();
            }
            VIGIL_RETURN_IF_ERROR(Strings(v, p, &c->sinks));
            for (size_t i = 0; i < c->sinks.size(); ++i) {
              const std::string& s = c->sinks[i];
              const auto with_value = [&](std::string_view prefix) {
                return s.rfind(prefix, 0) == 0 && s.size() > prefix.size();
              };
              if (s != "stdout" && s != "null" && !with_value("file:") && !with_value("hub:") &&
                  !with_value("nats:")) {
                return Expected(v[i], fmt::format("{}[{}]", p, i),
                                "stdout, null, file:PATH, hub:URL or nats:URL");
              }
            }
            return Status::Ok();
          }
          if (k == "metrics") {
            if (v.IsNull()) return Status::Ok();
            return Fields(v, p, {"enabled", "listen"},
                          [&](const std::string& mk, const YAML::Node& mv,
                              const std::string& mp) -> Status {
                            if (mk == "enabled") return Bool(mv, mp, &c->metrics_enabled);
                            return Address(mv, mp, &c->metrics_listen);
                          });
          }
          if (k == "modbus") return ReadModbus(v, p, &c->modbus);
          if (k == "decision") return ReadDecision(v, p, &c->decision);
          if (k == "model") return ReadModel(v, p, &c->model);
          if (k == "telemetry") return ReadTelemetry(v, p, &c->telemetry);
          if (k == "policy") return ReadPolicy(v, p, &c->policy);
          assets_node = v;
          return ReadAssets(v, p, &c->assets);
        });
    if (!fields.ok()) return fields;
    // Every model-checked asset names an actuator the model will learn (when the list is given).
    if (!c->model.actuators.empty() && assets_node.IsSequence()) {
      for (size_t i = 0; i < c->assets.size(); ++i) {
        const AssetConfig& a = c->assets[i];
        if (a.signal.empty()) continue;
        if (std::find(c->model.actuators.begin(), c->model.actuators.end(), a.signal) ==
            c->model.actuators.end()) {
          return Error(assets_node[i], fmt::format("assets[{}].signal", i),
                       fmt::format("\"{}\" is not in model.actuators", a.signal));
        }
      }
    }
    return Status::Ok();
  }

 private:
  std::string_view source_;
};

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

std::string_view ModeName(Mode m) { return m == Mode::kEnforce ? "enforce" : "monitor"; }

std::string_view RegisterKindName(RegisterKind k) {
  return k == RegisterKind::kCoil ? "coil" : "holding";
}

core::Result<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source) {
  const Reader reader(source);
  GatewayConfig c;
  c.source = std::string(source);
  try {
    // yaml-cpp 0.7's Load reads stray tokens it cannot start a document with as an empty
    // document instead of failing; the fuzz target holds such inputs. Load never loops.
    VIGIL_RETURN_IF_ERROR(reader.ReadRoot(YAML::Load(std::string(yaml)), &c));
  } catch (const YAML::Exception& e) {
    return reader.Error(e.mark, "", fmt::format("invalid YAML: {}", e.msg));
  } catch (const std::exception& e) {
    return core::InvalidArgument(
        core::FormatSourceError(source, 0, 0, "", fmt::format("cannot parse: {}", e.what())));
  }
  if (c.host.empty()) c.host = Hostname();
  if (c.audit_dir.empty()) c.audit_dir = c.state_dir + "/audit";
  if (c.telemetry.client_id.empty()) c.telemetry.client_id = "vigil-gateway-" + c.host;
  return c;
}

core::Result<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound(fmt::format("{}: cannot open gateway config", path));
  std::string text;
  char buf[64 * 1024];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > core::kMaxConfigBytes) {
      return core::InvalidArgument(
          fmt::format("{}: larger than {} bytes", path, core::kMaxConfigBytes));
    }
  }
  if (in.bad()) return core::IoError(fmt::format("{}: error reading gateway config", path));
  return ParseGatewayConfig(text, path);
}

}  // namespace vigil::gateway
