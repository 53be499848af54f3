#pragma once

// A real hub (hub::Server over a SQLite store in a temporary folder) on a loopback port that a
// test can stop and start again on the same port, and an agent token file for it.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../hub/test_hub_state.h"
#include "agent/hub_client.h"
#include "audit/audit_log.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "hub/agent_grpc.h"
#include "hub/auth.h"
#include "hub/enrolment.h"
#include "hub/server.h"
#include "hub/store.h"

namespace vigil::agent::testing {

inline api::JwtConfig HubTestJwt() {
  api::JwtConfig j;
  j.hs256_key = "0123456789abcdef0123456789abcdef-hub-link-test";
  j.issuer = "vigil-hub";
  j.audience = "vigil-hub";
  return j;
}

// Waits (polling, at most `limit`) until `pred` holds.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class HubLinkTest : public ::testing::Test {
 protected:
  static constexpr const char* kHost = "web-1";

  void SetUp() override {
    hub::testing::TestHubState state;
    ASSERT_TRUE(hub::testing::OpenTestHubState("hub_link_", clock_, &state));
    dir_ = state.dir;
    store_ = std::move(state.store);
    signer_ = std::move(state.signer);
    log_ = std::move(state.log);
    std::ofstream(TokenFile()) << Token(hub::Role::kAgent, kHost) << "\n";
  }
  void TearDown() override {
    StopHub();
    std::filesystem::remove_all(dir_);
  }

  std::string Token(hub::Role role, const std::string& subject) const {
    return auth_.Issue(subject, role, 900, clock_.NowUnixNanos() / 1'000'000'000);
  }
  std::string TokenFile() const { return (dir_ / "agent.token").string(); }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Starts the hub on port_ (0 the first time: any free port, kept for restarts).
  void StartHub() {
    hub::ServerOptions o;
    o.listen = {"127.0.0.1", port_};
    o.threads = 2;
    o.fleet = fleet_options_;
    server_ = std::make_unique<hub::Server>(o, *store_, auth_, *log_, clock_, hub_registry_);
    core::Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    port_ = server_->port();
    // Serving, not only bound: a Stop() before the listening thread runs would not stop it.
    httplib::Client probe("127.0.0.1", port_);
    ASSERT_TRUE(WaitUntil([&] {
      auto r = probe.Get("/healthz");
      return r && r->status == 200;
    }));
  }
  void StopHub() {
    if (agents_) agents_->Stop();
    agents_.reset();
    if (server_) server_->Stop();
    server_.reset();
  }
  // The hub's agent gRPC port (hub::AgentGrpc, mTLS) beside the REST port; after StartHub().
  void StartAgentPort() {
    const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
    if (!ca_) {
      auto ca = hub::HubCa::LoadOrCreate((dir_ / "ca").string(), now);
      ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
      ca_ = std::make_unique<hub::HubCa>(std::move(ca).value());
      tokens_ = std::make_unique<hub::EnrolTokens>((dir_ / "enrol-tokens.json").string());
    }
    hub::AgentGrpcOptions g;
    g.listen = {"127.0.0.1", 0};
    agents_ = std::make_unique<hub::AgentGrpc>(g, *ca_, *tokens_, *server_, *log_, clock_);
    core::Status st = agents_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // A grpcs:// link to the agent port for `host`, with a certificate the hub CA issued to
  // `host` (in group `group`), as `vigil agent enrol` leaves them: DIR/<host>/agent.key,
  // agent.pem, ca.pem.
  HubLinkOptions GrpcLink(const std::string& host, const std::string& group = "") {
    const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
    auto kc = hub::MakeAgentKeyAndCsr(host);
    EXPECT_TRUE(kc.has_value());
    auto cert = ca_->SignAgentCsr(kc->second, host, group, now, 3600);
    EXPECT_TRUE(cert.has_value()) << cert.error().ToString();
    const std::filesystem::path d = dir_ / ("cert-" + host);
    std::filesystem::create_directories(d);
    std::ofstream(d / "agent.key") << kc->first;
    std::ofstream(d / "agent.pem") << *cert;
    std::ofstream(d / "ca.pem") << ca_->cert_pem();
    HubLinkOptions o;
    o.url = "grpcs://127.0.0.1:" + std::to_string(agents_->port());
    o.host = host;
    o.key_file = (d / "agent.key").string();
    o.cert_file = (d / "agent.pem").string();
    o.ca_file = (d / "ca.pem").string();
    o.timeout = std::chrono::milliseconds(3000);
    return o;
  }
  // Findings the hub stored for kHost.
  int64_t StoredFindings() {
    auto agents = store_->Agents();
    if (!agents.has_value()) return -1;
    for (const hub::AgentRow& a : *agents) {
      if (a.host == kHost) return a.findings;
    }
    return 0;
  }

  // An audit log in dir_/`name` signed by `signer` with a checkpoint every 2 records, each handed
  // to `offer`: `records` decisions appended, then closed (a final checkpoint). Returns the
  // checkpoints it wrote, in order.
  std::vector<audit::CheckpointNotice> WriteAuditLog(
      const std::string& name, const audit::Signer& signer, int records,
      const std::function<void(const audit::CheckpointNotice&)>& offer) {
    std::vector<audit::CheckpointNotice> seen;
    audit::AuditOptions ao;
    ao.fsync = audit::FsyncMode::kNever;
    ao.checkpoint_every = 2;
    ao.on_checkpoint = [&](const audit::CheckpointNotice& n) {
      seen.push_back(n);
      offer(n);
    };
    auto log = audit::AuditLog::Open((dir_ / name).string(), ao, signer, clock_);
    EXPECT_TRUE(log.has_value()) << log.error().ToString();
    if (!log.has_value()) return seen;
    for (int i = 0; i < records; ++i) {
      EXPECT_TRUE((*log)->Append(audit::RecordType::kDecision, {{"n", i}}).ok());
    }
    EXPECT_TRUE((*log)->Close().ok());
    return seen;
  }

  std::filesystem::path dir_;
  const core::Clock& clock_ = core::SystemClock::Get();
  core::Registry hub_registry_;
  hub::HubAuth auth_{HubTestJwt()};
  std::unique_ptr<hub::Store> store_;
  std::unique_ptr<audit::Signer> signer_;
  std::unique_ptr<audit::AuditLog> log_;
  std::unique_ptr<hub::Server> server_;
  std::unique_ptr<hub::HubCa> ca_;  // StartAgentPort()
  std::unique_ptr<hub::EnrolTokens> tokens_;
  std::unique_ptr<hub::AgentGrpc> agents_;
  uint16_t port_ = 0;
  hub::FleetOptions fleet_options_;  // the hub's fleet settings (set before StartHub)
};

}  // namespace vigil::agent::testing
