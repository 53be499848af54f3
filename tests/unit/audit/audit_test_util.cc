#include "audit_test_util.h"

#include <gtest/gtest.h>

#include "audit/internal/format.h"

namespace vigil::audit::testing {

void WriteLog(const std::string& dir, int decisions, const AuditOptions& options,
              const Signer& signer, core::Clock& clock) {
  auto log = AuditLog::Open(dir, options, signer, clock);
  ASSERT_TRUE(log.has_value()) << log.error().ToString();
  for (int i = 1; i <= decisions; ++i) {
    ASSERT_TRUE((*log)->Append(RecordType::kDecision, {{"i", i}, {"action", "alert"}}).ok());
  }
  ASSERT_TRUE((*log)->Close().ok());
}

std::map<uint64_t, Located> LocateRecords(const std::string& dir) {
  std::map<uint64_t, Located> out;
  VerifyOptions o;
  o.check_signatures = false;
  auto r = VerifyLog(dir, o, [&](const RecordView& v) {
    out[v.seq] = Located{std::string(v.segment), v.offset,
                         internal::kRecordOverhead + v.payload.size(), v.type};
    return true;
  });
  EXPECT_TRUE(r.has_value());
  return out;
}

VerifyReport Verify(const std::string& dir, const PublicKey* key) {
  VerifyOptions o;
  if (key != nullptr) o.key = *key;
  auto r = VerifyLog(dir, o);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.has_value() ? *r : VerifyReport{};
}

void RewriteRecord(const std::string& dir, const Located& at, const std::string& new_payload) {
  const std::string path = dir + "/" + at.segment;
  std::string bytes = ReadFile(path);
  internal::RecordFields f;
  ASSERT_TRUE(internal::DecodeRecordHeader(std::string_view(bytes).substr(at.offset), &f));
  std::string frame;
  internal::AppendRecord(f, new_payload, &frame);
  bytes.replace(at.offset, at.size, frame);
  WriteFile(path, bytes);
}

}  // namespace vigil::audit::testing
