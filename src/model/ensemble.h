#pragma once

// Ensembles of stream-scoring models (family "ensemble"). Each member is a complete model file of
// any other family, embedded in the payload. A stream feeds every member; each member's score is
// normalised against that member's scores of normal traces it never trained on (its
// "reference"), and the ensemble's raw score is the weighted mean of the normalised scores:
//   rank:    the member score's mid-rank in the reference, in [0,1] (a normal trace's
//            percentile); robust to each member's scale, blind to how far past the reference a
//            score lies
//   z-score: (logit(score) - mean) / standard deviation of the reference logits; keeps the
//            distance past the reference (the families' scores are logistic maps of their raw
//            scores, so the logit is an affine image of the raw score)
// The ensemble as a whole carries its own threshold, calibrated on the same held-out traces.
// Payload: docs/model-file-format.md.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/rnn_model.h"

namespace vigil::model {

inline constexpr std::string_view kEnsembleFamily = "ensemble";

enum class EnsembleNorm : uint32_t { kRank = 1, kZScore = 2 };
std::string_view EnsembleNormName(EnsembleNorm n);  // "rank", "z-score"
bool ParseEnsembleNorm(std::string_view name, EnsembleNorm* out);

// Rebuilds a member from its decoded file; the ensemble loader is given the project's
// family-dispatching loader (model/loader.h) so that this file depends on no other family.
using MemberLoader =
    std::function<core::Result<std::unique_ptr<Model>>(const ModelFile&, std::string_view)>;

struct EnsembleMember {
  std::unique_ptr<Model> model;
  ModelFile file;          // what is embedded in the ensemble's payload
  double weight = 1.0;     // > 0
  std::vector<double> reference;  // member scores of held-out normal traces, sorted ascending
};

class EnsembleModel final : public Model {
 public:
  // Fails with kInvalidArgument for no members, a weight that is not positive and finite, an
  // empty or non-finite reference, or a member that is itself an ensemble.
  static core::Result<std::unique_ptr<EnsembleModel>> Create(std::string name,
                                                             std::string version,
                                                             EnsembleNorm norm,
                                                             std::vector<EnsembleMember> members,
                                                             HeldOutCalibration calibration);
  // Rebuilds an ensemble from a decoded "ensemble" file; members are rebuilt with `load` and
  // their errors are reported with `source` and the member's index.
  static core::Result<std::unique_ptr<EnsembleModel>> FromFile(const ModelFile& file,
                                                               std::string_view source,
                                                               const MemberLoader& load);
  // The same, with members rebuilt by model/loader.h's LoadModelFromFile (any registered family).
  static core::Result<std::unique_ptr<EnsembleModel>> FromFile(const ModelFile& file,
                                                               std::string_view source);
  ModelFile ToFile(const nlohmann::json& extra_header) const;

  const std::string& family() const override { return family_; }
  const std::string& name() const override { return name_; }
  const std::string& version() const override { return version_; }
  std::unique_ptr<StreamScorer> NewStream(std::string_view subject) const override;

  // The ensemble's raw score from its members' scores (one per member, in order).
  double Combine(std::span<const double> member_scores) const;
  double ScoreFromRaw(double raw) const;
  void SetCalibration(const HeldOutCalibration& c) { calibration_ = c; }

  const HeldOutCalibration& calibration() const { return calibration_; }
  EnsembleNorm norm() const { return norm_; }
  const std::vector<EnsembleMember>& members() const { return members_; }

 private:
  EnsembleModel() = default;
  core::Status Prepare();

  struct Stats {
    double mean = 0, sd = 1;
  };
  std::string family_{kEnsembleFamily};
  std::string name_;
  std::string version_;
  EnsembleNorm norm_ = EnsembleNorm::kRank;
  std::vector<EnsembleMember> members_;
  std::vector<Stats> stats_;  // per member, of the reference logits
  double weight_sum_ = 0;
  HeldOutCalibration calibration_;
};

}  // namespace vigil::model
