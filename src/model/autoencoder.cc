#include "model/autoencoder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VIGIL_HAVE_AVX2_KERNEL 1
#endif

namespace vigil::model {
namespace {

// Rows of the int8 matrices and the int8 vectors are padded with zeros to this many bytes.
constexpr size_t kInt8Pad = 16;
size_t PaddedInt8(size_t n) { return (n + kInt8Pad - 1) / kInt8Pad * kInt8Pad; }

// out[r] = sum_i m[r * stride + i] * x[i] for r < rows; stride is a multiple of kInt8Pad, and
// every entry is in [-127, 127] (so the AVX2 kernel's 16-bit pair sums never saturate).
using Int8MatVec = void (*)(const int8_t* m, size_t rows, size_t stride, const int8_t* x,
                            int32_t* out);

void MatVecScalar(const int8_t* m, size_t rows, size_t stride, const int8_t* x, int32_t* out) {
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* row = m + r * stride;
    int32_t acc = 0;
    for (size_t i = 0; i < stride; ++i) acc += int32_t{row[i]} * int32_t{x[i]};
    out[r] = acc;
  }
}

#ifdef VIGIL_HAVE_AVX2_KERNEL
// pmaddubsw multiplies unsigned by signed bytes: |x| times w carrying x's sign is w * x. Pairs
// of products are summed in 16 bits (at most 2 * 127 * 127), then pmaddwd by ones widens them
// to 32-bit sums of four.
__attribute__((target("avx2"))) void MatVecAvx2(const int8_t* m, size_t rows, size_t stride,
                                                const int8_t* x, int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m128i ones128 = _mm_set1_epi16(1);
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* row = m + r * stride;
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= stride; i += 32) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + i));
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
      const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(w, v));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    if (i < stride) {  // the last 16 bytes
      const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i));
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
      const __m128i p = _mm_maddubs_epi16(_mm_abs_epi8(v), _mm_sign_epi8(w, v));
      a = _mm_add_epi32(a, _mm_madd_epi16(p, ones128));
    }
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4e));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xb1));
    out[r] = _mm_cvtsi128_si32(a);
  }
}

bool CpuHasAvx2() { return __builtin_cpu_supports("avx2"); }
#else
bool CpuHasAvx2() { return false; }
#endif

Int8MatVec KernelFunction(Int8Kernel k) {
#ifdef VIGIL_HAVE_AVX2_KERNEL
  if (k == Int8Kernel::kAvx2) return &MatVecAvx2;
#endif
  (void)k;
  return &MatVecScalar;
}

std::atomic<Int8Kernel>& KernelChoice() {
  static std::atomic<Int8Kernel> choice{CpuHasAvx2() ? Int8Kernel::kAvx2 : Int8Kernel::kScalar};
  return choice;
}

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

Int8Kernel ActiveInt8Kernel() { return KernelChoice().load(std::memory_order_relaxed); }

bool SelectInt8Kernel(Int8Kernel kernel) {
  if (kernel == Int8Kernel::kAvx2 && !CpuHasAvx2()) return false;
  KernelChoice().store(kernel, std::memory_order_relaxed);
  return true;
}

void AutoencoderScratch::Reserve(size_t visible, size_t hidden) {
  const auto n = static_cast<Eigen::Index>(visible);
  const auto h = static_cast<Eigen::Index>(hidden);
  if (x.size() < n) x.resize(n);
  if (z.size() < n) z.resize(n);
  if (y.size() < h) y.resize(h);
  if (qx.size() < PaddedInt8(visible)) qx.resize(PaddedInt8(visible));
  if (qy.size() < PaddedInt8(hidden)) qy.resize(PaddedInt8(hidden));
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
  visible_stride_ = PaddedInt8(static_cast<size_t>(n));
  hidden_stride_ = PaddedInt8(static_cast<size_t>(h));
  qw_.assign(static_cast<size_t>(n) * hidden_stride_, 0);
  qwt_.assign(static_cast<size_t>(h) * visible_stride_, 0);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < h; ++j) {
      const int8_t q = Quantise(w_(i, j), inv);
      qw_[static_cast<size_t>(i) * hidden_stride_ + static_cast<size_t>(j)] = q;
      qwt_[static_cast<size_t>(j) * visible_stride_ + static_cast<size_t>(i)] = q;
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
    std::fill(s.qx.begin() + static_cast<ptrdiff_t>(nu),
              s.qx.begin() + static_cast<ptrdiff_t>(visible_stride_), int8_t{0});
    const Int8MatVec matvec = KernelFunction(ActiveInt8Kernel());
    // Hidden pre-activation j = sum_i W[i][j] x[i]: row j of W^T against x.
    matvec(qwt_.data(), hu, visible_stride_, s.qx.data(), s.acc.data());
    for (size_t j = 0; j < hu; ++j) {
      const auto k = static_cast<Eigen::Index>(j);
      y(k) = Sigmoid(static_cast<float>(s.acc[j]) * w_scale_ * x_scale + hb_(k));
      s.qy[j] = RoundInRange(y(k) * 127.0f);
    }
    std::fill(s.qy.begin() + static_cast<ptrdiff_t>(hu),
              s.qy.begin() + static_cast<ptrdiff_t>(hidden_stride_), int8_t{0});
    const float out_scale = w_scale_ / 127.0f;
    matvec(qw_.data(), nu, hidden_stride_, s.qy.data(), s.acc.data());
    for (size_t i = 0; i < nu; ++i) {
      const auto k = static_cast<Eigen::Index>(i);
      z(k) = Sigmoid(static_cast<float>(s.acc[i]) * out_scale + vb_(k));
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
