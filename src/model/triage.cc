#include "model/triage.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "model/internal/bytes.h"

namespace vigil::model {
namespace {

constexpr uint32_t kMaxFeatures = 1u << 16;
constexpr uint32_t kMaxTriageVocab = 4096;

std::string FormatValue(float v) {
  if (std::isnan(v)) return "missing";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", static_cast<double>(v));
  return buf;
}

class TriageStream final : public StreamScorer {
 public:
  TriageStream(const TriageModel& model, std::string subject)
      : model_(model), subject_(std::move(subject)) {
    if (model.featurizer() != nullptr) features_.emplace(model.featurizer()->NewStream());
  }

  void Observe(const core::Event& e) override {
    if (e.kind != core::EventKind::kSyscall) return;
    ++observed_;
    if (features_) features_->Push(e.syscall.arch, e.syscall.nr);
  }
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    observed_ += nrs.size();
    if (features_) features_->PushAll(arch, nrs);
  }

  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = model_.name();
    v.model_version = model_.version();
    v.subject = subject_;
    v.events = observed_;
    if (observed_ == 0) return v;
    std::vector<float> row(model_.feature_names().size(), kMissingFeature);
    if (features_) features_->Features(row);
    auto scored = model_.Explain(row);
    if (!scored.has_value()) {
      // Only an XGBoost failure gets here; the verdict says so instead of guessing a score.
      v.explanation.push_back({"triage model failed: " + scored.error().message(), 0.0});
      return v;
    }
    v.score = scored->score;
    v.anomalous = scored->positive;
    v.explanation = std::move(scored->explanation);
    return v;
  }
  uint64_t observed() const override { return observed_; }

 private:
  const TriageModel& model_;
  std::string subject_;
  std::optional<TraceFeatureStream> features_;
  uint64_t observed_ = 0;
};

}  // namespace

core::Result<std::unique_ptr<TriageModel>> TriageModel::Train(
    const FeatureTable& table, const TriageOptions& options,
    std::shared_ptr<const TraceFeaturizer> featurizer) {
  if (options.explain_top < 0 || options.explain_top > kMaxExplainTop) {
    return core::InvalidArgument("explain_top must be in 0.." + std::to_string(kMaxExplainTop));
  }
  if (table.names.empty() || table.names.size() > kMaxFeatures) {
    return core::InvalidArgument("triage: need 1.." + std::to_string(kMaxFeatures) + " features");
  }
  if (std::set<std::string>(table.names.begin(), table.names.end()).size() != table.names.size()) {
    return core::InvalidArgument("triage: feature names are not distinct");
  }
  if (table.values.size() != table.rows() * table.names.size()) {
    return core::InvalidArgument("triage: value count does not match rows x features");
  }
  size_t pos = 0;
  for (float l : table.labels) {
    if (l != 0.0f && l != 1.0f) return core::InvalidArgument("triage: labels must be 0 or 1");
    pos += l == 1.0f ? 1 : 0;
  }
  if (pos == 0 || pos == table.rows()) {
    return core::InvalidArgument(
        "triage: need labelled rows of both classes (true positives: " + std::to_string(pos) +
        ", others: " + std::to_string(table.rows() - pos) + ")");
  }
  for (float v : table.values) {
    if (std::isinf(v)) return core::InvalidArgument("triage: a feature value is infinite");
  }
  if (featurizer != nullptr && featurizer->feature_names() != table.names) {
    return core::InvalidArgument("triage: the featurizer's features are not the table's");
  }
  VIGIL_ASSIGN_OR_RETURN(XgbMatrix m,
                         XgbMatrix::FromDense(table.values, table.rows(), table.names.size()));
  VIGIL_RETURN_IF_ERROR(m.SetLabels(table.labels));
  VIGIL_ASSIGN_OR_RETURN(XgbBooster b, XgbBooster::Train(m, options.booster));
  std::unique_ptr<TriageModel> model(new TriageModel(std::move(b)));
  model->options_ = options;
  model->names_ = table.names;
  model->featurizer_ = std::move(featurizer);
  return model;
}

core::Result<std::vector<float>> TriageModel::ScoreRows(std::span<const float> values,
                                                        size_t rows) const {
  VIGIL_ASSIGN_OR_RETURN(XgbMatrix m, XgbMatrix::FromDense(values, rows, names_.size()));
  return booster_.Predict(m);
}

core::Result<TriageScore> TriageModel::Explain(std::span<const float> row) const {
  VIGIL_ASSIGN_OR_RETURN(XgbMatrix m, XgbMatrix::FromDense(row, 1, names_.size()));
  VIGIL_ASSIGN_OR_RETURN(std::vector<float> contrib, booster_.Contributions(m));
  TriageScore out;
  // The score is the logistic of the summed contributions (SHAP values add up to the margin),
  // so score and explanation come from one prediction.
  const double margin = std::accumulate(contrib.begin(), contrib.end(), 0.0);
  out.score = 1.0 / (1.0 + std::exp(-margin));
  out.positive = out.score >= calibration_.threshold;
  std::vector<size_t> order(names_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return contrib[a] > contrib[b]; });
  for (size_t i = 0;
       i < order.size() && out.explanation.size() < static_cast<size_t>(options_.explain_top);
       ++i) {
    const size_t f = order[i];
    if (!(contrib[f] > 0.0f)) break;
    out.explanation.push_back({names_[f] + "=" + FormatValue(row[f]), contrib[f]});
  }
  out.contributions = std::move(contrib);
  return out;
}

core::Result<TriageScore> TriageModel::ScoreNamed(
    const std::map<std::string, double>& features) const {
  std::vector<float> row(names_.size(), kMissingFeature);
  for (const auto& [name, value] : features) {
    const auto it = std::find(names_.begin(), names_.end(), name);
    if (it == names_.end()) {
      return core::InvalidArgument("feature \"" + name + "\" is not one of the model's " +
                                   std::to_string(names_.size()));
    }
    row[static_cast<size_t>(it - names_.begin())] = static_cast<float>(value);
  }
  return Explain(row);
}

std::unique_ptr<StreamScorer> TriageModel::NewStream(std::string_view subject) const {
  return std::make_unique<TriageStream>(*this, std::string(subject));
}

core::Result<ModelFile> TriageModel::ToFile(const nlohmann::json& extra_header) const {
  VIGIL_ASSIGN_OR_RETURN(std::string booster_bytes, booster_.Save());
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = family_;
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  const BoosterParams& p = options_.booster;
  f.header["params"] = {{"rounds", p.rounds},
                        {"max_depth", p.max_depth},
                        {"eta", p.eta},
                        {"subsample", p.subsample},
                        {"colsample_bytree", p.colsample_bytree},
                        {"min_child_weight", p.min_child_weight},
                        {"lambda", p.lambda},
                        {"scale_pos_weight", p.scale_pos_weight},
                        {"seed", p.seed},
                        {"explain_top", options_.explain_top},
                        {"features", names_.size()},
                        {"stream_features", featurizer_ != nullptr ? "trace" : "none"},
                        {"xgboost_version", XgbVersion()}};
  f.header["calibration"] = {{"method", calibration_.method},
                             {"threshold", calibration_.threshold},
                             {"target_fpr", calibration_.target_fpr},
                             {"achieved_fpr", calibration_.achieved_fpr},
                             {"rows", calibration_.rows}};

  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(names_.size()));
  for (const std::string& n : names_) w.Str16(n);
  w.U32(static_cast<uint32_t>(options_.explain_top));
  w.Str16(calibration_.method);
  w.F64(calibration_.threshold);
  w.F64(calibration_.target_fpr);
  w.F64(calibration_.achieved_fpr);
  w.U64(calibration_.rows);
  w.U8(featurizer_ != nullptr ? 1 : 0);
  if (featurizer_ != nullptr) {
    const std::vector<std::string>& vocab = featurizer_->vocabulary().names();
    w.U32(static_cast<uint32_t>(vocab.size()));
    for (const std::string& n : vocab) w.Str16(n);
    const std::string ngram =
        EncodeModelFile(featurizer_->ngram().ToFile(nlohmann::json::object()));
    w.U64(ngram.size());
    w.Bytes(ngram);
  }
  w.U64(booster_bytes.size());
  w.Bytes(booster_bytes);
  f.payload = std::move(w.str());
  return f;
}

core::Result<std::unique_ptr<TriageModel>> TriageModel::FromFile(const ModelFile& file,
                                                                 std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kTriageFamily, source));
  internal::ByteReader r(file.payload);
  uint32_t nf = 0;
  if (!r.U32(&nf)) return bad("truncated before the feature count");
  if (nf == 0 || nf > kMaxFeatures)
    return bad("feature count " + std::to_string(nf) + " out of range");
  if (nf > r.remaining() / 2) return bad("feature names run past the end");
  std::vector<std::string> names(nf);
  for (uint32_t i = 0; i < nf; ++i) {
    if (!r.Str16(&names[i])) return bad("truncated in feature name " + std::to_string(i));
    if (names[i].empty()) return bad("feature name " + std::to_string(i) + " is empty");
  }
  if (std::set<std::string>(names.begin(), names.end()).size() != names.size()) {
    return bad("feature names are not distinct");
  }
  uint32_t explain = 0;
  TriageCalibration cal;
  uint8_t has_featurizer = 0;
  if (!r.U32(&explain) || !r.Str16(&cal.method) || !r.F64(&cal.threshold) ||
      !r.F64(&cal.target_fpr) || !r.F64(&cal.achieved_fpr) || !r.U64(&cal.rows) ||
      !r.U8(&has_featurizer)) {
    return bad("truncated in the parameters");
  }
  if (explain > static_cast<uint32_t>(kMaxExplainTop)) {
    return bad("explain_top " + std::to_string(explain) + " is too large");
  }
  if (cal.method != "probability" && cal.method != "cross-validation") {
    return bad("unknown calibration method \"" + cal.method + "\"");
  }
  if (!(cal.threshold >= 0 && cal.threshold <= 1) || !(cal.target_fpr >= 0 && cal.target_fpr < 1) ||
      !(cal.achieved_fpr >= 0 && cal.achieved_fpr <= 1)) {
    return bad("calibration values out of range");
  }
  if (has_featurizer > 1) return bad("featurizer flag is not 0 or 1");
  std::shared_ptr<const TraceFeaturizer> featurizer;
  if (has_featurizer == 1) {
    uint32_t nv = 0;
    if (!r.U32(&nv)) return bad("truncated before the vocabulary");
    if (nv > kMaxTriageVocab || nv > r.remaining() / 2) {
      return bad("vocabulary of " + std::to_string(nv) + " names");
    }
    std::vector<std::string> vocab(nv);
    for (uint32_t i = 0; i < nv; ++i) {
      if (!r.Str16(&vocab[i])) return bad("truncated in vocabulary entry " + std::to_string(i));
    }
    auto v = SyscallVocabulary::Create(std::move(vocab));
    if (!v.has_value()) return bad("vocabulary: " + v.error().message());
    uint64_t len = 0;
    std::string_view ngram_bytes;
    if (!r.U64(&len) || len > r.remaining() || !r.Bytes(static_cast<size_t>(len), &ngram_bytes)) {
      return bad("n-gram model runs past the end");
    }
    const std::string nsrc = src + " (embedded n-gram model)";
    auto nfile = DecodeModelFile(ngram_bytes, nsrc);
    if (!nfile.has_value()) return core::DataLoss(nfile.error().message());
    auto ngram = SequenceModel::FromFile(*nfile, nsrc);
    if (!ngram.has_value()) return core::DataLoss(ngram.error().message());
    featurizer = std::make_shared<TraceFeaturizer>(
        std::move(v).value(), std::shared_ptr<const SequenceModel>(std::move(ngram).value()));
    if (featurizer->feature_names() != names) {
      return bad("feature names are not those of the embedded trace featurizer");
    }
  }
  uint64_t blen = 0;
  std::string_view booster_bytes;
  if (!r.U64(&blen) || blen != r.remaining() ||
      !r.Bytes(static_cast<size_t>(blen), &booster_bytes)) {
    return bad("xgboost model length does not match the rest of the payload");
  }
  VIGIL_ASSIGN_OR_RETURN(XgbBooster booster, XgbBooster::Load(booster_bytes, nf, src));
  std::unique_ptr<TriageModel> m(new TriageModel(std::move(booster)));
  m->options_.name = HeaderString(file, "name");
  m->options_.version = HeaderString(file, "version");
  m->options_.explain_top = static_cast<int>(explain);
  m->options_.booster.rounds = m->booster_.rounds();
  m->calibration_ = cal;
  m->names_ = std::move(names);
  m->featurizer_ = std::move(featurizer);
  return m;
}

}  // namespace vigil::model
