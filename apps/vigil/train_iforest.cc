// --model-type iforest: the isolation forest (model/isolation_forest.h) over each trace's
// bag-of-syscalls frequency vector.

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "model/isolation_forest.h"

namespace vigil::app {

ModelType IsolationForestModelType() {
  auto opts = std::make_shared<model::IsolationForestOptions>();
  ModelType t;
  t.name = "iforest";
  t.summary = "isolation forest over each trace's system-call frequencies";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [opts](CLI::App& cmd) {
    cmd.add_option("--trees", opts->trees, "iforest: number of isolation trees")
        ->capture_default_str()
        ->check(CLI::Range(1, 10000));
    cmd.add_option("--sample-size", opts->sample_size, "iforest: rows each tree is grown on (psi)")
        ->capture_default_str()
        ->check(CLI::Range(2, 65536));
    cmd.add_option("--forest-calibration-fraction", opts->calibration_fraction,
                   "iforest: share of the traces held out to calibrate the threshold")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.9));
    cmd.add_option("--forest-seed", opts->seed, "iforest: seed of the hold-out and the trees")
        ->capture_default_str();
  };
  t.train = [opts](const TrainRequest& r) {
    const auto start = std::chrono::steady_clock::now();
    model::IsolationForestOptions o = *opts;
    o.target_fpr = r.target_fpr;
    o.name = r.name.empty() ? std::string(model::kIsolationForestFamily) : r.name;
    o.version = r.version;
    auto set = LoadTrainingSet(r.dataset, r.data);
    if (!set.has_value()) return ReportError("train", set.error());
    auto m = model::IsolationForestModel::Train(set->traces, o);
    if (!m.has_value()) return ReportError("train", m.error().WithContext(r.data));
    const model::IsolationForest& f = (*m)->forest();
    TrainedModel out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.training = TrainingLineage(*set);
    out.parameters = {{"trees", o.trees},
                      {"sample_size", o.sample_size},
                      {"calibration_fraction", o.calibration_fraction},
                      {"seed", o.seed},
                      {"target_fpr", o.target_fpr}};
    out.file = (*m)->ToFile(nlohmann::json::object());
    char line[200];
    std::snprintf(line, sizeof(line), "%zu trees of %zu rows over %zu features, %zu traces",
                  f.trees(), f.sample_size(), f.dims(), set->traces.size());
    out.summary.emplace_back(line);
    const model::IForestCalibration& c = f.calibration();
    std::snprintf(line, sizeof(line),
                  "threshold: score %.4f (held-out false-alarm rate %.2f%% on %llu traces, "
                  "target %.2f%%)",
                  c.threshold, c.achieved_fpr * 100, static_cast<unsigned long long>(c.rows),
                  o.target_fpr * 100);
    out.summary.emplace_back(line);
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
