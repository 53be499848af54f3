#include "model/train/ensemble_train.h"

#include <charconv>
#include <cstdlib>

namespace vigil::model {
namespace {

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

bool ParseInt(std::string_view v, int* out) {
  const auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}

bool ParseU64(std::string_view v, uint64_t* out) {
  const auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}

bool ParseDouble(std::string_view v, double* out) {
  const std::string s(v);
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

double MemberScore(const Model& m, const TrainingTrace& t) {
  auto stream = m.NewStream(t.subject);
  stream->ObserveSyscalls(t.arch, t.syscalls);
  return stream->Current().score;
}

}  // namespace

std::string EnsembleMemberSpec::Describe() const {
  if (kind == Kind::kNgram) return "ngram order " + std::to_string(ngram.order);
  return "rnn " + std::string(RnnCellName(rnn.cell)) + " e" + std::to_string(rnn.embed) + " h" +
         std::to_string(rnn.hidden) + " x" + std::to_string(rnn.layers) + " seed " +
         std::to_string(rnn.seed);
}

core::Result<std::vector<EnsembleMemberSpec>> ParseEnsembleMembers(
    std::string_view text, const SequenceModelOptions& base_ngram,
    const RnnTrainOptions& base_rnn) {
  std::vector<EnsembleMemberSpec> out;
  for (std::string_view member : Split(text, ',')) {
    const std::vector<std::string_view> parts = Split(member, ':');
    auto bad = [&](const std::string& why) {
      return core::InvalidArgument("ensemble member \"" + std::string(member) + "\": " + why);
    };
    EnsembleMemberSpec spec;
    spec.ngram = base_ngram;
    spec.rnn = base_rnn;
    if (parts[0] == "ngram") {
      spec.kind = EnsembleMemberSpec::Kind::kNgram;
    } else if (parts[0] == "rnn") {
      spec.kind = EnsembleMemberSpec::Kind::kRnn;
    } else {
      return bad("kind must be \"ngram\" or \"rnn\"");
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      const size_t eq = parts[i].find('=');
      if (eq == std::string_view::npos) return bad("\"" + std::string(parts[i]) + "\" is not KEY=VALUE");
      const std::string_view key = parts[i].substr(0, eq), value = parts[i].substr(eq + 1);
      bool ok = true;
      const bool rnn = spec.kind == EnsembleMemberSpec::Kind::kRnn;
      if (key == "weight") ok = ParseDouble(value, &spec.weight) && spec.weight > 0;
      else if (!rnn && key == "order") ok = ParseInt(value, &spec.ngram.order);
      else if (rnn && key == "cell") ok = ParseRnnCell(value, &spec.rnn.cell);
      else if (rnn && key == "embed") ok = ParseInt(value, &spec.rnn.embed);
      else if (rnn && key == "hidden") ok = ParseInt(value, &spec.rnn.hidden);
      else if (rnn && key == "layers") ok = ParseInt(value, &spec.rnn.layers);
      else if (rnn && key == "epochs") ok = ParseInt(value, &spec.rnn.epochs);
      else if (rnn && key == "dropout") ok = ParseDouble(value, &spec.rnn.dropout);
      else if (rnn && key == "lr") ok = ParseDouble(value, &spec.rnn.learning_rate);
      else if (rnn && key == "seed") ok = ParseU64(value, &spec.rnn.seed);
      else if (rnn && key == "aggregate") ok = ParseRnnAggregate(value, &spec.rnn.scoring.aggregate);
      else if (rnn && key == "window") {
        int w = 0;
        ok = ParseInt(value, &w) && w >= 1;
        spec.rnn.scoring.window = static_cast<uint32_t>(w);
      } else {
        return bad("unknown key \"" + std::string(key) + "\"");
      }
      if (!ok) return bad("bad value for \"" + std::string(key) + "\"");
    }
    out.push_back(std::move(spec));
  }
  if (out.empty()) return core::InvalidArgument("ensemble: no members");
  return out;
}

core::Result<EnsembleTrainResult> TrainEnsemble(std::span<const TrainingTrace> traces,
                                                const EnsembleTrainOptions& o,
                                                const EnsembleProgressFn& progress) {
  if (o.members.empty()) return core::InvalidArgument("ensemble training: no members");
  if (!(o.calibration_fraction > 0 && o.calibration_fraction < 1)) {
    return core::InvalidArgument("ensemble training: calibration fraction must be in (0,1)");
  }
  if (!(o.target_fpr > 0 && o.target_fpr < 1)) {
    return core::InvalidArgument("ensemble training: target_fpr must be in (0,1)");
  }
  if (traces.size() < 2) {
    return core::InvalidArgument("ensemble training: need at least 2 training traces");
  }
  std::vector<size_t> fit, cal;
  SplitForCalibration(traces.size(), o.calibration_fraction, o.seed, &fit, &cal);
  std::vector<EnsembleMember> members;
  for (size_t mi = 0; mi < o.members.size(); ++mi) {
    const EnsembleMemberSpec& spec = o.members[mi];
    EnsembleProgress p;
    p.member = mi;
    p.members = o.members.size();
    p.what = spec.Describe();
    const std::string context = "ensemble member " + std::to_string(mi) + " (" + p.what + ")";
    EnsembleMember member;
    member.weight = spec.weight;
    if (spec.kind == EnsembleMemberSpec::Kind::kNgram) {
      std::vector<TrainingTrace> subset;
      subset.reserve(fit.size());
      for (size_t i : fit) subset.push_back(traces[i]);
      SequenceModelOptions no = spec.ngram;
      no.name = "ngram-" + std::to_string(mi);
      no.target_fpr = o.target_fpr;
      auto m = SequenceModel::Train(subset, no);
      if (!m.has_value()) return m.error().WithContext(context);
      member.file = (*m)->ToFile(nlohmann::json::object());
      member.model = std::move(m).value();
    } else {
      RnnTrainOptions ro = spec.rnn;
      ro.name = "rnn-" + std::to_string(mi);
      ro.target_fpr = o.target_fpr;
      auto r = TrainRnnOnSplit(traces, fit, cal, ro, [&](const RnnEpoch& e) {
        if (!progress) return;
        EnsembleProgress ep = p;
        ep.epoch = e;
        progress(ep);
      });
      if (!r.has_value()) return r.error().WithContext(context);
      member.file = r->model->ToFile(nlohmann::json::object());
      member.model = std::move(r->model);
    }
    for (size_t i : cal) {
      member.reference.push_back(MemberScore(*member.model, traces[i]));
    }
    members.push_back(std::move(member));
    if (progress) progress(p);
  }
  // Member scores of the calibration traces, kept before the ensemble sorts the references.
  std::vector<std::vector<double>> per_trace(cal.size(), std::vector<double>(members.size()));
  for (size_t m = 0; m < members.size(); ++m) {
    for (size_t k = 0; k < cal.size(); ++k) per_trace[k][m] = members[m].reference[k];
  }
  auto ens = EnsembleModel::Create(o.name, o.version, o.norm, std::move(members), {});
  if (!ens.has_value()) return ens.error();
  std::vector<double> combined;
  combined.reserve(cal.size());
  for (const auto& scores : per_trace) combined.push_back((*ens)->Combine(scores));
  (*ens)->SetCalibration(CalibrateHeldOut(combined, o.target_fpr, 0.0));
  EnsembleTrainResult result;
  result.model = std::move(ens).value();
  result.fit_traces = fit.size();
  result.calibration_traces = cal.size();
  return result;
}

}  // namespace vigil::model
