#include "hub/triage_note.h"

#include <nlohmann/json.hpp>

namespace vigil::hub {
namespace {

using nlohmann::json;

core::Status Unusable(const std::string& source, const std::string& why) {
  return core::InvalidArgument(source + ": " + why);
}

}  // namespace

core::Result<TriageInForceNote> ParseTriageInForceNote(std::string_view bytes,
                                                       const std::string& source) {
  if (bytes.size() > (1 << 16)) return Unusable(source, "larger than 65536 bytes");
  const json o = json::parse(bytes, nullptr, false);
  if (o.is_discarded() || !o.is_object()) return Unusable(source, "not a JSON object");
  TriageInForceNote n;
  if (auto v = o.find("format_version"); v == o.end()) {
    n.unversioned = true;
  } else if (!v->is_number_integer()) {
    return Unusable(source, "format_version: expected an integer");
  } else if (v->get<int64_t>() != kTriageNoteVersion) {
    return core::FailedPrecondition(
        source + ": format_version " + std::to_string(v->get<int64_t>()) +
        " is not one this hub reads (" + std::to_string(kTriageNoteVersion) +
        "); was it written by a newer hub?");
  }
  auto text = [&](const char* key, bool required, std::string* out) -> core::Status {
    auto it = o.find(key);
    if (it == o.end()) {
      return required ? Unusable(source, std::string(key) + ": missing") : core::Status();
    }
    if (!it->is_string()) return Unusable(source, std::string(key) + ": expected a string");
    *out = it->get<std::string>();
    return {};
  };
  VIGIL_RETURN_IF_ERROR(text("path", true, &n.path));
  VIGIL_RETURN_IF_ERROR(text("sha256", true, &n.sha256));
  VIGIL_RETURN_IF_ERROR(text("config_model", true, &n.config_model));
  VIGIL_RETURN_IF_ERROR(text("by", false, &n.by));
  if (n.path.empty()) return Unusable(source, "path: empty");
  if (auto t = o.find("activated_ms"); t != o.end()) {
    if (!t->is_number_integer()) return Unusable(source, "activated_ms: expected an integer");
    n.activated_ms = t->get<int64_t>();
  }
  return n;
}

std::string TriageInForceNoteBytes(const TriageInForceNote& note) {
  return json{{"format_version", kTriageNoteVersion},
              {"path", note.path},
              {"sha256", note.sha256},
              {"config_model", note.config_model},
              {"activated_ms", note.activated_ms},
              {"by", note.by}}
             .dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n";
}

}  // namespace vigil::hub
