#pragma once

// `vigil train --model-type NAME`: one entry per trainable model type. Each type lives in its
// own train_<type>.cc, adds its own flags to the train command and trains from the common
// request; the list in model_types.cc names them all. WriteTrainedModel is the one way a type
// records lineage, writes the file and prints the summary.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "model/model_file.h"

namespace vigil::app {

// Flags every model type shares.
struct TrainRequest {
  std::string dataset;  // the --dataset value
  std::string data;     // the --data path
  std::string out;      // where the model file goes
  std::string name;     // "" = the type's default name
  std::string version = "1";
  double target_fpr = 0.05;  // false-alarm rate the threshold is calibrated to
  bool json = false;
};

struct ModelType {
  std::string name;                   // the --model-type value
  std::string summary;                // one line for --help
  std::vector<std::string> datasets;  // --dataset values it trains on
  // --dataset values for which --data may be left out (the type reads its input elsewhere).
  std::vector<std::string> data_optional;
  // Adds the type's own flags to the train command; the values live in state the function
  // captures, read later by `train`.
  std::function<void(CLI::App&)> add_options;
  // Trains, writes the model file (WriteTrainedModel) and returns an exit code.
  std::function<int(const TrainRequest&)> train;
};

// Every model type, in --help order.
const std::vector<ModelType>& ModelTypes();
// The documented default type for a dataset ("" when none trains on it).
std::string DefaultModelType(const std::string& dataset);

// What a model type hands back after training.
struct TrainedModel {
  model::ModelFile file;        // the family's file; lineage is merged into its header
  nlohmann::json training;      // {"dataset", "digest", "traces"/"rows", "events", ...}
  nlohmann::json parameters;    // the flags that shaped the model
  std::vector<std::string> summary;  // human-readable lines printed after the first
  double seconds = 0;           // training wall time
};

// Adds lineage (code version, creation time, training data, parameters) to the header, writes
// the file atomically and prints the summary (or the header as JSON with --json). Returns the
// exit code.
int WriteTrainedModel(const TrainRequest& request, TrainedModel trained);

}  // namespace vigil::app
