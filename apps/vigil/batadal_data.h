#pragma once

// Reading the BATADAL files for `vigil train --dataset batadal` and `vigil eval --dataset
// batadal` (format: docs/batadal.md; parser: sensor/batadal.h).

#include <string>
#include <vector>

#include <Eigen/Dense>

#include "core/status.h"
#include "sensor/batadal.h"

namespace vigil::app {

struct BatadalFile {
  sensor::BatadalTable table;
  std::string digest;  // "sha256:..." of the file's bytes
};

// Reads and parses the data table at `path`.
core::Result<BatadalFile> ReadBatadalFile(const std::string& path);

// The table's values as a matrix whose columns are `signals`, in that order (the order a model
// was trained on). kInvalidArgument naming the file when a signal has no column; columns the
// model does not use are ignored.
core::Result<Eigen::MatrixXd> SignalMatrix(const sensor::BatadalTable& table,
                                           const std::vector<std::string>& signals);

}  // namespace vigil::app
