// libFuzzer target for minisign key and signature files (outside input: `vigil model verify
// --key`, FILE.minisig, key folders). The same bytes are parsed as a public key, a secret key and
// a signature; whatever parses is re-encoded and must parse back to the same values, and a
// parsed signature is verified against a parsed public key. Errors must carry a message; nothing
// may crash, hang or throw. Seeds: tests/fuzz/corpus/minisign/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "govern/minisign.h"

namespace {

using namespace vigil::govern;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto pub = ParsePublicKey(text, "fuzz.pub");
  if (pub.has_value()) {
    auto again = ParsePublicKey(EncodePublicKey(*pub), "re.pub");
    Check(again.has_value() && again->key == pub->key && again->key_id == pub->key_id);
  } else {
    Check(!pub.error().message().empty());
  }
  auto sec = ParseSecretKey(text, "fuzz.key");
  if (sec.has_value()) {
    auto again = ParseSecretKey(EncodeSecretKey(*sec), "re.key");
    Check(again.has_value() && again->key == sec->key);
  } else {
    Check(!sec.error().message().empty());
  }
  auto sig = ParseSignature(text, "fuzz.minisig");
  if (sig.has_value()) {
    auto again = ParseSignature(EncodeSignature(*sig), "re.minisig");
    Check(again.has_value() && again->signature == sig->signature &&
          again->trusted_comment == sig->trusted_comment);
    PublicKey key;
    key.key_id = sig->key_id;
    const Verification v = Verify(key, *sig, text);
    Check(v.outcome != VerifyOutcome::kValid || v.reason.empty());
  } else {
    Check(!sig.error().message().empty());
  }
  return 0;
}
