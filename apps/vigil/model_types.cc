#include "apps/vigil/model_types.h"

#include <chrono>
#include <cstdio>

#include "apps/vigil/commands.h"

namespace vigil::app {

// Defined in train_<type>.cc, one per model type.
ModelType SequenceModelType();
ModelType CoverModelType();
ModelType IcsResidualModelType();
ModelType RnnModelType();
ModelType EnsembleModelType();
ModelType IsolationForestModelType();
ModelType AutoencoderModelType();
ModelType TriageModelType();

const std::vector<ModelType>& ModelTypes() {
  static const std::vector<ModelType> types = {
      SequenceModelType(),
      CoverModelType(),
      IcsResidualModelType(),
      RnnModelType(),
      EnsembleModelType(),
      IsolationForestModelType(),
      AutoencoderModelType(),
      TriageModelType(),
  };
  return types;
}

std::string DefaultModelType(const std::string& dataset) {
  // The family documented (docs/user-guide.md) as the best measured for each dataset. jsonl keeps
  // the n-gram model: it learns one model per program, which sequence covering does not.
  if (dataset == "adfa-ld") return "cover";
  if (dataset == "jsonl") return "sequence";
  for (const ModelType& t : ModelTypes()) {
    for (const std::string& d : t.datasets) {
      if (d == dataset) return t.name;
    }
  }
  return "";
}

int WriteTrainedModel(const TrainRequest& request, TrainedModel trained) {
  nlohmann::json& header = trained.file.header;
  header["created_unix"] = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  header["code_version"] = std::string("vigil ") + VIGIL_VERSION;
  header["training"] = trained.training;
  if (!trained.parameters.is_null()) header["parameters"] = trained.parameters;
  if (auto st = model::WriteModelFile(request.out, trained.file); !st.ok()) {
    return ReportError("train", st);
  }
  if (request.json) {
    nlohmann::json j = header;
    j["model_file"] = request.out;
    j["seconds"] = trained.seconds;
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("trained %s model \"%s\" in %.2f s\n", model::HeaderString(trained.file, "family").c_str(),
              model::HeaderString(trained.file, "name").c_str(), trained.seconds);
  for (const std::string& line : trained.summary) std::printf("  %s\n", line.c_str());
  if (trained.training.contains("digest") && trained.training["digest"].is_string()) {
    std::printf("  training data: %s\n", trained.training["digest"].get<std::string>().c_str());
  }
  std::printf("  model file: %s\n", request.out.c_str());
  return kExitOk;
}

}  // namespace vigil::app
