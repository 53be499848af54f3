#include "api/grpc_api.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>

#include "api/codec.h"
#include "api/grpc_status.h"
#include "vigil/v1/api.grpc.pb.h"

namespace vigil::api {

grpc::StatusCode GrpcCodeOf(core::StatusCode c) {
  switch (c) {
    case core::StatusCode::kOk: return grpc::StatusCode::OK;
    case core::StatusCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case core::StatusCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case core::StatusCode::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case core::StatusCode::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case core::StatusCode::kOutOfRange: return grpc::StatusCode::OUT_OF_RANGE;
    case core::StatusCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case core::StatusCode::kDataLoss: return grpc::StatusCode::DATA_LOSS;
    case core::StatusCode::kDeadlineExceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case core::StatusCode::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case core::StatusCode::kPermissionDenied: return grpc::StatusCode::PERMISSION_DENIED;
    case core::StatusCode::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

grpc::Status GrpcStatusOf(const core::Status& s) {
  return s.ok() ? grpc::Status::OK : grpc::Status(GrpcCodeOf(s.code()), s.message());
}

namespace {


grpc::StatusCode GrpcCode(Refusal r) {
  switch (r) {
    case Refusal::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case Refusal::kForbidden: return grpc::StatusCode::PERMISSION_DENIED;
    case Refusal::kRateLimited: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Refusal::kOverloaded:
    case Refusal::kNotReady: return grpc::StatusCode::UNAVAILABLE;
    case Refusal::kNone: break;
  }
  return grpc::StatusCode::OK;
}

std::string PeerCommonName(const grpc::ServerContextBase& ctx) {
  auto auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  auto cns = auth->FindPropertyValues("x509_common_name");
  if (cns.empty()) return "";
  return std::string(cns.front().data(), cns.front().size());
}

Frontend::Admission AdmitCall(Frontend& fe, Api api, const grpc::ServerContextBase& ctx) {
  std::string authorization;
  auto it = ctx.client_metadata().find("authorization");
  if (it != ctx.client_metadata().end()) authorization.assign(it->second.data(), it->second.size());
  int64_t remaining_ns = 0;
  const auto deadline = ctx.deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    remaining_ns = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::nanoseconds>(
               deadline - std::chrono::system_clock::now()).count());
  }
  return fe.Admit(api, authorization, PeerCommonName(ctx), remaining_ns);
}

// Unary calls use gRPC's callback API: the handler runs on the thread that read the request,
// so a score the engine answers inline (a fast model) costs no hand-off to a second thread
// pool. A call that must wait for the engine's worker waits at most its deadline.
template <typename Req, typename Resp>
grpc::ServerUnaryReactor* Call(Frontend& fe, Api api, grpc::CallbackServerContext* ctx,
                               const Req* in, Resp* out,
                               core::Result<Resp> (Frontend::*op)(const Req&,
                                                                  Frontend::Admission&)) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Frontend::Admission a = AdmitCall(fe, api, *ctx);
  if (a.refusal != Refusal::kNone) {
    reactor->Finish(grpc::Status(GrpcCode(a.refusal), a.reason));
    return reactor;
  }
  core::Result<Resp> r = (fe.*op)(*in, a);
  if (!r.has_value()) {
    reactor->Finish(grpc::Status(GrpcCodeOf(r.error().code()), r.error().message()));
  } else {
    *out = std::move(*r);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

}  // namespace

struct GrpcApi::Services {
  class Inference final : public v1::Inference::CallbackService {
   public:
    explicit Inference(Frontend& fe) : fe_(fe) {}
    grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* c, const v1::ScoreRequest* in,
                                    v1::ScoreResponse* out) override {
      return Call(fe_, Api::kScore, c, in, out, &Frontend::Score);
    }
    grpc::ServerUnaryReactor* ScoreBatch(grpc::CallbackServerContext* c,
                                         const v1::ScoreBatchRequest* in,
                                         v1::ScoreBatchResponse* out) override {
      return Call(fe_, Api::kScoreBatch, c, in, out, &Frontend::ScoreBatch);
    }

   private:
    Frontend& fe_;
  };
  class Policy final : public v1::Policy::CallbackService {
   public:
    explicit Policy(Frontend& fe) : fe_(fe) {}
    grpc::ServerUnaryReactor* Decide(grpc::CallbackServerContext* c, const v1::DecideRequest* in,
                                     v1::DecideResponse* out) override {
      return Call(fe_, Api::kDecide, c, in, out, &Frontend::Decide);
    }

   private:
    Frontend& fe_;
  };
  // Watch stays a synchronous streaming method (it blocks between orders); the unary
  // methods take the callback path like the others.
  class Control final
      : public v1::Control::WithCallbackMethod_Enforce<v1::Control::WithCallbackMethod_Rollback<
            v1::Control::WithCallbackMethod_Acknowledge<v1::Control::Service>>> {
   public:
    explicit Control(Frontend& fe) : fe_(fe) {}
    grpc::ServerUnaryReactor* Enforce(grpc::CallbackServerContext* c, const v1::EnforceRequest* in,
                                     v1::OrderStatus* out) override {
      return Call(fe_, Api::kEnforce, c, in, out, &Frontend::Enforce);
    }
    grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* c, const v1::RollbackRequest* in,
                                     v1::OrderStatus* out) override {
      return Call(fe_, Api::kRollback, c, in, out, &Frontend::Rollback);
    }
    grpc::ServerUnaryReactor* Acknowledge(grpc::CallbackServerContext* c, const v1::Ack* in,
                                     v1::OrderStatus* out) override {
      return Call(fe_, Api::kAck, c, in, out, &Frontend::Acknowledge);
    }
    grpc::Status Watch(grpc::ServerContext* c, const v1::WatchRequest* in,
                       grpc::ServerWriter<v1::Order>* writer) override {
      Frontend::Admission a = AdmitCall(fe_, Api::kWatch, *c);
      if (a.refusal != Refusal::kNone) return grpc::Status(GrpcCode(a.refusal), a.reason);
      if (core::Status s = fe_.StartWatch(*in, a); !s.ok()) {
        return grpc::Status(GrpcCodeOf(s.code()), s.message());
      }
      uint64_t cursor = 0;
      while (!c->IsCancelled() && !stopping.load()) {
        auto order = fe_.orders().Next(in->host(), &cursor, std::chrono::milliseconds(200));
        if (order && !writer->Write(*order)) break;
      }
      return grpc::Status::OK;
    }
    std::atomic<bool> stopping{false};

   private:
    Frontend& fe_;
  };

  explicit Services(Frontend& fe) : inference(fe), policy(fe), control(fe) {}
  Inference inference;
  Policy policy;
  Control control;
};

GrpcApi::GrpcApi(GrpcApiOptions options, Frontend& frontend)
    : options_(std::move(options)), frontend_(frontend) {}

GrpcApi::~GrpcApi() { Stop(); }

core::Status GrpcApi::Start() {
  if (server_) return core::FailedPrecondition("grpc api: already started");
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (options_.tls) {
    auto cert = ReadPemFile(options_.tls->cert, "tls.cert");
    if (!cert.has_value()) return cert.error();
    auto key = ReadPemFile(options_.tls->key, "tls.key");
    if (!key.has_value()) return key.error();
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    if (!options_.tls->client_ca.empty()) {
      auto ca = ReadPemFile(options_.tls->client_ca, "tls.client_ca");
      if (!ca.has_value()) return ca.error();
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request =
          options_.tls->require_client_cert
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  services_ = std::make_unique<Services>(frontend_);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen.ToString(), creds, &port);
  builder.RegisterService(&services_->inference);
  builder.RegisterService(&services_->policy);
  builder.RegisterService(&services_->control);
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxBodyBytes));
  grpc::ResourceQuota quota("vigil-api");
  quota.SetMaxThreads(std::max(2, options_.max_threads));
  builder.SetResourceQuota(quota);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    services_.reset();
    return core::Unavailable("grpc api: cannot listen on " + options_.listen.ToString() +
                             " (address in use, or bad TLS files)");
  }
  port_ = static_cast<uint16_t>(port);
  return {};
}

void GrpcApi::Stop() {
  if (!server_) return;
  services_->control.stopping = true;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
  server_.reset();
  services_.reset();
}

}  // namespace vigil::api
