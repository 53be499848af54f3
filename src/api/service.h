#pragma once

// The decision service's contract with its transports: what answers Inference.* and
// Policy.Decide. The transports (http_api.h, grpc_api.h) authenticate, rate-limit and validate
// a request before it gets here (frontend.h); an implementation (src/service) scores with the
// loaded model and decides with the loaded rules.

#include <cstddef>
#include <cstdint>
#include <string>

#include "api/auth.h"
#include "core/status.h"
#include "vigil/v1/api.pb.h"

namespace vigil::api {

struct CallContext {
  Principal principal;
  // How long the caller waits for the answer, from when the request was admitted: the request's
  // deadline_ms, the transport's deadline, or the server's default, whichever is shortest.
  int64_t budget_ns = 0;
  int64_t admitted_mono_ns = 0;  // core::Clock monotonic time of admission
};

class DecisionService {
 public:
  virtual ~DecisionService() = default;
  // Requests are validated (codec.h). Every answer carries the score(s), the model and policy
  // versions, the explanation and the cached/fallback flags; a model that is late gives the
  // configured fallback verdict marked as such, not an error. Errors are for requests the
  // loaded model cannot score at all (e.g. a feature vector for a sequence model).
  virtual core::Result<v1::ScoreResponse> Score(const v1::ScoreRequest& r,
                                                const CallContext& ctx) = 0;
  virtual core::Result<v1::ScoreBatchResponse> ScoreBatch(const v1::ScoreBatchRequest& r,
                                                          const CallContext& ctx) = 0;
  virtual core::Result<v1::DecideResponse> Decide(const v1::DecideRequest& r,
                                                  const CallContext& ctx) = 0;
  // Whether scoring `items` items with `budget_ns` left would run on the calling thread with no
  // wait for another (a fast model scored inline). A hint for a transport that serves short
  // calls on its polling thread (grpc_api.h): the answer may still wait if the model turns slow
  // in between, at most the budget. Thread-safe. The default sends every score elsewhere.
  virtual bool ScoresInline(size_t items, int64_t budget_ns) const {
    (void)items;
    (void)budget_ns;
    return false;
  }
  // True once models and policies are loaded (and verified, where configured); otherwise `why`
  // says what is missing. Thread-safe.
  virtual bool Ready(std::string* why) const = 0;
};

}  // namespace vigil::api
