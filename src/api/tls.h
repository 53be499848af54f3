#pragma once

// TLS settings shared by the HTTP and gRPC listeners.

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

// Reads a whole (PEM) file; kNotFound / kInvalidArgument naming `what` and the path.
core::Result<std::string> ReadPemFile(const std::string& path, const char* what);

}  // namespace vigil::api
