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

// Round half away from zero, saturating at +-127 (the per-row input scale keeps finite values
// inside); no branch and no call, unlike nearbyint.
int8_t RoundInRange(float v) {
  v = std::clamp(v, -127.0f, 127.0f);
  return static_cast<int8_t>(v + std::copysign(0.5f, v));
}

// The sigmoid tables of the int8 path: kLutSteps entries per unit of pre-activation. The hidden
// table holds round(127 sigma(v)) for v in [-8, 8] (beyond, it rounds to 0 or 127 anyway); the
// output table sigma(v) for v in [-16, 16], read with linear interpolation, plus one entry so
// that the last interval has a right end.
constexpr float kLutSteps = 64.0f;
constexpr int kHiddenHalf = 512;  // 8 * kLutSteps
constexpr int kOutHalf = 1024;    // 16 * kLutSteps

struct SigmoidTables {
  int8_t hidden[2 * kHiddenHalf + 1];
  float out[2 * kOutHalf + 2];
  SigmoidTables() {
    for (int i = 0; i <= 2 * kHiddenHalf; ++i) {
      const double v = static_cast<double>(i - kHiddenHalf) / kLutSteps;
      hidden[i] = static_cast<int8_t>(std::lround(127.0 / (1.0 + std::exp(-v))));
    }
    for (int i = 0; i <= 2 * kOutHalf; ++i) {
      const double v = static_cast<double>(i - kOutHalf) / kLutSteps;
      out[i] = static_cast<float>(1.0 / (1.0 + std::exp(-v)));
    }
    out[2 * kOutHalf + 1] = out[2 * kOutHalf];
  }
};

const SigmoidTables& Tables() {
  static const SigmoidTables tables;
  return tables;
}

// Clamps a table position to [0, top]; NaN goes to 0 (no comparison holds for it).
float ClampPosition(float t, float top) {
  t = t > 0.0f ? t : 0.0f;
  return t < top ? t : top;
}

// The int8 hidden activation of the int32 sum `acc`: position acc * k + bias (bias already in
// table units), rounded to the nearest entry.
int8_t HiddenFromTable(int32_t acc, float k, float bias, const SigmoidTables& t) {
  const float pos = ClampPosition(static_cast<float>(acc) * k + bias, 2.0f * kHiddenHalf);
  return t.hidden[static_cast<int>(pos + 0.5f)];
}

// The reconstruction sigma(pre) of the int32 sum `acc`, interpolated between table entries.
float OutputFromTable(int32_t acc, float k, float bias, const SigmoidTables& t) {
  const float pos = ClampPosition(static_cast<float>(acc) * k + bias, 2.0f * kOutHalf);
  const int i = static_cast<int>(pos);
  const float f = pos - static_cast<float>(i);
  return t.out[i] + f * (t.out[i + 1] - t.out[i]);
}

// Normalises n inputs (get(i)) into xn, clamped to [kMinNormalised, kMaxNormalised] (NaN to the
// lower bound), and quantises them into q with one scale for the row (max |x'| -> 127), which
// it returns.
template <typename Get>
float NormaliseAndQuantise(Get get, const float* lo, const float* inv_range, size_t n, float* xn,
                           int8_t* q) {
  float x_max = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    float v = (get(i) - lo[i]) * inv_range[i];
    v = v > kMinNormalised ? v : kMinNormalised;
    v = v < kMaxNormalised ? v : kMaxNormalised;
    xn[i] = v;
    x_max = std::max(x_max, std::abs(v));
  }
  // An input this close to 0 quantises to 0 (and 127 / x_max would overflow).
  const bool some = x_max > 1e-30f;
  const float x_inv = some ? 127.0f / x_max : 1.0f;
  for (size_t i = 0; i < n; ++i) q[i] = RoundInRange(xn[i] * x_inv);
  return some ? x_max * (1.0f / 127.0f) : 1.0f;
}

// RMSE of xn against the decoder's n outputs, z_i from the int32 sums acc[i] (float throughout:
// no double division or square root per autoencoder); each squared error into error[i] when
// error is non-null. inv_n is 1.0f / n.
float ReconstructionRmse(const int32_t* acc, const float* xn, const float* vb_lut, float dec_k,
                         size_t n, float inv_n, const SigmoidTables& t, float* error) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float d = xn[i] - OutputFromTable(acc[i], dec_k, vb_lut[i], t);
    const float sq = d * d;
    if (error != nullptr) error[i] = sq;
    sum += sq;
  }
  return std::sqrt(sum * inv_n);
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
  lo_.resize(min_.size());
  for (Eigen::Index i = 0; i < min_.size(); ++i) {
    lo_(i) = std::isfinite(min_(i)) ? min_(i) : 0.0f;
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
    out(k) = std::clamp((x[i] - lo_(k)) * inv_range_(k), kMinNormalised, kMaxNormalised);
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
  enc_k_ = w_scale_ * kLutSteps;
  dec_k_ = w_scale_ / 127.0f * kLutSteps;
  hb_lut_.resize(static_cast<size_t>(h));
  vb_lut_.resize(static_cast<size_t>(n));
  for (Eigen::Index j = 0; j < h; ++j) {
    hb_lut_[static_cast<size_t>(j)] = hb_(j) * kLutSteps + static_cast<float>(kHiddenHalf);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    vb_lut_[static_cast<size_t>(i)] = vb_(i) * kLutSteps + static_cast<float>(kOutHalf);
  }
}

double Autoencoder::Score(std::span<const float> x, AutoencoderScratch& s,
                          std::span<float> error) const {
  if (!qw_.empty()) return ScoreInt8(x, s, error);
  const Eigen::Index n = w_.rows();
  const Eigen::Index h = w_.cols();
  s.Reserve(static_cast<size_t>(n), static_cast<size_t>(h));
  auto xn = s.x.head(n);
  auto y = s.y.head(h);
  auto z = s.z.head(n);
  Normalise(x, s.x);
  y.noalias() = w_.transpose() * xn;
  y = (y + hb_).unaryExpr(&Sigmoid);
  z.noalias() = w_ * y;
  z = (z + vb_).unaryExpr(&Sigmoid);
  double sum = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const float d = xn(i) - z(i);
    const float sq = d * d;
    if (!error.empty()) error[static_cast<size_t>(i)] = sq;
    sum += sq;
  }
  return std::sqrt(sum / static_cast<double>(n));
}

double Autoencoder::ScoreInt8(std::span<const float> x, AutoencoderScratch& s,
                              std::span<float> error) const {
  const auto n = static_cast<size_t>(w_.rows());
  const auto h = static_cast<size_t>(w_.cols());
  s.Reserve(n, h);
  const SigmoidTables& t = Tables();
  float* xn = s.x.data();
  const float x_scale = NormaliseAndQuantise([&](size_t i) { return x[i]; }, lo_.data(),
                                             inv_range_.data(), n, xn, s.qx.data());
  std::fill(s.qx.begin() + static_cast<ptrdiff_t>(n),
            s.qx.begin() + static_cast<ptrdiff_t>(visible_stride_), int8_t{0});
  const Int8MatVec matvec = KernelFunction(ActiveInt8Kernel());
  // Hidden pre-activation j = sum_i W[i][j] x[i]: row j of W^T against x.
  matvec(qwt_.data(), h, visible_stride_, s.qx.data(), s.acc.data());
  const float k = enc_k_ * x_scale;
  for (size_t j = 0; j < h; ++j) s.qy[j] = HiddenFromTable(s.acc[j], k, hb_lut_[j], t);
  std::fill(s.qy.begin() + static_cast<ptrdiff_t>(h),
            s.qy.begin() + static_cast<ptrdiff_t>(hidden_stride_), int8_t{0});
  matvec(qw_.data(), n, hidden_stride_, s.qy.data(), s.acc.data());
  return ReconstructionRmse(s.acc.data(), xn, vb_lut_.data(), dec_k_, n,
                            1.0f / static_cast<float>(n), t,
                            error.empty() ? nullptr : error.data());
}

// ---------------------------------------------------------------------------------------------
// Int8GroupPack.

Int8GroupPack Int8GroupPack::Build(std::span<const Autoencoder> members,
                                   std::span<const std::vector<uint32_t>> inputs) {
  Int8GroupPack p;
  if (members.size() != inputs.size()) return p;
  for (size_t g = 0; g < members.size(); ++g) {
    const Autoencoder& a = members[g];
    const size_t n = a.visible(), h = a.hidden();
    if (!a.quantized() || n == 0 || n > kMaxVisible || h == 0 || h > kMaxVisible ||
        inputs[g].size() != n) {
      return Int8GroupPack();
    }
    p.groups_.push_back({static_cast<uint32_t>(n), static_cast<uint32_t>(h),
                         static_cast<uint32_t>(p.index_.size()),
                         static_cast<uint32_t>(p.hb_lut_.size()),
                         static_cast<uint32_t>(p.w_.size()), a.enc_k_, a.dec_k_, 1.0f / static_cast<float>(n)});
    for (size_t i = 0; i < n; ++i) {
      const auto k = static_cast<Eigen::Index>(i);
      p.index_.push_back(inputs[g][i]);
      p.row_size_ = std::max<size_t>(p.row_size_, size_t{inputs[g][i]} + 1);
      p.lo_.push_back(a.lo_(k));
      p.inv_range_.push_back(a.inv_range_(k));
      p.vb_lut_.push_back(a.vb_lut_[i]);
      const int8_t* row = a.qw_.data() + i * a.hidden_stride_;
      p.w_.insert(p.w_.end(), row, row + h);
    }
    p.hb_lut_.insert(p.hb_lut_.end(), a.hb_lut_.begin(), a.hb_lut_.end());
  }
  return p;
}

void Int8GroupPack::Rmses(std::span<const float> row, std::span<float> rmses) const {
  const SigmoidTables& t = Tables();
  float xn[kMaxVisible];
  int8_t q[kMaxVisible], qy[kMaxVisible];
  int32_t acc[kMaxVisible];
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& gr = groups_[g];
    const size_t n = gr.n, h = gr.h;
    const uint32_t* index = index_.data() + gr.x_off;
    const float x_scale =
        NormaliseAndQuantise([&](size_t i) { return row[index[i]]; }, lo_.data() + gr.x_off,
                             inv_range_.data() + gr.x_off, n, xn, q);
    // Encoder: hidden j = sum_i W[i][j] q[i], W row by row (the members are tiny: plain loops
    // beat a kernel call per member).
    const int8_t* w = w_.data() + gr.w_off;
    std::fill(acc, acc + h, 0);
    for (size_t i = 0; i < n; ++i) {
      const int32_t qi = q[i];
      const int8_t* wr = w + i * h;
      for (size_t j = 0; j < h; ++j) acc[j] += int32_t{wr[j]} * qi;
    }
    const float k = gr.enc_k * x_scale;
    const float* hb = hb_lut_.data() + gr.h_off;
    for (size_t j = 0; j < h; ++j) qy[j] = HiddenFromTable(acc[j], k, hb[j], t);
    // Decoder: visible i = sum_j W[i][j] qy[j].
    for (size_t i = 0; i < n; ++i) {
      const int8_t* wr = w + i * h;
      int32_t a = 0;
      for (size_t j = 0; j < h; ++j) a += int32_t{wr[j]} * int32_t{qy[j]};
      acc[i] = a;
    }
    rmses[g] = ReconstructionRmse(acc, xn, vb_lut_.data() + gr.x_off, gr.dec_k, n, gr.inv_n, t,
                                  nullptr);
  }
}

}  // namespace vigil::model
