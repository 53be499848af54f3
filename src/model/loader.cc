#include "model/loader.h"

#include "model/cover_model.h"
#include "model/ensemble.h"
#include "model/ics_residual.h"
#include "model/isolation_forest.h"
#include "model/kitnet_model.h"
#include "model/rnn_model.h"
#include "model/sequence_model.h"
#include "model/triage.h"

namespace vigil::model {
namespace {

// Adapts a family's typed FromFile to the common loader signature.
template <typename Family>
core::Result<std::unique_ptr<Model>> Load(const ModelFile& file, std::string_view source) {
  auto m = Family::FromFile(file, source);
  if (!m.has_value()) return m.error();
  return std::unique_ptr<Model>(std::move(m).value());
}

}  // namespace

const std::vector<FamilyEntry>& RegisteredFamilies() {
  // One line per family.
  static const std::vector<FamilyEntry> families = {
      {kSequenceFamily, &Load<SequenceModel>},
      {kCoverFamily, &Load<CoverModel>},
      {kIsolationForestFamily, &Load<IsolationForestModel>},
      {kIcsResidualFamily, &Load<IcsResidualModel>},
      {kRnnFamily, &Load<RnnModel>},
      {kEnsembleFamily, &Load<EnsembleModel>},
      {kKitNetFamily, &Load<KitNetModel>},
      {kTriageFamily, &Load<TriageModel>},
  };
  return families;
}

core::Result<std::unique_ptr<Model>> LoadModelFromFile(const ModelFile& file,
                                                       std::string_view source) {
  const std::string family = HeaderString(file, "family");
  std::string known;
  for (const FamilyEntry& e : RegisteredFamilies()) {
    if (e.family == family) return e.load(file, source);
    known += (known.empty() ? "" : ", ") + std::string(e.family);
  }
  return core::InvalidArgument(std::string(source) + ": unknown model family \"" + family +
                                       "\" (known: " + known + ")");
}

core::Result<std::unique_ptr<Model>> LoadModel(const std::string& path) {
  auto file = ReadModelFile(path);
  if (!file.has_value()) return file.error();
  return LoadModelFromFile(*file, path);
}

}  // namespace vigil::model
