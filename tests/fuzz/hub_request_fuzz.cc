// libFuzzer target for the hub's parsers of outside input (src/hub/requests.h and config.h):
// the first byte picks the parser (ingest batch, one finding line, escalation, decision,
// adjudication, config file); any bytes must give a value or an error that says what was wrong,
// and an accepted ingest message must hold only valid ids and findings within the limits.
// Seeds: tests/fuzz/corpus/hub/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hub/config.h"
#include "hub/requests.h"

namespace {

template <typename T>
void Check(const vigil::core::Result<T>& r) {
  if (!r.has_value() && r.error().message().empty()) __builtin_trap();
}

void CheckFinding(const vigil::hub::Finding& f) {
  if (f.score && !(*f.score >= 0 && *f.score <= 1)) __builtin_trap();
  if (f.explanation.size() > vigil::hub::kMaxExplanation) __builtin_trap();
  for (const auto& e : f.explanation) {
    if (!std::isfinite(e.weight)) __builtin_trap();
  }
  if (f.raw.empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto m = vigil::hub::ParseIngestRequest(input);
      Check(m);
      if (m.has_value()) {
        if (!vigil::hub::ValidHostId(m->host) || !vigil::hub::ValidMessageId(m->message_id) ||
            m->findings.size() > vigil::hub::kMaxFindingsPerMessage) {
          __builtin_trap();
        }
        for (const auto& f : m->findings) CheckFinding(f);
      }
      break;
    }
    case 1: {
      auto f = vigil::hub::ParseFindingJson(input);
      Check(f);
      if (f.has_value()) CheckFinding(*f);
      break;
    }
    case 2: {
      auto e = vigil::hub::ParseEscalationRequest(input);
      Check(e);
      if (e.has_value() && (e->action.empty() || e->timeout_s > 86400)) __builtin_trap();
      break;
    }
    case 3:
      Check(vigil::hub::ParseDecisionRequest(input));
      break;
    case 4:
      Check(vigil::hub::ParseAdjudicationRequest(input));
      break;
    default: {
      auto c = vigil::hub::ParseHubConfig(input, "fuzz.yaml", "/base");
      Check(c);
      if (c.has_value() && c->server.escalation_timeout_s > c->server.max_escalation_timeout_s) {
        __builtin_trap();
      }
      break;
    }
  }
  return 0;
}
