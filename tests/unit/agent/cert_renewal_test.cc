// Renewal of the agent's hub certificate (agent/cert_renewal.h) against a real hub's agent port:
// a running hub client follows a renewal without being recreated, the hub then refuses the old
// certificate, and a revocation holds at the next call; on disk, an interrupted replacement is
// completed (or dropped) and a mismatched pair never installed.

#include "agent/cert_renewal.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "../abseil_deadlock.h"
#include "agent/hub_client_grpc.h"
#include "core/files.h"
#include "hub/enrolment.h"
#include "hub_link_fixture.h"

namespace vigil::agent {
namespace {

std::string Read(const std::string& path) {
  auto r = core::ReadFile(path, 1 << 20);
  return r.has_value() ? *r : std::string();
}

class CertRenewalTest : public testing::HubLinkTest {};

// The agent's channel to the hub turns Abseil's mutex deadlock detection off, as vigil serve's
// gRPC does (../abseil_deadlock.h). No hub agent port runs here (it would turn it off itself).
TEST_F(CertRenewalTest, TheHubChannelTurnsAbseilDeadlockDetectionOff) {
  const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
  auto ca = hub::HubCa::LoadOrCreate((dir_ / "ca").string(), now);
  ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
  auto kc = hub::MakeAgentKeyAndCsr("web-1");
  ASSERT_TRUE(kc.has_value()) << kc.error().ToString();
  auto cert = ca->SignAgentCsr(kc->second, "web-1", "", now, 3600);
  ASSERT_TRUE(cert.has_value()) << cert.error().ToString();
  const CertFiles files{(dir_ / "agent.pem").string(), (dir_ / "agent.key").string(),
                        (dir_ / "ca.pem").string()};
  std::ofstream(files.cert) << *cert;
  std::ofstream(files.key) << kc->first;
  std::ofstream(files.ca) << ca->cert_pem();
  auto channel = OpenHubChannel("127.0.0.1:1", files, "web-1", "");
  ASSERT_TRUE(channel.has_value()) << channel.error().ToString();
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a new process: no fork of gRPC's threads
  EXPECT_EXIT(vigil::testing::LockTwoMutexesBothWays(dir_), ::testing::ExitedWithCode(0), "");
}

TEST_F(CertRenewalTest, AClientFollowsARenewalAndTheHubRefusesTheOldCertificateThen) {
  StartHub();
  StartAgentPort();
  const HubLinkOptions link = GrpcLink("web-1");
  auto client = CreateGrpcHubClient(link);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto reply = (*client)->Get("/v1/agents/nonce");
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200) << reply->error;

  // The enrolled pair, kept aside to call with it later.
  const std::filesystem::path old_dir = dir_ / "old";
  std::filesystem::create_directories(old_dir);
  for (const auto& f : {link.key_file, link.cert_file, link.ca_file}) {
    std::filesystem::copy_file(f, old_dir / std::filesystem::path(f).filename());
  }
  HubLinkOptions old_link = link;
  old_link.key_file = (old_dir / "agent.key").string();
  old_link.cert_file = (old_dir / "agent.pem").string();

  RenewOptions ro;
  ro.target = link.url.substr(8);
  ro.files = {link.cert_file, link.key_file, link.ca_file};
  ro.host = "web-1";
  auto renewed = RenewCert(ro);
  ASSERT_TRUE(renewed.has_value()) << renewed.error().ToString();
  EXPECT_NE(Read(link.cert_file), Read(old_link.cert_file));
  EXPECT_NE(Read(link.key_file), Read(old_link.key_file));
  struct stat st {};
  ASSERT_EQ(::stat(link.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(link.cert_file + ".new"));
  auto row = store_->AgentCert(renewed->sha256);
  ASSERT_TRUE(row.has_value()) << row.error().ToString();
  EXPECT_EQ(row->how, "renewed");
  EXPECT_EQ(row->first_used_ms, 0);

  // The same client object: its next call goes with the new pair.
  reply = (*client)->Get("/v1/agents/nonce");
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200) << reply->error;
  row = store_->AgentCert(renewed->sha256);
  ASSERT_TRUE(row.has_value());
  EXPECT_GT(row->first_used_ms, 0);
  auto old_client = CreateGrpcHubClient(old_link);
  ASSERT_TRUE(old_client.has_value()) << old_client.error().ToString();
  reply = (*old_client)->Get("/v1/agents/nonce");
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 403);
  EXPECT_NE(reply->error.find("renewed: replaced by sha256:" + renewed->sha256),
            std::string::npos)
      << reply->error;

  // Revoked at the hub (REST, admins only): refused at the next call, and no renewal with it.
  httplib::Client http("127.0.0.1", port_);
  auto post = [&](hub::Role role, const std::string& body) {
    auto r = http.Post("/v1/agents/certs/revoke",
                       {{"Authorization", "Bearer " + Token(role, "root")}}, body,
                       "application/json");
    return r ? std::pair{r->status, r->body} : std::pair{-1, std::string()};
  };
  const std::string body =
      nlohmann::json{{"sha256", renewed->sha256}, {"reason", "lost laptop"}}.dump();
  EXPECT_EQ(post(hub::Role::kAnalyst, body).first, 403);
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"reason":"x"})", "give one of sha256 and host"},
           {R"({"sha256":"12","reason":"x"})", "sha256: expected"},
           {R"({"host":"web-1","sha256":")" + renewed->sha256 + R"(","reason":"x"})",
            "give one of sha256 and host"},
           {R"({"host":"web 1","reason":"x"})", "host: expected"},
           {R"({"host":"web-1"})", "reason: expected 1..512 bytes"},
           {R"({"host":"web-1","reason":7})", "reason: expected a string"},
           {"[]", "body: expected an object"}}) {
    const auto [status, text] = post(hub::Role::kAdmin, bad);
    EXPECT_EQ(status, 400) << bad;
    EXPECT_NE(text.find(says), std::string::npos) << bad << " -> " << text;
  }
  EXPECT_EQ(post(hub::Role::kAdmin, body).first, 200);
  reply = (*client)->Get("/v1/agents/nonce");
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 403);
  EXPECT_NE(reply->error.find("by root: lost laptop"), std::string::npos) << reply->error;
  auto again = RenewCert(ro);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), core::StatusCode::kPermissionDenied);
  EXPECT_NE(again.error().message().find("revoked"), std::string::npos);
}

class CertSwapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vigil_cert_swap_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto ca = hub::HubCa::LoadOrCreate((dir_ / "ca").string(), kNow);
    ASSERT_TRUE(ca.has_value()) << ca.error().ToString();
    ca_ = std::make_unique<hub::HubCa>(std::move(ca).value());
    files_ = {(dir_ / "agent.pem").string(), (dir_ / "agent.key").string(),
              (dir_ / "ca.pem").string()};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::pair<std::string, std::string> Pair() {  // key, certificate
    auto kc = hub::MakeAgentKeyAndCsr("web-1");
    EXPECT_TRUE(kc.has_value());
    auto cert = ca_->SignAgentCsr(kc->second, "web-1", "", kNow, 3600);
    EXPECT_TRUE(cert.has_value());
    return {kc->first, *cert};
  }
  void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

  static constexpr int64_t kNow = 1'800'000'000;
  std::filesystem::path dir_;
  std::unique_ptr<hub::HubCa> ca_;
  CertFiles files_;
};

TEST_F(CertSwapTest, AnInterruptedReplacementIsCompletedOrDropped) {
  const auto a = Pair(), b = Pair();
  // Nothing staged: nothing to do.
  Write(files_.key, a.first);
  Write(files_.cert, a.second);
  ASSERT_TRUE(FinishCertSwap(files_).ok());
  EXPECT_EQ(Read(files_.cert), a.second);
  // Both staged, neither renamed: both come in.
  Write(files_.key + ".new", b.first);
  Write(files_.cert + ".new", b.second);
  ASSERT_TRUE(FinishCertSwap(files_).ok());
  EXPECT_EQ(Read(files_.key), b.first);
  EXPECT_EQ(Read(files_.cert), b.second);
  EXPECT_FALSE(std::filesystem::exists(files_.key + ".new"));
  EXPECT_FALSE(std::filesystem::exists(files_.cert + ".new"));
  // The key renamed, the certificate not yet: the certificate follows.
  Write(files_.key, a.first);
  Write(files_.cert, b.second);
  Write(files_.cert + ".new", a.second);
  ASSERT_TRUE(FinishCertSwap(files_).ok());
  EXPECT_EQ(Read(files_.cert), a.second);
  // A staged certificate that is not the key's: dropped, the pair in place stays.
  Write(files_.cert + ".new", b.second);
  ASSERT_TRUE(FinishCertSwap(files_).ok());
  EXPECT_EQ(Read(files_.cert), a.second);
  EXPECT_FALSE(std::filesystem::exists(files_.cert + ".new"));
}

TEST_F(CertSwapTest, InstallRefusesAMismatchedPairAndDueTimeIsAFractionOfTheValidity) {
  const auto a = Pair(), b = Pair();
  Write(files_.key, a.first);
  Write(files_.cert, a.second);
  core::Status st = InstallCert(files_, a.first, b.second);
  EXPECT_EQ(st.code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(files_.cert), a.second);
  ASSERT_TRUE(InstallCert(files_, b.first, b.second).ok());
  EXPECT_EQ(Read(files_.key), b.first);
  EXPECT_EQ(Read(files_.cert), b.second);
  EXPECT_TRUE(hub::KeyMatchesCert(b.first, b.second));
  EXPECT_FALSE(hub::KeyMatchesCert(a.first, b.second));
  EXPECT_FALSE(hub::KeyMatchesCert("junk", b.second));

  // Valid from kNow - 300 to kNow + 3600.
  auto validity = hub::CertValidity(b.second, "agent.pem");
  ASSERT_TRUE(validity.has_value()) << validity.error().ToString();
  EXPECT_EQ(validity->first, kNow - 300);
  EXPECT_EQ(validity->second, kNow + 3600);
  auto due = RenewalDue(b.second, 0.5, "agent.pem");
  ASSERT_TRUE(due.has_value());
  EXPECT_EQ(*due, kNow - 300 + 1950);
  auto bad = RenewalDue("not pem", 0.5, "agent.pem");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "agent.pem: not a PEM certificate");
}

}  // namespace
}  // namespace vigil::agent
