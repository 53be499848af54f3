#include "api/http_api.h"

#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "api/codec.h"
#include "core/files.h"

namespace vigil::api {
namespace {

constexpr const char* kJson = "application/json";

void SendError(httplib::Response& res, int http, std::string_view code, std::string_view message) {
  nlohmann::json body = {{"schema_version", kSchemaVersion},
                         {"error", {{"code", code}, {"message", message}}}};
  res.status = http;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
}

void SendStatus(httplib::Response& res, const core::Status& s) {
  std::string_view code = core::StatusCodeName(s.code());
  SendError(res, HttpStatusOf(s.code()), code, s.message());
}

// The CN of a client certificate that the handshake verified; "" without one.
std::string PeerCommonName(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  SSL* ssl = const_cast<SSL*>(req.ssl);
  if (SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char cn[256] = {0};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                          sizeof(cn));
  X509_free(cert);
  return n > 0 ? std::string(cn, static_cast<size_t>(n)) : std::string();
}

template <typename Req, typename Resp>
void Handle(Frontend& fe, Api api, const httplib::Request& req, httplib::Response& res,
            core::Result<Resp> (Frontend::*op)(const Req&, Frontend::Admission&)) {
  Frontend::Admission a =
      fe.Admit(api, req.get_header_value("Authorization"), PeerCommonName(req), 0);
  if (a.refusal != Refusal::kNone) {
    SendError(res, HttpStatusOf(a.refusal), RefusalCodeName(a.refusal), a.reason);
    if (a.refusal == Refusal::kRateLimited) res.set_header("Retry-After", "1");
    return;
  }
  Req in;
  if (core::Status s = ParseJson(req.body, &in); !s.ok()) {
    SendStatus(res, s);
    return;
  }
  core::Result<Resp> out = (fe.*op)(in, a);
  if (!out.has_value()) {
    SendStatus(res, out.error());
    return;
  }
  res.status = 200;
  res.set_content(ToJson(*out), kJson);
}

bool SetUpTls(SSL_CTX& ctx, const TlsFiles& tls, std::string* error) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert.c_str()) != 1) {
    *error = "tls.cert \"" + tls.cert + "\": not a usable PEM certificate chain";
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    *error = "tls.key \"" + tls.key + "\": not the PEM private key of tls.cert";
    return false;
  }
  if (!tls.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, tls.client_ca.c_str(), nullptr) != 1) {
      *error = "tls.client_ca \"" + tls.client_ca + "\": not a usable PEM CA bundle";
      return false;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(&ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (tls.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(&ctx, mode, nullptr);
  }
  return true;
}

}  // namespace

core::Result<std::string> ReadPemFile(const std::string& path, const char* what) {
  auto bytes = core::ReadFile(path, kMaxPemFileBytes);
  if (!bytes.has_value()) return bytes.error().WithContext(what);
  std::string text = std::move(bytes).value();
  if (text.find("-----BEGIN ") == std::string::npos) {
    return core::InvalidArgument(std::string(what) + " \"" + path + "\": not a PEM file");
  }
  return text;
}

HttpApi::HttpApi(HttpApiOptions options, Frontend& frontend, core::Registry& registry)
    : options_(std::move(options)), frontend_(frontend), registry_(registry) {}

HttpApi::~HttpApi() { Stop(); }

core::Status HttpApi::Start() {
  std::unique_ptr<httplib::Server> server;
  try {
    if (options_.tls) {
      for (const auto& [file, what] : {std::pair{&options_.tls->cert, "tls.cert"},
                                       std::pair{&options_.tls->key, "tls.key"}}) {
        if (auto pem = ReadPemFile(*file, what); !pem.has_value()) return pem.error();
      }
      if (!options_.tls->client_ca.empty()) {
        auto pem = ReadPemFile(options_.tls->client_ca, "tls.client_ca");
        if (!pem.has_value()) return pem.error();
      }
      std::string error;
      const TlsFiles tls = *options_.tls;
      auto ssl = std::make_unique<httplib::SSLServer>(
          [&tls, &error](SSL_CTX& ctx) { return SetUpTls(ctx, tls, &error); });
      if (!ssl->is_valid()) {
        return core::InvalidArgument("http api: " + (error.empty() ? "TLS set-up failed" : error));
      }
      server = std::move(ssl);
    } else {
      server = std::make_unique<httplib::Server>();
    }
    const int threads = std::max(1, options_.threads);
    server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server->set_payload_max_length(kMaxBodyBytes);
    server->set_read_timeout(10, 0);
    server->set_write_timeout(10, 0);
    server->set_keep_alive_max_count(100000);
    Routes(*server);
  } catch (const std::exception& e) {
    return core::Internal(std::string("http api: ") + e.what());
  }
  return listener_.Start(std::move(server), options_.listen, "http api");
}

void HttpApi::Stop() { listener_.Stop(); }

void HttpApi::Routes(httplib::Server& s) {
  Frontend& fe = frontend_;
  s.Post("/v1/score", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kScore, q, r, &Frontend::Score);
  });
  s.Post("/v1/score:batch", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kScoreBatch, q, r, &Frontend::ScoreBatch);
  });
  s.Post("/v1/decide", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kDecide, q, r, &Frontend::Decide);
  });
  s.Post("/v1/enforce", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kEnforce, q, r, &Frontend::Enforce);
  });
  s.Post("/v1/rollback", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kRollback, q, r, &Frontend::Rollback);
  });
  s.Post("/v1/ack", [&fe](const httplib::Request& q, httplib::Response& r) {
    Handle(fe, Api::kAck, q, r, &Frontend::Acknowledge);
  });
  core::Registry& registry = registry_;
  s.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& r) {
    r.set_content(registry.ExpositionText(), std::string(core::kPrometheusTextContentType));
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& r) {
    r.set_content(R"({"status":"ok"})", kJson);
  });
  s.Get("/readyz", [&fe](const httplib::Request&, httplib::Response& r) {
    std::string why;
    const bool ready = fe.service().Ready(&why);
    nlohmann::json body = {{"status", ready ? "ready" : "not ready"}};
    if (!ready) body["reason"] = why;
    r.status = ready ? 200 : 503;
    r.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr) {
    SendError(r, 500, "INTERNAL", "internal error");
  });
  s.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    if (r.status == 404) {
      SendError(r, 404, "NOT_FOUND", "no route " + q.method + " " + q.path);
    } else if (r.status == 413) {
      SendError(r, 413, "INVALID_ARGUMENT", "request body over the limit");
    }
  });
}

}  // namespace vigil::api
