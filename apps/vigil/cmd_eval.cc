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
#include "model/loader.h"
#include "sensor/adfa.h"

namespace vigil::app {
namespace {

struct EvalOptions {
  std::string dataset = "adfa-ld";
  std::string data;
  std::string model;
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

int RunEval(const EvalOptions& o) {
  if (o.dataset == "batadal") return RunBatadalEval(o.data, o.model, o.json);
  auto m = model::LoadModel(o.model);
  if (!m.has_value()) return ReportError("eval", m.error());
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
  std::vector<TraceResult> results(traces.size());
  size_t events = 0;
  const auto start = std::chrono::steady_clock::now();
  {
    Progress progress("scoring ", traces.size());
    for (size_t i = 0; i < traces.size(); ++i) {
      auto stream = (*m)->NewStream("");
      stream->ObserveSyscalls(core::Arch::kI386, syscalls[i]);
      const core::Verdict v = stream->Current();
      results[i] = {traces[i].attack_type, v.score, v.anomalous, syscalls[i].size()};
      events += syscalls[i].size();
      progress.Update(i + 1);
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

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
  j["model"] = {{"name", (*m)->name()}, {"version", (*m)->version()}, {"file", o.model}};
  j["dataset"] = o.dataset;
  j["traces"] = traces.size();
  j["normal_traces"] = n_normal;
  j["attack_traces"] = n_attack;
  j["events"] = events;
  j["seconds"] = secs;
  j["events_per_second"] = secs > 0 ? static_cast<double>(events) / secs : 0.0;
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

  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("Evaluation of %s %s on %s (%s)\n", (*m)->name().c_str(), (*m)->version().c_str(),
              o.dataset.c_str(), o.data.c_str());
  std::printf("  %zu traces (%zu normal, %zu attack), %zu system calls, %.0f syscalls/s\n\n",
              traces.size(), n_normal, n_attack, events, j["events_per_second"].get<double>());
  std::printf("  %-18s %7s %8s %8s %7s\n", "attack type", "traces", "AUC", "TPR@1%", "TPR@5%");
  for (auto& [type, mj] : per.items()) {
    std::printf("  %-18s %7zu %8.3f %7.1f%% %6.1f%%\n", type.c_str(), mj["traces"].get<size_t>(),
                mj["auc"].get<double>(), mj["tpr_at_fpr_1"].get<double>() * 100,
                mj["tpr_at_fpr_5"].get<double>() * 100);
  }
  std::printf("  %-18s %7zu %8.3f %7.1f%% %6.1f%%\n\n", "all attacks", n_attack,
              j["auc"].get<double>(), j["tpr_at_fpr_1"].get<double>() * 100,
              j["tpr_at_fpr_5"].get<double>() * 100);
  std::printf("  at the model's calibrated threshold: %.1f%% false alarms, %.1f%% detected\n",
              j["calibrated_threshold"]["fpr"].get<double>() * 100,
              j["calibrated_threshold"]["tpr"].get<double>() * 100);
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
  cmd->add_flag("--json", o->json,
                "Print one JSON object (auc, tpr_at_fpr_1, tpr_at_fpr_5, per_attack, ...; for "
                "batadal also s, s_ttd, s_cm, tpr, tnr, per-attack ttd_hours, and a test key)");
  return [o] { return RunEval(*o); };
}

}  // namespace vigil::app
