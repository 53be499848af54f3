#include "service/decision_service.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <vector>

#include "api/codec.h"
#include "core/files.h"
#include "govern/keys.h"
#include "govern/minisign.h"
#include "model/loader.h"
#include "model/model_file.h"
#include "policy/fields.h"

namespace vigil::service {
namespace {

core::Arch ArchOf(const std::string& name) {
  core::Arch a = core::Arch::kUnknown;
  core::ParseArch(name, &a);
  return a;
}

core::Status VerifySignature(const govern::PublicKey& key, const std::string& path,
                             uint64_t max_bytes) {
  auto bytes = core::ReadFile(path, max_bytes);
  if (!bytes.has_value()) return bytes.error();
  auto sig = govern::LoadSignature(path + ".minisig");
  if (!sig.has_value()) return sig.error().WithContext(path + ": signature");
  const govern::Verification v = govern::Verify(key, *sig, *bytes);
  if (v.outcome != govern::VerifyOutcome::kValid) {
    return core::Status(core::StatusCode::kPermissionDenied,
                        path + ": signature does not verify: " + v.reason);
  }
  return {};
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

void FillScore(const core::Verdict& v, v1::Score* out) {
  out->set_score(v.score);
  out->set_anomalous(v.anomalous);
  out->set_model_name(v.model_name);
  out->set_model_version(v.model_version);
  for (const core::Evidence& e : v.explanation) {
    v1::Evidence* ev = out->add_explanation();
    ev->set_what(e.what);
    ev->set_weight(e.weight);
  }
}

// The engine's answer as the API's Score: the verdict, and cached/fallback from its source.
void FillScore(const model::EngineVerdict& v, v1::Score* out) {
  FillScore(v.verdict, out);
  out->set_cached(v.source == model::VerdictSource::kCache);
  out->set_fallback(v.fallback());
  out->set_fallback_reason(std::string(model::FallbackReasonName(v.reason)));
}

// Where the engine's verdicts for one call arrive (on the engine's worker, or on the caller
// when the engine could not queue an item). Shared with the callbacks, which may outlive the
// call when the caller stops waiting at its deadline.
struct Arrivals {
  explicit Arrivals(size_t n) : verdicts(n), arrived(n, 0), claims(n), left(n) {}
  std::mutex mu;
  std::condition_variable cv;
  std::vector<model::EngineVerdict> verdicts;
  std::vector<uint8_t> arrived;
  std::vector<model::AnswerClaim> claims;  // who settles each item: the engine or the caller
  size_t left;
  bool settling = false;  // the caller waits for an item the engine settled after the deadline
};

}  // namespace

ModelDecisionService::ModelDecisionService(ScoringConfig config, core::Registry& registry,
                                           const core::Clock& clock)
    : config_(config), registry_(registry), clock_(clock) {}

// The engine stops (scoring what is queued) when the last State holding it goes.
ModelDecisionService::~ModelDecisionService() = default;

core::Status ModelDecisionService::Load(const ServeConfig& config) {
  if (!config.public_key.empty()) {
    auto key = govern::LoadPublicKey(config.public_key);
    if (!key.has_value()) return key.error();
    if (auto s = VerifySignature(*key, config.model, model::kMaxModelFileBytes); !s.ok()) return s;
    for (const std::string& f : config.rules) {
      if (auto s = VerifySignature(*key, f, policy::kMaxRulesFileBytes); !s.ok()) return s;
    }
  }
  auto m = model::LoadModel(config.model);
  if (!m.has_value()) return m.error();
  auto rules = policy::RuleSet::LoadFiles(config.rules);
  if (!rules.has_value()) return rules.error();
  std::string version = config.policy_version;
  if (version.empty()) {
    std::string all;
    for (const std::string& f : config.rules) {
      auto bytes = core::ReadFile(f, policy::kMaxRulesFileBytes);
      if (!bytes.has_value()) return bytes.error();
      all += *bytes;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(all.data(), all.size(), digest, &len, EVP_sha256(), nullptr);
    version = "sha256:" + Hex(digest, 8);
  }
  return Install(std::shared_ptr<const model::Model>(std::move(*m)),
                 std::make_shared<const policy::RuleSet>(std::move(*rules)), version);
}

core::Status ModelDecisionService::Install(std::shared_ptr<const model::Model> model,
                                           std::shared_ptr<const policy::RuleSet> rules,
                                           std::string policy_version) {
  if (model == nullptr || rules == nullptr) {
    return core::InvalidArgument("decision service: no model or no rules to install");
  }
  std::lock_guard lock(install_mu_);
  auto s = std::make_shared<State>();
  const std::shared_ptr<const State> current = state_.load();
  if (current != nullptr) {
    s->engine = current->engine;
    if (!s->engine->Swap(model)) {
      return core::Internal("decision service: the engine refused model \"" + model->name() +
                            "\" (its metrics could not be registered)");
    }
  } else {
    auto first = registry_.GetGauge(
        "vigil_api_first_score_seconds",
        "Admission to answer of the first scoring call after the latest model load, seconds.");
    if (!first.has_value()) return first.error().WithContext("decision service");
    first_score_.store(*first, std::memory_order_release);
    model::InferenceEngineOptions o;
    o.name = "serve";
    o.max_batch = config_.batch_max;
    o.max_batch_delay_ns = int64_t{config_.batch_delay_us} * 1000;
    o.queue_capacity = config_.queue;
    o.cache.capacity = config_.cache_capacity;
    o.cache.ttl_ns = int64_t{config_.cache_ttl_s} * 1'000'000'000;
    o.fallback_score = config_.fallback_score;
    o.fallback_anomalous = config_.fallback_anomalous;
    o.sync_inline = true;  // ScoreSync is this service's inline path (ScoreItems)
    o.registry = &registry_;
    auto engine = model::InferenceEngine::Create(std::move(model), o, clock_);
    if (!engine.has_value()) return engine.error().WithContext("decision service");
    s->engine = std::move(engine).value();
  }
  s->rules = std::move(rules);
  s->policy_version = std::move(policy_version);
  installed_mono_ns_.store(clock_.MonotonicNanos());
  state_.store(std::move(s));
  first_score_pending_.store(true);
  return {};
}

void ModelDecisionService::NoteScored(const api::CallContext& ctx) {
  if (!first_score_pending_.load(std::memory_order_relaxed) ||
      ctx.admitted_mono_ns < installed_mono_ns_.load()) {
    return;  // not the first since the latest Install, or admitted before it
  }
  if (first_score_pending_.exchange(false)) {
    first_score_.load(std::memory_order_acquire)
        ->Set(double(clock_.MonotonicNanos() - ctx.admitted_mono_ns) * 1e-9);
  }
}

bool ModelDecisionService::Ready(std::string* why) const {
  if (state_.load()) return true;
  if (why != nullptr) *why = "model and rules not loaded yet";
  return false;
}

const model::InferenceEngine* ModelDecisionService::engine() const {
  const std::shared_ptr<const State> s = state_.load();
  return s ? s->engine.get() : nullptr;
}

bool ModelDecisionService::FastEnough(const model::InferenceEngine& engine, size_t items,
                                      int64_t left_ns) const {
  if (!config_.inline_when_fast) return false;
  const int64_t recent = engine.RecentModelNanos();
  return recent >= 0 && recent * 4 * static_cast<int64_t>(items) <= left_ns;
}

bool ModelDecisionService::ScoresInline(size_t items, int64_t budget_ns) const {
  const std::shared_ptr<const State> s = state_.load();
  return s && s->engine && FastEnough(*s->engine, items, budget_ns);
}

core::Status ModelDecisionService::ScoreItems(const State& s,
                                              std::span<const v1::ScoreRequest* const> items,
                                              std::span<v1::Score* const> out,
                                              const api::CallContext& ctx, std::string_view where) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i]->values_size() > 0) {
      const std::shared_ptr<const model::Model> m = s.engine->model();
      core::Status bad =
          core::InvalidArgument("values: model \"" + m->name() + "\" (family " + m->family() +
                                ") scores system-call windows, not feature vectors");
      return where.empty() ? bad
                           : bad.WithContext(std::string(where) + "[" + std::to_string(i) + "]");
    }
  }
  const int64_t deadline_ns = ctx.admitted_mono_ns + ctx.budget_ns;  // clock_, as the engine's
  // On this thread while the model is fast (serve_config.h): no hand-off to the worker and
  // back, and the items of concurrent calls are scored on as many cores as there are calls.
  if (FastEnough(*s.engine, items.size(), deadline_ns - clock_.MonotonicNanos())) {
    for (size_t i = 0; i < items.size(); ++i) {
      const v1::ScoreRequest& r = *items[i];
      const model::FeatureView view{
          r.subject(), ArchOf(r.arch()),
          {r.syscalls().data(), static_cast<size_t>(r.syscalls_size())}, {}};
      // Items past the deadline get the deadline fallback without the model.
      FillScore(s.engine->ScoreSync(view, deadline_ns - clock_.MonotonicNanos()), out[i]);
    }
    return {};
  }
  auto arrivals = std::make_shared<Arrivals>(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::ScoreRequest& r = *items[i];
    model::ScoreRequest q;
    q.subject = r.subject();
    q.arch = ArchOf(r.arch());
    q.syscalls.assign(r.syscalls().begin(), r.syscalls().end());
    q.deadline_ns = std::max<int64_t>(deadline_ns, 1);
    q.claim = &arrivals->claims[i];  // lives as long as the callback's `arrivals`
    s.engine->Submit(std::move(q), [arrivals, i](model::EngineVerdict v) {
      std::lock_guard lock(arrivals->mu);
      arrivals->verdicts[i] = std::move(v);
      arrivals->arrived[i] = 1;
      if (--arrivals->left == 0 || arrivals->settling) arrivals->cv.notify_one();
    });
  }
  const int64_t left_ns = deadline_ns - clock_.MonotonicNanos();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<int64_t>(0, left_ns));
  std::unique_lock lock(arrivals->mu);
  arrivals->cv.wait_until(lock, deadline, [&] { return arrivals->left == 0; });
  for (size_t i = 0; i < items.size(); ++i) {
    if (!arrivals->arrived[i]) {
      // Not answered by the deadline: the engine's deadline fallback, counted once, unless the
      // engine settled the item meanwhile (then its answer is on its way: take that). An item
      // given up on is not scored if still queued; one the model is on still fills the cache.
      if (auto fallback = s.engine->GiveUp(arrivals->claims[i])) {
        FillScore(*fallback, out[i]);
        continue;
      }
      arrivals->settling = true;
      arrivals->cv.wait(lock, [&] { return arrivals->arrived[i] != 0; });
    }
    FillScore(arrivals->verdicts[i], out[i]);
  }
  return {};
}

core::Result<v1::ScoreResponse> ModelDecisionService::Score(const v1::ScoreRequest& r,
                                                            const api::CallContext& ctx) {
  auto s = state_.load();
  if (!s) return core::Unavailable("not ready: model and rules not loaded yet");
  v1::ScoreResponse out;
  out.set_schema_version(std::string(api::kSchemaVersion));
  out.set_policy_version(s->policy_version);
  const v1::ScoreRequest* item = &r;
  v1::Score* result = out.mutable_result();
  VIGIL_RETURN_IF_ERROR(ScoreItems(*s, {&item, 1}, {&result, 1}, ctx, ""));
  NoteScored(ctx);
  return out;
}

core::Result<v1::ScoreBatchResponse> ModelDecisionService::ScoreBatch(
    const v1::ScoreBatchRequest& r, const api::CallContext& ctx) {
  auto s = state_.load();
  if (!s) return core::Unavailable("not ready: model and rules not loaded yet");
  v1::ScoreBatchResponse out;
  out.set_schema_version(std::string(api::kSchemaVersion));
  out.set_policy_version(s->policy_version);
  std::vector<const v1::ScoreRequest*> items;
  std::vector<v1::Score*> results;
  items.reserve(static_cast<size_t>(r.items_size()));
  results.reserve(items.capacity());
  for (const v1::ScoreRequest& item : r.items()) {
    items.push_back(&item);
    results.push_back(out.add_results());
  }
  VIGIL_RETURN_IF_ERROR(ScoreItems(*s, items, results, ctx, "items"));
  NoteScored(ctx);
  return out;
}

core::Result<v1::DecideResponse> ModelDecisionService::Decide(const v1::DecideRequest& r,
                                                              const api::CallContext& ctx) {
  auto s = state_.load();
  if (!s) return core::Unavailable("not ready: model and rules not loaded yet");
  v1::DecideResponse out;
  out.set_schema_version(std::string(api::kSchemaVersion));
  out.set_policy_version(s->policy_version);
  const v1::Event& e = r.event();
  core::Event ev;
  ev.source = core::EventSource::kSynthetic;
  core::ParseEventKind(e.kind(), &ev.kind);
  ev.host = e.host();
  ev.proc.pid = e.pid();
  ev.proc.ppid = e.ppid();
  ev.proc.uid = e.uid();
  ev.proc.comm = e.comm();
  ev.proc.exe = e.exe();
  ev.path = e.path();
  ev.syscall.arch = ArchOf(e.arch());
  ev.syscall.nr = e.syscall_nr();
  ev.net.daddr = e.daddr();
  ev.net.dport = static_cast<uint16_t>(e.dport());

  bool have_score = false;
  if (r.has_features()) {
    const v1::ScoreRequest* item = &r.features();
    v1::Score* result = out.mutable_score();
    if (auto st = ScoreItems(*s, {&item, 1}, {&result, 1}, ctx, ""); !st.ok()) {
      return st.WithContext("features");
    }
    NoteScored(ctx);
    have_score = true;
  } else if (r.has_score()) {
    *out.mutable_score() = r.score();
    have_score = true;
  }
  core::Verdict verdict;
  if (have_score) {
    verdict.score = out.score().score();
    verdict.anomalous = out.score().anomalous();
    verdict.model_name = out.score().model_name();
    verdict.model_version = out.score().model_version();
    verdict.subject = e.comm();
    verdict.pid = e.pid();
    verdict.uid = e.uid();
    verdict.host = e.host();
  }
  policy::EvalInput in;
  in.event = &ev;
  in.verdict = have_score ? &verdict : nullptr;
  in.argv.assign(e.argv().begin(), e.argv().end());
  in.user_name = e.user_name();
  in.asset_class = e.asset_class();
  const std::vector<policy::Match> matches = s->rules->Evaluate(in);
  const policy::Match* deciding = nullptr;
  for (const policy::Match& m : matches) {
    out.add_matched_rules(m.rule->name);
    if (deciding == nullptr && m.rule->has_action) deciding = &m;
  }
  if (deciding == nullptr && !matches.empty()) deciding = &matches.front();
  if (deciding == nullptr) {
    out.set_action("allow");
    out.set_reason("no rule matched");
  } else {
    out.set_action(deciding->rule->has_action ? deciding->rule->action.type : "alert");
    out.set_rule(deciding->rule->name);
    out.set_reason(deciding->output);
    out.set_enforce(deciding->rule->has_action && deciding->rule->action.mode == "enforce");
  }
  return out;
}

}  // namespace vigil::service
