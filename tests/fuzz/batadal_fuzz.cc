// libFuzzer target for the BATADAL inputs (outside input: `vigil train/eval --dataset batadal
// --data DIR` and ics-residual model files). The same bytes drive three readers:
//  1. ParseBatadalTable (a data CSV), and when it parses, every row is scored by a small
//     ics-residual model, so odd but valid tables reach the scorer;
//  2. ParseBatadalLabels (a label CSV), then CheckLabelsMatch against the table of (1);
//  3. IcsResidualModel::FromFile on the bytes as the payload of an intact container (the
//     SHA-256 keeps random mutations of whole files from reaching the payload parser, yet a
//     file with a valid checksum may still hold a hostile payload); a model that loads scores
//     a few rows.
// Errors must carry a message naming the input; nothing may crash, hang or throw.
// Seeds: tests/fuzz/corpus/batadal/.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/ics_residual.h"
#include "sensor/batadal.h"

namespace {

using vigil::model::IcsResidualModel;

void CheckError(const vigil::core::Status& s, std::string_view source) {
  if (s.ok() || s.message().rfind(std::string(source), 0) != 0) __builtin_trap();
}

void CheckVerdict(const vigil::core::Verdict& v) {
  if (std::isnan(v.score) || v.score < 0.0 || v.score > 1.0) __builtin_trap();
}

// A model over two signals ("A", "B") trained once on a fixed synthetic series.
const IcsResidualModel& SmallModel() {
  static const std::unique_ptr<IcsResidualModel> model = [] {
    Eigen::MatrixXd x(200, 2);
    for (int t = 0; t < 200; ++t) {
      x(t, 0) = std::sin(t * 0.3);
      x(t, 1) = 2.0 * std::sin(t * 0.3) + 0.1 * std::cos(t * 1.7);
    }
    auto m = IcsResidualModel::Train({"A", "B"}, x, vigil::model::IcsResidualOptions{});
    if (!m.has_value()) __builtin_trap();
    return std::move(m).value();
  }();
  return *model;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto table = vigil::sensor::ParseBatadalTable(bytes, "fuzz.csv");
  if (!table.has_value()) {
    CheckError(table.error(), "fuzz.csv");
  } else {
    auto stream = SmallModel().NewSignalStream();
    std::vector<double> row(2);
    for (size_t r = 0; r < table->rows(); ++r) {
      row[0] = table->row(r)[0];
      row[1] = table->row(r)[table->cols() - 1];
      stream->ObserveRow(row);
      CheckVerdict(stream->Current());
    }
  }

  auto labels = vigil::sensor::ParseBatadalLabels(bytes, "labels.csv");
  if (!labels.has_value()) {
    CheckError(labels.error(), "labels.csv");
  } else {
    if (labels->attack.size() != labels->hours.size() ||
        labels->attack_id.size() != labels->hours.size()) {
      __builtin_trap();
    }
    if (table.has_value()) {
      const vigil::core::Status st = vigil::sensor::CheckLabelsMatch(*table, *labels);
      if (!st.ok()) CheckError(st, "labels.csv");
    }
  }

  vigil::model::ModelFile file;
  file.header = {{"family", vigil::model::kIcsResidualFamily}, {"name", "fuzz"}, {"version", "1"}};
  file.payload.assign(bytes);
  auto model = IcsResidualModel::FromFile(file, "fuzz-payload");
  if (!model.has_value()) {
    CheckError(model.error(), "fuzz-payload");
  } else {
    auto stream = (*model)->NewSignalStream();
    std::vector<double> row((*model)->signals().size(), 1.0);
    for (int i = 0; i < 3; ++i) {
      stream->ObserveRow(row);
      CheckVerdict(stream->Current());
      row[0] = std::nan("");
    }
  }
  return 0;
}
