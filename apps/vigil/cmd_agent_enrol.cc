// vigil agent enrol: get this host a client certificate from a hub's CA (docs/hub.md, "Agents
// over gRPC with mTLS"). The key is made here and never leaves the host; the hub gets a CSR and
// the one-time token, over TLS to the hub's agent port, whose certificate must chain to the CA
// the admin handed out: as a file (--ca), or as its SHA-256 fingerprint (--ca-sha256), in which
// case the CA is taken from the port's own handshake and kept only when its fingerprint matches.

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/cert_renewal.h"
#include "apps/vigil/commands.h"
#include "core/files.h"
#include "hub/enrolment.h"
#include "hub/requests.h"
#include "vigil/v1/agent.grpc.pb.h"

namespace vigil::app {
namespace {

struct EnrolFlags {
  std::string hub, token, token_file, ca, ca_sha256, host, server_name;
  std::string dir = "/var/lib/vigil/agent-cert";
  int timeout_ms = 10000;
  bool json = false;
};

int RunAgentEnrol(const EnrolFlags& f) {
  constexpr const char* kCmd = "agent enrol";
  std::string token = f.token;
  if (token.empty() == f.token_file.empty()) {
    return ReportError(kCmd, core::InvalidArgument("give one of --token and --token-file"));
  }
  if (!f.token_file.empty()) {
    auto t = core::ReadTokenFile(f.token_file, "--token-file");
    if (!t.has_value()) return ReportError(kCmd, t.error());
    token = *t;
  }
  if (auto s = hub::CheckEnrolTokenForm(token, "--token"); !s.ok()) return ReportError(kCmd, s);
  std::string host = f.host;
  if (host.empty()) {
    char name[256] = {0};
    ::gethostname(name, sizeof name - 1);
    host = name;
  }
  if (!hub::ValidHostId(host)) {
    return ReportError(kCmd, core::InvalidArgument("--host: \"" + host +
                                                   "\": expected 1..253 bytes of [A-Za-z0-9._:-]"));
  }
  if (f.ca.empty() == f.ca_sha256.empty()) {
    return ReportError(kCmd, core::InvalidArgument("give one of --ca and --ca-sha256"));
  }
  core::Result<std::string> ca = std::string();
  if (!f.ca.empty()) {
    ca = core::ReadFile(f.ca, 1 << 20);
    if (!ca.has_value()) return ReportError(kCmd, ca.error().WithContext("--ca"));
    if (ca->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return ReportError(kCmd, core::InvalidArgument("--ca " + f.ca + ": no PEM certificate"));
    }
  } else {
    std::string pin;
    if (!hub::ParseCertFingerprint(f.ca_sha256, &pin)) {
      return ReportError(kCmd, core::InvalidArgument(
                                   "--ca-sha256: expected 64 hex digits (colons allowed), got \"" +
                                   f.ca_sha256.substr(0, 100) + "\""));
    }
    ca = hub::FetchPinnedCa(f.hub, pin, f.timeout_ms);
    if (!ca.has_value()) return ReportError(kCmd, ca.error().WithContext("--ca-sha256"));
  }
  auto key_csr = hub::MakeAgentKeyAndCsr(host);
  if (!key_csr.has_value()) return ReportError(kCmd, key_csr.error());

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ca;
  grpc::ChannelArguments args;
  if (!f.server_name.empty()) args.SetSslTargetNameOverride(f.server_name);
  auto channel = grpc::CreateCustomChannel(f.hub, grpc::SslCredentials(ssl), args);
  auto stub = v1::AgentHub::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(f.timeout_ms));
  v1::EnrolRequest in;
  in.set_schema_version(std::string(hub::kHubSchemaVersion));
  in.set_token(token);
  in.set_host(host);
  in.set_csr_pem(key_csr->second);
  v1::EnrolResponse out;
  const grpc::Status st = stub->Enrol(&ctx, in, &out);
  if (!st.ok()) {
    std::fprintf(stderr, "vigil agent enrol: error: %s: %s (gRPC code %d)\n", f.hub.c_str(),
                 st.error_message().c_str(), static_cast<int>(st.error_code()));
    return st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitUsage : kExitFailure;
  }
  if (auto s = core::MakeDirs(f.dir, 0700); !s.ok()) return ReportError(kCmd, s);
  const std::string key_path = f.dir + "/agent.key", cert_path = f.dir + "/agent.pem",
                    ca_path = f.dir + "/ca.pem";
  for (const auto& [path, text, mode] :
       {std::tuple{key_path, key_csr->first, 0600u}, std::tuple{cert_path, out.cert_pem(), 0644u},
        std::tuple{ca_path, out.ca_pem(), 0644u}}) {
    if (auto s = hub::WriteFileAtomically(path, text, mode); !s.ok()) return ReportError(kCmd, s);
  }
  if (f.json) {
    const nlohmann::json j = {{"host", out.host()}, {"group", out.group()},
                              {"key", key_path},    {"cert", cert_path},
                              {"ca", ca_path},      {"not_after", out.not_after_s()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "vigil agent enrol: enrolled as %s%s%s; key %s, certificate %s (until %lld), "
        "CA %s\n",
        out.host().c_str(), out.group().empty() ? "" : " in group ", out.group().c_str(),
        key_path.c_str(), cert_path.c_str(), static_cast<long long>(out.not_after_s()),
        ca_path.c_str());
  }
  return kExitOk;
}

struct RenewFlags {
  std::string hub, server_name;
  std::string dir = "/var/lib/vigil/agent-cert";
  int timeout_ms = 10000;
  bool json = false;
};

int RunAgentRenew(const RenewFlags& f) {
  constexpr const char* kCmd = "agent renew";
  agent::RenewOptions o;
  o.target = f.hub;
  o.files = {f.dir + "/agent.pem", f.dir + "/agent.key", f.dir + "/ca.pem"};
  o.server_name = f.server_name;
  o.timeout = std::chrono::milliseconds(f.timeout_ms);
  auto cert = core::ReadFile(o.files.cert, 1 << 20);
  if (!cert.has_value()) return ReportError(kCmd, cert.error().WithContext("--dir"));
  auto id = hub::HubCa::PeerIdentity(*cert);
  if (!id.has_value()) return ReportError(kCmd, id.error().WithContext(o.files.cert));
  o.host = id->first;
  auto renewed = agent::RenewCert(o);
  if (!renewed.has_value()) return ReportError(kCmd, renewed.error());
  if (f.json) {
    const nlohmann::json j = {{"host", o.host},
                              {"cert", o.files.cert},
                              {"sha256", renewed->sha256},
                              {"not_after", renewed->not_after_s}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("vigil agent renew: %s renewed for %s: sha256:%s (until %lld); the previous "
                "certificate is refused once this one is used\n",
                o.files.cert.c_str(), o.host.c_str(), renewed->sha256.c_str(),
                static_cast<long long>(renewed->not_after_s));
  }
  return kExitOk;
}

}  // namespace

std::function<int()> AddAgentRenewCommand(CLI::App* agent) {
  auto f = std::make_shared<RenewFlags>();
  CLI::App* renew = agent->add_subcommand(
      "renew",
      "Renew this host's hub certificate now: make a fresh key here, ask the hub (over mTLS "
      "with the current certificate) for a certificate over it, and replace agent.key and "
      "agent.pem (a running agent renews by itself: sinks[].renew_at)");
  renew->add_option("--hub", f->hub, "The hub's agent port, HOST:PORT (config agents.listen)")
      ->required();
  renew->add_option("--dir", f->dir, "Where agent.key, agent.pem and ca.pem are")
      ->capture_default_str();
  renew->add_option("--server-name", f->server_name,
                    "The name to check in the hub's certificate when --hub's host is not in "
                    "agents.server_names");
  renew->add_option("--timeout-ms", f->timeout_ms, "Deadline of the call")->capture_default_str();
  renew->add_flag("--json", f->json, "Print {host, cert, sha256, not_after}");
  renew->footer(
      "The hub refuses the previous certificate once the new one is first used. Exit codes: 0 "
      "renewed, 1 refused (e.g. a revoked certificate) or unreachable, 2 bad flags or input.");
  return [f, renew]() -> int { return renew->parsed() ? RunAgentRenew(*f) : -1; };
}

std::function<int()> AddAgentEnrolCommand(CLI::App* agent) {
  auto f = std::make_shared<EnrolFlags>();
  CLI::App* enrol = agent->add_subcommand(
      "enrol",
      "Enrol this host at a hub: make a key here, send a CSR with a one-time token (vigil hub "
      "enrol-token create) over TLS to the hub's agent port, and write the key (0600), the "
      "client certificate and the hub CA");
  enrol->add_option("--hub", f->hub, "The hub's agent port, HOST:PORT (config agents.listen)")
      ->required();
  enrol->add_option("--token", f->token, "The one-time enrolment token");
  enrol->add_option("--token-file", f->token_file, "A file whose first line is the token");
  enrol->add_option("--ca", f->ca,
                    "The hub CA certificate (<hub state_dir>/ca/ca.pem) the hub's certificate "
                    "must chain to");
  enrol->add_option("--ca-sha256", f->ca_sha256,
                    "Instead of --ca: the hub CA's SHA-256 fingerprint (hub enrol-token create "
                    "--json prints it as ca_sha256); the CA is taken from the hub port's TLS "
                    "handshake only when it has this fingerprint and signed the port's "
                    "certificate");
  enrol->add_option("--dir", f->dir, "Where to write agent.key, agent.pem and ca.pem")
      ->capture_default_str();
  enrol->add_option("--host", f->host, "The host id to enrol as (default: this host's name)");
  enrol->add_option("--server-name", f->server_name,
                    "The name to check in the hub's certificate when --hub's host is not in "
                    "agents.server_names");
  enrol->add_option("--timeout-ms", f->timeout_ms, "Deadline of the call")->capture_default_str();
  enrol->add_flag("--json", f->json, "Print {host, group, key, cert, ca, not_after}");
  enrol->footer(
      "Give one of --ca and --ca-sha256. Exit codes: 0 enrolled, 1 refused, unreachable or a CA "
      "that does not match the pin, 2 bad flags or input.");
  return [f, enrol]() -> int { return enrol->parsed() ? RunAgentEnrol(*f) : -1; };
}

}  // namespace vigil::app
