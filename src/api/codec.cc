#include "api/codec.h"

#include <google/protobuf/util/json_util.h>

#include <array>
#include <cmath>

#include "core/event.h"

namespace vigil::api {
namespace {

core::Status Bad(std::string m) { return core::InvalidArgument(std::move(m)); }

core::Status CheckString(std::string_view field, const std::string& value) {
  if (value.size() > kMaxStringBytes) {
    return Bad(std::string(field) + ": longer than " + std::to_string(kMaxStringBytes) +
               " bytes");
  }
  return {};
}

core::Status CheckDeadline(std::string_view field, uint32_t ms) {
  if (ms > kMaxDeadlineMs) {
    return Bad(std::string(field) + ": " + std::to_string(ms) + " ms is over the limit of " +
               std::to_string(kMaxDeadlineMs) + " ms");
  }
  return {};
}

core::Status CheckArch(std::string_view field, const std::string& arch) {
  if (arch.empty() || arch == "x86_64" || arch == "i386") return {};
  return Bad(std::string(field) + ": unknown arch \"" + arch.substr(0, 64) +
             "\" (expected x86_64, i386 or empty)");
}

}  // namespace

core::Status ParseJson(std::string_view json, google::protobuf::Message* out) {
  out->Clear();
  if (json.size() <= kMaxBodyBytes && ParseScoreJsonFast(json, out)) return {};
  return ParseJsonGeneric(json, out);  // clears what the fast reader left
}

core::Status ParseJsonGeneric(std::string_view json, google::protobuf::Message* out) {
  out->Clear();
  if (json.size() > kMaxBodyBytes) {
    return Bad("request body: " + std::to_string(json.size()) + " bytes is over the limit of " +
               std::to_string(kMaxBodyBytes));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), out, options);
  if (!status.ok()) {
    out->Clear();
    return Bad("request body: " + std::string(status.message()));
  }
  return {};
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  if (ToScoreJsonFast(message, &out)) return out;
  return ToJsonGeneric(message);
}

std::string ToJsonGeneric(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  // Printing a well-formed message cannot fail; a failure would leave `out` empty.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

core::Status CheckSchemaVersion(std::string_view version) {
  if (version == kSchemaVersion) return {};
  if (version.empty()) {
    return Bad("schema_version: missing (this server speaks " + std::string(kSchemaVersion) + ")");
  }
  return Bad("schema_version: \"" + std::string(version.substr(0, 64)) +
             "\" is not supported (this server speaks " + std::string(kSchemaVersion) + ")");
}

core::Status ValidateScoreRequest(const v1::ScoreRequest& r, bool nested) {
  if (!nested || !r.schema_version().empty()) {
    if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  }
  if (auto s = CheckString("subject", r.subject()); !s.ok()) return s;
  if (auto s = CheckArch("arch", r.arch()); !s.ok()) return s;
  if (r.syscalls_size() > kMaxSyscalls) {
    return Bad("syscalls: " + std::to_string(r.syscalls_size()) + " calls is over the limit of " +
               std::to_string(kMaxSyscalls));
  }
  for (int i = 0; i < r.syscalls_size(); ++i) {
    if (r.syscalls(i) < 0 || r.syscalls(i) > 4095) {
      return Bad("syscalls[" + std::to_string(i) + "]: " + std::to_string(r.syscalls(i)) +
                 " is not a system-call number (0..4095)");
    }
  }
  if (r.values_size() > kMaxValues) {
    return Bad("values: " + std::to_string(r.values_size()) + " values is over the limit of " +
               std::to_string(kMaxValues));
  }
  for (int i = 0; i < r.values_size(); ++i) {
    if (!std::isfinite(r.values(i))) {
      return Bad("values[" + std::to_string(i) + "]: not a finite number");
    }
  }
  if (r.syscalls_size() == 0 && r.values_size() == 0) {
    return Bad("syscalls, values: nothing to score (give a window of syscalls or a vector)");
  }
  return CheckDeadline("deadline_ms", r.deadline_ms());
}

core::Status ValidateScoreBatchRequest(const v1::ScoreBatchRequest& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (r.items_size() == 0) return Bad("items: empty batch");
  if (r.items_size() > kMaxBatchItems) {
    return Bad("items: " + std::to_string(r.items_size()) + " items is over the limit of " +
               std::to_string(kMaxBatchItems));
  }
  for (int i = 0; i < r.items_size(); ++i) {
    if (auto s = ValidateScoreRequest(r.items(i), /*nested=*/true); !s.ok()) {
      return s.WithContext("items[" + std::to_string(i) + "]");
    }
  }
  return CheckDeadline("deadline_ms", r.deadline_ms());
}

core::Status ValidateDecideRequest(const v1::DecideRequest& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (!r.has_event()) return Bad("event: missing");
  const v1::Event& e = r.event();
  core::EventKind kind;
  if (!core::ParseEventKind(e.kind(), &kind)) {
    return Bad("event.kind: unknown kind \"" + e.kind().substr(0, 64) + "\"");
  }
  for (const auto& [name, value] :
       std::array<std::pair<std::string_view, const std::string*>, 8>{{
           {"event.host", &e.host()}, {"event.comm", &e.comm()}, {"event.exe", &e.exe()},
           {"event.path", &e.path()}, {"event.daddr", &e.daddr()},
           {"event.user_name", &e.user_name()}, {"event.asset_class", &e.asset_class()},
           {"event.arch", &e.arch()}}}) {
    if (auto s = CheckString(name, *value); !s.ok()) return s;
  }
  if (auto s = CheckArch("event.arch", e.arch()); !s.ok()) return s;
  if (e.dport() > 65535) return Bad("event.dport: " + std::to_string(e.dport()) + " > 65535");
  if (e.argv_size() > 256) return Bad("event.argv: more than 256 arguments");
  for (int i = 0; i < e.argv_size(); ++i) {
    if (auto s = CheckString("event.argv[" + std::to_string(i) + "]", e.argv(i)); !s.ok()) {
      return s;
    }
  }
  if (r.has_features()) {
    if (auto s = ValidateScoreRequest(r.features(), /*nested=*/true); !s.ok()) {
      return s.WithContext("features");
    }
  }
  if (r.has_score()) {
    const double v = r.score().score();
    if (!(v >= 0.0 && v <= 1.0)) return Bad("score.score: not in [0, 1]");
  }
  return CheckDeadline("deadline_ms", r.deadline_ms());
}

bool IsEnforcementAction(std::string_view action) {
  return action == "kill" || action == "freeze" || action == "deny" || action == "block-network";
}

core::Status ValidateEnforceRequest(const v1::EnforceRequest& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (r.host().empty()) return Bad("host: missing");
  if (auto s = CheckString("host", r.host()); !s.ok()) return s;
  if (auto s = CheckString("path", r.path()); !s.ok()) return s;
  if (auto s = CheckString("reason", r.reason()); !s.ok()) return s;
  if (!IsEnforcementAction(r.action())) {
    return Bad("action: \"" + r.action().substr(0, 64) +
               "\" is not an enforcement action (kill, freeze, deny, block-network)");
  }
  if (r.pid() == 0 && r.path().empty()) return Bad("pid, path: the order names no target");
  return CheckDeadline("wait_ms", r.wait_ms());
}

core::Status ValidateRollbackRequest(const v1::RollbackRequest& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (r.order_id().empty()) return Bad("order_id: missing");
  if (auto s = CheckString("order_id", r.order_id()); !s.ok()) return s;
  if (auto s = CheckString("reason", r.reason()); !s.ok()) return s;
  return CheckDeadline("wait_ms", r.wait_ms());
}

core::Status ValidateWatchRequest(const v1::WatchRequest& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (r.host().empty()) return Bad("host: missing");
  return CheckString("host", r.host());
}

core::Status ValidateAck(const v1::Ack& r) {
  if (auto s = CheckSchemaVersion(r.schema_version()); !s.ok()) return s;
  if (r.order_id().empty()) return Bad("order_id: missing");
  if (auto s = CheckString("order_id", r.order_id()); !s.ok()) return s;
  return CheckString("detail", r.detail());
}

}  // namespace vigil::api
