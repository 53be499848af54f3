// --model-type autoencoder: the KitNET-style autoencoder ensemble (model/kitnet.h) over each
// trace's system-call and call-pair frequencies (model/kitnet_model.h).

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "model/kitnet_model.h"

namespace vigil::app {

ModelType AutoencoderModelType() {
  auto opts = std::make_shared<model::KitNetModelOptions>();
  opts->net.epochs = 20;
  ModelType t;
  t.name = "autoencoder";
  t.summary = "KitNET-style autoencoder ensemble over system-call and call-pair frequencies";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [opts](CLI::App& cmd) {
    model::KitNetOptions& n = opts->net;
    cmd.add_option("--ae-group-size", n.max_group_size,
                   "autoencoder: most features per ensemble autoencoder (m)")
        ->capture_default_str()
        ->check(CLI::Range(1, model::kKitNetMaxGroupSize));
    cmd.add_option("--ae-hidden-ratio", n.hidden_ratio,
                   "autoencoder: hidden units per visible unit")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1.0));
    cmd.add_option("--ae-learning-rate", n.learning_rate, "autoencoder: SGD step")
        ->capture_default_str()
        ->check(CLI::Range(0.0001, 10.0));
    cmd.add_option("--ae-epochs", n.epochs,
                   "autoencoder: passes over the training traces (when --ae-ad-grace is 0)")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    cmd.add_option("--ae-fm-grace", n.fm_grace,
                   "autoencoder: traces the feature mapper learns from (0 = all)")
        ->capture_default_str();
    cmd.add_option("--ae-ad-grace", n.ad_grace,
                   "autoencoder: training steps after the mapping (0 = epochs x traces)")
        ->capture_default_str();
    cmd.add_option("--ae-bigrams", opts->bigrams,
                   "autoencoder: most frequent call pairs used as features")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    cmd.add_option("--ae-calibration-fraction", n.calibration_fraction,
                   "autoencoder: share of the traces held out to calibrate the threshold")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.9));
    cmd.add_option("--ae-seed", n.seed, "autoencoder: seed of the hold-out, order and weights")
        ->capture_default_str();
  };
  t.train = [opts](const TrainRequest& r) {
    const auto start = std::chrono::steady_clock::now();
    model::KitNetModelOptions o = *opts;
    o.net.target_fpr = r.target_fpr;
    o.net.name = r.name.empty() ? std::string(model::kKitNetFamily) : r.name;
    o.net.version = r.version;
    auto set = LoadTrainingSet(r.dataset, r.data);
    if (!set.has_value()) return ReportError("train", set.error());
    std::unique_ptr<Progress> bar;  // on stderr, when it is a terminal
    auto progress = [&](uint64_t done, uint64_t total) {
      if (!bar) bar = std::make_unique<Progress>("training autoencoders ", total);
      bar->Update(done);
    };
    auto m = model::KitNetModel::Train(set->traces, o, progress);
    bar.reset();
    if (!m.has_value()) return ReportError("train", m.error().WithContext(r.data));
    const model::KitNet& net = (*m)->net();
    TrainedModel out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.training = TrainingLineage(*set);
    out.parameters = {{"group_size", o.net.max_group_size},
                      {"hidden_ratio", o.net.hidden_ratio},
                      {"learning_rate", o.net.learning_rate},
                      {"epochs", o.net.epochs},
                      {"fm_grace", o.net.fm_grace},
                      {"ad_grace", o.net.ad_grace},
                      {"bigrams", o.bigrams},
                      {"calibration_fraction", o.net.calibration_fraction},
                      {"seed", o.net.seed},
                      {"target_fpr", o.net.target_fpr}};
    out.file = (*m)->ToFile(nlohmann::json::object());
    char line[200];
    std::snprintf(line, sizeof(line),
                  "%zu features (%zu system calls + <other>, %zu call pairs) in %zu autoencoders",
                  net.dims(), (*m)->space().vocabulary().size(), (*m)->space().pairs(),
                  net.groups().size());
    out.summary.emplace_back(line);
    std::snprintf(line, sizeof(line), "%zu traces, %llu system calls, %llu training steps",
                  set->traces.size(), static_cast<unsigned long long>(set->events),
                  static_cast<unsigned long long>(net.trained_steps()));
    out.summary.emplace_back(line);
    const model::KitNetCalibration& c = net.calibration();
    std::snprintf(line, sizeof(line),
                  "threshold: RMSE %.5f (held-out false-alarm rate %.2f%% on %llu traces, "
                  "target %.2f%%)",
                  c.threshold, c.achieved_fpr * 100, static_cast<unsigned long long>(c.rows),
                  o.net.target_fpr * 100);
    out.summary.emplace_back(line);
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
