#pragma once

// TLS settings shared by the HTTP and gRPC listeners.

#include <cstdint>
#include <string>

#include "core/status.h"

namespace vigil::api {

struct TlsFiles {
  std::string cert;       // PEM certificate chain of the server
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA bundle that client certificates must chain to; "": no mTLS
  // With a client CA: true refuses a TLS handshake without a client certificate; false lets
  // such clients in to authenticate with a bearer token instead.
  bool require_client_cert = false;
};

// The largest certificate, key or CA bundle file read (a bundle of a few hundred CAs fits).
inline constexpr uint64_t kMaxPemFileBytes = uint64_t{1} << 20;

// Reads a whole (PEM) file of at most kMaxPemFileBytes; errors name `what` and the path
// (core::ReadFile's codes; kInvalidArgument for a file without a PEM block).
core::Result<std::string> ReadPemFile(const std::string& path, const char* what);

}  // namespace vigil::api
