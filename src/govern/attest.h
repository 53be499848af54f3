#pragma once

// Measured-load attestation (formats: docs/attestation.md). What Vigil loads is measured into one
// TPM PCR (sha256 bank): PCR := SHA-256(PCR || digest) for every artifact, with the same
// measurement appended to an event list in the state directory. A quote is the TPM's signature
// (attestation key) over the chosen PCRs' digest and a caller's nonce; a verifier replays the
// event list and checks that it gives the quoted PCR values and holds only allowed digests.
//
// This header is the part that needs no TPM: the event list, the quote document, the allowlist
// and the verifier (OpenSSL for the signature, tss2-mu for the TPM structures). The TPM itself is
// behind govern/tpm.h.
//
// Parsers take untrusted bytes and never throw; errors are kInvalidArgument and name the source
// and the place.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::govern {

using Sha256Digest = std::array<uint8_t, 32>;

inline constexpr const char* kEventListSchema = "vigil.attest.events/v1";
inline constexpr const char* kQuoteSchema = "vigil.attest.quote/v1";
// PCR 23 (application support) is resettable and extendable from locality 0 on PC-client TPMs,
// so the agent can start each run from a known value. PCR 16 (debug) is the other such PCR.
inline constexpr uint32_t kDefaultPcr = 23;
inline constexpr uint32_t kMaxPcr = 23;
inline constexpr size_t kMaxEvents = 65536;
inline constexpr uint64_t kMaxEventListBytes = 16 << 20;
inline constexpr uint64_t kMaxQuoteBytes = 32 << 20;
inline constexpr size_t kMaxEventNameBytes = 4096;
// TPM2B_DATA holds at most 64 bytes; shorter than 8 would make replays easy.
inline constexpr size_t kMinNonceBytes = 8;
inline constexpr size_t kMaxNonceBytes = 64;

// True for the PCRs the agent may reset and use (16 and 23).
bool IsResettablePcr(uint32_t pcr);

struct AttestEvent {
  uint32_t pcr = kDefaultPcr;
  Sha256Digest digest{};
  std::string kind;  // "agent-start", "model", "policy", "file": 1..32 of [a-z0-9-]
  std::string name;  // a path or a name, 1..kMaxEventNameBytes bytes, no control characters
};

// Checks an event's kind and name (kInvalidArgument naming `where`).
core::Status ValidateEvent(const AttestEvent& e, std::string_view where);

// {"schema": kEventListSchema, "bank": "sha256", "events": [{"pcr","digest","kind","name"}]}
// with digests as 64 lower-case hex digits.
std::string EncodeEventList(const std::vector<AttestEvent>& events);
core::Result<std::vector<AttestEvent>> ParseEventList(std::string_view text,
                                                      std::string_view source);

// The PCR values the events give, starting every PCR at zero (its value after a reset).
std::map<uint32_t, Sha256Digest> ReplayEvents(const std::vector<AttestEvent>& events);
Sha256Digest ExtendDigest(const Sha256Digest& pcr, const Sha256Digest& digest);

std::string HexOf(std::string_view bytes);
template <size_t N>
std::string HexOf(const std::array<uint8_t, N>& bytes) {
  return HexOf(std::string_view(reinterpret_cast<const char*>(bytes.data()), N));
}
// Hex digits (either case) to bytes; nullopt when the text is not an even number of hex digits.
std::optional<std::string> BytesOfHex(std::string_view hex);
std::optional<Sha256Digest> DigestOfHex(std::string_view hex);
Sha256Digest Sha256Of(std::string_view data);

// The allowed digests: one per line, as `sha256sum` prints them ("<64 hex>  name") or the digest
// alone, optionally "sha256:"-prefixed; blank lines and lines starting with '#' are skipped.
core::Result<std::set<Sha256Digest>> ParseAllowlist(std::string_view text,
                                                    std::string_view source);

// What `vigil attest quote` writes.
struct QuoteDocument {
  std::string nonce;                          // bytes
  std::vector<uint32_t> pcrs;                 // sha256 bank, ascending, no repeats
  std::map<uint32_t, Sha256Digest> pcr_values;  // as read from the TPM after the quote
  std::string attest;                         // TPMS_ATTEST as the TPM marshalled it (signed)
  std::string signature;                      // TPMT_SIGNATURE, marshalled
  std::string ak_public_pem;                  // SubjectPublicKeyInfo of the attestation key
  std::vector<AttestEvent> events;
  // Optional (govern/credential.h): the AK's marshalled TPM2B_PUBLIC and the TPM's EK
  // certificate (PEM), which a verifier needs to tie the AK to the EK.
  std::string ak_tpm_public;
  std::string ek_certificate_pem;
};

std::string EncodeQuoteDocument(const QuoteDocument& q);
core::Result<QuoteDocument> ParseQuoteDocument(std::string_view text, std::string_view source);

struct QuoteCheckOptions {
  std::string nonce;                         // the nonce the verifier chose (bytes)
  std::optional<std::set<Sha256Digest>> allowed;  // every event digest must be in it
  std::string expected_ak_pem;               // when set, the quote must be signed by this key
};

enum class QuoteFailure : uint8_t {
  kNone,
  kBadSignature,      // the signature does not verify with the attestation key
  kUnknownKey,        // signed by another key than the one expected
  kNotAQuote,         // the signed structure is not a TPM-generated quote
  kNonceMismatch,     // the quote is not over the verifier's nonce
  kPcrMismatch,       // the PCR selection or values differ from what the TPM signed
  kReplayMismatch,    // replaying the event list does not give the quoted PCR values
  kDisallowedDigest,  // an event's digest is not in the allowlist
  // Credential activation (govern/credential.h):
  kUntrustedEk,         // no EK certificate, it does not chain to a trusted EK CA, or revoked
  kBadAttestationKey,   // the AK's public area is missing, not a restricted fixedTPM signing
                        // key, or not the key that signed the quote
  kActivationFailed,    // the TPM did not return the credential's secret
};
// "bad-signature", "unknown-key", "not-a-quote", "nonce-mismatch", "pcr-mismatch",
// "replay-mismatch", "disallowed-digest", "untrusted-ek", "bad-attestation-key",
// "activation-failed"; "ok" for kNone.
std::string_view QuoteFailureName(QuoteFailure f);

struct QuoteCheck {
  QuoteFailure failure = QuoteFailure::kNone;
  std::string detail;  // one sentence naming the PCR, event or field at fault
  uint64_t clock_ms = 0;  // the TPM's clock in the quote
  uint32_t reset_count = 0;
  uint32_t restart_count = 0;
  uint64_t firmware_version = 0;
  bool ok() const { return failure == QuoteFailure::kNone; }
};

// Checks in this order: the attestation key parses (kInvalidArgument otherwise) and is the
// expected one; the signature over `attest`; that `attest` is a TPM_GENERATED quote; the nonce;
// that the quoted PCR selection is the document's and its digest is that of the document's PCR
// values; that replaying the events gives those values; that every digest is allowed.
core::Result<QuoteCheck> VerifyQuote(const QuoteDocument& q, const QuoteCheckOptions& options);

}  // namespace vigil::govern
