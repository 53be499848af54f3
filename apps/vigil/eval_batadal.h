#pragma once

// `vigil eval --dataset batadal`: scores BATADAL_dataset04.csv hour by hour against
// BATADAL_dataset04_full_labels.csv and, when DIR holds both, BATADAL_test_dataset.csv against
// BATADAL_test_labels.csv; reports the BATADAL score (model/batadal_score.h) with its parts,
// per-attack time to detection and the ROC figures of the hourly scores.

#include <string>

namespace vigil::app {

// Returns the exit code: 0 after a report, 2 for bad input (missing or malformed files, a model
// that does not score time series or lacks a signal column), 1 for other failures.
int RunBatadalEval(const std::string& data, const std::string& model_path, bool json);

}  // namespace vigil::app
