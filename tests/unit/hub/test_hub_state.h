#pragma once

// What a hub::Server needs for a test: a fresh folder named after the running test, a SQLite
// store and an audit log (fsync never) in it, signed by a new key.
//
//   TestHubState st;
//   ASSERT_TRUE(OpenTestHubState("hub_server_", clock_, &st));

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit_log.h"
#include "audit/signer.h"
#include "audit/verify.h"
#include "core/clock.h"
#include "hub/store.h"

namespace vigil::hub::testing {

struct TestHubState {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<audit::Signer> signer;
  std::unique_ptr<audit::AuditLog> log;
};

// `prefix` + pid + test name under the temp folder, emptied first. False (with the failure
// recorded) when the store or the audit log cannot be opened.
inline bool OpenTestHubState(const std::string& prefix, const core::Clock& clock,
                             TestHubState* out) {
  out->dir = std::filesystem::temp_directory_path() /
             (prefix + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(out->dir);
  std::filesystem::create_directories(out->dir);
  auto store = Store::Open((out->dir / "hub.db").string(), StoreOptions{});
  if (!store.has_value()) return ADD_FAILURE() << store.error().ToString(), false;
  out->store = std::move(store).value();
  out->signer = audit::Ed25519Signer::Generate();
  audit::AuditOptions ao;
  ao.fsync = audit::FsyncMode::kNever;
  auto log = audit::AuditLog::Open((out->dir / "audit").string(), ao, *out->signer, clock);
  if (!log.has_value()) return ADD_FAILURE() << log.error().ToString(), false;
  out->log = std::move(log).value();
  return true;
}

// Every record of the audit log in `dir` (which must verify), with its payload parsed.
inline std::vector<std::pair<audit::RecordType, nlohmann::json>> ReadAuditRecords(
    const std::filesystem::path& dir) {
  std::vector<std::pair<audit::RecordType, nlohmann::json>> out;
  auto report = audit::VerifyLog(dir.string(), audit::VerifyOptions{},
                                 [&](const audit::RecordView& r) {
                                   out.emplace_back(r.type, nlohmann::json::parse(r.payload));
                                   return true;
                                 });
  EXPECT_TRUE(report.has_value() && report->ok());
  return out;
}

}  // namespace vigil::hub::testing
