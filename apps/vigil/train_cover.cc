// --model-type cover: sequence covering of system calls by runs of normal traces
// (model/cover_model.h).

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "model/cover_model.h"

namespace vigil::app {

ModelType CoverModelType() {
  auto opts = std::make_shared<model::CoverModelOptions>();
  ModelType t;
  t.name = "cover";
  t.summary = "sequence covering: segments of normal traces needed per system call";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [opts](CLI::App& cmd) {
    cmd.add_option("--cover-folds", opts->folds, "cover: cross-fitting folds for calibration")
        ->capture_default_str()
        ->check(CLI::Range(2, 20));
  };
  t.train = [opts](const TrainRequest& r) {
    const auto start = std::chrono::steady_clock::now();
    model::CoverModelOptions o = *opts;
    o.target_fpr = r.target_fpr;
    if (!r.name.empty()) o.name = r.name;
    o.version = r.version;
    auto set = LoadTrainingSet(r.dataset, r.data);
    if (!set.has_value()) return ReportError("train", set.error());
    auto m = model::CoverModel::Train(set->traces, o);
    if (!m.has_value()) return ReportError("train", m.error().WithContext(r.data));
    TrainedModel out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.training = TrainingLineage(*set);
    out.parameters = {{"folds", o.folds}, {"target_fpr", o.target_fpr}};
    out.file = (*m)->ToFile(nlohmann::json::object());
    char line[200];
    std::snprintf(line, sizeof(line), "%zu traces, %zu calls indexed (%zu automaton states)",
                  set->traces.size(), (*m)->corpus_tokens() - set->traces.size(),
                  (*m)->index().states());
    out.summary.emplace_back(line);
    const model::HeldOutCalibration& c = (*m)->calibration();
    std::snprintf(line, sizeof(line),
                  "threshold: %.4f segments/call (out-of-fold false-alarm rate %.2f%%, target "
                  "%.2f%%)",
                  c.threshold, c.achieved_fpr * 100, o.target_fpr * 100);
    out.summary.emplace_back(line);
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
