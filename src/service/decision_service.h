#pragma once

// The decision service behind `vigil serve`: scores with one loaded model through the inference
// engine (model/inference_engine.h) and decides with one loaded rule set (api::DecisionService).
//
// Scoring: while the model is fast (ScoringConfig::inline_when_fast: its recent time per item
// x items x 4 fits in the call's remaining budget), the items are scored on the calling thread
// (the engine's ScoreSync in inline mode: cache, breaker, model; a verdict finished after the
// deadline is replaced by the deadline fallback). Otherwise every item is submitted to the
// engine's asynchronous path, so items of concurrent requests (and of one batch) are
// micro-batched by the engine's worker; repeated
// inputs are answered from the engine's verdict cache (marked cached); a full engine queue, an
// open circuit breaker or a model error give the configured fallback verdict marked as such.
// The caller waits at most its budget (CallContext): items the model has not answered by then
// get the fallback verdict marked "deadline exceeded" (a late verdict still fills the cache).
// The engine's metrics (vigil_engine_*{engine="serve"}, among them the cache hit ratio) go to
// the registry given at construction.
// Cold start: vigil_api_first_score_seconds is the admission-to-answer time of the first call
// that scores (Score, ScoreBatch, Decide with features) admitted after the latest Install (the
// first load, or a reload that swapped the model); 0 until there is one.
// Deciding: the event, with the verdict on its features (or the caller's score), is evaluated
// against the rules; the first matching rule with an action decides, a match without an action
// alerts, no match allows.

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "api/service.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "model/inference_engine.h"
#include "model/model.h"
#include "policy/rules.h"
#include "service/serve_config.h"

namespace vigil::service {

class ModelDecisionService final : public api::DecisionService {
 public:
  // `registry` receives the engine's metrics; it and `clock` must outlive the service.
  ModelDecisionService(ScoringConfig config, core::Registry& registry, const core::Clock& clock);
  ~ModelDecisionService() override;

  // Loads (and, with a public key, verifies) the model and the rules; Ready() from then on.
  // Errors name the file and the reason.
  core::Status Load(const ServeConfig& config);
  // For tests and embedding: serve `model` and `rules` as they are. The first call starts the
  // engine (errors: engine options out of range, its metrics already registered); later calls
  // swap the model in (the cache then no longer serves the old model's verdicts).
  [[nodiscard]] core::Status Install(std::shared_ptr<const model::Model> model,
                                     std::shared_ptr<const policy::RuleSet> rules,
                                     std::string policy_version);

  core::Result<v1::ScoreResponse> Score(const v1::ScoreRequest& r,
                                        const api::CallContext& ctx) override;
  core::Result<v1::ScoreBatchResponse> ScoreBatch(const v1::ScoreBatchRequest& r,
                                                  const api::CallContext& ctx) override;
  core::Result<v1::DecideResponse> Decide(const v1::DecideRequest& r,
                                          const api::CallContext& ctx) override;
  bool Ready(std::string* why) const override;
  // The inline rule of ScoreItems (above), for `items` items with `budget_ns` left.
  bool ScoresInline(size_t items, int64_t budget_ns) const override;

  // The engine, once installed (nullptr before); for metrics and tests.
  const model::InferenceEngine* engine() const;

 private:
  struct State {
    std::shared_ptr<model::InferenceEngine> engine;
    std::shared_ptr<const policy::RuleSet> rules;
    std::string policy_version;
  };
  // Scores `items` through the engine, waiting at most until the context's deadline, and fills
  // `out[i]` for each. kInvalidArgument for a request the model cannot score at all (`where`
  // then names the item).
  core::Status ScoreItems(const State& s, std::span<const v1::ScoreRequest* const> items,
                          std::span<v1::Score* const> out, const api::CallContext& ctx,
                          std::string_view where);

  // Inline mode and the model's recent time per item x items x 4 within `left_ns`.
  bool FastEnough(const model::InferenceEngine& engine, size_t items, int64_t left_ns) const;

  // Times the first scoring call admitted after the latest Install
  // (vigil_api_first_score_seconds).
  void NoteScored(const api::CallContext& ctx);

  const ScoringConfig config_;
  core::Registry& registry_;
  std::atomic<core::Gauge*> first_score_{nullptr};  // set by the first Install
  std::atomic<int64_t> installed_mono_ns_{0};    // clock_ time of the latest Install
  std::atomic<bool> first_score_pending_{false};  // no call admitted since has been scored
  const core::Clock& clock_;
  std::mutex install_mu_;  // serialises Install
  std::atomic<std::shared_ptr<const State>> state_;
};

}  // namespace vigil::service
