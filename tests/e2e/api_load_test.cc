// The load generator for `vigil serve` (bench/api_load.cc) against the real binary on loopback:
// in each of its gRPC modes (events: gRPC's own client; h2: nghttp2 with api_load's own gRPC
// framing; threads: one blocking stub per client) every call is answered with its score(s) and
// no error, single and batched, and so in the HTTP/JSON event mode; a refused call (a bearer token that is not a JWT) is counted as
// an error naming the gRPC status, and api_load exits 1. Built with the bench directory
// (VIGIL_BUILD_BENCH, bench/CMakeLists.txt gives API_LOAD_BINARY); a second or so per case.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "vigil_cli.h"

namespace fs = std::filesystem;
using nlohmann::json;
using vigil::e2e::CmdResult;

namespace {

class ApiLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef API_LOAD_BINARY
    GTEST_SKIP() << "api_load is not built (VIGIL_BUILD_BENCH is off)";
#endif
    dir_ = fs::temp_directory_path() /
           ("api_load_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "run");
    // A model of i386 calls (api_load's requests are i386 windows): ten streams of 0..3.
    vigil::e2e::WriteSyscallStreams(dir_ / "train.jsonl", "svc", 10, {0, 1, 2, 3}, 10, "i386");
    const CmdResult trained = vigil::e2e::RunVigil(
        dir_ / "run", "train --dataset jsonl --data " + (dir_ / "train.jsonl").string() +
                          " --out " + (dir_ / "model.vmod").string());
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
    std::ofstream(dir_ / "jwt.key") << std::string(48, 'k') << "\n";
    std::ofstream(dir_ / "rules.yaml") << R"(- rule: Anomalous program
  desc: the model flags it
  condition: ml.anomalous=true
  output: "anomalous %proc.name"
  priority: warning
)";
    std::ofstream(dir_ / "serve.yaml") << R"(grpc: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
auth:
  allow_anonymous: true
  anonymous_scopes: [score]
  jwt: {hs256_key_file: jwt.key, issuer: vigil-e2e, audience: vigil-api}
model: model.vmod
rules: [rules.yaml]
limits: {default_deadline_ms: 5000}
)";
    vigil::e2e::Background b = vigil::e2e::StartVigil(
        {"serve", "--config", (dir_ / "serve.yaml").string(), "--json"}, dir_ / "serve.out",
        dir_ / "serve.err");
    server_ = b.pid;
    ASSERT_GT(server_, 0) << b.error;
    const json ready = json::parse(b.ready_line, nullptr, false);
    ASSERT_TRUE(ready.is_object() && ready.contains("grpc_port")) << b.ready_line;
    target_ = "--grpc 127.0.0.1:" + std::to_string(ready["grpc_port"].get<int>());
    http_target_ = "--url http://127.0.0.1:" + std::to_string(ready["http_port"].get<int>());
  }
  void TearDown() override {
    if (server_ > 0) vigil::e2e::StopVigil(server_);
    fs::remove_all(dir_);
  }

  // Runs `api_load TARGET ARGS --json` (TARGET: "--grpc HOST:PORT" unless given); the exit
  // code, stdout and stderr.
  CmdResult ApiLoad(const std::string& args, const std::string& target = "") {
    CmdResult r;
#ifdef API_LOAD_BINARY
    const fs::path out = dir_ / "run" / "load.out", err = dir_ / "run" / "load.err";
    const std::string cmd = std::string(API_LOAD_BINARY) + " " +
                            (target.empty() ? target_ : target) + " " + args +
                            " --json >" + out.string() + " 2>" + err.string() + " </dev/null";
    const int status = std::system(cmd.c_str());
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = vigil::e2e::ReadAll(out);
    r.err = vigil::e2e::ReadAll(err);
#else
    (void)args;
    (void)target;
#endif
    return r;
  }

  fs::path dir_;
  pid_t server_ = -1;
  std::string target_, http_target_;
};

TEST_F(ApiLoadTest, EveryGrpcModeGetsEveryCallScored) {
  for (const char* mode : {"h2", "events", "threads"}) {
    for (int batch : {0, 8}) {
      SCOPED_TRACE(std::string(mode) + ", batch " + std::to_string(batch));
      const CmdResult r = ApiLoad(std::string("--mode ") + mode + " --clients 3 --seconds 0.3" +
                                  " --vary --batch " + std::to_string(batch));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const json j = json::parse(r.out, nullptr, false);
      ASSERT_TRUE(j.is_object()) << r.out;
      EXPECT_EQ(j["mode"], mode);
      EXPECT_EQ(j["errors"], 0);
      EXPECT_GT(j["calls"].get<int64_t>(), 0);
      EXPECT_EQ(j["scores"].get<int64_t>(), j["calls"].get<int64_t>() * std::max(1, batch));
    }
  }
}

// The HTTP/JSON event mode shares its epoll loop with h2 (api_load.cc's EpollClients).
TEST_F(ApiLoadTest, TheHttpEventModeGetsEveryCallScored) {
  for (int batch : {0, 8}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const CmdResult r = ApiLoad("--mode events --clients 3 --seconds 0.3 --vary --batch " +
                                    std::to_string(batch),
                                http_target_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.out;
    EXPECT_EQ(j["transport"], "http");
    EXPECT_EQ(j["errors"], 0);
    EXPECT_GT(j["calls"].get<int64_t>(), 0);
    EXPECT_EQ(j["scores"].get<int64_t>(), j["calls"].get<int64_t>() * std::max(1, batch));
  }
}

TEST_F(ApiLoadTest, ARefusedCallIsAnErrorNamingTheGrpcStatus) {
  std::ofstream(dir_ / "token") << "not-a-jwt\n";
  for (const char* mode : {"h2", "events"}) {
    SCOPED_TRACE(mode);
    const CmdResult r = ApiLoad(std::string("--mode ") + mode + " --clients 2 --seconds 0.2" +
                                " --token-file " + (dir_ / "token").string());
    EXPECT_EQ(r.exit_code, 1) << r.err;
    const json j = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.out;
    EXPECT_EQ(j["calls"], 0);
    EXPECT_GT(j["errors"].get<int64_t>(), 0);
    EXPECT_NE(r.err.find("api_load: first error: gRPC "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("token"), std::string::npos) << r.err;
  }
  const CmdResult h2 = ApiLoad("--mode h2 --clients 1 --seconds 0.2 --token-file " +
                               (dir_ / "token").string());
  EXPECT_NE(h2.err.find("gRPC status 16"), std::string::npos) << h2.err;  // UNAUTHENTICATED
}

}  // namespace
