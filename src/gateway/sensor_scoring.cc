#include "gateway/sensor_scoring.h"

#include <algorithm>

#include <fmt/format.h>

#include "model/ics_residual.h"
#include "model/kitnet.h"

namespace vigil::gateway {

struct SensorScorer::Models {
  std::unique_ptr<model::IcsResidualModel> residual;
  std::unique_ptr<model::SignalStreamScorer> residual_stream;
  std::unique_ptr<model::KitNet> kitnet;
  model::KitNet::Workspace workspace;
  std::vector<float> frow;
};

SensorScorer::SensorScorer() : m_(std::make_unique<Models>()) {}
SensorScorer::~SensorScorer() = default;

bool SensorScorer::predictors() const { return m_->residual != nullptr; }
bool SensorScorer::autoencoder() const { return m_->kitnet != nullptr; }

core::Result<std::unique_ptr<SensorScorer>> SensorScorer::Learn(
    const sensor::BatadalTable& table, const std::vector<std::string>& signals,
    const TelemetryScoringConfig& config) {
  std::unique_ptr<SensorScorer> s(new SensorScorer());
  std::vector<int> columns;
  for (size_t c = 0; c < table.cols(); ++c) {
    if (std::find(signals.begin(), signals.end(), table.signals[c]) == signals.end()) continue;
    s->signals_.push_back(table.signals[c]);
    columns.push_back(static_cast<int>(c));
  }
  if (s->signals_.empty()) {
    return core::InvalidArgument(fmt::format(
        "{}: no column of it is a signal of telemetry.topics, so nothing can be scored",
        table.source));
  }
  const auto rows = static_cast<Eigen::Index>(table.rows());
  const auto cols = static_cast<Eigen::Index>(columns.size());
  if (config.predictors) {
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index r = 0; r < rows; ++r) {
      for (Eigen::Index c = 0; c < cols; ++c) m(r, c) = table.row(r)[columns[c]];
    }
    model::IcsResidualOptions o;
    o.name = "gateway-predictors";
    o.target_fpr = config.target_fpr;
    auto trained = model::IcsResidualModel::Train(s->signals_, m, o);
    if (!trained.has_value()) {
      return trained.error().WithContext("telemetry.scoring.predictors");
    }
    s->m_->residual = std::move(trained).value();
    s->m_->residual_stream = s->m_->residual->NewSignalStream();
  }
  if (config.autoencoder) {
    std::vector<std::vector<float>> frows(table.rows(), std::vector<float>(columns.size()));
    for (size_t r = 0; r < table.rows(); ++r) {
      for (size_t c = 0; c < columns.size(); ++c) {
        frows[r][c] = static_cast<float>(table.row(r)[columns[c]]);
      }
    }
    model::KitNetOptions o;
    o.name = "gateway-autoencoder";
    o.target_fpr = config.target_fpr;
    o.feature_names = s->signals_;
    auto trained = model::KitNet::Train(frows, o);
    if (!trained.has_value()) {
      return trained.error().WithContext("telemetry.scoring.autoencoder");
    }
    s->m_->kitnet = std::make_unique<model::KitNet>(std::move(trained).value());
    s->m_->frow.resize(columns.size());
  }
  return s;
}

double SensorScorer::residual_threshold() const {
  return m_->residual ? m_->residual->calibration().threshold : 0.0;
}

double SensorScorer::kitnet_threshold() const {
  return m_->kitnet ? m_->kitnet->calibration().threshold : 0.0;
}

std::vector<SensorFinding> SensorScorer::Observe(std::span<const double> row) {
  std::vector<SensorFinding> out;
  const uint64_t row_number = stats_.rows.fetch_add(1, std::memory_order_relaxed) + 1;
  // Turns an anomalous row of model `m` into a finding when the model was not already in one.
  auto note = [&](int m, bool anomalous, SensorFinding f) {
    if (!anomalous) {
      in_anomaly_[m] = false;
      return;
    }
    stats_.anomalous_rows[m].fetch_add(1, std::memory_order_relaxed);
    if (in_anomaly_[m]) return;
    in_anomaly_[m] = true;
    stats_.findings[m].fetch_add(1, std::memory_order_relaxed);
    f.row = row_number;
    out.push_back(std::move(f));
  };
  if (m_->residual_stream) {
    m_->residual_stream->ObserveRow(row);
    const core::Verdict v = m_->residual_stream->Current();
    SensorFinding f;
    f.model = std::string(model::kIcsResidualFamily);
    f.score = v.score;
    f.raw = m_->residual_stream->RawScore();
    f.threshold = m_->residual->calibration().threshold;
    if (v.anomalous) f.why = v.explanation;
    note(0, v.anomalous, std::move(f));
  }
  if (m_->kitnet) {
    for (size_t i = 0; i < m_->frow.size() && i < row.size(); ++i) {
      m_->frow[i] = static_cast<float>(row[i]);
    }
    const double raw = m_->kitnet->Score(m_->frow, m_->workspace);
    SensorFinding f;
    f.model = std::string(model::kKitNetFamily);
    f.raw = raw;
    f.score = m_->kitnet->UnitScore(raw);
    f.threshold = m_->kitnet->calibration().threshold;
    const bool anomalous = m_->kitnet->IsAnomalous(raw);
    if (anomalous && !in_anomaly_[1]) {
      for (const model::FeatureWeight& w : m_->kitnet->Explain(m_->frow, 3, m_->workspace)) {
        f.why.push_back({fmt::format("{}={:g} reconstructed worst ({:.0f} % of the error)",
                                     signals_[w.feature], row[w.feature], 100 * w.weight),
                         w.weight});
      }
    }
    note(1, anomalous, std::move(f));
  }
  return out;
}

}  // namespace vigil::gateway
