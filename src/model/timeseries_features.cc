#include "model/timeseries_features.h"

#include <algorithm>
#include <cmath>

namespace vigil::model {

void QuantiseInPlace(Eigen::MatrixXd& rows, double resolution) {
  if (!(resolution > 0.0)) return;
  rows = (rows.array() / resolution).round() * resolution;
}

std::vector<SignalRole> ClassifySignals(const Eigen::MatrixXd& rows, double resolution) {
  std::vector<SignalRole> roles(static_cast<size_t>(rows.cols()), SignalRole::kTarget);
  const double tol = resolution > 0.0 ? resolution / 2.0 : 0.0;
  for (Eigen::Index c = 0; c < rows.cols(); ++c) {
    const auto col = rows.col(c);
    if (rows.rows() == 0 || col.maxCoeff() - col.minCoeff() <= tol) {
      roles[static_cast<size_t>(c)] = SignalRole::kConstant;
    } else if (((col.array() == 0.0) || (col.array() == 1.0)).all()) {
      roles[static_cast<size_t>(c)] = SignalRole::kPredictor;
    }
  }
  return roles;
}

SignalScaling SignalScaling::Fit(const Eigen::MatrixXd& rows) {
  SignalScaling s;
  const auto n = static_cast<double>(std::max<Eigen::Index>(rows.rows(), 1));
  s.mean = rows.colwise().sum().transpose() / n;
  s.scale.resize(rows.cols());
  for (Eigen::Index c = 0; c < rows.cols(); ++c) {
    const double var = (rows.col(c).array() - s.mean(c)).square().sum() / n;
    const double sd = std::sqrt(var);
    s.scale(c) = sd > 1e-12 ? sd : 1.0;
  }
  return s;
}

Eigen::MatrixXd SignalScaling::Apply(const Eigen::MatrixXd& rows) const {
  return (rows.rowwise() - mean.transpose()).array().rowwise() / scale.transpose().array();
}

std::vector<uint32_t> LiveSignals(std::span<const SignalRole> roles) {
  std::vector<uint32_t> live;
  for (size_t i = 0; i < roles.size(); ++i) {
    if (roles[i] != SignalRole::kConstant) live.push_back(static_cast<uint32_t>(i));
  }
  return live;
}

Eigen::MatrixXd LaggedDesign(const Eigen::MatrixXd& z, std::span<const uint32_t> live) {
  const Eigen::Index n = z.rows();
  const auto l = static_cast<Eigen::Index>(live.size());
  Eigen::MatrixXd d(n, 2 * l);
  for (Eigen::Index j = 0; j < l; ++j) {
    const auto c = static_cast<Eigen::Index>(live[static_cast<size_t>(j)]);
    d.col(j) = z.col(c);
    if (n > 0) {
      d(0, l + j) = z(0, c);
      d.col(l + j).tail(n - 1) = z.col(c).head(n - 1);
    }
  }
  return d;
}

std::vector<uint32_t> DesignColumnsFor(std::span<const uint32_t> live, uint32_t target) {
  std::vector<uint32_t> cols;
  cols.reserve(2 * live.size());
  for (size_t j = 0; j < 2 * live.size(); ++j) {
    if (j < live.size() && live[j] == target) continue;
    cols.push_back(static_cast<uint32_t>(j));
  }
  return cols;
}

GramSystem GramSystem::Of(const Eigen::MatrixXd& design, std::span<const uint8_t> include) {
  GramSystem g;
  const Eigen::Index n = design.rows();
  const Eigen::Index d = design.cols();
  g.mean = Eigen::VectorXd::Zero(d);
  for (Eigen::Index r = 0; r < n; ++r) {
    if (!include.empty() && include[static_cast<size_t>(r)] == 0) continue;
    g.mean += design.row(r).transpose();
    ++g.rows;
  }
  if (g.rows > 0) g.mean /= static_cast<double>(g.rows);
  Eigen::MatrixXd centred(static_cast<Eigen::Index>(g.rows), d);
  Eigen::Index k = 0;
  for (Eigen::Index r = 0; r < n; ++r) {
    if (!include.empty() && include[static_cast<size_t>(r)] == 0) continue;
    centred.row(k++) = design.row(r) - g.mean.transpose();
  }
  g.gram = Eigen::MatrixXd::Zero(d, d);
  g.gram.selfadjointView<Eigen::Lower>().rankUpdate(centred.transpose());
  g.gram = g.gram.selfadjointView<Eigen::Lower>();
  return g;
}

double RidgeFit::Predict(
    const Eigen::Ref<const Eigen::RowVectorXd, 0, Eigen::InnerStride<>>& design_row,
                         std::span<const uint32_t> cols) const {
  double y = intercept;
  for (size_t i = 0; i < cols.size(); ++i) {
    y += weights(static_cast<Eigen::Index>(i)) * design_row(static_cast<Eigen::Index>(cols[i]));
  }
  return y;
}

RidgeFit SolveRidge(const GramSystem& g, std::span<const uint32_t> cols, uint32_t response,
                    double lambda) {
  const auto p = static_cast<Eigen::Index>(cols.size());
  Eigen::MatrixXd a(p, p);
  Eigen::VectorXd b(p);
  Eigen::VectorXd xm(p);
  for (Eigen::Index i = 0; i < p; ++i) {
    const auto ci = static_cast<Eigen::Index>(cols[static_cast<size_t>(i)]);
    for (Eigen::Index j = 0; j < p; ++j) {
      a(i, j) = g.gram(ci, static_cast<Eigen::Index>(cols[static_cast<size_t>(j)]));
    }
    a(i, i) += lambda;
    b(i) = g.gram(ci, static_cast<Eigen::Index>(response));
    xm(i) = g.mean(ci);
  }
  RidgeFit fit;
  fit.weights = a.ldlt().solve(b);
  fit.intercept = g.mean(static_cast<Eigen::Index>(response)) - xm.dot(fit.weights);
  return fit;
}

}  // namespace vigil::model
