#include "apps/vigil/batadal_data.h"

#include <fstream>
#include <sstream>

#include "model/model_file.h"

namespace vigil::app {

core::Result<BatadalFile> ReadBatadalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::NotFound(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return core::IoError(path + ": read failed");
  const std::string text = ss.str();
  auto table = sensor::ParseBatadalTable(text, path);
  if (!table.has_value()) return table.error();
  return BatadalFile{std::move(table).value(), "sha256:" + model::Sha256Hex(text)};
}

core::Result<Eigen::MatrixXd> SignalMatrix(const sensor::BatadalTable& table,
                                           const std::vector<std::string>& signals) {
  const auto n = static_cast<Eigen::Index>(table.rows());
  Eigen::MatrixXd out(n, static_cast<Eigen::Index>(signals.size()));
  for (size_t j = 0; j < signals.size(); ++j) {
    const int c = table.IndexOf(signals[j]);
    if (c < 0) {
      return core::InvalidArgument(table.source + ": no column \"" + signals[j] +
                                   "\", a signal the model was trained on");
    }
    for (Eigen::Index r = 0; r < n; ++r) {
      out(r, static_cast<Eigen::Index>(j)) = table.row(static_cast<size_t>(r))[c];
    }
  }
  return out;
}

}  // namespace vigil::app
