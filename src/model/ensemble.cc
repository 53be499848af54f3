#include "model/ensemble.h"

#include <algorithm>
#include <cmath>

#include "model/internal/bytes.h"
#include "model/loader.h"

namespace vigil::model {
namespace {

constexpr uint32_t kMaxMembers = 64;
constexpr uint32_t kMaxReference = 1u << 20;
constexpr size_t kExplainMax = 6;

double Logit(double s) {
  const double p = std::clamp(s, 1e-15, 1.0 - 1e-15);
  return std::log(p / (1.0 - p));
}

class EnsembleStream final : public StreamScorer {
 public:
  EnsembleStream(const EnsembleModel& m, std::string_view subject) : model_(m) {
    for (const EnsembleMember& member : m.members()) {
      streams_.push_back(member.model->NewStream(subject));
    }
    scores_.resize(streams_.size());
  }
  void Observe(const core::Event& e) override {
    for (auto& s : streams_) s->Observe(e);
  }
  void ObserveSyscalls(core::Arch arch, std::span<const int32_t> nrs) override {
    for (auto& s : streams_) s->ObserveSyscalls(arch, nrs);
  }
  core::Verdict Current() const override {
    core::Verdict v;
    v.model_name = model_.name();
    v.model_version = model_.version();
    v.events = observed();
    if (v.events == 0) return v;
    std::vector<core::Verdict> parts;
    parts.reserve(streams_.size());
    for (size_t i = 0; i < streams_.size(); ++i) {
      parts.push_back(streams_[i]->Current());
      scores_[i] = parts.back().score;
    }
    const double raw = model_.Combine(scores_);
    v.score = model_.ScoreFromRaw(raw);
    v.anomalous = raw >= model_.calibration().threshold;
    // Members in order of their own score; each names its evidence.
    std::vector<size_t> order(parts.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return parts[a].score > parts[b].score; });
    for (size_t i : order) {
      for (core::Evidence& e : parts[i].explanation) {
        if (v.explanation.size() >= kExplainMax) break;
        e.what = model_.members()[i].model->name() + ": " + e.what;
        v.explanation.push_back(std::move(e));
      }
    }
    return v;
  }
  uint64_t observed() const override {
    uint64_t n = 0;
    for (const auto& s : streams_) n = std::max(n, s->observed());
    return n;
  }

 private:
  const EnsembleModel& model_;
  std::vector<std::unique_ptr<StreamScorer>> streams_;
  mutable std::vector<double> scores_;
};

}  // namespace

std::string_view EnsembleNormName(EnsembleNorm n) {
  return n == EnsembleNorm::kRank ? "rank" : "z-score";
}

bool ParseEnsembleNorm(std::string_view name, EnsembleNorm* out) {
  if (name == "rank") *out = EnsembleNorm::kRank;
  else if (name == "z-score") *out = EnsembleNorm::kZScore;
  else return false;
  return true;
}

core::Result<std::unique_ptr<EnsembleModel>> EnsembleModel::Create(
    std::string name, std::string version, EnsembleNorm norm, std::vector<EnsembleMember> members,
    HeldOutCalibration calibration) {
  std::unique_ptr<EnsembleModel> m(new EnsembleModel());
  m->name_ = std::move(name);
  m->version_ = std::move(version);
  m->norm_ = norm;
  m->members_ = std::move(members);
  m->calibration_ = calibration;
  VIGIL_RETURN_IF_ERROR(m->Prepare());
  return m;
}

core::Status EnsembleModel::Prepare() {
  auto bad = [](const std::string& why) { return core::InvalidArgument("ensemble: " + why); };
  if (norm_ != EnsembleNorm::kRank && norm_ != EnsembleNorm::kZScore) return bad("unknown norm");
  if (members_.empty() || members_.size() > kMaxMembers) {
    return bad("member count must be in 1.." + std::to_string(kMaxMembers));
  }
  if (!IsValid(calibration_)) return bad("calibration is not finite/positive");
  stats_.clear();
  weight_sum_ = 0;
  for (size_t i = 0; i < members_.size(); ++i) {
    EnsembleMember& mb = members_[i];
    const std::string which = "member " + std::to_string(i);
    if (mb.model == nullptr) return bad(which + " has no model");
    if (mb.model->family() == kEnsembleFamily) return bad(which + " is itself an ensemble");
    if (!(mb.weight > 0) || !std::isfinite(mb.weight)) return bad(which + ": weight must be > 0");
    if (mb.reference.empty() || mb.reference.size() > kMaxReference) {
      return bad(which + ": reference needs 1.." + std::to_string(kMaxReference) + " scores");
    }
    for (double s : mb.reference) {
      if (!(s >= 0 && s <= 1)) return bad(which + ": reference scores must be in [0,1]");
    }
    std::sort(mb.reference.begin(), mb.reference.end());
    Stats st;
    double sum = 0, sq = 0;
    for (double s : mb.reference) sum += Logit(s);
    st.mean = sum / static_cast<double>(mb.reference.size());
    for (double s : mb.reference) sq += (Logit(s) - st.mean) * (Logit(s) - st.mean);
    st.sd = std::max(std::sqrt(sq / static_cast<double>(mb.reference.size())), 1e-6);
    stats_.push_back(st);
    weight_sum_ += mb.weight;
  }
  return core::Status::Ok();
}

double EnsembleModel::Combine(std::span<const double> member_scores) const {
  double total = 0;
  for (size_t i = 0; i < members_.size() && i < member_scores.size(); ++i) {
    const double s = member_scores[i];
    double norm = 0;
    if (norm_ == EnsembleNorm::kRank) {
      const auto& ref = members_[i].reference;
      const auto lo = std::lower_bound(ref.begin(), ref.end(), s) - ref.begin();
      const auto hi = std::upper_bound(ref.begin(), ref.end(), s) - ref.begin();
      norm = 0.5 * static_cast<double>(lo + hi) / static_cast<double>(ref.size());
    } else {
      norm = (Logit(s) - stats_[i].mean) / stats_[i].sd;
    }
    total += members_[i].weight * norm;
  }
  return total / weight_sum_;
}

double EnsembleModel::ScoreFromRaw(double raw) const {
  return LogisticScore(calibration_, raw);
}

std::unique_ptr<StreamScorer> EnsembleModel::NewStream(std::string_view subject) const {
  return std::make_unique<EnsembleStream>(*this, subject);
}

ModelFile EnsembleModel::ToFile(const nlohmann::json& extra_header) const {
  ModelFile f;
  f.header = extra_header.is_object() ? extra_header : nlohmann::json::object();
  f.header["family"] = family_;
  f.header["name"] = name_;
  f.header["version"] = version_;
  nlohmann::json members = nlohmann::json::array();
  for (const EnsembleMember& mb : members_) {
    members.push_back({{"family", mb.model->family()},
                       {"name", mb.model->name()},
                       {"version", mb.model->version()},
                       {"weight", mb.weight},
                       {"reference_traces", mb.reference.size()}});
  }
  f.header["members"] = members;
  f.header["norm"] = EnsembleNormName(norm_);
  f.header["calibration"] = ToJson(calibration_);
  internal::ByteWriter w;
  w.U32(static_cast<uint32_t>(norm_));
  PutCalibration(&w, calibration_);
  w.U32(static_cast<uint32_t>(members_.size()));
  for (const EnsembleMember& mb : members_) {
    w.F64(mb.weight);
    w.U32(static_cast<uint32_t>(mb.reference.size()));
    for (double s : mb.reference) w.F64(s);
    const std::string bytes = EncodeModelFile(mb.file);
    w.U64(bytes.size());
    w.Bytes(bytes);
  }
  f.payload = std::move(w.str());
  return f;
}

core::Result<std::unique_ptr<EnsembleModel>> EnsembleModel::FromFile(const ModelFile& file,
                                                                     std::string_view source,
                                                                     const MemberLoader& load) {
  const std::string src(source);
  auto bad = [&](const std::string& why) { return core::DataLoss(src + ": payload: " + why); };
  VIGIL_RETURN_IF_ERROR(CheckFamily(file, kEnsembleFamily, source));
  internal::ByteReader r(file.payload);
  uint32_t norm = 0, count = 0;
  HeldOutCalibration cal;
  if (!r.U32(&norm) || !GetCalibration(&r, &cal) || !r.U32(&count)) {
    return bad("truncated in the parameters");
  }
  if (norm != 1 && norm != 2) return bad("norm " + std::to_string(norm) + " is unknown");
  if (count == 0 || count > kMaxMembers) {
    return bad("member count " + std::to_string(count) + " outside 1.." +
               std::to_string(kMaxMembers));
  }
  std::vector<EnsembleMember> members(count);
  for (uint32_t i = 0; i < count; ++i) {
    const std::string which = "member " + std::to_string(i);
    EnsembleMember& mb = members[i];
    uint32_t nref = 0;
    uint64_t len = 0;
    if (!r.F64(&mb.weight) || !r.U32(&nref)) return bad("truncated in " + which);
    if (nref == 0 || nref > kMaxReference || nref > r.remaining() / 8) {
      return bad(which + ": reference of " + std::to_string(nref) + " scores runs past the end");
    }
    mb.reference.resize(nref);
    for (uint32_t k = 0; k < nref; ++k) (void)r.F64(&mb.reference[k]);
    std::string_view bytes;
    if (!r.U64(&len) || len > r.remaining() || !r.Bytes(static_cast<size_t>(len), &bytes)) {
      return bad(which + ": embedded model runs past the end");
    }
    const std::string member_source = src + " (" + which + ")";
    auto decoded = DecodeModelFile(bytes, member_source);
    if (!decoded.has_value()) return decoded.error();
    if (HeaderString(*decoded, "family") == kEnsembleFamily) {
      return bad(which + " is itself an ensemble (nesting is not supported)");
    }
    auto model = load(*decoded, member_source);
    if (!model.has_value()) return model.error();
    mb.model = std::move(model).value();
    mb.file = std::move(decoded).value();
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  auto m = Create(HeaderString(file, "name"), HeaderString(file, "version"),
                  static_cast<EnsembleNorm>(norm), std::move(members), cal);
  if (!m.has_value()) return bad(m.error().message());
  return m;
}

core::Result<std::unique_ptr<EnsembleModel>> EnsembleModel::FromFile(const ModelFile& file,
                                                                     std::string_view source) {
  return FromFile(file, source, &LoadModelFromFile);
}

}  // namespace vigil::model
