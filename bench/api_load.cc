// Load generator for `vigil serve` (docs/api.md, docs/benchmarks.md): N client threads, each
// with its own connection (HTTP keep-alive, or its own gRPC channel), send score requests for a
// fixed time; prints calls/s, scores/s and the call latency P50/P95/P99. Run it from another
// process than the server (bench/api/run.sh).
//
//   api_load --url http://127.0.0.1:8080 --clients 8 --seconds 5 [--vary] [--token-file T]
//   api_load --grpc 127.0.0.1:9090 --clients 8 --batch 64 --vary
//
// --vary changes the request each time (verdict-cache misses: the model scores every item);
// without it every request is the same (cache hits after the first). --batch N sends
// score:batch / Inference.ScoreBatch calls of N items (0: single scores). --json prints the
// figures as one JSON object, among them the load generator's own CPU time and context
// switches (getrusage), so that its share of a machine it shares with the server is known.

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "vigil/v1/api.grpc.pb.h"

namespace {

struct Options {
  std::string url, grpc_target, token_file;
  int clients = 8;
  double seconds = 5;
  int window = 64;
  int batch = 0;
  bool vary = false;
  bool json = false;
};

// Each client's tally.
struct Tally {
  std::vector<double> latency_us;  // one per successful call
  uint64_t scores = 0, fallbacks = 0, cached = 0, errors = 0;
  std::string first_error;
};

// The system calls of request `n` of client `c`: a fixed pattern, whose first six calls carry
// a number unique to (run, c, n) when `vary` is set, so that no two requests of this run, nor
// of an earlier run against the same server, share a verdict-cache entry.
void Calls(const Options& o, int c, uint64_t n, std::vector<int32_t>* out) {
  static const uint64_t run_salt = std::random_device{}() & 0xffff;
  out->resize(static_cast<size_t>(o.window));
  for (int i = 0; i < o.window; ++i) (*out)[static_cast<size_t>(i)] = (i * 7 + 3) % 200;
  if (o.vary) {
    const uint64_t id = (run_salt << 32) | ((n << 12) + static_cast<uint64_t>(c));
    for (int i = 0; i < std::min(6, o.window); ++i) {
      (*out)[static_cast<size_t>(i)] = static_cast<int32_t>((id >> (8 * i)) & 0xff);
    }
  }
}

void RunHttp(const Options& o, int c, const std::string& token, const std::atomic<bool>& go,
             const std::atomic<bool>& stop, Tally* t) {
  httplib::Client cli(o.url);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  const char* route = o.batch > 0 ? "/v1/score:batch" : "/v1/score";
  const int items = std::max(1, o.batch);
  std::vector<int32_t> calls;
  uint64_t n = 0;
  while (!go.load()) std::this_thread::yield();
  while (!stop.load()) {
    // A single score's fields sit in the top object; a batch's in its items.
    std::string body = R"({"schema_version":"vigil.api/v1",)";
    if (o.batch > 0) body += R"("items":[)";
    for (int k = 0; k < items; ++k) {
      Calls(o, c, n++, &calls);
      if (o.batch > 0) body += '{';
      body += R"("subject":"bench","arch":"i386","syscalls":[)";
      for (size_t i = 0; i < calls.size(); ++i) {
        body += std::to_string(calls[i]);
        if (i + 1 < calls.size()) body += ',';
      }
      body += ']';
      if (o.batch > 0) body += k + 1 < items ? "}," : "}]";
    }
    body += '}';
    const auto t0 = std::chrono::steady_clock::now();
    auto res = cli.Post(route, h, body, "application/json");
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (!res || res->status != 200) {
      if (t->errors++ == 0) {
        t->first_error = res ? "HTTP " + std::to_string(res->status) + ": " + res->body
                             : httplib::to_string(res.error());
      }
      continue;
    }
    t->latency_us.push_back(us);
    t->scores += static_cast<uint64_t>(items);
    for (size_t at = 0; (at = res->body.find("\"fallback\":true", at)) != std::string::npos; ++at) {
      ++t->fallbacks;
    }
    for (size_t at = 0; (at = res->body.find("\"cached\":true", at)) != std::string::npos; ++at) {
      ++t->cached;
    }
  }
}

void Count(const vigil::v1::Score& s, Tally* t) {
  ++t->scores;
  t->fallbacks += s.fallback() ? 1 : 0;
  t->cached += s.cached() ? 1 : 0;
}

void RunGrpc(const Options& o, int c, const std::string& token, const std::atomic<bool>& go,
             const std::atomic<bool>& stop, Tally* t) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own per client
  auto stub = vigil::v1::Inference::NewStub(
      grpc::CreateCustomChannel(o.grpc_target, grpc::InsecureChannelCredentials(), args));
  std::vector<int32_t> calls;
  uint64_t n = 0;
  vigil::v1::ScoreRequest single;
  vigil::v1::ScoreBatchRequest batch;
  single.set_schema_version("vigil.api/v1");
  batch.set_schema_version("vigil.api/v1");
  auto fill = [&](vigil::v1::ScoreRequest* r) {
    Calls(o, c, n++, &calls);
    r->set_subject("bench");
    r->set_arch("i386");
    r->mutable_syscalls()->Assign(calls.begin(), calls.end());
  };
  while (!go.load()) std::this_thread::yield();
  while (!stop.load()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    grpc::Status s;
    vigil::v1::ScoreResponse one;
    vigil::v1::ScoreBatchResponse many;
    const auto t0 = std::chrono::steady_clock::now();
    if (o.batch > 0) {
      batch.clear_items();
      for (int k = 0; k < o.batch; ++k) fill(batch.add_items());
      s = stub->ScoreBatch(&ctx, batch, &many);
    } else {
      fill(&single);
      s = stub->Score(&ctx, single, &one);
    }
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (!s.ok()) {
      if (t->errors++ == 0) t->first_error = "gRPC " + s.error_message();
      continue;
    }
    t->latency_us.push_back(us);
    if (o.batch > 0) {
      for (const auto& r : many.results()) Count(r, t);
    } else {
      Count(one.result(), t);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generator for vigil serve's score APIs (HTTP/JSON or gRPC)"};
  Options o;
  auto* url = app.add_option("--url", o.url, "http://host:port of vigil serve's HTTP API");
  auto* grpc_target =
      app.add_option("--grpc", o.grpc_target, "host:port of vigil serve's gRPC API (no TLS)");
  url->excludes(grpc_target);
  app.add_option("--clients", o.clients, "Concurrent clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--seconds", o.seconds, "Duration")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--window", o.window, "System calls per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--batch", o.batch, "Items per score:batch call (0: single scores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--token-file", o.token_file, "Bearer token file");
  app.add_flag("--vary", o.vary, "A different request each time (verdict-cache misses)");
  app.add_flag("--json", o.json, "Print the figures as one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (o.url.empty() == o.grpc_target.empty()) {
    std::fprintf(stderr, "api_load: error: give --url or --grpc\n");
    return 2;
  }

  std::string token;
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file);
    std::getline(in, token);
  }
  std::atomic<bool> go{false}, stop{false};
  std::vector<Tally> tallies(static_cast<size_t>(o.clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      Tally* t = &tallies[static_cast<size_t>(c)];
      if (o.grpc_target.empty()) {
        RunHttp(o, c, token, go, stop, t);
      } else {
        RunGrpc(o, c, token, go, stop, t);
      }
    });
  }
  const auto start = std::chrono::steady_clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  const std::string transport = o.grpc_target.empty() ? "http" : "grpc";
  if (o.json) {
    nlohmann::json j = {{"transport", transport},
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
        "%-4s clients %3d batch %3d window %d %-4s: %7zu calls %6.0f calls/s %7.0f "
        "scores/s, latency us P50 %6.0f P95 %6.0f P99 %6.0f; %llu errors, %llu fallbacks, "
        "%llu cached; load generator CPU %.2f s, %llu context switches\n",
        transport.c_str(), o.clients, o.batch, o.window, o.vary ? "vary" : "same", all.size(),
        double(all.size()) / elapsed, double(sum.scores) / elapsed, q(0.5), q(0.95), q(0.99),
        static_cast<unsigned long long>(sum.errors), static_cast<unsigned long long>(sum.fallbacks),
        static_cast<unsigned long long>(sum.cached), cpu_s,
        static_cast<unsigned long long>(switches));
  }
  if (sum.errors > 0) std::fprintf(stderr, "api_load: first error: %s\n", sum.first_error.c_str());
  return sum.errors == 0 ? 0 : 1;
}
