#include "govern/measure.h"

#include <filesystem>

#include "core/file_lock.h"
#include "core/files.h"
#include "govern/internal/files.h"

namespace vigil::govern {

using core::Result;
using core::Status;

namespace {

// An exclusive lock on EVENTS_PATH.lock, creating its directory first.
Result<core::FileLock> LockEvents(const std::string& events_path) {
  const std::string parent = std::filesystem::path(events_path).parent_path().string();
  if (!parent.empty()) VIGIL_RETURN_IF_ERROR(core::MakeDirs(parent, 0700));
  return core::FileLock::Take(events_path + ".lock");
}

Result<std::vector<AttestEvent>> ReadEvents(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return std::vector<AttestEvent>{};
  VIGIL_ASSIGN_OR_RETURN(const std::string text, core::ReadFile(path, kMaxEventListBytes));
  return ParseEventList(text, path);
}

}  // namespace

std::string DefaultEventListPath(const std::string& state_dir) {
  return state_dir + "/attest/events.json";
}

Result<std::unique_ptr<Measurer>> Measurer::Open(const MeasureOptions& options) {
  if (!IsResettablePcr(options.pcr)) {
    return core::InvalidArgument("attestation.pcr: " + std::to_string(options.pcr) +
                                 " is not resettable from locality 0 (use 16 or 23)");
  }
  if (options.events_path.empty()) return core::InvalidArgument("no event list path");
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<Tpm> tpm, Tpm::Open(options.tcti));
  VIGIL_RETURN_IF_ERROR(tpm->Startup());
  return std::unique_ptr<Measurer>(new Measurer(options, std::move(tpm)));
}

Status Measurer::Restart(const AttestEvent& first) {
  AttestEvent e = first;
  e.pcr = options_.pcr;
  VIGIL_RETURN_IF_ERROR(ValidateEvent(e, "measurement"));
  VIGIL_ASSIGN_OR_RETURN(core::FileLock lock, LockEvents(options_.events_path));
  VIGIL_RETURN_IF_ERROR(tpm_->ResetPcr(options_.pcr));
  VIGIL_RETURN_IF_ERROR(tpm_->ExtendPcr(options_.pcr, e.digest));
  return internal::WriteFileAtomic(options_.events_path, EncodeEventList({e}), 0644);
}

Status Measurer::Measure(AttestEvent event) {
  event.pcr = options_.pcr;
  VIGIL_RETURN_IF_ERROR(ValidateEvent(event, "measurement"));
  VIGIL_ASSIGN_OR_RETURN(core::FileLock lock, LockEvents(options_.events_path));
  VIGIL_ASSIGN_OR_RETURN(std::vector<AttestEvent> events, ReadEvents(options_.events_path));
  if (events.size() >= kMaxEvents) {
    return core::OutOfRange(options_.events_path + ": the event list is full (" +
                            std::to_string(kMaxEvents) + " events); restart the agent");
  }
  VIGIL_RETURN_IF_ERROR(tpm_->ExtendPcr(options_.pcr, event.digest));
  events.push_back(std::move(event));
  return internal::WriteFileAtomic(options_.events_path, EncodeEventList(events), 0644);
}

Result<std::vector<AttestEvent>> Measurer::Events() const {
  return ReadEvents(options_.events_path);
}

Result<QuoteDocument> Measurer::Quote(std::vector<uint32_t> pcrs, const std::string& nonce,
                                      bool with_ek) {
  if (pcrs.empty()) pcrs.push_back(options_.pcr);
  std::sort(pcrs.begin(), pcrs.end());
  pcrs.erase(std::unique(pcrs.begin(), pcrs.end()), pcrs.end());
  VIGIL_ASSIGN_OR_RETURN(core::FileLock lock, LockEvents(options_.events_path));
  QuoteDocument q;
  VIGIL_ASSIGN_OR_RETURN(q.events, ReadEvents(options_.events_path));
  VIGIL_ASSIGN_OR_RETURN(TpmQuote tq, tpm_->Quote(pcrs, nonce));
  for (uint32_t p : pcrs) {
    VIGIL_ASSIGN_OR_RETURN(q.pcr_values[p], tpm_->ReadPcr(p));
  }
  q.nonce = nonce;
  q.pcrs = std::move(pcrs);
  q.attest = std::move(tq.attest);
  q.signature = std::move(tq.signature);
  q.ak_public_pem = std::move(tq.ak_public_pem);
  q.ak_tpm_public = std::move(tq.ak_tpm_public);
  if (with_ek) {
    Result<std::string> der = core::NotFound("no EK kind to read");
    EkKind kind = EkKind::kRsa2048;
    for (EkKind k : kAllEkKinds) {
      if (options_.ek_kind.has_value() && *options_.ek_kind != k) continue;
      kind = k;
      der = tpm_->ReadEkCertificate(k);
      if (der.has_value() || der.error().code() != core::StatusCode::kNotFound) break;
    }
    if (!der.has_value()) return der.error();
    const std::string source = std::string("the TPM's ") + EkKindName(kind) + " EK certificate";
    VIGIL_ASSIGN_OR_RETURN(const EkCertificate ek, ParseEkCertificate(*der, source));
    if (ek.kind != kind) {
      return core::InvalidArgument(source + ": holds a " + EkKindName(ek.kind) + " key");
    }
    q.ek_certificate_pem = EkCertificatePem(ek);
  }
  return q;
}

Result<QuoteCheck> AttestLocally(Measurer& measurer, const std::set<Sha256Digest>& allowed) {
  VIGIL_ASSIGN_OR_RETURN(const std::string nonce, measurer.tpm().Random(32));
  VIGIL_ASSIGN_OR_RETURN(const QuoteDocument q, measurer.Quote({}, nonce));
  QuoteCheckOptions options;
  options.nonce = nonce;
  options.allowed = allowed;
  return VerifyQuote(q, options);
}

}  // namespace vigil::govern
