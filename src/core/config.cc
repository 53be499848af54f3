#include "core/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/files.h"

namespace vigil::core {
namespace {

constexpr std::string_view kDefaultsSource = "<defaults>";
constexpr size_t kMaxQuotedChars = 64;

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// Quotes a scalar for a diagnostic: printable ASCII as is, the rest escaped, long values cut.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  size_t shown = 0;
  for (char c : s) {
    if (shown++ == kMaxQuotedChars) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  out += '"';
  return out;
}

// What a node holds, for "got ..." in diagnostics. Never renders a collection (it may be huge
// or, through aliases, cyclic).
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string Join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

std::string Child(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

template <typename Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

// Walks the document against the schema. Each Read* leaves its target untouched when the value
// is null (an empty value means "use the default"). The walk is bounded by the schema, so
// aliases (even cyclic ones) cannot make it recurse without end.
class ConfigParser {
 public:
  explicit ConfigParser(std::string_view source) : source_(source) {}

  Status Error(const YAML::Mark& mark, std::string_view path, std::string_view message) const {
    const int line = mark.is_null() ? 0 : mark.line + 1;
    const int column = mark.is_null() ? 0 : mark.column + 1;
    return InvalidArgument(FormatSourceError(source_, line, column, path, message));
  }
  Status Error(const YAML::Node& node, std::string_view path, std::string_view message) const {
    return Error(node.Mark(), path, message);
  }

  // Calls `field(key, value, path)` for each entry of the mapping `node`, after checking that
  // the key is a known string given once.
  template <typename Fn>
  Status ForEachField(const YAML::Node& node, std::string_view path,
                      std::initializer_list<std::string_view> allowed, Fn&& field) const {
    if (!node.IsMap()) {
      return Error(node, path, fmt::format("expected a mapping, got {}", Describe(node)));
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : node) {
      const YAML::Node& key = kv.first;
      if (!key.IsScalar()) {
        return Error(key, path, fmt::format("expected a string key, got {}", Describe(key)));
      }
      const std::string& name = key.Scalar();
      const std::string child = Child(path, name);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string message = fmt::format("unknown key (expected one of: {})", Join(allowed));
        for (std::string_view candidate : allowed) {
          if (EditDistance(name, candidate) <= std::max<size_t>(1, candidate.size() / 4)) {
            message = fmt::format("unknown key; did you mean '{}'?", candidate);
            break;
          }
        }
        return Error(key, child, message);
      }
      if (!seen.insert(name).second) return Error(key, child, "key given more than once");
      VIGIL_RETURN_IF_ERROR(field(name, kv.second, child));
    }
    return Status::Ok();
  }

  Status ReadUint(const YAML::Node& v, std::string_view path, uint64_t min, uint64_t max,
                  uint64_t* out) const {
    if (v.IsNull()) return Status::Ok();
    std::string expected;
    if (max < std::numeric_limits<uint32_t>::max()) {
      expected = fmt::format("an integer in {}..{}", min, max);
    } else if (min == 0) {
      expected = "a non-negative integer";
    } else if (min == 1) {
      expected = "a positive integer";
    } else {
      expected = fmt::format("an integer >= {}", min);
    }
    if (!v.IsScalar()) {
      return Error(v, path, fmt::format("expected {}, got {}", expected, Describe(v)));
    }
    const std::string& s = v.Scalar();
    uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, 10);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      return Error(v, path, fmt::format("expected {}, got {}", expected, Quote(s)));
    }
    if (value < min || value > max) {
      return Error(v, path, fmt::format("expected {}, got {}", expected, s));
    }
    *out = value;
    return Status::Ok();
  }

  Status ReadUint32(const YAML::Node& v, std::string_view path, uint32_t min, uint32_t max,
                    uint32_t* out) const {
    uint64_t wide = *out;
    VIGIL_RETURN_IF_ERROR(ReadUint(v, path, min, max, &wide));
    *out = static_cast<uint32_t>(wide);
    return Status::Ok();
  }

  Status ReadBool(const YAML::Node& v, std::string_view path, bool* out) const {
    if (v.IsNull()) return Status::Ok();
    if (v.IsScalar()) {
      const std::string& s = v.Scalar();
      for (std::string_view t : {"true", "True", "TRUE", "yes", "Yes", "on", "On"}) {
        if (s == t) {
          *out = true;
          return Status::Ok();
        }
      }
      for (std::string_view f : {"false", "False", "FALSE", "no", "No", "off", "Off"}) {
        if (s == f) {
          *out = false;
          return Status::Ok();
        }
      }
    }
    return Error(v, path, fmt::format("expected true or false, got {}", Describe(v)));
  }

  Status ReadString(const YAML::Node& v, std::string_view path, std::string* out) const {
    if (v.IsNull()) return Status::Ok();
    if (!v.IsScalar() || v.Scalar().empty()) {
      return Error(v, path, fmt::format("expected a non-empty string, got {}", Describe(v)));
    }
    if (v.Scalar().find('\0') != std::string::npos) {
      return Error(v, path, "string contains a NUL byte");
    }
    *out = v.Scalar();
    return Status::Ok();
  }

  Status ReadFraction(const YAML::Node& v, std::string_view path, double* out) const {
    if (v.IsNull()) return Status::Ok();
    constexpr std::string_view kExpected = "expected a number between 0 and 1 (exclusive)";
    if (!v.IsScalar()) return Error(v, path, fmt::format("{}, got {}", kExpected, Describe(v)));
    const std::string& s = v.Scalar();
    double value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value) ||
        value <= 0 || value >= 1) {
      return Error(v, path, fmt::format("{}, got {}", kExpected, Quote(s)));
    }
    *out = value;
    return Status::Ok();
  }

  template <typename Enum>
  Status ReadEnum(const YAML::Node& v, std::string_view path,
                  std::initializer_list<EnumName<Enum>> names, Enum* out) const {
    if (v.IsNull()) return Status::Ok();
    if (v.IsScalar()) {
      for (const auto& n : names) {
        if (v.Scalar() == n.name) {
          *out = n.value;
          return Status::Ok();
        }
      }
    }
    std::string choices;
    for (const auto& n : names) {
      if (!choices.empty()) choices += ", ";
      choices += n.name;
    }
    return Error(v, path, fmt::format("expected one of {}, got {}", choices, Describe(v)));
  }

  Status ReadLog(const YAML::Node& node, std::string_view path, LogConfig* log) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(node, path, {"level", "format"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "level") {
                            return ReadEnum<LogLevel>(v, p,
                                                      {{"trace", LogLevel::kTrace},
                                                       {"debug", LogLevel::kDebug},
                                                       {"info", LogLevel::kInfo},
                                                       {"warn", LogLevel::kWarn},
                                                       {"error", LogLevel::kError},
                                                       {"off", LogLevel::kOff}},
                                                      &log->level);
                          }
                          return ReadEnum<LogFormat>(
                              v, p, {{"text", LogFormat::kText}, {"json", LogFormat::kJson}},
                              &log->format);
                        });
  }

  Status ReadMetrics(const YAML::Node& node, std::string_view path, MetricsConfig* m) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(
        node, path, {"enabled", "listen"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) -> Status {
          if (key == "enabled") return ReadBool(v, p, &m->enabled);
          std::string text;
          VIGIL_RETURN_IF_ERROR(ReadString(v, p, &text));
          if (text.empty()) return Status::Ok();
          Result<HostPort> hp = ParseHostPort(text);
          if (!hp.has_value()) return Error(v, p, hp.error().message());
          m->listen = std::move(hp).value();
          return Status::Ok();
        });
  }

  Status ReadQueue(const YAML::Node& node, std::string_view path, QueueConfig* q) const {
    if (node.IsNull()) return Status::Ok();
    constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
    return ForEachField(node, path, {"capacity", "backpressure", "sample_every"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "capacity") return ReadUint32(v, p, 1, kMax, &q->capacity);
                          if (key == "sample_every")
                            return ReadUint32(v, p, 1, kMax, &q->sample_every);
                          return ReadEnum<Backpressure>(v, p,
                                                        {{"block", Backpressure::kBlock},
                                                         {"drop-newest", Backpressure::kDropNewest},
                                                         {"drop-oldest", Backpressure::kDropOldest},
                                                         {"sample", Backpressure::kSample}},
                                                        &q->backpressure);
                        });
  }

  Status ReadFsync(const YAML::Node& v, std::string_view path, FsyncPolicy* out) const {
    return ReadEnum<FsyncPolicy>(v, path,
                                 {{"always", FsyncPolicy::kAlways},
                                  {"batch", FsyncPolicy::kBatch},
                                  {"never", FsyncPolicy::kNever}},
                                 out);
  }

  Status ReadSpool(const YAML::Node& node, std::string_view path, SpoolConfig* s) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(node, path, {"enabled", "dir", "fsync", "segment_bytes"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "enabled") return ReadBool(v, p, &s->enabled);
                          if (key == "dir") return ReadString(v, p, &s->dir);
                          if (key == "segment_bytes") {
                            return ReadUint(v, p, 4096, std::numeric_limits<uint64_t>::max(),
                                            &s->segment_bytes);
                          }
                          return ReadFsync(v, p, &s->fsync);
                        });
  }

  Status ReadPipeline(const YAML::Node& node, std::string_view path, PipelineConfig* pl) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(node, path, {"queue", "spool", "workers"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "queue") return ReadQueue(v, p, &pl->queue);
                          if (key == "spool") return ReadSpool(v, p, &pl->spool);
                          return ReadUint32(v, p, 1, 64, &pl->workers);
                        });
  }

  Status ReadHubUrl(const YAML::Node& v, std::string_view path, std::string* url) const {
    VIGIL_RETURN_IF_ERROR(ReadString(v, path, url));
    bool https = false;
    if (!url->empty() && !IsHttpBaseUrl(*url, &https) && !IsGrpcsUrl(*url)) {
      return Error(v, path,
                   fmt::format("expected http://HOST:PORT, https://HOST:PORT or grpcs://HOST:PORT "
                               "(no path), got {}",
                               Quote(*url)));
    }
    return Status::Ok();
  }

  Status ReadHubSink(const YAML::Node& node, std::string_view path, HubSinkConfig* hub) const {
    VIGIL_RETURN_IF_ERROR(ForEachField(
        node, path,
        {"type", "url", "token_file", "ca", "cert", "key", "spool", "spool_sync", "drain",
         "all_verdicts", "group", "heartbeat", "policy_file", "model_file",
         "enforce_requires_hub", "renew_at", "renew"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) -> Status {
          if (key == "url") return ReadHubUrl(v, p, &hub->url);
          if (key == "group") {
            if (Status read = ReadString(v, p, &hub->group); !read.ok()) return read;
            const bool ok = !hub->group.empty() && hub->group.size() <= 64 &&
                            hub->group.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                                std::string::npos;
            if (!ok) return Error(v, p, "expected 1..64 characters of [A-Za-z0-9._-]");
            return Status::Ok();
          }
          if (key == "heartbeat") {
            if (Status read = ReadSeconds(v, p, &hub->heartbeat_seconds); !read.ok()) {
              return read;
            }
            if (hub->heartbeat_seconds < 1 || hub->heartbeat_seconds > 3600) {
              return Error(v, p, "expected a period from 1s to 1h");
            }
            return Status::Ok();
          }
          if (key == "policy_file") return ReadString(v, p, &hub->policy_file);
          if (key == "model_file") return ReadString(v, p, &hub->model_file);
          if (key == "enforce_requires_hub") return ReadBool(v, p, &hub->enforce_requires_hub);
          if (key == "renew_at") return ReadFraction(v, p, &hub->renew_at);
          if (key == "renew") return ReadBool(v, p, &hub->renew);
          if (key == "token_file") return ReadString(v, p, &hub->token_file);
          if (key == "ca") return ReadString(v, p, &hub->ca);
          if (key == "cert") return ReadString(v, p, &hub->cert);
          if (key == "key") return ReadString(v, p, &hub->key);
          if (key == "spool") return ReadString(v, p, &hub->spool);
          if (key == "drain") return ReadSeconds(v, p, &hub->drain_seconds);
          if (key == "all_verdicts") return ReadBool(v, p, &hub->all_verdicts);
          if (key == "spool_sync") return ReadFsync(v, p, &hub->spool_sync);
          return Status::Ok();  // type, read by ReadSink
        }));
    if (hub->url.empty()) return Error(node, path, "a hub sink needs a 'url'");
    if (IsGrpcsUrl(hub->url)) {
      if (hub->cert.empty() || hub->key.empty() || hub->ca.empty()) {
        return Error(node, path,
                     "a grpcs:// hub sink needs 'cert', 'key' and 'ca' (agent.pem, agent.key and "
                     "ca.pem from vigil agent enrol)");
      }
      if (!hub->token_file.empty()) {
        return Error(node["token_file"], Child(path, "token_file"),
                     "a grpcs:// hub sink authenticates with its certificate, not a token");
      }
      return Status::Ok();
    }
    for (const char* key : {"cert", "key", "renew_at", "renew"}) {
      if (node[key]) {
        return Error(node[key], Child(path, key),
                     fmt::format("a client certificate (and its renewal) is for a grpcs:// hub; "
                                 "the url is {}",
                                 Quote(hub->url)));
      }
    }
    if (hub->token_file.empty()) {
      return Error(node, path, "a hub sink needs a 'token_file' (an agent token for this host)");
    }
    bool https = false;
    if (!hub->ca.empty() && IsHttpBaseUrl(hub->url, &https) && !https) {
      return Error(node["ca"], Child(path, "ca"),
                   fmt::format("a CA file is for an https URL; the url is {}", Quote(hub->url)));
    }
    return Status::Ok();
  }

  Status ReadNatsSink(const YAML::Node& node, std::string_view path, NatsSinkConfig* n) const {
    auto checked = [&](const YAML::Node& v, const std::string& p, std::string* out,
                       bool (*valid)(std::string_view), const char* want) -> Status {
      VIGIL_RETURN_IF_ERROR(ReadString(v, p, out));
      if (!valid(*out)) return Error(v, p, fmt::format("expected {}, got {}", want, Quote(*out)));
      return Status::Ok();
    };
    VIGIL_RETURN_IF_ERROR(ForEachField(
        node, path,
        {"type", "url", "stream", "subject_prefix", "token_file", "creds", "spool", "spool_sync",
         "drain", "all_verdicts", "audit_key_hub"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) -> Status {
          if (key == "url") {
            return checked(v, p, &n->url, IsNatsUrl,
                           "nats://HOST:PORT or tls://HOST:PORT (one server, no path)");
          }
          if (key == "stream") {
            return checked(v, p, &n->stream, IsNatsName, "1..64 characters of [A-Za-z0-9_-]");
          }
          if (key == "subject_prefix") {
            return checked(v, p, &n->subject_prefix, IsNatsSubjectPrefix,
                           "dot-separated tokens of [A-Za-z0-9_-] (no wildcards)");
          }
          if (key == "token_file") return ReadString(v, p, &n->token_file);
          if (key == "creds") return ReadString(v, p, &n->creds);
          if (key == "spool") return ReadString(v, p, &n->spool);
          if (key == "drain") return ReadSeconds(v, p, &n->drain_seconds);
          if (key == "all_verdicts") return ReadBool(v, p, &n->all_verdicts);
          if (key == "spool_sync") return ReadFsync(v, p, &n->spool_sync);
          if (key == "audit_key_hub") return ReadHubUrl(v, p, &n->audit_key_hub);
          return Status::Ok();  // type, read by ReadSink
        }));
    if (n->url.empty()) return Error(node, path, "a nats sink needs a 'url'");
    if (!n->token_file.empty() && !n->creds.empty()) {
      return Error(node, path, "a nats sink takes a 'token_file' or 'creds', not both");
    }
    return Status::Ok();
  }

  Status ReadSink(const YAML::Node& node, std::string_view path, SinkConfig* sink) const {
    if (!node.IsMap()) {
      return Error(node, path,
                   fmt::format("expected a mapping with a 'type', got {}", Describe(node)));
    }
    // The type decides which other keys are allowed, so it is read first. yaml-cpp cannot tell
    // `type: null` from `type:`; both mean the null sink.
    const YAML::Node type = node["type"];
    if (!type.IsDefined()) {
      return Error(node, path, "missing key 'type' (stdout, file, null, hub or nats)");
    }
    if (type.IsNull()) {
      sink->type = SinkType::kNull;
    } else {
      VIGIL_RETURN_IF_ERROR(ReadEnum<SinkType>(type, Child(path, "type"),
                                               {{"stdout", SinkType::kStdout},
                                                {"file", SinkType::kFile},
                                                {"null", SinkType::kNull},
                                                {"hub", SinkType::kHub},
                                                {"nats", SinkType::kNats}},
                                               &sink->type));
    }
    if (sink->type == SinkType::kHub) return ReadHubSink(node, path, &sink->hub);
    if (sink->type == SinkType::kNats) return ReadNatsSink(node, path, &sink->nats);
    if (sink->type != SinkType::kFile) {
      return ForEachField(
          node, path, {"type"},
          [](const std::string&, const YAML::Node&, const std::string&) { return Status::Ok(); });
    }
    VIGIL_RETURN_IF_ERROR(ForEachField(
        node, path, {"type", "path", "rotate_bytes", "keep"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "path") return ReadString(v, p, &sink->path);
          if (key == "rotate_bytes") {
            return ReadUint(v, p, 1, std::numeric_limits<uint64_t>::max(), &sink->rotate_bytes);
          }
          if (key == "keep") {
            return ReadUint32(v, p, 0, std::numeric_limits<uint32_t>::max(), &sink->keep);
          }
          return Status::Ok();  // type, read above
        }));
    if (sink->path.empty()) return Error(node, path, "a file sink needs a 'path'");
    return Status::Ok();
  }

  Status ReadSinks(const YAML::Node& node, std::string_view path,
                   std::vector<SinkConfig>* sinks) const {
    if (node.IsNull()) return Status::Ok();
    if (!node.IsSequence()) {
      return Error(node, path, fmt::format("expected a sequence of sinks, got {}", Describe(node)));
    }
    sinks->clear();
    bool have_hub = false, have_nats = false;
    for (size_t i = 0; i < node.size(); ++i) {
      SinkConfig sink;
      const std::string p = fmt::format("{}[{}]", path, i);
      VIGIL_RETURN_IF_ERROR(ReadSink(node[i], p, &sink));
      if (sink.type == SinkType::kHub) {
        if (have_hub) return Error(node[i], p, "only one hub sink is allowed");
        have_hub = true;
      }
      if (sink.type == SinkType::kNats) {
        if (have_nats) return Error(node[i], p, "only one nats sink is allowed");
        have_nats = true;
      }
      sinks->push_back(std::move(sink));
    }
    return Status::Ok();
  }

  Status ReadChoice(const YAML::Node& v, std::string_view path,
                    std::initializer_list<std::string_view> allowed, std::string* out) const {
    std::string s = *out;
    VIGIL_RETURN_IF_ERROR(ReadString(v, path, &s));
    for (std::string_view a : allowed) {
      if (s == a) {
        *out = s;
        return Status::Ok();
      }
    }
    return Error(v, path, fmt::format("expected one of {}, got \"{}\"", fmt::join(allowed, ", "), s));
  }

  Status ReadPolicy(const YAML::Node& node, std::string_view path, PolicyConfig* pc) const {
    if (node.IsNull()) return Status::Ok();
    auto str = [&](const YAML::Node& v, const std::string& p, std::string* o) {
      return ReadString(v, p, o);
    };
    return ForEachField(
        node, path, {"enabled", "files", "mode", "stage", "asset_class", "enforcement_queue"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "enabled") return ReadBool(v, p, &pc->enabled);
          if (key == "enforcement_queue") {
            return ReadUint32(v, p, 1, kMaxEnforcementQueue, &pc->enforcement_queue);
          }
          if (key == "files") return ReadList(v, p, &pc->files, str);
          if (key == "mode") return ReadChoice(v, p, {"monitor", "enforce"}, &pc->mode);
          if (key == "stage") {
            return ReadChoice(v, p, {"monitor", "enforce-non-critical", "enforce-all"},
                              &pc->stage);
          }
          return ReadChoice(v, p, {"critical", "standard", "non-critical"}, &pc->asset_class);
        });
  }

  Status ReadModel(const YAML::Node& node, std::string_view path, ModelConfig* m) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(node, path, {"path", "target_fpr"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "path") return ReadString(v, p, &m->path);
                          return ReadFraction(v, p, &m->target_fpr);
                        });
  }

  // A sequence of scalars read by `one` (an empty value keeps the default list).
  template <typename T, typename Fn>
  Status ReadList(const YAML::Node& node, std::string_view path, std::vector<T>* out,
                  Fn&& one) const {
    if (node.IsNull()) return Status::Ok();
    if (!node.IsSequence()) {
      return Error(node, path, fmt::format("expected a sequence, got {}", Describe(node)));
    }
    out->clear();
    for (size_t i = 0; i < node.size(); ++i) {
      T value{};
      VIGIL_RETURN_IF_ERROR(one(node[i], fmt::format("{}[{}]", path, i), &value));
      out->push_back(std::move(value));
    }
    return Status::Ok();
  }

  // "300", "300s", "5m", "2h": a duration in whole seconds.
  Status ReadSeconds(const YAML::Node& v, std::string_view path, uint64_t* out) const {
    if (v.IsNull()) return Status::Ok();
    constexpr std::string_view kExpected = "expected a duration like 90s, 5m or 2h";
    if (!v.IsScalar()) return Error(v, path, fmt::format("{}, got {}", kExpected, Describe(v)));
    auto parsed = ParseDurationSeconds(v.Scalar());
    if (!parsed.has_value()) {
      return Error(v, path, fmt::format("{}, got {}", kExpected, Quote(v.Scalar())));
    }
    *out = *parsed;
    return Status::Ok();
  }

  Status ReadStreamMode(const YAML::Node& v, std::string_view path, SyscallStreamMode* out) const {
    if (v.IsNull()) return Status::Ok();
    if (v.IsScalar() && v.Scalar() == "budget") {
      *out = SyscallStreamMode::kBudget;
      return Status::Ok();
    }
    bool on = false;
    if (!ReadBool(v, path, &on).ok()) {
      return Error(v, path, fmt::format("expected true, false or budget, got {}", Describe(v)));
    }
    *out = on ? SyscallStreamMode::kOn : SyscallStreamMode::kOff;
    return Status::Ok();
  }

  Status ReadFilters(const YAML::Node& node, std::string_view path, AgentFilterConfig* f) const {
    if (node.IsNull()) return Status::Ok();
    auto str = [&](const YAML::Node& v, const std::string& p, std::string* o) {
      VIGIL_RETURN_IF_ERROR(ReadString(v, p, o));
      if (o->size() > 15) return Error(v, p, "a comm is at most 15 bytes (TASK_COMM_LEN - 1)");
      return Status::Ok();
    };
    auto u32 = [&](const YAML::Node& v, const std::string& p, uint32_t* o) {
      return ReadUint32(v, p, 0, std::numeric_limits<uint32_t>::max(), o);
    };
    auto u64 = [&](const YAML::Node& v, const std::string& p, uint64_t* o) {
      return ReadUint(v, p, 1, std::numeric_limits<uint64_t>::max(), o);
    };
    return ForEachField(
        node, path,
        {"exclude_comms", "include_comms", "exclude_uids", "include_uids", "exclude_cgroups",
         "include_cgroups"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "exclude_comms") return ReadList(v, p, &f->exclude_comms, str);
          if (key == "include_comms") return ReadList(v, p, &f->include_comms, str);
          if (key == "exclude_uids") return ReadList(v, p, &f->exclude_uids, u32);
          if (key == "include_uids") return ReadList(v, p, &f->include_uids, u32);
          if (key == "exclude_cgroups") return ReadList(v, p, &f->exclude_cgroups, u64);
          return ReadList(v, p, &f->include_cgroups, u64);
        });
  }

  Status ReadAgentGate(const YAML::Node& node, std::string_view path, AgentGateConfig* g) const {
    if (node.IsNull()) return Status::Ok();
    auto absolute = [&](const YAML::Node& v, const std::string& p, std::string* o) {
      VIGIL_RETURN_IF_ERROR(ReadString(v, p, o));
      if (o->empty() || (*o)[0] != '/') return Error(v, p, "expected an absolute path");
      return Status::Ok();
    };
    return ForEachField(
        node, path, {"watch", "open", "mode", "deadline", "fallback", "policy", "model",
               "realtime_priority"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "watch") return ReadList(v, p, &g->watch, absolute);
          if (key == "open") return ReadBool(v, p, &g->open);
          if (key == "mode") {
            VIGIL_RETURN_IF_ERROR(ReadString(v, p, &g->mode));
            if (g->mode != "monitor" && g->mode != "enforce") {
              return Error(v, p, fmt::format("expected monitor or enforce, got {}", Quote(g->mode)));
            }
            return Status::Ok();
          }
          if (key == "deadline") {
            std::string text;
            VIGIL_RETURN_IF_ERROR(ReadString(v, p, &text));
            auto ns = ParseGateDeadline(text);
            if (!ns.has_value()) return Error(v, p, ns.error().message());
            g->deadline_ns = *ns;
            return Status::Ok();
          }
          if (key == "fallback") {
            return ReadEnum<bool>(v, p, {{"allow", false}, {"deny", true}}, &g->fallback_deny);
          }
          if (key == "model") return absolute(v, p, &g->model);
          if (key == "realtime_priority") return ReadUint32(v, p, 0, 99, &g->realtime_priority);
          return ReadList(v, p, &g->policy, absolute);
        });
  }

  Status ReadAgent(const YAML::Node& node, std::string_view path, AgentConfig* a) const {
    if (node.IsNull()) return Status::Ok();
    auto event = [&](const YAML::Node& v, const std::string& p, std::string* o) {
      VIGIL_RETURN_IF_ERROR(ReadString(v, p, o));
      for (std::string_view known : {"exec", "fork", "exit", "execve", "open", "file_mod", "net",
                                     "cred", "ptrace", "mount"}) {
        if (*o == known) return Status::Ok();
      }
      return Error(v, p,
                   fmt::format("unknown event {} (exec, fork, exit, execve, open, file_mod, net, "
                               "cred, ptrace, mount)",
                               Quote(*o)));
    };
    return ForEachField(
        node, path,
        {"learn", "window", "min_program_windows", "syscall_stream", "syscall_stream_budget",
         "events", "write_events", "ring_buffer_bytes", "mount_tracefs", "baseline", "filters",
         "gate"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "learn") return ReadSeconds(v, p, &a->learn_seconds);
          if (key == "window") return ReadUint32(v, p, 10, 100000, &a->window);
          if (key == "min_program_windows") {
            return ReadUint32(v, p, 2, 1000000, &a->min_program_windows);
          }
          if (key == "syscall_stream") return ReadStreamMode(v, p, &a->syscall_stream);
          if (key == "syscall_stream_budget") {
            return ReadFraction(v, p, &a->syscall_stream_budget);
          }
          if (key == "events") return ReadList(v, p, &a->events, event);
          if (key == "write_events") return ReadBool(v, p, &a->write_events);
          if (key == "mount_tracefs") return ReadBool(v, p, &a->mount_tracefs);
          if (key == "ring_buffer_bytes") {
            VIGIL_RETURN_IF_ERROR(ReadUint(v, p, 4096, uint64_t{1} << 32, &a->ring_buffer_bytes));
            if ((a->ring_buffer_bytes & (a->ring_buffer_bytes - 1)) != 0) {
              return Error(v, p, "expected a power of two");
            }
            return Status::Ok();
          }
          if (key == "baseline") return ReadString(v, p, &a->baseline);
          if (key == "gate") return ReadAgentGate(v, p, &a->gate);
          return ReadFilters(v, p, &a->filters);
        });
  }

  Status ReadAttestation(const YAML::Node& node, std::string_view path,
                         AttestationConfig* a) const {
    if (node.IsNull()) return Status::Ok();
    return ForEachField(node, path, {"tcti", "pcr", "events", "require"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "tcti") return ReadString(v, p, &a->tcti);
                          if (key == "events") return ReadString(v, p, &a->events);
                          if (key == "require") return ReadBool(v, p, &a->require);
                          VIGIL_RETURN_IF_ERROR(ReadUint32(v, p, 16, 23, &a->pcr));
                          if (a->pcr != 16 && a->pcr != 23) {
                            return Error(v, p, "expected 16 or 23 (the PCRs resettable from "
                                               "locality 0)");
                          }
                          return Status::Ok();
                        });
  }

  Status ReadRoot(const YAML::Node& root, VigilConfig* c) const {
    if (root.IsNull()) return Status::Ok();
    if (!root.IsMap()) {
      return Error(root, "",
                   fmt::format("expected a mapping at the top level, got {}", Describe(root)));
    }
    return ForEachField(root, "",
                        {"host", "state_dir", "log", "metrics", "pipeline", "sinks", "model",
                         "agent", "policy", "mode", "trusted_keys", "attestation"},
                        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
                          if (key == "host") return ReadString(v, p, &c->host);
                          if (key == "mode") {
                            return ReadEnum<AgentMode>(
                                v, p, {{"monitor", AgentMode::kMonitor},
                                       {"enforce", AgentMode::kEnforce}},
                                &c->mode);
                          }
                          if (key == "trusted_keys") {
                            return ReadList(v, p, &c->trusted_keys,
                                            [&](const YAML::Node& x, const std::string& q,
                                                std::string* o) { return ReadString(x, q, o); });
                          }
                          if (key == "attestation") {
                            return ReadAttestation(v, p, &c->attestation);
                          }
                          if (key == "state_dir") return ReadString(v, p, &c->state_dir);
                          if (key == "log") return ReadLog(v, p, &c->log);
                          if (key == "metrics") return ReadMetrics(v, p, &c->metrics);
                          if (key == "pipeline") return ReadPipeline(v, p, &c->pipeline);
                          if (key == "sinks") return ReadSinks(v, p, &c->sinks);
                          if (key == "agent") return ReadAgent(v, p, &c->agent);
                          if (key == "policy") return ReadPolicy(v, p, &c->policy);
                          return ReadModel(v, p, &c->model);
                        });
  }

 private:
  std::string_view source_;
};

// Records where each document starts, nothing else.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Checks that `text` holds at most one document. yaml-cpp 0.7 cannot be trusted to do it:
// YAML::LoadAll() loops forever on a stray token it cannot start a document with (a leading
// ',', found by fuzzing), and YAML::Load() silently reads such input as an empty document. A
// document that starts where the previous one did is that stuck token. Throws what yaml-cpp
// throws.
Status CheckSingleDocument(const ConfigParser& parser, const std::string& text) {
  std::istringstream in(text);
  YAML::Parser yaml(in);
  DocumentCounter counter;
  for (int i = 0; i < 3 && yaml.HandleNextDocument(counter); ++i) {
    const std::vector<YAML::Mark>& starts = counter.starts;
    if (starts.size() >= 2 && starts.back().pos == starts[starts.size() - 2].pos) {
      const YAML::Mark& at = starts.back();
      const std::string token =
          at.pos >= 0 && static_cast<size_t>(at.pos) < text.size()
              ? fmt::format(" {}", Quote(std::string_view(text).substr(at.pos, 1)))
              : "";
      return parser.Error(at, "", fmt::format("invalid YAML: unexpected token{}", token));
    }
  }
  if (counter.starts.size() > 1) {
    return parser.Error(counter.starts[1], "", "expected one YAML document, found more");
  }
  return Status::Ok();
}

// A config before the derived defaults are filled in.
VigilConfig BaseConfig() {
  VigilConfig c;
  c.sinks.push_back(SinkConfig{});
  return c;
}

void FillDerivedDefaults(VigilConfig* c) {
  if (c->host.empty()) c->host = Hostname();
  if (c->pipeline.spool.dir.empty()) c->pipeline.spool.dir = c->state_dir + "/spool";
  if (c->model.path.empty()) c->model.path = c->state_dir + "/models/adfa.vgm";
  if (c->agent.baseline.empty()) c->agent.baseline = c->state_dir + "/models/baseline.vgm";
  if (c->attestation.events.empty()) {
    c->attestation.events = c->state_dir + "/attest/events.json";
  }
  if (c->trusted_keys.empty()) c->trusted_keys.push_back(c->state_dir + "/keys/vigil.pub");
}

}  // namespace

std::string_view AgentModeName(AgentMode m) {
  return m == AgentMode::kEnforce ? "enforce" : "monitor";
}

std::string_view BackpressureName(Backpressure b) {
  switch (b) {
    case Backpressure::kBlock:
      return "block";
    case Backpressure::kDropNewest:
      return "drop-newest";
    case Backpressure::kDropOldest:
      return "drop-oldest";
    case Backpressure::kSample:
      return "sample";
  }
  return "unknown";
}

std::string_view FsyncPolicyName(FsyncPolicy f) {
  switch (f) {
    case FsyncPolicy::kAlways:
      return "always";
    case FsyncPolicy::kBatch:
      return "batch";
    case FsyncPolicy::kNever:
      return "never";
  }
  return "unknown";
}

std::string_view SinkTypeName(SinkType t) {
  switch (t) {
    case SinkType::kStdout:
      return "stdout";
    case SinkType::kFile:
      return "file";
    case SinkType::kNull:
      return "null";
    case SinkType::kHub:
      return "hub";
    case SinkType::kNats:
      return "nats";
  }
  return "unknown";
}

namespace {
// 1..300 bytes of what a URL's HOST[:PORT] may hold: letters, digits and ".-:[]_".
bool IsHostPortText(std::string_view text) {
  if (text.empty() || text.size() > 300) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
  });
}
}  // namespace

bool IsHttpBaseUrl(std::string_view url, bool* https) {
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    *https = false;
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    *https = true;
    rest = url.substr(8);
  } else {
    return false;
  }
  return IsHostPortText(rest);
}

bool IsGrpcsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "grpcs://";
  return url.substr(0, kScheme.size()) == kScheme && IsHostPortText(url.substr(kScheme.size()));
}

namespace {
bool NatsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}
}  // namespace

bool IsNatsName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), NatsNameChar);
}

bool IsNatsSubjectPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 128) return false;
  size_t start = 0;
  for (;;) {
    const size_t dot = prefix.find('.', start);
    const std::string_view token =
        prefix.substr(start, dot == std::string_view::npos ? prefix.npos : dot - start);
    if (token.empty() || !std::all_of(token.begin(), token.end(), NatsNameChar)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsNatsUrl(std::string_view url) {
  std::string_view rest;
  if (url.substr(0, 7) == "nats://") {
    rest = url.substr(7);
  } else if (url.substr(0, 6) == "tls://") {
    rest = url.substr(6);
  } else {
    return false;
  }
  if (!IsHostPortText(rest)) return false;
  const size_t colon = rest.rfind(':');
  if (rest.front() == '[' || colon == std::string_view::npos) return rest.front() != ':';
  const std::string_view port = rest.substr(colon + 1);
  uint32_t p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p, 10);
  return colon > 0 && ec == std::errc() && end == port.data() + port.size() && p >= 1 &&
         p <= 65535;
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<int64_t> ParseGateDeadline(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "us") scale = 1'000;
  if (unit == "ms") scale = 1'000'000;
  if (unit == "s") scale = 1'000'000'000;
  if (digits == 0 || digits > 6 || scale == 0) {
    return InvalidArgument(fmt::format(
        "expected a whole number with us, ms or s (e.g. 5ms), got {}", Quote(text)));
  }
  int64_t n = 0;
  for (size_t i = 0; i < digits; ++i) n = n * 10 + (text[i] - '0');
  const int64_t ns = n * scale;
  if (ns < 100'000 || ns > 10'000'000'000) {
    return InvalidArgument(fmt::format("must be between 100us and 10s, got {}", Quote(text)));
  }
  return ns;
}

Result<uint64_t> ParseDurationSeconds(std::string_view text) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (text.empty() || ec != std::errc()) {
    return InvalidArgument(fmt::format("\"{}\": expected a duration like 90s, 5m or 2h", text));
  }
  const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  uint64_t mult = 0;
  if (unit.empty() || unit == "s") mult = 1;
  if (unit == "m") mult = 60;
  if (unit == "h") mult = 3600;
  if (unit == "d") mult = 86400;
  if (mult == 0 || value > std::numeric_limits<uint64_t>::max() / 86400) {
    return InvalidArgument(fmt::format("\"{}\": expected a duration like 90s, 5m or 2h", text));
  }
  return value * mult;
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return InvalidArgument(fmt::format("expected host:port, got {}", Quote(text)));
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') {
      return InvalidArgument(fmt::format("unbalanced brackets in {}", Quote(text)));
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return InvalidArgument(
        fmt::format("IPv6 hosts must be in brackets ([::1]:9464), got {}", Quote(text)));
  }
  if (host.empty()) return InvalidArgument(fmt::format("empty host in {}", Quote(text)));
  if (host.find_first_of(" \t\r\n/[]") != std::string_view::npos) {
    return InvalidArgument(fmt::format("invalid host in {}", Quote(text)));
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value, 10);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return InvalidArgument(
        fmt::format("port must be an integer in 0..65535, got {} in {}", Quote(port), Quote(text)));
  }
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

std::string FormatSourceError(std::string_view source, int line, int column,
                              std::string_view key_path, std::string_view message) {
  std::string out(source);
  if (line > 0) {
    out += fmt::format(":{}", line);
    if (column > 0) out += fmt::format(":{}", column);
  }
  if (!out.empty()) out += ": ";
  if (!key_path.empty()) {
    out += key_path;
    out += ": ";
  }
  out += message;
  return out;
}

VigilConfig DefaultConfig() {
  VigilConfig c = BaseConfig();
  c.source = std::string(kDefaultsSource);
  FillDerivedDefaults(&c);
  return c;
}

Result<VigilConfig> ParseConfig(std::string_view yaml_text, std::string_view source_name) {
  const ConfigParser parser(source_name);
  VigilConfig config = BaseConfig();
  config.source = std::string(source_name);
  try {
    const std::string text(yaml_text);
    VIGIL_RETURN_IF_ERROR(CheckSingleDocument(parser, text));
    VIGIL_RETURN_IF_ERROR(parser.ReadRoot(YAML::Load(text), &config));
  } catch (const YAML::Exception& e) {
    return parser.Error(e.mark, "", fmt::format("invalid YAML: {}", e.msg));
  } catch (const std::exception& e) {
    return InvalidArgument(
        FormatSourceError(source_name, 0, 0, "", fmt::format("cannot parse: {}", e.what())));
  }
  FillDerivedDefaults(&config);
  return config;
}

Result<VigilConfig> LoadConfig(const std::string& path) {
  auto text = ReadFile(path, kMaxConfigBytes);
  if (!text.has_value()) {
    if (text.error().code() == StatusCode::kNotFound && path == kDefaultConfigPath) {
      return DefaultConfig();
    }
    return text.error().WithContext("config file");
  }
  return ParseConfig(*text, path);
}

}  // namespace vigil::core
