#include "audit/payloads.h"

#include "audit/internal/files.h"
#include "audit/internal/format.h"
#include "core/files.h"

namespace vigil::audit {

nlohmann::json VerdictPayload(const core::Verdict& v) {
  nlohmann::json explanation = nlohmann::json::array();
  for (const core::Evidence& e : v.explanation) {
    explanation.push_back({{"what", e.what}, {"weight", e.weight}});
  }
  return {{"score", v.score},
          {"anomalous", v.anomalous},
          {"model", {{"name", v.model_name}, {"version", v.model_version}}},
          {"subject", v.subject},
          {"pid", v.pid},
          {"uid", v.uid},
          {"host", v.host},
          {"stream", v.stream},
          {"events", v.events},
          {"time_ns", v.time_ns},
          {"explanation", std::move(explanation)}};
}

nlohmann::json DecisionPayload(const core::Decision& d, std::string_view mode) {
  return {{"action", core::ActionName(d.action)},
          {"enforced", d.enforced},
          {"mode", mode},
          {"rule", d.rule},
          {"reason", d.reason},
          {"verdict", VerdictPayload(d.verdict)}};
}

nlohmann::json ModelChangePayload(std::string_view action, std::string_view path,
                                  std::string_view name, std::string_view version,
                                  std::string_view sha256, std::string_view reason) {
  nlohmann::json j = {
      {"action", action}, {"path", path}, {"name", name}, {"version", version}};
  if (!sha256.empty()) j["sha256"] = sha256;
  if (!reason.empty()) j["reason"] = reason;
  return j;
}

nlohmann::json ModeChangePayload(std::string_view from, std::string_view to,
                                 std::string_view reason) {
  return {{"from", from}, {"to", to}, {"reason", reason}};
}

core::Result<std::string> FileSha256(const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(std::string bytes, core::ReadFile(path, uint64_t{1} << 32));
  return Sha256Hex(bytes);
}

std::string Sha256Hex(std::string_view bytes) { return internal::Hex(internal::Sha256(bytes)); }

}  // namespace vigil::audit
