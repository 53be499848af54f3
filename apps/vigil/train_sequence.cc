// --model-type sequence: the per-program system-call n-gram model (model/sequence_model.h).

#include <chrono>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "apps/vigil/model_types.h"
#include "model/sequence_model.h"

namespace vigil::app {

ModelType SequenceModelType() {
  auto opts = std::make_shared<model::SequenceModelOptions>();
  ModelType t;
  t.name = "sequence";
  t.summary = "per-program system-call n-gram language model (Kneser-Ney)";
  t.datasets = {"adfa-ld", "jsonl"};
  t.add_options = [opts](CLI::App& cmd) {
    cmd.add_option("--order", opts->order, "sequence: n-gram order (1..6)")
        ->capture_default_str()
        ->check(CLI::Range(1, model::kMaxOrder));
    cmd.add_option("--folds", opts->folds, "sequence: cross-fitting folds for calibration")
        ->capture_default_str()
        ->check(CLI::Range(2, 20));
    cmd.add_option("--min-program-traces", opts->min_subject_traces,
                   "sequence: programs with fewer traces use the global model")
        ->capture_default_str();
  };
  t.train = [opts](const TrainRequest& r) {
    const auto start = std::chrono::steady_clock::now();
    model::SequenceModelOptions o = *opts;
    o.target_fpr = r.target_fpr;
    if (!r.name.empty()) o.name = r.name;
    o.version = r.version;
    auto set = LoadTrainingSet(r.dataset, r.data);
    if (!set.has_value()) return ReportError("train", set.error());
    auto m = model::SequenceModel::Train(set->traces, o);
    if (!m.has_value()) return ReportError("train", m.error().WithContext(r.data));
    TrainedModel out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.training = TrainingLineage(*set);
    out.file = (*m)->ToFile(nlohmann::json::object());
    const model::Calibration& cal = (*m)->CalibrationFor(model::kGlobalSubject);
    char line[200];
    std::snprintf(line, sizeof(line), "order %d, %zu traces, %llu system calls", o.order,
                  set->traces.size(), static_cast<unsigned long long>(set->events));
    out.summary.emplace_back(line);
    out.summary.push_back("programs with their own model: " +
                          std::to_string((*m)->subjects().size() - 1) +
                          " (plus the global model)");
    std::snprintf(line, sizeof(line),
                  "threshold: %.3f bits/syscall (out-of-fold false-alarm rate %.2f%%, target "
                  "%.2f%%)",
                  cal.threshold, cal.achieved_fpr * 100, o.target_fpr * 100);
    out.summary.emplace_back(line);
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
