#include "model/train/trainer_module.h"

namespace vigil::model {
namespace {

core::Result<RnnTrainResult> TrainRnnEntry(std::span<const TrainingTrace> traces,
                                           const RnnTrainOptions& options,
                                           const RnnProgressFn& progress) {
  return TrainRnn(traces, options, progress);
}

core::Result<EnsembleTrainResult> TrainEnsembleEntry(std::span<const TrainingTrace> traces,
                                                     const EnsembleTrainOptions& options,
                                                     const EnsembleProgressFn& progress) {
  return TrainEnsemble(traces, options, progress);
}

std::string DescribeMember(const EnsembleMemberSpec& spec) { return spec.Describe(); }

}  // namespace
}  // namespace vigil::model

extern "C" __attribute__((visibility("default"))) const vigil::model::TrainerModule*
vigil_trainer_module() {
  static const vigil::model::TrainerModule table = [] {
    vigil::model::TrainerModule t;
    t.version = VIGIL_VERSION;
    t.train_rnn = &vigil::model::TrainRnnEntry;
    t.train_ensemble = &vigil::model::TrainEnsembleEntry;
    t.parse_ensemble_members = &vigil::model::ParseEnsembleMembers;
    t.describe_member = &vigil::model::DescribeMember;
    return t;
  }();
  return &table;
}
