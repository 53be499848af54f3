#include "model/sequence_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "model/calibration.h"
#include "model/evaluation.h"
#include "model/internal/bytes.h"
#include "model/internal/call_names.h"
#include "model/internal/top_calls.h"

namespace vigil::model {
namespace {

constexpr size_t kMaxNgramVocab = (1u << kTokenBits) - 1;
constexpr size_t kMaxSubjects = 100000;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double MeanSurprisal(const NgramLm& lm, std::span<const Token> tokens) {
  if (tokens.empty()) return 0.0;
  double sum = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    sum += lm.Surprisal(tokens.data(), static_cast<int>(i), tokens[i]);
  }
  return sum / static_cast<double>(tokens.size());
}

// The scorer of one stream: the last order-1 tokens, the running surprisal sum and the k most
// surprising n-grams so far. Observe() does no allocation.
class SequenceStream final : public StreamScorer {
 public:
  SequenceStream(const SequenceModel& model, const SequenceModel::Subject& subject)
      : model_(model),
        subject_(subject),
        order_(subject.lm->order()),
        top_(model.options().explain_top) {}

  void Observe(const core::Event& e) override {
    if (e.kind != core::EventKind::kSyscall) return;
    Push(model_.TokenOf(e.syscall.arch, e.syscall.nr),
         internal::CallId(e.syscall.arch, e.syscall.nr));
  }

  // A run of calls is scored NgramLm::kRunMax at a time with SurprisalRun (the history, then
  // the chunk's tokens, in one buffer), whose probes overlap; then each call is taken in order
  // as Push would.
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    constexpr int kChunk = NgramLm::kRunMax;
    Token seq[kMaxOrder + kChunk];
    float bits[kChunk];
    for (size_t at = 0; at < nrs.size(); at += kChunk) {
      const int n = static_cast<int>(std::min<size_t>(kChunk, nrs.size() - at));
      const int hist = hlen_;  // Take() moves hlen_
      std::copy(history_, history_ + hist, seq);
      for (int i = 0; i < n; ++i) {
        seq[hist + i] = model_.TokenOf(arch, nrs[at + static_cast<size_t>(i)]);
      }
      subject_.lm->SurprisalRun(seq, hist, n, bits);
      for (int i = 0; i < n; ++i) {
        Take(seq[hist + i], internal::CallId(arch, nrs[at + static_cast<size_t>(i)]), bits[i]);
      }
    }
  }

  // Token t of the model's vocabulary, and the call it came from (for explanations of calls the
  // model never saw).
  void Push(Token t, uint32_t raw) { Take(t, raw, subject_.lm->Surprisal(history_, hlen_, t)); }

  // Token t with its surprisal s given the stream's history so far.
  void Take(Token t, uint32_t raw, float s) {
    sum_ += s;
    ++count_;
    if (top_.Qualifies(s)) RecordTop(s, raw);
    if (order_ > 1) {
      if (hlen_ < order_ - 1) {
        raw_[hlen_] = raw;
        history_[hlen_++] = t;
      } else {
        std::copy(history_ + 1, history_ + hlen_, history_);
        std::copy(raw_ + 1, raw_ + hlen_, raw_);
        history_[hlen_ - 1] = t;
        raw_[hlen_ - 1] = raw;
      }
    }
  }

  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = model_.name();
    v.model_version = model_.version();
    v.subject = subject_.name;
    v.events = count_;
    if (count_ == 0) return v;
    const double raw = sum_ / static_cast<double>(count_);
    const Calibration& c = subject_.calibration;
    v.score = Sigmoid((raw - c.threshold) / c.scale);
    v.anomalous = raw >= c.threshold;
    top_.AppendTo(&v.explanation);
    return v;
  }

  uint64_t observed() const override { return count_; }

 private:
  void RecordTop(float s, uint32_t raw) {
    const int hl = std::min(hlen_, order_ - 1);
    uint32_t ids[kMaxOrder];
    std::copy(raw_ + (hlen_ - hl), raw_ + hlen_, ids);
    ids[hl] = raw;
    top_.Record(s, ids, hl + 1);
  }

  const SequenceModel& model_;
  const SequenceModel::Subject& subject_;
  const int order_;
  Token history_[kMaxOrder] = {};
  uint32_t raw_[kMaxOrder] = {};  // the calls behind history_
  int hlen_ = 0;
  double sum_ = 0;
  uint64_t count_ = 0;
  internal::TopCalls top_;
};

std::vector<Token> Tokenize(const SequenceModel& m, core::Arch arch, std::span<const int32_t> s) {
  std::vector<Token> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = m.TokenOf(arch, s[i]);
  return out;
}

// Out-of-fold raw scores of `traces` go to `oof`.
Calibration Calibrate(const std::vector<const std::vector<Token>*>& traces, int order,
                      size_t vocab, const SequenceModelOptions& o, std::vector<double>& oof) {
  oof.clear();
  oof.reserve(traces.size());
  const auto folds = static_cast<size_t>(o.folds);
  for (size_t f = 0; f < folds; ++f) {
    NgramLm lm(order, vocab);
    for (size_t i = 0; i < traces.size(); ++i) {
      if (i % folds != f) lm.AddSequence(*traces[i]);
    }
    lm.Finalize();
    for (size_t i = f; i < traces.size(); i += folds) oof.push_back(MeanSurprisal(lm, *traces[i]));
  }
  Calibration c;
  c.traces = oof.size();
  c.median = Quantile(oof, 0.5);
  const auto record = CalibrateThreshold(oof, o.target_fpr, "cross-fitted", "");
  const double at_target =
      record.has_value() ? record->threshold : std::numeric_limits<double>::infinity();
  c.threshold = std::max(at_target, c.median + o.min_margin_bits);
  c.achieved_fpr = FalseAlarmRate(oof, c.threshold);
  // The median normal trace maps to 0.05: (median - threshold) / scale = ln(0.05 / 0.95).
  const double gap = c.threshold - c.median;
  c.scale = gap > 1e-6 ? gap / std::log(19.0) : std::max(0.05 * std::fabs(c.threshold), 1e-3);
  return c;
}

}  // namespace

core::Result<std::unique_ptr<SequenceModel>> SequenceModel::Train(
    std::span<const TrainingTrace> traces, const SequenceModelOptions& options) {
  if (options.order < 1 || options.order > kMaxOrder) {
    return core::InvalidArgument("order " + std::to_string(options.order) + " is outside 1.." +
                                 std::to_string(kMaxOrder));
  }
  if (!(options.target_fpr > 0.0 && options.target_fpr < 1.0)) {
    return core::InvalidArgument("target_fpr must be in (0, 1)");
  }
  if (options.folds < 2) return core::InvalidArgument("folds must be at least 2");
  if (traces.size() < static_cast<size_t>(options.folds)) {
    return core::InvalidArgument("need at least " + std::to_string(options.folds) +
                                 " training traces, got " + std::to_string(traces.size()));
  }
  std::unique_ptr<SequenceModel> m(new SequenceModel());
  m->options_ = options;
  // Vocabulary: every syscall name seen in training, in order of first appearance.
  std::map<std::string, Token, std::less<>> index;
  for (const TrainingTrace& t : traces) {
    for (int32_t nr : t.syscalls) {
      const std::string_view name = core::SyscallName(t.arch, nr);
      if (name.empty() || index.count(name)) continue;
      if (m->vocab_.size() >= kMaxNgramVocab) return core::InvalidArgument("vocabulary too large");
      m->vocab_.emplace_back(name);
      index.emplace(std::string(name), static_cast<Token>(m->vocab_.size()));
    }
  }
  m->BuildLookup();

  std::vector<std::vector<Token>> tokens;
  tokens.reserve(traces.size());
  std::map<std::string, std::vector<const std::vector<Token>*>, std::less<>> by_subject;
  for (const TrainingTrace& t : traces) {
    tokens.push_back(Tokenize(*m, t.arch, t.syscalls));
  }
  for (size_t i = 0; i < traces.size(); ++i) {
    by_subject[std::string(kGlobalSubject)].push_back(&tokens[i]);
    if (!traces[i].subject.empty() && traces[i].subject != kGlobalSubject) {
      by_subject[traces[i].subject].push_back(&tokens[i]);
    }
  }
  std::vector<double> oof, global_oof;
  for (auto& [subject, list] : by_subject) {
    if (subject != kGlobalSubject && list.size() < options.min_subject_traces) continue;
    Subject s;
    s.name = subject;
    s.lm = std::make_unique<NgramLm>(options.order, m->vocab_size());
    for (const auto* seq : list) s.lm->AddSequence(*seq);
    s.lm->Finalize();
    s.calibration = Calibrate(list, options.order, m->vocab_size(), options, oof);
    if (subject == kGlobalSubject) global_oof.swap(oof);
    m->subjects_.emplace(subject, std::move(s));
  }
  // The record of the global model's calibration (the calibration set is every training trace),
  // and the reference distribution of its out-of-fold scores for drift monitoring.
  const Calibration& global = m->CalibrationFor(kGlobalSubject);
  std::vector<double> scores;
  for (double raw : global_oof) scores.push_back(m->ScoreFromRaw(kGlobalSubject, raw));
  m->record_ = CrossFittedRecord(traces, "bits/syscall", global.threshold, options.target_fpr,
                                 global.achieved_fpr, scores);
  return m;
}

void SequenceModel::BuildLookup() {
  for (auto& row : lut_) row.fill(0);
  for (size_t i = 0; i < vocab_.size(); ++i) {
    for (core::Arch arch : {core::Arch::kI386, core::Arch::kX86_64}) {
      const int nr = core::SyscallNumber(arch, vocab_[i]);
      if (nr >= 0) lut_[static_cast<size_t>(arch)][static_cast<size_t>(nr)] = static_cast<Token>(i + 1);
    }
  }
}

const std::string& SequenceModel::TokenName(Token t) const {
  static const std::string kUnknown = "<unknown>";
  if (t == 0 || t > vocab_.size()) return kUnknown;
  return vocab_[t - 1];
}

const SequenceModel::Subject& SequenceModel::SubjectFor(std::string_view subject) const {
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) it = subjects_.find(kGlobalSubject);
  return it->second;
}

const Calibration& SequenceModel::CalibrationFor(std::string_view subject) const {
  return SubjectFor(subject).calibration;
}

std::vector<std::string> SequenceModel::subjects() const {
  std::vector<std::string> out;
  for (const auto& [name, s] : subjects_) out.push_back(name);
  return out;
}

std::unique_ptr<StreamScorer> SequenceModel::NewStream(std::string_view subject) const {
  return std::make_unique<SequenceStream>(*this, SubjectFor(subject));
}

core::Result<core::Verdict> SequenceModel::Score(const FeatureView& request) const {
  if (request.syscalls.empty() && !request.values.empty()) return Model::Score(request);
  SequenceStream stream(*this, SubjectFor(request.subject));
  stream.ObserveSyscalls(request.arch, request.syscalls);
  return stream.Current();
}

double SequenceModel::RawScore(std::string_view subject, core::Arch arch,
                               std::span<const int32_t> syscalls) const {
  const std::vector<Token> t = Tokenize(*this, arch, syscalls);
  return MeanSurprisal(*SubjectFor(subject).lm, t);
}

double SequenceModel::ScoreFromRaw(std::string_view subject, double raw) const {
  const Calibration& c = CalibrationFor(subject);
  return Sigmoid((raw - c.threshold) / c.scale);
}

ModelFile SequenceModel::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = family_;
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  f.header["params"] = {{"order", options_.order},
                        {"target_fpr", options_.target_fpr},
                        {"folds", options_.folds},
                        {"min_subject_traces", options_.min_subject_traces},
                        {"explain_top", options_.explain_top},
                        {"min_margin_bits", options_.min_margin_bits},
                        {"vocab_size", vocab_size()}};
  nlohmann::json subjects = nlohmann::json::object();
  for (const auto& [name, s] : subjects_) {
    subjects[name] = {{"threshold", s.calibration.threshold},
                 {"achieved_fpr", s.calibration.achieved_fpr},
                 {"median", s.calibration.median},
                 {"traces", s.calibration.traces},
                 {"ngrams", s.lm->distinct_ngrams()}};
  }
  f.header["calibration"] = {{"subjects", std::move(subjects)}};
  record_.WriteTo(f.header);

  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(options_.order));
  w.F64(options_.target_fpr);
  w.U32(static_cast<uint32_t>(options_.explain_top));
  w.U32(static_cast<uint32_t>(vocab_.size()));
  for (const std::string& name : vocab_) w.Str16(name);
  w.U32(static_cast<uint32_t>(subjects_.size()));
  for (const auto& [name, s] : subjects_) {
    w.Str16(name);
    w.F64(s.calibration.threshold);
    w.F64(s.calibration.scale);
    w.F64(s.calibration.median);
    w.F64(s.calibration.achieved_fpr);
    w.U64(s.calibration.traces);
    // Sorted so that the same model always gives the same bytes.
    std::vector<std::pair<uint64_t, uint32_t>> counts;
    counts.reserve(s.lm->raw_counts().size());
    s.lm->raw_counts().ForEach([&](uint64_t k, uint32_t c) { counts.emplace_back(k, c); });
    std::sort(counts.begin(), counts.end());
    w.U64(counts.size());
    for (const auto& [k, c] : counts) {
      w.U64(k);
      w.U32(c);
    }
  }
  f.payload = std::move(w.str());
  return f;
}

core::Result<std::unique_ptr<SequenceModel>> SequenceModel::FromFile(const ModelFile& file,
                                                                     std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kSequenceFamily, source));
  std::unique_ptr<SequenceModel> m(new SequenceModel());
  m->options_.name = HeaderString(file, "name");
  m->options_.version = HeaderString(file, "version");
  internal::ByteReader r(file.payload);
  uint32_t order = 0, explain = 0, nvocab = 0, nsubjects = 0;
  double fpr = 0;
  if (!r.U32(&order) || !r.F64(&fpr) || !r.U32(&explain) || !r.U32(&nvocab)) {
    return bad("truncated in the parameters");
  }
  if (order < 1 || order > static_cast<uint32_t>(kMaxOrder)) {
    return bad("order " + std::to_string(order) + " outside 1.." + std::to_string(kMaxOrder));
  }
  if (explain > static_cast<uint32_t>(kMaxExplainTop)) {
    return bad("explain_top " + std::to_string(explain) + " is too large");
  }
  if (nvocab > kMaxNgramVocab) return bad("vocabulary of " + std::to_string(nvocab) + " tokens");
  m->options_.order = static_cast<int>(order);
  m->options_.target_fpr = fpr;
  m->options_.explain_top = static_cast<int>(explain);
  m->vocab_.resize(nvocab);
  for (uint32_t i = 0; i < nvocab; ++i) {
    if (!r.Str16(&m->vocab_[i])) return bad("truncated in vocabulary entry " + std::to_string(i));
  }
  m->BuildLookup();
  if (!r.U32(&nsubjects)) return bad("truncated before the subject count");
  if (nsubjects == 0 || nsubjects > kMaxSubjects) {
    return bad("subject count " + std::to_string(nsubjects) + " out of range");
  }
  for (uint32_t si = 0; si < nsubjects; ++si) {
    Subject s;
    uint64_t traces = 0, n = 0;
    Calibration& c = s.calibration;
    if (!r.Str16(&s.name) || !r.F64(&c.threshold) || !r.F64(&c.scale) || !r.F64(&c.median) ||
        !r.F64(&c.achieved_fpr) || !r.U64(&traces) || !r.U64(&n)) {
      return bad("truncated in subject " + std::to_string(si));
    }
    c.traces = traces;
    if (!std::isfinite(c.threshold) || !std::isfinite(c.scale) || c.scale <= 0) {
      return bad("subject \"" + s.name + "\": calibration is not finite/positive");
    }
    if (n > r.remaining() / 12) return bad("subject \"" + s.name + "\": n-gram count " +
                                           std::to_string(n) + " runs past the end");
    s.lm = std::make_unique<NgramLm>(static_cast<int>(order), m->vocab_size());
    Token toks[kMaxOrder];
    uint64_t prev_key = 0, total = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t key = 0;
      uint32_t count = 0;
      (void)r.U64(&key);
      (void)r.U32(&count);
      const int ko = NgramLm::KeyOrder(key);
      if (ko < 1 || ko > static_cast<int>(order) || count == 0) {
        return bad("subject \"" + s.name + "\": n-gram " + std::to_string(i) + " is malformed");
      }
      // Strictly ascending keys: the canonical form ToFile writes, and no key counted twice.
      if (key <= prev_key) {
        return bad("subject \"" + s.name + "\": n-gram " + std::to_string(i) +
                   " is out of order (keys must be strictly ascending)");
      }
      prev_key = key;
      // Keeps every per-context sum that Finalize() accumulates in 32 bits from wrapping.
      total += count;
      if (total > UINT32_MAX / 2) {
        return bad("subject \"" + s.name + "\": n-gram counts sum past " +
                   std::to_string(UINT32_MAX / 2));
      }
      NgramLm::KeyTokens(key, toks);
      if (NgramLm::Key(toks, ko) != key) {
        return bad("subject \"" + s.name + "\": n-gram " + std::to_string(i) + " has stray bits");
      }
      for (int t = 0; t < ko; ++t) {
        if (toks[t] > nvocab) {
          return bad("subject \"" + s.name + "\": n-gram " + std::to_string(i) +
                     " uses a token outside the vocabulary");
        }
      }
      s.lm->AddCount(key, count);
    }
    s.lm->Finalize();
    if (!m->subjects_.emplace(s.name, std::move(s)).second) return bad("duplicate subject");
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  if (m->subjects_.find(kGlobalSubject) == m->subjects_.end()) {
    return bad("no global (\"*\") subject model");
  }
  VIGIL_ASSIGN_OR_RETURN(m->record_, TrainingRecord::ReadFrom(file.header, source));
  return m;
}

core::Result<std::unique_ptr<SequenceModel>> LoadSequenceModel(const std::string& path) {
  auto file = ReadModelFile(path);
  if (!file.has_value()) return file.error();
  return SequenceModel::FromFile(*file, path);
}

}  // namespace vigil::model
