// Audit checkpoints and the audit key over the hub's gRPC agent port (mTLS), against a real hub:
// the fleet link registers the audit key and the host's addresses with Register (as REST does),
// the checkpoint sink sends each checkpoint with Checkpoint, and the hub keeps them "verified";
// RegisterAuditKey registers a key without a fleet registration, for the certificate's host only.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "../hub/hub_fixtures.h"
#include "agent/checkpoint_sink.h"
#include "agent/fleet_link.h"
#include "agent/hub_sink.h"
#include "audit/audit_log.h"
#include "audit/signer.h"
#include "govern/attest.h"
#include "hub/checkpoint_requests.h"
#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

using nlohmann::json;

class CheckpointGrpcTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    StartHub();
    StartAgentPort();
  }
  std::pair<int, json> Get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get(path, {{"Authorization", "Bearer " + Token(hub::Role::kAdmin, "root")}});
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  json AgentAtHub(const std::string& host) {
    auto [status, body] = Get("/v1/agents");
    EXPECT_EQ(status, 200) << body.dump();
    for (const json& a : body["agents"]) {
      if (a["host"] == host) return a;
    }
    return nullptr;
  }
  // The audit records of the hub's log with this action.
  std::vector<json> Audited(const std::string& action) {
    EXPECT_TRUE(log_->Flush().ok());
    std::vector<json> out;
    for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
      if (payload.value("action", "") == action) out.push_back(payload);
    }
    return out;
  }
};

TEST_F(CheckpointGrpcTest, AGrpcsAgentsCheckpointsArriveVerified) {
  auto signer = audit::Ed25519Signer::Generate();
  const std::string key_id = audit::KeyIdString(signer->public_key().id);
  FleetLinkOptions fo;
  fo.link = GrpcLink(kHost);
  fo.vigil_version = "test";
  fo.health = [] { return FleetHealth{}; };
  fo.addresses = [] { return std::vector<std::string>{"10.1.2.3", "fd00::7"}; };
  fo.audit_key = hub::AuditKeyReport{key_id, govern::HexOf(signer->public_key().key)};
  auto link = FleetLink::Create(std::move(fo));
  ASSERT_TRUE(link.has_value()) << link.error().ToString();
  ASSERT_TRUE((*link)->Beat().ok()) << (*link)->state().last_error;
  // Register carried the addresses, and so does a heartbeat.
  json at_hub = AgentAtHub(kHost);
  ASSERT_TRUE(at_hub.is_object());
  EXPECT_NE(at_hub.dump().find("10.1.2.3"), std::string::npos) << at_hub.dump();
  EXPECT_NE(at_hub.dump().find("fd00::7"), std::string::npos) << at_hub.dump();
  ASSERT_TRUE((*link)->Beat().ok()) << (*link)->state().last_error;
  EXPECT_NE(AgentAtHub(kHost).dump().find("10.1.2.3"), std::string::npos);
  // The key is stored as REST stores it, and audited.
  auto [ks, kb] = Get("/v1/agents/web-1/checkpoints");
  ASSERT_EQ(ks, 200) << kb.dump();
  EXPECT_EQ(kb["audit_key"]["key_id"], key_id) << kb.dump();
  EXPECT_EQ(kb["audit_key"]["public_key"], govern::HexOf(signer->public_key().key));
  ASSERT_EQ(Audited("audit-key-registered").size(), 1u);

  CheckpointSinkOptions so;
  so.host = kHost;
  so.spool_dir = (dir_ / "checkpoint-spool").string();
  so.retry_initial = std::chrono::milliseconds(10);
  auto transport = MakeCheckpointHubTransport(GrpcLink(kHost));
  ASSERT_TRUE(transport.has_value()) << transport.error().ToString();
  auto sink = CheckpointSink::Open(so, std::move(transport).value(), hub_registry_, nullptr);
  ASSERT_TRUE(sink.has_value()) << sink.error().ToString();
  const std::vector<audit::CheckpointNotice> seen = WriteAuditLog(
      "agent-audit", *signer, 5, [&](const audit::CheckpointNotice& n) { (*sink)->Offer(n); });
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ((*sink)->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ((*sink)->Counts().sent, seen.size());
  auto [status, body] = Get("/v1/agents/web-1/checkpoints");
  ASSERT_EQ(status, 200) << body.dump();
  ASSERT_EQ(body["checkpoints"].size(), seen.size()) << body.dump();
  for (const json& c : body["checkpoints"]) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
  }
  // The key was registered already: the sink's own registration changed nothing.
  EXPECT_EQ(Audited("audit-key-registered").size(), 1u);
  EXPECT_TRUE(Audited("audit-key-replaced").empty());

  // Over the client directly: a resend is a duplicate; a bad field is INVALID_ARGUMENT (400).
  auto direct = HubClient::Create(GrpcLink(kHost));
  ASSERT_TRUE(direct.has_value());
  hub::CheckpointReport again;
  static_cast<audit::CheckpointNotice&>(again) = seen.front();
  again.host = kHost;
  auto dup = (*direct)->Post("/v1/agents/checkpoints", hub::CheckpointBody(again));
  ASSERT_TRUE(dup.has_value()) << dup.error().ToString();
  ASSERT_EQ(dup->status, 200) << dup->error;
  EXPECT_TRUE(dup->body["duplicate"].get<bool>());
  EXPECT_EQ(dup->body["checkpoint"]["verification"], "verified");
  again.signature = "zz";
  auto bad = (*direct)->Post("/v1/agents/checkpoints", hub::CheckpointBody(again));
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->error.find("signature"), std::string::npos) << bad->error;
}

TEST_F(CheckpointGrpcTest, RegisterAuditKeyBindsTheKeyToTheCertificatesHost) {
  auto first = audit::Ed25519Signer::Generate();
  auto second = audit::Ed25519Signer::Generate();
  auto client = HubClient::Create(GrpcLink("gw-1"));
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto body = [](const std::string& host, const audit::PublicKey& k) {
    return hub::AuditKeyBody({host, {audit::KeyIdString(k.id), govern::HexOf(k.key)}});
  };
  // The body's host is ignored: the certificate's host is the one registered.
  auto r1 = (*client)->Post("/v1/agents/audit-key", body("someone-else", first->public_key()));
  ASSERT_TRUE(r1.has_value()) << r1.error().ToString();
  ASSERT_EQ(r1->status, 200) << r1->error;
  EXPECT_EQ(r1->body["host"], "gw-1");
  EXPECT_TRUE(r1->body["changed"].get<bool>());
  EXPECT_EQ(Get("/v1/agents/gw-1/checkpoints").second["audit_key"]["key_id"],
            audit::KeyIdString(first->public_key().id));
  EXPECT_TRUE(Get("/v1/agents/someone-else/checkpoints").second["audit_key"].is_null());
  auto r2 = (*client)->Post("/v1/agents/audit-key", body("gw-1", first->public_key()));
  ASSERT_TRUE(r2.has_value());
  EXPECT_FALSE(r2->body["changed"].get<bool>());
  auto r3 = (*client)->Post("/v1/agents/audit-key", body("gw-1", second->public_key()));
  ASSERT_TRUE(r3.has_value());
  EXPECT_TRUE(r3->body["changed"].get<bool>());
  EXPECT_EQ(r3->body["previous_key_id"], audit::KeyIdString(first->public_key().id));
  ASSERT_EQ(Audited("audit-key-replaced").size(), 1u);
  EXPECT_EQ(Audited("audit-key-replaced")[0]["host"], "gw-1");
  // No key at all, or a malformed one: INVALID_ARGUMENT naming the field.
  auto r4 = (*client)->Post("/v1/agents/audit-key", R"({"schema_version":"vigil.hub/v1"})");
  ASSERT_TRUE(r4.has_value());
  EXPECT_EQ(r4->status, 400);
  EXPECT_NE(r4->error.find("audit_key.key_id"), std::string::npos) << r4->error;
}

}  // namespace
}  // namespace vigil::agent
