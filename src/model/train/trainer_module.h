#pragma once

// The trainer module: libvigil-trainer.so, a shared object holding the libtorch training code
// (rnn_train.h, ensemble_train.h). The vigil binary does not link libtorch: libtorch and the
// hundreds of libraries it pulls in cost each vigil process about 0.8 s of start-up and tens of
// MB of memory, and only `vigil train --model-type rnn|ensemble` needs them. That command loads
// the module with dlopen (apps/vigil/trainer_loader.h) and calls through this table.
//
// The module and the binary are built together, from the same sources and with the same
// compiler, so the C++ types in the table have one layout on both sides; `abi` and `layout`
// refuse a module from another build. The module keeps private copies of Vigil's libraries
// (linked with --exclude-libs), exports nothing but vigil_trainer_module, and is never unloaded:
// the models it returns run its code.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/sequence_model.h"
#include "model/train/ensemble_train.h"
#include "model/train/rnn_train.h"

namespace vigil::model {

inline constexpr uint32_t kTrainerModuleAbi = 1;
inline constexpr const char* kTrainerModuleSymbol = "vigil_trainer_module";

// Sizes of the types that cross between binary and module, as seen by whoever computes it.
constexpr uint64_t TrainerModuleLayout() {
  return (uint64_t{sizeof(RnnTrainOptions)} << 48) ^ (uint64_t{sizeof(RnnTrainResult)} << 36) ^
         (uint64_t{sizeof(EnsembleTrainOptions)} << 24) ^
         (uint64_t{sizeof(EnsembleTrainResult)} << 12) ^ sizeof(EnsembleMemberSpec) ^
         (uint64_t{sizeof(TrainingTrace)} << 56) ^ (uint64_t{sizeof(core::Status)} << 40);
}

struct TrainerModule {
  uint32_t abi = kTrainerModuleAbi;
  uint64_t layout = TrainerModuleLayout();
  const char* version = "";  // the project version the module was built as
  core::Result<RnnTrainResult> (*train_rnn)(std::span<const TrainingTrace> traces,
                                            const RnnTrainOptions& options,
                                            const RnnProgressFn& progress) = nullptr;
  core::Result<EnsembleTrainResult> (*train_ensemble)(std::span<const TrainingTrace> traces,
                                                      const EnsembleTrainOptions& options,
                                                      const EnsembleProgressFn& progress) =
      nullptr;
  core::Result<std::vector<EnsembleMemberSpec>> (*parse_ensemble_members)(
      std::string_view text, const SequenceModelOptions& base_ngram,
      const RnnTrainOptions& base_rnn) = nullptr;
  std::string (*describe_member)(const EnsembleMemberSpec& spec) = nullptr;
};

}  // namespace vigil::model

// Defined by the module only: its table, valid for as long as the process runs.
extern "C" const vigil::model::TrainerModule* vigil_trainer_module();
