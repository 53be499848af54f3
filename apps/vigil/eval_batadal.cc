#include "apps/vigil/eval_batadal.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "apps/vigil/batadal_data.h"
#include "apps/vigil/commands.h"
#include "model/batadal_score.h"
#include "model/evaluation.h"
#include "model/loader.h"
#include "model/signal_model.h"

namespace vigil::app {
namespace {

namespace fs = std::filesystem;

struct SplitFiles {
  std::string name;  // "dataset04" or "test"
  std::string data;
  std::string labels;
};

nlohmann::json Evidence(const std::vector<core::Evidence>& ev) {
  nlohmann::json out = nlohmann::json::array();
  for (const core::Evidence& e : ev) out.push_back({{"what", e.what}, {"weight", e.weight}});
  return out;
}

core::Result<nlohmann::json> EvaluateSplit(const model::SignalModel& m, const SplitFiles& f) {
  auto file = ReadBatadalFile(f.data);
  if (!file.has_value()) return file.error();
  auto labels = sensor::ReadBatadalLabels(f.labels);
  if (!labels.has_value()) return labels.error();
  VIGIL_RETURN_IF_ERROR(sensor::CheckLabelsMatch(file->table, *labels));
  auto rows = SignalMatrix(file->table, m.signals());
  if (!rows.has_value()) return rows.error();

  const size_t n = file->table.rows();
  std::vector<uint8_t> alarms(n, 0);
  std::vector<model::Scored> hourly(n);
  std::vector<std::vector<core::Evidence>> explanations(n);
  auto stream = m.NewSignalStream();
  std::vector<double> row(static_cast<size_t>(rows->cols()));
  const auto start = std::chrono::steady_clock::now();
  for (size_t r = 0; r < n; ++r) {
    for (size_t c = 0; c < row.size(); ++c) {
      row[c] = (*rows)(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c));
    }
    stream->ObserveRow(row);
    core::Verdict v = stream->Current();
    alarms[r] = v.anomalous ? 1 : 0;
    hourly[r] = {v.score, labels->attack_id[r] != 0};
    if (v.anomalous) explanations[r] = std::move(v.explanation);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto score = model::ComputeBatadalScore(labels->attack_id, alarms);
  if (!score.has_value()) return score.error().WithContext(f.labels);
  nlohmann::json j;
  j["data"] = f.data;
  j["labels"] = f.labels;
  j["digest"] = file->digest;
  j["hours"] = n;
  j["attack_hours"] = score->tp + score->fn;
  j["attacks"] = score->attacks.size();
  j["s"] = score->s;
  j["s_ttd"] = score->s_ttd;
  j["s_cm"] = score->s_cm;
  j["tpr"] = score->tpr;
  j["tnr"] = score->tnr;
  j["gamma"] = model::kBatadalGamma;
  j["confusion"] = {{"tp", score->tp}, {"fp", score->fp}, {"tn", score->tn}, {"fn", score->fn}};
  j["auc"] = model::RocAuc(hourly);
  j["tpr_at_fpr_1"] = model::TprAtFpr(hourly, 0.01);
  j["tpr_at_fpr_5"] = model::TprAtFpr(hourly, 0.05);
  j["seconds"] = secs;
  j["hours_per_second"] = secs > 0 ? static_cast<double>(n) / secs : 0.0;
  std::vector<model::Scored> normal;
  for (const model::Scored& s : hourly) {
    if (!s.positive) normal.push_back(s);
  }
  nlohmann::json per = nlohmann::json::object();
  for (const model::AttackDetection& a : score->attacks) {
    std::vector<model::Scored> ex = normal;
    for (size_t k = 0; k < a.duration; ++k) ex.push_back(hourly[a.start + k]);
    nlohmann::json pa = {
        {"start", sensor::FormatBatadalHour(file->table.hours[a.start])},
        {"end", sensor::FormatBatadalHour(file->table.hours[a.start + a.duration - 1])},
        {"duration_hours", a.duration},
        {"detected", a.detected},
        {"ttd_hours", a.time_to_detection},
        {"ttd_ratio", a.ratio()},
        {"hours_flagged", a.hours_flagged},
        {"auc", model::RocAuc(ex)}};
    if (a.detected) {
      pa["explanation_at_detection"] = Evidence(explanations[a.start + a.time_to_detection]);
    }
    per[std::to_string(a.id)] = pa;
  }
  j["per_attack"] = per;
  return j;
}

void PrintSplit(const std::string& name, const nlohmann::json& j) {
  std::printf("%s (%s): %zu hours, %zu attack hours in %zu attacks\n", name.c_str(),
              j["data"].get<std::string>().c_str(), j["hours"].get<size_t>(),
              j["attack_hours"].get<size_t>(), j["attacks"].get<size_t>());
  std::printf("  S %.4f = 0.5 * S_TTD %.4f + 0.5 * S_CM %.4f   (TPR %.3f, TNR %.3f)\n",
              j["s"].get<double>(), j["s_ttd"].get<double>(), j["s_cm"].get<double>(),
              j["tpr"].get<double>(), j["tnr"].get<double>());
  std::printf("  hourly scores: AUC %.4f, TPR@1%% %.1f%%, TPR@5%% %.1f%%\n",
              j["auc"].get<double>(), j["tpr_at_fpr_1"].get<double>() * 100,
              j["tpr_at_fpr_5"].get<double>() * 100);
  std::printf("  %-6s %-12s %6s %9s %8s %7s  %s\n", "attack", "start", "hours", "TTD (h)",
              "flagged", "AUC", "first alarm names");
  for (auto& [id, a] : j["per_attack"].items()) {
    std::string ttd = a["detected"].get<bool>()
                          ? std::to_string(a["ttd_hours"].get<size_t>())
                          : std::string("missed");
    std::string why;
    if (a.contains("explanation_at_detection")) {
      for (const auto& e : a["explanation_at_detection"]) {
        const std::string what = e["what"].get<std::string>();
        why += (why.empty() ? "" : "; ") + what.substr(0, what.find(' '));
      }
    }
    std::printf("  %-6s %-12s %6zu %9s %8zu %7.3f  %s\n", id.c_str(),
                a["start"].get<std::string>().c_str(), a["duration_hours"].get<size_t>(),
                ttd.c_str(), a["hours_flagged"].get<size_t>(), a["auc"].get<double>(),
                why.c_str());
  }
}

}  // namespace

int RunBatadalEval(const std::string& data, const std::string& model_path, bool json) {
  auto loaded = model::LoadModel(model_path);
  if (!loaded.has_value()) return ReportError("eval", loaded.error());
  const auto* m = dynamic_cast<const model::SignalModel*>(loaded->get());
  if (m == nullptr) {
    return ReportError("eval", core::InvalidArgument(
                                   model_path + ": model family \"" + (*loaded)->family() +
                                   "\" does not score time series; train one with "
                                   "'vigil train --dataset batadal'"));
  }
  const fs::path dir(data);
  auto in_dir = [&](std::string_view name) { return (dir / std::string(name)).string(); };
  std::vector<SplitFiles> splits = {{"dataset04", in_dir(sensor::kBatadalDataset04),
                                     in_dir(sensor::kBatadalDataset04Labels)}};
  const SplitFiles test{"test", in_dir(sensor::kBatadalTest), in_dir(sensor::kBatadalTestLabels)};
  std::error_code ec;
  const bool has_test = fs::exists(test.data, ec);
  const bool has_test_labels = fs::exists(test.labels, ec);
  if (has_test != has_test_labels) {
    return ReportError("eval", core::NotFound(
                                   data + ": holds " + (has_test ? test.data : test.labels) +
                                   " but not " + (has_test ? test.labels : test.data) +
                                   "; the test split needs both"));
  }
  if (has_test) splits.push_back(test);

  nlohmann::json out;
  for (const SplitFiles& s : splits) {
    auto j = EvaluateSplit(*m, s);
    if (!j.has_value()) return ReportError("eval", j.error());
    if (s.name == "test") {
      out["test"] = std::move(j).value();
    } else {
      out = std::move(j).value();
    }
  }
  out["dataset"] = "batadal";
  out["model"] = {{"family", (*loaded)->family()},
                  {"name", (*loaded)->name()},
                  {"version", (*loaded)->version()},
                  {"file", model_path}};
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("Evaluation of %s %s (%s) on BATADAL (%s)\n", (*loaded)->name().c_str(),
              (*loaded)->version().c_str(), (*loaded)->family().c_str(), data.c_str());
  PrintSplit("dataset04", out);
  if (out.contains("test")) PrintSplit("test", out["test"]);
  return kExitOk;
}

}  // namespace vigil::app
