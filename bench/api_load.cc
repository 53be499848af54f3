// Load generator for `vigil serve` (docs/api.md, docs/benchmarks.md): N clients, each with its
// own connection (HTTP keep-alive, or its own gRPC channel) and one request outstanding at a
// time (closed loop), send score requests for a fixed time; prints calls/s, scores/s and the
// call latency P50/P95/P99. Run it from another process than the server (bench/api/run.sh).
//
//   api_load --url http://127.0.0.1:8080 --clients 8 --seconds 5 [--vary] [--token-file T]
//   api_load --grpc 127.0.0.1:9090 --clients 8 --batch 64 --vary
//   api_load --grpc 127.0.0.1:9090 --clients 8 --mode threads
//
// --mode events (default) multiplexes the clients' connections on --threads threads (default
// 1): epoll over non-blocking keep-alive HTTP connections, or gRPC's asynchronous completion
// queue with one channel (and connection) per client, as wrk and ghz do. --mode threads runs one
// OS thread per client, each blocked in its call (httplib's client, gRPC's synchronous stub):
// on a 2-core machine those threads queue for CPU beside the server's, which the latency shows.
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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
    t->latency_us.push_back(us);
    if (o.batch > 0) {
      for (const auto& r : many.results()) CountScore(r, t);
    } else {
      CountScore(one.result(), t);
    }
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

// A connected, non-blocking TCP socket with TCP_NODELAY; -1 with `error` set on failure.
int Connect(const LoadOptions& o, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(o.http_port);
  if (int rc = getaddrinfo(o.http_host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *error = "resolve " + o.http_host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      *error = "connect " + o.url + ": " + std::strerror(errno);
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

class HttpEventLoop {
 public:
  HttpEventLoop(const LoadOptions& o, std::string token, std::vector<int> clients, Tally* t)
      : o_(o), token_(std::move(token)), tally_(t) {
    for (int c : clients) {
      conns_.push_back(std::make_unique<HttpConn>());
      conns_.back()->id = c;
    }
  }
  ~HttpEventLoop() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
    }
    if (ep_ >= 0) close(ep_);
  }

  // Connects every client; false (with the tally's error) when one cannot connect.
  bool Open() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      tally_->Error(std::string("epoll_create1: ") + std::strerror(errno));
      return false;
    }
    for (auto& c : conns_) {
      if (!Reconnect(*c)) return false;
    }
    return true;
  }

  void Run(const std::atomic<bool>& go, const std::atomic<bool>& stop) {
    while (!go.load()) std::this_thread::yield();
    for (auto& c : conns_) Send(*c);
    std::vector<epoll_event> events(conns_.size());
    size_t busy = conns_.size();
    Clock::time_point give_up = Clock::time_point::max();
    while (busy > 0) {
      if (!stopping_ && stop.load()) {
        stopping_ = true;
        give_up = Clock::now() + std::chrono::seconds(10);  // the calls' timeout, as gRPC's
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
        HttpConn& c = *static_cast<HttpConn*>(events[static_cast<size_t>(i)].data.ptr);
        if (events[static_cast<size_t>(i)].events & EPOLLOUT) Write(c);
        if (events[static_cast<size_t>(i)].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
          if (!Read(c)) return;
        }
      }
      busy = 0;
      for (auto& c : conns_) busy += c->busy ? 1 : 0;
    }
  }

 private:
  bool Reconnect(HttpConn& c) {
    if (c.fd >= 0) close(c.fd);
    c.reader = vigil::bench::HttpAnswerReader();
    c.want_out = false;
    std::string error;
    c.fd = Connect(o_, &error);
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
    const bool want_out = c.sent < c.out.size();
    if (want_out == c.want_out) return;  // no epoll_ctl per request while writes complete
    c.want_out = want_out;
    epoll_event ev{};
    ev.events = want_out ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
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

  const LoadOptions& o_;
  const std::string token_;
  Tally* tally_;
  std::vector<std::unique_ptr<HttpConn>> conns_;
  int ep_ = -1;
  bool stopping_ = false;
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
        tally_->latency_us.push_back(us);
        if (o_.batch > 0) {
          for (const auto& r : c.many.results()) CountScore(r, tally_);
        } else {
          CountScore(c.one.result(), tally_);
        }
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
  const std::string mode = o.mode == LoadMode::kThreads ? "threads" : "events";
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
