#include "agent/hub_client_grpc.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <chrono>
#include <optional>

#include "agent/cert_renewal.h"
#include "core/files.h"
#include "govern/attest.h"
#include "hub/enrolment.h"
#include "hub/fleet_requests.h"
#include "hub/requests.h"
#include "vigil/v1/agent.grpc.pb.h"

namespace vigil::agent {
namespace {

using nlohmann::json;

std::string Text(const json& o, const char* key) {
  return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>()
                                                                : std::string();
}

template <typename T>
T Number(const json& o, const char* key) {
  return o.is_object() && o.contains(key) && o[key].is_number() ? o[key].get<T>() : T{};
}

void SetApplied(const json& o, const char* key, v1::Applied* out) {
  if (!o.contains(key) || !o[key].is_object()) return;
  out->set_version(Text(o[key], "version"));
  out->set_digest(Text(o[key], "digest"));
}

// "addresses" (an array of strings; other entries are skipped: the hub checks what arrives).
void SetAddresses(const json& o, google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!o.contains("addresses") || !o["addresses"].is_array()) return;
  for (const json& a : o["addresses"]) {
    if (a.is_string()) out->Add(a.get<std::string>());
  }
}

// "audit_key": {"key_id","public_key"} when the body has one.
template <typename Req>
void SetAuditKey(const json& o, Req* req) {
  if (!o.contains("audit_key") || !o["audit_key"].is_object()) return;
  req->mutable_audit_key()->set_key_id(Text(o["audit_key"], "key_id"));
  req->mutable_audit_key()->set_public_key(Text(o["audit_key"], "public_key"));
}

int HttpStatusOf(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    default:
      return 500;
  }
}

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    default:
      return "INTERNAL";
  }
}

HubReply Ok(int status, json body) {
  HubReply r;
  r.status = status;
  r.raw = body.dump(-1, ' ', false, json::error_handler_t::replace);
  r.body = std::move(body);
  return r;
}

json FleetAnswerJson(const v1::FleetAnswer& a) {
  json updates = json::array();
  for (const v1::Update& u : a.updates()) {
    updates.push_back({{"kind", u.kind()}, {"digest", u.digest()}, {"rollout", u.rollout()}});
  }
  json attestation = {{"state", a.attestation_state()}, {"reason", a.attestation_reason()}};
  if (a.has_challenge()) {
    attestation["challenge"] = {{"token", a.challenge().token()},
                                {"credential_blob", a.challenge().credential_blob()},
                                {"encrypted_secret", a.challenge().encrypted_secret()}};
  }
  if (!a.quote_nonce().empty()) attestation["quote_nonce"] = a.quote_nonce();
  return {{"schema_version", a.schema_version()},
          {"host", a.host()},
          {"group", a.group()},
          {"attestation", std::move(attestation)},
          {"enforce", {{"allowed", a.enforce_allowed()}, {"reason", a.enforce_reason()}}},
          {"updates", std::move(updates)}};
}

json EscalationJson(const v1::Escalation& e) {
  return {{"escalation",
           {{"id", e.id()},
            {"escalation_id", e.escalation_id()},
            {"state", e.state()},
            {"outcome", e.outcome()},
            {"decided_by", e.decided_by()},
            {"note", e.note()},
            {"deadline_ms", e.deadline_ms()}}}};
}

class GrpcHubClient final : public HubClient {
 public:
  GrpcHubClient(HubLinkOptions options, std::shared_ptr<grpc::Channel> channel)
      : HubClient(std::move(options)),
        stub_(v1::AgentHub::NewStub(std::move(channel))),
        cert_stamp_(Stamp(this->options().cert_file)) {}

  core::Result<HubReply> Post(const std::string& path, const std::string& body) override {
    const std::string where = "POST " + options().url + path;
    const json in = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (path == "/v1/ingest") {
      v1::IngestRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_message(body);
      v1::IngestResponse out;
      return Call(where, &v1::AgentHub::Stub::Ingest, req, &out, [&out] {
        return Ok(200, {{"schema_version", out.schema_version()},
                        {"message_id", out.message_id()},
                        {"duplicate", out.duplicate()},
                        {"findings", out.findings()},
                        {"new_incidents", out.new_incidents()}});
      });
    }
    if (!in.is_object()) {
      return core::InvalidArgument(where + ": the request is not a JSON object");
    }
    if (path == "/v1/agents/register") {
      v1::RegisterRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_mode(Text(in, "mode"));
      SetApplied(in, "policy", req.mutable_policy());
      SetApplied(in, "model", req.mutable_model());
      req.set_group(Text(in, "group"));
      req.set_vigil_version(Text(in, "vigil_version"));
      req.set_enforce_wanted(in.contains("enforce_wanted") && in["enforce_wanted"].is_boolean() &&
                             in["enforce_wanted"].get<bool>());
      req.set_attestation(Text(in, "attestation"));
      SetAddresses(in, req.mutable_addresses());
      SetAuditKey(in, &req);
      v1::FleetAnswer out;
      return Call(where, &v1::AgentHub::Stub::Register, req, &out,
                  [&out] { return Ok(200, FleetAnswerJson(out)); });
    }
    if (path == "/v1/agents/heartbeat") {
      v1::HeartbeatRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_mode(Text(in, "mode"));
      SetApplied(in, "policy", req.mutable_policy());
      SetApplied(in, "model", req.mutable_model());
      if (in.contains("health") && in["health"].is_object()) {
        const json& h = in["health"];
        req.mutable_health()->set_events_per_s(Number<double>(h, "events_per_s"));
        req.mutable_health()->set_drops(Number<int64_t>(h, "drops"));
        req.mutable_health()->set_alerts(Number<int64_t>(h, "alerts"));
      }
      if (in.contains("refusal") && in["refusal"].is_object()) {
        const json& f = in["refusal"];
        v1::Refusal* r = req.mutable_refusal();
        r->set_kind(Text(f, "kind"));
        r->set_digest(Text(f, "digest"));
        r->set_reason(Text(f, "reason"));
        r->set_time_ms(Number<int64_t>(f, "time_ms"));
      }
      req.set_attestation(Text(in, "attestation"));
      SetAddresses(in, req.mutable_addresses());
      v1::FleetAnswer out;
      return Call(where, &v1::AgentHub::Stub::Heartbeat, req, &out,
                  [&out] { return Ok(200, FleetAnswerJson(out)); });
    }
    if (path == "/v1/agents/activate") {
      v1::ActivateRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_token(Text(in, "token"));
      auto secret = govern::BytesOfHex(Text(in, "secret"));
      if (!secret.has_value()) {
        return core::InvalidArgument(where + ": secret: expected hex digits");
      }
      req.set_secret(*secret);
      v1::ActivateResponse out;
      return Call(where, &v1::AgentHub::Stub::Activate, req, &out, [&out] {
        return Ok(
            out.attestation_state() == "verified" ? 200 : 422,
            {{"schema_version", out.schema_version()},
             {"host", out.host()},
             {"attestation",
              {{"state", out.attestation_state()}, {"reason", out.attestation_reason()}}},
             {"enforce", {{"allowed", out.enforce_allowed()}, {"reason", out.enforce_reason()}}}});
      });
    }
    if (path == "/v1/escalations") {
      v1::EscalateRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_escalation_id(Text(in, "escalation_id"));
      req.set_rule(Text(in, "rule"));
      req.set_action(Text(in, "action"));
      req.set_reason(Text(in, "reason"));
      req.set_pid(Number<int64_t>(in, "pid"));
      req.set_process(Text(in, "process"));
      req.set_timeout_s(Number<uint32_t>(in, "timeout_s"));
      req.set_default_verdict(Text(in, "default"));
      v1::Escalation out;
      return Call(where, &v1::AgentHub::Stub::Escalate, req, &out,
                  [&out] { return Ok(out.created() ? 201 : 200, EscalationJson(out)); });
    }
    if (path == "/v1/agents/checkpoints") {
      v1::CheckpointRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_seq(Number<uint64_t>(in, "seq"));
      req.set_covers(Number<uint64_t>(in, "covers"));
      req.set_chain_hash(Text(in, "chain_hash"));
      req.set_time_ns(Number<int64_t>(in, "time_ns"));
      req.set_key_id(Text(in, "key_id"));
      req.set_public_key(Text(in, "public_key"));
      req.set_signature(Text(in, "signature"));
      v1::CheckpointResponse out;
      return Call(where, &v1::AgentHub::Stub::Checkpoint, req, &out, [&out] {
        return Ok(200, {{"schema_version", out.schema_version()},
                        {"duplicate", out.duplicate()},
                        {"checkpoint",
                         {{"id", out.id()},
                          {"verification", out.verification()},
                          {"reason", out.reason()},
                          {"problem", out.problem()},
                          {"problem_detail", out.problem_detail()},
                          {"received_ms", out.received_ms()}}}});
      });
    }
    if (path == "/v1/agents/audit-key") {
      v1::RegisterAuditKeyRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      SetAuditKey(in, &req);
      v1::RegisterAuditKeyResponse out;
      return Call(where, &v1::AgentHub::Stub::RegisterAuditKey, req, &out, [&out] {
        return Ok(200, {{"schema_version", out.schema_version()},
                        {"host", out.host()},
                        {"key_id", out.key_id()},
                        {"changed", out.changed()},
                        {"previous_key_id", out.previous_key_id()}});
      });
    }
    return core::InvalidArgument(where + ": the hub's gRPC service has no method for this route");
  }

  core::Result<HubReply> Get(const std::string& path) override {
    const std::string where = "GET " + options().url + path;
    if (path == "/v1/agents/nonce") {
      v1::NonceRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      v1::NonceResponse out;
      return Call(where, &v1::AgentHub::Stub::Nonce, req, &out, [&out] {
        return Ok(200, {{"schema_version", out.schema_version()}, {"nonce", out.nonce()}});
      });
    }
    constexpr std::string_view kArtifacts = "/v1/artifacts/", kSignature = "/signature";
    constexpr std::string_view kEscalations = "/v1/escalations/";
    const std::string_view p = path;
    if (p.substr(0, kArtifacts.size()) == kArtifacts) {
      std::string_view rest = p.substr(kArtifacts.size());
      const bool signature = rest.size() > kSignature.size() &&
                             rest.substr(rest.size() - kSignature.size()) == kSignature;
      if (signature) rest.remove_suffix(kSignature.size());
      std::string digest;
      if (!hub::ParseDigest(rest, &digest)) {
        return core::InvalidArgument(where + ": expected a 64-hex-digit artifact digest");
      }
      if (!artifact_ || artifact_->digest() != digest) {
        v1::FetchArtifactRequest req;
        req.set_schema_version(std::string(hub::kHubSchemaVersion));
        req.set_digest(digest);
        v1::Artifact out;
        VIGIL_ASSIGN_OR_RETURN(HubReply fetched,
                               Call(where, &v1::AgentHub::Stub::FetchArtifact, req, &out,
                                    [] { return Ok(200, json::object()); }));
        if (fetched.status != 200) return fetched;
        artifact_ = std::move(out);
      }
      HubReply r;
      r.status = 200;
      r.raw = signature ? artifact_->signature() : artifact_->content();
      r.body = json(json::value_t::discarded);
      return r;
    }
    if (p.substr(0, kEscalations.size()) == kEscalations) {
      const std::string id_text(p.substr(kEscalations.size()));
      int64_t id = 0;
      size_t used = 0;
      try {
        id = std::stoll(id_text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != id_text.size() || id <= 0) {
        return core::InvalidArgument(where + ": expected a positive escalation id");
      }
      v1::GetEscalationRequest req;
      req.set_schema_version(std::string(hub::kHubSchemaVersion));
      req.set_id(id);
      v1::Escalation out;
      return Call(where, &v1::AgentHub::Stub::GetEscalation, req, &out,
                  [&out] { return Ok(200, EscalationJson(out)); });
    }
    return core::InvalidArgument(where + ": the hub's gRPC service has no method for this route");
  }

 private:
  template <typename Req, typename Resp, typename Method, typename Render>
  core::Result<HubReply> Call(const std::string& where, Method method, const Req& req, Resp* out,
                              Render render) {
    FollowRenewal();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options().timeout);
    const grpc::Status st = ((*stub_).*method)(&ctx, req, out);
    if (st.ok()) return render();
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return core::Unavailable(where + ": " + st.error_message());
    }
    HubReply r;
    r.status = HttpStatusOf(st.error_code());
    r.error = std::string(CodeName(st.error_code())) + ": " + st.error_message();
    r.raw = r.error;
    r.body = json(json::value_t::discarded);
    return r;
  }

  // The certificate file's identity (inode, size, mtime): a renewal replaces the file.
  static std::string Stamp(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return "";
    return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  // After a renewal (agent/cert_renewal.h) replaced the certificate, calls go over a new channel
  // with the new pair; until the pair on disk is whole and valid, the current channel stays.
  void FollowRenewal() {
    const std::string stamp = Stamp(options().cert_file);
    if (stamp.empty() || stamp == cert_stamp_) return;
    const std::string target = options().url.substr(std::string_view("grpcs://").size());
    auto channel = OpenHubChannel(
        target, {options().cert_file, options().key_file, options().ca_file}, options().host, "");
    if (!channel.has_value()) return;  // (mid-replacement: the next call looks again)
    stub_ = v1::AgentHub::NewStub(std::move(channel).value());
    cert_stamp_ = stamp;
  }

  std::unique_ptr<v1::AgentHub::Stub> stub_;
  std::string cert_stamp_;
  std::optional<v1::Artifact> artifact_;  // the last one fetched (its signature is asked next)
};

}  // namespace

core::Result<std::unique_ptr<HubClient>> CreateGrpcHubClient(HubLinkOptions options) {
  const CertFiles files{options.cert_file, options.key_file, options.ca_file};
  VIGIL_RETURN_IF_ERROR(FinishCertSwap(files));  // (a renewal a crash interrupted)
  const std::string target = options.url.substr(std::string_view("grpcs://").size());
  VIGIL_ASSIGN_OR_RETURN(auto channel, OpenHubChannel(target, files, options.host, ""));
  return std::unique_ptr<HubClient>(new GrpcHubClient(std::move(options), std::move(channel)));
}

}  // namespace vigil::agent
