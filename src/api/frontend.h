#pragma once

// What every request goes through before a service sees it, whichever transport carried it:
// authentication and scope (auth.h), the caller's rate limit and the in-flight bound
// (limits.h), readiness, then validation (codec.h). Counts every outcome:
//   vigil_api_requests_total{api, outcome}   outcome: ok, invalid, unauthenticated, forbidden,
//                                            rate_limited, overloaded, not_ready, error
//   vigil_api_request_seconds{api}           admitted requests, admission to answer
//   vigil_api_in_flight                      requests being served
//   vigil_api_fallbacks_total{api}, vigil_api_cache_hits_total, vigil_api_scores_total and
//   vigil_api_cache_hit_ratio               from the answers' flags
//   vigil_api_bearer_tokens_total{check}    bearer tokens checked: check="verified" (in full),
//                                            "cached" (remembered by the Authenticator)

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/auth.h"
#include "api/limits.h"
#include "api/orders.h"
#include "api/service.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

namespace vigil::api {

enum class Api : uint8_t { kScore, kScoreBatch, kDecide, kEnforce, kRollback, kWatch, kAck };
inline constexpr size_t kApiCount = 7;
std::string_view ApiName(Api api);  // "score", "score_batch", ...
uint32_t ApiScope(Api api);

// Why a request was turned away before it reached any service code.
enum class Refusal : uint8_t {
  kNone,
  kUnauthenticated,  // HTTP 401, gRPC UNAUTHENTICATED
  kForbidden,        // HTTP 403, gRPC PERMISSION_DENIED
  kRateLimited,      // HTTP 429, gRPC RESOURCE_EXHAUSTED
  kOverloaded,       // HTTP 503, gRPC UNAVAILABLE: too many requests in flight
  kNotReady,         // HTTP 503, gRPC UNAVAILABLE: models or policies not loaded yet
};

struct FrontendOptions {
  RateLimit rate;
  uint32_t max_in_flight = 256;
  uint32_t default_deadline_ms = 50;
};

class Frontend {
 public:
  // All references must outlive the frontend. Metric registration errors are returned by Init.
  Frontend(FrontendOptions options, const Authenticator& auth, DecisionService& service,
           OrderBook& orders, core::Registry& registry, const core::Clock& clock);

  ~Frontend();
  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;

  core::Status Init();

  struct Admission {
    Refusal refusal = Refusal::kNone;
    std::string reason;
    CallContext ctx;
    InFlight::Ticket ticket;
  };
  // `transport_deadline_ns`: the transport's own remaining time (gRPC deadline), 0 when none.
  Admission Admit(Api api, std::string_view authorization, std::string_view peer_cn,
                  int64_t transport_deadline_ns);

  // The operations, for admitted requests. Each validates, then serves; the deadline of the
  // context is narrowed by the request's own deadline_ms.
  core::Result<v1::ScoreResponse> Score(const v1::ScoreRequest& r, Admission& a);
  core::Result<v1::ScoreBatchResponse> ScoreBatch(const v1::ScoreBatchRequest& r, Admission& a);
  core::Result<v1::DecideResponse> Decide(const v1::DecideRequest& r, Admission& a);
  core::Result<v1::OrderStatus> Enforce(const v1::EnforceRequest& r, Admission& a);
  core::Result<v1::OrderStatus> Rollback(const v1::RollbackRequest& r, Admission& a);
  core::Result<v1::OrderStatus> Acknowledge(const v1::Ack& r, Admission& a);
  // Watch is validated here and streamed by the transport with orders().
  core::Status StartWatch(const v1::WatchRequest& r, Admission& a);

  OrderBook& orders() { return orders_; }
  DecisionService& service() { return service_; }
  const core::Clock& clock() const { return clock_; }
  uint64_t refused(Refusal r) const;

 private:
  template <typename Resp, typename Fn>
  core::Result<Resp> Serve(Api api, Admission& a, const core::Status& valid, uint32_t deadline_ms,
                           Fn&& fn);
  void CountScore(const v1::Score& s);
  void Count(Api api, std::string_view outcome);

  const FrontendOptions options_;
  const Authenticator& auth_;
  DecisionService& service_;
  OrderBook& orders_;
  core::Registry& registry_;
  const core::Clock& clock_;
  RateLimiter limiter_;
  InFlight in_flight_;
  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
};

// HTTP status for a refusal or a core status code.
int HttpStatusOf(Refusal r);
int HttpStatusOf(core::StatusCode c);
// "UNAUTHENTICATED", "RESOURCE_EXHAUSTED", ... (gRPC's code names, used in both transports).
std::string_view RefusalCodeName(Refusal r);

}  // namespace vigil::api
