// Scrapes a MetricsServer with a real Prometheus server (Debian's `prometheus` package) and
// checks that Prometheus reads the histogram as we do: its histogram_quantile(0.99, ...) must
// equal Histogram::Quantile(0.99) and be close to the true P99 of the observations.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../unit/pipeline/loopback.h"
#include "core/http_server.h"
#include "core/metrics.h"

namespace vigil::core {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";
constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kHistogramName = "vigil_it_latency_seconds";
constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kPollInterval = std::chrono::milliseconds(250);

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", u);
      out += buf;
    }
  }
  return out;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process that is always terminated and reaped when this object goes away, also when
// the test fails half-way. PR_SET_PDEATHSIG covers a crash of the test itself.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Terminate(); }

  bool Spawn(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(log_fd);
    return pid_ > 0;
  }

  pid_t pid() const { return pid_; }

  // True while the child runs; reaps it once it has exited.
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  // SIGTERM, then SIGKILL if it has not exited within 10 s.
  void Terminate() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (Running() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
};

class PrometheusScrapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kPrometheus, X_OK) != 0) {
      GTEST_SKIP() << kPrometheus << " is not installed (Debian package `prometheus`)";
    }
    char tmpl[] = "/tmp/vigil_prometheus_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    prometheus_.Terminate();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::filesystem::path dir_;
  ChildProcess prometheus_;
};

TEST_F(PrometheusScrapeTest, PrometheusReadsOurHistogramQuantiles) {
  Registry registry;
  Result<Histogram*> histogram = registry.GetHistogram(kHistogramName, "Test latencies.");
  ASSERT_TRUE(histogram.has_value()) << histogram.error().ToString();
  // 1..1000 ms, uniform: the true P99 is 0.99 s.
  for (int ms = 1; ms <= 1000; ++ms) (*histogram)->ObserveNanos(int64_t{ms} * 1'000'000);
  const double our_p99 = (*histogram)->Quantile(0.99);
  ASSERT_NEAR(our_p99, 0.99, 0.99 * 0.05);

  MetricsServer server(registry);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());

  const std::filesystem::path config = dir_ / "prometheus.yml";
  std::ofstream(config) << "global:\n"
                           "  scrape_interval: 1s\n"
                           "  evaluation_interval: 1s\n"
                           "scrape_configs:\n"
                           "  - job_name: vigil\n"
                           "    static_configs:\n"
                           "      - targets: ['127.0.0.1:"
                        << server.port() << "']\n";
  const std::filesystem::path log = dir_ / "prometheus.log";
  // Prometheus binds the port itself: a port picked free can be taken by another process before
  // it does. It then exits at start ("address already in use"), and is started again on another
  // port; it counts as started once it is the one listening on its port.
  uint16_t prom_port = 0;
  for (int attempt = 1; attempt <= 5 && prom_port == 0; ++attempt) {
    const uint16_t port = pipeline::testing::KernelChosenPort();
    ASSERT_NE(port, 0);
    ASSERT_TRUE(prometheus_.Spawn({kPrometheus, "--config.file=" + config.string(),
                                   "--storage.tsdb.path=" + (dir_ / "data").string(),
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                                  log));
    const auto give_up = std::chrono::steady_clock::now() + kDeadline;
    while (prometheus_.Running() && std::chrono::steady_clock::now() < give_up) {
      if (pipeline::testing::OwnsListener(prometheus_.pid(), port)) {
        prom_port = port;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(prom_port != 0 || !prometheus_.Running())
        << "prometheus did not listen within " << kDeadline.count() << " s; log:\n"
        << ReadFile(log);
    if (prom_port == 0) {
      std::cout << "prometheus exited at start (port taken?); log:\n" << ReadFile(log);
    }
  }
  ASSERT_NE(prom_port, 0) << "prometheus exited at start 5 times; log:\n" << ReadFile(log);

  const std::string query = std::string("histogram_quantile(0.99, ") + kHistogramName + "_bucket)";
  const std::string path = "/api/v1/query?query=" + UrlEncode(query);
  httplib::Client client("127.0.0.1", prom_port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(5, 0);

  std::optional<double> prom_p99;
  std::string last_body;
  const auto give_up = std::chrono::steady_clock::now() + kDeadline;
  while (!prom_p99 && std::chrono::steady_clock::now() < give_up) {
    ASSERT_TRUE(prometheus_.Running()) << "prometheus exited early; log:\n" << ReadFile(log);
    if (httplib::Result r = client.Get(path.c_str()); r && r->status == 200) {
      last_body = r->body;
      const nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
      if (j.is_object() && j.value("status", "") == "success") {
        const nlohmann::json& result = j["data"]["result"];
        if (result.is_array() && !result.empty() && result[0]["value"].is_array()) {
          prom_p99 = std::strtod(result[0]["value"][1].get<std::string>().c_str(), nullptr);
          break;
        }
      }
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  ASSERT_TRUE(prom_p99.has_value()) << "no result within " << kDeadline.count()
                                    << " s; last answer: " << last_body << "\nprometheus log:\n"
                                    << ReadFile(log);
  EXPECT_NEAR(*prom_p99, our_p99, 1e-9 * our_p99);
  EXPECT_NEAR(*prom_p99, 0.99, 0.99 * 0.05);
}

// promtool's linter accepts our exposition text (format and naming conventions).
TEST_F(PrometheusScrapeTest, PromtoolAcceptsExpositionText) {
  if (::access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " is not installed";
  Registry registry;
  (*registry.GetCounter("vigil_events_total", "Events seen.", {{"source", "re\"play"}}))->Inc(3);
  (*registry.GetGauge("vigil_queue_depth", "Queue depth."))->Set(2.5);
  (*registry.GetHistogram("vigil_stage_latency_seconds", "Latency.", {{"stage", "model"}}))
      ->Observe(0.003);
  auto cb = registry.AddCallbackCounter("vigil_dropped_total", "Drops.", {{"cause", "full"}},
                                        [] { return 4.0; });
  ASSERT_TRUE(cb.has_value());
  const std::filesystem::path text = dir_ / "metrics.txt";
  std::ofstream(text) << registry.ExpositionText();
  const std::filesystem::path out = dir_ / "promtool.out";
  const std::string command =
      std::string(kPromtool) + " check metrics < " + text.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << ReadFile(out) << "\n" << ReadFile(text);
}

}  // namespace
}  // namespace vigil::core
