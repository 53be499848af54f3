#pragma once

// Measuring what Vigil loads into a TPM PCR and keeping the event list beside it (format:
// docs/attestation.md). Every process that measures or quotes (the agent, `vigil attest`) holds
// an flock() on EVENTS.lock while it touches the PCR and the list, so that a quote always sees a
// list and a PCR that agree.
//
//   <state_dir>/attest/events.json   the event list (govern/attest.h), rewritten atomically

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "govern/attest.h"
#include "govern/tpm.h"

namespace vigil::govern {

std::string DefaultEventListPath(const std::string& state_dir);

struct MeasureOptions {
  std::string tcti;         // tpm2-tss TCTI configuration (govern/tpm.h); required
  uint32_t pcr = kDefaultPcr;  // 16 or 23
  std::string events_path;  // required
  // The EK whose certificate a quote carries (Quote with `with_ek`); nullopt: the first the TPM
  // has of RSA 2048, ECC P-256, ECC P-384.
  std::optional<EkKind> ek_kind;
};

class Measurer {
 public:
  // Connects to the TPM and starts it up (TPM2_Startup; already started is fine).
  static core::Result<std::unique_ptr<Measurer>> Open(const MeasureOptions& options);

  // Starts a new measurement sequence: resets the PCR, replaces the event list with `first`
  // alone and extends the PCR with it. The agent calls this once at start.
  core::Status Restart(const AttestEvent& first);
  // Extends the PCR with `event` and appends it to the list. `event.pcr` is set to the
  // configured PCR.
  core::Status Measure(AttestEvent event);

  // A quote over `pcrs` (the measured PCR when empty) with the current event list and the PCR
  // values read after it, all under the lock. With `with_ek`, the document also carries the TPM's
  // EK certificate (options().ek_kind; kNotFound when the TPM has none), for a verifier that ties
  // the AK to the EK.
  core::Result<QuoteDocument> Quote(std::vector<uint32_t> pcrs, const std::string& nonce,
                                    bool with_ek = false);

  // The event list on disk ([] when there is none yet).
  core::Result<std::vector<AttestEvent>> Events() const;

  Tpm& tpm() { return *tpm_; }
  const MeasureOptions& options() const { return options_; }

 private:
  Measurer(MeasureOptions options, std::unique_ptr<Tpm> tpm)
      : options_(std::move(options)), tpm_(std::move(tpm)) {}

  MeasureOptions options_;
  std::unique_ptr<Tpm> tpm_;
};

// Quotes the measured PCR with a fresh nonce from the TPM and verifies the quote at once, with
// `allowed` as the allowlist: what an enforcing agent checks before it enforces. A TPM or file
// error is the Result's error; a quote that does not verify is a QuoteCheck with a failure.
core::Result<QuoteCheck> AttestLocally(Measurer& measurer, const std::set<Sha256Digest>& allowed);

}  // namespace vigil::govern
