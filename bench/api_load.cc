// Load generator for `vigil serve` (docs/api.md, docs/benchmarks.md): N clients, each with its
// own connection (HTTP keep-alive, or its own gRPC channel) and one request outstanding at a
// time (closed loop), send score requests for a fixed time; prints calls/s, scores/s and the
// call latency P50/P95/P99. Run it from another process than the server (bench/api/run.sh).
//
//   api_load --url http://127.0.0.1:8080 --clients 8 --seconds 5 [--vary] [--token-file T]
//   api_load --grpc 127.0.0.1:9090 --clients 8 --batch 64 --vary
//   api_load --grpc 127.0.0.1:9090 --clients 8 --mode threads
//   api_load --grpc 127.0.0.1:9090 --clients 8 --mode h2
//
// --mode events (default) multiplexes the clients' connections on --threads threads (default
// 1): epoll over non-blocking keep-alive HTTP connections, or gRPC's asynchronous completion
// queue with one channel (and connection) per client, as wrk and ghz do. --mode threads runs one
// OS thread per client, each blocked in its call (httplib's client, gRPC's synchronous stub):
// on a 2-core machine those threads queue for CPU beside the server's, which the latency shows.
// --mode h2 (gRPC only) multiplexes the clients' connections on --threads threads like events,
// but without gRPC's client library: each client's HTTP/2 connection is a non-blocking socket in
// epoll, driven by nghttp2, and api_load frames and unframes the gRPC messages itself. It takes
// a fraction of the CPU per call that gRPC's client does, and on a machine it shares with the
// server, every µs the load generator spends is taken from the server.
// --vary changes the request each time (verdict-cache misses: the model scores every item);
// without it every request is the same (cache hits after the first). --batch N sends
// score:batch / Inference.ScoreBatch calls of N items (0: single scores). --json prints the
// figures as one JSON object, among them the load generator's own CPU time and context
// switches (getrusage), so that its share of a machine it shares with the server is known.

#include <absl/synchronization/mutex.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/load_lib.h"
#include "vigil/v1/api.grpc.pb.h"

namespace {

using vigil::bench::LoadMode;
using vigil::bench::LoadOptions;
using Clock = std::chrono::steady_clock;

// Each client's tally (in event mode, each thread's: its clients share it).
struct Tally {
  std::vector<double> latency_us;  // one per successful call
  uint64_t scores = 0, fallbacks = 0, cached = 0, errors = 0;
  std::string first_error;
  void Error(std::string what) {
    if (errors++ == 0) first_error = std::move(what);
  }
};

double MicrosSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

void CountHttpAnswer(std::string_view body, int items, Tally* t) {
  t->scores += static_cast<uint64_t>(items);
  t->fallbacks += vigil::bench::CountOccurrences(body, "\"fallback\":true");
  t->cached += vigil::bench::CountOccurrences(body, "\"cached\":true");
}

void CountScore(const vigil::v1::Score& s, Tally* t) {
  ++t->scores;
  t->fallbacks += s.fallback() ? 1 : 0;
  t->cached += s.cached() ? 1 : 0;
}

// A gRPC call answered: its latency, and its score (`one`) or scores (`many`, for batches).
void CountGrpcAnswer(const LoadOptions& o, double us, const vigil::v1::ScoreResponse& one,
                     const vigil::v1::ScoreBatchResponse& many, Tally* t) {
  t->latency_us.push_back(us);
  if (o.batch > 0) {
    for (const auto& r : many.results()) CountScore(r, t);
  } else {
    CountScore(one.result(), t);
  }
}

// --- thread per client --------------------------------------------------------------------

void RunHttpThread(const LoadOptions& o, int c, const std::string& token,
                   const std::atomic<bool>& go, const std::atomic<bool>& stop, Tally* t) {
  httplib::Client cli(o.url);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  const char* route = o.batch > 0 ? "/v1/score:batch" : "/v1/score";
  uint64_t n = 0;
  while (!go.load()) std::this_thread::yield();
  while (!stop.load()) {
    const std::string body = vigil::bench::ScoreBody(o, c, &n);
    const auto t0 = Clock::now();
    auto res = cli.Post(route, h, body, "application/json");
    const double us = MicrosSince(t0);
    if (!res || res->status != 200) {
      t->Error(res ? "HTTP " + std::to_string(res->status) + ": " + res->body
                   : httplib::to_string(res.error()));
      continue;
    }
    t->latency_us.push_back(us);
    CountHttpAnswer(res->body, std::max(1, o.batch), t);
  }
}

std::shared_ptr<grpc::Channel> OwnChannel(const LoadOptions& o) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own per client
  return grpc::CreateCustomChannel(o.grpc_target, grpc::InsecureChannelCredentials(), args);
}

void FillSingle(const LoadOptions& o, int c, uint64_t* n, std::vector<int32_t>* calls,
                vigil::v1::ScoreRequest* r) {
  vigil::bench::RequestCalls(o, c, (*n)++, calls);
  r->set_subject("bench");
  r->set_arch("i386");
  r->mutable_syscalls()->Assign(calls->begin(), calls->end());
}

void RunGrpcThread(const LoadOptions& o, int c, const std::string& token,
                   const std::atomic<bool>& go, const std::atomic<bool>& stop, Tally* t) {
  auto stub = vigil::v1::Inference::NewStub(OwnChannel(o));
  std::vector<int32_t> calls;
  uint64_t n = 0;
  vigil::v1::ScoreRequest single;
  vigil::v1::ScoreBatchRequest batch;
  single.set_schema_version("vigil.api/v1");
  batch.set_schema_version("vigil.api/v1");
  while (!go.load()) std::this_thread::yield();
  while (!stop.load()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    grpc::Status s;
    vigil::v1::ScoreResponse one;
    vigil::v1::ScoreBatchResponse many;
    const auto t0 = Clock::now();
    if (o.batch > 0) {
      batch.clear_items();
      for (int k = 0; k < o.batch; ++k) FillSingle(o, c, &n, &calls, batch.add_items());
      s = stub->ScoreBatch(&ctx, batch, &many);
    } else {
      FillSingle(o, c, &n, &calls, &single);
      s = stub->Score(&ctx, single, &one);
    }
    const double us = MicrosSince(t0);
    if (!s.ok()) {
      t->Error("gRPC " + s.error_message());
      continue;
    }
    CountGrpcAnswer(o, us, one, many, t);
  }
}

// --- event-driven: HTTP over epoll --------------------------------------------------------

// One keep-alive connection with at most one request outstanding.
struct HttpConn {
  int id = 0;  // the client number (request variation)
  int fd = -1;
  uint64_t n = 0;
  std::string out;  // the request being written
  size_t sent = 0;
  vigil::bench::HttpAnswerReader reader;
  Clock::time_point t0;
  bool busy = false;      // a request is outstanding
  bool want_out = false;  // registered for EPOLLOUT (a request partly written)
};

// A connected, non-blocking TCP socket with TCP_NODELAY to o.http_host:o.http_port (--url's,
// or --grpc's in mode h2); -1 with `error` set on failure.
int Connect(const LoadOptions& o, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(o.http_port);
  const std::string& target = o.url.empty() ? o.grpc_target : o.url;
  if (int rc = getaddrinfo(o.http_host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = "resolve " + o.http_host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      *error = "connect " + target + ": " + std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// What the two epoll-driven loops share (HTTP/JSON in mode events, gRPC in mode h2): the epoll
// set, the connections (a Conn per client, with `id`, `fd`, `busy` and `want_out`) and their
// closed loop.
template <typename Conn>
class EpollClients {
 public:
  EpollClients(const LoadOptions& o, const std::vector<int>& clients, Tally* t)
      : o_(o), tally_(t) {
    for (int c : clients) {
      conns_.push_back(std::make_unique<Conn>());
      conns_.back()->id = c;
    }
  }
  ~EpollClients() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
    }
    if (ep_ >= 0) close(ep_);
  }
  EpollClients(const EpollClients&) = delete;
  EpollClients& operator=(const EpollClients&) = delete;

 protected:
  // Creates the epoll set and opens every client's connection with `reconnect`; false (with
  // the tally's error) when one cannot be opened.
  template <typename Reconnect>
  bool OpenAll(Reconnect reconnect) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      tally_->Error(std::string("epoll_create1: ") + std::strerror(errno));
      return false;
    }
    for (auto& c : conns_) {
      if (!reconnect(*c)) return false;
    }
    return true;
  }

  // Closes c's socket if open, connects a new one and adds it to the epoll set (EPOLLIN); false
  // with the tally's error.
  bool Connect(Conn& c) {
    if (c.fd >= 0) close(c.fd);
    c.want_out = false;
    std::string error;
    c.fd = ::Connect(o_, &error);
    if (c.fd < 0) {
      tally_->Error(error);
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      tally_->Error(std::string("epoll_ctl: ") + std::strerror(errno));
      return false;
    }
    return true;
  }

  // Registers c for EPOLLOUT too while `want_out` (a write the socket did not take whole); no
  // epoll_ctl per request while writes complete.
  bool WantOut(Conn& c, bool want_out) {
    if (want_out == c.want_out) return true;
    c.want_out = want_out;
    epoll_event ev{};
    ev.events = want_out ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.ptr = &c;
    return epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) == 0;
  }

  // Hands each ready connection to `on_event(conn, events)` (false: the loop ends at once)
  // while any call is outstanding. Once `stop` is set no new call starts (stopping_ tells the
  // callers), and the outstanding ones get 10 s, the calls' deadline, before each counts as an
  // error.
  template <typename OnEvent>
  void Loop(const std::atomic<bool>& stop, OnEvent on_event) {
    std::vector<epoll_event> events(conns_.size());
    size_t busy = conns_.size();
    Clock::time_point give_up = Clock::time_point::max();
    while (busy > 0) {
      if (!stopping_ && stop.load()) {
        stopping_ = true;
        give_up = Clock::now() + std::chrono::seconds(10);
      }
      if (Clock::now() > give_up) {
        for (auto& c : conns_) {
          if (c->busy) tally_->Error("no answer within 10 s");
        }
        return;
      }
      const int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 100);
      if (n < 0 && errno != EINTR) {
        tally_->Error(std::string("epoll_wait: ") + std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        const epoll_event& ev = events[static_cast<size_t>(i)];
        if (!on_event(*static_cast<Conn*>(ev.data.ptr), ev.events)) return;
      }
      busy = 0;
      for (auto& c : conns_) busy += c->busy ? 1 : 0;
    }
  }

  const LoadOptions& o_;
  Tally* tally_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int ep_ = -1;
  bool stopping_ = false;
};

class HttpEventLoop : public EpollClients<HttpConn> {
 public:
  HttpEventLoop(const LoadOptions& o, std::string token, const std::vector<int>& clients,
                Tally* t)
      : EpollClients(o, clients, t), token_(std::move(token)) {}

  // Connects every client; false (with the tally's error) when one cannot connect.
  bool Open() {
    return OpenAll([this](HttpConn& c) { return Reconnect(c); });
  }

  void Run(const std::atomic<bool>& go, const std::atomic<bool>& stop) {
    while (!go.load()) std::this_thread::yield();
    for (auto& c : conns_) Send(*c);
    Loop(stop, [this](HttpConn& c, uint32_t events) {
      if (events & EPOLLOUT) Write(c);
      return (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0 || Read(c);
    });
  }

 private:
  bool Reconnect(HttpConn& c) {
    c.reader = vigil::bench::HttpAnswerReader();
    return Connect(c);
  }

  void Send(HttpConn& c) {
    const std::string body = vigil::bench::ScoreBody(o_, c.id, &c.n);
    c.out = o_.batch > 0 ? "POST /v1/score:batch HTTP/1.1\r\n" : "POST /v1/score HTTP/1.1\r\n";
    c.out += "Host: " + o_.http_host + "\r\nContent-Type: application/json\r\n";
    if (!token_.empty()) c.out += "Authorization: Bearer " + token_ + "\r\n";
    c.out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    c.out += body;
    c.sent = 0;
    c.busy = true;
    c.t0 = Clock::now();
    Write(c);
  }

  void Write(HttpConn& c) {
    while (c.sent < c.out.size()) {
      const ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (w < 0 && errno == EAGAIN) break;
      if (w <= 0) {
        Broken(c, std::string("send: ") + std::strerror(errno));
        return;
      }
      c.sent += static_cast<size_t>(w);
    }
    WantOut(c, c.sent < c.out.size());
  }

  // A connection that failed mid-call: counted as an error; reconnected for the next call.
  void Broken(HttpConn& c, std::string why) {
    tally_->Error(std::move(why));
    c.busy = false;
    if (Reconnect(c) && !stopping_) Send(c);
  }

  // False when the loop must end (a connection cannot be reopened).
  bool Read(HttpConn& c) {
    const bool stop = stopping_;
    char buf[16384];
    for (;;) {
      const ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
      if (r < 0 && errno == EAGAIN) return true;
      if (r <= 0) {
        if (c.busy) {
          Broken(c, r == 0 ? "connection closed by the server" : std::string("recv: ") +
                                                                     std::strerror(errno));
        } else {
          Reconnect(c);
        }
        return c.fd >= 0;
      }
      auto state = c.reader.Feed(std::string_view(buf, static_cast<size_t>(r)));
      while (state == vigil::bench::HttpAnswerReader::State::kDone) {
        const double us = MicrosSince(c.t0);
        c.busy = false;
        if (c.reader.status() != 200) {
          tally_->Error("HTTP " + std::to_string(c.reader.status()) + ": " +
                        std::string(c.reader.body()));
        } else {
          tally_->latency_us.push_back(us);
          CountHttpAnswer(c.reader.body(), std::max(1, o_.batch), tally_);
        }
        const bool close_after = c.reader.close();
        state = c.reader.Next();
        if (close_after) {
          if (!Reconnect(c)) return false;
          if (!stop) Send(c);
          return true;
        }
        if (!stop) Send(c);
      }
      if (state == vigil::bench::HttpAnswerReader::State::kError) {
        const std::string why = "answer: " + c.reader.error();
        Broken(c, why);
        return c.fd >= 0;
      }
    }
  }

  const std::string token_;
};

// --- event-driven: gRPC's completion queue ------------------------------------------------

struct GrpcClient {
  int id = 0;
  uint64_t n = 0;
  std::unique_ptr<vigil::v1::Inference::Stub> stub;
  std::unique_ptr<grpc::ClientContext> ctx;
  vigil::v1::ScoreRequest single;
  vigil::v1::ScoreBatchRequest batch;
  vigil::v1::ScoreResponse one;
  vigil::v1::ScoreBatchResponse many;
  std::unique_ptr<grpc::ClientAsyncResponseReader<vigil::v1::ScoreResponse>> one_call;
  std::unique_ptr<grpc::ClientAsyncResponseReader<vigil::v1::ScoreBatchResponse>> many_call;
  grpc::Status status;
  Clock::time_point t0;
};

class GrpcEventLoop {
 public:
  GrpcEventLoop(const LoadOptions& o, std::string token, const std::vector<int>& clients,
                Tally* t)
      : o_(o), token_(std::move(token)), tally_(t) {
    for (int c : clients) {
      auto g = std::make_unique<GrpcClient>();
      g->id = c;
      g->stub = vigil::v1::Inference::NewStub(OwnChannel(o));
      g->single.set_schema_version("vigil.api/v1");
      g->batch.set_schema_version("vigil.api/v1");
      clients_.push_back(std::move(g));
    }
  }

  void Run(const std::atomic<bool>& go, const std::atomic<bool>& stop) {
    while (!go.load()) std::this_thread::yield();
    for (auto& c : clients_) Start(*c);
    size_t outstanding = clients_.size();
    while (outstanding > 0) {
      void* tag = nullptr;
      bool ok = false;
      const auto next = cq_.AsyncNext(&tag, &ok, std::chrono::system_clock::now() +
                                                     std::chrono::milliseconds(100));
      if (next != grpc::CompletionQueue::GOT_EVENT) continue;
      GrpcClient& c = *static_cast<GrpcClient*>(tag);
      const double us = MicrosSince(c.t0);
      if (!ok || !c.status.ok()) {
        tally_->Error("gRPC " + (ok ? c.status.error_message() : std::string("call failed")));
      } else {
        CountGrpcAnswer(o_, us, c.one, c.many, tally_);
      }
      if (stop.load()) {
        --outstanding;
      } else {
        Start(c);
      }
    }
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }

 private:
  void Start(GrpcClient& c) {
    std::vector<int32_t> calls;
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token_.empty()) c.ctx->AddMetadata("authorization", "Bearer " + token_);
    c.status = grpc::Status();
    if (o_.batch > 0) {
      c.batch.clear_items();
      for (int k = 0; k < o_.batch; ++k) FillSingle(o_, c.id, &c.n, &calls, c.batch.add_items());
      c.t0 = Clock::now();
      c.many_call = c.stub->AsyncScoreBatch(c.ctx.get(), c.batch, &cq_);
      c.many_call->Finish(&c.many, &c.status, &c);
    } else {
      FillSingle(o_, c.id, &c.n, &calls, &c.single);
      c.t0 = Clock::now();
      c.one_call = c.stub->AsyncScore(c.ctx.get(), c.single, &cq_);
      c.one_call->Finish(&c.one, &c.status, &c);
    }
  }

  const LoadOptions& o_;
  const std::string token_;
  Tally* tally_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<GrpcClient>> clients_;
};


// --- event-driven: gRPC framed by api_load over nghttp2 (--mode h2) ----------------------

// One client: its own TCP connection and HTTP/2 session, one stream (call) at a time.
struct H2Client {
  int id = 0;
  uint64_t n = 0;
  int fd = -1;
  nghttp2_session* session = nullptr;
  std::string request;  // the framed message of the call being sent
  size_t request_sent = 0;
  std::string out;  // bytes of the session's frames not yet taken by the socket
  size_t out_sent = 0;
  std::string answer;  // the call's DATA, joined
  int32_t stream = -1;
  int http_status = 0;
  int grpc_status = -1;
  std::string grpc_message;
  bool busy = false;      // a call is outstanding
  bool done = false;      // its stream closed; Finish() not yet run
  uint32_t reset = 0;     // the stream's error code when it closed (0: none)
  bool oversize = false;  // the answer passed kMaxGrpcAnswer (api_load reset the stream)
  bool want_out = false;  // registered for EPOLLOUT (nghttp2 has bytes the socket did not take)
  Clock::time_point t0;
  std::vector<int32_t> calls;
  vigil::v1::ScoreRequest single;
  vigil::v1::ScoreBatchRequest batch;
  vigil::v1::ScoreResponse one;
  vigil::v1::ScoreBatchResponse many;
};

constexpr size_t kMaxGrpcAnswer = 64 << 20;

int H2Header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto& c = *static_cast<H2Client*>(user);
  if (frame->hd.stream_id != c.stream) return 0;
  const std::string_view k(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  auto number = [&v](int* out) {
    int x = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    *out = ec == std::errc() && end == v.data() + v.size() ? x : -2;  // -2: not a number
  };
  if (k == ":status") number(&c.http_status);
  if (k == "grpc-status") number(&c.grpc_status);
  if (k == "grpc-message") c.grpc_message = std::string(v.substr(0, 512));
  return 0;
}

int H2Data(nghttp2_session* session, uint8_t, int32_t stream, const uint8_t* data, size_t len,
           void* user) {
  auto& c = *static_cast<H2Client*>(user);
  if (stream != c.stream) return 0;
  if (c.answer.size() + len > kMaxGrpcAnswer) {
    c.oversize = true;
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream, NGHTTP2_CANCEL);
    return 0;
  }
  c.answer.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Closed(nghttp2_session*, int32_t stream, uint32_t error_code, void* user) {
  auto& c = *static_cast<H2Client*>(user);
  if (stream != c.stream) return 0;
  c.done = true;
  c.reset = error_code;
  return 0;
}

ssize_t H2Body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
               nghttp2_data_source* source, void*) {
  auto& c = *static_cast<H2Client*>(source->ptr);
  const size_t n = std::min(length, c.request.size() - c.request_sent);
  std::memcpy(buf, c.request.data() + c.request_sent, n);
  c.request_sent += n;
  if (c.request_sent == c.request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

class H2EventLoop : public EpollClients<H2Client> {
 public:
  H2EventLoop(const LoadOptions& o, const std::string& token, const std::vector<int>& clients,
              Tally* t)
      : EpollClients(o, clients, t) {
    nghttp2_session_callbacks_new(&callbacks_);
    nghttp2_session_callbacks_set_on_header_callback(callbacks_, H2Header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_, H2Data);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_, H2Closed);
    authority_ = o.grpc_target;
    path_ = o.batch > 0 ? "/vigil.v1.Inference/ScoreBatch" : "/vigil.v1.Inference/Score";
    if (!token.empty()) bearer_ = "Bearer " + token;
    for (auto& c : conns_) {
      c->single.set_schema_version("vigil.api/v1");
      c->batch.set_schema_version("vigil.api/v1");
    }
  }
  ~H2EventLoop() {
    for (auto& c : conns_) {
      if (c->session != nullptr) nghttp2_session_del(c->session);
    }
    nghttp2_session_callbacks_del(callbacks_);
  }

  // Connects every client; false (with the tally's error) when one cannot connect.
  bool Open() {
    return OpenAll([this](H2Client& c) { return Reconnect(c); });
  }

  void Run(const std::atomic<bool>& go, const std::atomic<bool>& stop) {
    while (!go.load()) std::this_thread::yield();
    for (auto& c : conns_) {
      Start(*c);
      if (!Flush(*c) && !Broken(*c)) return;
    }
    Loop(stop, [this](H2Client& c, uint32_t events) {
      bool ok = true;
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ok = Read(c);
      if (ok && c.done) Finish(c);
      if (ok && !c.busy && !stopping_) Start(c);
      if (ok) ok = Flush(c);
      return ok || Broken(c);
    });
  }

 private:
  // A new connection with a new HTTP/2 session (the old one's, if any, dropped).
  bool Reconnect(H2Client& c) {
    if (c.session != nullptr) nghttp2_session_del(c.session);
    c.session = nullptr;
    c.out.clear();
    c.out_sent = 0;
    if (!Connect(c)) return false;
    // No server push; a window large enough that a batch's answer needs no WINDOW_UPDATE.
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    if (const int rv = nghttp2_session_client_new(&c.session, callbacks_, &c);
        rv != 0 || nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, 2) != 0) {
      tally_->Error(std::string("nghttp2: cannot start a session: ") + nghttp2_strerror(rv));
      return false;
    }
    return true;
  }

  // A connection that failed: its call (if any) counted as an error; reconnected. False when
  // it cannot be reopened (the loop ends).
  bool Broken(H2Client& c) {
    if (c.done) {
      Finish(c);  // answered before the connection went
    } else if (c.busy) {
      tally_->Error("connection to " + o_.grpc_target + " failed during a call");
    }
    c.busy = c.done = false;
    if (!Reconnect(c)) return false;
    if (!stopping_) Start(c);
    return Flush(c);
  }

  void Start(H2Client& c) {
    if (o_.batch > 0) {
      c.batch.clear_items();
      for (int k = 0; k < o_.batch; ++k) FillSingle(o_, c.id, &c.n, &c.calls, c.batch.add_items());
      c.request = vigil::bench::FrameGrpcMessage(c.batch.SerializeAsString());
    } else {
      FillSingle(o_, c.id, &c.n, &c.calls, &c.single);
      c.request = vigil::bench::FrameGrpcMessage(c.single.SerializeAsString());
    }
    c.request_sent = 0;
    c.answer.clear();
    c.http_status = 0;
    c.grpc_status = -1;
    c.grpc_message.clear();
    c.done = false;
    c.reset = 0;
    c.oversize = false;
    auto nv = [](const std::string_view& k, const std::string_view& v) {
      return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                        reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(),
                        v.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    };
    nghttp2_nv headers[8] = {nv(":method", "POST"),
                             nv(":scheme", "http"),
                             nv(":path", path_),
                             nv(":authority", authority_),
                             nv("content-type", "application/grpc"),
                             nv("te", "trailers"),
                             nv("grpc-timeout", "10S"),
                             nv("authorization", bearer_)};
    nghttp2_data_provider body{};
    body.source.ptr = &c;
    body.read_callback = H2Body;
    c.t0 = Clock::now();
    c.stream = nghttp2_submit_request(c.session, nullptr, headers, bearer_.empty() ? 7 : 8,
                                      &body, nullptr);
    c.busy = true;
    if (c.stream < 0) {  // no stream IDs left on this connection, or out of memory
      c.done = true;
      c.reset = NGHTTP2_REFUSED_STREAM;
    }
  }

  // Reads what the socket holds into the session. False when the connection is gone.
  bool Read(H2Client& c) {
    uint8_t buf[65536];
    for (;;) {
      const ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (r <= 0) return false;
      if (nghttp2_session_mem_recv(c.session, buf, static_cast<size_t>(r)) < 0) return false;
      // A short read emptied the socket (epoll is level-triggered: it reports what comes
      // later), so no second recv() only to be told EAGAIN.
      if (static_cast<size_t>(r) < sizeof(buf)) return true;
    }
  }

  // Sends what the session has queued, gathered into one send() (nghttp2 would otherwise write
  // each frame on its own: HEADERS and DATA of a call in two system calls); registers for
  // EPOLLOUT while the socket is full. False when the connection is gone or is being closed.
  bool Flush(H2Client& c) {
    if (c.out_sent == c.out.size()) {
      c.out.clear();
      c.out_sent = 0;
      for (;;) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(c.session, &data);
        if (n < 0) return false;
        if (n == 0) break;
        c.out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      }
    }
    while (c.out_sent < c.out.size()) {
      const ssize_t w =
          ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (w <= 0) return false;
      c.out_sent += static_cast<size_t>(w);
    }
    const bool want_out = c.out_sent < c.out.size();
    if (!want_out && !nghttp2_session_want_read(c.session) &&
        !nghttp2_session_want_write(c.session)) {
      return false;  // GOAWAY: the server closes the connection
    }
    return WantOut(c, want_out);
  }

  // The call's stream has closed: counts its answer or its error.
  void Finish(H2Client& c) {
    const double us = MicrosSince(c.t0);
    c.busy = c.done = false;
    c.stream = -1;
    std::string_view message;
    std::string why;
    if (c.oversize) {
      tally_->Error("answer: more than " + std::to_string(kMaxGrpcAnswer >> 20) + " MiB");
    } else if (c.reset != 0) {
      tally_->Error(std::string("stream reset: ") + nghttp2_http2_strerror(c.reset));
    } else if (c.http_status != 200) {
      tally_->Error("HTTP status " + std::to_string(c.http_status));
    } else if (c.grpc_status != 0) {
      tally_->Error("gRPC status " + std::to_string(c.grpc_status) + ": " + c.grpc_message);
    } else if (!vigil::bench::UnframeGrpcMessage(c.answer, &message, &why)) {
      tally_->Error(why);
    } else if (o_.batch > 0 ? !c.many.ParseFromArray(message.data(), int(message.size()))
                            : !c.one.ParseFromArray(message.data(), int(message.size()))) {
      tally_->Error("answer: not a valid protobuf message");
    } else {
      CountGrpcAnswer(o_, us, c.one, c.many, tally_);
    }
  }

  nghttp2_session_callbacks* callbacks_ = nullptr;
  std::string authority_, path_, bearer_;
};

}  // namespace

int main(int argc, char** argv) {
  // As in the server (src/api/grpc_api.cc): Debian's Abseil checks every absl::Mutex lock of
  // gRPC's client for deadlocks through one process-wide spin lock; the load generator shares
  // the machine's cores with the server, so it should burn no more CPU per call than it must.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  LoadOptions o;
  std::string message;
  if (int code = vigil::bench::ParseLoadArgs(argc, argv, &o, &message); code >= 0) {
    std::fputs(message.c_str(), code == 0 ? stdout : stderr);
    return code;
  }
  std::string token;
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file);
    if (!in || !std::getline(in, token) || token.empty()) {
      std::fprintf(stderr, "api_load: error: --token-file \"%s\": cannot read a token line\n",
                   o.token_file.c_str());
      return 2;
    }
  }
  const bool http = o.grpc_target.empty();
  std::atomic<bool> go{false}, stop{false};
  // Thread mode: one tally per client; event mode: one per thread.
  const int workers = o.mode == LoadMode::kThreads ? o.clients : o.threads;
  std::vector<Tally> tallies(static_cast<size_t>(workers));
  std::vector<std::thread> threads;
  if (o.mode == LoadMode::kThreads) {
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        Tally* t = &tallies[static_cast<size_t>(c)];
        if (http) {
          RunHttpThread(o, c, token, go, stop, t);
        } else {
          RunGrpcThread(o, c, token, go, stop, t);
        }
      });
    }
  } else {
    // Clients are dealt to the threads round-robin; each thread connects its own first.
    std::vector<std::vector<int>> dealt(static_cast<size_t>(o.threads));
    for (int c = 0; c < o.clients; ++c) dealt[static_cast<size_t>(c % o.threads)].push_back(c);
    std::atomic<int> ready{0};
    std::atomic<bool> failed{false};
    for (int w = 0; w < o.threads; ++w) {
      threads.emplace_back([&, w] {
        Tally* t = &tallies[static_cast<size_t>(w)];
        const auto& mine = dealt[static_cast<size_t>(w)];
        if (http) {
          HttpEventLoop loop(o, token, mine, t);
          const bool opened = loop.Open();
          if (!opened) failed = true;
          ++ready;
          if (opened) loop.Run(go, stop);
        } else if (o.mode == LoadMode::kH2) {
          H2EventLoop loop(o, token, mine, t);
          const bool opened = loop.Open();
          if (!opened) failed = true;
          ++ready;
          if (opened) loop.Run(go, stop);
        } else {
          GrpcEventLoop loop(o, token, mine, t);
          ++ready;
          loop.Run(go, stop);
        }
      });
    }
    while (ready.load() < o.threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (failed) stop = true;
  }
  const auto start = Clock::now();
  go = true;
  if (!stop) std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  Tally sum;
  for (Tally& t : tallies) {
    all.insert(all.end(), t.latency_us.begin(), t.latency_us.end());
    sum.scores += t.scores;
    sum.fallbacks += t.fallbacks;
    sum.cached += t.cached;
    sum.errors += t.errors;
    if (sum.first_error.empty()) sum.first_error = t.first_error;
  }
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  const double cpu_s = double(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                       double(self.ru_utime.tv_usec + self.ru_stime.tv_usec) * 1e-6;
  const auto switches = static_cast<uint64_t>(self.ru_nvcsw + self.ru_nivcsw);
  std::sort(all.begin(), all.end());
  auto q = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  const std::string transport = http ? "http" : "grpc";
  const std::string mode = o.mode == LoadMode::kThreads ? "threads"
                           : o.mode == LoadMode::kH2    ? "h2"
                                                        : "events";
  if (o.json) {
    nlohmann::json j = {{"transport", transport},
                        {"mode", mode},
                        {"threads", workers},
                        {"clients", o.clients},
                        {"batch", o.batch},
                        {"window", o.window},
                        {"vary", o.vary},
                        {"calls", all.size()},
                        {"errors", sum.errors},
                        {"calls_per_s", double(all.size()) / elapsed},
                        {"scores", sum.scores},
                        {"scores_per_s", double(sum.scores) / elapsed},
                        {"fallbacks", sum.fallbacks},
                        {"cached", sum.cached},
                        {"p50_us", q(0.5)},
                        {"p95_us", q(0.95)},
                        {"p99_us", q(0.99)},
                        {"cpu_s", cpu_s},
                        {"context_switches", switches}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "%-4s %-7s threads %3d clients %3d batch %3d window %d %-4s: %7zu calls %6.0f calls/s "
        "%7.0f scores/s, latency us P50 %6.0f P95 %6.0f P99 %6.0f; %llu errors, %llu "
        "fallbacks, %llu cached; load generator CPU %.2f s, %llu context switches\n",
        transport.c_str(), mode.c_str(), workers, o.clients, o.batch, o.window,
        o.vary ? "vary" : "same", all.size(), double(all.size()) / elapsed,
        double(sum.scores) / elapsed, q(0.5), q(0.95), q(0.99),
        static_cast<unsigned long long>(sum.errors), static_cast<unsigned long long>(sum.fallbacks),
        static_cast<unsigned long long>(sum.cached), cpu_s,
        static_cast<unsigned long long>(switches));
  }
  if (sum.errors > 0) std::fprintf(stderr, "api_load: first error: %s\n", sum.first_error.c_str());
  return sum.errors == 0 ? 0 : 1;
}
