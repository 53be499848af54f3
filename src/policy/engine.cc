#include "policy/engine.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <iterator>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "core/files.h"
#include "core/name_table.h"

namespace vigil::policy {
namespace {

using core::NameOf;
using core::ParseName;

constexpr std::array<std::pair<Mode, std::string_view>, 2> kModes{{
    {Mode::kMonitor, "monitor"}, {Mode::kEnforce, "enforce"}}};
constexpr std::array<std::pair<RolloutStage, std::string_view>, 3> kStages{{
    {RolloutStage::kMonitor, "monitor"},
    {RolloutStage::kEnforceNonCritical, "enforce-non-critical"},
    {RolloutStage::kEnforceAll, "enforce-all"}}};
constexpr std::array<std::pair<AssetClass, std::string_view>, 3> kClasses{{
    {AssetClass::kCritical, "critical"},
    {AssetClass::kStandard, "standard"},
    {AssetClass::kNonCritical, "non-critical"}}};
constexpr std::array<std::pair<Fallback, std::string_view>, 3> kFallbacks{{
    {Fallback::kAllow, "allow"}, {Fallback::kDeny, "deny"}, {Fallback::kAlert, "alert"}}};
constexpr std::array<std::pair<core::Action, std::string_view>, 6> kActionKinds{{
    {core::Action::kAlert, "alert"},
    {core::Action::kDeny, "deny"},
    {core::Action::kKill, "kill"},
    {core::Action::kFreeze, "freeze"},
    {core::Action::kBlockNetwork, "block-network"},
    {core::Action::kEscalate, "escalate"}}};

// "sha256:" + the first 16 hex digits of SHA-256 over (name length, name, size, bytes) of each
// loaded document, so that renaming, reordering or editing any of them changes the version.
std::string Digest(const std::vector<std::pair<std::string, std::string>>& docs) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const auto& [name, bytes] : docs) {
    const std::string head = std::to_string(name.size()) + ":" + name + ":" +
                             std::to_string(bytes.size()) + ":";
    EVP_DigestUpdate(ctx, head.data(), head.size());
    EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < 8 && i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string At(const std::string& file, const YAML::Node& n) {
  return file + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

struct Manifest {
  std::string version;
  bool has_mode = false, has_stage = false;
  Mode mode = Mode::kMonitor;
  RolloutStage stage = RolloutStage::kMonitor;
  std::vector<std::string> rules;  // resolved paths
};

// Parses a bundle manifest (a YAML map); errors name the file, line and column.
core::Result<Manifest> ParseManifest(const YAML::Node& root, const std::string& file) {
  Manifest m;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    const YAML::Node v = it->second;
    const std::string where = At(file, v);
    if (key == "version") {
      if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().size() > 128) {
        return core::InvalidArgument(where + ": version: expected a string of 1..128 bytes");
      }
      m.version = v.Scalar();
    } else if (key == "mode") {
      if (!v.IsScalar() || !ParseMode(v.Scalar(), &m.mode)) {
        return core::InvalidArgument(where + ": mode: expected monitor or enforce");
      }
      m.has_mode = true;
    } else if (key == "stage") {
      if (!v.IsScalar() || !ParseStage(v.Scalar(), &m.stage)) {
        return core::InvalidArgument(
            where + ": stage: expected monitor, enforce-non-critical or enforce-all");
      }
      m.has_stage = true;
    } else if (key == "rules") {
      if (!v.IsSequence() || v.size() == 0) {
        return core::InvalidArgument(where + ": rules: expected a non-empty list of files");
      }
      const std::filesystem::path dir = std::filesystem::path(file).parent_path();
      for (const YAML::Node& r : v) {
        if (!r.IsScalar() || r.Scalar().empty()) {
          return core::InvalidArgument(At(file, r) + ": rules: expected a file name");
        }
        const std::filesystem::path p(r.Scalar());
        m.rules.push_back(p.is_absolute() ? p.string() : (dir / p).string());
      }
    } else {
      return core::InvalidArgument(At(file, it->first) + ": unknown key \"" + key +
                                   "\" in a policy bundle (expected version, mode, stage, rules)");
    }
  }
  if (m.rules.empty()) {
    return core::InvalidArgument(At(file, root) + ": a policy bundle needs `rules:`");
  }
  return m;
}

bool StageAdmits(RolloutStage stage, AssetClass cls) {
  switch (stage) {
    case RolloutStage::kMonitor: return false;
    case RolloutStage::kEnforceNonCritical: return cls == AssetClass::kNonCritical;
    case RolloutStage::kEnforceAll: return true;
  }
  return false;
}

template <typename T>
T* Must(core::Result<T*> r) {
  // Registration fails only for a name clash with another type, which is a bug here.
  return r.has_value() ? *r : nullptr;
}

// Copies the event's and the policy's strings into `d`: done only for a decision that matched
// (decision.h: what a decision that matched none carries), since most events match no rule and
// these copies cost about 500 of the 5,400 instructions of a decision.
void FillStrings(const PolicySnapshot& snap, const EvalInput& in, Decision* d) {
  d->policy_version = snap.version;
  if (in.verdict != nullptr) d->ml_model = in.verdict->model_name;
  if (in.event == nullptr) return;
  const core::Event& e = *in.event;
  d->target.cgroup = in.cgroup;
  d->target.container_id = in.container_id;
  d->target.comm = e.proc.comm;
  d->target.exe = e.proc.exe;
  d->dst_ip = e.net.daddr;
}

}  // namespace

std::string_view ModeName(Mode m) { return NameOf(kModes, m); }
std::string_view StageName(RolloutStage s) { return NameOf(kStages, s); }
std::string_view AssetClassName(AssetClass c) { return NameOf(kClasses, c); }
std::string_view FallbackName(Fallback f) { return NameOf(kFallbacks, f); }
bool ParseMode(std::string_view n, Mode* out) { return ParseName(kModes, n, out); }
bool ParseStage(std::string_view n, RolloutStage* out) { return ParseName(kStages, n, out); }
bool ParseAssetClass(std::string_view n, AssetClass* out) { return ParseName(kClasses, n, out); }
bool ParseFallback(std::string_view n, Fallback* out) { return ParseName(kFallbacks, n, out); }
bool ParseActionKind(std::string_view n, core::Action* out) { return ParseName(kActionKinds, n, out); }

int ActionStrength(core::Action a) {
  switch (a) {
    case core::Action::kAllow: return 0;
    case core::Action::kAlert: return 1;
    case core::Action::kEscalate: return 2;
    case core::Action::kBlockNetwork: return 3;
    case core::Action::kDeny: return 4;
    case core::Action::kFreeze: return 5;
    case core::Action::kKill: return 6;
  }
  return 0;
}

PolicyEngine::PolicyEngine(PolicyOptions options, core::Registry* registry)
    : options_(std::move(options)),
      own_registry_(registry == nullptr ? std::make_unique<core::Registry>() : nullptr),
      registry_(registry != nullptr ? registry : own_registry_.get()) {
  decisions_ = Must(registry_->GetCounter("vigil_policy_decisions_total",
                                          "Events the policy engine decided on"));
  matched_ = Must(registry_->GetCounter("vigil_policy_decisions_matched_total",
                                        "Decisions where at least one rule matched"));
  would_enforce_ = Must(registry_->GetCounter(
      "vigil_policy_decisions_would_enforce_total",
      "Monitor-mode decisions whose action would have been enforced in enforce mode"));
  enforce_ = Must(registry_->GetCounter("vigil_policy_decisions_enforce_total",
                                        "Decisions handed to enforcement"));
  reloads_ = Must(registry_->GetCounter("vigil_policy_reloads_total", "Policy reloads by result",
                                        {{"result", "ok"}}));
  reload_failures_ = Must(registry_->GetCounter(
      "vigil_policy_reloads_total", "Policy reloads by result", {{"result", "error"}}));
  generation_ = Must(registry_->GetGauge("vigil_policy_generation",
                                         "Generation of the policy in force (1 = first load)"));
}

PolicyEngine::~PolicyEngine() = default;

core::Result<std::unique_ptr<PolicyEngine>> PolicyEngine::Create(PolicyOptions options,
                                                                 core::Registry* registry) {
  if (options.files.empty() && options.embedded_yaml.empty()) {
    return core::InvalidArgument("policy: no rules files and no embedded rules");
  }
  for (const AssetRule& a : options.assets) {
    for (const std::string& c : a.container_ids) {
      if (c.size() < 12) {
        return core::InvalidArgument("policy: asset container id \"" + c +
                                     "\": give at least 12 hex digits");
      }
    }
  }
  std::unique_ptr<PolicyEngine> engine(new PolicyEngine(std::move(options), registry));
  if (engine->decisions_ == nullptr || engine->reloads_ == nullptr ||
      engine->generation_ == nullptr || engine->would_enforce_ == nullptr ||
      engine->enforce_ == nullptr || engine->matched_ == nullptr ||
      engine->reload_failures_ == nullptr) {
    return core::Internal("policy: metric registration failed (a name is taken by another type)");
  }
  auto snap = engine->Build(1);
  if (!snap.has_value()) return snap.error();
  engine->current_.store(std::move(snap).value());
  engine->generation_->Set(1);
  return engine;
}

core::Result<std::shared_ptr<const PolicySnapshot>> PolicyEngine::Build(uint64_t generation) const {
  auto snap = std::make_shared<PolicySnapshot>();
  snap->generation = generation;
  snap->mode = options_.mode;
  snap->stage = options_.stage;
  std::string version = options_.version;
  std::vector<std::pair<std::string, std::string>> docs;   // (name, bytes) of every file read
  std::vector<std::pair<std::string, std::string>> rules;  // the rules documents among them

  if (options_.files.empty()) {
    docs.emplace_back(options_.embedded_name, options_.embedded_yaml);
    rules = docs;
  } else {
    if (options_.embedded_first && !options_.embedded_yaml.empty()) {
      docs.emplace_back(options_.embedded_name, options_.embedded_yaml);
      rules = docs;
    }
    bool seen_manifest = false;
    for (const std::string& path : options_.files) {
      auto bytes = core::ReadFile(path, kMaxRulesFileBytes);
      if (!bytes.has_value()) return bytes.error();
      bool is_manifest = false;
      YAML::Node root;
      try {
        root = YAML::Load(*bytes);
        is_manifest = root.IsMap();
      } catch (const YAML::Exception&) {
        is_manifest = false;  // the rules loader reports it with file, line and column
      }
      if (!is_manifest) {
        docs.emplace_back(path, *bytes);
        rules.emplace_back(path, std::move(bytes).value());
        continue;
      }
      if (seen_manifest) {
        return core::InvalidArgument(path + ":1: a second policy bundle manifest (one per policy)");
      }
      seen_manifest = true;
      auto m = ParseManifest(root, path);
      if (!m.has_value()) return m.error();
      if (!m->version.empty()) version = m->version;
      if (m->has_mode) snap->mode = m->mode;
      if (m->has_stage) snap->stage = m->stage;
      docs.emplace_back(path, std::move(bytes).value());
      for (const std::string& r : m->rules) {
        auto rb = core::ReadFile(r, kMaxRulesFileBytes);
        if (!rb.has_value()) return core::NotFound(path + ": rules: " + rb.error().message());
        docs.emplace_back(r, *rb);
        rules.emplace_back(r, std::move(rb).value());
      }
    }
  }
  if (rules.empty()) return core::InvalidArgument("policy: no rules files to load");
  auto rs = RuleSet::LoadDocuments(rules);
  if (!rs.has_value()) return rs.error();
  snap->rules = std::move(rs).value();
  std::vector<std::string> rule_files;
  for (const auto& r : rules) rule_files.push_back(r.first);
  snap->files = rule_files;
  snap->version = version.empty() ? Digest(docs) : version;
  if (!options_.files.empty()) {
    const bool skip_embedded = options_.embedded_first && !options_.embedded_yaml.empty();
    snap->sources.assign(std::make_move_iterator(docs.begin() + (skip_embedded ? 1 : 0)),
                         std::make_move_iterator(docs.end()));
  }

  for (const Rule& r : snap->rules.rules()) {
    RuleSettings s;
    if (r.has_action) {
      ParseActionKind(r.action.type, &s.action);
      s.mode_given = r.action.mode_given;
      ParseMode(r.action.mode, &s.mode);
      s.fallback_given = r.action.fallback_given;
      ParseFallback(r.action.fallback, &s.fallback);
      ParseActionKind(r.action.proposed, &s.proposed);
      s.timeout_seconds = r.action.timeout_seconds;
    }
    snap->settings.push_back(s);
    const core::Labels labels = {{"rule", r.name}};
    snap->matches.push_back(
        Must(registry_->GetCounter("vigil_policy_rule_matches_total", "Matches per rule", labels)));
    snap->would_enforce.push_back(Must(registry_->GetCounter(
        "vigil_policy_would_enforce_total",
        "Per rule: matches whose action monitor mode held back (would have been enforced)",
        labels)));
    snap->enforced.push_back(Must(registry_->GetCounter(
        "vigil_policy_enforce_total", "Per rule: matches handed to enforcement", labels)));
  }
  return std::shared_ptr<const PolicySnapshot>(std::move(snap));
}

core::Status PolicyEngine::Reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  const uint64_t next = current_.load()->generation + 1;
  auto snap = Build(next);
  if (!snap.has_value()) {
    reload_failures_->Inc();
    return snap.error();
  }
  current_.store(std::move(snap).value());
  generation_->Set(static_cast<double>(next));
  reloads_->Inc();
  return core::Status::Ok();
}

std::shared_ptr<const PolicySnapshot> PolicyEngine::Current() const { return current_.load(); }

AssetClass PolicyEngine::Classify(const EvalInput& in) const {
  if (in.modbus != nullptr) {
    if (in.modbus->asset.empty()) return options_.default_class;
    return in.modbus->critical ? AssetClass::kCritical : AssetClass::kNonCritical;
  }
  if (in.event == nullptr) return options_.default_class;
  const core::ProcessIdentity& p = in.event->proc;
  for (const AssetRule& a : options_.assets) {
    for (const std::string& c : a.comms) {
      if (p.comm == c) return a.cls;
    }
    for (const std::string& e : a.exe_prefixes) {
      if (!p.exe.empty() && p.exe.starts_with(e)) return a.cls;
    }
    for (const std::string& g : a.cgroup_prefixes) {
      if (!in.cgroup.empty() && in.cgroup.starts_with(g)) return a.cls;
    }
    for (const std::string& id : a.container_ids) {
      if (in.container_id != "host" && in.container_id.starts_with(id)) return a.cls;
    }
  }
  return options_.default_class;
}

Decision PolicyEngine::Decide(EvalInput* in, ProcessMemo* memo) const {
  Decision d;
  const std::shared_ptr<const PolicySnapshot> snap = current_.load();
  const AssetClass cls = Classify(*in);
  const std::string_view cls_name = AssetClassName(cls);
  if (in->asset_class != cls_name) in->asset_class = cls_name;  // a reused input keeps its own
  d.asset_class = cls;
  d.stage = snap->stage;
  d.policy_mode = snap->mode;
  d.policy_generation = snap->generation;
  d.fallback = options_.class_fallback[static_cast<size_t>(cls)];
  decisions_->Inc();
  if (in->event == nullptr) {
    FillStrings(*snap, *in, &d);
    return d;
  }
  const core::Event& e = *in->event;
  d.event_seq = e.seq;
  d.time_ns = e.time_ns;
  d.target.pid = e.proc.pid;
  d.target.tid = e.proc.tid;
  d.target.ppid = e.proc.ppid;
  d.target.cgroup_id = e.cgroup_id;
  d.dst_port = e.net.dport;
  if (in->verdict != nullptr) {
    d.has_verdict = true;
    d.ml_score = in->verdict->score;
  }

  std::vector<Match> matches = snap->rules.Evaluate(*in, memo);
  if (matches.empty()) return d;
  matched_->Inc();
  FillStrings(*snap, *in, &d);
  const bool stage_admits = StageAdmits(snap->stage, cls);
  const Rule* base = snap->rules.rules().data();
  int best = -1, best_enforcing = -1;
  d.hits.reserve(matches.size());
  for (Match& m : matches) {
    const auto idx = static_cast<size_t>(m.rule - base);
    const RuleSettings& s = snap->settings[idx];
    RuleHit h;
    h.rule = m.rule->name;
    h.priority = m.rule->priority;
    h.output = std::move(m.output);
    h.action = s.action;
    const Mode rule_mode = s.mode_given ? s.mode : snap->mode;
    const bool enforcing = snap->mode == Mode::kEnforce && rule_mode == Mode::kEnforce &&
                           stage_admits && Acts(s.action) && enforcement_allowed_.load();
    h.mode = enforcing ? Mode::kEnforce : Mode::kMonitor;
    h.fallback = s.fallback_given ? s.fallback : d.fallback;
    h.proposed = s.proposed;
    h.timeout_seconds = s.timeout_seconds;
    if (snap->matches[idx] != nullptr) snap->matches[idx]->Inc();
    if (enforcing) {
      if (snap->enforced[idx] != nullptr) snap->enforced[idx]->Inc();
    } else if (Acts(s.action) && snap->would_enforce[idx] != nullptr) {
      snap->would_enforce[idx]->Inc();
    }
    const int i = static_cast<int>(d.hits.size());
    if (best < 0 || ActionStrength(h.action) > ActionStrength(d.hits[best].action)) best = i;
    if (enforcing && (best_enforcing < 0 ||
                      ActionStrength(h.action) > ActionStrength(d.hits[best_enforcing].action))) {
      best_enforcing = i;
    }
    d.hits.push_back(std::move(h));
  }
  const RuleHit& decider = d.hits[best_enforcing >= 0 ? best_enforcing : best];
  d.action = decider.action;
  d.mode = decider.mode;
  d.rule = decider.rule;
  d.priority = decider.priority;
  d.output = decider.output;
  d.fallback = decider.fallback;
  d.proposed = decider.proposed;
  d.timeout_seconds = decider.timeout_seconds;
  d.would_enforce = best_enforcing < 0 && Acts(decider.action);
  if (d.would_enforce) would_enforce_->Inc();
  if (d.enforce()) enforce_->Inc();
  return d;
}

std::optional<PolicyEngine::AtStake> PolicyEngine::FallbackAtStake(
    EvalInput* in, const core::Verdict& assumed) const {
  const std::shared_ptr<const PolicySnapshot> snap = current_.load();
  const AssetClass cls = Classify(*in);
  const std::string_view cls_name = AssetClassName(cls);
  if (in->asset_class != cls_name) in->asset_class = cls_name;
  if (in->event == nullptr) return std::nullopt;
  const core::Verdict* const given = in->verdict;
  in->verdict = &assumed;
  std::vector<Match> with = snap->rules.Evaluate(*in);
  in->verdict = nullptr;
  std::vector<Match> without = with.empty() ? std::vector<Match>() : snap->rules.Evaluate(*in);
  in->verdict = given;
  const Rule* base = snap->rules.rules().data();
  // The strictest fallback wins (deny over alert over allow), then an enforced rule, then the
  // stronger action: as the host gates combine their candidate rules.
  const auto rank = [](Fallback f) {
    return f == Fallback::kDeny ? 2 : f == Fallback::kAlert ? 1 : 0;
  };
  std::optional<AtStake> best;
  int best_key[3] = {-1, -1, -1};
  for (const Match& m : with) {
    const RuleSettings& s = snap->settings[static_cast<size_t>(m.rule - base)];
    if (!Acts(s.action)) continue;
    bool needs_model = true;
    for (const Match& w : without) needs_model = needs_model && w.rule != m.rule;
    if (!needs_model) continue;
    const Fallback fallback =
        s.fallback_given ? s.fallback : options_.class_fallback[static_cast<size_t>(cls)];
    const Mode rule_mode = s.mode_given ? s.mode : snap->mode;
    const bool enforcing = snap->mode == Mode::kEnforce && rule_mode == Mode::kEnforce &&
                           StageAdmits(snap->stage, cls) && enforcement_allowed_.load();
    const int key[3] = {rank(fallback), enforcing ? 1 : 0, ActionStrength(s.action)};
    if (!std::lexicographical_compare(best_key, best_key + 3, key, key + 3)) continue;
    std::copy(key, key + 3, best_key);
    best = AtStake{m.rule->name, fallback, enforcing ? Mode::kEnforce : Mode::kMonitor,
                   m.rule->priority};
  }
  return best;
}

PolicyEngine::Counts PolicyEngine::counts() const {
  Counts c;
  c.decisions = decisions_->Value();
  c.matched = matched_->Value();
  c.would_enforce = would_enforce_->Value();
  c.enforce = enforce_->Value();
  c.reloads = reloads_->Value();
  c.reload_failures = reload_failures_->Value();
  return c;
}

}  // namespace vigil::policy
