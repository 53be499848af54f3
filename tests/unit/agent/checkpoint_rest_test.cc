// Audit checkpoints over the hub's HTTP API, against a real hub::Server on loopback: the fleet
// link registers the host's audit key; the checkpoint sink posts each checkpoint of the agent's
// audit log; the hub verifies them by that key and shows them at GET /v1/agents/HOST/checkpoints;
// a forged signature and a checkpoint of another key are kept as "bad-signature" and audited; an
// agent may not send another host's checkpoints.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

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

class CheckpointRestTest : public testing::HubLinkTest {
 protected:
  void SetUp() override {
    HubLinkTest::SetUp();
    StartHub();
  }
  HubLinkOptions Link() const {
    HubLinkOptions o;
    o.url = Url();
    o.token_file = TokenFile();
    o.host = kHost;
    o.timeout = std::chrono::milliseconds(3000);
    return o;
  }
  // Registers kHost with `key` as its audit key.
  void Register(const audit::PublicKey& key) {
    FleetLinkOptions o;
    o.link = Link();
    o.vigil_version = "test";
    o.health = [] { return FleetHealth{}; };
    o.audit_key = hub::AuditKeyReport{audit::KeyIdString(key.id), govern::HexOf(key.key)};
    auto link = FleetLink::Create(std::move(o));
    ASSERT_TRUE(link.has_value()) << link.error().ToString();
    ASSERT_TRUE((*link)->Beat().ok()) << (*link)->state().last_error;
  }
  std::pair<int, json> Get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get(path, {{"Authorization", "Bearer " + Token(hub::Role::kViewer, "alice")}});
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> Post(const std::string& body, const std::string& host = kHost) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Post("/v1/agents/checkpoints",
                    {{"Authorization", "Bearer " + Token(hub::Role::kAgent, host)}}, body,
                    "application/json");
    if (!r) return {-1, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
};

TEST_F(CheckpointRestTest, TheHubKeepsVerifiedCheckpointsAndFlagsForgedOnes) {
  auto signer = audit::Ed25519Signer::Generate();
  Register(signer->public_key());

  CheckpointSinkOptions so;
  so.host = kHost;
  so.retry_initial = std::chrono::milliseconds(10);
  so.spool_dir = (dir_ / "checkpoint-spool").string();
  auto client = HubClient::Create(Link());
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto sink = CheckpointSink::Open(
      so, MakeHubTransport(std::move(client).value(), "/v1/agents/checkpoints"), hub_registry_,
      nullptr);
  ASSERT_TRUE(sink.has_value()) << sink.error().ToString();
  const std::vector<audit::CheckpointNotice> seen = WriteAuditLog(
      "agent-audit", *signer, 5, [&](const audit::CheckpointNotice& n) { (*sink)->Offer(n); });
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ((*sink)->Close(std::chrono::seconds(10)), 0u);
  EXPECT_EQ((*sink)->Counts().sent, seen.size());

  auto [status, body] = Get("/v1/agents/web-1/checkpoints");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["audit_key"]["key_id"], audit::KeyIdString(signer->public_key().id));
  ASSERT_EQ(body["checkpoints"].size(), seen.size());
  EXPECT_EQ(body["checkpoints"][0]["seq"], seen.back().seq);  // highest first
  for (const json& c : body["checkpoints"]) {
    EXPECT_EQ(c["verification"], "verified") << c.dump();
    EXPECT_EQ(c["problem"], "");
  }

  // A forged signature, and a checkpoint signed by another key: kept, flagged, audited.
  hub::CheckpointReport forged;
  forged.host = kHost;
  forged.seq = seen.back().seq + 10;
  forged.covers = forged.seq - 1;
  forged.chain_hash = seen.back().chain_hash;
  forged.time_ns = seen.back().time_ns + 1;
  forged.key_id = seen.back().key_id;
  forged.public_key = seen.back().public_key;
  forged.signature = seen.back().signature;
  auto [s1, b1] = Post(hub::CheckpointBody(forged));
  ASSERT_EQ(s1, 200) << b1.dump();
  EXPECT_EQ(b1["checkpoint"]["verification"], "bad-signature");
  EXPECT_NE(b1["checkpoint"]["reason"].get<std::string>().find("does not verify"),
            std::string::npos);
  auto other = audit::Ed25519Signer::Generate();
  hub::CheckpointReport foreign = forged;
  foreign.seq += 1;
  foreign.covers += 1;
  foreign.key_id = audit::KeyIdString(other->public_key().id);
  foreign.public_key = govern::HexOf(other->public_key().key);
  auto [s2, b2] = Post(hub::CheckpointBody(foreign));
  ASSERT_EQ(s2, 200) << b2.dump();
  EXPECT_EQ(b2["checkpoint"]["verification"], "bad-signature");
  EXPECT_NE(b2["checkpoint"]["reason"].get<std::string>().find("not by the audit key"),
            std::string::npos);
  // The same again: a duplicate, nothing new.
  auto [s3, b3] = Post(hub::CheckpointBody(foreign));
  ASSERT_EQ(s3, 200);
  EXPECT_TRUE(b3["duplicate"].get<bool>());
  ASSERT_TRUE(log_->Flush().ok());
  int audited = 0;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    if (payload.value("action", "") == "audit-checkpoint-bad-signature") ++audited;
    if (payload.value("action", "") == "audit-key-registered") {
      EXPECT_EQ(payload["host"], kHost);
    }
  }
  EXPECT_EQ(audited, 2);

  // Another host's checkpoints, a bad body, an unknown host, a bad limit.
  EXPECT_EQ(Post(hub::CheckpointBody(forged), "web-2").first, 403);
  auto [s4, b4] = Post(R"({"schema_version":"vigil.hub/v1","host":"web-1"})");
  EXPECT_EQ(s4, 400);
  EXPECT_NE(b4.dump().find("seq: missing"), std::string::npos) << b4.dump();
  auto [s5, b5] = Get("/v1/agents/nobody/checkpoints");
  ASSERT_EQ(s5, 200);
  EXPECT_TRUE(b5["audit_key"].is_null());
  EXPECT_TRUE(b5["checkpoints"].empty());
  EXPECT_EQ(Get("/v1/agents/web-1/checkpoints?limit=0").first, 400);
  EXPECT_EQ(Get("/v1/agents/web-1/checkpoints?limit=1").second["checkpoints"].size(), 1u);
}

}  // namespace
}  // namespace vigil::agent

namespace vigil::agent {
namespace {

// A host without a fleet link (vigil gateway): the checkpoint transport registers the key that
// signed the checkpoints over the host's token before sending them, once; the hub binds it to
// the token's subject.
TEST_F(CheckpointRestTest, TheCheckpointLinkRegistersTheKeyWithoutAFleetLink) {
  auto signer = audit::Ed25519Signer::Generate();
  const std::string key_id = audit::KeyIdString(signer->public_key().id);
  CheckpointSinkOptions so;
  so.host = kHost;
  so.retry_initial = std::chrono::milliseconds(10);
  so.spool_dir = (dir_ / "checkpoint-spool").string();
  auto transport = MakeCheckpointHubTransport(Link());
  ASSERT_TRUE(transport.has_value()) << transport.error().ToString();
  auto sink = CheckpointSink::Open(so, std::move(transport).value(), hub_registry_, nullptr);
  ASSERT_TRUE(sink.has_value()) << sink.error().ToString();
  const uint64_t offered =
      WriteAuditLog("gw-audit", *signer, 4, [&](const audit::CheckpointNotice& n) {
        (*sink)->Offer(n);
      }).size();
  EXPECT_EQ((*sink)->Close(std::chrono::seconds(10)), 0u);
  auto [status, body] = Get("/v1/agents/web-1/checkpoints");
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["audit_key"]["key_id"], key_id);
  ASSERT_EQ(body["checkpoints"].size(), offered);
  for (const json& c : body["checkpoints"]) EXPECT_EQ(c["verification"], "verified") << c.dump();
  ASSERT_TRUE(log_->Flush().ok());
  int registered = 0;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    if (payload.value("action", "") == "audit-key-registered") ++registered;
  }
  EXPECT_EQ(registered, 1);

  // The route: only for the token's own host; a bad key is 400 naming the field.
  auto post = [&](const std::string& token_host, const std::string& body_text) {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Post("/v1/agents/audit-key",
                    {{"Authorization", "Bearer " + Token(hub::Role::kAgent, token_host)}},
                    body_text, "application/json");
    return r ? std::pair<int, json>{r->status, json::parse(r->body, nullptr, false)}
             : std::pair<int, json>{-1, nullptr};
  };
  auto other = audit::Ed25519Signer::Generate();
  const std::string other_body = hub::AuditKeyBody(
      {kHost,
       {audit::KeyIdString(other->public_key().id), govern::HexOf(other->public_key().key)}});
  EXPECT_EQ(post("web-2", other_body).first, 403);
  EXPECT_EQ(Get("/v1/agents/web-1/checkpoints").second["audit_key"]["key_id"], key_id);
  auto [s2, b2] = post(kHost, R"({"schema_version":"vigil.hub/v1","host":"web-1",)"
                              R"("audit_key":{"key_id":"xyz","public_key":""}})");
  EXPECT_EQ(s2, 400);
  EXPECT_NE(b2.dump().find("audit_key.key_id"), std::string::npos) << b2.dump();
  // Without credentials: 401.
  httplib::Client anon("127.0.0.1", port_);
  auto r3 = anon.Post("/v1/agents/audit-key", other_body, "application/json");
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 401);
  // A replacement by the host itself: audited as such.
  auto [s4, b4] = post(kHost, other_body);
  ASSERT_EQ(s4, 200) << b4.dump();
  EXPECT_TRUE(b4["changed"].get<bool>());
  EXPECT_EQ(b4["previous_key_id"], key_id);
}

// An admin pins a host's audit key by fingerprint (POST /v1/agents/audit-key/pin): only an admin
// may; the key the host registered before (trusted on first use) no longer verifies its
// checkpoints when it is not the pinned one; the host cannot register another key (403, alarmed
// and audited), its fleet registration still goes through; the pinned key registers and verifies;
// a new pin replaces the old one. Every pin is an audit record naming the admin.
TEST_F(CheckpointRestTest, AnAdminPinsAHostsAuditKeyAndAnotherKeyIsRefused) {
  auto rogue = audit::Ed25519Signer::Generate(), real = audit::Ed25519Signer::Generate();
  auto hex = [](const audit::Ed25519Signer& k) { return govern::HexOf(k.public_key().key); };
  auto id = [](const audit::Ed25519Signer& k) { return audit::KeyIdString(k.public_key().id); };
  Register(rogue->public_key());  // first use: trusted
  const std::string real_fp = hub::AuditKeyFingerprint(hex(*real));
  ASSERT_EQ(real_fp.size(), 64u);
  EXPECT_NE(real_fp, hub::AuditKeyFingerprint(hex(*rogue)));

  auto call = [&](const std::string& path, const std::string& token, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    auto r = c.Post(path, h, body, "application/json");
    return r ? std::pair<int, json>{r->status, json::parse(r->body, nullptr, false)}
             : std::pair<int, json>{-1, nullptr};
  };
  const std::string admin = Token(hub::Role::kAdmin, "root");
  const std::string pin_body = hub::AuditKeyPinBody({kHost, real_fp, "key read off the host"});
  // Roles: none, viewer, analyst and the host's own agent token are refused.
  EXPECT_EQ(call("/v1/agents/audit-key/pin", "", pin_body).first, 401);
  for (const std::string& token :
       {Token(hub::Role::kViewer, "alice"), Token(hub::Role::kAnalyst, "bob"),
        Token(hub::Role::kAgent, kHost)}) {
    EXPECT_EQ(call("/v1/agents/audit-key/pin", token, pin_body).first, 403);
  }
  auto [bad, bad_body] = call("/v1/agents/audit-key/pin", admin,
                              R"({"schema_version":"vigil.hub/v1","host":"web-1",)"
                              R"("fingerprint":"abc"})");
  EXPECT_EQ(bad, 400);
  EXPECT_NE(bad_body.dump().find("fingerprint: expected 64 hex digits"), std::string::npos)
      << bad_body.dump();
  EXPECT_TRUE(Get("/v1/agents/web-1/checkpoints").second["audit_key_pin"].is_null());

  // Pinned to the real key: the rogue key the host registered is not it.
  auto [pinned, answer] = call("/v1/agents/audit-key/pin", admin, pin_body);
  ASSERT_EQ(pinned, 200) << answer.dump();
  EXPECT_EQ(answer["fingerprint"], real_fp);
  EXPECT_EQ(answer["previous_fingerprint"], "");
  EXPECT_EQ(answer["registered_key"]["key_id"], id(*rogue));
  EXPECT_FALSE(answer["registered_key"]["pinned"].get<bool>());
  json shown = Get("/v1/agents/web-1/checkpoints").second;
  EXPECT_EQ(shown["audit_key_pin"]["fingerprint"], real_fp);
  EXPECT_EQ(shown["audit_key_pin"]["pinned_by"], "root");
  EXPECT_EQ(shown["audit_key"]["fingerprint"], hub::AuditKeyFingerprint(hex(*rogue)));

  // The rogue key's checkpoints: bad signature, naming the pin.
  const auto by_rogue =
      WriteAuditLog("rogue-audit", *rogue, 3, [](const audit::CheckpointNotice&) {});
  ASSERT_FALSE(by_rogue.empty());
  hub::CheckpointReport c1;
  static_cast<audit::CheckpointNotice&>(c1) = by_rogue.back();
  c1.host = kHost;
  auto [s1, b1] = Post(hub::CheckpointBody(c1));
  ASSERT_EQ(s1, 200) << b1.dump();
  EXPECT_EQ(b1["checkpoint"]["verification"], "bad-signature");
  EXPECT_NE(b1["checkpoint"]["reason"].get<std::string>().find(
                "not by the audit key pinned for host web-1 (fingerprint " + real_fp + ")"),
            std::string::npos)
      << b1.dump();

  // The host offers the rogue key again: refused (403), alarmed; a fleet registration carrying
  // it still registers the host.
  const std::string agent = Token(hub::Role::kAgent, kHost);
  auto [s2, b2] = call("/v1/agents/audit-key", agent,
                       hub::AuditKeyBody({kHost, {id(*rogue), hex(*rogue)}}));
  EXPECT_EQ(s2, 403) << b2.dump();
  EXPECT_NE(b2.dump().find("not the key pinned for it"), std::string::npos) << b2.dump();
  Register(rogue->public_key());

  // The pinned key registers, and its checkpoints verify.
  auto [s3, b3] = call("/v1/agents/audit-key", agent, hub::AuditKeyBody({kHost, {id(*real),
                                                                                  hex(*real)}}));
  ASSERT_EQ(s3, 200) << b3.dump();
  EXPECT_TRUE(b3["changed"].get<bool>());
  const auto by_real =
      WriteAuditLog("real-audit", *real, 3, [](const audit::CheckpointNotice&) {});
  ASSERT_FALSE(by_real.empty());
  hub::CheckpointReport c2;
  static_cast<audit::CheckpointNotice&>(c2) = by_real.back();
  c2.host = kHost;
  auto [s4, b4] = Post(hub::CheckpointBody(c2));
  ASSERT_EQ(s4, 200) << b4.dump();
  EXPECT_EQ(b4["checkpoint"]["verification"], "verified") << b4.dump();

  // Re-pinned (the key rotated): the old pin is named; the registered key is no longer it.
  auto next = audit::Ed25519Signer::Generate();
  const std::string next_fp = hub::AuditKeyFingerprint(hex(*next));
  auto [s5, b5] = call("/v1/agents/audit-key/pin", admin,
                       hub::AuditKeyPinBody({kHost, next_fp, "rotated"}));
  ASSERT_EQ(s5, 200) << b5.dump();
  EXPECT_EQ(b5["previous_fingerprint"], real_fp);
  EXPECT_FALSE(b5["registered_key"]["pinned"].get<bool>());

  ASSERT_TRUE(log_->Flush().ok());
  int pins = 0, refused = 0;
  for (const auto& [type, payload] : hub::testing::ReadAuditRecords(dir_ / "audit")) {
    const std::string action = payload.value("action", "");
    if (action == "audit-key-pinned") {
      ++pins;
      EXPECT_EQ(payload["by"], "root");
      EXPECT_EQ(payload["host"], kHost);
    }
    if (action == "audit-key-refused") {
      ++refused;
      EXPECT_EQ(payload["pinned_fingerprint"], real_fp);
      EXPECT_EQ(payload["key_id"], id(*rogue));
    }
  }
  EXPECT_EQ(pins, 2);
  EXPECT_EQ(refused, 2);  // the REST registration and the fleet registration
}

// The key registration waits for the hub like the checkpoints do: a hub that does not answer
// leaves the checkpoint queued (retried), nothing is lost.
TEST_F(CheckpointRestTest, AnUnreachableHubDelaysTheKeyAndTheCheckpoint) {
  HubLinkOptions down = Link();
  down.url = "http://127.0.0.1:1";
  down.timeout = std::chrono::milliseconds(200);
  auto transport = MakeCheckpointHubTransport(down);
  ASSERT_TRUE(transport.has_value());
  FindingMessage m;
  hub::CheckpointReport c;
  c.host = kHost;
  c.seq = 2;
  c.covers = 1;
  c.chain_hash = std::string(64, 'a');
  c.time_ns = 1;
  c.key_id = "0123456789ABCDEF";
  c.public_key = std::string(64, 'b');
  c.signature = std::string(128, 'c');
  m.id = hub::CheckpointMessageId(c);
  m.body = hub::CheckpointBody(c);
  EXPECT_EQ((*transport)->Deliver(m), DeliveryOutcome::kRetry);
}

}  // namespace
}  // namespace vigil::agent
