// libFuzzer target for model files of the "kitnet" family (docs/model-file-format.md, 2f). The
// same bytes drive two readers:
//  1. DecodeModelFile on the bytes as a whole file, then LoadModelFromFile (the loader every
//     command uses) and KitNetModel::FromFile in int8, when the container is intact and of
//     family "kitnet";
//  2. KitNet::FromFile on the bytes as the payload of an intact container, in float and int8
//     (the checksum would keep random mutations from ever reaching the payload parser through
//     (1), yet a file with a valid checksum can hold a hostile payload).
// Every network that loads scores rows (short, exact and long) and explains one; scores must be
// finite and >= 0, verdict scores in [0, 1]. Seeds: tests/fuzz/corpus/kitnet/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/kitnet_model.h"
#include "model/loader.h"
#include "model/model_file.h"
#include "model_fuzz_checks.h"

namespace {

using vigil::model::KitNet;
using vigil::model::KitNetPrecision;
using vigil::model::ModelFile;

using vigil::fuzz::CheckError;

void ScoreRows(const KitNet& net) {
  KitNet::Workspace ws;
  for (size_t len : {size_t{0}, size_t{1}, net.dims(), net.dims() + 3}) {
    std::vector<float> row(len);
    for (size_t i = 0; i < len; ++i) row[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
    const double s = net.Score(row, ws);
    if (!(s >= 0.0) || std::isinf(s)) __builtin_trap();
    if (len == net.dims()) (void)net.Explain(row, 3, ws);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto file = vigil::model::DecodeModelFile(bytes, "fuzz.vmdl");
  if (!file.has_value()) {
    CheckError(file.error());
  } else if (file->header.value("family", "") == vigil::model::kKitNetFamily) {
    auto m = vigil::model::LoadModelFromFile(*file, "fuzz.vmdl");
    if (m.has_value()) {
      vigil::fuzz::CheckScoresStream(**m);
    } else {
      CheckError(m.error());
    }
    auto q = vigil::model::KitNetModel::FromFile(*file, "fuzz.vmdl", KitNetPrecision::kInt8);
    if (q.has_value()) {
      vigil::fuzz::CheckScoresStream(**q);
    } else {
      CheckError(q.error());
    }
  }

  ModelFile as_payload;
  as_payload.header = {
      {"family", vigil::model::kKitNetFamily}, {"name", "fuzz"}, {"version", "1"}};
  as_payload.payload.assign(bytes);
  for (KitNetPrecision p : {KitNetPrecision::kFloat, KitNetPrecision::kInt8}) {
    auto net = KitNet::FromFile(as_payload, "fuzz-payload", p);
    if (!net.has_value()) {
      CheckError(net.error());
      continue;
    }
    ScoreRows(*net);
  }
  return 0;
}
