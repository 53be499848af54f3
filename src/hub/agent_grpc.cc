#include "hub/agent_grpc.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "api/grpc_status.h"
#include "govern/attest.h"
#include "hub/checkpoint_requests.h"
#include "hub/checkpoints.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"
#include "vigil/v1/agent.grpc.pb.h"

namespace vigil::hub {
namespace {

using nlohmann::json;

grpc::Status ToGrpc(const core::Status& s) { return api::GrpcStatusOf(s); }

core::Status CheckVersion(const std::string& v) {
  if (v == kHubSchemaVersion) return {};
  return core::InvalidArgument("schema_version: expected \"" + std::string(kHubSchemaVersion) +
                               "\", got \"" + v.substr(0, 64) + "\"");
}

// What both register and heartbeat bodies start with (hub/fleet_requests.h).
template <typename Req>
json ReportBody(const std::string& host, const Req& in) {
  json body = {{"host", host},
               {"mode", in.mode()},
               {"policy", {{"version", in.policy().version()}, {"digest", in.policy().digest()}}},
               {"model", {{"version", in.model().version()}, {"digest", in.model().digest()}}}};
  if (in.addresses_size() > 0) {
    json addresses = json::array();
    for (const std::string& a : in.addresses()) addresses.push_back(a);
    body["addresses"] = std::move(addresses);
  }
  return body;
}

json AuditKeyJson(const v1::AuditKey& k) {
  return {{"key_id", k.key_id()}, {"public_key", k.public_key()}};
}

void FillAnswer(const FleetAnswer& a, v1::FleetAnswer* out) {
  out->set_schema_version(std::string(kHubSchemaVersion));
  out->set_host(a.host);
  out->set_group(a.group);
  out->set_attestation_state(a.attestation);
  out->set_attestation_reason(a.attestation_reason);
  out->set_enforce_allowed(a.enforce_allowed);
  out->set_enforce_reason(a.enforce_reason);
  for (const FleetAnswer::Update& u : a.updates) {
    v1::Update* p = out->add_updates();
    p->set_kind(u.kind);
    p->set_digest(u.digest);
    p->set_rollout(u.rollout);
  }
  const json& extra = a.attestation_extra;
  auto text = [](const json& o, const char* key) {
    return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>()
                                                                  : std::string();
  };
  if (extra.is_object() && extra.contains("challenge")) {
    const json& c = extra["challenge"];
    v1::CredentialChallenge* p = out->mutable_challenge();
    p->set_token(text(c, "token"));
    p->set_credential_blob(text(c, "credential_blob"));
    p->set_encrypted_secret(text(c, "encrypted_secret"));
  }
  out->set_quote_nonce(text(extra, "quote_nonce"));
}

void FillEscalation(const EscalationRow& r, bool created, v1::Escalation* out) {
  out->set_schema_version(std::string(kHubSchemaVersion));
  out->set_id(r.id);
  out->set_escalation_id(r.request.escalation_id);
  out->set_state(std::string(EscalationStateName(r.state)));
  const auto outcome = r.outcome();
  out->set_outcome(outcome ? std::string(VerdictName(*outcome)) : "");
  out->set_decided_by(r.decided_by);
  out->set_note(r.note);
  out->set_deadline_ms(r.deadline_ms);
  out->set_created(created);
}

struct Peer {
  std::string host, group;
  std::string cert_sha256;  // of the client certificate the call came with
};

// The address of gRPC's peer string ("ipv4:10.0.0.5:51234", "ipv6:[::1]:51234", with the
// brackets sometimes percent-encoded) without its port: enrolment attempts are counted per
// address. Another form is kept whole.
std::string PeerAddress(std::string_view peer) {
  for (std::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (peer.substr(0, scheme.size()) != scheme) continue;
    std::string_view a = peer.substr(scheme.size());
    for (auto [open, close] : {std::pair<std::string_view, std::string_view>{"[", "]"},
                               std::pair<std::string_view, std::string_view>{"%5B", "%5D"}}) {
      if (a.substr(0, open.size()) != open) continue;
      const size_t end = a.find(close);
      return std::string(end == std::string_view::npos ? a
                                                       : a.substr(open.size(), end - open.size()));
    }
    const size_t port = a.rfind(':');
    return std::string(port == std::string_view::npos ? a : a.substr(0, port));
  }
  return std::string(peer);
}

// The caller's identity from its verified client certificate; UNAUTHENTICATED without one.
grpc::Status PeerOf(const grpc::ServerContext& ctx, Peer* out) {
  auto auth = ctx.auth_context();
  const auto pems = auth && auth->IsPeerAuthenticated() ? auth->FindPropertyValues("x509_pem_cert")
                                                        : std::vector<grpc::string_ref>{};
  if (pems.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client certificate: enrol first (vigil agent enrol) and call with "
                        "the certificate the hub issued");
  }
  auto id = HubCa::PeerIdentity(std::string_view(pems.front().data(), pems.front().size()));
  if (!id.has_value()) return ToGrpc(id.error());
  out->host = std::move(id->first);
  out->group = std::move(id->second);
  auto sha256 = CertSha256(std::string_view(pems.front().data(), pems.front().size()));
  if (!sha256.has_value()) return ToGrpc(sha256.error());
  out->cert_sha256 = std::move(sha256).value();
  return grpc::Status::OK;
}

// The prelude of every method but Enrol: the caller's certificate, then the schema version
// (Service::Admit adds the revocation check).
grpc::Status AdmitCaller(const grpc::ServerContext& ctx, const std::string& version, Peer* peer) {
  if (grpc::Status g = PeerOf(ctx, peer); !g.ok()) return g;
  return ToGrpc(CheckVersion(version));
}

}  // namespace

class AgentGrpc::Service final : public v1::AgentHub::Service {
 public:
  explicit Service(AgentGrpc& owner) : o_(owner) {}

  grpc::Status Enrol(grpc::ServerContext* ctx, const v1::EnrolRequest* in,
                     v1::EnrolResponse* out) override {
    const std::string from = PeerAddress(ctx->peer());
    bool first_refusal = false;
    if (!o_.AdmitEnrol(from, o_.clock_.NowUnixNanos() / 1'000'000'000, &first_refusal)) {
      const std::string why = "more than " + std::to_string(o_.options_.enrol_attempts_per_minute) +
                              " enrolment attempts in a minute from " + from;
      if (first_refusal) {
        (void)o_.audit_.Append(
            audit::RecordType::kAccessGrant,
            {{"action", "agent-enrol-refused"},
             {"host", in->host().substr(0, 253)},
             {"peer", from},
             {"reason", "rate limit: " + why + " (further refusals this minute are not audited)"}});
      }
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why + "; try again later");
    }
    if (core::Status s = CheckVersion(in->schema_version()); !s.ok()) return ToGrpc(s);
    if (!ValidHostId(in->host())) {
      return ToGrpc(core::InvalidArgument("host: expected 1..253 bytes of [A-Za-z0-9._:-]"));
    }
    if (core::Status s = CheckEnrolTokenForm(in->token(), "token"); !s.ok()) return ToGrpc(s);
    // The CSR is checked before the token is spent: a bad request leaves the token usable.
    if (auto csr = CheckCsr(in->csr_pem(), "csr_pem"); !csr.has_value()) {
      return ToGrpc(csr.error());
    }
    if (core::Status s = o_.AuditNewTokens(); !s.ok()) return ToGrpc(s);
    const int64_t now = o_.clock_.NowUnixNanos() / 1'000'000'000;
    auto token = o_.tokens_.Consume(in->token(), in->host(), now);
    if (!token.has_value()) {
      (void)o_.audit_.Append(audit::RecordType::kAccessGrant,
                             {{"action", "agent-enrol-refused"},
                              {"host", in->host()},
                              {"peer", from},
                              {"reason", token.error().message()}});
      return ToGrpc(token.error());
    }
    auto cert =
        o_.ca_.SignAgentCsr(in->csr_pem(), in->host(), token->group, now, o_.options_.cert_ttl_s);
    if (!cert.has_value()) return ToGrpc(cert.error());
    const int64_t not_after = now + o_.options_.cert_ttl_s;
    auto sha256 =
        o_.server_.certs().Record(*cert, in->host(), token->group, "enrolled", "", not_after);
    if (!sha256.has_value()) return ToGrpc(sha256.error());
    core::Status st =
        o_.audit_.Append(audit::RecordType::kAccessGrant, {{"action", "agent-enrolled"},
                                                           {"host", in->host()},
                                                           {"group", token->group},
                                                           {"token", token->id},
                                                           {"sha256", *sha256},
                                                           {"expires", not_after}});
    if (!st.ok()) return ToGrpc(core::Unavailable("audit log: " + st.message()));
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_host(in->host());
    out->set_group(token->group);
    out->set_cert_pem(*cert);
    out->set_ca_pem(o_.ca_.cert_pem());
    out->set_not_after_s(not_after);
    return grpc::Status::OK;
  }

  grpc::Status Nonce(grpc::ServerContext* ctx, const v1::NonceRequest* in,
                     v1::NonceResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_nonce(o_.server_.fleet().IssueNonce(peer.host));
    return grpc::Status::OK;
  }

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* in,
                        v1::FleetAnswer* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    // The same checks as POST /v1/agents/register, on the same body; the host is the
    // certificate's, and so is the group when the certificate names one.
    json body = ReportBody(peer.host, *in);
    body["vigil_version"] = in->vigil_version();
    body["enforce_wanted"] = in->enforce_wanted();
    if (!peer.group.empty()) {
      body["group"] = peer.group;
    } else if (!in->group().empty()) {
      body["group"] = in->group();
    }
    if (!in->attestation().empty()) body["attestation"] = in->attestation();
    if (in->has_audit_key()) body["audit_key"] = AuditKeyJson(in->audit_key());
    auto report = ParseRegisterRequest(body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (!report.has_value()) return ToGrpc(report.error());
    auto answer = o_.server_.fleet().Register(*report, PeerAddress(ctx->peer()));
    if (!answer.has_value()) return ToGrpc(answer.error());
    FillAnswer(*answer, out);
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* in,
                         v1::FleetAnswer* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    json body = ReportBody(peer.host, *in);
    body["health"] = {{"events_per_s", in->health().events_per_s()},
                      {"drops", in->health().drops()},
                      {"alerts", in->health().alerts()}};
    if (in->has_refusal()) {
      body["refusal"] = {{"kind", in->refusal().kind()},
                         {"digest", in->refusal().digest()},
                         {"reason", in->refusal().reason()},
                         {"time_ms", in->refusal().time_ms()}};
    }
    if (!in->attestation().empty()) body["attestation"] = in->attestation();
    auto report = ParseHeartbeatRequest(body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (!report.has_value()) return ToGrpc(report.error());
    auto answer = o_.server_.fleet().Heartbeat(*report, PeerAddress(ctx->peer()));
    if (!answer.has_value()) return ToGrpc(answer.error());
    FillAnswer(*answer, out);
    return grpc::Status::OK;
  }

  grpc::Status FetchArtifact(grpc::ServerContext* ctx, const v1::FetchArtifactRequest* in,
                             v1::Artifact* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    std::string digest;
    if (!ParseDigest(in->digest(), &digest)) {
      return ToGrpc(core::InvalidArgument("digest: expected 64 lowercase hex digits (SHA-256)"));
    }
    auto a = o_.server_.store().Artifact(digest, true);
    if (!a.has_value()) return ToGrpc(a.error());
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_digest(a->digest);
    out->set_kind(a->kind);
    out->set_name(a->name);
    out->set_content(a->content);
    out->set_signature(a->signature);
    return grpc::Status::OK;
  }

  grpc::Status Escalate(grpc::ServerContext* ctx, const v1::EscalateRequest* in,
                        v1::Escalation* out) override {
    Peer peer;
    if (grpc::Status g = PeerOf(*ctx, &peer); !g.ok()) return g;
    // The same checks as POST /v1/escalations (the schema version among them).
    json body = {{"schema_version", in->schema_version()},
                 {"host", peer.host},
                 {"escalation_id", in->escalation_id()},
                 {"rule", in->rule()},
                 {"action", in->action()},
                 {"reason", in->reason()},
                 {"pid", in->pid()},
                 {"process", in->process()}};
    if (in->timeout_s() != 0) body["timeout_s"] = in->timeout_s();
    if (!in->default_verdict().empty()) body["default"] = in->default_verdict();
    auto e = ParseEscalationRequest(body.dump());
    if (!e.has_value()) return ToGrpc(e.error());
    bool created = false;
    auto row = o_.server_.OpenEscalation(*e, peer.host, &created);
    if (!row.has_value()) return ToGrpc(row.error());
    FillEscalation(*row, created, out);
    return grpc::Status::OK;
  }

  grpc::Status GetEscalation(grpc::ServerContext* ctx, const v1::GetEscalationRequest* in,
                             v1::Escalation* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    auto row = o_.server_.HostEscalation(in->id(), peer.host);
    if (!row.has_value()) return ToGrpc(row.error());
    FillEscalation(*row, false, out);
    return grpc::Status::OK;
  }

  grpc::Status Activate(grpc::ServerContext* ctx, const v1::ActivateRequest* in,
                        v1::ActivateResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    // The same checks as POST /v1/agents/activate, on the same body.
    const json body = {
        {"host", peer.host}, {"token", in->token()}, {"secret", govern::HexOf(in->secret())}};
    auto req = ParseActivateRequest(body.dump());
    if (!req.has_value()) return ToGrpc(req.error());
    auto a = o_.server_.fleet().Activate(*req);
    if (!a.has_value()) return ToGrpc(a.error());
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_host(a->host);
    out->set_attestation_state(a->attestation);
    out->set_attestation_reason(a->attestation_reason);
    out->set_enforce_allowed(a->enforce_allowed);
    out->set_enforce_reason(a->enforce_reason);
    return grpc::Status::OK;
  }

  grpc::Status Ingest(grpc::ServerContext* ctx, const v1::IngestRequest* in,
                      v1::IngestResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    std::string message_id;
    auto res = o_.server_.IngestFromAgent(in->message(), peer.host, &message_id);
    if (!res.has_value()) return ToGrpc(res.error());
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_message_id(message_id);
    out->set_duplicate(res->duplicate);
    out->set_findings(static_cast<int64_t>(res->findings));
    out->set_new_incidents(static_cast<int64_t>(res->new_incidents));
    return grpc::Status::OK;
  }

  grpc::Status Checkpoint(grpc::ServerContext* ctx, const v1::CheckpointRequest* in,
                          v1::CheckpointResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    // The same checks as POST /v1/agents/checkpoints, on the same body; the host is the
    // certificate's.
    const json body = {{"schema_version", kHubSchemaVersion},
                       {"host", peer.host},
                       {"seq", in->seq()},
                       {"covers", in->covers()},
                       {"chain_hash", in->chain_hash()},
                       {"time_ns", in->time_ns()},
                       {"key_id", in->key_id()},
                       {"public_key", in->public_key()},
                       {"signature", in->signature()}};
    auto report = ParseCheckpointRequest(body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (!report.has_value()) return ToGrpc(report.error());
    auto put = o_.server_.checkpoints().Accept(*report);
    if (!put.has_value()) return ToGrpc(put.error());
    const CheckpointRow& r = put->row;
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_duplicate(put->duplicate);
    out->set_id(r.id);
    out->set_verification(r.verification);
    out->set_reason(r.reason);
    out->set_problem(r.problem);
    out->set_problem_detail(r.problem_detail);
    out->set_received_ms(r.received_ms);
    return grpc::Status::OK;
  }

  grpc::Status RegisterAuditKey(grpc::ServerContext* ctx, const v1::RegisterAuditKeyRequest* in,
                                v1::RegisterAuditKeyResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    // The same checks as POST /v1/agents/audit-key; the host is the certificate's.
    const json body = {{"schema_version", kHubSchemaVersion},
                       {"host", peer.host},
                       {"audit_key", AuditKeyJson(in->audit_key())}};
    auto req = ParseAuditKeyRequest(body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (!req.has_value()) return ToGrpc(req.error());
    auto change = o_.server_.checkpoints().RegisterKey(req->host, req->key);
    if (!change.has_value()) return ToGrpc(change.error());
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_host(req->host);
    out->set_key_id(req->key.key_id);
    out->set_changed(change->changed);
    out->set_previous_key_id(change->previous_key_id);
    return grpc::Status::OK;
  }

  // Renew: a new certificate for the caller's host and group over the CSR's key; the current one
  // is refused once the new one is used (hub/agent_certs.h). Counted with Enrol's attempts.
  grpc::Status Renew(grpc::ServerContext* ctx, const v1::RenewRequest* in,
                     v1::EnrolResponse* out) override {
    Peer peer;
    if (grpc::Status g = Admit(*ctx, in->schema_version(), &peer); !g.ok()) return g;
    const int64_t now = o_.clock_.NowUnixNanos() / 1'000'000'000;
    bool first_refusal = false;
    if (!o_.AdmitEnrol("renew:" + peer.host, now, &first_refusal)) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "more than " + std::to_string(o_.options_.enrol_attempts_per_minute) +
                              " renewals in a minute for " + peer.host + "; try again later");
    }
    if (auto csr = CheckCsr(in->csr_pem(), "csr_pem"); !csr.has_value()) {
      return ToGrpc(csr.error());
    }
    auto cert = o_.ca_.SignAgentCsr(in->csr_pem(), peer.host, peer.group, now,
                                    o_.options_.cert_ttl_s);
    if (!cert.has_value()) return ToGrpc(cert.error());
    const int64_t not_after = now + o_.options_.cert_ttl_s;
    auto sha256 = o_.server_.certs().Record(*cert, peer.host, peer.group, "renewed",
                                            peer.cert_sha256, not_after);
    if (!sha256.has_value()) return ToGrpc(sha256.error());
    core::Status st = o_.audit_.Append(audit::RecordType::kAccessGrant,
                                       {{"action", "agent-cert-renewed"},
                                        {"host", peer.host},
                                        {"group", peer.group},
                                        {"sha256", *sha256},
                                        {"replaces", peer.cert_sha256},
                                        {"expires", not_after}});
    if (!st.ok()) return ToGrpc(core::Unavailable("audit log: " + st.message()));
    out->set_schema_version(std::string(kHubSchemaVersion));
    out->set_host(peer.host);
    out->set_group(peer.group);
    out->set_cert_pem(*cert);
    out->set_ca_pem(o_.ca_.cert_pem());
    out->set_not_after_s(not_after);
    return grpc::Status::OK;
  }

 private:
  // AdmitCaller, then the certificate's standing at the hub: a revoked one is PERMISSION_DENIED.
  grpc::Status Admit(const grpc::ServerContext& ctx, const std::string& version, Peer* peer) {
    if (grpc::Status g = AdmitCaller(ctx, version, peer); !g.ok()) return g;
    return ToGrpc(o_.server_.certs().Admit(peer->cert_sha256, peer->host));
  }

  AgentGrpc& o_;
};

AgentGrpc::AgentGrpc(AgentGrpcOptions options, const HubCa& ca, EnrolTokens& tokens, Server& server,
                     audit::AuditLog& audit, const core::Clock& clock)
    : options_(std::move(options)),
      ca_(ca),
      tokens_(tokens),
      server_(server),
      audit_(audit),
      clock_(clock) {}

AgentGrpc::~AgentGrpc() { Stop(); }

bool AgentGrpc::AdmitEnrol(const std::string& peer, int64_t now_s, bool* first_refusal) {
  constexpr int64_t kWindowS = 60;
  constexpr size_t kMaxPeers = 4096;
  std::lock_guard lock(enrol_mu_);
  if (enrol_windows_.size() >= kMaxPeers) {
    for (auto it = enrol_windows_.begin(); it != enrol_windows_.end();) {
      it = now_s - it->second.start_s >= kWindowS ? enrol_windows_.erase(it) : std::next(it);
    }
  }
  EnrolWindow& w = enrol_windows_[peer];
  if (now_s - w.start_s >= kWindowS) w = {now_s, 0};
  ++w.attempts;
  *first_refusal = w.attempts == options_.enrol_attempts_per_minute + 1;
  return w.attempts <= options_.enrol_attempts_per_minute;
}

core::Status AgentGrpc::AuditNewTokens() {
  VIGIL_ASSIGN_OR_RETURN(const auto fresh, tokens_.TakeUnaudited());
  for (const EnrolTokenRecord& t : fresh) {
    core::Status s =
        audit_.Append(audit::RecordType::kAccessGrant, {{"action", "enrol-token-created"},
                                                        {"token", t.id},
                                                        {"group", t.group},
                                                        {"host", t.host},
                                                        {"expires", t.expires_s},
                                                        {"by", t.created_by}});
    if (!s.ok()) return core::Unavailable("audit log: " + s.message());
  }
  return {};
}

core::Status AgentGrpc::Start() {
  if (grpc_) return core::FailedPrecondition("agent grpc: already started");
  // Abseil's deadlock detection off for gRPC's locks, as in vigil serve (src/api/grpc_api.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int64_t now = clock_.NowUnixNanos() / 1'000'000'000;
  VIGIL_ASSIGN_OR_RETURN(
      auto key_cert, ca_.IssueServerCert(options_.server_names, now, options_.server_cert_ttl_s));
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ca_.cert_pem();
  // The chain includes the CA, so that an agent that pins it by fingerprint can find it
  // (vigil agent enrol --ca-sha256); trust still comes only from the agent's own pin or file.
  ssl.pem_key_cert_pairs.push_back({key_cert.first, key_cert.second + ca_.cert_pem()});
  service_ = std::make_unique<Service>(*this);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen.ToString(), grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(8 << 20);
  grpc_ = builder.BuildAndStart();
  if (!grpc_ || port == 0) {
    grpc_.reset();
    service_.reset();
    return core::Unavailable("agents.listen: cannot listen on " + options_.listen.ToString());
  }
  port_ = static_cast<uint16_t>(port);
  return {};
}

void AgentGrpc::Stop() {
  if (!grpc_) return;
  grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc_->Wait();
  grpc_.reset();
  service_.reset();
}

}  // namespace vigil::hub
