// vigil train: learns the per-program system-call sequence model from normal traces.

#include <chrono>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "apps/vigil/datasets.h"
#include "model/model_file.h"
#include "model/sequence_model.h"

namespace vigil::app {
namespace {

struct TrainOptions {
  std::string dataset = "adfa-ld";
  std::string data;
  std::string out;
  model::SequenceModelOptions model;
  bool json = false;
};

int RunTrain(const TrainOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  auto set = LoadTrainingSet(o.dataset, o.data);
  if (!set.has_value()) return ReportError("train", set.error());
  auto m = model::SequenceModel::Train(set->traces, o.model);
  if (!m.has_value()) return ReportError("train", m.error().WithContext(o.data));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json header;
  header["created_unix"] = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  header["code_version"] = std::string("vigil ") + VIGIL_VERSION;
  header["training"] = {{"dataset", set->dataset},
                        {"digest", set->digest},
                        {"traces", set->traces.size()},
                        {"events", set->events}};
  const model::ModelFile file = (*m)->ToFile(header);
  if (auto st = model::WriteModelFile(o.out, file); !st.ok()) return ReportError("train", st);
  const model::Calibration& cal = (*m)->CalibrationFor(model::kGlobalSubject);
  if (o.json) {
    nlohmann::json j = file.header;
    j["model_file"] = o.out;
    j["seconds"] = secs;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("trained %s (order %d) on %zu traces, %llu system calls, in %.2f s\n",
                (*m)->name().c_str(), o.model.order, set->traces.size(),
                static_cast<unsigned long long>(set->events), secs);
    std::printf("  programs with their own model: %zu (plus the global model)\n",
                (*m)->subjects().size() - 1);
    std::printf("  threshold: %.3f bits/syscall (out-of-fold false-alarm rate %.2f%%, target %.2f%%)\n",
                cal.threshold, cal.achieved_fpr * 100, o.model.target_fpr * 100);
    std::printf("  training data: %s\n  model file: %s\n", set->digest.c_str(), o.out.c_str());
  }
  return kExitOk;
}

}  // namespace

RunFn AddTrainCommand(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = root.add_subcommand(
      "train", "Train the per-program system-call sequence model on normal traces only");
  cmd->add_option("--dataset", o->dataset, "Input kind: adfa-ld (Training_Data_Master only) or "
                                           "jsonl (Vigil event file, one trace per stream)")
      ->capture_default_str()
      ->check(CLI::IsMember({"adfa-ld", "jsonl"}));
  cmd->add_option("--data", o->data, "ADFA-LD root folder, or the JSONL event file")->required();
  cmd->add_option("--out", o->out, "Where to write the model file")->required();
  cmd->add_option("--order", o->model.order, "n-gram order (1..6)")
      ->capture_default_str()
      ->check(CLI::Range(1, model::kMaxOrder));
  cmd->add_option("--target-fpr", o->model.target_fpr,
                  "False-alarm rate the threshold is calibrated to (cross-fitted on training)")
      ->capture_default_str()
      ->check(CLI::Range(0.0001, 0.5));
  cmd->add_option("--folds", o->model.folds, "Cross-fitting folds for calibration")
      ->capture_default_str()
      ->check(CLI::Range(2, 20));
  cmd->add_option("--min-program-traces", o->model.min_subject_traces,
                  "Programs with fewer traces use the global model")
      ->capture_default_str();
  cmd->add_option("--name", o->model.name, "Model name recorded in the file")->capture_default_str();
  cmd->add_option("--model-version", o->model.version, "Model version recorded in the file")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the model header as JSON");
  return [o] { return RunTrain(*o); };
}

}  // namespace vigil::app
