#include "model/triage_traces.h"

#include <algorithm>
#include <random>
#include <set>

#include "model/evaluation.h"

namespace vigil::model {
namespace {

using TraceRefs = std::vector<const LabelledTrace*>;

std::vector<int> FoldsOf(const TraceRefs& traces, int k, uint64_t seed) {
  struct Group {
    bool positive = false;
    std::string category;
  };
  std::map<std::string, Group> groups;
  for (const LabelledTrace* t : traces) {
    Group& g = groups[t->group];
    if (t->positive && !g.positive) {
      g.positive = true;
      g.category = t->category;
    }
  }
  std::map<std::string, std::vector<std::string>> positive_by_category;
  std::vector<std::string> negative;
  for (const auto& [name, g] : groups) {
    if (g.positive) {
      positive_by_category[g.category].push_back(name);
    } else {
      negative.push_back(name);
    }
  }
  std::map<std::string, int> fold_of_group;
  size_t next = 0;
  for (const auto& [category, names] : positive_by_category) {
    for (const std::string& n : names) fold_of_group[n] = static_cast<int>(next++ % k);
  }
  std::mt19937_64 rng(seed);
  for (size_t i = negative.size(); i > 1; --i) {
    std::swap(negative[i - 1], negative[static_cast<size_t>(rng() % i)]);
  }
  for (const std::string& n : negative) fold_of_group[n] = static_cast<int>(next++ % k);
  std::vector<int> out;
  out.reserve(traces.size());
  for (const LabelledTrace* t : traces) out.push_back(fold_of_group[t->group]);
  return out;
}

SyscallVocabulary VocabularyOf(const TraceRefs& traces) {
  std::vector<std::string> names;
  std::set<std::string, std::less<>> seen;
  for (const LabelledTrace* t : traces) {
    for (int32_t nr : t->syscalls) {
      const std::string_view name = core::SyscallName(t->arch, nr);
      if (name.empty() || seen.count(name)) continue;
      seen.emplace(name);
      names.emplace_back(name);
    }
  }
  // Names come from the syscall table: distinct, non-empty, far fewer than the limit.
  auto v = SyscallVocabulary::Create(std::move(names));
  return v.has_value() ? std::move(v).value() : SyscallVocabulary();
}

core::Result<std::shared_ptr<const SequenceModel>> TrainNgram(const TraceRefs& negatives,
                                                              const SequenceModelOptions& o) {
  std::vector<TrainingTrace> train;
  train.reserve(negatives.size());
  for (const LabelledTrace* t : negatives) train.push_back({"", t->arch, t->syscalls});
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<SequenceModel> m, SequenceModel::Train(train, o));
  return std::shared_ptr<const SequenceModel>(std::move(m));
}

core::Status CheckOptions(const TraceTriageOptions& o) {
  if (o.inner_folds < 2 || o.inner_folds > 20) {
    return core::InvalidArgument("inner folds must be in 2..20");
  }
  if (!(o.target_fpr > 0 && o.target_fpr < 1)) {
    return core::InvalidArgument("target false-alarm rate must be in (0, 1)");
  }
  return CheckBoosterParams(o.triage.booster);
}

core::Result<std::unique_ptr<TriageModel>> TrainOn(const TraceRefs& traces,
                                                   const TraceTriageOptions& o,
                                                   const TriageProgress& progress,
                                                   std::string_view stage) {
  const int k = o.inner_folds;
  const std::vector<int> fold = FoldsOf(traces, k, o.seed);
  auto vocab = VocabularyOf(traces);
  FeatureTable table;
  table.names = TraceFeaturizer::FeatureNames(vocab, o.ngram.order);
  table.values.assign(traces.size() * table.names.size(), 0.0f);
  for (const LabelledTrace* t : traces) table.labels.push_back(t->positive ? 1.0f : 0.0f);
  const size_t dims = table.names.size();
  for (int j = 0; j <= k; ++j) {
    // Folds 0..k-1 featurize their own traces with a model of the others' negatives; the last
    // pass trains on every negative and becomes the shipped featurizer.
    TraceRefs negatives;
    for (size_t i = 0; i < traces.size(); ++i) {
      if (!traces[i]->positive && fold[i] != j) negatives.push_back(traces[i]);
    }
    auto ngram = TrainNgram(negatives, o.ngram);
    if (!ngram.has_value()) {
      return ngram.error().WithContext(j < k ? "n-gram model of inner fold " + std::to_string(j)
                                             : std::string("n-gram model"));
    }
    auto featurizer = std::make_shared<TraceFeaturizer>(vocab, std::move(ngram).value());
    if (progress) progress(stage, static_cast<size_t>(j), static_cast<size_t>(k + 1));
    if (j == k) {
      return TriageModel::Train(table, o.triage, std::move(featurizer));
    }
    for (size_t i = 0; i < traces.size(); ++i) {
      if (fold[i] != j) continue;
      const std::vector<float> row = featurizer->Featurize(traces[i]->arch, traces[i]->syscalls);
      std::copy(row.begin(), row.end(), table.values.begin() + static_cast<ptrdiff_t>(i * dims));
    }
  }
  return core::Internal("unreachable");
}

DetectionMetrics MetricsOf(const std::vector<Scored>& ex) {
  DetectionMetrics m;
  m.auc = RocAuc(ex);
  m.tpr_at_fpr_1 = TprAtFpr(ex, 0.01);
  m.tpr_at_fpr_5 = TprAtFpr(ex, 0.05);
  for (const Scored& s : ex) m.positives += s.positive ? 1 : 0;
  return m;
}

TraceRefs RefsOf(std::span<const LabelledTrace> traces) {
  TraceRefs refs;
  refs.reserve(traces.size());
  for (const LabelledTrace& t : traces) refs.push_back(&t);
  return refs;
}

}  // namespace

std::vector<int> GroupFolds(std::span<const LabelledTrace> traces, int k, uint64_t seed) {
  return FoldsOf(RefsOf(traces), std::max(k, 1), seed);
}

core::Result<std::unique_ptr<TriageModel>> TrainTraceTriage(std::span<const LabelledTrace> traces,
                                                            const TraceTriageOptions& options,
                                                            const TriageProgress& progress) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  return TrainOn(RefsOf(traces), options, progress, "training");
}

core::Result<TraceCvResult> CrossValidateTraceTriage(std::span<const LabelledTrace> traces,
                                                     const TraceTriageOptions& options, int folds,
                                                     const TriageProgress& progress) {
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  if (folds < 2 || folds > 20)
    return core::InvalidArgument("cross-validation folds must be in 2..20");
  const TraceRefs all = RefsOf(traces);
  TraceCvResult out;
  out.folds = folds;
  out.fold_of = FoldsOf(all, folds, options.seed ^ 0x9e3779b97f4a7c15ull);
  out.scores.assign(traces.size(), 0.0);
  for (int f = 0; f < folds; ++f) {
    TraceRefs train;
    std::vector<size_t> test;
    for (size_t i = 0; i < traces.size(); ++i) {
      if (out.fold_of[i] == f) {
        test.push_back(i);
      } else {
        train.push_back(all[i]);
      }
    }
    if (test.empty())
      return core::InvalidArgument("cross-validation fold " + std::to_string(f) +
                                   " is empty (fewer groups than folds)");
    const std::string stage = "fold " + std::to_string(f + 1) + "/" + std::to_string(folds);
    auto model = TrainOn(train, options, progress, stage);
    if (!model.has_value()) return model.error().WithContext(stage);
    const TraceFeaturizer& fz = *(*model)->featurizer();
    std::vector<float> values;
    values.reserve(test.size() * fz.dims());
    for (size_t i : test) {
      const std::vector<float> row = fz.Featurize(traces[i].arch, traces[i].syscalls);
      values.insert(values.end(), row.begin(), row.end());
    }
    VIGIL_ASSIGN_OR_RETURN(std::vector<float> scores, (*model)->ScoreRows(values, test.size()));
    for (size_t n = 0; n < test.size(); ++n) out.scores[test[n]] = scores[n];
  }
  std::vector<Scored> all_scored;
  std::vector<Scored> negatives;
  std::vector<double> negative_scores;
  std::map<std::string, std::vector<Scored>> by_category;
  for (size_t i = 0; i < traces.size(); ++i) {
    const Scored s{out.scores[i], traces[i].positive};
    all_scored.push_back(s);
    if (traces[i].positive) {
      by_category[traces[i].category].push_back(s);
    } else {
      negatives.push_back(s);
      negative_scores.push_back(s.score);
    }
  }
  out.overall = MetricsOf(all_scored);
  for (auto& [category, pos] : by_category) {
    std::vector<Scored> ex = negatives;
    ex.insert(ex.end(), pos.begin(), pos.end());
    out.per_category[category] = MetricsOf(ex);
  }
  TriageCalibration& c = out.calibration;
  c.method = "cross-validation";
  c.target_fpr = options.target_fpr;
  c.threshold = std::clamp(ThresholdForFpr(negative_scores, options.target_fpr), 0.0, 1.0);
  size_t over = 0;
  for (double s : negative_scores) over += s >= c.threshold ? 1 : 0;
  c.achieved_fpr = negative_scores.empty()
                       ? 0.0
                       : static_cast<double>(over) / static_cast<double>(negative_scores.size());
  c.rows = traces.size();
  return out;
}

}  // namespace vigil::model
