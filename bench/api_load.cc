// Load generator for `vigil serve`'s HTTP API (docs/api.md, docs/benchmarks.md): N client
// threads, each with one keep-alive connection, POST a score request for a fixed time; prints
// requests/s and latency P50/P95/P99. Run from another process than the server (bench/api/run.sh).
//
//   api_load --url http://127.0.0.1:8080 --clients 8 --seconds 5 [--vary] [--token-file T]
//
// --vary changes the request each time (cache misses); without it every request is the same
// (cache hits after the first).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>

int main(int argc, char** argv) {
  CLI::App app{"Load generator for vigil serve's POST /v1/score"};
  std::string url, token_file, route = "/v1/score";
  int clients = 8;
  double seconds = 5;
  bool vary = false;
  int window = 64;
  app.add_option("--url", url, "http://host:port of vigil serve")->required();
  app.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  app.add_option("--seconds", seconds, "Duration")->capture_default_str();
  app.add_option("--window", window, "System calls per request")->capture_default_str();
  app.add_option("--token-file", token_file, "Bearer token file");
  app.add_flag("--vary", vary, "A different request each time (verdict-cache misses)");
  CLI11_PARSE(app, argc, argv);

  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, token);
  }
  std::atomic<bool> go{false}, stop{false};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli(url);
      cli.set_keep_alive(true);
      httplib::Headers h;
      if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
      std::string prefix =
          R"({"schema_version":"vigil.api/v1","subject":"bench","arch":"i386","syscalls":[)";
      uint64_t n = 0;
      while (!go.load()) std::this_thread::yield();
      while (!stop.load()) {
        std::string body = prefix;
        for (int i = 0; i < window; ++i) {
          int nr = (i * 7 + 3) % 200;
          if (vary && i < 3) nr = static_cast<int>((n >> (8 * i)) & 0xff) + (c << 8) % 300;
          body += std::to_string(nr % 340);
          body += i + 1 < window ? "," : "]}";
        }
        ++n;
        const auto t0 = std::chrono::steady_clock::now();
        auto res = cli.Post(route, h, body, "application/json");
        const double us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count();
        if (!res || res->status != 200) {
          errors.fetch_add(1);
          continue;
        }
        lat[static_cast<size_t>(c)].push_back(us);
      }
    });
  }
  const auto start = std::chrono::steady_clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto q = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf("clients %d window %d %s: %zu ok, %llu errors, %.0f req/s, latency us P50 %.0f "
              "P95 %.0f P99 %.0f\n",
              clients, window, vary ? "vary" : "same", all.size(),
              static_cast<unsigned long long>(errors.load()), double(all.size()) / elapsed, q(0.5),
              q(0.95), q(0.99));
  return errors.load() == 0 ? 0 : 1;
}
