#pragma once

// The decision service behind `vigil serve`: scores with one loaded model and decides with one
// loaded rule set (api::DecisionService).
//
// Scoring: a request's syscall window is scored through a fresh stream of the model on one of
// `workers` threads; the caller waits at most its budget, then gets the configured fallback
// verdict marked "deadline exceeded" (the late result still fills the cache). A full worker
// queue answers with the fallback marked "queue full" at once. Identical requests within the
// cache TTL are answered from the verdict cache (marked cached).
// Deciding: the event, with the verdict on its features (or the caller's score), is evaluated
// against the rules; the first matching rule with an action decides, a match without an action
// alerts, no match allows.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "api/service.h"
#include "core/clock.h"
#include "model/model.h"
#include "policy/rules.h"
#include "service/serve_config.h"

namespace vigil::service {

class ModelDecisionService final : public api::DecisionService {
 public:
  ModelDecisionService(ScoringConfig config, const core::Clock& clock);
  ~ModelDecisionService() override;

  // Loads (and, with a public key, verifies) the model and the rules; Ready() from then on.
  // Errors name the file and the reason.
  core::Status Load(const ServeConfig& config);
  // For tests and embedding: serve `model` and `rules` as they are.
  void Install(std::shared_ptr<const model::Model> model,
               std::shared_ptr<const policy::RuleSet> rules, std::string policy_version);

  core::Result<v1::ScoreResponse> Score(const v1::ScoreRequest& r,
                                        const api::CallContext& ctx) override;
  core::Result<v1::ScoreBatchResponse> ScoreBatch(const v1::ScoreBatchRequest& r,
                                                  const api::CallContext& ctx) override;
  core::Result<v1::DecideResponse> Decide(const v1::DecideRequest& r,
                                          const api::CallContext& ctx) override;
  bool Ready(std::string* why) const override;

  uint64_t model_calls() const { return model_calls_.load(); }

 private:
  struct State {
    std::shared_ptr<const model::Model> model;
    std::shared_ptr<const policy::RuleSet> rules;
    std::string policy_version;
  };
  struct Job;
  // Starts scoring `r`; the returned job completes on a worker (or at once from the cache / as
  // a fallback when the queue is full).
  std::shared_ptr<Job> Start(const State& s, const v1::ScoreRequest& r);
  v1::Score Finish(const State& s, Job& job, int64_t deadline_mono_ns);
  v1::Score Fallback(const State& s, std::string_view reason) const;
  void Work();

  const ScoringConfig config_;
  const core::Clock& clock_;
  std::atomic<std::shared_ptr<const State>> state_;
  std::atomic<uint64_t> model_calls_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  // Verdict cache: key -> (score, expiry); oldest-first eviction.
  struct Cached {
    v1::Score score;
    int64_t expires_mono_ns = 0;
    std::list<std::string>::iterator age;
  };
  std::mutex cache_mu_;
  std::unordered_map<std::string, Cached> cache_;
  std::list<std::string> cache_age_;
  bool CacheGet(const std::string& key, v1::Score* out);
  void CachePut(const std::string& key, const v1::Score& score);
};

}  // namespace vigil::service
