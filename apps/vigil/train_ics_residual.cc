// --model-type ics-residual: per-signal predictors over industrial telemetry
// (model/ics_residual.h), trained on BATADAL's normal-operation year (BATADAL_dataset03.csv).

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "apps/vigil/batadal_data.h"
#include "apps/vigil/commands.h"
#include "apps/vigil/model_types.h"
#include "model/ics_residual.h"

namespace vigil::app {

ModelType IcsResidualModelType() {
  auto opts = std::make_shared<model::IcsResidualOptions>();
  ModelType t;
  t.name = "ics-residual";
  t.summary =
      "per-signal ridge predictors of ICS telemetry with smoothed residual scores";
  t.datasets = {"batadal"};
  t.add_options = [opts](CLI::App& cmd) {
    model::IcsResidualOptions& o = *opts;
    cmd.add_option("--ridge", o.ridge,
                   "ics-residual: ridge penalty of the per-signal predictors (standardised)")
        ->capture_default_str()
        ->check(CLI::Range(1e-6, 1e6));
    cmd.add_option("--smoothing", o.smoothing,
                   "ics-residual: EWMA weight of the newest hour in the score, (0, 1]")
        ->capture_default_str()
        ->check(CLI::Range(1e-6, 1.0));
    cmd.add_option("--resolution", o.resolution,
                   "ics-residual: training values are rounded to this step, the precision of "
                   "the data to be scored (BATADAL's dataset04 has 2 decimals); 0 keeps them")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1e6));
  };
  t.train = [opts](const TrainRequest& r) {
    const auto start = std::chrono::steady_clock::now();
    model::IcsResidualOptions o = *opts;
    o.target_fpr = r.target_fpr;
    if (!r.name.empty()) o.name = r.name;
    o.version = r.version;
    const std::string path =
        (std::filesystem::path(r.data) / std::string(sensor::kBatadalTraining)).string();
    auto file = ReadBatadalFile(path);
    if (!file.has_value()) return ReportError("train", file.error());
    const sensor::BatadalTable& table = file->table;
    auto rows = SignalMatrix(table, table.signals);
    if (!rows.has_value()) return ReportError("train", rows.error());
    auto m = model::IcsResidualModel::Train(table.signals, *rows, o);
    if (!m.has_value()) return ReportError("train", m.error().WithContext(path));
    TrainedModel out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.training = {{"dataset", "batadal"},
                    {"file", std::string(sensor::kBatadalTraining)},
                    {"digest", file->digest},
                    {"rows", table.rows()},
                    {"signals", table.cols()},
                    {"first_hour", sensor::FormatBatadalHour(table.hours.front())},
                    {"last_hour", sensor::FormatBatadalHour(table.hours.back())}};
    out.parameters = {{"ridge", o.ridge},
                      {"smoothing", o.smoothing},
                      {"resolution", o.resolution},
                      {"target_fpr", o.target_fpr},
                      {"folds", o.folds}};
    out.file = (*m)->ToFile(nlohmann::json::object());
    size_t roles[3] = {0, 0, 0};
    for (model::SignalRole role : (*m)->roles()) ++roles[static_cast<size_t>(role)];
    char line[240];
    std::snprintf(line, sizeof(line),
                  "%zu hours of normal operation, %zu signals: %zu predicted, %zu binary "
                  "(actuator states), %zu constant",
                  table.rows(), table.cols(), roles[2], roles[1], roles[0]);
    out.summary.emplace_back(line);
    const model::IcsCalibration& cal = (*m)->calibration();
    std::snprintf(line, sizeof(line),
                  "threshold: %.4f (cross-fitted false-alarm rate %.2f%%, target %.2f%%)",
                  cal.threshold, cal.achieved_fpr * 100, o.target_fpr * 100);
    out.summary.emplace_back(line);
    return WriteTrainedModel(r, std::move(out));
  };
  return t;
}

}  // namespace vigil::app
