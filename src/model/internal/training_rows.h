#pragma once

// What the families trained on feature rows (isolation forest, KitNET) check and split alike.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "model/internal/random.h"

namespace vigil::model::internal {

// OK when `rows` is non-empty and every row has the same 1..max_dims finite features;
// otherwise kInvalidArgument naming the first bad row.
inline core::Status CheckTrainingRows(const std::vector<std::vector<float>>& rows,
                                      size_t max_dims) {
  if (rows.empty() || rows[0].empty() || rows[0].size() > max_dims) {
    return core::InvalidArgument("training rows must be non-empty with 1.." +
                                 std::to_string(max_dims) + " features");
  }
  const size_t dims = rows[0].size();
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != dims) {
      return core::InvalidArgument("training row " + std::to_string(i) + " has " +
                                   std::to_string(rows[i].size()) + " features, not " +
                                   std::to_string(dims));
    }
    for (float v : rows[i]) {
      if (!std::isfinite(v)) {
        return core::InvalidArgument("training row " + std::to_string(i) + " is not finite");
      }
    }
  }
  return core::Status::Ok();
}

// Row indices shuffled by `rng`: the first `fraction` of them held out for calibration, the
// rest for training.
struct HoldOutSplit {
  std::vector<uint32_t> train;
  std::vector<uint32_t> held;
};

// Fewer than 2 training rows after the hold-out is kInvalidArgument.
inline core::Result<HoldOutSplit> SplitHoldOut(size_t rows, double fraction, std::mt19937_64& rng) {
  std::vector<uint32_t> order(rows);
  std::iota(order.begin(), order.end(), 0u);
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[UniformIndex(rng, i)]);
  }
  const auto held = static_cast<ptrdiff_t>(fraction * static_cast<double>(rows));
  HoldOutSplit split;
  split.held.assign(order.begin(), order.begin() + held);
  split.train.assign(order.begin() + held, order.end());
  if (split.train.size() < 2) {
    return core::InvalidArgument("need at least 2 training rows after the hold-out, got " +
                                 std::to_string(split.train.size()));
  }
  return split;
}

}  // namespace vigil::model::internal
