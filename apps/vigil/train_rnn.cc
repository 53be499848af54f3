// --model-type rnn: the recurrent system-call language model (model/rnn_model.h), trained with
// libtorch (model/train/rnn_train.h); --model-type ensemble: ensembles of n-gram and recurrent
// members (model/train/ensemble_train.h). Both share the recurrent training flags. The training
// code runs in the trainer module (model/train/trainer_module.h), loaded when one of them runs.

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "apps/vigil/trainer_loader.h"
#include "model/train/ensemble_train.h"
#include "model/train/rnn_train.h"

namespace vigil::app {
namespace {

struct RnnFlags {
  model::RnnTrainOptions rnn;
  std::string cell = "lstm";
  std::string aggregate = "mean";
  int window = 1;
};

struct EnsembleFlags {
  std::string members = "ngram,rnn:seed=1,rnn:seed=2,rnn:cell=gru:seed=3";
  std::string norm = "z-score";
};

// The recurrent flags, registered once (by the rnn type) and read by both types.
std::shared_ptr<RnnFlags> SharedRnnFlags() {
  static const auto flags = std::make_shared<RnnFlags>();
  return flags;
}

core::Result<model::RnnTrainOptions> ResolveRnn(const RnnFlags& f, const TrainRequest& r) {
  model::RnnTrainOptions o = f.rnn;
  if (!model::ParseRnnCell(f.cell, &o.cell)) {
    return core::InvalidArgument("--cell must be lstm or gru, not \"" + f.cell + "\"");
  }
  if (!model::ParseRnnAggregate(f.aggregate, &o.scoring.aggregate)) {
    return core::InvalidArgument("--aggregate must be mean, window-max or top-mean, not \"" +
                                 f.aggregate + "\"");
  }
  o.scoring.window = static_cast<uint32_t>(f.window);
  o.target_fpr = r.target_fpr;
  if (!r.name.empty()) o.name = r.name;
  o.version = r.version;
  return o;
}

void PrintEpoch(const std::string& prefix, const model::RnnEpoch& e) {
  std::fprintf(stderr,
               "train: %sepoch %d/%d: loss %.4f bits/call, held-out %.4f, %.0f s elapsed\n",
               prefix.c_str(), e.epoch, e.epochs, e.train_loss, e.heldout_loss, e.seconds);
}

nlohmann::json Training(const TrainingSet& set) {
  return {{"dataset", set.dataset},
          {"digest", set.digest},
          {"traces", set.traces.size()},
          {"events", set.events}};
}

std::string Fmt(const char* format, double a, double b = 0, double c = 0) {
  char line[200];
  std::snprintf(line, sizeof(line), format, a, b, c);
  return line;
}

int TrainRnnType(const RnnFlags& f, const TrainRequest& r) {
  const auto start = std::chrono::steady_clock::now();
  auto o = ResolveRnn(f, r);
  if (!o.has_value()) return ReportError("train", o.error());
  auto set = LoadTrainingSet(r.dataset, r.data);
  if (!set.has_value()) return ReportError("train", set.error());
  auto trainer = LoadTrainerModule();
  if (!trainer.has_value()) return ReportError("train", trainer.error());
  auto result = (*trainer)->train_rnn(set->traces, *o,
                                [](const model::RnnEpoch& e) { PrintEpoch("", e); });
  if (!result.has_value()) return ReportError("train", result.error().WithContext(r.data));
  const model::RnnModel& m = *result->model;
  TrainedModel out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.training = Training(*set);
  out.parameters = {{"cell", f.cell},         {"embed", o->embed},
                    {"hidden", o->hidden},    {"layers", o->layers},
                    {"epochs", o->epochs},    {"best_epoch", result->best_epoch},
                    {"batch", o->batch},      {"bptt", o->bptt},
                    {"learning_rate", o->learning_rate}, {"dropout", o->dropout},
                    {"seed", o->seed},        {"aggregate", f.aggregate},
                    {"window", f.window},     {"calibration_fraction", o->calibration_fraction}};
  out.file = m.ToFile(nlohmann::json::object());
  nlohmann::json losses = nlohmann::json::array();
  for (const model::RnnEpoch& e : result->epochs) {
    losses.push_back({{"epoch", e.epoch}, {"train_bits", e.train_loss},
                      {"heldout_bits", e.heldout_loss}});
  }
  out.file.header["metrics"] = {{"epochs", losses}};
  out.summary.push_back(f.cell + " " + std::to_string(o->layers) + " x " +
                        std::to_string(o->hidden) + " (embedding " + std::to_string(o->embed) +
                        "), " + std::to_string(result->fit_traces) + " traces fitted, " +
                        std::to_string(result->calibration_traces) + " held out");
  const model::RnnEpoch& best = result->epochs[static_cast<size_t>(result->best_epoch - 1)];
  out.summary.push_back(Fmt("best epoch %.0f: held-out loss %.4f bits/call", result->best_epoch,
                            best.heldout_loss));
  out.summary.push_back("threshold: " + Fmt("%.3f", m.calibration().threshold) + " (" +
                        f.aggregate + " bits/call) at held-out false-alarm rate " +
                        Fmt("%.2f%%", m.calibration().achieved_fpr * 100));
  return WriteTrainedModel(r, std::move(out));
}

int TrainEnsembleType(const RnnFlags& rf, const EnsembleFlags& ef,
                      const model::SequenceModelOptions& ngram, const TrainRequest& r) {
  const auto start = std::chrono::steady_clock::now();
  auto base = ResolveRnn(rf, r);
  if (!base.has_value()) return ReportError("train", base.error());
  model::EnsembleTrainOptions o;
  if (!r.name.empty()) o.name = r.name;
  o.version = r.version;
  o.target_fpr = r.target_fpr;
  o.calibration_fraction = base->calibration_fraction;
  o.seed = base->seed;
  if (!model::ParseEnsembleNorm(ef.norm, &o.norm)) {
    return ReportError("train", core::InvalidArgument("--norm must be rank or z-score, not \"" +
                                                      ef.norm + "\""));
  }
  auto trainer = LoadTrainerModule();
  if (!trainer.has_value()) return ReportError("train", trainer.error());
  auto members = (*trainer)->parse_ensemble_members(ef.members, ngram, *base);
  if (!members.has_value()) return ReportError("train", members.error().WithContext("--members"));
  o.members = std::move(members).value();
  auto set = LoadTrainingSet(r.dataset, r.data);
  if (!set.has_value()) return ReportError("train", set.error());
  auto result = (*trainer)->train_ensemble(set->traces, o, [](const model::EnsembleProgress& p) {
    const std::string prefix = "member " + std::to_string(p.member + 1) + "/" +
                               std::to_string(p.members) + " (" + p.what + "): ";
    if (p.epoch.epoch > 0) {
      PrintEpoch(prefix, p.epoch);
    } else {
      std::fprintf(stderr, "train: %sdone\n", prefix.c_str());
    }
  });
  if (!result.has_value()) return ReportError("train", result.error().WithContext(r.data));
  TrainedModel out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.training = Training(*set);
  out.parameters = {{"members", ef.members}, {"norm", ef.norm},
                    {"calibration_fraction", o.calibration_fraction}, {"seed", o.seed}};
  out.file = result->model->ToFile(nlohmann::json::object());
  for (const model::EnsembleMemberSpec& s : o.members) {
    out.summary.push_back("member: " + (*trainer)->describe_member(s) +
                          Fmt(", weight %.2f", s.weight));
  }
  out.summary.push_back(std::to_string(result->fit_traces) + " traces fitted, " +
                        std::to_string(result->calibration_traces) +
                        " held out for normalisation and calibration (" + ef.norm + ")");
  const model::HeldOutCalibration& c = result->model->calibration();
  out.summary.push_back(Fmt("threshold: %.3f at held-out false-alarm rate %.2f%%", c.threshold,
                            c.achieved_fpr * 100));
  return WriteTrainedModel(r, std::move(out));
}

}  // namespace

ModelType RnnModelType() {
  auto f = SharedRnnFlags();
  ModelType t;
  t.name = "rnn";
  t.summary = "recurrent (LSTM/GRU) system-call language model, trained with libtorch";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [f](CLI::App& cmd) {
    model::RnnTrainOptions& o = f->rnn;
    cmd.add_option("--cell", f->cell, "rnn/ensemble: recurrent cell, lstm or gru")
        ->capture_default_str()
        ->check(CLI::IsMember({"lstm", "gru"}));
    cmd.add_option("--embed", o.embed, "rnn/ensemble: token embedding size")
        ->capture_default_str()
        ->check(CLI::Range(1, 1024));
    cmd.add_option("--hidden", o.hidden, "rnn/ensemble: hidden units per layer")
        ->capture_default_str()
        ->check(CLI::Range(1, 1024));
    cmd.add_option("--layers", o.layers, "rnn/ensemble: recurrent layers")
        ->capture_default_str()
        ->check(CLI::Range(1, 4));
    cmd.add_option("--epochs", o.epochs, "rnn/ensemble: training epochs (the best held-out "
                                         "epoch is kept)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd.add_option("--batch", o.batch, "rnn/ensemble: traces per batch")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    cmd.add_option("--bptt", o.bptt, "rnn/ensemble: calls per truncated-backpropagation segment")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    cmd.add_option("--lr", o.learning_rate, "rnn/ensemble: Adam learning rate")
        ->capture_default_str()
        ->check(CLI::Range(1e-6, 0.999));
    cmd.add_option("--dropout", o.dropout, "rnn/ensemble: dropout while training")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.9));
    cmd.add_option("--seed", o.seed, "rnn/ensemble: random seed (initial weights, order, split)")
        ->capture_default_str();
    cmd.add_option("--threads", o.threads, "rnn/ensemble: libtorch threads while training")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    cmd.add_option("--aggregate", f->aggregate,
                   "rnn/ensemble: trace score from per-call surprisal: mean, window-max (highest "
                   "mean over --window consecutive calls) or top-mean (mean of the --window "
                   "highest)")
        ->capture_default_str()
        ->check(CLI::IsMember({"mean", "window-max", "top-mean"}));
    cmd.add_option("--window", f->window, "rnn/ensemble: calls for --aggregate")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd.add_option("--calibration-fraction", o.calibration_fraction,
                   "rnn/ensemble: share of training traces held out for calibration and epoch "
                   "selection")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 0.9));
  };
  t.train = [f](const TrainRequest& r) { return TrainRnnType(*f, r); };
  return t;
}

ModelType EnsembleModelType() {
  auto rf = SharedRnnFlags();
  auto ef = std::make_shared<EnsembleFlags>();
  auto ngram = std::make_shared<model::SequenceModelOptions>();
  ModelType t;
  t.name = "ensemble";
  t.summary = "ensemble of n-gram and recurrent members, normalised on held-out normal traces";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [ef](CLI::App& cmd) {
    cmd.add_option("--members", ef->members,
                   "ensemble: members, comma-separated, each KIND[:KEY=VALUE]...; KIND ngram "
                   "(order, weight) or rnn (cell, embed, hidden, layers, epochs, dropout, lr, "
                   "seed, aggregate, window, weight); unset keys take the rnn flags")
        ->capture_default_str();
    cmd.add_option("--norm", ef->norm, "ensemble: member normalisation, rank or z-score")
        ->capture_default_str()
        ->check(CLI::IsMember({"rank", "z-score"}));
  };
  t.train = [rf, ef, ngram](const TrainRequest& r) {
    return TrainEnsembleType(*rf, *ef, *ngram, r);
  };
  return t;
}

}  // namespace vigil::app
