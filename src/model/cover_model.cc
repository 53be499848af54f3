#include "model/cover_model.h"

#include <algorithm>
#include <cmath>

#include "model/internal/bytes.h"
#include "model/internal/calibrated_stream.h"
#include "model/internal/call_names.h"
#include "model/internal/top_calls.h"

namespace vigil::model {
namespace {

constexpr uint64_t kMaxCorpusTokens = uint64_t{1} << 28;

// The scorer of one stream: the greedy covering so far, the last calls of the current segment
// and the shortest segments ended so far. Observe() does no allocation.
class CoverStream final : public internal::CalibratedSyscallStream<CoverStream> {
 public:
  explicit CoverStream(const CoverModel& model)
      : model_(model),
        walk_(model.index()),
        context_(std::clamp(model.options().explain_context, 0, internal::TopCalls::kMaxCalls - 1)),
        top_(model.options().explain_top) {}

  core::Verdict Current() const override {
    return Verdict(
        model_, walk_.tokens(), [&] { return walk_.SegmentsPerToken(); }, top_);
  }
  uint64_t observed() const override { return walk_.tokens(); }

 private:
  friend class internal::CalibratedSyscallStream<CoverStream>;
  void Push(core::Arch arch, int32_t nr) {
    const uint32_t id = internal::CallId(arch, nr);
    const uint64_t ended = walk_.Push(model_.vocabulary().IndexOf(arch, nr));
    // A segment of n calls ended at this call: the shorter, the less of this stretch any training
    // trace explains. Weight 1/n, named by the segment's last calls and the call that broke it.
    if (ended > 0 && top_.Qualifies(1.0f / static_cast<float>(ended))) {
      uint32_t ids[kRing + 1] = {};
      const int n = std::min(static_cast<int>(std::min<uint64_t>(ended, kRing - 1)), context_);
      for (int i = 0; i < n; ++i) ids[i] = recent_[(next_ + kRing - n + i) % kRing];
      ids[n] = id;
      top_.Record(1.0f / static_cast<float>(ended), ids, n + 1);
    }
    recent_[next_] = id;
    next_ = (next_ + 1) % kRing;
  }

  static constexpr int kRing = internal::TopCalls::kMaxCalls;
  const CoverModel& model_;
  CoverWalk walk_;
  const int context_;
  uint32_t recent_[kRing] = {};
  int next_ = 0;
  internal::TopCalls top_;
};

std::vector<uint32_t> Tokens(const SyscallVocabulary& vocab, core::Arch arch,
                             std::span<const int32_t> syscalls) {
  std::vector<uint32_t> out(syscalls.size());
  for (size_t i = 0; i < syscalls.size(); ++i) out[i] = vocab.IndexOf(arch, syscalls[i]);
  return out;
}

// Adds one trace's tokens to an index; calls outside the vocabulary split the trace.
void AddTrace(CoverIndex* index, const SyscallVocabulary& vocab, std::span<const uint32_t> t) {
  index->BeginSequence();
  for (uint32_t tok : t) {
    if (tok >= vocab.size()) {
      index->BeginSequence();
    } else {
      index->Append(tok);
    }
  }
}

}  // namespace

core::Result<std::unique_ptr<CoverModel>> CoverModel::Train(std::span<const TrainingTrace> traces,
                                                            const CoverModelOptions& options) {
  if (!(options.target_fpr > 0.0 && options.target_fpr < 1.0)) {
    return core::InvalidArgument("target_fpr must be in (0, 1)");
  }
  if (options.folds < 2) return core::InvalidArgument("folds must be at least 2");
  if (options.explain_top < 0 || options.explain_top > kMaxExplainTop) {
    return core::InvalidArgument("explain_top must be in 0.." + std::to_string(kMaxExplainTop));
  }
  if (traces.size() < static_cast<size_t>(options.folds)) {
    return core::InvalidArgument("need at least " + std::to_string(options.folds) +
                                 " training traces, got " + std::to_string(traces.size()));
  }
  std::unique_ptr<CoverModel> m(new CoverModel());
  m->options_ = options;
  VIGIL_ASSIGN_OR_RETURN(m->vocab_, SyscallVocabulary::FromTraces(traces));
  if (m->vocab_.size() >= CoverIndex::kMaxTokens) {
    return core::InvalidArgument("vocabulary of " + std::to_string(m->vocab_.size()) +
                                 " calls is too large");
  }
  std::vector<std::vector<uint32_t>> tokens;
  tokens.reserve(traces.size());
  uint64_t total = 0;
  for (const TrainingTrace& t : traces) {
    tokens.push_back(Tokens(m->vocab_, t.arch, t.syscalls));
    total += t.syscalls.size() + 1;
  }
  if (total > kMaxCorpusTokens) return core::InvalidArgument("training traces too long");
  // Cross-fitted calibration: each fold is covered by an index of the other folds.
  const auto folds = static_cast<size_t>(options.folds);
  std::vector<double> oof;
  oof.reserve(traces.size());
  for (size_t f = 0; f < folds; ++f) {
    CoverIndex index;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i % folds != f) AddTrace(&index, m->vocab_, tokens[i]);
    }
    for (size_t i = f; i < tokens.size(); i += folds) {
      if (!tokens[i].empty()) oof.push_back(CoverScore(index, tokens[i]));
    }
  }
  m->calibration_ = CalibrateHeldOut(oof, options.target_fpr, 0.0);
  std::vector<double> scores;
  for (double raw : oof) scores.push_back(m->ScoreFromRaw(raw));
  m->record_ = CrossFittedRecord(traces, "segments/call", m->calibration_.threshold,
                                 options.target_fpr, m->calibration_.achieved_fpr, scores);
  m->corpus_.reserve(total);
  for (const std::vector<uint32_t>& t : tokens) {
    m->corpus_.push_back(kSequenceStart);
    for (uint32_t tok : t) m->corpus_.push_back(static_cast<uint16_t>(tok));
  }
  m->BuildIndex();
  return m;
}

void CoverModel::BuildIndex() {
  index_ = CoverIndex();
  for (uint16_t t : corpus_) {
    if (t == kSequenceStart || t >= vocab_.size()) {
      index_.BeginSequence();
    } else {
      index_.Append(t);
    }
  }
}

std::unique_ptr<StreamScorer> CoverModel::NewStream(std::string_view) const {
  return std::make_unique<CoverStream>(*this);
}

core::Result<core::Verdict> CoverModel::Score(const FeatureView& request) const {
  if (request.syscalls.empty() && !request.values.empty()) return Model::Score(request);
  CoverStream stream(*this);
  stream.ObserveSyscalls(request.arch, request.syscalls);
  return stream.Current();
}

double CoverModel::RawScore(core::Arch arch, std::span<const int32_t> syscalls) const {
  return CoverScore(index_, Tokens(vocab_, arch, syscalls));
}

ModelFile CoverModel::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = family_;
  f.header["name"] = options_.name;
  f.header["version"] = options_.version;
  f.header["params"] = {
      {"target_fpr", options_.target_fpr},   {"folds", options_.folds},
      {"explain_top", options_.explain_top}, {"explain_context", options_.explain_context},
      {"vocab_size", vocab_.size()},         {"corpus_tokens", corpus_.size()},
      {"index_states", index_.states()}};
  f.header["calibration"] = ToJson(calibration_);
  record_.WriteTo(f.header);
  internal::ByteWriter w;
  w.F64(options_.target_fpr);
  w.U32(static_cast<uint32_t>(options_.explain_top));
  w.U32(static_cast<uint32_t>(options_.explain_context));
  PutCalibration(&w, calibration_);
  w.U32(static_cast<uint32_t>(vocab_.size()));
  for (const std::string& name : vocab_.names()) w.Str16(name);
  w.U64(corpus_.size());
  for (uint16_t t : corpus_) w.U16(t);
  f.payload = std::move(w.str());
  return f;
}

core::Result<std::unique_ptr<CoverModel>> CoverModel::FromFile(const ModelFile& file,
                                                               std::string_view source) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kCoverFamily, source));
  std::unique_ptr<CoverModel> m(new CoverModel());
  m->options_.name = HeaderString(file, "name");
  m->options_.version = HeaderString(file, "version");
  internal::ByteReader r(file.payload);
  double fpr = 0;
  uint32_t top = 0, context = 0, nvocab = 0;
  if (!r.F64(&fpr) || !r.U32(&top) || !r.U32(&context)) return bad("truncated in the parameters");
  if (top > static_cast<uint32_t>(kMaxExplainTop) ||
      context >= static_cast<uint32_t>(internal::TopCalls::kMaxCalls)) {
    return bad("explanation sizes out of range");
  }
  if (!GetCalibration(&r, &m->calibration_)) return bad("truncated in the calibration");
  if (!IsValid(m->calibration_)) return bad("calibration is not finite/positive");
  if (!r.U32(&nvocab)) return bad("truncated before the vocabulary");
  if (nvocab >= CoverIndex::kMaxTokens) {
    return bad("vocabulary of " + std::to_string(nvocab) + " calls");
  }
  std::vector<std::string> names(nvocab);
  for (uint32_t i = 0; i < nvocab; ++i) {
    if (!r.Str16(&names[i])) return bad("truncated in vocabulary entry " + std::to_string(i));
  }
  auto vocab = SyscallVocabulary::Create(std::move(names));
  if (!vocab.has_value()) return bad("vocabulary: " + vocab.error().message());
  m->vocab_ = std::move(vocab).value();
  uint64_t n = 0;
  if (!r.U64(&n)) return bad("truncated before the training tokens");
  if (n > kMaxCorpusTokens || n > r.remaining() / 2) {
    return bad("training token count " + std::to_string(n) + " runs past the end");
  }
  m->corpus_.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    (void)r.U16(&m->corpus_[i]);
    if (m->corpus_[i] != kSequenceStart && m->corpus_[i] >= nvocab) {
      return bad("training token " + std::to_string(i) + " (" + std::to_string(m->corpus_[i]) +
                 ") is outside the vocabulary of " + std::to_string(nvocab));
    }
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  m->options_.target_fpr = fpr;
  m->options_.explain_top = static_cast<int>(top);
  m->options_.explain_context = static_cast<int>(context);
  m->BuildIndex();
  VIGIL_ASSIGN_OR_RETURN(m->record_, TrainingRecord::ReadFrom(file.header, source));
  return m;
}

}  // namespace vigil::model
