#pragma once

// CRC-32C (Castagnoli, the polynomial of iSCSI, ext4 metadata and leveldb), computed with
// tables (slicing-by-8). Private to pipeline/: the spool frames its records with it.

#include <cstddef>
#include <cstdint>

namespace vigil::pipeline::internal {

// Extends `crc` (the CRC of some prefix; 0 for none) over n bytes at data.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace vigil::pipeline::internal
