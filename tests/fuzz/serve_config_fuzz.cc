// libFuzzer target for the `vigil serve` config parser (service/serve_config.h): any bytes yield
// a config or an error that names the input, never a crash, hang or exception; a config it
// accepts holds what `vigil serve` relies on. Seeds: tests/fuzz/corpus/serve_config/.
//
// Relative paths resolve against a folder that does not exist. A config may name an HS256 key
// file by an absolute path, which the parser then reads (bounded, core::ReadFile); stdin is
// /dev/null so that a generated "/dev/stdin" ends at once.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "service/serve_config.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (std::freopen("/dev/null", "r", stdin) == nullptr) __builtin_trap();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = vigil::service::ParseServeConfig(text, "fuzz.yaml", "/nonexistent-vigil-fuzz");
  if (!c.has_value()) {
    if (c.error().message().rfind("fuzz.yaml", 0) != 0) __builtin_trap();
    return 0;
  }
  if (!c->http && !c->grpc) __builtin_trap();
  if (c->model.empty() || c->rules.empty()) __builtin_trap();
  if (!(c->scoring.fallback_score >= 0 && c->scoring.fallback_score <= 1)) __builtin_trap();
  if (c->scoring.batch_max < 1 || c->frontend.max_in_flight < 1) __builtin_trap();
  if (!c->auth.jwt.hs256_key.empty() &&
      (c->auth.jwt.hs256_key.size() < 32 || c->auth.jwt.issuer.empty() ||
       c->auth.jwt.audience.empty())) {
    __builtin_trap();
  }
  return 0;
}
