#pragma once

// The hub's triage model in service (docs/hub.md, "Triage"): a signed gradient-boosted model
// (model/triage.h) that scores each incident the hub stores and marks those scoring below the
// threshold chosen for a configured recall as suppressed by triage — kept, listed and filterable
// (GET /v1/incidents?suppressed=true), never deleted.
//
//   - Load: the model file must carry a minisign signature (FILE.minisig) by a trusted key (the
//     configured ones and the hub's own), over exactly the bytes loaded; its features must be
//     among the incident features the hub computes (the ones ExportLabels writes). Anything else
//     is refused with the reason, audited (model-change "refused"), and the previous model (or
//     none) stays. A model loaded is audited (model-change "loaded").
//   - Threshold: triage.threshold when configured; otherwise, for a model the hub trained for
//     the configured recall, the threshold chosen at training on held-out data and carried in the
//     signed model file (hub/triage_holdout.h; "held-out"); otherwise the highest score that
//     keeps `recall` of the true positives among the store's adjudicated incidents
//     (VolumeAtRecall; "recall"); without any true positive there, the model's own calibrated
//     threshold ("model"). Chosen at each load.
//   - Scoring: after each ingestion (CorrelatingStore's after-ingest hook) the incidents it
//     touched are scored from their features as stored now (Store::TriageFeatures) and marked
//     (Store::SetTriage); on load the newest 1000 unadjudicated incidents are rescored.
//   - Training (POST /v1/triage/train, admin): the store's adjudicated incidents (ExportLabels)
//     train a model, its threshold is chosen on out-of-fold scores (k folds), the model (carrying
//     that threshold and the held-out figures in its header) is written under model_dir, signed
//     with the hub's key, audited (model-change "trained": data digest, parameters, held-out
//     metrics) and loaded.
//   - In force across restarts: a model loaded through the API (Train with activate, Load) is
//     remembered in `<model_dir>/in-force.json` — its path, SHA-256 and the configured
//     triage.model at that time, in a versioned format (hub/triage_note.h) — signed with the
//     hub's key (`in-force.json.minisig`). Start loads that model when the note verifies by the
//     hub's own key, is of a version this hub reads (a note without one, written before versions,
//     is read as version 1), names a model with that SHA-256, and triage.model has not changed
//     since; otherwise triage.model (a changed config wins; a refused note — outcome
//     "unsupported-version" for another version — or model is audited "refused", then
//     triage.model is tried).
//
// Metrics: vigil_hub_triage_scored_total, vigil_hub_triage_suppressed_total (scorings that
// marked an incident suppressed), vigil_hub_triage_refused_total, and at scrape (RefreshMetrics)
// vigil_hub_triage_suppressed_incidents (in the store) and vigil_hub_triage_threshold.
// Thread-safe.

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"
#include "hub/requests.h"
#include "hub/store.h"
#include "model/triage.h"

namespace vigil::hub {

struct HubTriageOptions {
  std::string model;                      // loaded at start ("": none until one is trained)
  std::vector<std::string> trusted_keys;  // minisign public keys besides the hub's own
  double recall = 0.95;                   // (0, 1]
  std::optional<double> threshold;        // fixed instead of chosen for `recall`
  std::string signing_key;                // the hub's minisign secret key (signs trained models)
  std::string model_dir;                  // where trained models are written
};

// The incident features the hub computes (ExportLabels, TriageFeatures), by name.
const std::vector<std::string>& IncidentFeatureNames();

class Triage {
 public:
  // Everything passed in must outlive this.
  Triage(HubTriageOptions options, Store& store, audit::AuditLog& audit, const core::Clock& clock,
         core::Registry& registry);

  // At start: the model remembered in force (above), or options.model, or none. Each load or
  // refusal is audited; the status is the last attempt's (OK with nothing to load).
  core::Status Start();
  // Verifies, loads and activates the model at `path`, remembers it in force (above), then
  // rescores recent open incidents; audited either way (`by` names who asked).
  // kPermissionDenied for an untrusted file, kInvalidArgument for a model the hub cannot use,
  // kUnavailable when the note or the audit record cannot be written (nothing changes then).
  core::Status Load(const std::string& path, const std::string& by);
  // Scores and marks the listed incidents (no model: nothing).
  core::Status Score(const std::vector<int64_t>& incident_ids);
  // Trains from the store's adjudicated incidents, signs, audits and (activate) loads. Returns
  // what was trained (path, digest, metrics). kFailedPrecondition with nothing to learn from.
  core::Result<nlohmann::json> Train(const TriageTrainRequest& r, const std::string& by);
  // The active model and its threshold (GET /v1/triage).
  nlohmann::json Status();
  void RefreshMetrics();

 private:
  struct Active {
    std::unique_ptr<model::TriageModel> model;
    std::string path, sha256, key_id;
    double threshold = 0;
    std::string threshold_source;  // "configured", "held-out", "recall", "model"
    // "held-out": the training's held-out figures (triage_holdout.h); "recall": at the recall on
    // the store's labelled set; otherwise null.
    nlohmann::json volume;
  };
  enum class Source { kApi, kConfigured, kRestored };
  core::Status Refuse(const std::string& path, const std::string& outcome,
                      const std::string& reason, const std::string& by);
  // Load's work; `expected_sha256` ("": any) must match the file's; kApi also writes the note.
  core::Status LoadFrom(const std::string& path, const std::string& by, Source source,
                        const std::string& expected_sha256);
  // Writes the signed note naming the model in force (`<model_dir>/in-force.json`).
  core::Status Remember(const Active& a, const std::string& by);
  // Chooses the threshold of `a` (its model file's header in `header`) and fills its figures.
  core::Status ChooseThreshold(Active& a, const nlohmann::json& header);
  std::string NotePath() const { return options_.model_dir + "/in-force.json"; }
  int64_t NowMs() const { return clock_.NowUnixNanos() / 1'000'000; }

  const HubTriageOptions options_;
  Store& store_;
  audit::AuditLog& audit_;
  const core::Clock& clock_;
  core::Registry& registry_;
  core::Counter* scored_ = nullptr;
  core::Counter* suppressed_ = nullptr;
  core::Counter* refused_ = nullptr;
  std::mutex mu_;  // guards active_ (swapped whole) and serialises loads and trainings
  std::mutex train_mu_;
  std::shared_ptr<const Active> active_;
};

}  // namespace vigil::hub
