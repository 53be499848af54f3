#include "apps/vigil/audit_trail.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "audit/canonical_json.h"
#include "audit/payloads.h"
#include "core/clock.h"
#include "govern/keys.h"
#include "policy/decision_json.h"

namespace vigil::app {

std::string AuditKeyPath(const std::string& state_dir, const std::string& flag) {
  return flag.empty() ? state_dir + "/keys/vigil.key" : flag;
}

void AddAuditKeyFlags(CLI::App* cmd, std::string* key_path, std::string* fsync) {
  cmd->add_option("--audit-key", *key_path,
                  "Checkpoint signing key: the host's minisign secret key (default "
                  "<state_dir>/keys/vigil.key, as `vigil keys init` writes it; created with "
                  "its .pub when absent). A 64-byte raw key of older versions is still read");
  cmd->add_option("--audit-fsync", *fsync, "Audit log fsync policy: batch, interval or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"batch", "interval", "never"}));
}

core::Result<std::unique_ptr<audit::Signer>> OpenCheckpointSigner(const std::string& key_path) {
  // Raw 64-byte keys are what versions before the host key wrote (audit.key); minisign key files
  // are text and never exactly that size with that content.
  std::error_code ec;
  const auto size = std::filesystem::file_size(key_path, ec);
  if (!ec && size == 64) return audit::LoadOrCreateRawKey(key_path);
  VIGIL_ASSIGN_OR_RETURN(govern::SecretKey key, govern::LoadOrCreateSecretKey(key_path));
  auto signer = audit::Ed25519Signer::FromSecretKey(
      std::string_view(reinterpret_cast<const char*>(key.key.data()), key.key.size()),
      key.key_id);
  sodium_memzero(key.key.data(), key.key.size());
  if (!signer.has_value()) return signer.error().WithContext(key_path);
  return std::unique_ptr<audit::Signer>(std::move(signer).value());
}

core::Result<std::unique_ptr<AuditTrail>> AuditTrail::Open(const AuditTrailOptions& options) {
  audit::AuditOptions ao;
  if (!audit::ParseFsyncMode(options.fsync, &ao.fsync)) {
    return core::InvalidArgument("--audit-fsync: expected batch, interval or never, got \"" +
                                 options.fsync + "\"");
  }
  ao.writer = options.writer;
  ao.on_checkpoint = options.on_checkpoint;
  std::unique_ptr<AuditTrail> t(new AuditTrail());
  auto signer = OpenCheckpointSigner(options.key_path);
  if (!signer.has_value()) return signer.error().WithContext("audit key (--audit-key)");
  t->signer_ = std::move(signer).value();
  auto log = audit::AuditLog::Open(options.dir, ao, *t->signer_, core::SystemClock::Get(),
                                   &t->open_report_);
  if (!log.has_value()) return log.error().WithContext("audit log (--audit)");
  t->log_ = std::move(log).value();
  return t;
}

void AuditTrail::Append(audit::RecordType type, nlohmann::json payload) {
  Report(log_->Append(type, std::move(payload)));
}

void AuditTrail::AppendCanonical(audit::RecordType type, std::string_view payload) {
  Report(log_->AppendCanonical(type, payload));
}


void AuditTrail::Report(const core::Status& st) {
  if (!st.ok() && !failed_.exchange(true)) {
    first_error_ = st;
    spdlog::error("audit log {}: {}", log_->dir(), st.message());
  }
}

void AuditTrail::Alert(const core::Verdict& verdict) {
  core::Decision d;
  d.action = core::Action::kAlert;
  d.reason = "anomalous verdict (score " + std::to_string(verdict.score) + ")";
  d.verdict = verdict;
  // Rendered straight from the values (no nlohmann::json tree): this runs once per alert.
  thread_local std::string payload;
  payload.clear();
  audit::CanonicalWriter w(&payload);
  audit::WriteDecisionPayload(d, "monitor", &w);
  Report(log_->AppendCanonical(audit::RecordType::kDecision, payload));
  ++decisions_;
}

void AuditTrail::ModelChange(std::string_view action, const std::string& path,
                             std::string_view name, std::string_view version,
                             std::string_view reason, const std::string* bytes) {
  auto digest = bytes != nullptr ? core::Result<std::string>(audit::Sha256Hex(*bytes))
                                 : audit::FileSha256(path);
  Append(audit::RecordType::kModelChange,
         audit::ModelChangePayload(action, path, name, version,
                                   digest.has_value() ? std::string_view(*digest) : "", reason));
}

void AuditTrail::PolicyDecision(const policy::Decision& decision) {
  Append(audit::RecordType::kDecision, policy::DecisionJson(decision));
  ++decisions_;
}

void AuditTrail::PolicyChange(std::string_view action, std::string_view version,
                              uint64_t generation, const std::vector<std::string>& files,
                              std::string_view reason) {
  Append(audit::RecordType::kPolicyChange, {{"action", action},
                                            {"version", version},
                                            {"generation", generation},
                                            {"files", files},
                                            {"reason", reason}});
}

void AuditTrail::ModeChange(std::string_view from, std::string_view to, std::string_view reason) {
  Append(audit::RecordType::kModeChange, audit::ModeChangePayload(from, to, reason));
}

core::Status AuditTrail::Close() {
  core::Status st = log_->Close();
  if (failed_.load()) return first_error_;
  return st;
}

}  // namespace vigil::app
