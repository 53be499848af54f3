#include "agent/cert_renewal.h"

#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/files.h"
#include "hub/enrolment.h"
#include "hub/requests.h"
#include "vigil/v1/agent.grpc.pb.h"

namespace vigil::agent {
namespace {

constexpr uint64_t kMaxPemBytes = 1 << 20;
// The largest answer taken (an artifact and its signature): gRPC's default is 4 MiB.
constexpr int kMaxReceiveBytes = 256 << 20;

core::Result<std::string> ReadPem(const std::string& path, const char* what) {
  auto bytes = core::ReadFile(path, kMaxPemBytes);
  if (!bytes.has_value()) return bytes.error().WithContext(what);
  if (bytes->find("-----BEGIN ") == std::string::npos) {
    return core::InvalidArgument(std::string(what) + " " + path + ": not PEM");
  }
  return bytes;
}

core::Status SyncDir(const std::string& file) {
  const std::string dir = std::filesystem::path(file).parent_path().string();
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return core::Unavailable(dir + ": cannot open: " + std::strerror(errno));
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return core::Unavailable(dir + ": fsync failed: " + std::strerror(errno));
  return {};
}

core::Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return core::Unavailable(from + " -> " + to + ": cannot rename: " + std::strerror(errno));
  }
  return {};
}

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

core::Result<std::shared_ptr<grpc::Channel>> OpenHubChannel(const std::string& target,
                                                            const CertFiles& files,
                                                            const std::string& host,
                                                            const std::string& server_name) {
  VIGIL_ASSIGN_OR_RETURN(const std::string cert, ReadPem(files.cert, "hub certificate"));
  VIGIL_ASSIGN_OR_RETURN(const std::string key, ReadPem(files.key, "hub certificate key"));
  VIGIL_ASSIGN_OR_RETURN(const std::string ca, ReadPem(files.ca, "hub CA"));
  auto id = hub::HubCa::PeerIdentity(cert);
  if (!id.has_value()) return id.error().WithContext("hub certificate " + files.cert);
  if (id->first != host) {
    return core::InvalidArgument("hub certificate " + files.cert + " is for host \"" + id->first +
                                 "\", but this agent's host id is \"" + host +
                                 "\" (enrol again with --host " + host + ", or set host)");
  }
  if (!hub::KeyMatchesCert(key, cert)) {
    return core::InvalidArgument("hub certificate key " + files.key + " is not the key of " +
                                 files.cert);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_cert_chain = cert;
  ssl.pem_private_key = key;
  ssl.pem_root_certs = ca;
  // Abseil's deadlock detection off for gRPC's locks, as in vigil serve (src/api/grpc_api.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

core::Status FinishCertSwap(const CertFiles& files) {
  const std::string cert_new = files.cert + ".new", key_new = files.key + ".new";
  std::error_code ec;
  if (!std::filesystem::exists(cert_new, ec)) return {};
  if (std::filesystem::exists(key_new, ec)) VIGIL_RETURN_IF_ERROR(Rename(key_new, files.key));
  auto cert = core::ReadFile(cert_new, kMaxPemBytes);
  auto key = core::ReadFile(files.key, kMaxPemBytes);
  if (cert.has_value() && key.has_value() && hub::KeyMatchesCert(*key, *cert)) {
    VIGIL_RETURN_IF_ERROR(Rename(cert_new, files.cert));
    spdlog::warn("hub certificate: completed the interrupted renewal of {}", files.cert);
  } else {
    std::filesystem::remove(cert_new, ec);
    spdlog::warn("hub certificate: dropped {}: it is not the certificate of {}", cert_new,
                 files.key);
  }
  return SyncDir(files.cert);
}

core::Status InstallCert(const CertFiles& files, const std::string& key_pem,
                         const std::string& cert_pem) {
  if (!hub::KeyMatchesCert(key_pem, cert_pem)) {
    return core::InvalidArgument("the renewed certificate is not over the key made for it");
  }
  // (WriteFileAtomically goes through NAME.tmp, so NAME.new appears whole.)
  VIGIL_RETURN_IF_ERROR(hub::WriteFileAtomically(files.key + ".new", key_pem, 0600));
  VIGIL_RETURN_IF_ERROR(hub::WriteFileAtomically(files.cert + ".new", cert_pem, 0644));
  VIGIL_RETURN_IF_ERROR(Rename(files.key + ".new", files.key));
  VIGIL_RETURN_IF_ERROR(Rename(files.cert + ".new", files.cert));
  return SyncDir(files.cert);
}

core::Result<int64_t> RenewalDue(const std::string& cert_pem, double renew_at,
                                 const std::string& what) {
  VIGIL_ASSIGN_OR_RETURN(const auto validity, hub::CertValidity(cert_pem, what));
  const auto [from, to] = validity;
  return from + static_cast<int64_t>(renew_at * static_cast<double>(to - from));
}

core::Result<Renewed> RenewCert(const RenewOptions& o) {
  VIGIL_RETURN_IF_ERROR(FinishCertSwap(o.files));
  VIGIL_ASSIGN_OR_RETURN(auto channel, OpenHubChannel(o.target, o.files, o.host, o.server_name));
  VIGIL_ASSIGN_OR_RETURN(const auto key_csr, hub::MakeAgentKeyAndCsr(o.host));
  auto stub = v1::AgentHub::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + o.timeout);
  v1::RenewRequest in;
  in.set_schema_version(std::string(hub::kHubSchemaVersion));
  in.set_csr_pem(key_csr.second);
  v1::EnrolResponse out;
  const grpc::Status st = stub->Renew(&ctx, in, &out);
  if (!st.ok()) {
    const std::string why = "hub " + o.target + ": Renew: " + st.error_message();
    switch (st.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return core::Unavailable(why);
      case grpc::StatusCode::INVALID_ARGUMENT:
        return core::InvalidArgument(why);
      case grpc::StatusCode::PERMISSION_DENIED:
      case grpc::StatusCode::UNAUTHENTICATED:
        return core::Status(core::StatusCode::kPermissionDenied, why);
      default:
        return core::FailedPrecondition(why + " (gRPC code " +
                                        std::to_string(static_cast<int>(st.error_code())) + ")");
    }
  }
  auto id = hub::HubCa::PeerIdentity(out.cert_pem());
  if (!id.has_value()) return id.error().WithContext("the renewed certificate");
  if (id->first != o.host) {
    return core::InvalidArgument("the renewed certificate is for host \"" + id->first +
                                 "\", not \"" + o.host + "\"");
  }
  VIGIL_RETURN_IF_ERROR(InstallCert(o.files, key_csr.first, out.cert_pem()));
  VIGIL_ASSIGN_OR_RETURN(std::string sha256, hub::CertSha256(out.cert_pem()));
  return Renewed{std::move(sha256), out.not_after_s()};
}

CertRenewer::CertRenewer(RenewOptions options, double renew_at, Report report)
    : options_(std::move(options)), renew_at_(renew_at), report_(std::move(report)) {}

CertRenewer::~CertRenewer() { Stop(); }

void CertRenewer::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void CertRenewer::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CertRenewer::Run() {
  int64_t retry_at = 0;  // after a failure: not before this
  while (true) {
    int64_t wait_s = 60;
    auto cert = core::ReadFile(options_.files.cert, kMaxPemBytes);
    auto due = cert.has_value() ? RenewalDue(*cert, renew_at_, options_.files.cert)
                                : core::Result<int64_t>(cert.error());
    if (!due.has_value()) {
      spdlog::error("hub certificate renewal: {}", due.error().message());
    } else {
      const int64_t now = NowS();
      const int64_t at = std::max(*due, retry_at);
      if (now >= at) {
        auto renewed = RenewCert(options_);
        if (renewed.has_value()) {
          spdlog::info("hub certificate renewed: {} is now sha256:{} (until {})",
                       options_.files.cert, renewed->sha256, renewed->not_after_s);
          retry_at = 0;
        } else {
          spdlog::error("ALERT hub certificate renewal failed: {}", renewed.error().message());
          auto validity = hub::CertValidity(*cert, options_.files.cert);
          const int64_t left = validity.has_value() ? validity->second - now : 0;
          retry_at = now + std::clamp<int64_t>(left / 4, 1, 60);
        }
        if (report_) report_(renewed);
        wait_s = 1;  // (then the new certificate's due time)
      } else {
        wait_s = std::min<int64_t>(at - now, 60);
      }
    }
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, std::chrono::seconds(wait_s), [this] { return stop_; })) return;
  }
}

}  // namespace vigil::agent
