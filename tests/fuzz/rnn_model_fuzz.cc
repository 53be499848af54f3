// libFuzzer target for the payloads of the "syscall-rnn", "ensemble" and "syscall-cover" model
// families (outside input: any model file given to `vigil eval`, `vigil replay` or the agent).
// The container's checksum keeps random mutations of whole files from reaching a family parser,
// so the bytes are fed directly as the payload of an intact container of each family. An
// ensemble's members are whole model files inside the payload and go through
// model::LoadModelFromFile. Every model that loads scores a short stream. Errors must carry a
// message; nothing may crash, hang or throw. Seeds: tests/fuzz/corpus/rnn/.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "model/cover_model.h"
#include "model/ensemble.h"
#include "model/loader.h"
#include "model/model_file.h"
#include "model/rnn_model.h"
#include "model_fuzz_checks.h"

namespace {

using vigil::model::ModelFile;

void Exercise(const vigil::core::Result<std::unique_ptr<vigil::model::Model>>& model) {
  if (!model.has_value()) return vigil::fuzz::CheckError(model.error());
  vigil::fuzz::CheckScoresStream(**model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (std::string_view family :
       {vigil::model::kRnnFamily, vigil::model::kEnsembleFamily, vigil::model::kCoverFamily}) {
    ModelFile file;
    file.header = {{"family", family}, {"name", "fuzz"}, {"version", "1"}};
    file.payload.assign(bytes);
    Exercise(vigil::model::LoadModelFromFile(file, "fuzz-payload"));
  }
  return 0;
}
