// --model-type triage: gradient-boosted trees (XGBoost) on adjudicated traces or alerts
// (model/triage.h). Two inputs:
//   --dataset adfa-ld --data DIR   every trace of DIR, labelled by folder (Training and Validation
//                                  benign, Attack_Data_Master/<Type>_<n>/ true positives), or by
//                                  --labels FILE (ids = trace paths relative to DIR)
//   --dataset jsonl --labels FILE  feature rows given per line (docs/triage-labels.md)
// With --cv K the model is first measured by grouped K-fold cross-validation (whole attack runs
// and whole traces held out together); the out-of-fold figures go into the file's metrics and
// set the threshold for --target-fpr.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "hub/triage_holdout.h"
#include "model/evaluation.h"
#include "model/model_file.h"
#include "model/triage.h"
#include "model/triage_labels.h"
#include "model/triage_traces.h"

namespace vigil::app {
namespace {

struct TriageFlags {
  model::TraceTriageOptions options;
  std::string labels;
  int cv = 0;
};

nlohmann::json MetricsJson(const model::DetectionMetrics& m) {
  return {{"auc", m.auc},
          {"tpr_at_fpr_1", m.tpr_at_fpr_1},
          {"tpr_at_fpr_5", m.tpr_at_fpr_5},
          {"traces", m.positives}};
}

// "sha256:<hex>" of a file already read successfully once; "" if it has gone since.
std::string FileDigest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return in ? "sha256:" + model::Sha256Hex(ss.str()) : std::string();
}

// ADFA-LD's attack runs: "Attack_Data_Master/<Type>_<n>/<file>" -> "Attack_Data_Master/<Type>_<n>".
std::string RunOf(const std::string& id) {
  const size_t slash = id.rfind('/');
  return slash == std::string::npos ? id : id.substr(0, slash);
}

core::Result<std::vector<model::LabelledTrace>> AdfaTraces(const TriageFlags& f,
                                                           const std::string& root,
                                                           nlohmann::json* training) {
  auto corpus = LoadAdfaCorpus(root, {sensor::AdfaSplit::kTraining, sensor::AdfaSplit::kValidation,
                                      sensor::AdfaSplit::kAttack});
  if (!corpus.has_value()) return corpus.error();
  std::map<std::string, const model::LabelRecord*> by_id;
  std::vector<model::LabelRecord> records;
  if (!f.labels.empty()) {
    auto loaded = model::LoadTriageLabels(f.labels);
    if (!loaded.has_value()) return loaded.error();
    records = std::move(loaded).value();
    for (const model::LabelRecord& r : records) {
      if (!r.features.empty()) {
        return core::InvalidArgument(f.labels + ":" + std::to_string(r.line) +
                                     ": \"features\" is not used with --dataset adfa-ld (trace "
                                     "features are computed from the trace)");
      }
      by_id.emplace(r.id, &r);
    }
  }
  std::vector<model::LabelledTrace> out;
  size_t matched = 0;
  for (size_t i = 0; i < corpus->traces.size(); ++i) {
    const sensor::AdfaTrace& t = corpus->traces[i];
    const bool attack = t.split == sensor::AdfaSplit::kAttack;
    bool positive = attack;
    if (!f.labels.empty()) {
      const auto it = by_id.find(t.id);
      if (it == by_id.end()) continue;  // only adjudicated traces
      ++matched;
      positive = model::IsPositive(it->second->label);
    }
    model::LabelledTrace lt;
    lt.id = t.id;
    lt.group = attack ? RunOf(t.id) : t.id;
    lt.category = positive ? (attack ? t.attack_type : std::string("labelled")) : std::string();
    lt.arch = core::Arch::kI386;
    lt.syscalls = std::move(corpus->syscalls[i]);
    lt.positive = positive;
    out.push_back(std::move(lt));
  }
  if (!f.labels.empty() && matched != records.size()) {
    for (const model::LabelRecord& r : records) {
      const bool found = std::any_of(out.begin(), out.end(),
                                     [&](const model::LabelledTrace& t) { return t.id == r.id; });
      if (!found) {
        return core::InvalidArgument(f.labels + ":" + std::to_string(r.line) + ": id \"" + r.id +
                                     "\" is not a trace under " + root);
      }
    }
  }
  size_t positives = 0, events = 0;
  for (const auto& t : out) {
    positives += t.positive ? 1 : 0;
    events += t.syscalls.size();
  }
  *training = {{"dataset", "adfa-ld"},
               {"digest", corpus->digest},
               {"traces", out.size()},
               {"true_positives", positives},
               {"events", events}};
  if (!f.labels.empty()) {
    (*training)["labels"] = f.labels;
    (*training)["labels_digest"] = FileDigest(f.labels);
  }
  return out;
}

int TrainAdfa(const TriageFlags& f, const TrainRequest& r, TrainedModel* out) {
  const auto start = std::chrono::steady_clock::now();
  nlohmann::json training;
  auto traces = AdfaTraces(f, r.data, &training);
  if (!traces.has_value()) return ReportError("train", traces.error());
  model::TraceTriageOptions o = f.options;
  o.target_fpr = r.target_fpr;
  std::unique_ptr<Progress> progress;
  auto report = [&](std::string_view stage, size_t done, size_t total) {
    if (r.json) return;
    if (!progress || done == 0)
      progress = std::make_unique<Progress>(std::string(stage) + " ", total);
    progress->Update(done + 1);
  };
  nlohmann::json metrics;
  std::optional<model::TriageCalibration> calibration;
  char line[256];
  if (f.cv > 0) {
    auto cv = model::CrossValidateTraceTriage(*traces, o, f.cv, report);
    progress.reset();
    if (!cv.has_value()) return ReportError("train", cv.error().WithContext(r.data));
    metrics = MetricsJson(cv->overall);
    metrics["method"] = "grouped cross-validation (attack runs and traces held out whole)";
    metrics["folds"] = cv->folds;
    metrics["traces"] = traces->size();
    metrics["attack_traces"] = cv->overall.positives;
    nlohmann::json per = nlohmann::json::object();
    for (const auto& [category, m] : cv->per_category) per[category] = MetricsJson(m);
    metrics["per_attack"] = per;
    metrics["threshold"] = {{"score", cv->calibration.threshold},
                            {"target_fpr", cv->calibration.target_fpr},
                            {"achieved_fpr", cv->calibration.achieved_fpr}};
    calibration = cv->calibration;
    std::snprintf(line, sizeof(line),
                  "grouped %d-fold cross-validation, out of fold: AUC %.4f, detection %.1f%% at "
                  "1%% false alarms, %.1f%% at 5%%",
                  cv->folds, cv->overall.auc, cv->overall.tpr_at_fpr_1 * 100,
                  cv->overall.tpr_at_fpr_5 * 100);
    out->summary.emplace_back(line);
    for (const auto& [category, m] : cv->per_category) {
      std::snprintf(line, sizeof(line),
                    "  %-18s AUC %.4f, %.1f%% at 1%%, %.1f%% at 5%% (%zu traces)", category.c_str(),
                    m.auc, m.tpr_at_fpr_1 * 100, m.tpr_at_fpr_5 * 100, m.positives);
      out->summary.emplace_back(line);
    }
  }
  auto m = model::TrainTraceTriage(*traces, o, report);
  progress.reset();
  if (!m.has_value()) return ReportError("train", m.error().WithContext(r.data));
  if (calibration) (*m)->set_calibration(*calibration);
  auto file = (*m)->ToFile(nlohmann::json::object());
  if (!file.has_value()) return ReportError("train", file.error());
  out->file = std::move(file).value();
  if (!metrics.is_null()) out->file.header["metrics"] = metrics;
  out->training = training;
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::snprintf(line, sizeof(line), "%zu traces (%zu true positives), %zu features, %d trees",
                traces->size(), training["true_positives"].get<size_t>(),
                (*m)->feature_names().size(), (*m)->booster().rounds());
  out->summary.insert(out->summary.begin(), line);
  const model::TriageCalibration& c = (*m)->calibration();
  std::snprintf(line, sizeof(line), "threshold: %.4f (%s%s)", c.threshold, c.method.c_str(),
                c.method == "probability" ? "; run with --cv K to calibrate it" : "");
  out->summary.emplace_back(line);
  return kExitOk;
}

int TrainJsonl(const TriageFlags& f, const TrainRequest& r, TrainedModel* out) {
  const auto start = std::chrono::steady_clock::now();
  const std::string path = f.labels.empty() ? r.data : f.labels;
  if (path.empty()) {
    return ReportError("train", core::InvalidArgument("--labels FILE is required for --model-type "
                                                      "triage --dataset jsonl"));
  }
  auto records = model::LoadTriageLabels(path);
  if (!records.has_value()) return ReportError("train", records.error());
  auto table = model::LabelTable(*records);
  if (!table.has_value()) return ReportError("train", table.error().WithContext(path));
  const model::TriageOptions& o = f.options.triage;
  char line[256];
  nlohmann::json metrics;
  std::optional<model::TriageCalibration> calibration;
  if (f.cv > 0) {
    const std::vector<int> fold = hub::StratifiedFolds(table->labels, f.cv, f.options.seed);
    auto scores = hub::OutOfFoldScores(*table, o, fold, f.cv);
    if (!scores.has_value()) return ReportError("train", scores.error().WithContext(path));
    const std::vector<double>& oof = *scores;
    std::vector<model::Scored> ex;
    std::vector<double> neg;
    for (size_t i = 0; i < table->rows(); ++i) {
      ex.push_back({oof[i], table->labels[i] == 1.0f});
      if (table->labels[i] != 1.0f) neg.push_back(oof[i]);
    }
    model::DetectionMetrics dm;
    dm.auc = model::RocAuc(ex);
    dm.tpr_at_fpr_1 = model::TprAtFpr(ex, 0.01);
    dm.tpr_at_fpr_5 = model::TprAtFpr(ex, 0.05);
    dm.positives = ex.size() - neg.size();
    metrics = MetricsJson(dm);
    metrics["method"] = "stratified cross-validation (rows held out)";
    metrics["folds"] = f.cv;
    model::TriageCalibration c;
    c.method = "cross-validation";
    c.target_fpr = r.target_fpr;
    c.threshold = std::clamp(model::ThresholdForFpr(neg, r.target_fpr), 0.0, 1.0);
    size_t over = 0;
    for (double s : neg) over += s >= c.threshold ? 1 : 0;
    c.achieved_fpr =
        neg.empty() ? 0.0 : static_cast<double>(over) / static_cast<double>(neg.size());
    c.rows = table->rows();
    calibration = c;
    std::snprintf(line, sizeof(line),
                  "%d-fold cross-validation, out of fold: AUC %.4f, detection %.1f%% at 1%% false "
                  "alarms, %.1f%% at 5%%",
                  f.cv, dm.auc, dm.tpr_at_fpr_1 * 100, dm.tpr_at_fpr_5 * 100);
    out->summary.emplace_back(line);
  }
  auto m = model::TriageModel::Train(*table, o);
  if (!m.has_value()) return ReportError("train", m.error().WithContext(path));
  if (calibration) (*m)->set_calibration(*calibration);
  auto file = (*m)->ToFile(nlohmann::json::object());
  if (!file.has_value()) return ReportError("train", file.error());
  out->file = std::move(file).value();
  if (!metrics.is_null()) out->file.header["metrics"] = metrics;
  size_t positives = 0;
  for (float l : table->labels) positives += l == 1.0f ? 1 : 0;
  out->training = {{"dataset", "jsonl"},
                   {"labels", path},
                   {"digest", FileDigest(path)},
                   {"rows", table->rows()},
                   {"true_positives", positives}};
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::snprintf(line, sizeof(line), "%zu rows (%zu true positives), %zu features, %d trees",
                table->rows(), positives, table->names.size(), (*m)->booster().rounds());
  out->summary.insert(out->summary.begin(), line);
  return kExitOk;
}

}  // namespace

ModelType TriageModelType() {
  auto f = std::make_shared<TriageFlags>();
  model::BoosterParams& b = f->options.triage.booster;
  b.rounds = 300;
  b.max_depth = 4;
  b.eta = 0.05;
  b.subsample = 0.8;
  b.colsample_bytree = 0.5;
  f->options.ngram.folds = 2;
  ModelType t;
  t.name = "triage";
  t.summary = "gradient-boosted trees (XGBoost) on adjudicated traces or alerts (labels)";
  t.datasets = {"adfa-ld", "jsonl"};
  t.data_optional = {"jsonl"};
  t.add_options = [f](CLI::App& cmd) {
    cmd.add_option("--labels", f->labels,
                   "triage: adjudications, JSONL (docs/triage-labels.md); with adfa-ld the ids "
                   "are trace paths under --data (default: labels from the folders)");
    cmd.add_option("--cv", f->cv,
                   "triage: measure by grouped K-fold cross-validation first (0 = no); sets the "
                   "threshold for --target-fpr and records the out-of-fold metrics")
        ->capture_default_str()
        ->check(CLI::Range(0, 20));
    auto& bp = f->options.triage.booster;
    cmd.add_option("--rounds", bp.rounds, "triage: boosting rounds (trees)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    cmd.add_option("--max-depth", bp.max_depth, "triage: tree depth")
        ->capture_default_str()
        ->check(CLI::Range(1, 16));
    cmd.add_option("--eta", bp.eta, "triage: learning rate")
        ->capture_default_str()
        ->check(CLI::Range(0.001, 1.0));
    cmd.add_option("--subsample", bp.subsample, "triage: share of rows per tree")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1.0));
    cmd.add_option("--colsample", bp.colsample_bytree, "triage: share of features per tree")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1.0));
    cmd.add_option("--triage-threads", bp.threads, "triage: XGBoost training threads")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    cmd.add_option("--triage-seed", f->options.seed, "triage: seed of folds and trees")
        ->capture_default_str();
    cmd.add_option("--inner-folds", f->options.inner_folds,
                   "triage: folds of the out-of-fold n-gram features (adfa-ld)")
        ->capture_default_str()
        ->check(CLI::Range(2, 20));
    cmd.add_option("--explain-top", f->options.triage.explain_top,
                   "triage: features named in an explanation")
        ->capture_default_str()
        ->check(CLI::Range(0, 64));
  };
  t.train = [f](const TrainRequest& r) {
    TriageFlags flags = *f;
    flags.options.triage.booster.seed = flags.options.seed;
    flags.options.triage.name = r.name.empty() ? "triage" : r.name;
    flags.options.triage.version = r.version;
    TrainedModel out;
    const int rc = r.dataset == "adfa-ld" ? TrainAdfa(flags, r, &out) : TrainJsonl(flags, r, &out);
    if (rc != kExitOk) return rc;
    const model::BoosterParams& p = flags.options.triage.booster;
    out.parameters = {{"rounds", p.rounds},
                      {"max_depth", p.max_depth},
                      {"eta", p.eta},
                      {"subsample", p.subsample},
                      {"colsample", p.colsample_bytree},
                      {"seed", flags.options.seed},
                      {"cv", flags.cv},
                      {"inner_folds", flags.options.inner_folds},
                      {"target_fpr", r.target_fpr}};
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
