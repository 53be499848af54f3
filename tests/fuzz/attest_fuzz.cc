// libFuzzer target for the attestation inputs: event lists, allowlists and quote documents (and,
// through VerifyQuote, the TPM structures and attestation key inside a quote). A parsed event
// list must re-encode and parse back to the same events; errors must carry a message; nothing
// may crash, hang or throw. Seeds: tests/fuzz/corpus/attest/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "govern/attest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vigil::govern;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto events = ParseEventList(text, "fuzz.json");
  if (events.has_value()) {
    auto again = ParseEventList(EncodeEventList(*events), "re.json");
    if (!again.has_value() || again->size() != events->size()) __builtin_trap();
    for (size_t i = 0; i < events->size(); ++i) {
      if ((*again)[i].digest != (*events)[i].digest || (*again)[i].name != (*events)[i].name ||
          (*again)[i].pcr != (*events)[i].pcr) {
        __builtin_trap();
      }
    }
    (void)ReplayEvents(*events);
  } else if (events.error().message().empty()) {
    __builtin_trap();
  }
  auto allow = ParseAllowlist(text, "fuzz.txt");
  if (!allow.has_value() && allow.error().message().empty()) __builtin_trap();
  auto q = ParseQuoteDocument(text, "fuzz.json");
  if (q.has_value()) {
    QuoteCheckOptions o;
    o.nonce = q->nonce;
    auto check = VerifyQuote(*q, o);
    if (!check.has_value() && check.error().message().empty()) __builtin_trap();
    if (check.has_value() && !check->ok() && check->detail.empty()) __builtin_trap();
  } else if (q.error().message().empty()) {
    __builtin_trap();
  }
  return 0;
}
