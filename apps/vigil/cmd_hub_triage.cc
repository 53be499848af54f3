// `vigil hub triage export|train|measure`: the hub's adjudicated incidents as triage training
// data (docs/triage-labels.md), a gradient-boosted triage model trained from them by the same
// trainer as `vigil train --model-type triage --dataset jsonl` (train_triage.cc) and signed, and
// how much alert volume a triage model removes at a fixed recall on a labelled set
// (hub/triage_volume.h). They read the hub's store directly (SQLite or PostgreSQL): no running hub
// is needed, and nothing is written to the store. `train` appends a model-change record
// ("trained": data digest, options, metrics) to the hub's audit log, so it needs the log to itself:
// while a hub runs, an admin trains through it instead (POST /v1/triage/train, hub/triage.h).

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/vigil/audit_trail.h"
#include "apps/vigil/commands.h"
#include "audit/audit_log.h"
#include "apps/vigil/govern_cli.h"
#include "apps/vigil/model_types.h"
#include "core/files.h"
#include "govern/internal/files.h"
#include "govern/keys.h"
#include "govern/registry.h"
#include "govern/trust.h"
#include "hub/config.h"
#include "hub/store.h"
#include "hub/triage_volume.h"
#include "model/model_file.h"
#include "model/triage.h"
#include "model/triage_labels.h"

namespace vigil::app {
namespace {

struct TriageCliFlags {
  std::string config, state_dir;
  std::string out;
  std::string key;  // train: the minisign secret key that signs the model
  std::string name = "triage", version = "1";
  double target_fpr = 0.05;
  std::string model, labels;  // measure
  double recall = 0.95;
  bool json = false;
  nlohmann::json given = nlohmann::json::object();  // train: the options given, as given
};

void AddStoreFlags(CLI::App* cmd, TriageCliFlags* f) {
  cmd->add_option("--config", f->config, "Hub configuration (YAML, docs/hub.md): its store");
  cmd->add_option("--state-dir", f->state_dir,
                  "The hub's state directory (overrides the config's; default "
                  "/var/lib/vigil/hub)");
}

core::Result<hub::HubConfig> HubConfigOf(const TriageCliFlags& f) {
  return hub::LoadHubConfigWithStateDir(f.config, f.state_dir);
}

// The store's adjudicated incidents, one docs/triage-labels.md line each.
core::Result<std::string> ExportedLabels(const hub::HubConfig& c) {
  VIGIL_ASSIGN_OR_RETURN(auto store, hub::Store::Open(c.store, hub::StoreOptions{}));
  return store->ExportLabels();
}

int RunExport(const TriageCliFlags& f) {
  auto config = HubConfigOf(f);
  if (!config.has_value()) return ReportError("hub triage export", config.error());
  auto text = ExportedLabels(*config);
  if (!text.has_value()) return ReportError("hub triage export", text.error());
  if (f.out.empty()) {
    std::fwrite(text->data(), 1, text->size(), stdout);
    return kExitOk;
  }
  if (auto st = govern::internal::WriteFileAtomic(f.out, *text, 0644); !st.ok()) {
    return ReportError("hub triage export", st);
  }
  std::fprintf(stderr, "vigil hub triage export: wrote %s\n", f.out.c_str());
  return kExitOk;
}

const ModelType* TriageType() {
  for (const ModelType& t : ModelTypes()) {
    if (t.name == "triage") return &t;
  }
  return nullptr;
}

int RunTrain(const TriageCliFlags& f) {
  const char* cmd = "hub triage train";
  auto config = HubConfigOf(f);
  if (!config.has_value()) return ReportError(cmd, config.error());
  // The signing key first: a model nobody can sign is not worth training.
  const std::string key_path = f.key.empty() ? config->audit_key : f.key;
  auto key = govern::LoadSecretKey(key_path);
  if (!key.has_value()) return ReportError(cmd, key.error().WithContext("--key"));
  // The hub's audit log next: the training is an audit record (model-change "trained"), and a
  // running hub holds the log (it trains itself: POST /v1/triage/train).
  auto signer = OpenCheckpointSigner(config->audit_key);
  if (!signer.has_value()) return ReportError(cmd, signer.error().WithContext("audit.key"));
  auto log = OpenHubAudit(*config, **signer);
  if (!log.has_value()) {
    return ReportError(cmd, log.error().WithContext("(while a hub runs, an admin trains with "
                                                    "POST /v1/triage/train)"));
  }
  // The labelled data stays beside the model: it is what the lineage's digest names.
  const std::string labels = f.out + ".labels.jsonl";
  auto text = ExportedLabels(*config);
  if (!text.has_value()) return ReportError(cmd, text.error());
  if (text->empty()) {
    return ReportError(cmd, core::FailedPrecondition(
                                "the hub's store has no adjudicated incident to learn from "
                                "(label some: POST /v1/incidents/ID/adjudication)"));
  }
  if (auto st = govern::internal::WriteFileAtomic(labels, *text, 0644); !st.ok()) {
    return ReportError(cmd, st);
  }
  const ModelType* triage = TriageType();
  if (triage == nullptr) return ReportError(cmd, core::Internal("no triage model type"));
  TrainRequest r;
  r.dataset = "jsonl";
  r.data = labels;
  r.out = f.out;
  r.name = f.name;
  r.version = f.version;
  r.target_fpr = f.target_fpr;
  r.json = f.json;
  if (const int rc = triage->train(r); rc != kExitOk) return rc;
  auto bytes = core::ReadFile(f.out, govern::kMaxArtifactBytes);
  if (!bytes.has_value()) return ReportError(cmd, bytes.error());
  auto sig = govern::SignArtifact(f.out, *bytes, *key, "vigil hub triage train", NowUnix());
  if (!sig.has_value()) return ReportError(cmd, sig.error());
  // What was learnt from what, as the hub's own training records it (hub/triage.h).
  const char* user = std::getenv("USER");
  nlohmann::json record = {{"action", "trained"},
                           {"model", "triage"},
                           {"path", f.out},
                           {"sha256", model::Sha256Hex(*bytes)},
                           {"key_id", govern::KeyIdHex(key->key_id)},
                           {"data_digest", "sha256:" + model::Sha256Hex(*text)},
                           {"labels", labels},
                           {"parameters",
                            {{"name", f.name},
                             {"version", f.version},
                             {"target_fpr", f.target_fpr},
                             {"options", f.given}}},
                           {"metrics", nullptr},
                           {"by", std::string("cli:") + (user != nullptr ? user : "?")}};
  if (auto file = model::DecodeModelFile(*bytes, f.out); file.has_value()) {
    for (const char* k : {"metrics", "lineage", "training"}) {
      if (file->header.contains(k)) record[k] = file->header[k];
    }
  }
  core::Status st = (*log)->Append(audit::RecordType::kModelChange, std::move(record));
  if (st.ok()) st = (*log)->Close();
  if (!st.ok()) return ReportError(cmd, st.WithContext("hub audit log"));
  if (!f.json) {
    std::printf("  signed with key %s -> %s.minisig\n", govern::KeyIdHex(key->key_id).c_str(),
                f.out.c_str());
  }
  return kExitOk;
}

int RunMeasure(const TriageCliFlags& f) {
  const char* cmd = "hub triage measure";
  auto file = model::ReadModelFile(f.model);
  if (!file.has_value()) return ReportError(cmd, file.error());
  auto m = model::TriageModel::FromFile(*file, f.model);
  if (!m.has_value()) return ReportError(cmd, m.error());
  core::Result<std::vector<model::LabelRecord>> records = core::InvalidArgument("");
  std::string source = f.labels;
  if (!f.labels.empty()) {
    records = model::LoadTriageLabels(f.labels);
  } else {
    auto config = HubConfigOf(f);
    if (!config.has_value()) return ReportError(cmd, config.error());
    auto text = ExportedLabels(*config);
    if (!text.has_value()) return ReportError(cmd, text.error());
    source = "the hub's store (" + config->store + ")";
    records = model::ParseTriageLabels(*text, "store");
  }
  if (!records.has_value()) return ReportError(cmd, records.error());
  std::vector<hub::ScoredAlert> scored;
  scored.reserve(records->size());
  for (const model::LabelRecord& rec : *records) {
    std::map<std::string, double> features;
    for (const auto& [name, value] : rec.features) {
      if (value) features.emplace(name, *value);
    }
    auto s = (*m)->ScoreNamed(features);
    if (!s.has_value()) {
      return ReportError(cmd, s.error().WithContext(source + ": \"" + rec.id + "\""));
    }
    scored.push_back({s->score, model::IsPositive(rec.label)});
  }
  auto v = hub::VolumeAtRecall(std::move(scored), f.recall);
  if (!v.has_value()) return ReportError(cmd, v.error().WithContext(source));
  if (f.json) {
    nlohmann::json j = {{"model", f.model},
                        {"labelled_set", source},
                        {"recall_target", v->recall_target},
                        {"threshold", v->threshold},
                        {"recall", v->recall},
                        {"true_positives", v->true_positives},
                        {"true_positives_kept", v->true_positives_kept},
                        {"alerts_before", v->alerts_before},
                        {"alerts_after", v->alerts_after},
                        {"removed_fraction", v->removed_fraction}};
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("labelled set: %s (%zu alerts, %zu true positives)\n", source.c_str(),
              v->alerts_before, v->true_positives);
  std::printf("recall target %.3f: threshold %.6f keeps %zu of %zu true positives (recall %.3f)\n",
              v->recall_target, v->threshold, v->true_positives_kept, v->true_positives,
              v->recall);
  std::printf("alerts before %zu, after %zu: %.1f%% of the alert volume removed\n",
              v->alerts_before, v->alerts_after, v->removed_fraction * 100);
  return kExitOk;
}

}  // namespace

std::function<int()> AddHubTriageCommands(CLI::App* hub) {
  auto f = std::make_shared<TriageCliFlags>();
  CLI::App* triage = hub->add_subcommand(
      "triage",
      "The triage model from the hub's adjudications: export the labelled data, train and sign a "
      "gradient-boosted model, measure the alert volume it removes at a fixed recall");
  triage->require_subcommand(1);

  CLI::App* exp = triage->add_subcommand(
      "export", "Write the adjudicated incidents as triage labels (docs/triage-labels.md)");
  AddStoreFlags(exp, f.get());
  exp->add_option("--out", f->out, "File to write (default: stdout)");

  CLI::App* train = triage->add_subcommand(
      "train",
      "Train a triage model (XGBoost, the trainer of `vigil train --model-type triage`) from the "
      "hub's adjudicated incidents and sign it (OUT.minisig); the labels are kept as "
      "OUT.labels.jsonl. The training is a model-change record of the hub's audit log, which must "
      "not be in use: while a hub runs, an admin trains with POST /v1/triage/train");
  AddStoreFlags(train, f.get());
  train->add_option("--out", f->out, "Model file to write")->required();
  train->add_option("--key", f->key,
                    "Minisign secret key that signs the model (default: the hub's key, "
                    "audit.key of the config: <state_dir>/keys/hub.key)");
  train->add_option("--name", f->name, "Model name")->capture_default_str();
  train->add_option("--model-version", f->version, "Model version")->capture_default_str();
  train->add_option("--target-fpr", f->target_fpr,
                    "False-alarm rate the threshold is calibrated to (with --cv)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  train->add_flag("--json", f->json, "Print the model's header as JSON");
  // The trainer's own flags (--cv, --rounds, ...; its --labels FILE would train from that file
  // instead of the store's export).
  if (const ModelType* t = TriageType(); t != nullptr) t->add_options(*train);
  train->footer("Exit codes: 0 trained and signed, 1 failure, 2 bad input or nothing labelled.");

  CLI::App* measure = triage->add_subcommand(
      "measure",
      "Score a labelled set with a triage model and print, at a fixed recall, the threshold and "
      "the alerts before and after (the fraction of alert volume removed)");
  AddStoreFlags(measure, f.get());
  measure->add_option("--model", f->model, "Triage model file")->required();
  measure->add_option("--set", f->labels,
                      "Labelled set (docs/triage-labels.md; default: the hub store's "
                      "adjudicated incidents). Use one the model was not trained on");
  measure->add_option("--recall", f->recall, "Share of true positives to keep, (0, 1]")
      ->capture_default_str()
      ->check(CLI::Range(0.000001, 1.0));
  measure->add_flag("--json", f->json, "Print the figures as JSON");
  measure->footer("Exit codes: 0 measured, 1 failure, 2 bad input.");

  return [f, exp, train, measure]() -> int {
    if (exp->parsed()) return RunExport(*f);
    if (train->parsed()) {
      for (const CLI::Option* o : train->get_options()) {
        if (o->count() > 0 && !o->get_name().empty()) f->given[o->get_name()] = o->results();
      }
      return RunTrain(*f);
    }
    if (measure->parsed()) return RunMeasure(*f);
    return -1;
  };
}

}  // namespace vigil::app
