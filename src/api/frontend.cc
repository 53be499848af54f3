#include "api/frontend.h"

#include <algorithm>
#include <map>
#include <memory>

#include "api/codec.h"

namespace vigil::api {
namespace {

constexpr std::array<std::string_view, kApiCount> kApiNames = {
    "score", "score_batch", "decide", "enforce", "rollback", "watch", "ack"};
constexpr std::array<std::string_view, 8> kOutcomes = {
    "ok", "invalid", "unauthenticated", "forbidden", "rate_limited", "overloaded", "not_ready",
    "error"};

std::string_view RefusalOutcome(Refusal r) {
  switch (r) {
    case Refusal::kUnauthenticated: return "unauthenticated";
    case Refusal::kForbidden: return "forbidden";
    case Refusal::kRateLimited: return "rate_limited";
    case Refusal::kOverloaded: return "overloaded";
    case Refusal::kNotReady: return "not_ready";
    case Refusal::kNone: break;
  }
  return "ok";
}

}  // namespace

std::string_view ApiName(Api api) { return kApiNames[static_cast<size_t>(api)]; }

uint32_t ApiScope(Api api) {
  switch (api) {
    case Api::kScore:
    case Api::kScoreBatch: return kScopeScore;
    case Api::kDecide: return kScopeDecide;
    case Api::kEnforce:
    case Api::kRollback: return kScopeEnforce;
    case Api::kWatch:
    case Api::kAck: return kScopeAgent;
  }
  return ~0u;
}

int HttpStatusOf(Refusal r) {
  switch (r) {
    case Refusal::kUnauthenticated: return 401;
    case Refusal::kForbidden: return 403;
    case Refusal::kRateLimited: return 429;
    case Refusal::kOverloaded:
    case Refusal::kNotReady: return 503;
    case Refusal::kNone: break;
  }
  return 200;
}

int HttpStatusOf(core::StatusCode c) {
  switch (c) {
    case core::StatusCode::kOk: return 200;
    case core::StatusCode::kInvalidArgument:
    case core::StatusCode::kOutOfRange: return 400;
    case core::StatusCode::kNotFound: return 404;
    case core::StatusCode::kAlreadyExists:
    case core::StatusCode::kFailedPrecondition: return 409;
    case core::StatusCode::kPermissionDenied: return 403;
    case core::StatusCode::kResourceExhausted: return 429;
    case core::StatusCode::kDeadlineExceeded: return 504;
    case core::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

std::string_view RefusalCodeName(Refusal r) {
  switch (r) {
    case Refusal::kUnauthenticated: return "UNAUTHENTICATED";
    case Refusal::kForbidden: return "PERMISSION_DENIED";
    case Refusal::kRateLimited: return "RESOURCE_EXHAUSTED";
    case Refusal::kOverloaded:
    case Refusal::kNotReady: return "UNAVAILABLE";
    case Refusal::kNone: break;
  }
  return "OK";
}

struct Frontend::Metrics {
  std::array<std::array<core::Counter*, kOutcomes.size()>, kApiCount> requests{};
  std::array<core::Histogram*, kApiCount> latency{};
  std::array<core::Counter*, kApiCount> fallbacks{};
  core::Counter* scores = nullptr;
  core::Counter* cache_hits = nullptr;
  core::Registry::CallbackHandle in_flight, hit_ratio, tokens_verified, tokens_cached;
  std::array<std::atomic<uint64_t>, 6> refused{};
};

Frontend::Frontend(FrontendOptions options, const Authenticator& auth, DecisionService& service,
                   OrderBook& orders, core::Registry& registry, const core::Clock& clock)
    : options_(options),
      auth_(auth),
      service_(service),
      orders_(orders),
      registry_(registry),
      clock_(clock),
      limiter_(options.rate),
      in_flight_(std::max<uint32_t>(1, options.max_in_flight)),
      metrics_(std::make_unique<Metrics>()) {}

Frontend::~Frontend() = default;

core::Status Frontend::Init() {
  Metrics& m = *metrics_;
  for (size_t a = 0; a < kApiCount; ++a) {
    const std::string api(kApiNames[a]);
    for (size_t o = 0; o < kOutcomes.size(); ++o) {
      auto c = registry_.GetCounter("vigil_api_requests_total",
                                    "Decision-service requests by API and outcome.",
                                    {{"api", api}, {"outcome", std::string(kOutcomes[o])}});
      if (!c.has_value()) return c.error();
      m.requests[a][o] = *c;
    }
    auto h = registry_.GetHistogram("vigil_api_request_seconds",
                                    "Admitted requests: admission to answer, seconds.",
                                    {{"api", api}});
    if (!h.has_value()) return h.error();
    m.latency[a] = *h;
    auto f = registry_.GetCounter("vigil_api_fallbacks_total",
                                  "Scores answered with the configured fallback verdict.",
                                  {{"api", api}});
    if (!f.has_value()) return f.error();
    m.fallbacks[a] = *f;
  }
  auto scores = registry_.GetCounter("vigil_api_scores_total", "Scores returned by the API.");
  auto hits = registry_.GetCounter("vigil_api_cache_hits_total",
                                   "Scores returned from the verdict cache.");
  if (!scores.has_value()) return scores.error();
  if (!hits.has_value()) return hits.error();
  m.scores = *scores;
  m.cache_hits = *hits;
  auto inf = registry_.AddCallbackGauge("vigil_api_in_flight", "Requests being served.", {},
                                        [this] { return double(in_flight_.count()); });
  if (!inf.has_value()) return inf.error();
  m.in_flight = std::move(*inf);
  auto ratio = registry_.AddCallbackGauge(
      "vigil_api_cache_hit_ratio", "Share of scores answered from the verdict cache.", {},
      [&m] {
        const double n = double(m.scores->Value());
        return n == 0 ? 0.0 : double(m.cache_hits->Value()) / n;
      });
  if (!ratio.has_value()) return ratio.error();
  m.hit_ratio = std::move(*ratio);
  constexpr std::string_view kTokensHelp = "Bearer tokens checked, in full or remembered.";
  auto verified = registry_.AddCallbackCounter(
      "vigil_api_bearer_tokens_total", kTokensHelp, {{"check", "verified"}},
      [this] { return double(auth_.token_verifications()); });
  if (!verified.has_value()) return verified.error();
  m.tokens_verified = std::move(*verified);
  auto cached = registry_.AddCallbackCounter("vigil_api_bearer_tokens_total", kTokensHelp,
                                             {{"check", "cached"}},
                                             [this] { return double(auth_.token_cache_hits()); });
  if (!cached.has_value()) return cached.error();
  m.tokens_cached = std::move(*cached);
  return {};
}

void Frontend::Count(Api api, std::string_view outcome) {
  for (size_t o = 0; o < kOutcomes.size(); ++o) {
    if (kOutcomes[o] == outcome) metrics_->requests[static_cast<size_t>(api)][o]->Inc();
  }
}

uint64_t Frontend::refused(Refusal r) const {
  return metrics_->refused[static_cast<size_t>(r)].load(std::memory_order_relaxed);
}

Frontend::Admission Frontend::Admit(Api api, std::string_view authorization,
                                    std::string_view peer_cn, int64_t transport_deadline_ns) {
  Admission a;
  auto refuse = [&](Refusal r, std::string reason) {
    a.refusal = r;
    a.reason = std::move(reason);
    metrics_->refused[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
    Count(api, RefusalOutcome(r));
    return std::move(a);
  };
  const int64_t now_unix = clock_.NowUnixNanos() / 1'000'000'000;
  AuthResult auth = auth_.Authenticate(authorization, peer_cn, ApiScope(api), now_unix);
  if (auth.outcome == AuthOutcome::kUnauthenticated) {
    return refuse(Refusal::kUnauthenticated, std::move(auth.reason));
  }
  if (auth.outcome == AuthOutcome::kForbidden) {
    return refuse(Refusal::kForbidden, std::move(auth.reason));
  }
  const int64_t now = clock_.MonotonicNanos();
  if (!limiter_.Admit(auth.principal.name, now)) {
    return refuse(Refusal::kRateLimited,
                  "rate limit: \"" + auth.principal.name + "\" is over its " +
                      std::to_string(options_.rate.per_second) + " requests/s");
  }
  if (api == Api::kScore || api == Api::kScoreBatch || api == Api::kDecide) {
    std::string why;
    if (!service_.Ready(&why)) return refuse(Refusal::kNotReady, "not ready: " + why);
  }
  if (api != Api::kWatch) {  // a watch is a long-lived stream, not a request in flight
    a.ticket = in_flight_.TryAcquire();
    if (!a.ticket) {
      return refuse(Refusal::kOverloaded, "overloaded: " + std::to_string(in_flight_.capacity()) +
                                              " requests in flight; retry later");
    }
  }
  a.ctx.principal = std::move(auth.principal);
  a.ctx.admitted_mono_ns = now;
  a.ctx.budget_ns = int64_t{options_.default_deadline_ms} * 1'000'000;
  if (transport_deadline_ns > 0) a.ctx.budget_ns = std::min(a.ctx.budget_ns, transport_deadline_ns);
  return a;
}

void Frontend::CountScore(const v1::Score& s) {
  metrics_->scores->Inc();
  if (s.cached()) metrics_->cache_hits->Inc();
}

template <typename Resp, typename Fn>
core::Result<Resp> Frontend::Serve(Api api, Admission& a, const core::Status& valid,
                                   uint32_t deadline_ms, Fn&& fn) {
  if (!valid.ok()) {
    Count(api, "invalid");
    return valid;
  }
  if (deadline_ms > 0) {
    a.ctx.budget_ns = std::min(a.ctx.budget_ns, int64_t{deadline_ms} * 1'000'000);
  }
  core::Result<Resp> out = fn();
  Count(api, out.has_value() ? "ok" : "error");
  metrics_->latency[static_cast<size_t>(api)]->Observe(
      double(clock_.MonotonicNanos() - a.ctx.admitted_mono_ns) * 1e-9);
  return out;
}

core::Result<v1::ScoreResponse> Frontend::Score(const v1::ScoreRequest& r, Admission& a) {
  return Serve<v1::ScoreResponse>(Api::kScore, a, ValidateScoreRequest(r), r.deadline_ms(), [&] {
    auto out = service_.Score(r, a.ctx);
    if (out.has_value()) {
      CountScore(out->result());
      if (out->result().fallback()) metrics_->fallbacks[0]->Inc();
    }
    return out;
  });
}

core::Result<v1::ScoreBatchResponse> Frontend::ScoreBatch(const v1::ScoreBatchRequest& r,
                                                          Admission& a) {
  return Serve<v1::ScoreBatchResponse>(
      Api::kScoreBatch, a, ValidateScoreBatchRequest(r), r.deadline_ms(), [&] {
        auto out = service_.ScoreBatch(r, a.ctx);
        if (out.has_value()) {
          for (const auto& s : out->results()) {
            CountScore(s);
            if (s.fallback()) metrics_->fallbacks[1]->Inc();
          }
        }
        return out;
      });
}

core::Result<v1::DecideResponse> Frontend::Decide(const v1::DecideRequest& r, Admission& a) {
  return Serve<v1::DecideResponse>(Api::kDecide, a, ValidateDecideRequest(r), r.deadline_ms(),
                                   [&] {
                                     auto out = service_.Decide(r, a.ctx);
                                     if (out.has_value() && out->score().fallback()) {
                                       metrics_->fallbacks[2]->Inc();
                                     }
                                     return out;
                                   });
}

core::Result<v1::OrderStatus> Frontend::Enforce(const v1::EnforceRequest& r, Admission& a) {
  return Serve<v1::OrderStatus>(Api::kEnforce, a, ValidateEnforceRequest(r), 0,
                                [&]() -> core::Result<v1::OrderStatus> {
                                  auto out = orders_.Enforce(r, clock_.NowUnixNanos() / 1'000'000);
                                  if (!out.has_value() || r.wait_ms() == 0) return out;
                                  return orders_.Await(out->order().id(),
                                                       std::chrono::milliseconds(r.wait_ms()));
                                });
}

core::Result<v1::OrderStatus> Frontend::Rollback(const v1::RollbackRequest& r, Admission& a) {
  return Serve<v1::OrderStatus>(Api::kRollback, a, ValidateRollbackRequest(r), 0,
                                [&]() -> core::Result<v1::OrderStatus> {
                                  auto out =
                                      orders_.Rollback(r, clock_.NowUnixNanos() / 1'000'000);
                                  if (!out.has_value() || r.wait_ms() == 0) return out;
                                  return orders_.Await(out->order().id(),
                                                       std::chrono::milliseconds(r.wait_ms()));
                                });
}

core::Result<v1::OrderStatus> Frontend::Acknowledge(const v1::Ack& r, Admission& a) {
  return Serve<v1::OrderStatus>(Api::kAck, a, ValidateAck(r), 0,
                                [&] { return orders_.Acknowledge(r); });
}

core::Status Frontend::StartWatch(const v1::WatchRequest& r, Admission&) {
  core::Status s = ValidateWatchRequest(r);
  Count(Api::kWatch, s.ok() ? "ok" : "invalid");
  return s;
}

}  // namespace vigil::api
