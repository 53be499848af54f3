#include "service/decision_service.h"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "api/codec.h"
#include "govern/keys.h"
#include "govern/minisign.h"
#include "model/loader.h"
#include "policy/fields.h"

namespace vigil::service {
namespace {

core::Arch ArchOf(const std::string& name) {
  core::Arch a = core::Arch::kUnknown;
  core::ParseArch(name, &a);
  return a;
}

core::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound(path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

core::Status VerifySignature(const govern::PublicKey& key, const std::string& path) {
  auto bytes = ReadFile(path);
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

}  // namespace

struct ModelDecisionService::Job {
  std::string subject;
  core::Arch arch = core::Arch::kUnknown;
  std::vector<int32_t> syscalls;
  std::string key;
  std::shared_ptr<const model::Model> model;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  core::Status error;
  v1::Score score;
};

ModelDecisionService::ModelDecisionService(ScoringConfig config, const core::Clock& clock)
    : config_(config), clock_(clock) {
  const uint32_t n = std::max<uint32_t>(1, config_.workers);
  for (uint32_t i = 0; i < n; ++i) workers_.emplace_back([this] { Work(); });
}

ModelDecisionService::~ModelDecisionService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

core::Status ModelDecisionService::Load(const ServeConfig& config) {
  if (!config.public_key.empty()) {
    auto key = govern::LoadPublicKey(config.public_key);
    if (!key.has_value()) return key.error();
    if (auto s = VerifySignature(*key, config.model); !s.ok()) return s;
    for (const std::string& f : config.rules) {
      if (auto s = VerifySignature(*key, f); !s.ok()) return s;
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
      auto bytes = ReadFile(f);
      if (!bytes.has_value()) return bytes.error();
      all += *bytes;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(all.data(), all.size(), digest, &len, EVP_sha256(), nullptr);
    version = "sha256:" + Hex(digest, 8);
  }
  Install(std::shared_ptr<const model::Model>(std::move(*m)),
          std::make_shared<const policy::RuleSet>(std::move(*rules)), version);
  return {};
}

void ModelDecisionService::Install(std::shared_ptr<const model::Model> model,
                                   std::shared_ptr<const policy::RuleSet> rules,
                                   std::string policy_version) {
  auto s = std::make_shared<State>();
  s->model = std::move(model);
  s->rules = std::move(rules);
  s->policy_version = std::move(policy_version);
  state_.store(std::move(s));
  std::lock_guard lock(cache_mu_);
  cache_.clear();
  cache_age_.clear();
}

bool ModelDecisionService::Ready(std::string* why) const {
  if (state_.load()) return true;
  if (why != nullptr) *why = "model and rules not loaded yet";
  return false;
}

void ModelDecisionService::Work() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    model_calls_.fetch_add(1, std::memory_order_relaxed);
    v1::Score score;
    core::Status error;
    try {
      auto stream = job->model->NewStream(job->subject);
      stream->ObserveSyscalls(job->arch, job->syscalls);
      FillScore(stream->Current(), &score);
    } catch (const std::exception& e) {
      error = core::Internal(std::string("model: ") + e.what());
    }
    if (error.ok()) CachePut(job->key, score);
    {
      std::lock_guard lock(job->mu);
      job->score = std::move(score);
      job->error = std::move(error);
      job->done = true;
    }
    job->cv.notify_all();
  }
}

bool ModelDecisionService::CacheGet(const std::string& key, v1::Score* out) {
  if (config_.cache_capacity == 0) return false;
  std::lock_guard lock(cache_mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return false;
  if (it->second.expires_mono_ns < clock_.MonotonicNanos()) {
    cache_age_.erase(it->second.age);
    cache_.erase(it);
    return false;
  }
  *out = it->second.score;
  return true;
}

void ModelDecisionService::CachePut(const std::string& key, const v1::Score& score) {
  if (config_.cache_capacity == 0) return;
  std::lock_guard lock(cache_mu_);
  const int64_t expires = clock_.MonotonicNanos() + int64_t{config_.cache_ttl_s} * 1'000'000'000;
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    it->second.score = score;
    it->second.expires_mono_ns = expires;
    return;
  }
  while (cache_.size() >= config_.cache_capacity && !cache_age_.empty()) {
    cache_.erase(cache_age_.front());
    cache_age_.pop_front();
  }
  cache_age_.push_back(key);
  cache_.emplace(key, Cached{score, expires, std::prev(cache_age_.end())});
}

v1::Score ModelDecisionService::Fallback(const State& s, std::string_view reason) const {
  v1::Score out;
  out.set_score(config_.fallback_score);
  out.set_anomalous(config_.fallback_anomalous);
  out.set_model_name(s.model->name());
  out.set_model_version(s.model->version());
  out.set_fallback(true);
  out.set_fallback_reason(std::string(reason));
  v1::Evidence* ev = out.add_explanation();
  ev->set_what("fallback: " + std::string(reason));
  ev->set_weight(1.0);
  return out;
}

std::shared_ptr<ModelDecisionService::Job> ModelDecisionService::Start(const State& s,
                                                                        const v1::ScoreRequest& r) {
  auto job = std::make_shared<Job>();
  job->model = s.model;
  job->subject = r.subject();
  job->arch = ArchOf(r.arch());
  job->syscalls.assign(r.syscalls().begin(), r.syscalls().end());
  job->key.reserve(64 + r.subject().size() + job->syscalls.size() * 4);
  job->key = s.model->name() + '\0' + s.model->version() + '\0' + r.subject() + '\0' + r.arch() +
             '\0';
  job->key.append(reinterpret_cast<const char*>(job->syscalls.data()),
                  job->syscalls.size() * sizeof(int32_t));
  if (r.values_size() > 0) {
    job->error = core::InvalidArgument("values: model \"" + s.model->name() + "\" (family " +
                                       s.model->family() +
                                       ") scores system-call windows, not feature vectors");
    job->done = true;
    return job;
  }
  if (CacheGet(job->key, &job->score)) {
    job->score.set_cached(true);
    job->done = true;
    return job;
  }
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < config_.queue) {
      queue_.push_back(job);
      cv_.notify_one();
      return job;
    }
  }
  job->score = Fallback(s, "queue full");
  job->done = true;
  return job;
}

v1::Score ModelDecisionService::Finish(const State& s, Job& job, int64_t deadline_mono_ns) {
  std::unique_lock lock(job.mu);
  const int64_t left = deadline_mono_ns - clock_.MonotonicNanos();
  const bool done = job.cv.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(0, left)),
                                    [&] { return job.done; });
  if (!done) return Fallback(s, "deadline exceeded");
  return job.score;
}

core::Result<v1::ScoreResponse> ModelDecisionService::Score(const v1::ScoreRequest& r,
                                                            const api::CallContext& ctx) {
  auto s = state_.load();
  if (!s) return core::Unavailable("not ready: model and rules not loaded yet");
  auto job = Start(*s, r);
  v1::ScoreResponse out;
  out.set_schema_version(std::string(api::kSchemaVersion));
  out.set_policy_version(s->policy_version);
  *out.mutable_result() = Finish(*s, *job, ctx.admitted_mono_ns + ctx.budget_ns);
  if (!job->error.ok()) return job->error;
  return out;
}

core::Result<v1::ScoreBatchResponse> ModelDecisionService::ScoreBatch(
    const v1::ScoreBatchRequest& r, const api::CallContext& ctx) {
  auto s = state_.load();
  if (!s) return core::Unavailable("not ready: model and rules not loaded yet");
  std::vector<std::shared_ptr<Job>> jobs;
  jobs.reserve(static_cast<size_t>(r.items_size()));
  for (const auto& item : r.items()) jobs.push_back(Start(*s, item));
  v1::ScoreBatchResponse out;
  out.set_schema_version(std::string(api::kSchemaVersion));
  out.set_policy_version(s->policy_version);
  for (size_t i = 0; i < jobs.size(); ++i) {
    *out.add_results() = Finish(*s, *jobs[i], ctx.admitted_mono_ns + ctx.budget_ns);
    if (!jobs[i]->error.ok()) return jobs[i]->error.WithContext("items[" + std::to_string(i) + "]");
  }
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
    auto job = Start(*s, r.features());
    *out.mutable_score() = Finish(*s, *job, ctx.admitted_mono_ns + ctx.budget_ns);
    if (!job->error.ok()) return job->error.WithContext("features");
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
