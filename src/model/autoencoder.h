#pragma once

// One small autoencoder of the KitNET ensemble (model/kitnet.h): n visible units, h hidden
// units, one hidden layer, tied weights (the decoder is W^T), sigmoid units, trained online by
// SGD on the cross-entropy reconstruction loss (the denoising autoencoder of Vincent et al. 2008
// without corruption, as KitNET uses it).
//
// Inputs are min-max normalised with the range seen while training: x' = (x - min) / (max - min)
// (a range of 0 counts as 1), clamped to [kMinNormalised, kMaxNormalised] so one wild value
// saturates instead of overflowing. The score of a row is the RMSE between x' and its
// reconstruction.
//
// An int8 form (Quantize) keeps W as int8 with one scale per tensor (symmetric, max |W| -> 127);
// the normalised input is quantised per row with its own scale, the hidden activations (in
// (0, 1)) with the fixed scale 1/127, and both matrix products accumulate in int32. Biases,
// normalisation and the sigmoid stay float. The int8 rows are padded with zeros to a multiple
// of 16 bytes, and the products run through one of two kernels with identical int32 results:
// AVX2 (pmaddubsw/pmaddwd: 32 products per instruction pair) where the CPU has it, chosen at
// run time, and portable C++ otherwise.

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <Eigen/Core>

namespace vigil::model {

inline constexpr float kMinNormalised = -4.0f;
inline constexpr float kMaxNormalised = 5.0f;

// The kernel of the int8 matrix-vector products.
enum class Int8Kernel : uint8_t { kScalar, kAvx2 };
Int8Kernel ActiveInt8Kernel();
// Selects the kernel from then on, for every network (tests and benchmarks compare them);
// false, and no change, when this CPU cannot run it.
bool SelectInt8Kernel(Int8Kernel kernel);

// Scratch vectors for scoring, sized for the largest layer of a network; one per thread.
struct AutoencoderScratch {
  Eigen::VectorXf x, y, z;
  std::vector<int8_t> qx, qy;
  std::vector<int32_t> acc;
  void Reserve(size_t visible, size_t hidden);
};

class Autoencoder {
 public:
  Autoencoder() = default;
  // Weights uniform in (-1/n, 1/n) drawn from `rng`, biases 0, an empty normalisation range.
  Autoencoder(size_t visible, size_t hidden, std::mt19937_64& rng);

  // One SGD step on `x` (visible() entries) at learning rate `lr`; widens the normalisation
  // range first. Returns the RMSE of the reconstruction before the step.
  double Train(std::span<const float> x, float lr, AutoencoderScratch& s);
  // RMSE of the reconstruction of `x`; with `error` non-empty (visible() entries) also writes
  // each unit's squared reconstruction error. Uses the int8 weights when quantized().
  double Score(std::span<const float> x, AutoencoderScratch& s, std::span<float> error = {}) const;

  // Builds the int8 copy of W used by Score from then on.
  void Quantize();
  bool quantized() const { return !qw_.empty(); }

  size_t visible() const { return static_cast<size_t>(w_.rows()); }
  size_t hidden() const { return static_cast<size_t>(w_.cols()); }
  // Raw parameters, for the model file. W is visible() x hidden().
  const Eigen::MatrixXf& weights() const { return w_; }
  const Eigen::VectorXf& hidden_bias() const { return hb_; }
  const Eigen::VectorXf& visible_bias() const { return vb_; }
  const Eigen::VectorXf& min() const { return min_; }
  const Eigen::VectorXf& max() const { return max_; }
  // Rebuilds from stored parameters (shapes and finiteness are the caller's checks).
  static Autoencoder FromParameters(Eigen::MatrixXf w, Eigen::VectorXf hb, Eigen::VectorXf vb,
                                    Eigen::VectorXf min, Eigen::VectorXf max);

 private:
  void Normalise(std::span<const float> x, Eigen::VectorXf& out) const;
  void Refresh();  // recomputes inv_range_ from min_/max_

  Eigen::MatrixXf w_;
  Eigen::VectorXf hb_, vb_;
  Eigen::VectorXf min_, max_, inv_range_;
  // int8 form: W row-major (visible rows of hidden_stride_ bytes) and its transpose (hidden rows
  // of visible_stride_ bytes), zero-padded; one scale for both.
  std::vector<int8_t> qw_, qwt_;
  size_t visible_stride_ = 0, hidden_stride_ = 0;
  float w_scale_ = 0.0f;
};

}  // namespace vigil::model
