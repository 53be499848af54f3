#pragma once

// The versioned model file container (spec: docs/model-file-format.md).
//
//   magic "VIGILMDL" | u32 format_version | u32 header_len | header (JSON, UTF-8)
//   | u64 payload_len | payload (family-specific bytes) | SHA-256 of everything before it
//
// Readers refuse a wrong magic, a format version newer than kModelFormatVersion, lengths that
// run past the end, trailing bytes, a header that is not a JSON object with the required keys,
// and a checksum mismatch; each error names the file and what was wrong.

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace vigil::model {

inline constexpr uint32_t kModelFormatVersion = 1;
inline constexpr std::string_view kModelMagic = "VIGILMDL";

struct ModelFile {
  // Required keys: "family" (string), "name" (string), "version" (string). Others (params,
  // training digest, calibration, metrics, code_version, created) are recorded as given.
  nlohmann::json header;
  std::string payload;
};

// Serialises to bytes (header keys "format" and "format_version" are added).
std::string EncodeModelFile(const ModelFile& file);
// Parses bytes; `source` names the input in errors.
core::Result<ModelFile> DecodeModelFile(std::string_view bytes, std::string_view source);

// The string value of header key `key`; "" when it is absent or not a string. Never throws.
std::string HeaderString(const ModelFile& file, std::string_view key);
// OK when the header's "family" is `family`; otherwise kInvalidArgument
// "<source>: model family "x" is not "y"".
core::Status CheckFamily(const ModelFile& file, std::string_view family, std::string_view source);

// Writes atomically (temporary file in the same folder, fsync, rename).
core::Status WriteModelFile(const std::string& path, const ModelFile& file);
// Reads and decodes the model file at `path` (at most kMaxModelFileBytes).
core::Result<ModelFile> ReadModelFile(const std::string& path);

// The largest model file Vigil reads.
inline constexpr uint64_t kMaxModelFileBytes = uint64_t{2} << 30;

// Lower-case hex SHA-256 of `data` (OpenSSL).
std::string Sha256Hex(std::string_view data);

}  // namespace vigil::model
