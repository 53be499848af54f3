#include "hub/checkpoints.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <charconv>

#include "audit/verify.h"
#include "hub/internal/http_reply.h"

namespace vigil::hub {
namespace {

using internal::Reply;
using internal::ReplyError;
using internal::ReplyStatus;
using nlohmann::json;

// The pin of `host`'s audit key (nullopt when none); the store's error otherwise.
core::Result<std::optional<AuditKeyPinRow>> PinOf(Store& store, const std::string& host) {
  auto pin = store.AuditKeyPin(host);
  if (pin.has_value()) return std::optional<AuditKeyPinRow>(std::move(pin).value());
  if (pin.error().code() == core::StatusCode::kNotFound) return std::optional<AuditKeyPinRow>();
  return pin.error();
}

core::Counter* RefusedKeys() {
  static core::Counter* const c = [] {
    auto r = core::Registry::Get().GetCounter(
        "vigil_hub_audit_keys_refused_total",
        "Audit keys a host offered that are not the key an admin pinned for it", {});
    return r.has_value() ? *r : nullptr;
  }();
  return c;
}

}  // namespace

core::Result<AuditKeyChange> RegisterAuditKey(Store& store, audit::AuditLog& audit,
                                              const std::string& host, const AuditKeyReport& key,
                                              int64_t now_ms) {
  VIGIL_ASSIGN_OR_RETURN(const std::optional<AuditKeyPinRow> pin, PinOf(store, host));
  if (pin.has_value()) {
    const std::string fingerprint = AuditKeyFingerprint(key.public_key);
    if (fingerprint != pin->fingerprint) {
      const std::string why = "host " + host + " offered audit key " + key.key_id +
                              " (fingerprint " + fingerprint +
                              "), not the key pinned for it (fingerprint " + pin->fingerprint +
                              ", by " + pin->pinned_by + ")";
      spdlog::error("ALERT hub: {}: refused", why);
      if (core::Counter* c = RefusedKeys()) c->Inc();
      core::Status st = audit.Append(audit::RecordType::kDecision,
                                     {{"action", "audit-key-refused"},
                                      {"host", host},
                                      {"key_id", key.key_id},
                                      {"fingerprint", fingerprint},
                                      {"pinned_fingerprint", pin->fingerprint},
                                      {"detail", why}});
      if (!st.ok()) return core::Unavailable("audit log: " + st.message());
      return core::Status(core::StatusCode::kPermissionDenied, why + ": refused");
    }
  }
  auto old = store.AuditKey(host);
  if (!old.has_value() && old.error().code() != core::StatusCode::kNotFound) return old.error();
  AuditKeyChange change;
  if (old.has_value()) change.previous_key_id = old->key_id;
  if (old.has_value() && old->key_id == key.key_id && old->public_key == key.public_key) {
    return change;
  }
  VIGIL_RETURN_IF_ERROR(store.PutAuditKey({host, key.key_id, key.public_key, now_ms}));
  change.changed = true;
  // A replaced key is worth a look: checkpoints signed by the old one no longer verify.
  core::Status st =
      audit.Append(audit::RecordType::kAccessGrant,
                   {{"action", old.has_value() ? "audit-key-replaced" : "audit-key-registered"},
                    {"host", host},
                    {"key_id", key.key_id},
                    {"previous_key_id", change.previous_key_id}});
  if (!st.ok()) return core::Unavailable("audit log: " + st.message());
  return change;
}

core::Result<AuditKeyPinChange> PinAuditKey(Store& store, audit::AuditLog& audit,
                                            const AuditKeyPinRequest& pin, const std::string& by,
                                            int64_t now_ms) {
  VIGIL_ASSIGN_OR_RETURN(const std::optional<AuditKeyPinRow> old, PinOf(store, pin.host));
  AuditKeyPinChange change;
  if (old.has_value()) change.previous_fingerprint = old->fingerprint;
  auto registered = store.AuditKey(pin.host);
  if (registered.has_value()) {
    change.registered = *registered;
    change.registered_pinned = AuditKeyFingerprint(registered->public_key) == pin.fingerprint;
  } else if (registered.error().code() != core::StatusCode::kNotFound) {
    return registered.error();
  }
  VIGIL_RETURN_IF_ERROR(
      store.PutAuditKeyPin({pin.host, pin.fingerprint, by, pin.reason, now_ms}));
  if (change.registered.has_value() && !change.registered_pinned) {
    spdlog::warn("hub: the audit key host {} registered ({}) is not the one {} pinned ({}): its "
                 "checkpoints no longer verify",
                 pin.host, change.registered->key_id, by, pin.fingerprint);
  }
  core::Status st = audit.Append(
      audit::RecordType::kAccessGrant,
      {{"action", "audit-key-pinned"},
       {"host", pin.host},
       {"fingerprint", pin.fingerprint},
       {"previous_fingerprint", change.previous_fingerprint},
       {"registered_key_id", change.registered ? change.registered->key_id : ""},
       {"registered_pinned", change.registered_pinned},
       {"by", by},
       {"reason", pin.reason}});
  if (!st.ok()) return core::Unavailable("audit log: " + st.message());
  return change;
}

core::Result<AuditKeyChange> CheckpointBook::RegisterKey(const std::string& host,
                                                         const AuditKeyReport& key) {
  return RegisterAuditKey(store_, audit_, host, key, clock_.NowUnixNanos() / 1'000'000);
}

CheckpointBook::CheckpointBook(Store& store, audit::AuditLog& audit, const core::Clock& clock,
                               core::Registry& registry)
    : store_(store), audit_(audit), clock_(clock) {
  auto count = [&](const char* name, const char* help, const char* label, const char* value) {
    auto c = registry.GetCounter(name, help, {{label, value}});
    return c.has_value() ? *c : nullptr;
  };
  const char* kCheckpoints = "Audit checkpoints agents sent, by outcome";
  const char* kProblems = "Audit checkpoints that contradict the host's stored ones, by problem";
  verified_ = count("vigil_hub_checkpoints_total", kCheckpoints, "result", "verified");
  unverified_ = count("vigil_hub_checkpoints_total", kCheckpoints, "result", "unverified");
  bad_signature_ = count("vigil_hub_checkpoints_total", kCheckpoints, "result", "bad-signature");
  duplicate_ = count("vigil_hub_checkpoints_total", kCheckpoints, "result", "duplicate");
  fork_ = count("vigil_hub_checkpoint_problems_total", kProblems, "problem", "fork");
  rollback_ = count("vigil_hub_checkpoint_problems_total", kProblems, "problem", "rollback");
}

core::Result<CheckpointPut> CheckpointBook::Accept(const CheckpointReport& c) {
  CheckpointRow row;
  row.host = c.host;
  row.seq = static_cast<int64_t>(c.seq);
  row.covers = static_cast<int64_t>(c.covers);
  row.chain_hash = c.chain_hash;
  row.time_ns = c.time_ns;
  row.key_id = c.key_id;
  row.public_key = c.public_key;
  row.signature = c.signature;
  row.received_ms = clock_.NowUnixNanos() / 1'000'000;

  auto key = store_.AuditKey(c.host);
  if (!key.has_value() && key.error().code() != core::StatusCode::kNotFound) return key.error();
  VIGIL_ASSIGN_OR_RETURN(const std::optional<AuditKeyPinRow> pin, PinOf(store_, c.host));
  core::Status st = audit::VerifyCheckpointNotice(c);
  if (pin.has_value()) {
    // The admin's pin decides, whatever the host registered.
    const std::string fingerprint = AuditKeyFingerprint(c.public_key);
    if (fingerprint != pin->fingerprint) {
      st = core::InvalidArgument("checkpoint record " + std::to_string(c.seq) +
                                 " is signed by key " + c.key_id + " (fingerprint " + fingerprint +
                                 "), not by the audit key pinned for host " + c.host +
                                 " (fingerprint " + pin->fingerprint + ")");
    }
  } else if (key.has_value() && (key->key_id != c.key_id || key->public_key != c.public_key)) {
    st = core::InvalidArgument("checkpoint record " + std::to_string(c.seq) + " is signed by key " +
                               c.key_id + ", not by the audit key host " + c.host +
                               " registered (" + key->key_id + ")");
  }
  const bool known = pin.has_value() || key.has_value();
  row.verification = !st.ok() ? "bad-signature" : known ? "verified" : "unverified";
  row.reason = !st.ok() ? st.message()
               : known  ? ""
                        : "host " + c.host +
                             " registered no audit key; the signature verifies by the "
                             "key the checkpoint names (" +
                             c.key_id + ")";

  VIGIL_ASSIGN_OR_RETURN(CheckpointPut put, store_.PutCheckpoint(row));
  const CheckpointRow& r = put.row;
  if (put.duplicate) {
    if (duplicate_ != nullptr) duplicate_->Inc();
    return put;
  }
  core::Counter* outcome = r.verification == "verified"     ? verified_
                           : r.verification == "unverified" ? unverified_
                                                            : bad_signature_;
  if (outcome != nullptr) outcome->Inc();
  if (!r.problem.empty()) {
    core::Counter* p = r.problem == "fork" ? fork_ : rollback_;
    if (p != nullptr) p->Inc();
  }
  core::Status audited;
  auto record = [&](const std::string& what, const std::string& detail) {
    spdlog::warn("hub: audit checkpoint {} of host {}: {}: {}", r.seq, r.host, what, detail);
    core::Status appended =
        audit_.Append(audit::RecordType::kDecision, {{"action", "audit-checkpoint-" + what},
                                                     {"host", r.host},
                                                     {"seq", r.seq},
                                                     {"covers", r.covers},
                                                     {"chain_hash", r.chain_hash},
                                                     {"key_id", r.key_id},
                                                     {"detail", detail}});
    if (!appended.ok() && audited.ok()) {
      audited = core::Unavailable("audit log: " + appended.message());
    }
  };
  if (!r.problem.empty()) record(r.problem, r.problem_detail);
  if (r.verification == "bad-signature") record("bad-signature", r.reason);
  VIGIL_RETURN_IF_ERROR(audited);
  return put;
}

json CheckpointBook::CheckpointJson(const CheckpointRow& r) {
  return {{"id", r.id},
          {"seq", r.seq},
          {"covers", r.covers},
          {"chain_hash", r.chain_hash},
          {"time_ns", r.time_ns},
          {"key_id", r.key_id},
          {"public_key", r.public_key},
          {"signature", r.signature},
          {"verification", r.verification},
          {"reason", r.reason},
          {"problem", r.problem},
          {"problem_detail", r.problem_detail},
          {"received_ms", r.received_ms}};
}

void CheckpointBook::Routes(httplib::Server& s, const Authorizer& authorize) {
  s.Post("/v1/agents/checkpoints", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto report = ParseCheckpointRequest(q.body);
    if (!report.has_value()) return ReplyStatus(r, report.error());
    if (c.subject != report->host) {
      return ReplyError(
          r, 403, "PERMISSION_DENIED",
          "agent \"" + c.subject + "\" may not act for host \"" + report->host + "\"");
    }
    auto put = Accept(*report);
    if (!put.has_value()) return ReplyStatus(r, put.error());
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"duplicate", put->duplicate},
           {"checkpoint", CheckpointJson(put->row)}});
  });
  s.Post("/v1/agents/audit-key", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAgent, &c)) return;
    auto req = ParseAuditKeyRequest(q.body);
    if (!req.has_value()) return ReplyStatus(r, req.error());
    if (c.subject != req->host) {
      return ReplyError(r, 403, "PERMISSION_DENIED",
                        "agent \"" + c.subject + "\" may not act for host \"" + req->host + "\"");
    }
    auto change = RegisterKey(req->host, req->key);
    if (!change.has_value()) return ReplyStatus(r, change.error());
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"host", req->host},
           {"key_id", req->key.key_id},
           {"changed", change->changed},
           {"previous_key_id", change->previous_key_id}});
  });
  s.Post("/v1/agents/audit-key/pin", [=, this](const httplib::Request& q, httplib::Response& r) {
    Caller c;
    if (!authorize(q, r, Role::kAdmin, &c)) return;
    auto req = ParseAuditKeyPinRequest(q.body);
    if (!req.has_value()) return ReplyStatus(r, req.error());
    auto change = PinAuditKey(store_, audit_, *req, c.subject, clock_.NowUnixNanos() / 1'000'000);
    if (!change.has_value()) return ReplyStatus(r, change.error());
    json registered = nullptr;
    if (change->registered.has_value()) {
      registered = {{"key_id", change->registered->key_id},
                    {"fingerprint", AuditKeyFingerprint(change->registered->public_key)},
                    {"pinned", change->registered_pinned}};
    }
    Reply(r, 200,
          {{"schema_version", kHubSchemaVersion},
           {"host", req->host},
           {"fingerprint", req->fingerprint},
           {"previous_fingerprint", change->previous_fingerprint},
           {"registered_key", std::move(registered)}});
  });
  s.Get(R"(/v1/agents/([A-Za-z0-9._:-]{1,253})/checkpoints)",
        [=, this](const httplib::Request& q, httplib::Response& r) {
          Caller c;
          if (!authorize(q, r, Role::kViewer, &c)) return;
          const std::string host = q.matches[1].str();
          int64_t limit = 100;
          if (q.has_param("limit")) {
            const std::string v = q.get_param_value("limit");
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
            if (ec != std::errc() || end != v.data() + v.size() || limit < 1 || limit > 1000) {
              return ReplyError(r, 400, "INVALID_ARGUMENT", "limit: expected 1..1000");
            }
          }
          auto rows = store_.Checkpoints(host, limit);
          if (!rows.has_value()) return ReplyStatus(r, rows.error());
          json key = nullptr;
          if (auto k = store_.AuditKey(host); k.has_value()) {
            key = {{"key_id", k->key_id},
                   {"public_key", k->public_key},
                   {"fingerprint", AuditKeyFingerprint(k->public_key)},
                   {"registered_ms", k->registered_ms}};
          } else if (k.error().code() != core::StatusCode::kNotFound) {
            return ReplyStatus(r, k.error());
          }
          auto pin = PinOf(store_, host);
          if (!pin.has_value()) return ReplyStatus(r, pin.error());
          json pinned = nullptr;
          if (pin->has_value()) {
            const AuditKeyPinRow& p = **pin;
            pinned = {{"fingerprint", p.fingerprint},
                      {"pinned_by", p.pinned_by},
                      {"reason", p.reason},
                      {"pinned_ms", p.pinned_ms}};
          }
          json list = json::array();
          for (const CheckpointRow& row : *rows) list.push_back(CheckpointJson(row));
          Reply(r, 200,
                {{"schema_version", kHubSchemaVersion},
                 {"host", host},
                 {"audit_key", std::move(key)},
                 {"audit_key_pin", std::move(pinned)},
                 {"checkpoints", std::move(list)}});
        });
}

}  // namespace vigil::hub
