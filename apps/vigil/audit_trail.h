#pragma once

// The audit log as the commands that make decisions (replay, agent) use it: one place that
// opens the log with the checkpoint key and turns what a command does into records. Appends go
// through the log's bounded queue to its writer thread, so the callers' hot paths only queue.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "audit/audit_log.h"
#include "audit/signer.h"
#include "core/event.h"
#include "core/status.h"
#include "policy/decision.h"

namespace vigil::app {

struct AuditTrailOptions {
  std::string dir;       // the log directory
  std::string key_path;  // the checkpoint key (OpenCheckpointSigner)
  std::string fsync = "batch";
  std::string writer;    // "vigil replay 0.1.0"
  // Each checkpoint the log writes (audit::AuditOptions::on_checkpoint; must not block). Empty:
  // none.
  std::function<void(const audit::CheckpointNotice&)> on_checkpoint;
};

// The checkpoint key at `key_path`: the host's minisign secret key (govern/keys.h; created with
// its public key when absent), or a 64-byte raw key as versions before the host key wrote.
core::Result<std::unique_ptr<audit::Signer>> OpenCheckpointSigner(const std::string& key_path);

// The checkpoint key a command uses: --audit-key when given, else the host key
// <state_dir>/keys/vigil.key (the key `vigil audit verify --key` checks against).
std::string AuditKeyPath(const std::string& state_dir, const std::string& flag);

// --audit-key FILE and --audit-fsync MODE, the same for every command that writes the log.
void AddAuditKeyFlags(CLI::App* cmd, std::string* key_path, std::string* fsync);

class AuditTrail {
 public:
  // Opens the key and the log. Errors name the flag or path at fault.
  static core::Result<std::unique_ptr<AuditTrail>> Open(const AuditTrailOptions& options);

  // A decision about an anomalous verdict in monitor mode: action alert, not enforced.
  void Alert(const core::Verdict& verdict);
  // The record's sha256 is of `bytes` when given (the file as the caller read and loaded it),
  // else of the file at `path` as it is now.
  void ModelChange(std::string_view action, const std::string& path, std::string_view name,
                   std::string_view version, std::string_view reason = {},
                   const std::string* bytes = nullptr);
  void ModeChange(std::string_view from, std::string_view to, std::string_view reason);
  // Any other record. A failed append is kept for Close().
  void Append(audit::RecordType type, nlohmann::json payload);
  // The same with a payload already in canonical form (audit::CanonicalWriter; the gates'
  // decisions and fallbacks).
  void AppendCanonical(audit::RecordType type, std::string_view payload);
  // A rule-based decision (policy/decision_json.h DecisionJson payload).
  void PolicyDecision(const policy::Decision& decision);
  // A policy loaded, reloaded or refused: {"action","version","generation","files","reason"}.
  void PolicyChange(std::string_view action, std::string_view version, uint64_t generation,
                    const std::vector<std::string>& files, std::string_view reason);

  // Drains and closes the log; the first error of any append or of the close.
  core::Status Close();

  const std::string& dir() const { return log_->dir(); }
  // The key that signs the checkpoints (the agent registers it with the hub).
  const audit::PublicKey& public_key() const { return signer_->public_key(); }
  // The log itself, for components that write their own record payloads (the gateway).
  audit::AuditLog& log() { return *log_; }
  const audit::OpenReport& open_report() const { return open_report_; }
  uint64_t decisions() const { return decisions_.load(); }

 private:
  AuditTrail() = default;
  // Keeps the first failed append's status for Close() and logs it.
  void Report(const core::Status& st);

  std::unique_ptr<audit::Signer> signer_;
  std::unique_ptr<audit::AuditLog> log_;
  audit::OpenReport open_report_;
  std::atomic<uint64_t> decisions_{0};
  std::atomic<bool> failed_{false};
  core::Status first_error_;  // written once, by the append that set failed_
};

}  // namespace vigil::app
