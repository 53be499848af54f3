#pragma once

// Random choices shared by the model families that grow from a seeded generator, so that a
// seed gives the same model everywhere.

#include <cstddef>
#include <random>

namespace vigil::model::internal {

// An index in [0, n), n > 0. The modulo bias is below 2^-40 for any n a model can hold.
inline size_t UniformIndex(std::mt19937_64& rng, size_t n) {
  return static_cast<size_t>(rng() % n);
}

}  // namespace vigil::model::internal
