#pragma once

// Agent enrolment (docs/hub.md, "Agents over gRPC with mTLS"): the hub's certificate authority,
// the one-time enrolment tokens an admin hands out, and the checks on an agent's certificate
// signing request. An agent generates its key itself, sends a CSR with a token over
// server-authenticated TLS, and gets back a client certificate whose common name is its host id;
// with it, it talks to the hub's agent gRPC service over mTLS.
//
// Files under the hub's state dir (created on first use):
//   ca/ca.pem        the CA certificate (give it to agents: `vigil agent enrol --ca`)
//   ca/ca.key        its private key (P-256), 0600
//   enrol-tokens.json  the tokens, stored as SHA-256 digests, never in clear; 0600
//
// Outside input (CSRs, tokens, the token file) is checked; errors are kInvalidArgument (or
// kPermissionDenied for a token that is unknown, used or expired) naming the input and reason.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil::hub {

// Writes `text` to `path` through PATH.tmp (created 0600, then given `mode`), fsync and rename.
core::Status WriteFileAtomically(const std::string& path, std::string_view text, unsigned mode);

// --- tokens -----------------------------------------------------------------------------------

// A token as printed: "vigil-enrol-" followed by 64 lowercase hex digits (32 random bytes).
inline constexpr std::string_view kEnrolTokenPrefix = "vigil-enrol-";

// Checks the form of a token an agent presents (kInvalidArgument naming `what` otherwise).
core::Status CheckEnrolTokenForm(std::string_view token, std::string_view what);

struct EnrolTokenRecord {
  std::string id;      // the first 16 hex digits of sha256 (names the token in audit records)
  std::string sha256;  // of the whole token text
  std::string group;   // the agent's group at the hub; "" = whatever it registers with
  std::string host;    // "" = any host id; else the only host id it enrols
  int64_t created_s = 0, expires_s = 0;
  int64_t used_s = 0;   // 0: unused
  std::string used_by;  // the host id that used it
  std::string created_by;
  bool audited = false;  // the hub appended "enrol-token-created" for it
};

// The token file's text (schema vigil.enrol-tokens/v1) and back. Parse errors name `source`,
// the token index and the field.
core::Result<std::vector<EnrolTokenRecord>> ParseEnrolTokenFile(std::string_view text,
                                                                std::string_view source);
std::string FormatEnrolTokenFile(const std::vector<EnrolTokenRecord>& tokens);

// The token file, shared by the running hub and `vigil hub enrol-token create` (every change
// holds an exclusive flock on PATH.lock and replaces the file by rename).
class EnrolTokens {
 public:
  explicit EnrolTokens(std::string path) : path_(std::move(path)) {}

  struct Issued {
    std::string token;  // shown once, to the admin
    EnrolTokenRecord record;
  };
  // A new token valid for `ttl_s` seconds from `now_s`. `group` "" or a group name; `host` ""
  // or a host id. Records expired for more than a day are dropped from the file.
  core::Result<Issued> Create(const std::string& group, const std::string& host, int64_t ttl_s,
                              int64_t now_s, const std::string& created_by);
  // Marks the token used by `host` when it exists, is unused, unexpired and (if it names a
  // host) names `host`; returns its record. kPermissionDenied says which check failed;
  // kInvalidArgument for a token of the wrong form.
  core::Result<EnrolTokenRecord> Consume(std::string_view token, const std::string& host,
                                         int64_t now_s);
  // Tokens not yet audited, marked audited (the hub appends one record for each).
  core::Result<std::vector<EnrolTokenRecord>> TakeUnaudited();
  core::Result<std::vector<EnrolTokenRecord>> List() const;
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
};

// --- certificates -----------------------------------------------------------------------------

// A CSR's checked content.
struct CsrInfo {
  std::string key_type;  // "EC P-256", "EC P-384", "Ed25519", "RSA 3072", ...
};

// Parses one PEM "CERTIFICATE REQUEST": it must verify with its own key, and the key must be
// EC P-256/P-384, Ed25519, or RSA of at least 2048 bits. The CSR's subject and extensions are
// ignored (the hub sets them). Errors name `what`.
core::Result<CsrInfo> CheckCsr(std::string_view pem, std::string_view what);

// The agent's side: a new P-256 key (PEM, unencrypted) and a CSR for it with CN=`host`.
core::Result<std::pair<std::string, std::string>> MakeAgentKeyAndCsr(const std::string& host);

// The SHA-256 of a PEM certificate's DER encoding: 64 lowercase hex digits (what
// `openssl x509 -noout -fingerprint -sha256` prints, without the colons). kInvalidArgument for
// text that is not a PEM certificate.
core::Result<std::string> CertSha256(std::string_view pem);

// The validity of a PEM certificate: notBefore and notAfter, Unix seconds. kInvalidArgument
// naming `what` for text that is not a PEM certificate.
core::Result<std::pair<int64_t, int64_t>> CertValidity(std::string_view pem, std::string_view what);

// True when the PEM private key `key_pem` is the key of the PEM certificate `cert_pem` (false
// for text that is not one or the other).
bool KeyMatchesCert(std::string_view key_pem, std::string_view cert_pem);

// A certificate fingerprint as the admin may write it: 64 hex digits, upper or lower case, with
// or without colons between the bytes and a "sha256:" prefix; *out: 64 lowercase hex digits.
bool ParseCertFingerprint(std::string_view text, std::string* out);

// The hub CA as the agent port presents it, pinned by fingerprint (`vigil agent enrol
// --ca-sha256`): a TLS handshake with `host_port` (HOST:PORT, [IPv6]:PORT) that trusts nothing
// yet, then, among the certificates the server sent, the one whose SHA-256 is `sha256` (64
// lowercase hex digits), as PEM, provided it is a CA certificate that signed the server's own.
// The caller then connects again with it as the only root (full verification, names included).
// Errors: kUnavailable naming the address (resolve, connect, handshake, `timeout_ms` passed);
// kPermissionDenied when no presented certificate has that fingerprint (naming those seen) or
// the one that does is not the server certificate's CA.
core::Result<std::string> FetchPinnedCa(const std::string& host_port, const std::string& sha256,
                                        int timeout_ms);

class HubCa {
 public:
  ~HubCa();
  HubCa(HubCa&&) noexcept;
  HubCa& operator=(HubCa&&) noexcept;

  // Loads DIR/ca.pem and DIR/ca.key, or creates both (P-256, valid 10 years, key 0600) when
  // neither exists. One without the other, or a key that does not match, is an error.
  static core::Result<HubCa> LoadOrCreate(const std::string& dir, int64_t now_s);

  // A client certificate for `host` (CN=host, OU=group when not "", extendedKeyUsage
  // clientAuth) over the CSR's key, valid from now - 5 minutes to now + `ttl_s`. CheckCsr's
  // errors for a bad CSR.
  core::Result<std::string> SignAgentCsr(std::string_view csr_pem, const std::string& host,
                                         const std::string& group, int64_t now_s,
                                         int64_t ttl_s) const;
  // A fresh server key and certificate (PEM key, PEM cert) for the agent port, with the names
  // (DNS names or IP addresses) as subjectAltNames, valid for `ttl_s`.
  core::Result<std::pair<std::string, std::string>> IssueServerCert(
      const std::vector<std::string>& names, int64_t now_s, int64_t ttl_s) const;

  const std::string& cert_pem() const { return cert_pem_; }

  // The host (CN) and group (OU, "" when none) of a PEM client certificate (as gRPC's auth
  // context hands it over, already verified against the CA).
  static core::Result<std::pair<std::string, std::string>> PeerIdentity(std::string_view pem);

 private:
  struct Keys;
  explicit HubCa(std::unique_ptr<Keys> keys, std::string cert_pem);
  std::unique_ptr<Keys> keys_;
  std::string cert_pem_;
};

}  // namespace vigil::hub
