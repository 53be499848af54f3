#include "model/kitnet_model.h"

#include <algorithm>
#include <unordered_map>

namespace vigil::model {
namespace {

constexpr size_t kMaxBigrams = 1024;
constexpr char kPairSeparator = '>';

uint64_t PairKey(uint32_t a, uint32_t b) {
  return (uint64_t{a} + 1) << 32 | (uint64_t{b} + 1);
}

}  // namespace

core::Result<TraceFeatureSpace> TraceFeatureSpace::Create(
    SyscallVocabulary vocab, std::vector<std::pair<uint32_t, uint32_t>> pairs) {
  if (pairs.size() > kMaxBigrams) {
    return core::InvalidArgument(std::to_string(pairs.size()) + " call pairs; at most " +
                                 std::to_string(kMaxBigrams));
  }
  TraceFeatureSpace s;
  s.vocab_ = std::move(vocab);
  s.pair_index_.Reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto [a, b] = pairs[i];
    if (a > s.vocab_.size() || b > s.vocab_.size()) {
      return core::InvalidArgument("call pair " + std::to_string(i) + " is outside the vocabulary");
    }
    uint32_t& slot = s.pair_index_[PairKey(a, b)];
    if (slot != 0) return core::InvalidArgument("call pair " + std::to_string(i) + " repeats");
    slot = static_cast<uint32_t>(s.vocab_.dims() + i) + 1;  // +1: 0 marks a fresh slot
  }
  s.pairs_ = std::move(pairs);
  return s;
}

core::Result<TraceFeatureSpace> TraceFeatureSpace::FromNames(std::span<const std::string> names) {
  const auto other = std::find(names.begin(), names.end(), kOtherSyscallFeature);
  if (other == names.end()) {
    return core::InvalidArgument("the feature names hold no \"<other>\" system call");
  }
  auto vocab = SyscallVocabulary::Create({names.begin(), other});
  if (!vocab.has_value()) return vocab.error();
  auto index_of = [&](std::string_view n) -> int64_t {
    if (n == kOtherSyscallFeature) return static_cast<int64_t>(vocab->size());
    const auto& v = vocab->names();
    const auto it = std::find(v.begin(), v.end(), n);
    return it == v.end() ? -1 : it - v.begin();
  };
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  for (auto it = other + 1; it != names.end(); ++it) {
    const size_t sep = it->find(kPairSeparator);
    const std::string_view pair(*it);
    const int64_t a = sep == std::string::npos ? -1 : index_of(pair.substr(0, sep));
    const int64_t b = sep == std::string::npos ? -1 : index_of(pair.substr(sep + 1));
    if (a < 0 || b < 0) {
      return core::InvalidArgument("feature \"" + *it +
                                   "\" is not a pair \"a>b\" of vocabulary calls");
    }
    pairs.emplace_back(static_cast<uint32_t>(a), static_cast<uint32_t>(b));
  }
  return Create(std::move(vocab).value(), std::move(pairs));
}

core::Result<TraceFeatureSpace> TraceFeatureSpace::Learn(std::span<const TrainingTrace> traces,
                                                         size_t bigrams) {
  if (bigrams > kMaxBigrams) {
    return core::InvalidArgument("bigrams " + std::to_string(bigrams) + " is above " +
                                 std::to_string(kMaxBigrams));
  }
  auto vocab = SyscallVocabulary::FromTraces(traces);
  if (!vocab.has_value()) return vocab.error();
  // Pair counts, remembering first appearance so that ties break the same way every run.
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> seen;  // key -> (count, first)
  for (const TrainingTrace& t : traces) {
    for (size_t i = 1; i < t.syscalls.size(); ++i) {
      const uint32_t a = vocab->IndexOf(t.arch, t.syscalls[i - 1]);
      const uint32_t b = vocab->IndexOf(t.arch, t.syscalls[i]);
      auto [it, fresh] = seen.try_emplace(PairKey(a, b), 0, seen.size());
      ++it->second.first;
    }
  }
  std::vector<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> ranked(seen.begin(), seen.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) {
    return x.second.first != y.second.first ? x.second.first > y.second.first
                                            : x.second.second < y.second.second;
  });
  if (ranked.size() > bigrams) ranked.resize(bigrams);
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  for (const auto& r : ranked) {
    pairs.emplace_back(static_cast<uint32_t>((r.first >> 32) - 1),
                       static_cast<uint32_t>((r.first & 0xffffffffu) - 1));
  }
  return Create(std::move(vocab).value(), std::move(pairs));
}

std::vector<std::string> TraceFeatureSpace::FeatureNames() const {
  std::vector<std::string> names = vocab_.FeatureNames();
  const std::vector<std::string> uni = names;
  for (const auto& [a, b] : pairs_) names.push_back(uni[a] + kPairSeparator + uni[b]);
  return names;
}

void TraceFeatureSpace::Counter::Add(core::Arch arch, int32_t nr) {
  const uint32_t t = space_->vocab_.IndexOf(arch, nr);
  ++counts_[t];
  if (total_ > 0) {
    if (const uint32_t* f = space_->pair_index_.Find(PairKey(last_, t))) ++counts_[*f - 1];
  }
  last_ = t;
  ++total_;
}

void TraceFeatureSpace::Counter::Row(std::span<float> out) const {
  const size_t uni = space_->vocab_.dims();
  const double n = static_cast<double>(total_);
  const double pairs = total_ > 1 ? static_cast<double>(total_ - 1) : 0.0;
  for (size_t i = 0; i < counts_.size() && i < out.size(); ++i) {
    const double d = i < uni ? n : pairs;
    out[i] = d > 0.0 ? static_cast<float>(static_cast<double>(counts_[i]) / d) : 0.0f;
  }
}

std::vector<float> TraceFeatureSpace::Row(core::Arch arch, std::span<const int32_t> nrs) const {
  Counter c(*this);
  for (int32_t nr : nrs) c.Add(arch, nr);
  std::vector<float> row(dims());
  c.Row(row);
  return row;
}

// ---------------------------------------------------------------------------------------------

namespace {

class KitNetStream final : public StreamScorer {
 public:
  KitNetStream(const KitNetModel& model, std::string_view subject)
      : model_(model), subject_(subject), counter_(model.space()), row_(model.space().dims()) {}

  void Observe(const core::Event& e) override {
    if (e.kind == core::EventKind::kSyscall) counter_.Add(e.syscall.arch, e.syscall.nr);
  }
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    for (int32_t nr : nrs) counter_.Add(arch, nr);
  }

  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = model_.name();
    v.model_version = model_.version();
    v.subject = subject_;
    v.events = counter_.total();
    if (counter_.total() == 0) return v;
    counter_.Row(row_);
    const KitNet& net = model_.net();
    const double raw = net.Score(row_, ws_);
    v.score = net.UnitScore(raw);
    v.anomalous = net.IsAnomalous(raw);
    const auto k = static_cast<size_t>(net.options().explain_top);
    for (const FeatureWeight& w : net.Explain(row_, k, ws_)) {
      v.explanation.push_back({net.feature_names()[w.feature], w.weight});
    }
    return v;
  }

  uint64_t observed() const override { return counter_.total(); }

 private:
  const KitNetModel& model_;
  std::string subject_;
  TraceFeatureSpace::Counter counter_;
  mutable std::vector<float> row_;  // scratch for Current()
  mutable KitNet::Workspace ws_;
};

}  // namespace

core::Result<std::unique_ptr<KitNetModel>> KitNetModel::Train(std::span<const TrainingTrace> traces,
                                                              const KitNetModelOptions& options,
                                                              const ProgressFn& progress) {
  if (traces.empty()) return core::InvalidArgument("no training traces");
  auto space = TraceFeatureSpace::Learn(traces, options.bigrams);
  if (!space.has_value()) return space.error();
  std::vector<std::vector<float>> rows;
  rows.reserve(traces.size());
  for (const TrainingTrace& t : traces) rows.push_back(space->Row(t.arch, t.syscalls));
  KitNetOptions o = options.net;
  o.feature_names = space->FeatureNames();
  auto net = KitNet::Train(rows, o, progress);
  if (!net.has_value()) return net.error();
  return std::unique_ptr<KitNetModel>(
      new KitNetModel(std::move(net).value(), std::move(space).value()));
}

core::Result<std::unique_ptr<KitNetModel>> KitNetModel::FromFile(const ModelFile& file,
                                                                 std::string_view source,
                                                                 KitNetPrecision precision) {
  auto net = KitNet::FromFile(file, source, precision);
  if (!net.has_value()) return net.error();
  auto space = TraceFeatureSpace::FromNames(net->feature_names());
  if (!space.has_value()) {
    return core::DataLoss(std::string(source) + ": payload: " + space.error().message());
  }
  if (space->dims() != net->dims()) {
    return core::DataLoss(std::string(source) + ": payload: the feature names do not cover dims");
  }
  return std::unique_ptr<KitNetModel>(
      new KitNetModel(std::move(net).value(), std::move(space).value()));
}

std::unique_ptr<StreamScorer> KitNetModel::NewStream(std::string_view subject) const {
  return std::make_unique<KitNetStream>(*this, subject);
}

double KitNetModel::ScoreTrace(core::Arch arch, std::span<const int32_t> nrs) const {
  return net_.Score(space_.Row(arch, nrs));
}

}  // namespace vigil::model
