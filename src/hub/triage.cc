#include "hub/triage.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/registry.h"
#include "govern/trust.h"
#include "hub/triage_holdout.h"
#include "hub/triage_note.h"
#include "hub/triage_volume.h"
#include "model/model_file.h"
#include "model/triage_labels.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

// Scores `records` (parsed labels) with `m`: one ScoredAlert each.
core::Result<std::vector<ScoredAlert>> ScoreLabelled(const model::TriageModel& m,
                                                     const std::vector<model::LabelRecord>& recs) {
  std::vector<ScoredAlert> out;
  out.reserve(recs.size());
  for (const model::LabelRecord& rec : recs) {
    std::map<std::string, double> features;
    for (const auto& [name, value] : rec.features) {
      if (value) features.emplace(name, *value);
    }
    VIGIL_ASSIGN_OR_RETURN(model::TriageScore s, m.ScoreNamed(features));
    out.push_back({s.score, model::IsPositive(rec.label)});
  }
  return out;
}

}  // namespace

const std::vector<std::string>& IncidentFeatureNames() {
  static const std::vector<std::string> names{"alerts",       "verdicts",       "decisions",
                                              "max_score",    "max_severity",   "mean_score",
                                              "distinct_rules", "distinct_models", "span_s"};
  return names;
}

Triage::Triage(HubTriageOptions options, Store& store, audit::AuditLog& audit,
               const core::Clock& clock, core::Registry& registry)
    : options_(std::move(options)),
      store_(store),
      audit_(audit),
      clock_(clock),
      registry_(registry) {
  auto c = [&](const char* name, const char* help) -> core::Counter* {
    auto got = registry_.GetCounter(name, help);
    return got.has_value() ? *got : nullptr;
  };
  scored_ = c("vigil_hub_triage_scored_total", "Incident scorings by the hub's triage model");
  suppressed_ = c("vigil_hub_triage_suppressed_total",
                  "Incident scorings below the triage threshold (marked suppressed by triage)");
  refused_ = c("vigil_hub_triage_refused_total",
               "Triage models refused (unsigned, altered, untrusted or unusable)");
}

core::Status Triage::Refuse(const std::string& path, const std::string& outcome,
                            const std::string& reason, const std::string& by) {
  if (refused_ != nullptr) refused_->Inc();
  spdlog::warn("hub: triage model {} refused: {}: {}", path, outcome, reason);
  core::Status st = audit_.Append(audit::RecordType::kModelChange,
                                  {{"action", "refused"},
                                   {"model", "triage"},
                                   {"path", path},
                                   {"outcome", outcome},
                                   {"reason", reason},
                                   {"by", by}});
  if (!st.ok()) return core::Unavailable("audit log: " + st.message());
  const core::StatusCode code =
      outcome == "unusable"              ? core::StatusCode::kInvalidArgument
      : outcome == "unsupported-version" ? core::StatusCode::kFailedPrecondition
                                         : core::StatusCode::kPermissionDenied;
  return core::Status(code, "triage model \"" + path + "\" refused: " + outcome + ": " + reason);
}

core::Status Triage::ChooseThreshold(Active& a, const json& header) {
  a.volume = nullptr;
  if (options_.threshold) {
    a.threshold = *options_.threshold;
    a.threshold_source = "configured";
    return {};
  }
  // Chosen at training on held-out data for this recall (the header is signed with the file).
  if (auto h = header.find("hub_threshold"); h != header.end() && h->is_object()) {
    const json& t = *h;
    if (t.value("recall", -1.0) == options_.recall && t.contains("threshold") &&
        t["threshold"].is_number() && t["threshold"].get<double>() >= 0 &&
        t["threshold"].get<double>() <= 1) {
      a.threshold = t["threshold"].get<double>();
      a.threshold_source = "held-out";
      a.volume = header.contains("metrics") ? header["metrics"] : json();
      return {};
    }
  }
  auto text = store_.ExportLabels();
  if (!text.has_value()) return text.error();
  std::optional<TriageVolume> volume;
  if (!text->empty()) {
    VIGIL_ASSIGN_OR_RETURN(auto records, model::ParseTriageLabels(*text, "the hub's labels"));
    VIGIL_ASSIGN_OR_RETURN(auto scored, ScoreLabelled(*a.model, records));
    size_t positives = 0;
    for (const ScoredAlert& s : scored) positives += s.true_positive ? 1 : 0;
    if (positives > 0) {
      VIGIL_ASSIGN_OR_RETURN(TriageVolume v, VolumeAtRecall(std::move(scored), options_.recall));
      volume = v;
    }
  }
  if (volume) {
    a.threshold = volume->threshold;
    a.threshold_source = "recall";
    a.volume = VolumeJson(*volume);
  } else {
    a.threshold = a.model->calibration().threshold;
    a.threshold_source = "model";
  }
  return {};
}

core::Status Triage::Start() {
  core::Status restore;  // why the model remembered in force was not loaded
  if (!options_.model_dir.empty() && !options_.signing_key.empty()) {
    const std::string note_path = NotePath();
    auto bytes = core::ReadFile(note_path, 1 << 16);
    if (bytes.has_value()) {
      std::vector<govern::PublicKey> own;
      if (auto k = govern::LoadTrustedKeys({govern::PublicKeyPathFor(options_.signing_key)});
          k.has_value()) {
        own = std::move(k).value();
      }
      const govern::TrustCheck check = govern::CheckSignedBytes(note_path, *bytes, own);
      auto note = ParseTriageInForceNote(*bytes, note_path);
      if (!check.trusted) {
        restore = Refuse(note_path, check.outcome, check.reason, "hub");
      } else if (!note.has_value()) {
        restore = Refuse(note_path,
                         note.error().code() == core::StatusCode::kFailedPrecondition
                             ? "unsupported-version"
                             : "unusable",
                         note.error().message(), "hub");
      } else if (note->config_model != options_.model) {
        spdlog::info("hub: triage: triage.model changed since {} was put in force; loading {}",
                     note->path, options_.model.empty() ? "none" : options_.model);
      } else {
        if (note->unversioned) {
          spdlog::info("hub: triage: {} has no format_version (written before version {}): read "
                       "as version {}; the next model put in force writes it",
                       note_path, kTriageNoteVersion, kTriageNoteVersion);
        }
        restore = LoadFrom(note->path, "hub", Source::kRestored, note->sha256);
        if (restore.ok()) return restore;
        spdlog::warn("hub: triage: the model in force before the restart: {}", restore.message());
      }
    } else if (bytes.error().code() != core::StatusCode::kNotFound) {
      restore = Refuse(note_path, "unreadable", bytes.error().message(), "hub");
    }
  }
  // Nothing configured to fall back on: the refusal (the hub runs without a model).
  if (options_.model.empty()) return restore;
  return LoadFrom(options_.model, "hub", Source::kConfigured, "");
}

core::Status Triage::Remember(const Active& a, const std::string& by) {
  if (options_.model_dir.empty() || options_.signing_key.empty()) return {};
  auto fail = [&](const core::Status& s) {
    return core::Unavailable("triage: remembering the model in force in \"" + NotePath() +
                             "\": " + s.message());
  };
  auto key = govern::LoadSecretKey(options_.signing_key);
  if (!key.has_value()) return fail(key.error());
  TriageInForceNote note;
  note.path = a.path;
  note.sha256 = a.sha256;
  note.config_model = options_.model;
  note.activated_ms = NowMs();
  note.by = by;
  const std::string bytes = TriageInForceNoteBytes(note);
  std::error_code ec;
  std::filesystem::create_directories(options_.model_dir, ec);
  if (ec) return fail(core::Unavailable(ec.message()));
  // The signature first: a crash between the two leaves a note that does not verify (refused,
  // audited, triage.model used), never an old signature over a new note that happens to verify.
  auto sig = govern::SignArtifact(NotePath(), bytes, *key, "vigil hub triage in-force",
                                  NowMs() / 1000);
  if (!sig.has_value()) return fail(sig.error());
  if (core::Status s = govern::internal::WriteFileAtomic(NotePath(), bytes, 0644); !s.ok()) {
    return fail(s);
  }
  return {};
}

core::Status Triage::Load(const std::string& path, const std::string& by) {
  return LoadFrom(path, by, Source::kApi, "");
}

core::Status Triage::LoadFrom(const std::string& path, const std::string& by, Source source,
                              const std::string& expected_sha256) {
  std::lock_guard serial(train_mu_);
  auto bytes = core::ReadFile(path, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return Refuse(path, "unreadable", bytes.error().message(), by);
  std::vector<std::string> key_paths = options_.trusted_keys;
  if (!options_.signing_key.empty()) {
    key_paths.push_back(govern::PublicKeyPathFor(options_.signing_key));
  }
  std::vector<govern::PublicKey> keys;
  for (const std::string& k : key_paths) {
    auto one = govern::LoadTrustedKeys({k});
    if (one.has_value()) {
      keys.insert(keys.end(), one->begin(), one->end());
    } else {
      spdlog::warn("hub: triage: trusted key {}: {}", k, one.error().message());
    }
  }
  const govern::TrustCheck check = govern::CheckSignedBytes(path, *bytes, keys);
  if (!check.trusted) return Refuse(path, check.outcome, check.reason, by);
  if (!expected_sha256.empty() && check.sha256 != expected_sha256) {
    return Refuse(path, "altered",
                  "SHA-256 " + check.sha256 + " is not the " + expected_sha256 +
                      " of the model put in force (another signed file was put in its place)",
                  by);
  }
  auto file = model::DecodeModelFile(*bytes, path);
  if (!file.has_value()) return Refuse(path, "unusable", file.error().message(), by);
  auto m = model::TriageModel::FromFile(*file, path);
  if (!m.has_value()) return Refuse(path, "unusable", m.error().message(), by);
  if ((*m)->featurizer() != nullptr) {
    return Refuse(path, "unusable",
                  "a trace model (it scores system-call traces, not the hub's incidents)", by);
  }
  const std::set<std::string> known(IncidentFeatureNames().begin(), IncidentFeatureNames().end());
  for (const std::string& name : (*m)->feature_names()) {
    if (known.count(name) == 0) {
      return Refuse(path, "unusable",
                    "feature \"" + name + "\" is not one the hub computes for incidents", by);
    }
  }
  auto a = std::make_shared<Active>();
  a->model = std::move(m).value();
  a->path = path;
  a->sha256 = check.sha256;
  a->key_id = check.key_id;
  VIGIL_RETURN_IF_ERROR(ChooseThreshold(*a, file->header));
  if (source == Source::kApi) VIGIL_RETURN_IF_ERROR(Remember(*a, by));
  const char* source_name = source == Source::kApi          ? "api"
                            : source == Source::kConfigured ? "configured"
                                                            : "restored";
  core::Status st = audit_.Append(audit::RecordType::kModelChange,
                                  {{"action", "loaded"},
                                   {"source", source_name},
                                   {"model", "triage"},
                                   {"path", path},
                                   {"sha256", a->sha256},
                                   {"key_id", a->key_id},
                                   {"threshold", a->threshold},
                                   {"threshold_source", a->threshold_source},
                                   {"recall", options_.recall},
                                   {"volume", a->volume},
                                   {"by", by}});
  if (!st.ok()) return core::Unavailable("audit log: " + st.message());
  {
    std::lock_guard lock(mu_);
    active_ = std::move(a);
  }
  // The open incidents scored by the previous model (or none) get this one's mark.
  IncidentFilter f;
  f.adjudicated = false;
  f.limit = 1000;
  auto open = store_.Incidents(f);
  if (!open.has_value()) return open.error();
  std::vector<int64_t> ids;
  for (const IncidentRow& r : *open) ids.push_back(r.id);
  return Score(ids);
}

core::Status Triage::Score(const std::vector<int64_t>& incident_ids) {
  std::shared_ptr<const Active> a;
  {
    std::lock_guard lock(mu_);
    a = active_;
  }
  if (a == nullptr || incident_ids.empty()) return {};
  VIGIL_ASSIGN_OR_RETURN(std::vector<IncidentFeatures> rows, store_.TriageFeatures(incident_ids));
  std::vector<TriageMark> marks;
  marks.reserve(rows.size());
  for (const IncidentFeatures& r : rows) {
    VIGIL_ASSIGN_OR_RETURN(model::TriageScore s, a->model->ScoreNamed(r.features));
    marks.push_back({r.id, s.score, s.score < a->threshold});
  }
  VIGIL_RETURN_IF_ERROR(store_.SetTriage(marks));
  for (const TriageMark& m : marks) {
    if (scored_ != nullptr) scored_->Inc();
    if (m.suppressed && suppressed_ != nullptr) suppressed_->Inc();
  }
  return {};
}

core::Result<json> Triage::Train(const TriageTrainRequest& r, const std::string& by) {
  if (options_.signing_key.empty() || options_.model_dir.empty()) {
    return core::FailedPrecondition("triage training: the hub has no signing key or model folder");
  }
  model::BoosterParams booster;
  booster.rounds = r.rounds;
  booster.max_depth = r.max_depth;
  booster.eta = r.eta;
  booster.seed = r.seed;
  VIGIL_RETURN_IF_ERROR(model::CheckBoosterParams(booster));
  std::string path;
  json trained;
  {
    std::lock_guard serial(train_mu_);
    VIGIL_ASSIGN_OR_RETURN(govern::SecretKey key, govern::LoadSecretKey(options_.signing_key));
    VIGIL_ASSIGN_OR_RETURN(std::string text, store_.ExportLabels());
    if (text.empty()) {
      return core::FailedPrecondition(
          "the hub's store has no adjudicated incident to learn from (label some: POST "
          "/v1/incidents/ID/adjudication)");
    }
    VIGIL_ASSIGN_OR_RETURN(auto records, model::ParseTriageLabels(text, "the hub's labels"));
    VIGIL_ASSIGN_OR_RETURN(model::FeatureTable table, model::LabelTable(records));
    size_t positives = 0;
    for (float l : table.labels) positives += l == 1.0f ? 1 : 0;
    if (positives == 0 || positives == table.rows()) {
      return core::FailedPrecondition(
          "triage training needs adjudicated incidents of both kinds: " +
          std::to_string(positives) + " true positives among " + std::to_string(table.rows()));
    }
    model::TriageOptions o;
    o.name = "triage";
    o.version = std::to_string(NowMs());
    o.booster = booster;
    VIGIL_ASSIGN_OR_RETURN(auto m, model::TriageModel::Train(table, o));
    const std::string digest = "sha256:" + model::Sha256Hex(text);
    const json params = {{"rounds", booster.rounds},
                         {"max_depth", booster.max_depth},
                         {"eta", booster.eta},
                         {"seed", booster.seed},
                         {"folds", r.folds}};
    // The threshold is chosen on out-of-fold scores, never on the rows the model learnt from
    // (hub/triage_holdout.h); the file carries it, signed, for this recall.
    VIGIL_ASSIGN_OR_RETURN(HeldOutThreshold held,
                           ChooseHeldOutThreshold(table, o, r.folds, r.seed, options_.recall));
    const json metrics = HeldOutJson(held);
    VIGIL_ASSIGN_OR_RETURN(model::ModelFile file,
                           m->ToFile({{"lineage",
                                       {{"dataset", "hub-adjudications"},
                                        {"digest", digest},
                                        {"rows", table.rows()},
                                        {"true_positives", positives}}},
                                      {"metrics", metrics},
                                      {"hub_threshold",
                                       {{"recall", options_.recall},
                                        {"threshold", held.chosen.threshold},
                                        {"folds", held.folds},
                                        {"seed", held.seed}}}}));
    const std::string bytes = model::EncodeModelFile(file);
    std::error_code ec;
    std::filesystem::create_directories(options_.model_dir, ec);
    if (ec) {
      return core::Unavailable("triage model folder \"" + options_.model_dir +
                               "\": " + ec.message());
    }
    path = options_.model_dir + "/triage-" + o.version + ".vmodel";
    VIGIL_RETURN_IF_ERROR(govern::internal::WriteFileAtomic(path, bytes, 0644));
    VIGIL_ASSIGN_OR_RETURN(govern::Signature sig,
                           govern::SignArtifact(path, bytes, key, "vigil hub triage train",
                                                NowMs() / 1000));
    (void)sig;
    trained = {{"path", path},
               {"sha256", model::Sha256Hex(bytes)},
               {"key_id", govern::KeyIdHex(key.key_id)},
               {"data_digest", digest},
               {"rows", table.rows()},
               {"true_positives", positives},
               {"features", table.names},
               {"parameters", params},
               {"metrics", metrics}};
    json record = trained;
    record["action"] = "trained";
    record["model"] = "triage";
    record["by"] = by;
    if (core::Status st = audit_.Append(audit::RecordType::kModelChange, std::move(record));
        !st.ok()) {
      return core::Unavailable("audit log: " + st.message());
    }
  }
  trained["activated"] = false;
  if (r.activate) {
    VIGIL_RETURN_IF_ERROR(Load(path, by));
    trained["activated"] = true;
  }
  return trained;
}

json Triage::Status() {
  std::shared_ptr<const Active> a;
  {
    std::lock_guard lock(mu_);
    a = active_;
  }
  if (a == nullptr) return {{"model", nullptr}, {"recall", options_.recall}};
  return {{"model",
           {{"path", a->path},
            {"sha256", a->sha256},
            {"key_id", a->key_id},
            {"name", a->model->name()},
            {"version", a->model->version()},
            {"features", a->model->feature_names()}}},
          {"recall", options_.recall},
          {"threshold", a->threshold},
          {"threshold_source", a->threshold_source},
          {"volume", a->volume}};
}

void Triage::RefreshMetrics() {
  auto n = store_.CountSuppressed();
  auto g = registry_.GetGauge("vigil_hub_triage_suppressed_incidents",
                              "Incidents marked suppressed by the hub's triage model");
  if (n.has_value() && g.has_value()) (*g)->Set(static_cast<double>(*n));
  std::shared_ptr<const Active> a;
  {
    std::lock_guard lock(mu_);
    a = active_;
  }
  auto t = registry_.GetGauge("vigil_hub_triage_threshold",
                              "The triage model's threshold (NaN: no model loaded)");
  if (t.has_value()) (*t)->Set(a != nullptr ? a->threshold : std::nan(""));
}

}  // namespace vigil::hub
