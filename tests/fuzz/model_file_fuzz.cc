// libFuzzer target for model files (outside input: `vigil eval --model`, the agent's model
// loader). Two readers are driven by the same bytes:
//  1. DecodeModelFile on the bytes as a whole file, then SequenceModel::FromFile when the
//     container is intact and of family "syscall-ngram";
//  2. SequenceModel::FromFile on the bytes as the *payload* of an intact container. The
//     SHA-256 keeps random mutations from ever reaching the payload parser through (1), yet a
//     file with a valid checksum can still hold a hostile payload, so it is fuzzed directly.
// Every model that loads also scores a short stream, to exercise Finalize() and Surprisal() on
// whatever counts were accepted. Errors must carry a message; nothing may crash, hang or throw.
// Seeds: tests/fuzz/corpus/model/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/model_file.h"
#include "model/sequence_model.h"
#include "model_fuzz_checks.h"

namespace {

using vigil::model::ModelFile;
using vigil::model::SequenceModel;

using vigil::fuzz::CheckError;

void Exercise(const ModelFile& file, std::string_view source) {
  auto model = SequenceModel::FromFile(file, source);
  if (!model.has_value()) return CheckError(model.error());
  vigil::fuzz::CheckScoresStream(**model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto file = vigil::model::DecodeModelFile(bytes, "fuzz.vmdl");
  if (!file.has_value()) {
    CheckError(file.error());
  } else if (file->header.value("family", "") == vigil::model::kSequenceFamily) {
    Exercise(*file, "fuzz.vmdl");
  }

  ModelFile as_payload;
  as_payload.header = {
      {"family", vigil::model::kSequenceFamily}, {"name", "fuzz"}, {"version", "1"}};
  as_payload.payload.assign(bytes);
  Exercise(as_payload, "fuzz-payload");
  return 0;
}
