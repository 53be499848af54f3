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
// (0, 1)) with the fixed scale 1/127, and both matrix products accumulate in int32. No exp is
// taken on the int8 path: the hidden activation is read from a table of round(127 sigma(v)) at
// steps of 1/64 over [-8, 8] (indexed by the int32 sum times one factor plus the bias, so it is
// already the int8 input of the decoder), the reconstruction from a table of sigma at steps of
// 1/64 over [-16, 16] with linear interpolation (error below 3e-6). Normalisation and the RMSE
// stay float (the RMSE in float arithmetic, where the float path sums in double).
// The int8 rows are padded with zeros to a multiple of 16 bytes, and the products run through
// one of two kernels with identical int32 results: AVX2 (pmaddubsw/pmaddwd: 32 products per
// instruction pair) where the CPU has it, chosen at run time, and portable C++ otherwise.
//
// Int8GroupPack holds the many small autoencoders of a KitNET ensemble in flat arrays and scores
// all of them for one row in one loop (no per-autoencoder call, gather or scratch sizing); its
// RMSEs are bit for bit those of each member's own int8 Score.

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

class Int8GroupPack;

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

  // Builds the int8 copy of W (and the biases in table units) used by Score from then on.
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
  friend class Int8GroupPack;
  void Normalise(std::span<const float> x, Eigen::VectorXf& out) const;
  double ScoreInt8(std::span<const float> x, AutoencoderScratch& s, std::span<float> error) const;
  void Refresh();  // recomputes lo_ and inv_range_ from min_/max_

  Eigen::MatrixXf w_;
  Eigen::VectorXf hb_, vb_;
  Eigen::VectorXf min_, max_, inv_range_;
  Eigen::VectorXf lo_;  // min_ where finite, else 0: the offset of the normalisation
  // int8 form: W row-major (visible rows of hidden_stride_ bytes) and its transpose (hidden rows
  // of visible_stride_ bytes), zero-padded; one scale for both.
  std::vector<int8_t> qw_, qwt_;
  size_t visible_stride_ = 0, hidden_stride_ = 0;
  float w_scale_ = 0.0f;
  // Table units: hidden index = acc * enc_k_ * x_scale + hb_lut_, output index = acc * dec_k_ +
  // vb_lut_ (model/autoencoder.cc, the sigmoid tables).
  std::vector<float> hb_lut_, vb_lut_;
  float enc_k_ = 0.0f, dec_k_ = 0.0f;
};

// The small autoencoders of an ensemble, each reading its own features of a shared row, packed
// for int8 scoring. Immutable once built; Rmses is thread-safe.
class Int8GroupPack {
 public:
  // Largest visible size a member may have (KitNET's groups: kKitNetMaxGroupSize).
  static constexpr size_t kMaxVisible = 64;

  Int8GroupPack() = default;
  // Packs `members` (each quantized(), at most kMaxVisible visible units) with the row indices
  // of their visible units, `inputs[g]` (members[g].visible() entries each). An empty pack
  // (empty() true) when a member is not quantized, too large, or its inputs do not match.
  static Int8GroupPack Build(std::span<const Autoencoder> members,
                             std::span<const std::vector<uint32_t>> inputs);
  bool empty() const { return groups_.empty(); }
  size_t members() const { return groups_.size(); }
  // Smallest row length Rmses accepts: the largest input index + 1.
  size_t row_size() const { return row_size_; }

  // Writes each member's RMSE on its inputs of `row` (at least row_size() entries) into
  // `rmses` (members() entries): bit for bit members[g].Score of the gathered inputs.
  void Rmses(std::span<const float> row, std::span<float> rmses) const;

 private:
  struct Group {
    uint32_t n, h;       // visible and hidden units
    uint32_t x_off;      // first visible slot (index, lo, inv_range, vb_lut)
    uint32_t h_off;      // first hidden slot (hb_lut)
    uint32_t w_off;      // first weight: W row-major, n x h, unpadded
    float enc_k, dec_k;  // as Autoencoder's
    float inv_n;         // 1.0f / n
  };
  std::vector<Group> groups_;
  std::vector<uint32_t> index_;
  std::vector<float> lo_, inv_range_, vb_lut_, hb_lut_;
  std::vector<int8_t> w_;
  size_t row_size_ = 0;
};

}  // namespace vigil::model
