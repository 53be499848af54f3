#include "api/grpc_api.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

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

// gRPC's threads: a server on the asynchronous API with one completion queue polled by
// GrpcApiOptions::poll_threads threads (with one, the only thread of the process that polls
// gRPC's sockets). A polling thread reads a request and, when the answer cannot block (a score
// the model answers inline, an order without a wait), serves it before it polls again: no
// hand-off to another thread on the way in or out.
// Calls that may wait (a Watch stream, an order that awaits its acknowledgement, items for the
// engine's worker) go to the handler threads (HandlerPool). Batches of more than kInlineItems
// items that the model scores inline are CPU work only: they queue for as many threads as the
// machine has cores (the cores pool), so that 8 concurrent batches do not time-slice 8 threads
// over 2 cores, and are never refused for want of a thread (admission bounds the queue). The
// callback and synchronous APIs would each add polling threads of their own, which with the epoll1
// engine hand the poller role to one another on every event (docs/benchmarks.md).
constexpr int kInlineItems = 4;

// Threads started when needed up to `max`. Without `queue` (the calls that may block), a task is
// accepted only when a thread is free for it (or may be started), so no call waits behind
// another's wait; otherwise TrySubmit refuses and the caller answers UNAVAILABLE. With `queue`
// (CPU work that ends on its own), a task waits for a thread; refused only once stopping.
class HandlerPool {
 public:
  HandlerPool(size_t max, bool queue) : max_(std::max<size_t>(1, max)), queue_(queue) {}
  ~HandlerPool() { Stop(); }

  bool TrySubmit(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    if (tasks_.size() >= idle_ && threads_.size() < max_) {
      try {
        threads_.emplace_back([this] { Loop(); });
        ++idle_;  // counted from its start, so that the next TrySubmit sees it
      } catch (const std::system_error&) {
        if (threads_.empty()) return false;  // no thread to be had at all
      }
    }
    if (tasks_.size() >= idle_ && !queue_) return false;  // every thread is held
    tasks_.push_back(std::move(task));
    cv_.notify_one();
    return true;
  }

  // Runs the accepted tasks to their end, then joins the threads. Idempotent.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      --idle_;
      lock.unlock();
      task();
      lock.lock();
      ++idle_;
    }
  }

  const size_t max_;
  const bool queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  size_t idle_ = 0;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
};

// A completion-queue tag: the polling thread calls Proceed with the event's `ok`.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// What the calls share.
struct Shared {
  Frontend& fe;
  grpc::ServerCompletionQueue& cq;
  HandlerPool& pool;   // calls that may wait
  HandlerPool& cores;  // CPU work: large batches scored inline
  std::atomic<bool>& stopping;
};

int64_t BudgetFor(const Frontend::Admission& a, uint32_t deadline_ms) {
  return deadline_ms > 0 ? std::min(a.ctx.budget_ns, int64_t{deadline_ms} * 1'000'000)
                         : a.ctx.budget_ns;
}

// Whether an admitted request is answered without waiting for another thread (see above).
bool AnswersAtOnce(Frontend& fe, const v1::ScoreRequest& r, const Frontend::Admission& a) {
  return fe.service().ScoresInline(1, BudgetFor(a, r.deadline_ms()));
}
bool AnswersAtOnce(Frontend& fe, const v1::ScoreBatchRequest& r, const Frontend::Admission& a) {
  return r.items_size() <= kInlineItems &&
         fe.service().ScoresInline(static_cast<size_t>(r.items_size()),
                                   BudgetFor(a, r.deadline_ms()));
}
bool AnswersAtOnce(Frontend& fe, const v1::DecideRequest& r, const Frontend::Admission& a) {
  return !r.has_features() || fe.service().ScoresInline(1, BudgetFor(a, r.deadline_ms()));
}
bool AnswersAtOnce(Frontend&, const v1::EnforceRequest& r, const Frontend::Admission&) {
  return r.wait_ms() == 0;
}
bool AnswersAtOnce(Frontend&, const v1::RollbackRequest& r, const Frontend::Admission&) {
  return r.wait_ms() == 0;
}
bool AnswersAtOnce(Frontend&, const v1::Ack&, const Frontend::Admission&) { return true; }

// Whether a request not answered at once is CPU work only (see above): a batch the model scores
// inline. The others may wait.
template <typename Req>
bool ScoresOnCores(Frontend&, const Req&, const Frontend::Admission&) {
  return false;
}
bool ScoresOnCores(Frontend& fe, const v1::ScoreBatchRequest& r, const Frontend::Admission& a) {
  return fe.service().ScoresInline(static_cast<size_t>(r.items_size()),
                                   BudgetFor(a, r.deadline_ms()));
}

const grpc::Status& NoHandlerThread() {
  static const grpc::Status s(grpc::StatusCode::UNAVAILABLE,
                              "overloaded: every gRPC handler thread is busy; retry later");
  return s;
}

// One unary call, from the request for it to its answer. Asks for the next call of its method
// as soon as it has one, so calls of a method are served concurrently.
template <typename Service, typename Req, typename Resp>
class UnaryCall final : public Tag {
 public:
  using RequestFn = void (Service::*)(grpc::ServerContext*, Req*,
                                      grpc::ServerAsyncResponseWriter<Resp>*,
                                      grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);
  using OpFn = core::Result<Resp> (Frontend::*)(const Req&, Frontend::Admission&);
  struct Method {
    Service* service;
    RequestFn request;
    Api api;
    OpFn op;
  };

  static void Listen(const Shared& shared, const Method& m) {
    auto* call = new UnaryCall(shared, m);
    (m.service->*m.request)(&call->ctx_, &call->req_, &call->responder_, &shared.cq, &shared.cq,
                            call);
  }

  void Proceed(bool ok) override {
    if (!ok || answered_) {  // the server shut down before a call came, or the answer is sent
      delete this;
      return;
    }
    Listen(shared_, method_);
    admission_ = AdmitCall(shared_.fe, method_.api, ctx_);
    if (admission_.refusal != Refusal::kNone) {
      Answer(grpc::Status(GrpcCode(admission_.refusal), admission_.reason));
    } else if (AnswersAtOnce(shared_.fe, req_, admission_)) {
      Serve();
    } else if (HandlerPool& pool =
                   ScoresOnCores(shared_.fe, req_, admission_) ? shared_.cores : shared_.pool;
               !pool.TrySubmit([this] { Serve(); })) {
      Answer(NoHandlerThread());
    }
  }

 private:
  UnaryCall(const Shared& shared, const Method& m)
      : shared_(shared), method_(m), responder_(&ctx_) {}

  void Serve() {
    core::Result<Resp> r = (shared_.fe.*method_.op)(req_, admission_);
    if (!r.has_value()) {
      Answer(grpc::Status(GrpcCodeOf(r.error().code()), r.error().message()));
      return;
    }
    resp_ = std::move(*r);
    answered_ = true;
    admission_.ticket.Release();  // no longer in flight once its answer is written
    responder_.Finish(resp_, grpc::Status::OK, this);
  }
  void Answer(const grpc::Status& s) {
    answered_ = true;
    admission_.ticket.Release();
    responder_.FinishWithError(s, this);
  }

  const Shared shared_;
  const Method method_;
  grpc::ServerContext ctx_;
  Req req_;
  Resp resp_;
  grpc::ServerAsyncResponseWriter<Resp> responder_;
  Frontend::Admission admission_;
  bool answered_ = false;
};

// One Control.Watch stream: admitted on the polling thread, then streamed by a handler thread
// (it waits for orders), which writes one order at a time and waits for each write to end. The
// call is freed when both its final status is sent and gRPC reports it done.
class WatchCall final : public Tag {
 public:
  static void Listen(const Shared& shared, v1::Control::AsyncService* service) {
    auto* call = new WatchCall(shared, service);
    call->ctx_.AsyncNotifyWhenDone(&call->done_tag_);
    service->RequestWatch(&call->ctx_, &call->req_, &call->writer_, &shared.cq, &shared.cq, call);
  }

  void Proceed(bool ok) override {  // the call came (ok) or the server shut down (not ok)
    if (!ok) {
      // Without a call, the done tag never fires (gRPC: AsyncNotifyWhenDone).
      delete this;
      return;
    }
    Listen(shared_, service_);
    Frontend::Admission a = AdmitCall(shared_.fe, Api::kWatch, ctx_);
    if (a.refusal != Refusal::kNone) {
      Finish(grpc::Status(GrpcCode(a.refusal), a.reason));
    } else if (core::Status s = shared_.fe.StartWatch(req_, a); !s.ok()) {
      Finish(grpc::Status(GrpcCodeOf(s.code()), s.message()));
    } else if (!shared_.pool.TrySubmit([this] { Stream(); })) {
      Finish(NoHandlerThread());
    }
  }

 private:
  // Forwards a completion to one of the call's steps.
  class Step final : public Tag {
   public:
    Step(WatchCall* call, void (WatchCall::*fn)(bool)) : call_(call), fn_(fn) {}
    void Proceed(bool ok) override { (call_->*fn_)(ok); }

   private:
    WatchCall* call_;
    void (WatchCall::*fn_)(bool);
  };

  WatchCall(const Shared& shared, v1::Control::AsyncService* service)
      : shared_(shared), service_(service), writer_(&ctx_) {}

  // On a handler thread until the stream ends. Once the order book is shut down (the server
  // is stopping), Next answers at once: the stream ends then, UNAVAILABLE so that the agent
  // watches again, rather than asking it again in a loop until Stop.
  void Stream() {
    uint64_t cursor = 0;
    while (!done_.load() && !shared_.stopping.load()) {
      auto order = shared_.fe.orders().Next(req_.host(), &cursor, std::chrono::milliseconds(200));
      if (!order) {
        if (shared_.fe.orders().IsShutdown()) {
          Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "server stopping: no more orders on this stream; watch again"));
          return;
        }
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      writing_ = true;
      writer_.Write(*order, &write_tag_);
      cv_.wait(lock, [this] { return !writing_; });
      if (!write_ok_) break;
    }
    Finish(grpc::Status::OK);
  }
  void Finish(const grpc::Status& s) { writer_.Finish(s, &finish_tag_); }

  void Written(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    write_ok_ = ok;
    writing_ = false;
    cv_.notify_one();
  }
  // Finished and Done both run on the polling thread: no lock needed between them.
  void Finished(bool) {
    finished_ = true;
    if (done_seen_) delete this;
  }
  void Done(bool) {
    done_seen_ = true;
    done_.store(true);
    if (finished_) delete this;
  }

  const Shared shared_;
  v1::Control::AsyncService* const service_;
  grpc::ServerContext ctx_;
  v1::WatchRequest req_;
  grpc::ServerAsyncWriter<v1::Order> writer_;
  Step write_tag_{this, &WatchCall::Written};
  Step finish_tag_{this, &WatchCall::Finished};
  Step done_tag_{this, &WatchCall::Done};
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_ok_ = true;
  std::atomic<bool> done_{false};  // the client cancelled, or the call ended
  bool finished_ = false;
  bool done_seen_ = false;
};

}  // namespace

struct GrpcApi::Services {
  v1::Inference::AsyncService inference;
  v1::Policy::AsyncService policy;
  v1::Control::AsyncService control;
  std::atomic<bool> stopping{false};
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::unique_ptr<HandlerPool> pool;
  std::unique_ptr<HandlerPool> cores;
  std::vector<std::thread> pollers;

  // Drains and ends the queue (the server is shut down or was never started).
  void EndQueue() {
    cq->Shutdown();
    for (auto& t : pollers) t.join();
    pollers.clear();
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
  }
};

GrpcApi::GrpcApi(GrpcApiOptions options, Frontend& frontend)
    : options_(std::move(options)), frontend_(frontend) {}

GrpcApi::~GrpcApi() { Stop(); }

core::Status GrpcApi::Start() {
  if (server_) return core::FailedPrecondition("grpc api: already started");
  // gRPC takes absl::Mutex locks many times per call. Debian builds Abseil without NDEBUG,
  // which leaves its deadlock detection on: every lock then goes through one process-wide spin
  // lock and a graph of every mutex, and every mutex destroyed (gRPC makes several per call) is
  // taken out of it again; 7-8 % of the server's instructions per single score
  // (docs/benchmarks.md). Abseil's release builds leave it off; so does this server.
  // Process-wide, idempotent.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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
  auto services = std::make_unique<Services>();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen.ToString(), creds, &port);
  builder.RegisterService(&services->inference);
  builder.RegisterService(&services->policy);
  builder.RegisterService(&services->control);
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxBodyBytes));
  services->cq = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    services->EndQueue();
    return core::Unavailable("grpc api: cannot listen on " + options_.listen.ToString() +
                             " (address in use, or bad TLS files)");
  }
  services->pool =
      std::make_unique<HandlerPool>(static_cast<size_t>(options_.max_threads), /*queue=*/false);
  services->cores = std::make_unique<HandlerPool>(std::max(1u, std::thread::hardware_concurrency()),
                                                  /*queue=*/true);
  using Inf = v1::Inference::AsyncService;
  using Pol = v1::Policy::AsyncService;
  using Ctl = v1::Control::AsyncService;
  const Shared shared{frontend_, *services->cq, *services->pool, *services->cores,
                      services->stopping};
  UnaryCall<Inf, v1::ScoreRequest, v1::ScoreResponse>::Listen(
      shared, {&services->inference, &Inf::RequestScore, Api::kScore, &Frontend::Score});
  UnaryCall<Inf, v1::ScoreBatchRequest, v1::ScoreBatchResponse>::Listen(
      shared,
      {&services->inference, &Inf::RequestScoreBatch, Api::kScoreBatch, &Frontend::ScoreBatch});
  UnaryCall<Pol, v1::DecideRequest, v1::DecideResponse>::Listen(
      shared, {&services->policy, &Pol::RequestDecide, Api::kDecide, &Frontend::Decide});
  UnaryCall<Ctl, v1::EnforceRequest, v1::OrderStatus>::Listen(
      shared, {&services->control, &Ctl::RequestEnforce, Api::kEnforce, &Frontend::Enforce});
  UnaryCall<Ctl, v1::RollbackRequest, v1::OrderStatus>::Listen(
      shared, {&services->control, &Ctl::RequestRollback, Api::kRollback, &Frontend::Rollback});
  UnaryCall<Ctl, v1::Ack, v1::OrderStatus>::Listen(
      shared, {&services->control, &Ctl::RequestAcknowledge, Api::kAck, &Frontend::Acknowledge});
  WatchCall::Listen(shared, &services->control);
  for (int i = 0; i < std::max(1, options_.poll_threads); ++i) {
    services->pollers.emplace_back([q = services->cq.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    });
  }
  services_ = std::move(services);
  port_ = static_cast<uint16_t>(port);
  return {};
}

void GrpcApi::Stop() {
  if (!server_) return;
  // Watch streams end within their 200 ms wait for orders; calls still running after a second
  // are cancelled. The completion queue is drained until every call has ended, and shut down
  // only after the handler threads, which may still start a call's last operation.
  services_->stopping = true;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  services_->pool->Stop();
  services_->cores->Stop();
  services_->EndQueue();
  server_.reset();
  services_.reset();
}

}  // namespace vigil::api
