#pragma once

// Helpers for the audit tests: writing a small log, finding where each record lies, and editing
// segment files the way an attacker or a crash would.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "audit/signer.h"
#include "audit/verify.h"
#include "core/clock.h"
#include "../pipeline/test_util.h"

namespace vigil::audit::testing {

using pipeline::testing::ReadFile;
using pipeline::testing::TempDir;
using pipeline::testing::WriteFile;

struct Located {
  std::string segment;  // file name
  uint64_t offset = 0;
  uint64_t size = 0;    // whole frame
  RecordType type = RecordType::kDecision;
};

// Writes `decisions` decision records ({"i": n}) through a fresh AuditLog and closes it.
void WriteLog(const std::string& dir, int decisions, const AuditOptions& options,
              const Signer& signer, core::Clock& clock);
// Where every intact record lies, by sequence number (verification without signature checks).
std::map<uint64_t, Located> LocateRecords(const std::string& dir);
// Verifies with default options (and `key` when given).
VerifyReport Verify(const std::string& dir, const PublicKey* key = nullptr);
// Replaces the payload of the record at `at` (keeping its header), re-hashing the record so
// that only the chain (not the record's own hash) shows the change; returns the new frame size.
void RewriteRecord(const std::string& dir, const Located& at, const std::string& new_payload);

}  // namespace vigil::audit::testing
