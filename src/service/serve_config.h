#pragma once

// `vigil serve --config FILE`: the decision service's configuration (YAML). The full schema
// with defaults is in docs/api.md. Unknown keys are errors; every error names the file, the
// line and column and the key path, e.g.
//   serve.yaml:4:12: limits.max_in_flight: expected an integer in 1..1000000, got "x"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/auth.h"
#include "api/frontend.h"
#include "api/grpc_api.h"
#include "api/http_api.h"
#include "core/status.h"

namespace vigil::service {

// How the decision service drives its inference engine (model/inference_engine.h).
struct ScoringConfig {
  uint32_t batch_max = 32;  // requests the engine scores in one micro-batch
  // How long a batch waits for more after its first request. 0: the worker takes whatever is
  // queued when it gets to it (batches still form under load); docs/benchmarks.md has 0 vs 50.
  uint32_t batch_delay_us = 0;
  // Score on the request's own thread (no hand-off to the engine's worker) while the model is
  // fast: its recent time per item (InferenceEngine::RecentModelNanos), times the items, times
  // 4 fits in what is left of the budget. Otherwise (and with false, always) items go to the
  // engine's queue and the worker's micro-batches, where a caller waits at most its budget
  // whatever the model does. docs/api.md, "Load and faults".
  bool inline_when_fast = true;
  uint32_t queue = 1024;            // scoring requests waiting for the engine; beyond: fallback
  uint32_t cache_capacity = 65536;  // verdicts kept (0: no cache)
  uint32_t cache_ttl_s = 60;
  double fallback_score = 1.0;  // the verdict given when the model is late or overloaded
  bool fallback_anomalous = true;
};

struct ServeConfig {
  std::optional<api::HttpApiOptions> http;
  std::optional<api::GrpcApiOptions> grpc;
  api::AuthConfig auth;
  api::FrontendOptions frontend;
  ScoringConfig scoring;
  std::string model;               // model file (required)
  std::vector<std::string> rules;  // rules files, loaded in order (required)
  std::string policy_version;      // "": derived from the rules files' SHA-256
  std::string public_key;          // minisign public key: model and rules must carry
                                   // <file>.minisig signatures by it ("": not checked)
};

// Parses `text`; `source` names it in errors. Relative paths are resolved against `base_dir`.
core::Result<ServeConfig> ParseServeConfig(std::string_view text, std::string_view source,
                                           const std::string& base_dir);
core::Result<ServeConfig> LoadServeConfig(const std::string& path);

// The shared HS256 key in `path` (trailing line ends dropped); kInvalidArgument when it holds
// fewer than 32 bytes, core::ReadFile's errors otherwise, each naming the path.
core::Result<std::string> ReadJwtKeyFile(const std::string& path);

}  // namespace vigil::service
