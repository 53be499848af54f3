// vigil train: learns a model of normal behaviour from a dataset. The model type (--model-type)
// picks the family; each type's flags and training live in train_<type>.cc.

#include <algorithm>
#include <memory>

#include "apps/vigil/commands.h"
#include "apps/vigil/model_types.h"

namespace vigil::app {
namespace {

struct TrainOptions {
  TrainRequest request;
  std::string model_type;  // "" = DefaultModelType(dataset)
};

int RunTrain(const TrainOptions& o) {
  TrainRequest r = o.request;
  const std::string type = o.model_type.empty() ? DefaultModelType(r.dataset) : o.model_type;
  for (const ModelType& t : ModelTypes()) {
    if (t.name != type) continue;
    if (std::find(t.datasets.begin(), t.datasets.end(), r.dataset) == t.datasets.end()) {
      std::string accepted;
      for (const std::string& d : t.datasets) accepted += (accepted.empty() ? "" : ", ") + d;
      return ReportError("train", core::InvalidArgument("--model-type " + type +
                                                        " does not train on --dataset " +
                                                        r.dataset + " (it takes: " + accepted +
                                                        ")"));
    }
    if (r.data.empty() && std::find(t.data_optional.begin(), t.data_optional.end(),
                                    r.dataset) == t.data_optional.end()) {
      return ReportError("train", core::InvalidArgument("--data is required for --model-type " +
                                                        type + " --dataset " + r.dataset));
    }
    return t.train(r);
  }
  return ReportError("train",
                     core::InvalidArgument("no model type trains on --dataset " + r.dataset));
}

}  // namespace

RunFn AddTrainCommand(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  std::string types_help;
  std::vector<std::string> type_names;
  std::vector<std::string> datasets;
  for (const ModelType& t : ModelTypes()) {
    types_help += "\n  " + t.name + ": " + t.summary;
    type_names.push_back(t.name);
    for (const std::string& d : t.datasets) {
      if (std::find(datasets.begin(), datasets.end(), d) == datasets.end()) datasets.push_back(d);
    }
  }
  CLI::App* cmd = root.add_subcommand(
      "train", "Train a model of normal behaviour (or a triage model from labels) from a dataset");
  cmd->add_option("--model-type", o->model_type,
                  "Model family to train; default: the best measured for the dataset "
                  "(docs/user-guide.md)." +
                      types_help)
      ->check(CLI::IsMember(type_names));
  std::string datasets_help;
  for (const std::string& d : datasets) datasets_help += (datasets_help.empty() ? "" : ", ") + d;
  o->request.dataset = "adfa-ld";
  cmd->add_option("--dataset", o->request.dataset,
                  "Input kind: " + datasets_help +
                      " (adfa-ld: Training_Data_Master only; jsonl: Vigil event file, one trace "
                      "per stream; batadal: BATADAL_dataset03.csv, normal operation only)")
      ->capture_default_str()
      ->check(CLI::IsMember(datasets));
  cmd->add_option("--data", o->request.data,
                  "Dataset root folder, or the JSONL event file (required except for triage "
                  "--dataset jsonl, which reads --labels)");
  cmd->add_option("--out", o->request.out, "Where to write the model file")->required();
  cmd->add_option("--target-fpr", o->request.target_fpr,
                  "False-alarm rate the threshold is calibrated to, on normal data the model "
                  "did not train on")
      ->capture_default_str()
      ->check(CLI::Range(0.0001, 0.5));
  cmd->add_option("--name", o->request.name, "Model name recorded in the file (default: family)");
  cmd->add_option("--model-version", o->request.version, "Model version recorded in the file")
      ->capture_default_str();
  cmd->add_flag("--json", o->request.json, "Print the model header as JSON");
  for (const ModelType& t : ModelTypes()) t.add_options(*cmd);
  return [o] { return RunTrain(*o); };
}

}  // namespace vigil::app
