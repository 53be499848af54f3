#include "model/model_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/files.h"
#include "model/internal/bytes.h"

namespace vigil::model {
namespace {

constexpr size_t kDigestLen = 32;
constexpr uint64_t kMaxHeaderLen = 16u << 20;

std::string Sha256Raw(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

core::Status Bad(std::string_view source, const std::string& why) {
  return core::DataLoss(std::string(source) + ": " + why);
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string raw = Sha256Raw(data);
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string EncodeModelFile(const ModelFile& file) {
  nlohmann::json header = file.header;
  header["format"] = "vigil-model";
  header["format_version"] = kModelFormatVersion;
  const std::string h = header.dump();
  internal::ByteWriter w;
  w.Bytes(kModelMagic);
  w.U32(kModelFormatVersion);
  w.U32(static_cast<uint32_t>(h.size()));
  w.Bytes(h);
  w.U64(file.payload.size());
  w.Bytes(file.payload);
  w.Bytes(Sha256Raw(w.str()));
  return std::move(w.str());
}

core::Result<ModelFile> DecodeModelFile(std::string_view bytes, std::string_view source) {
  internal::ByteReader r(bytes);
  std::string_view magic;
  if (!r.Bytes(kModelMagic.size(), &magic) || magic != kModelMagic) {
    return core::InvalidArgument(std::string(source) +
                                 ": not a Vigil model file (magic \"VIGILMDL\" missing)");
  }
  uint32_t version = 0, header_len = 0;
  if (!r.U32(&version)) return Bad(source, "truncated at offset 8 (format version)");
  if (version > kModelFormatVersion) {
    return core::OutOfRange(std::string(source) + ": model format version " +
                            std::to_string(version) + " is newer than this build reads (" +
                            std::to_string(kModelFormatVersion) + "); upgrade Vigil");
  }
  if (version == 0) return Bad(source, "format version 0 is invalid");
  if (!r.U32(&header_len)) return Bad(source, "truncated at offset 12 (header length)");
  if (header_len > kMaxHeaderLen || header_len > r.remaining()) {
    return Bad(source, "header length " + std::to_string(header_len) +
                           " runs past the end of the file (truncated?)");
  }
  std::string_view header_text;
  (void)r.Bytes(header_len, &header_text);
  uint64_t payload_len = 0;
  if (!r.U64(&payload_len)) return Bad(source, "truncated in the payload length");
  if (payload_len > r.remaining() || r.remaining() - payload_len != kDigestLen) {
    return Bad(source, "payload length " + std::to_string(payload_len) + " does not match the " +
                           std::to_string(r.remaining()) +
                           " bytes that follow (truncated or extended file)");
  }
  std::string_view payload;
  (void)r.Bytes(payload_len, &payload);
  const size_t body_len = r.offset();
  std::string_view digest;
  (void)r.Bytes(kDigestLen, &digest);
  if (Sha256Raw(bytes.substr(0, body_len)) != digest) {
    return Bad(source, "SHA-256 checksum mismatch (the file was altered or corrupted)");
  }
  ModelFile out;
  out.header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (out.header.is_discarded() || !out.header.is_object()) {
    return Bad(source, "header is not a JSON object");
  }
  for (const char* key : {"family", "name", "version"}) {
    auto it = out.header.find(key);
    if (it == out.header.end() || !it->is_string()) {
      return Bad(source, std::string("header lacks the string field \"") + key + "\"");
    }
  }
  out.payload.assign(payload);
  return out;
}

std::string HeaderString(const ModelFile& file, std::string_view key) {
  if (!file.header.is_object()) return std::string();
  auto it = file.header.find(key);
  return it != file.header.end() && it->is_string() ? it->get<std::string>() : std::string();
}

core::Status CheckFamily(const ModelFile& file, std::string_view family, std::string_view source) {
  const std::string got = HeaderString(file, "family");
  if (got == family) return core::Status::Ok();
  return core::InvalidArgument(std::string(source) + ": model family \"" + got + "\" is not \"" +
                               std::string(family) + "\"");
}

core::Status WriteModelFile(const std::string& path, const ModelFile& file) {
  const std::string bytes = EncodeModelFile(file);
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return core::IoError(tmp + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return core::IoError(tmp + ": write failed: " + err);
    }
    done += static_cast<size_t>(n);
  }
  // Close even when fsync fails, so the descriptor does not leak; drop the partial file.
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    const std::string err = std::strerror(synced ? errno : sync_errno);
    ::unlink(tmp.c_str());
    return core::IoError(tmp + ": fsync/close failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return core::IoError(path + ": rename failed: " + err);
  }
  return core::Status::Ok();
}

core::Result<ModelFile> ReadModelFile(const std::string& path) {
  auto bytes = core::ReadFile(path, kMaxModelFileBytes);
  if (!bytes.has_value()) return bytes.error().WithContext("model file");
  return DecodeModelFile(*bytes, path);
}

}  // namespace vigil::model
