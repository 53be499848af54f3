#pragma once

// Renewal of the client certificate a grpcs:// hub link uses (docs/hub.md, "Revoking and
// renewing agent certificates"). Before the certificate runs out, the agent makes a fresh key
// and CSR, asks the hub's Renew over its current mTLS channel, and replaces the key and the
// certificate on disk; the hub clients (agent/hub_client_grpc.h) see the new files at their next
// call and switch to them without a restart.
//
// On disk the pair changes in a fixed order: both new files are written as KEY.new and CERT.new
// (fsync), then KEY.new is renamed over KEY, then CERT.new over CERT. A crash in between leaves
// CERT.new behind; FinishCertSwap completes the change before the files are read again.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace vigil::agent {

struct CertFiles {
  std::string cert, key, ca;  // PEM files: agent.pem, agent.key, ca.pem of `vigil agent enrol`
};

// An mTLS channel to the hub's agent port `target` (HOST:PORT) with the pair in `files`, trusting
// only files.ca; `server_name` ("" = target's host) is the name checked in the hub's certificate.
// Reads the files (kNotFound, kPermissionDenied, kInvalidArgument for one that is not PEM) and
// checks that the certificate's CN is `host` and that the key is the certificate's
// (kInvalidArgument naming both).
core::Result<std::shared_ptr<grpc::Channel>> OpenHubChannel(const std::string& target,
                                                            const CertFiles& files,
                                                            const std::string& host,
                                                            const std::string& server_name);

// Completes an interrupted replacement of files.cert and files.key: when CERT.new exists, KEY.new
// (if any) becomes KEY, and CERT.new becomes CERT when it matches KEY (it is removed otherwise).
// Nothing to do is OK. Errors name the file.
core::Status FinishCertSwap(const CertFiles& files);

// Replaces files.key and files.cert with `key_pem` (0600) and `cert_pem` (0644) in the order
// above, and syncs the directory. kInvalidArgument when the key is not the certificate's.
core::Status InstallCert(const CertFiles& files, const std::string& key_pem,
                         const std::string& cert_pem);

// When the certificate `cert_pem` is due for renewal: notBefore + renew_at * (notAfter -
// notBefore), Unix seconds (kInvalidArgument naming `what` for a bad certificate).
core::Result<int64_t> RenewalDue(const std::string& cert_pem, double renew_at,
                                 const std::string& what);

struct RenewOptions {
  std::string target;  // the hub's agent port, HOST:PORT
  CertFiles files;
  std::string host;         // the certificate's CN (the agent's host id)
  std::string server_name;  // "" = the name in target; else checked in the hub's certificate
  std::chrono::milliseconds timeout{10000};
};

struct Renewed {
  std::string sha256;  // the new certificate's
  int64_t not_after_s = 0;
};

// One renewal: a fresh P-256 key and CSR, Renew over mTLS with the current pair, then
// InstallCert. Errors: kUnavailable when the hub does not answer (naming it), the hub's refusal
// (kPermissionDenied for a revoked certificate, ...), the files' errors.
core::Result<Renewed> RenewCert(const RenewOptions& o);

// Renews in the background when due (RenewalDue), retrying a failure after a minute (sooner
// near the end of the certificate's validity). Each renewal and failure is logged, and passed
// to `report` (optional; called on the renewer's thread).
class CertRenewer {
 public:
  using Report = std::function<void(const core::Result<Renewed>&)>;
  CertRenewer(RenewOptions options, double renew_at, Report report);
  ~CertRenewer();  // Stop()
  CertRenewer(const CertRenewer&) = delete;
  CertRenewer& operator=(const CertRenewer&) = delete;

  void Start();
  void Stop();  // idempotent; waits for a renewal in flight (at most the call's timeout)

 private:
  void Run();
  const RenewOptions options_;
  const double renew_at_;
  const Report report_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vigil::agent
