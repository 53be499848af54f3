// vigil eval: scores every validation (normal) and attack trace of a dataset with a trained model
// and reports detection metrics.

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/vigil/commands.h"
#include "apps/vigil/eval_batadal.h"
#include "model/evaluation.h"
#include "model/kitnet_model.h"
#include "model/loader.h"
#include "sensor/adfa.h"

namespace vigil::app {
namespace {

struct EvalOptions {
  std::string dataset = "adfa-ld";
  std::string data;
  std::string model;
  std::string precision = "float";
  bool json = false;
};

struct TraceResult {
  std::string attack_type;  // "" for normal
  double score = 0;
  bool anomalous = false;
  size_t events = 0;
};

nlohmann::json Metrics(const std::vector<model::Scored>& ex) {
  return {{"auc", model::RocAuc(ex)},
          {"tpr_at_fpr_1", model::TprAtFpr(ex, 0.01)},
          {"tpr_at_fpr_5", model::TprAtFpr(ex, 0.05)}};
}

// The model at `path` scoring with `precision`: any family for float; int8 only for the
// autoencoder ensemble (kitnet), the family with an int8 path.
core::Result<std::unique_ptr<model::Model>> LoadForPrecision(const std::string& path,
                                                             model::KitNetPrecision precision) {
  if (precision == model::KitNetPrecision::kFloat) return model::LoadModel(path);
  auto file = model::ReadModelFile(path);
  if (!file.has_value()) return file.error();
  const std::string family = model::HeaderString(*file, "family");
  if (family != model::kKitNetFamily) {
    return core::InvalidArgument("--precision int8: " + path + " is a model of family \"" +
                                 family + "\"; only the autoencoder family (kitnet) has an int8 " +
                                 "scoring path");
  }
  auto m = model::KitNetModel::FromFile(*file, path, precision);
  if (!m.has_value()) return m.error();
  return std::unique_ptr<model::Model>(std::move(m).value());
}

struct ScoringRun {
  std::vector<TraceResult> results;
  size_t events = 0;
  double seconds = 0;
};

// Scores every trace with `m`; the clock covers scoring only (the traces are read before).
ScoringRun ScoreTraces(const model::Model& m, const std::vector<sensor::AdfaTrace>& traces,
                       const std::vector<std::vector<int32_t>>& syscalls, const char* label) {
  ScoringRun run;
  run.results.resize(traces.size());
  const auto start = std::chrono::steady_clock::now();
  Progress progress(label, traces.size());
  for (size_t i = 0; i < traces.size(); ++i) {
    auto stream = m.NewStream("");
    stream->ObserveSyscalls(core::Arch::kI386, syscalls[i]);
    const core::Verdict v = stream->Current();
    run.results[i] = {traces[i].attack_type, v.score, v.anomalous, syscalls[i].size()};
    run.events += syscalls[i].size();
    progress.Update(i + 1);
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

// Detection metrics of one scoring run: overall, per attack type, at the calibrated threshold.
nlohmann::json Report(const ScoringRun& run) {
  const std::vector<TraceResult>& results = run.results;
  std::vector<model::Scored> all;
  std::vector<model::Scored> normals;
  std::map<std::string, std::vector<model::Scored>> attacks;
  size_t normal_alarms = 0, attack_hits = 0, n_normal = 0, n_attack = 0;
  for (const TraceResult& r : results) {
    const bool pos = !r.attack_type.empty();
    all.push_back({r.score, pos});
    if (pos) {
      attacks[r.attack_type].push_back({r.score, true});
      ++n_attack;
      attack_hits += r.anomalous ? 1 : 0;
    } else {
      normals.push_back({r.score, false});
      ++n_normal;
      normal_alarms += r.anomalous ? 1 : 0;
    }
  }
  nlohmann::json j = Metrics(all);
  j["traces"] = results.size();
  j["normal_traces"] = n_normal;
  j["attack_traces"] = n_attack;
  j["events"] = run.events;
  j["seconds"] = run.seconds;
  j["events_per_second"] = run.seconds > 0 ? static_cast<double>(run.events) / run.seconds : 0.0;
  j["calibrated_threshold"] = {
      {"fpr", n_normal ? static_cast<double>(normal_alarms) / n_normal : 0.0},
      {"tpr", n_attack ? static_cast<double>(attack_hits) / n_attack : 0.0}};
  nlohmann::json per = nlohmann::json::object();
  for (auto& [type, pos] : attacks) {
    std::vector<model::Scored> ex = normals;
    ex.insert(ex.end(), pos.begin(), pos.end());
    per[type] = Metrics(ex);
    per[type]["traces"] = pos.size();
  }
  j["per_attack"] = per;
  return j;
}

void PrintReport(const nlohmann::json& j) {
  std::printf("  %zu traces (%zu normal, %zu attack), %zu system calls, %.0f syscalls/s\n\n",
              j["traces"].get<size_t>(), j["normal_traces"].get<size_t>(),
              j["attack_traces"].get<size_t>(), j["events"].get<size_t>(),
              j["events_per_second"].get<double>());
  std::printf("  %-18s %7s %8s %8s %7s\n", "attack type", "traces", "AUC", "TPR@1%", "TPR@5%");
  for (auto& [type, mj] : j["per_attack"].items()) {
    std::printf("  %-18s %7zu %8.3f %7.1f%% %6.1f%%\n", type.c_str(), mj["traces"].get<size_t>(),
                mj["auc"].get<double>(), mj["tpr_at_fpr_1"].get<double>() * 100,
                mj["tpr_at_fpr_5"].get<double>() * 100);
  }
  std::printf("  %-18s %7zu %8.3f %7.1f%% %6.1f%%\n\n", "all attacks",
              j["attack_traces"].get<size_t>(), j["auc"].get<double>(),
              j["tpr_at_fpr_1"].get<double>() * 100, j["tpr_at_fpr_5"].get<double>() * 100);
  std::printf("  at the model's calibrated threshold: %.1f%% false alarms, %.1f%% detected\n",
              j["calibrated_threshold"]["fpr"].get<double>() * 100,
              j["calibrated_threshold"]["tpr"].get<double>() * 100);
}

int RunEval(const EvalOptions& o) {
  if (o.dataset == "batadal") {
    if (o.precision != "float") {
      return ReportError("eval", core::InvalidArgument(
                                     "--precision " + o.precision +
                                     ": only adfa-ld models (the autoencoder family) have an "
                                     "int8 path; batadal evaluates in float"));
    }
    return RunBatadalEval(o.data, o.model, o.json);
  }
  auto m = LoadForPrecision(o.model, o.precision == "int8" ? model::KitNetPrecision::kInt8
                                                           : model::KitNetPrecision::kFloat);
  if (!m.has_value()) return ReportError("eval", m.error());
  std::unique_ptr<model::Model> quantized;
  if (o.precision == "both") {
    auto q = LoadForPrecision(o.model, model::KitNetPrecision::kInt8);
    if (!q.has_value()) return ReportError("eval", q.error());
    quantized = std::move(q).value();
  }
  std::vector<sensor::AdfaTrace> traces;
  for (auto split : {sensor::AdfaSplit::kValidation, sensor::AdfaSplit::kAttack}) {
    auto list = sensor::ListAdfaTraces(o.data, split);
    if (!list.has_value()) return ReportError("eval", list.error());
    traces.insert(traces.end(), list->begin(), list->end());
  }
  // Read everything first so that the throughput figure measures scoring, not the disk.
  std::vector<std::vector<int32_t>> syscalls;
  syscalls.reserve(traces.size());
  {
    Progress progress("reading ", traces.size());
    for (size_t i = 0; i < traces.size(); ++i) {
      auto s = sensor::ReadAdfaTrace(traces[i].path);
      if (!s.has_value()) return ReportError("eval", s.error());
      syscalls.push_back(std::move(s).value());
      progress.Update(i + 1);
    }
  }
  nlohmann::json j = Report(ScoreTraces(**m, traces, syscalls, "scoring "));
  j["model"] = {{"name", (*m)->name()}, {"version", (*m)->version()}, {"file", o.model}};
  j["dataset"] = o.dataset;
  j["precision"] = o.precision == "int8" ? "int8" : "float";
  if (quantized) {
    // The same traces through the int8 path, compared with the float run above (ratio within
    // one run of this process: float's time over int8's, > 1 when int8 is faster).
    nlohmann::json q = Report(ScoreTraces(*quantized, traces, syscalls, "scoring int8 "));
    q["auc_loss"] = j["auc"].get<double>() - q["auc"].get<double>();
    q["speedup"] = q["seconds"].get<double>() > 0
                       ? j["seconds"].get<double>() / q["seconds"].get<double>()
                       : 0.0;
    j["int8"] = q;
  }
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("Evaluation of %s %s on %s (%s), %s scoring\n", (*m)->name().c_str(),
              (*m)->version().c_str(), o.dataset.c_str(), o.data.c_str(),
              j["precision"].get<std::string>().c_str());
  PrintReport(j);
  if (quantized) {
    const nlohmann::json& q = j["int8"];
    std::printf("\nThe same traces with int8 scoring (weights int8 per tensor, int32 accumulation)\n");
    PrintReport(q);
    std::printf("\n  int8 against float: AUC %+.4f, speed x%.2f (float's scoring time over int8's)\n",
                -q["auc_loss"].get<double>(), q["speedup"].get<double>());
  }
  return kExitOk;
}

}  // namespace

RunFn AddEvalCommand(CLI::App& root) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = root.add_subcommand(
      "eval",
      "Score a dataset's normal and attack data with a trained model and report detection "
      "metrics (adfa-ld: every validation and attack trace; batadal: every hour of dataset04, "
      "and of the test split when DIR holds it, with the BATADAL score S)");
  cmd->add_option("--dataset", o->dataset, "Dataset layout: adfa-ld or batadal")
      ->capture_default_str()
      ->check(CLI::IsMember({"adfa-ld", "batadal"}));
  cmd->add_option("--data", o->data, "Dataset root folder")->required();
  cmd->add_option("--model", o->model, "Model file written by 'vigil train'")->required();
  cmd->add_option("--precision", o->precision,
                  "Scoring arithmetic: float, int8 (autoencoder models only: int8 weights, int32 "
                  "accumulation), or both (float, then int8 on the same traces, with the AUC loss "
                  "and the speed ratio)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float", "int8", "both"}));
  cmd->add_flag("--json", o->json,
                "Print one JSON object (auc, tpr_at_fpr_1, tpr_at_fpr_5, per_attack, ...; for "
                "batadal also s, s_ttd, s_cm, tpr, tnr, per-attack ttd_hours, and a test key; with "
                "--precision both an int8 key with the same fields, auc_loss and speedup)");
  return [o] { return RunEval(*o); };
}

}  // namespace vigil::app
