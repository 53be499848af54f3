// Hub ingest through NATS JetStream into the hub's store (docs/benchmarks.md; run by
// bench/hub/nats_ingest.sh and nats_ab.sh, which start a throwaway nats-server and PostgreSQL).
//
// What one "event" is here: one finding, the unit the agent's nats sink publishes (an OCSF
// Detection Finding: an anomalous model verdict or a policy decision; the agent sends no raw
// system-call events over NATS, each verdict summarises its window of them) and the unit the
// hub stores (one alert row, joined to an incident). The agent's sink packs up to 500 findings
// (batch_findings) into one JetStream message; --findings sets how many the bench packs.
//
// A second process (forked before anything connects, standing in for the agents) publishes
// --messages ingest messages of --findings findings each (OCSF verdicts as the agent's nats sink
// builds them) to the per-host subjects <prefix>.<host>.findings of --hosts hosts from
// --publishers threads, waiting for each PubAck as the agent does; in this process --hubs
// hub::NatsConsumer instances share the durable consumer, each with its own store (PostgreSQL:
// its own connection pool, as separate hub processes have; SQLite: one hub). Prints events/s
// sustained (first publish to last commit), loss (published findings minus stored alerts, must
// be 0), duplicates, the P50/P99 time from a message's publish to the commit of its findings
// and incidents, and the CPU per event of each process: the hub (this process: consumers,
// parsing, store client), the publishers (the agents' stand-in) and, with --server-pid, the
// PostgreSQL backends (nats-server's is added by the scripts).
// A plain driver, built by name: cmake --build --preset release --target hub_nats_bench

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "hub/correlate.h"
#include "hub/nats_consumer.h"
#include "hub/store.h"
#include "hub/store_location.h"
#include "hub_findings.h"
#include "pipeline/jetstream.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// CPU seconds (user + system) of the children of process `parent` (PostgreSQL's postmaster: its
// backends); 0 when unreadable.
double ChildrenCpuSeconds(int parent) {
  if (parent <= 0) return 0;
  const std::string p = std::to_string(parent);
  std::ifstream children("/proc/" + p + "/task/" + p + "/children");
  double ticks = 0;
  for (int child; children >> child;) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string f;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i == 14 || i == 15) ticks += std::stod(f);  // utime, stime
    }
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double CpuSeconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return CpuSeconds(u);
}

int64_t Nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Clock::time_point FromNanos(int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// The hub's store with the wall time its IngestBatch calls took (the transactions): against
// the run's wall time, how busy the database side kept (a hub that parses while it stores
// keeps it busier).
class TimedStore final : public hub::CorrelatingStore {
 public:
  explicit TimedStore(hub::Store& inner) : CorrelatingStore(inner) {}
  core::Result<std::vector<hub::IngestResult>> IngestBatch(
      const std::vector<hub::IngestMessage>& ms, int64_t now_ms) override {
    const auto t0 = Clock::now();
    auto r = CorrelatingStore::IngestBatch(ms, now_ms);
    busy_ns_.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    return r;
  }
  double busy_seconds() const { return static_cast<double>(busy_ns_.load()) / 1e9; }

 private:
  std::atomic<int64_t> busy_ns_{0};
};

// What the publishers' process shares with the hubs' (an anonymous shared mapping made before
// the fork; steady_clock is CLOCK_MONOTONIC, one clock for both processes). The publishers
// write; the hubs' side reads `published_ns` once the publishers have exited.
struct Shared {
  std::atomic<int64_t> start_ns{0};  // set before the publishers are told to go
  std::atomic<int64_t> end_ns{0};    // the last PubAck
  std::atomic<int> errors{0};
  int64_t published_ns[1];  // --messages of them (the mapping is sized for it)
};

// The publishers' process: waits for a byte on `go` (EOF: the hubs' side gave up), then
// publishes message t, t + P, t + 2P, ... from thread t, paced by `rate`, and exits.
[[noreturn]] void Publish(int go, Shared* shared, const pipeline::JetStreamOptions& js,
                          const std::vector<std::string>& subjects,
                          const std::vector<std::string>& bodies,
                          const std::vector<std::string>& ids, int publishers, int findings,
                          double rate) {
  char byte = 0;
  if (read(go, &byte, 1) != 1) _exit(3);
  const Clock::time_point start = FromNanos(shared->start_ns.load());
  const int messages = static_cast<int>(bodies.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < publishers; ++t) {
    threads.emplace_back([&, t] {
      auto conn = pipeline::JetStreamConnection::Connect(js);
      if (!conn.has_value()) {
        std::fprintf(stderr, "%s\n", conn.error().ToString().c_str());
        shared->errors.fetch_add(1);
        return;
      }
      for (int m = t; m < messages; m += publishers) {
        if (rate > 0) {
          std::this_thread::sleep_until(
              start + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(double(m) * findings / rate)));
        }
        shared->published_ns[m] = Nanos(Clock::now());
        for (int attempt = 0;; ++attempt) {
          auto ack = (*conn)->Publish(subjects[m], bodies[m], ids[m]);
          if (ack.has_value()) break;
          if (attempt == 5) {
            std::fprintf(stderr, "%s\n", ack.error().ToString().c_str());
            shared->errors.fetch_add(1);
            break;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  shared->end_ns.store(Nanos(Clock::now()));
  std::fflush(stderr);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("hub ingest through NATS JetStream into the hub's store");
  std::string nats_url, location, stream, prefix;
  int messages = 2000, findings = 50, hosts = 8, hubs = 1, batch = 64, publishers = 2;
  int processes = 500, pool = 4, server_pid = 0;
  double rate = 0, window = 5;
  app.add_option("--nats", nats_url, "NATS server URL (nats://HOST:PORT)")->required();
  app.add_option("--store", location,
                 "Store: a SQLite path or a postgres:// URI of an empty database (default: a "
                 "SQLite file in a temporary folder)");
  app.add_option("--stream", stream, "JetStream stream (default: BENCH<pid>, created)");
  app.add_option("--prefix", prefix, "Subject prefix (default: bench<pid>)");
  app.add_option("--messages", messages, "Messages published")->capture_default_str();
  app.add_option("--findings", findings, "Findings per message (1..10000)")->capture_default_str();
  app.add_option("--hosts", hosts, "Hosts (subjects) the messages are spread over")
      ->capture_default_str();
  app.add_option("--processes", processes,
                 "Processes per host the findings belong to (each process's findings join one "
                 "incident)")
      ->capture_default_str();
  app.add_option("--hubs", hubs, "Hub consumers sharing the durable consumer (SQLite: 1)")
      ->capture_default_str();
  app.add_option("--batch", batch, "Messages each hub fetches and stores at once (1..1000)")
      ->capture_default_str();
  app.add_option("--publishers", publishers, "Publishing threads, one connection each")
      ->capture_default_str();
  app.add_option("--rate", rate, "Findings per second published (0: as fast as the PubAcks come)")
      ->capture_default_str();
  app.add_option("--window", window,
                 "Seconds per window of the sustained rate (the events committed in each)")
      ->capture_default_str();
  app.add_option("--pool", pool, "PostgreSQL connections per hub")->capture_default_str();
  app.add_option("--server-pid", server_pid,
                 "PostgreSQL's postmaster: the CPU time of its backends is reported");
  CLI11_PARSE(app, argc, argv);
  if (messages < 1 || findings < 1 || findings > 10000 || hosts < 1 || processes < 1 || hubs < 1 ||
      hubs > 8 || publishers < 1 || publishers > 16 || rate < 0 ||
      !(window >= 0.1 && window <= 3600)) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  const bool postgres = !location.empty() && hub::IsPostgresLocation(location);
  if (!postgres) hubs = 1;
  const std::string tag = std::to_string(getpid());
  if (stream.empty()) stream = "BENCH" + tag;
  if (prefix.empty()) prefix = "bench" + tag;

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("hub_nats_bench_" + tag);
  std::filesystem::create_directories(dir);
  if (location.empty()) location = (dir / "hub.db").string();
  pipeline::JetStreamOptions js;
  js.url = nats_url;
  js.stream = stream;
  js.subject_prefix = prefix;
  js.timeout = std::chrono::milliseconds(10000);

  // Bodies first, so that only publishing and storing are timed.
  std::vector<std::string> bodies(messages), subjects(messages), ids(messages);
  for (int m = 0; m < messages; ++m) {
    const std::string host = "bench-" + std::to_string(m % hosts);
    ids[m] = "b" + std::to_string(m);
    subjects[m] = pipeline::FindingsSubject(prefix, host);
    std::string& body = bodies[m];
    body = R"({"schema_version":"vigil.hub/v1","host":")" + host + R"(","message_id":")" + ids[m] +
           R"(","findings":[)";
    for (int i = 0; i < findings; ++i) {
      const int64_t n = int64_t{m / hosts} * findings + i;  // the host's n-th finding
      body += (i ? "," : "") + bench::HubBenchFinding(host, 1000 + n % processes, n);
    }
    body += "]}";
  }

  // The publishers' process, forked before anything here connects or starts a thread.
  const size_t shared_bytes = sizeof(Shared) + sizeof(int64_t) * static_cast<size_t>(messages);
  void* mapping =
      mmap(nullptr, shared_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  Shared* shared = new (mapping) Shared;
  int go[2];
  if (pipe(go) != 0) {
    std::perror("pipe");
    return 1;
  }
  std::fflush(nullptr);
  const pid_t publisher_pid = fork();
  if (publisher_pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (publisher_pid == 0) {
    close(go[1]);
    Publish(go[0], shared, js, subjects, bodies, ids, publishers, findings, rate);
  }
  close(go[0]);

  // The hubs.
  hub::StoreOptions so;
  so.pool_size = pool;
  std::vector<std::unique_ptr<hub::Store>> stores;
  for (int h = 0; h < hubs; ++h) {
    auto store = hub::Store::Open(location, so);
    if (!store.has_value()) {
      std::fprintf(stderr, "%s\n", store.error().ToString().c_str());
      return 1;
    }
    stores.push_back(std::move(store).value());
  }
  std::vector<std::unique_ptr<TimedStore>> timed;
  for (auto& store : stores) timed.push_back(std::make_unique<TimedStore>(*store));
  std::vector<Clock::time_point> published(messages), stored_at(messages);
  std::atomic<int> settled{0}, duplicates{0};  // stored (first time), redelivered
  std::vector<std::unique_ptr<core::Registry>> registries;
  std::vector<std::unique_ptr<hub::NatsConsumer>> consumers;
  for (int h = 0; h < hubs; ++h) {
    hub::NatsConsumerOptions o;
    o.nats = js;
    o.nats.name = "bench-hub-" + std::to_string(h);
    o.consumer.durable = "bench-hub";
    o.consumer.max_ack_pending = 20000;
    o.batch = batch;
    o.fetch_wait = std::chrono::milliseconds(100);
    o.on_stored = [&](const hub::IngestMessage& msg, const hub::IngestResult& r) {
      const int seq = std::atoi(msg.message_id.c_str() + 1);
      if (r.duplicate) {
        duplicates.fetch_add(1);
      } else if (seq >= 0 && seq < messages) {
        stored_at[seq] = Clock::now();
        settled.fetch_add(1);
      }
    };
    registries.push_back(std::make_unique<core::Registry>());
    consumers.push_back(std::make_unique<hub::NatsConsumer>(o, *timed[h], core::SystemClock::Get(),
                                                            *registries.back()));
  }
  {
    auto c = pipeline::JetStreamConnection::Connect(js);
    core::Status st = c.has_value() ? (*c)->EnsureStream() : c.error();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  for (auto& c : consumers) {
    if (core::Status st = c->Start(); !st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  const std::string load_before = LoadAverage();
  const double own_cpu_before = OwnCpuSeconds(), server_cpu_before = ChildrenCpuSeconds(server_pid);

  // Go: the publishers' process starts publishing.
  const auto start = Clock::now();
  shared->start_ns.store(Nanos(start));
  if (write(go[1], "g", 1) != 1) {
    std::perror("write");
    return 1;
  }
  close(go[1]);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (settled.load() < messages && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // The publishers are done once every message is stored (or the deadline passed: stopped).
  int publisher_status = 0;
  rusage publisher_usage{};
  if (settled.load() < messages) kill(publisher_pid, SIGKILL);
  wait4(publisher_pid, &publisher_status, 0, &publisher_usage);
  const bool published_ok = WIFEXITED(publisher_status) && WEXITSTATUS(publisher_status) == 0 &&
                            shared->errors.load() == 0;
  const double publish_s =
      shared->end_ns.load() > 0
          ? std::chrono::duration<double>(FromNanos(shared->end_ns.load()) - start).count()
          : -1;
  for (int m = 0; m < messages; ++m) published[m] = FromNanos(shared->published_ns[m]);
  const Clock::time_point last = *std::max_element(stored_at.begin(), stored_at.end());
  const double seconds = std::chrono::duration<double>(last - start).count();
  const std::string load_after = LoadAverage();
  const double own_cpu = OwnCpuSeconds() - own_cpu_before;
  const double server_cpu = ChildrenCpuSeconds(server_pid) - server_cpu_before;
  for (auto& c : consumers) c->Stop();

  const int64_t alerts = stores[0]->Count("alerts").value_or(-1);
  const int64_t stored_messages = stores[0]->Count("messages").value_or(-1);
  const int64_t incidents = stores[0]->Count("incidents").value_or(-1);
  const int64_t expected = int64_t{messages} * findings;
  std::vector<double> ms;
  for (int m = 0; m < messages; ++m) {
    if (stored_at[m] >= published[m] && stored_at[m] != Clock::time_point()) {
      ms.push_back(std::chrono::duration<double, std::milli>(stored_at[m] - published[m]).count());
    }
  }
  std::sort(ms.begin(), ms.end());
  // Sustained rate, two ways (a fetch of 64 full messages commits 32 000 events at once, so
  // one-second windows would be lumpy): the rate between the commits that brought the stored
  // events to 10% and to 90% of the run's (start-up and tail left out), and the events
  // committed in each whole --window seconds from the start (the first and the last left out:
  // their median and minimum say whether the rate held over the run).
  double steady = -1, steady_s = 0;
  std::vector<double> windows;
  {
    std::vector<Clock::time_point> done;
    for (int m = 0; m < messages; ++m) {
      if (stored_at[m] != Clock::time_point()) done.push_back(stored_at[m]);
    }
    std::sort(done.begin(), done.end());
    if (done.size() >= 10) {
      const size_t lo = done.size() / 10, hi = done.size() * 9 / 10;
      steady_s = std::chrono::duration<double>(done[hi] - done[lo]).count();
      if (steady_s > 0) steady = static_cast<double>((hi - lo) * findings) / steady_s;
    }
    std::vector<int64_t> per_window;
    for (const Clock::time_point t : done) {
      const auto w = static_cast<size_t>(std::chrono::duration<double>(t - start).count() / window);
      if (per_window.size() <= w) per_window.resize(w + 1, 0);
      per_window[w] += findings;
    }
    for (size_t w = 1; w + 1 < per_window.size(); ++w) {
      windows.push_back(static_cast<double>(per_window[w]) / window);
    }
    std::sort(windows.begin(), windows.end());
  }
  auto q = [&](double p) {
    return ms.empty() ? -1.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  std::filesystem::remove_all(dir);
  // An event is one finding (see the top of this file): loss and extra alert rows are counted in
  // findings; "redelivered" are messages a hub was handed again and recognised as stored.
  const int64_t loss = std::max<int64_t>(0, expected - alerts);
  const int64_t extra = std::max<int64_t>(0, alerts - expected);
  std::printf(
      "hub nats ingest (%s, %d hub%s, batch %d, %d publishers%s): %d messages x %d findings "
      "(%d hosts, %lld incidents) in %.2f s: %.0f events/s (1 event = 1 finding; published in "
      "%.2f s); loss %lld, duplicate alerts %lld, redelivered %d, messages stored %lld/%d; "
      "publish to incident committed P50 %.1f ms, P99 %.1f ms; loadavg %s -> %s\n",
      postgres ? "postgresql" : "sqlite", hubs, hubs > 1 ? "s" : "", batch, publishers,
      rate > 0 ? (", rate " + std::to_string(static_cast<long long>(rate)) + "/s").c_str() : "",
      messages, findings, hosts, static_cast<long long>(incidents), seconds,
      static_cast<double>(expected) / seconds, publish_s, static_cast<long long>(loss),
      static_cast<long long>(extra), duplicates.load(), static_cast<long long>(stored_messages),
      messages, q(0.5), q(0.99), load_before.c_str(), load_after.c_str());
  // CPU per event by process: the hubs (this process: consumers, NATS client, parsing, store
  // clients), the publishers (the agents' stand-in, the forked process) and, with --server-pid,
  // the PostgreSQL backends.
  char pg[64] = "";
  if (server_pid > 0) {
    std::snprintf(pg, sizeof pg, ", postgres backends %.2f us", server_cpu * 1e6 / expected);
  }
  std::printf("  cpu per event: hub process %.2f us, publishers %.2f us%s\n",
              own_cpu * 1e6 / expected, CpuSeconds(publisher_usage) * 1e6 / expected, pg);
  double busy = 0;
  for (const auto& t : timed) busy += t->busy_seconds();
  std::printf("  store busy: %.0f%% of the run (the hubs' IngestBatch wall time %.2f s / %.2f s)\n",
              100 * busy / (seconds * hubs), busy, seconds);
  std::printf("  sustained: 10%% to 90%% of the events committed in %.2f s: %.0f events/s",
              steady_s, steady);
  if (windows.empty()) {
    std::printf("; no whole %g-second window but the first and last\n", window);
  } else {
    std::printf("; %zu windows of %g s (first and last left out): median %.0f, min %.0f events/s\n",
                windows.size(), window, windows[windows.size() / 2], windows.front());
  }
  const bool ok = loss == 0 && extra == 0 && stored_messages == messages && published_ok &&
                  settled.load() >= messages;
  return ok ? 0 : 1;
}
