#include "model/autoencoder.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vigil::model {
namespace {

float Sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

int8_t Quantise(float v, float inv_scale) {
  const float q = std::nearbyint(v * inv_scale);
  return static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
}

// Round to nearest, saturating at +-127 (the per-row input scale and the fixed activation scale
// keep finite values inside); cheaper than nearbyint on the scoring path.
int8_t RoundInRange(float v) {
  v = std::clamp(v, -127.0f, 127.0f);
  return static_cast<int8_t>(v >= 0.0f ? v + 0.5f : v - 0.5f);
}

}  // namespace

void AutoencoderScratch::Reserve(size_t visible, size_t hidden) {
  const auto n = static_cast<Eigen::Index>(visible);
  const auto h = static_cast<Eigen::Index>(hidden);
  if (x.size() < n) x.resize(n);
  if (z.size() < n) z.resize(n);
  if (y.size() < h) y.resize(h);
  if (qx.size() < visible) qx.resize(visible);
  if (qy.size() < hidden) qy.resize(hidden);
  if (acc.size() < std::max(visible, hidden)) acc.resize(std::max(visible, hidden));
}

Autoencoder::Autoencoder(size_t visible, size_t hidden, std::mt19937_64& rng) {
  const auto n = static_cast<Eigen::Index>(visible);
  const auto h = static_cast<Eigen::Index>(hidden);
  w_.resize(n, h);
  const double a = 1.0 / static_cast<double>(visible);
  for (Eigen::Index j = 0; j < h; ++j) {
    for (Eigen::Index i = 0; i < n; ++i) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
      w_(i, j) = static_cast<float>(-a + 2.0 * a * u);
    }
  }
  hb_ = Eigen::VectorXf::Zero(h);
  vb_ = Eigen::VectorXf::Zero(n);
  min_ = Eigen::VectorXf::Constant(n, std::numeric_limits<float>::infinity());
  max_ = Eigen::VectorXf::Constant(n, -std::numeric_limits<float>::infinity());
  Refresh();
}

Autoencoder Autoencoder::FromParameters(Eigen::MatrixXf w, Eigen::VectorXf hb, Eigen::VectorXf vb,
                                        Eigen::VectorXf min, Eigen::VectorXf max) {
  Autoencoder a;
  a.w_ = std::move(w);
  a.hb_ = std::move(hb);
  a.vb_ = std::move(vb);
  a.min_ = std::move(min);
  a.max_ = std::move(max);
  a.Refresh();
  return a;
}

void Autoencoder::Refresh() {
  inv_range_.resize(min_.size());
  for (Eigen::Index i = 0; i < min_.size(); ++i) {
    // A range too small to invert (0, or so tiny that 1/r overflows) counts as 1, so that
    // (x - min) * inv_range is never 0 * inf.
    const float r = max_(i) - min_(i);
    const float inv = r > 0.0f ? 1.0f / r : 1.0f;
    inv_range_(i) = std::isfinite(r) && std::isfinite(inv) ? inv : 1.0f;
  }
}

void Autoencoder::Normalise(std::span<const float> x, Eigen::VectorXf& out) const {
  for (size_t i = 0; i < x.size(); ++i) {
    const auto k = static_cast<Eigen::Index>(i);
    const float lo = std::isfinite(min_(k)) ? min_(k) : 0.0f;
    out(k) = std::clamp((x[i] - lo) * inv_range_(k), kMinNormalised, kMaxNormalised);
  }
}

double Autoencoder::Train(std::span<const float> x, float lr, AutoencoderScratch& s) {
  const Eigen::Index n = w_.rows();
  const Eigen::Index h = w_.cols();
  bool widened = false;
  for (Eigen::Index i = 0; i < n; ++i) {
    const float v = x[static_cast<size_t>(i)];
    if (v < min_(i)) min_(i) = v, widened = true;
    if (v > max_(i)) max_(i) = v, widened = true;
  }
  if (widened) Refresh();
  s.Reserve(static_cast<size_t>(n), static_cast<size_t>(h));
  auto xn = s.x.head(n);
  auto y = s.y.head(h);
  auto z = s.z.head(n);
  Normalise(x, s.x);
  y.noalias() = w_.transpose() * xn;
  y = (y + hb_).unaryExpr(&Sigmoid);
  z.noalias() = w_ * y;
  z = (z + vb_).unaryExpr(&Sigmoid);
  // Cross-entropy loss with sigmoid outputs: the output delta is x - z.
  const Eigen::VectorXf err = xn - z;
  const double rmse = std::sqrt(static_cast<double>(err.squaredNorm()) / static_cast<double>(n));
  const Eigen::VectorXf dh =
      (w_.transpose() * err).cwiseProduct(y.cwiseProduct((1.0f - y.array()).matrix()));
  w_.noalias() += lr * (xn * dh.transpose() + err * y.transpose());
  hb_ += lr * dh;
  vb_ += lr * err;
  return rmse;
}

void Autoencoder::Quantize() {
  const Eigen::Index n = w_.rows();
  const Eigen::Index h = w_.cols();
  const float max_abs = w_.size() > 0 ? w_.cwiseAbs().maxCoeff() : 0.0f;
  w_scale_ = max_abs > 0.0f ? max_abs / 127.0f : 1.0f;
  const float inv = 1.0f / w_scale_;
  qw_.assign(static_cast<size_t>(n * h), 0);
  qwt_.assign(static_cast<size_t>(n * h), 0);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < h; ++j) {
      const int8_t q = Quantise(w_(i, j), inv);
      qw_[static_cast<size_t>(i * h + j)] = q;
      qwt_[static_cast<size_t>(j * n + i)] = q;
    }
  }
}

double Autoencoder::Score(std::span<const float> x, AutoencoderScratch& s,
                          std::span<float> error) const {
  const Eigen::Index n = w_.rows();
  const Eigen::Index h = w_.cols();
  s.Reserve(static_cast<size_t>(n), static_cast<size_t>(h));
  auto xn = s.x.head(n);
  auto y = s.y.head(h);
  auto z = s.z.head(n);
  Normalise(x, s.x);
  if (qw_.empty()) {
    y.noalias() = w_.transpose() * xn;
    y = (y + hb_).unaryExpr(&Sigmoid);
    z.noalias() = w_ * y;
    z = (z + vb_).unaryExpr(&Sigmoid);
  } else {
    const auto nu = static_cast<size_t>(n);
    const auto hu = static_cast<size_t>(h);
    // An input this close to 0 quantises to 0 (and 127 / x_max would overflow).
    const float x_max = xn.cwiseAbs().maxCoeff();
    const float x_scale = x_max > 1e-30f ? x_max / 127.0f : 1.0f;
    const float x_inv = 1.0f / x_scale;
    for (size_t i = 0; i < nu; ++i) {
      s.qx[i] = RoundInRange(xn(static_cast<Eigen::Index>(i)) * x_inv);
    }
    // Hidden pre-activation j = sum_i W[i][j] x[i]: row j of W^T against x.
    for (size_t j = 0; j < hu; ++j) {
      const int8_t* wt = qwt_.data() + j * nu;
      int32_t acc = 0;
      for (size_t i = 0; i < nu; ++i) acc += int32_t{wt[i]} * int32_t{s.qx[i]};
      const auto k = static_cast<Eigen::Index>(j);
      y(k) = Sigmoid(static_cast<float>(acc) * w_scale_ * x_scale + hb_(k));
      s.qy[j] = RoundInRange(y(k) * 127.0f);
    }
    const float out_scale = w_scale_ / 127.0f;
    for (size_t i = 0; i < nu; ++i) {
      const int8_t* w = qw_.data() + i * hu;
      int32_t acc = 0;
      for (size_t j = 0; j < hu; ++j) acc += int32_t{w[j]} * int32_t{s.qy[j]};
      const auto k = static_cast<Eigen::Index>(i);
      z(k) = Sigmoid(static_cast<float>(acc) * out_scale + vb_(k));
    }
  }
  double sum = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const float d = xn(i) - z(i);
    const float sq = d * d;
    if (!error.empty()) error[static_cast<size_t>(i)] = sq;
    sum += sq;
  }
  return std::sqrt(sum / static_cast<double>(n));
}

}  // namespace vigil::model
